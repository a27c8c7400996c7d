//! Stats and view counts (docs/SCHEMA.md, "Projection: stats and views"; migrations
//! Postgres 0019/0020/0022, SQLite 0013/0014/0015): the counts the triggers keep as messages are
//! committed, deleted and read.

use super::*;
use crate::store::stats::ConvStats;

fn kind_of(mut c: NewChange, kind: &str) -> NewChange {
    for p in &mut c.projection {
        if let Projection::Message(row) = p {
            row.kind = kind.to_owned();
        }
    }
    c
}

pub async fn stats_and_view_counts(env: Env) {
    let s = &env.store;
    let t = tenant("acme");
    let news = conv("news");
    let mut seqs = Seqs::default();
    let cd = conv_doc("acme", "news");
    let mut row = conv_row("acme", "news", "channel", Some("News"), 100);
    row.active_members = 3;
    let seq = seqs.next(&cd);
    s.commit(&[with(
        change(&cd, seq, "alice"),
        vec![
            p_conv(row),
            p_member("acme", "news", "alice", "owner", "active"),
            p_member("acme", "news", "bob", "subscriber", "active"),
            p_member("acme", "news", "carol", "subscriber", "active"),
        ],
    )])
    .await
    .expect("channel");
    let stats = |messages, media, files| ConvStats {
        messages,
        media,
        files,
        members: 3,
    };
    assert_eq!(
        s.conv_stats(&t, &news).await.expect("stats"),
        Some(stats(0, 0, 0))
    );

    let posts: Vec<NewChange> = [
        ("p1", "text"),
        ("p2", "image"),
        ("p3", "file"),
        ("p4", "voice"),
        ("p5", "text"),
    ]
    .into_iter()
    .map(|(id, kind)| {
        kind_of(
            message_change(&mut seqs, "acme", "news", id, "alice", 1000, id),
            kind,
        )
    })
    .collect();
    s.commit(&posts).await.expect("posts");
    assert_eq!(
        s.conv_stats(&t, &news).await.expect("stats"),
        Some(stats(5, 2, 1))
    );

    // Deleting takes a message out of the counts (and its kind's); an edit does not.
    let bucket = msgs_doc("acme", "news", 0);
    let seq = seqs.next(&bucket);
    s.commit(&[with(
        change(&bucket, seq, "alice"),
        vec![
            p_updated("acme", "news", "p5", "", true),
            p_updated("acme", "news", "p2", "", true),
            p_updated("acme", "news", "p1", "edited", false),
        ],
    )])
    .await
    .expect("deletions");
    assert_eq!(
        s.conv_stats(&t, &news).await.expect("stats"),
        Some(stats(3, 1, 1))
    );

    // Views: bob's first read marker names p2, carol's p4 (positions 2 and 4).
    let marker = |seqs: &mut Seqs, who: &str, at: &str| {
        let seq = seqs.next(&cd);
        with(
            change(&cd, seq, who),
            vec![p_marker("acme", "news", who, at)],
        )
    };
    s.commit(&[
        marker(&mut seqs, "bob", "p2"),
        marker(&mut seqs, "carol", "p4"),
    ])
    .await
    .expect("markers");
    let (t_ref, news_ref) = (&t, &news);
    // The stored counts of p5..p1, as a page reads them (newest first).
    let views = || async move {
        s.messages(t_ref, news_ref, None, 10)
            .await
            .expect("page")
            .iter()
            .map(|m| m.views)
            .collect::<Vec<_>>()
    };
    // A first marker counts the post it names (where the account started reading).
    assert_eq!(views().await, vec![0, 1, 0, 1, 0]);

    // A marker moves on: the posts it passes get its view; twice on one key, once.
    s.commit(&[marker(&mut seqs, "bob", "p5")])
        .await
        .expect("bob moves");
    assert_eq!(views().await, vec![1, 2, 1, 1, 0]);
    s.commit(&[marker(&mut seqs, "bob", "p5")])
        .await
        .expect("bob again");
    assert_eq!(views().await, vec![1, 2, 1, 1, 0]);
    // Back and forward again (another device of his, or a marker set back): each post
    // counts an account once.
    s.commit(&[marker(&mut seqs, "bob", "p1")])
        .await
        .expect("bob back");
    assert_eq!(views().await, vec![1, 2, 1, 1, 0]);
    s.commit(&[marker(&mut seqs, "bob", "p3")])
        .await
        .expect("bob forward");
    s.commit(&[marker(&mut seqs, "bob", "p5")])
        .await
        .expect("bob to the end");
    assert_eq!(views().await, vec![1, 2, 1, 1, 0]);
    // A marker naming a message that is not stored counts nowhere, and leaves nothing
    // behind when it moves on.
    s.commit(&[marker(&mut seqs, "alice", "ghost")])
        .await
        .expect("ghost");
    assert_eq!(views().await, vec![1, 2, 1, 1, 0]);
    s.commit(&[marker(&mut seqs, "alice", "p1")])
        .await
        .expect("alice");
    assert_eq!(views().await, vec![1, 2, 1, 1, 1]);
    s.commit(&[marker(&mut seqs, "alice", "p4")])
        .await
        .expect("alice on");
    assert_eq!(views().await, vec![1, 3, 2, 2, 1]);

    // Retention drops the period's bucket: its messages leave the counts.
    s.drop_buckets(crate::store::retention::DropRequest {
        tenant: &t,
        conv: &news,
        first_kept: 1,
        retention_days: 1,
        now_ms: 10 * 86_400_000,
    })
    .await
    .expect("drop");
    assert_eq!(
        s.conv_stats(&t, &news).await.expect("stats"),
        Some(stats(0, 0, 0))
    );

    // Unknown conversations: no stats, no views.
    assert_eq!(
        s.conv_stats(&t, &conv("nothing")).await.expect("none"),
        None
    );
    assert_eq!(
        s.messages(&t, &conv("nothing"), None, 10)
            .await
            .expect("none"),
        Vec::new()
    );
}
