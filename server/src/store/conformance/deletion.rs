//! Conversation deletion by its owner takes the messages of its own batch too (docs/POLICY.md,
//! "Delete"; docs/STORAGE.md, "Cutting a part's history"): a post and an edit committed in
//! the batch that deletes the conversation leave tombstone rows with no preview and no
//! search terms, and their part is noted for a cut, whatever their order in the batch.

use super::cuts::NOW;
use super::search::{found, post, room, terms};
use super::*;

fn deletion(seqs: &mut Seqs) -> NewChange {
    let cd = conv_doc("acme", "room");
    let seq = seqs.next(&cd);
    let mut row = conv_row("acme", "room", "group", None, 100);
    row.lifecycle = "deleted".into();
    with(change(&cd, seq, "alice"), vec![p_conv(row)])
}

async fn takes_its_batch(env: Env, deletion_first: bool) {
    let s = env.store.as_ref();
    let mut seqs = Seqs::default();
    room(s, &mut seqs, Vec::new()).await;
    s.commit(&[post(&mut seqs, "early", 1001, "early words")])
        .await
        .expect("post");
    assert_eq!(found(s, "alice", "early").await, ["early"]);

    // One batch: a new message, an edit of the earlier one and the deletion.
    let doc = msgs_doc("acme", "room", 0);
    let mut batch = vec![post(&mut seqs, "late", 1002, "late words")];
    let seq = seqs.next(&doc);
    batch.push(with(
        change(&doc, seq, "alice"),
        vec![
            p_updated("acme", "room", "early", "edited words", false),
            terms("early", "edited words"),
        ],
    ));
    if deletion_first {
        // The conversation's document is its own sequence: its change may come first.
        batch.insert(0, deletion(&mut seqs));
    } else {
        batch.push(deletion(&mut seqs));
    }
    s.commit(&batch).await.expect("batch with the deletion");

    let page = s
        .messages(&tenant("acme"), &conv("room"), None, 10)
        .await
        .expect("page");
    assert_eq!(page.len(), 2, "{page:?}");
    assert!(
        page.iter().all(|m| m.deleted && m.preview.is_empty()),
        "{}: a message of the deleting batch stays live: {page:?}",
        env.name()
    );
    for word in ["early", "late", "edited", "words"] {
        assert!(
            found(s, "alice", word).await.is_empty(),
            "{}: {word} is still searchable",
            env.name()
        );
    }
    let due = s.claim_cuts(NOW, "n1", 16).await.expect("claim");
    assert_eq!(due.len(), 1, "the part is due for a cut");
    assert_eq!(due[0].doc, doc);
}

pub async fn a_deletion_takes_the_messages_of_its_batch(env: Env) {
    takes_its_batch(env, false).await;
}

pub async fn a_deletion_first_in_its_batch_takes_the_rest(env: Env) {
    takes_its_batch(env, true).await;
}
