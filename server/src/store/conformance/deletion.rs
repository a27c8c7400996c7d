//! Conversation deletion by its owner takes the messages of its own batch too (docs/POLICY.md,
//! "Delete"; docs/STORAGE.md, "Cutting a part's history"): a post and an edit committed in
//! the batch that deletes the conversation leave tombstone rows with no preview and no
//! search terms, and their part is noted for a cut, whatever their order in the batch. And
//! the notifier writes no text of a deleted message or conversation after its deletion.

use super::cuts::NOW;
use super::search::{found, post, room, terms};
use super::*;
use crate::store::notifications::{NewNotification, NotificationKind};
use crate::store::webhooks::NewDelivery;

pub(super) fn deletion(seqs: &mut Seqs) -> NewChange {
    let cd = conv_doc("acme", "room");
    let seq = seqs.next(&cd);
    let mut row = conv_row("acme", "room", "group", None, 100);
    row.lifecycle = "deleted".into();
    with(change(&cd, seq, "alice"), vec![p_conv(row)])
}

/// Commits alice's delete of message `id` of `acme/room`.
pub(super) async fn delete_message(s: &dyn Store, seqs: &mut Seqs, id: &str) {
    let doc = msgs_doc("acme", "room", 0);
    let seq = seqs.next(&doc);
    s.commit(&[with(
        change(&doc, seq, "alice"),
        vec![p_updated("acme", "room", id, "", true)],
    )])
    .await
    .expect("delete");
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

fn mention(who: &str, message: &str, text: &str) -> NewNotification {
    NewNotification {
        tenant: tenant("acme"),
        account: account(who),
        kind: NotificationKind::Mention,
        conv: conv("room"),
        source: message.to_owned(),
        message: Some(msg_id(message)),
        actor: account("alice"),
        preview: text.to_owned(),
        created_at: 2_000,
    }
}

fn push(who: &str, message: Option<&str>, payload: &str) -> NewDelivery {
    NewDelivery {
        tenant: "acme".into(),
        account: who.into(),
        payload: payload.into(),
        at: 10,
        coalesce: None,
        about: message.map(|m| (conv("room"), msg_id(m))),
    }
}

/// Every queued delivery's payload, claimed.
async fn pushed(s: &dyn Store) -> Vec<String> {
    let mut out: Vec<String> = s
        .claim_deliveries(10, 100, 100)
        .await
        .expect("claim")
        .into_iter()
        .map(|d| d.payload)
        .collect();
    out.sort();
    out
}

fn pair(message: &str, preview: &str) -> (String, String) {
    (message.to_owned(), preview.to_owned())
}

/// What the account's feed lists: (message, preview).
async fn feed(s: &dyn Store, who: &str) -> Vec<(String, String)> {
    s.notification_page(&tenant("acme"), &account(who), None, false, 50, &[])
        .await
        .expect("feed")
        .into_iter()
        .map(|n| {
            let m = n.message.map(|m| m.to_string()).unwrap_or_default();
            (m, n.preview)
        })
        .collect()
}

/// The notifier's writes that carry a message's text (feed rows, webhook deliveries) are
/// stored only while that message's row is not deleted: nothing of a message deleted
/// before, one of a conversation deleted before, nor one whose row is missing. The rest of
/// the same write is stored.
pub async fn nothing_notified_of_deleted_messages(env: Env) {
    let s = env.store.as_ref();
    let mut seqs = Seqs::default();
    let members = ["bob", "carol"].map(|a| p_member("acme", "room", a, "member", "active"));
    room(s, &mut seqs, members.to_vec()).await;
    s.commit(&[
        post(&mut seqs, "kept", 1001, "kept words"),
        post(&mut seqs, "gone", 1002, "gone words"),
    ])
    .await
    .expect("posts");
    delete_message(s, &mut seqs, "gone").await;

    let join = NewNotification {
        kind: NotificationKind::JoinRequest,
        source: "join/dave/7".into(),
        message: None,
        actor: account("dave"),
        preview: String::new(),
        ..mention("bob", "kept", "")
    };
    let new = s
        .insert_notifications(&[
            mention("bob", "gone", "gone words"),
            mention("bob", "kept", "kept words"),
            mention("bob", "ghost", "ghost words"),
            join,
        ])
        .await
        .expect("insert");
    let mut indices: Vec<usize> = new.iter().map(|(_, i)| *i).collect();
    indices.sort();
    assert_eq!(
        indices,
        [1, 3],
        "{}: only the live message and the request",
        env.name()
    );
    assert_eq!(
        feed(s, "bob").await,
        [pair("", ""), pair("kept", "kept words")],
        "{}",
        env.name()
    );
    s.enqueue_deliveries(&[
        push("bob", Some("gone"), "gone words"),
        push("bob", Some("kept"), "kept words"),
        push("bob", None, "no text"),
    ])
    .await
    .expect("enqueue");
    assert_eq!(pushed(s).await, ["kept words", "no text"], "{}", env.name());

    // A post committed in the batch that deletes the conversation, and one before it:
    // nothing of either is written after.
    s.commit(&[
        post(&mut seqs, "late", 1003, "late words"),
        deletion(&mut seqs),
    ])
    .await
    .expect("post and deletion");
    let new = s
        .insert_notifications(&[
            mention("carol", "late", "late words"),
            mention("carol", "kept", "kept words"),
        ])
        .await
        .expect("insert after the deletion");
    assert!(new.is_empty(), "{}: {new:?}", env.name());
    assert!(feed(s, "carol").await.is_empty(), "{}", env.name());
    assert_eq!(
        feed(s, "bob").await,
        [pair("", ""), pair("kept", "")],
        "{}: the deletion cleared what was written before",
        env.name()
    );
    s.enqueue_deliveries(&[
        push("carol", Some("late"), "late words"),
        push("carol", Some("kept"), "kept words"),
    ])
    .await
    .expect("enqueue after the deletion");
    assert!(pushed(s).await.is_empty(), "{}", env.name());
}
