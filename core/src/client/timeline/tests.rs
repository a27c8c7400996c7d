//! Which messages a run of changes touches, and the fields of the messages it made as read
//! from those changes (`touched_and_made`): the same fields a read of the document gives,
//! and none for a message another change of the run also wrote.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use automerge::{ActorId, Automerge, Change};

use super::{touched_and_made, touched_by, ObjectPaths};
use crate::client::apply;
use crate::client::Intent;
use crate::doc::schema::MESSAGE_SHARDS;
use crate::doc::{genesis, read, IntentTag};
use crate::ids::{AccountId, Bucket, ConvId, DocId, MessageId, TenantId};
use crate::model::message::{MessageKind, NewMessage};

struct Bucket1 {
    doc: Automerge,
    id: DocId,
    conv: ConvId,
    me: AccountId,
    n: usize,
}

impl Bucket1 {
    fn new() -> Self {
        let tenant = TenantId::new("acme").unwrap();
        let conv = ConvId::new("g").unwrap();
        let id = DocId::msgs(&tenant, &conv, 1);
        let doc = genesis(&id)
            .unwrap()
            .with_actor(ActorId::from(&[7u8; 16][..]));
        Bucket1 {
            doc,
            id,
            conv,
            me: AccountId::new("ann").unwrap(),
            n: 0,
        }
    }

    /// Writes `intent` as the engine does; the change it made.
    fn write(&mut self, intent: Intent) -> Change {
        self.n += 1;
        let tag = IntentTag::new(self.n.to_string(), intent.kind());
        let at = 1_700_000_000_000 + self.n as i64;
        apply::write_to(&mut self.doc, &self.id, &intent, &self.me, &tag, at, 1).unwrap();
        self.doc.get_last_local_change().unwrap().clone()
    }

    fn send(&mut self, message: NewMessage) -> Change {
        let conv = self.conv.clone();
        self.write(Intent::Send { conv, message })
    }

    fn text(&self, n: usize, body: &str) -> NewMessage {
        NewMessage::text(id(n), self.me.clone(), body, 1_700_000_000_000 + n as i64)
    }

    fn bucket(&self) -> Bucket {
        Bucket::first(1)
    }
}

fn id(n: usize) -> MessageId {
    MessageId::new(format!("m{n:04}")).unwrap()
}

/// Every message of `made` reads from the changes as from the document.
fn assert_made_reads_as_the_document(b: &Bucket1, changes: &[Change]) -> BTreeSet<MessageId> {
    let (touched, made) =
        touched_and_made(&b.doc, changes, true, &mut ObjectPaths::default()).unwrap();
    assert_eq!(Some(&touched), touched_by(&b.doc, changes).as_ref());
    for (message, fields) in &made {
        assert!(touched.contains(message));
        let from_changes = read::message_from_fields(
            fields.iter().map(|(k, v)| (k, read::scalar_ref(v))),
            message.clone(),
        );
        assert_eq!(
            from_changes,
            read::read_message_fields(&b.doc, message),
            "{message}"
        );
        assert!(from_changes.is_some());
    }
    made.into_keys().collect()
}

#[test]
fn a_message_made_by_the_run_reads_from_its_change_as_from_the_document() {
    let mut b = Bucket1::new();
    let mut changes = Vec::new();
    changes.push(b.send(b.text(1, "plain words")));
    let mut reply = b.text(2, "a reply with a mention");
    reply.reply_to = Some(id(1));
    reply.mentions = Some("[\"bob\"]".into());
    changes.push(b.send(reply));
    let mut image = b.text(3, "");
    image.kind = MessageKind::Image;
    image.caption = Some("the caption".into());
    image.attachments = Some("[]".into());
    changes.push(b.send(image));
    // Each alone, then the run of all three.
    for c in &changes {
        assert_eq!(
            assert_made_reads_as_the_document(&b, std::slice::from_ref(c)).len(),
            1
        );
    }
    assert_eq!(
        assert_made_reads_as_the_document(&b, &changes),
        [id(1), id(2), id(3)].into_iter().collect()
    );
}

#[test]
fn a_message_another_change_of_the_run_wrote_is_read_from_the_document() {
    let mut b = Bucket1::new();
    let (conv, bucket) = (b.conv.clone(), b.bucket());
    let mut changes = vec![
        b.send(b.text(1, "to be edited")),
        b.send(b.text(2, "to be deleted")),
        b.send(b.text(3, "to be reacted to")),
        b.send(b.text(4, "kept as sent")),
    ];
    changes.push(b.write(Intent::Edit {
        conv: conv.clone(),
        message: id(1),
        bucket,
        body: "edited".into(),
    }));
    changes.push(b.write(Intent::Delete {
        conv: conv.clone(),
        message: id(2),
        bucket,
    }));
    changes.push(b.write(Intent::React {
        conv,
        message: id(3),
        bucket,
        emoji: "👍".into(),
        on: true,
    }));
    // A reaction is not a field of the message: its fields are still the change's.
    assert_eq!(
        assert_made_reads_as_the_document(&b, &changes),
        [id(3), id(4)].into_iter().collect()
    );
    // The edit and the delete alone made nothing.
    assert!(assert_made_reads_as_the_document(&b, &changes[4..6]).is_empty());
}

#[test]
fn runs_in_a_row_that_keep_the_shards_paths_read_what_fresh_runs_read() {
    let mut b = Bucket1::new();
    let mut known = ObjectPaths::default();
    for n in 1..=200 {
        let change = b.send(b.text(n, "words in a row"));
        let changes = std::slice::from_ref(&change);
        let kept = touched_and_made(&b.doc, changes, true, &mut known).unwrap();
        let fresh = touched_and_made(&b.doc, changes, true, &mut ObjectPaths::default()).unwrap();
        assert_eq!(kept, fresh);
        assert_eq!(kept.0, [id(n)].into_iter().collect());
        assert!(kept.1.contains_key(&id(n)));
    }
    // Only maps near the top are kept: at most the shards and the root's maps, never one
    // per message.
    assert!(known.len() > 1);
    assert!(
        known.len() <= usize::from(MESSAGE_SHARDS) + 2,
        "{}",
        known.len()
    );
}

#[test]
fn a_kept_path_is_taken_as_the_objects_path() {
    // Why whoever keeps paths clears them when the document may have been replaced: an id
    // kept for another document's object leads the run astray.
    let mut b = Bucket1::new();
    let first = b.send(b.text(1, "first"));
    let mut known = ObjectPaths::default();
    touched_and_made(&b.doc, std::slice::from_ref(&first), true, &mut known).unwrap();
    let change = b.send(b.text(2, "in the same shard or another"));
    let (touched, _) =
        touched_and_made(&b.doc, std::slice::from_ref(&change), true, &mut known).unwrap();
    assert!(touched.contains(&id(2)));
    let mut wrong = ObjectPaths::default();
    for (obj, _) in known.0.iter() {
        wrong
            .0
            .insert(obj.clone(), vec![automerge::Prop::Map("elsewhere".into())]);
    }
    let (touched, made) =
        touched_and_made(&b.doc, std::slice::from_ref(&change), true, &mut wrong).unwrap();
    let fresh = touched_and_made(
        &b.doc,
        std::slice::from_ref(&change),
        true,
        &mut ObjectPaths::default(),
    )
    .unwrap();
    assert!(fresh.0.contains(&id(2)));
    assert!(!known.0.is_empty());
    assert!(touched.is_empty() && made.is_empty(), "{touched:?}");
}
