//! Due history cuts (docs/STORAGE.md, "Cutting a part's history"; migrations Postgres 0032,
//! SQLite 0025): the commit that stores a delete or an edit notes its part, claims lease it,
//! a finished cut removes the row unless a later delete or edit moved it, and an owner's
//! deletion of a conversation marks its messages deleted and notes its parts.

use super::*;
use crate::store::cuts::CutTiming;

pub(super) const NOW: CutTiming = CutTiming {
    after_delete: 0,
    after_edit: 0,
    lease: 60_000,
};
const LATER: CutTiming = CutTiming {
    after_delete: 3_600_000,
    after_edit: 3_600_000,
    lease: 60_000,
};

fn updated(seqs: &mut Seqs, id: &str, preview: &str, deleted: bool) -> NewChange {
    let doc = msgs_doc("acme", "room", 0);
    let seq = seqs.next(&doc);
    with(
        change(&doc, seq, "alice"),
        vec![p_updated("acme", "room", id, preview, deleted)],
    )
}

pub async fn cut_due_follows_deletes(env: Env) {
    let s = &env.store;
    let mut seqs = Seqs::default();
    let part = msgs_doc("acme", "room", 0);
    s.commit(&[message_change(
        &mut seqs, "acme", "room", "m1", "alice", 1, "one",
    )])
    .await
    .expect("post");
    assert_eq!(
        s.pending_cuts().await.expect("pending"),
        0,
        "a post is no cut"
    );
    s.commit(&[updated(&mut seqs, "m1", "", true)])
        .await
        .expect("delete");
    assert_eq!(s.pending_cuts().await.expect("pending"), 1);
    assert!(
        s.claim_cuts(LATER, "n1", 16)
            .await
            .expect("claim")
            .is_empty(),
        "not due yet"
    );
    let due = s.claim_cuts(NOW, "n1", 16).await.expect("claim");
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].doc, part);
    assert!(
        s.claim_cuts(NOW, "n2", 16).await.expect("claim").is_empty(),
        "leased to n1"
    );

    // A post and its edit in one batch note the part too (the edit is not folded away).
    let post = message_change(&mut seqs, "acme", "room", "m2", "alice", 2, "two");
    let edit = updated(&mut seqs, "m2", "two, edited", false);
    s.commit(&[post, edit]).await.expect("post and edit");
    // The cut claimed before that edit finishes: the row stays, due again.
    s.finish_cut(&due[0]).await.expect("finish");
    assert_eq!(s.pending_cuts().await.expect("pending"), 1);
    let again = s.claim_cuts(NOW, "n2", 16).await.expect("claim");
    assert_eq!(again.len(), 1);
    assert!(again[0].gen > due[0].gen);
    // A failed cut waits for its retry delay.
    s.retry_cut(&again[0], 60_000).await.expect("retry");
    assert!(s.claim_cuts(NOW, "n2", 16).await.expect("claim").is_empty());
    s.retry_cut(&again[0], -1).await.expect("retry now");
    let last = s.claim_cuts(NOW, "n2", 16).await.expect("claim");
    s.finish_cut(&last[0]).await.expect("finish");
    assert_eq!(s.pending_cuts().await.expect("pending"), 0);

    // The owner deletes the conversation: every live message row is marked deleted, which
    // notes its part.
    s.commit(&[message_change(
        &mut seqs, "acme", "room", "m3", "bob", 3, "three",
    )])
    .await
    .expect("post");
    let mut row = conv_row("acme", "room", "group", Some("room"), 0);
    row.lifecycle = "deleted".into();
    s.commit(&[with(
        change(&conv_doc("acme", "room"), 1, "alice"),
        vec![p_conv(row)],
    )])
    .await
    .expect("deletion");
    let page = s
        .messages(&tenant("acme"), &conv("room"), None, 10)
        .await
        .expect("page");
    assert!(!page.is_empty());
    assert!(
        page.iter().all(|m| m.deleted && m.preview.is_empty()),
        "{page:?}"
    );
    assert_eq!(s.claim_cuts(NOW, "n1", 16).await.expect("claim").len(), 1);
}
