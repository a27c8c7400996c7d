//! Cutting a document's history: its next generation (docs/SCHEMA.md, "Generations").
//!
//! Automerge keeps every change, so a deleted message's body and every version an edit
//! replaced stay in a document's history. A cut builds a fresh document from the current
//! state alone: the genesis, then one change by the document's cut actor that writes every
//! visible value, in key order, and the root key `generation` = n, with time 0 and the
//! message `generation/<n>`. What was deleted,
//! overwritten or lost a conflict is in no op of it. The result depends only on the document
//! id, the visible state and `n`, so two servers cutting the same state make the same bytes.

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, Automerge, ObjId, ObjType, ReadDoc, Value, ROOT};

use super::schema::{keys, TOMBSTONE_FIELDS};
use super::{derived_actor, genesis, DocError};
use crate::ids::DocId;

/// The fixed actor of the change that writes a generation's state. No account may write
/// with it (`forged_actor`).
pub fn cut_actor(doc: &DocId) -> ActorId {
    derived_actor("confab/cut/v1\0", doc)
}

/// The generation a document is of: the `generation` its cut wrote, 0 if never cut. O(1).
pub fn generation(doc: &Automerge) -> u64 {
    match doc.get(ROOT, keys::GENERATION).ok().flatten() {
        Some((Value::Scalar(s), _)) => s.as_i64().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
        _ => 0,
    }
}

/// The message of generation `n`'s cut change.
pub fn generation_message(n: u64) -> String {
    format!("generation/{n}")
}

/// Generation `generation` of `doc_id` built from `current`'s visible state (see the module
/// header). O(visible values); nothing of `current`'s history is read.
pub fn rebuild(
    doc_id: &DocId,
    current: &Automerge,
    generation: u64,
) -> Result<Automerge, DocError> {
    build(doc_id, current, generation, None)
}

/// How a part of a deleted conversation ends: every message a tombstone, deleted at `at` by
/// `by` (the owner who deleted the conversation) unless it already was one.
#[derive(Debug, Clone, Copy)]
pub struct Emptied<'a> {
    pub at: i64,
    pub by: &'a str,
}

/// As [`rebuild`], but every message of the part keeps only what a delete leaves
/// (docs/SCHEMA.md, "Tombstones"): the generation of a part of a conversation its owner
/// deleted, which holds no message content. O(visible values).
pub fn rebuild_emptied(
    doc_id: &DocId,
    current: &Automerge,
    generation: u64,
    emptied: Emptied<'_>,
) -> Result<Automerge, DocError> {
    build(doc_id, current, generation, Some(emptied))
}

fn build(
    doc_id: &DocId,
    current: &Automerge,
    generation: u64,
    emptied: Option<Emptied<'_>>,
) -> Result<Automerge, DocError> {
    let mut fresh = genesis(doc_id)?;
    fresh.set_actor(cut_actor(doc_id));
    let mut tx = fresh.transaction();
    copy_map(current, &ROOT, &mut tx, &ROOT, emptied)?;
    tx.put(
        ROOT,
        keys::GENERATION,
        i64::try_from(generation).unwrap_or(i64::MAX),
    )?;
    tx.commit_with(
        CommitOptions::default()
            .with_time(0)
            .with_message(generation_message(generation)),
    );
    Ok(fresh)
}

/// Writes each message of `from_obj` (the `messages` map, sharded: `messages/<shard>/<id>`)
/// into `to_obj` as a tombstone.
fn copy_tombstones<T: Transactable + ReadDoc>(
    from: &Automerge,
    from_obj: &ObjId,
    to: &mut T,
    to_obj: &ObjId,
    emptied: Emptied<'_>,
) -> Result<(), DocError> {
    for (shard_key, shard) in maps_of(from, from_obj) {
        let target_shard = match to.get(to_obj, shard_key.as_str())? {
            Some((Value::Object(ObjType::Map), existing)) => existing,
            _ => to.put_object(to_obj, shard_key.as_str(), ObjType::Map)?,
        };
        for (key, id) in maps_of(from, &shard) {
            let target = to.put_object(&target_shard, key.as_str(), ObjType::Map)?;
            let mut deleted = false;
            for field in TOMBSTONE_FIELDS {
                if let Some((Value::Scalar(v), _)) = from.get(&id, *field)? {
                    deleted |= *field == keys::DELETED_AT;
                    to.put(&target, *field, v.into_owned())?;
                }
            }
            if !deleted {
                to.put(&target, keys::DELETED_AT, emptied.at)?;
                to.put(&target, keys::DELETED_BY, emptied.by)?;
            }
        }
    }
    Ok(())
}

/// The map entries of `obj`, key and object.
fn maps_of(doc: &Automerge, obj: &ObjId) -> Vec<(String, ObjId)> {
    doc.map_range(obj, ..)
        .filter(|item| matches!(item.value, automerge::ValueRef::Object(ObjType::Map)))
        .map(|item| (item.key.to_string(), item.id()))
        .collect()
}

/// Writes every visible value of `from_obj` into `to_obj`, where it differs (the genesis
/// already holds the schema version and the top-level maps).
fn copy_map<T: Transactable + ReadDoc>(
    from: &Automerge,
    from_obj: &ObjId,
    to: &mut T,
    to_obj: &ObjId,
    emptied: Option<Emptied<'_>>,
) -> Result<(), DocError> {
    let entries: Vec<(String, Value<'static>, ObjId)> = from
        .map_range(from_obj, ..)
        .map(|item| {
            let (key, id) = (item.key.to_string(), item.id());
            (key, Value::from(item.value), id)
        })
        .collect();
    for (key, value, id) in entries {
        match value {
            Value::Object(ObjType::Map) => {
                let target = match to.get(to_obj, key.as_str())? {
                    Some((Value::Object(ObjType::Map), existing)) => existing,
                    _ => to.put_object(to_obj, key.as_str(), ObjType::Map)?,
                };
                match emptied {
                    Some(e) if *from_obj == ROOT && key == keys::MESSAGES => {
                        copy_tombstones(from, &id, to, &target, e)?
                    }
                    // Below the root only messages are emptied.
                    _ if *from_obj == ROOT => copy_map(from, &id, to, &target, emptied)?,
                    _ => copy_map(from, &id, to, &target, None)?,
                }
            }
            // The schema holds maps and scalars only; anything else was refused on the way in.
            Value::Object(_) => {}
            Value::Scalar(scalar) => {
                let same = matches!(
                    to.get(to_obj, key.as_str())?,
                    Some((Value::Scalar(held), _)) if *held == *scalar
                );
                if !same {
                    to.put(to_obj, key.as_str(), scalar.into_owned())?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::{read, write, IntentTag};
    use crate::ids::{AccountId, ConvId, MessageId, TenantId};
    use crate::model::message::NewMessage;

    const MARKER: &str = "cut-marker-7d0e";

    fn bucket() -> DocId {
        DocId::msgs(
            &TenantId::new("t").expect("tenant"),
            &ConvId::new("c1").expect("conv"),
            0,
        )
    }

    fn holds(bytes: &[u8], marker: &str) -> bool {
        bytes.windows(marker.len()).any(|w| w == marker.as_bytes())
    }

    /// A bucket with a deleted message (body, caption, three edits) and a kept one edited
    /// twice, written by alice's device.
    fn history() -> Automerge {
        let id = bucket();
        let alice = AccountId::new("alice").expect("account");
        let mut doc = genesis(&id)
            .expect("genesis")
            .with_actor(ActorId::from(&[7u8; 16][..]));
        let tag = IntentTag::new("i", "send");
        let gone = MessageId::new("gone").expect("id");
        let kept = MessageId::new("kept").expect("id");
        let mut m = NewMessage::text(gone.clone(), alice.clone(), format!("{MARKER}-0"), 1000);
        m.caption = Some(format!("{MARKER}-caption"));
        write::post_message(&mut doc, &tag, &m).expect("post");
        for n in 1..=3 {
            write::edit_body(&mut doc, &tag, 1000 + n, &gone, &format!("{MARKER}-{n}"))
                .expect("edit");
        }
        write::delete_message(&mut doc, &tag, 2000, &gone, &alice).expect("delete");
        let k = NewMessage::text(kept.clone(), alice.clone(), "old-kept-body", 1500);
        write::post_message(&mut doc, &tag, &k).expect("post");
        write::edit_body(&mut doc, &tag, 1600, &kept, "middle-kept-body").expect("edit");
        write::edit_body(&mut doc, &tag, 1700, &kept, "newest-kept-body").expect("edit");
        write::react(&mut doc, &tag, 1800, &kept, &alice, "👍", true).expect("react");
        doc
    }

    #[test]
    fn a_generation_keeps_the_state_and_nothing_of_the_history() {
        let old = history();
        assert!(holds(&old.save(), MARKER), "the history holds the marker");
        let new = rebuild(&bucket(), &old, 1).expect("rebuild");
        let saved = new.save();
        assert!(!holds(&saved, MARKER), "a redacted value survived the cut");
        assert!(!holds(&saved, "old-kept-body") && !holds(&saved, "middle-kept-body"));
        assert!(holds(&saved, "newest-kept-body"));
        assert_eq!(read::read_messages(&new), read::read_messages(&old));
        assert_eq!(new.get_changes(&[]).len(), 2, "the genesis and the cut");
        assert_eq!((generation(&old), generation(&new)), (0, 1));
        let reloaded = Automerge::load(&saved).expect("load");
        assert_eq!(read::read_messages(&reloaded), read::read_messages(&old));
    }

    #[test]
    fn an_emptied_generation_keeps_tombstones_only() {
        let old = history();
        let emptied = Emptied {
            at: 5000,
            by: "owner",
        };
        let new = rebuild_emptied(&bucket(), &old, 1, emptied).expect("rebuild");
        let saved = new.save();
        assert!(!holds(&saved, MARKER) && !holds(&saved, "newest-kept-body"));
        assert!(!holds(&saved, "👍"), "reactions go with the content");
        let messages = read::read_messages(&Automerge::load(&saved).expect("load"));
        assert_eq!(messages.len(), 2);
        for m in &messages {
            assert!(m.deleted_at.is_some() && m.body.is_empty() && m.reactions.is_empty());
        }
        let kept = messages
            .iter()
            .find(|m| m.id.as_str() == "kept")
            .expect("kept");
        assert_eq!(kept.deleted_at, Some(5000));
        assert_eq!(kept.deleted_by.as_ref().map(|a| a.as_str()), Some("owner"));
        let gone = messages
            .iter()
            .find(|m| m.id.as_str() == "gone")
            .expect("gone");
        assert_eq!(
            gone.deleted_at,
            Some(2000),
            "an earlier delete stays as it was"
        );
    }

    #[test]
    fn two_cuts_of_one_state_are_the_same_bytes() {
        let old = history();
        let a = rebuild(&bucket(), &old, 3).expect("rebuild").save();
        let b = rebuild(&bucket(), &old.clone(), 3).expect("rebuild").save();
        assert_eq!(a, b);
        let c = rebuild(&bucket(), &old, 4).expect("rebuild").save();
        assert_ne!(a, c, "the generation is part of the bytes");
    }

    #[test]
    fn a_device_writes_on_a_generation_as_on_any_document() {
        let old = history();
        let new = rebuild(&bucket(), &old, 1).expect("rebuild");
        let mut device = Automerge::load(&new.save())
            .expect("load")
            .with_actor(ActorId::from(&[7u8; 16][..]));
        let tag = IntentTag::new("j", "edit");
        let kept = MessageId::new("kept").expect("id");
        write::edit_body(&mut device, &tag, 3000, &kept, "after the cut").expect("edit");
        let change = device.get_last_local_change().expect("a change");
        assert_eq!(
            change.seq(),
            1,
            "the device's actor starts again in a generation"
        );
        let body = read::read_message(&device, &kept).map(|m| m.body);
        assert_eq!(body.as_deref(), Some("after the cut"));
    }
}
