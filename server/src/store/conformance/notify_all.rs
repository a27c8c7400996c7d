//! The level `all` (docs/NOTIFICATIONS.md; migrations Postgres 0023, SQLite 0016): the
//! fan-out's member pages with their private documents' seqs, the coalesced feed rows, and
//! webhook deliveries merged while they wait.

use super::*;
use crate::store::notifications::Coalesced;
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

    let row = |who: &str, message: &str, count: i64| Coalesced {
        tenant: t.clone(),
        account: account(who),
        conv: team.clone(),
        message: msg_id(message),
        actor: account("alice"),
        count,
        created_at: 1_000,
    };
    let first = s
        .coalesce_notifications(&[row("bob", "m2", 2), row("carol", "m2", 1)])
        .await
        .unwrap();
    let counts: Vec<(usize, i64)> = first.iter().map(|r| (r.index, r.count)).collect();
    let mut sorted = counts.clone();
    sorted.sort();
    assert_eq!(sorted, [(0, 2), (1, 1)]);
    // Unread: the count grows, and the row takes a new, greater id.
    let again = s
        .coalesce_notifications(&[row("bob", "m5", 3)])
        .await
        .unwrap();
    let bob_first = first.iter().find(|r| r.index == 0).unwrap().id;
    assert_eq!(again[0].count, 5);
    assert!(again[0].id > bob_first);
    let feed = s
        .notification_page(&t, &account("bob"), None, false, 10)
        .await
        .unwrap();
    assert_eq!(feed.len(), 1, "one row per account and conversation");
    assert_eq!(
        (
            feed[0].id,
            feed[0].count,
            feed[0].message.as_ref().map(|m| m.as_str())
        ),
        (again[0].id, 5, Some("m5"))
    );
    // Read: the next messages start it again.
    s.mark_notifications_read(&t, &account("bob"), None, 2_000)
        .await
        .unwrap();
    let reset = s
        .coalesce_notifications(&[row("bob", "m6", 1)])
        .await
        .unwrap();
    assert_eq!(reset[0].count, 1);
    assert_eq!(
        s.unread_notifications(&t, &account("bob")).await.unwrap(),
        1
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
