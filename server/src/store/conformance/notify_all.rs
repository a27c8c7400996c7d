//! The level `all` (docs/NOTIFICATIONS.md; migrations Postgres 0023, SQLite 0016): the
//! fan-out's member pages with their private documents' seqs, the coalesced feed rows, and
//! webhook deliveries merged while they wait.

use super::*;
use crate::store::notifications::{Joined, Quiet, QuietChange, Skip, StreamPost};
use crate::store::webhooks::NewDelivery;

pub async fn coalesced_feed_and_merged_deliveries(env: Env) {
    let s = &env.store;
    let t = tenant("acme");
    let team = conv("team");
    let mut seqs = Seqs::default();
    let cd = conv_doc("acme", "team");
    let seq = seqs.next(&cd);
    s.commit(&[with(
        change(&cd, seq, "alice"),
        vec![
            p_conv(conv_row("acme", "team", "group", Some("Team"), 100)),
            p_member("acme", "team", "alice", "owner", "active"),
            p_member("acme", "team", "bob", "member", "active"),
            p_member("acme", "team", "carol", "member", "active"),
            p_member("acme", "team", "dave", "member", "left"),
        ],
    )])
    .await
    .expect("conversation");
    // Bob has a private document (two changes); the others none.
    let private = DocId::private(&t, &account("bob"));
    for _ in 0..2 {
        let seq = seqs.next(&private);
        s.commit(&[change(&private, seq, "bob")])
            .await
            .expect("private");
    }
    let page = s.fanout_members(&t, &team, None, 10).await.unwrap();
    let want = |v: &[(&str, u64)]| -> Vec<(AccountId, u64)> {
        v.iter().map(|(a, n)| (account(a), *n)).collect()
    };
    assert_eq!(
        page,
        want(&[("alice", 0), ("bob", 2), ("carol", 0)]),
        "{}",
        env.name()
    );
    let after = s
        .fanout_members(&t, &team, Some(&account("alice")), 1)
        .await
        .unwrap();
    assert_eq!(after, want(&[("bob", 2)]));

    // The stream: one row per conversation, whatever its members; a member's entry is
    // derived from it and its mark.
    let post = |message: &str, count: i64, skips: &[(&str, i64)]| StreamPost {
        tenant: t.clone(),
        conv: team.clone(),
        message: msg_id(message),
        actor: account("alice"),
        count,
        created_at: 1_000,
        skips: skips
            .iter()
            .map(|(a, n)| Skip {
                account: account(a),
                count: *n,
                newest: None,
            })
            .collect(),
    };
    let first = s
        .advance_stream(&post("m2", 2, &[("alice", 2)]))
        .await
        .unwrap();
    assert_eq!(first.n, 2);
    // Unread: the count grows, and the entry takes a new, greater id.
    let again = s
        .advance_stream(&post("m5", 3, &[("alice", 3), ("carol", 1)]))
        .await
        .unwrap();
    assert_eq!(again.n, 5);
    assert!(again.id > first.id);
    let feed = s
        .notification_page(&t, &account("bob"), None, false, 10, &[])
        .await
        .unwrap();
    assert_eq!(feed.len(), 1, "one entry per account and conversation");
    assert_eq!(
        (
            feed[0].id,
            feed[0].count,
            feed[0].message.as_ref().map(|m| m.as_str()),
            feed[0].read_at
        ),
        (again.id, 5, Some("m5"), None)
    );
    let carol = s
        .notification_page(&t, &account("carol"), None, false, 10, &[])
        .await
        .unwrap();
    assert_eq!(carol[0].count, 4, "what addressed her is not counted again");
    assert!(
        s.notification_page(&t, &account("alice"), None, false, 10, &[])
            .await
            .unwrap()
            .is_empty(),
        "the author is not told of her own"
    );
    assert!(
        s.notification_page(&t, &account("dave"), None, false, 10, &[])
            .await
            .unwrap()
            .is_empty(),
        "nor a member who left"
    );
    assert_eq!(
        s.unread_notifications(&t, &account("bob"), std::slice::from_ref(&team))
            .await
            .unwrap(),
        0,
        "a quiet conversation's entry is neither listed nor counted"
    );
    // Marking up to an older id leaves it unread.
    assert_eq!(
        s.mark_notifications_read(&t, &account("bob"), Some(first.id), 1_500, &[])
            .await
            .unwrap(),
        0
    );
    // Read: it stays listed as read, and the next messages start it again.
    assert_eq!(
        s.mark_notifications_read(&t, &account("bob"), None, 2_000, &[])
            .await
            .unwrap(),
        1
    );
    let read = s
        .notification_page(&t, &account("bob"), None, false, 10, &[])
        .await
        .unwrap();
    assert_eq!((read[0].count, read[0].read_at), (5, Some(2_000)));
    assert_eq!(
        s.unread_notifications(&t, &account("bob"), &[])
            .await
            .unwrap(),
        0
    );
    let reset = s.advance_stream(&post("m6", 1, &[])).await.unwrap();
    let feed = s
        .notification_page(&t, &account("bob"), None, true, 10, &[])
        .await
        .unwrap();
    assert_eq!((feed[0].id, feed[0].count), (reset.id, 1));
    assert_eq!(
        s.unread_notifications(&t, &account("bob"), &[])
            .await
            .unwrap(),
        1
    );
    // A member who joins now counts only what comes after.
    s.join_streams(&[Joined {
        tenant: t.clone(),
        conv: team.clone(),
        account: account("erin"),
        already: 0,
    }])
    .await
    .unwrap();
    let marks = s
        .stream_marks(&t, &team, &account("bob"), &account("erin"))
        .await
        .unwrap();
    let erin = marks.iter().find(|(a, _)| a.as_str() == "erin").unwrap().1;
    assert_eq!(erin.count(reset.n), 0);
    let bob = marks.iter().find(|(a, _)| a.as_str() == "bob").unwrap().1;
    assert_eq!(bob.count(reset.n), 1);

    // Quiet: bob's entry is frozen as it stands (count 1), re-timed, and thawed without
    // the quiet time's messages; what comes after counts again.
    let quiet = |change: QuietChange| Quiet {
        tenant: t.clone(),
        account: account("bob"),
        conv: team.clone(),
        already: 0,
        change,
    };
    let count = async || {
        let feed = s
            .notification_page(&t, &account("bob"), None, false, 10, &[])
            .await
            .unwrap();
        (feed[0].id, feed[0].count)
    };
    s.set_quiet(&[quiet(QuietChange::Freeze { until: None })])
        .await
        .unwrap();
    assert_eq!(
        s.quiet_marks(&t, &account("bob")).await.unwrap(),
        [(team.clone(), None)]
    );
    s.advance_stream(&post("m7", 2, &[])).await.unwrap();
    assert_eq!(count().await, (reset.id, 1), "frozen while quiet");
    s.set_quiet(&[quiet(QuietChange::Until {
        until: Some(i64::MAX),
    })])
    .await
    .unwrap();
    assert_eq!(
        s.quiet_marks(&t, &account("bob")).await.unwrap(),
        [(team.clone(), Some(i64::MAX))]
    );
    s.set_quiet(&[quiet(QuietChange::Thaw)]).await.unwrap();
    assert!(s.quiet_marks(&t, &account("bob")).await.unwrap().is_empty());
    let later = s.advance_stream(&post("m9", 1, &[])).await.unwrap();
    assert_eq!(
        count().await,
        (later.id, 2),
        "the frozen one and the new one"
    );

    // A timed mute: what comes before its end is not counted, and the stream's first step
    // after its end thaws the entry (no settings change needed) and counts that step.
    s.set_quiet(&[quiet(QuietChange::Freeze { until: Some(2_000) })])
        .await
        .unwrap();
    let at = |message: &str, count: i64, created_at: i64| StreamPost {
        created_at,
        ..post(message, count, &[])
    };
    s.advance_stream(&at("m10", 3, 1_500)).await.unwrap();
    assert_eq!(count().await, (later.id, 2), "muted: the entry as it stood");
    let after_end = s.advance_stream(&at("m11", 1, 2_500)).await.unwrap();
    assert!(s.quiet_marks(&t, &account("bob")).await.unwrap().is_empty());
    assert_eq!(
        count().await,
        (after_end.id, 3),
        "the frozen two and the one after the mute's end, not the three while muted"
    );

    // A waiting delivery takes merges until it is claimed.
    let queued = |payload: &str| NewDelivery {
        tenant: "acme".into(),
        account: String::new(),
        payload: payload.into(),
        at: 10,
        coalesce: Some("acme/team#0.0".into()),
        about: None,
    };
    s.enqueue_deliveries(&[queued("v1")]).await.unwrap();
    let (id, payload) = s.waiting_delivery("acme/team#0.0").await.unwrap().unwrap();
    assert_eq!(payload, "v1");
    assert!(s
        .merge_delivery(id, "acme/team#0.0", "v1", "v2")
        .await
        .unwrap());
    assert!(
        !s.merge_delivery(id, "acme/team#0.0", "v1", "v3")
            .await
            .unwrap(),
        "a merge over a stale payload changes nothing"
    );
    assert_eq!(s.waiting_delivery("other").await.unwrap(), None);
    let claimed = s.claim_deliveries(10, 100, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].payload, "v2");
    assert_eq!(s.waiting_delivery("acme/team#0.0").await.unwrap(), None);
    assert!(
        !s.merge_delivery(id, "acme/team#0.0", "v2", "v4")
            .await
            .unwrap(),
        "a claimed delivery never changes"
    );
}
