//! A timeline's items (`TimelineItem`, in `order`), and a message bucket's part of them,
//! cached per bucket document and patched per change.
//!
//! A page asks for the timeline after every change, and reading a bucket out of Automerge
//! costs in proportion to its messages (docs/BENCHMARKS.md; a busy day's bucket holds
//! thousands). The cell keeps the bucket's items as of the heads of its `local` and
//! `server` documents and the number of known message seqs; any change to what an item
//! shows moves one of them, so the cache cannot go stale. When they moved, the cell asks
//! Automerge for the changes since its heads (a walk of the new changes, not of the bucket)
//! and re-reads only the messages their operations touch: a push costs what it changed,
//! whatever the bucket holds. It reads the whole bucket again only when that cannot be told:
//! on first use, when a document no longer holds the cached heads (a rebase dropped a
//! change), or when a change reshaped the message maps themselves. (`Arc`, not `Rc`: the
//! engine stays `Send`.)

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use automerge::legacy::{Key as OpKey, ObjectId, OpId, OpType};
use automerge::{Automerge, ChangeHash, Prop, ReadDoc, ScalarValue};
use serde::{Deserialize, Serialize};

use crate::doc::read;
use crate::doc::schema::keys::{MESSAGES, REACTIONS};
use crate::doc::schema::split_reaction_key;
use crate::ids::{Bucket, MessageId};

/// A message in a timeline view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineItem {
    pub message: crate::model::message::Message,
    /// Server order; `None` while pending.
    pub seq: Option<u64>,
    pub bucket: Bucket,
    pub pending: bool,
    /// A sealed message this device cannot read, and why in words (docs/E2EE.md, "Why a
    /// message is unreadable").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undecryptable: Option<String>,
    /// The same, as a case: whether it ever opens here, and what a transient one waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<super::unreadable::Unreadable>,
}

/// Timeline order: server order (bucket, seq); restored messages without a known seq by
/// time; pending ones last.
pub(super) fn order(item: &TimelineItem) -> (bool, Bucket, u64, i64, &MessageId) {
    (
        item.pending,
        item.bucket,
        item.seq.unwrap_or(0),
        item.message.created_at,
        &item.message.id,
    )
}

/// Ids of the messages in a bucket document, in no order.
pub(super) fn message_ids(doc: &Automerge) -> Vec<MessageId> {
    accepted_messages(doc).into_iter().collect()
}

/// Ids of the messages in a bucket document.
fn accepted_messages(doc: &Automerge) -> HashSet<MessageId> {
    let mut out = HashSet::new();
    let Some(messages) = read::get_map(doc, &automerge::ROOT, MESSAGES) else {
        return out;
    };
    for shard in automerge::ReadDoc::keys(doc, &messages) {
        if let Some(shard) = read::get_map(doc, &messages, &shard) {
            out.extend(
                automerge::ReadDoc::keys(doc, &shard).filter_map(|k| MessageId::new(k).ok()),
            );
        }
    }
    out
}

/// What the cached items were read from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    local: Vec<ChangeHash>,
    server: Vec<ChangeHash>,
    seqs: usize,
}

/// What a bucket's items are read from: its replicas and the seqs of its messages.
#[derive(Clone, Copy)]
struct Source<'a> {
    local: &'a Automerge,
    server: &'a Automerge,
    seqs: &'a HashMap<MessageId, u64>,
}

/// The cached items of one bucket document (in its `ClientDoc`), unsorted.
#[derive(Debug, Default)]
pub(super) struct TimelineCell {
    slot: RefCell<Option<(Key, Arc<Vec<TimelineItem>>)>>,
    /// Times the whole bucket was read out of Automerge (tests check a push reads none).
    reads: Cell<u64>,
    /// Single messages read again after a change touched them.
    messages: Cell<u64>,
}

impl TimelineCell {
    /// The bucket's items: cached, patched with what changed, or read whole.
    pub(super) fn items(
        &self,
        local: &Automerge,
        server: &Automerge,
        seqs: &HashMap<MessageId, u64>,
        bucket: Bucket,
    ) -> Arc<Vec<TimelineItem>> {
        let state = Source {
            local,
            server,
            seqs,
        };
        let key = Key {
            local: local.get_heads(),
            server: server.get_heads(),
            seqs: seqs.len(),
        };
        let cached = self.slot.borrow_mut().take();
        let items = match cached {
            Some((at, items)) if at == key => items,
            Some((at, items)) => match self.patched(state, bucket, &at, &key, &items) {
                Some(patched) => Arc::new(patched),
                None => Arc::new(self.read_source(state, bucket)),
            },
            None => Arc::new(self.read_source(state, bucket)),
        };
        *self.slot.borrow_mut() = Some((key, items.clone()));
        items
    }

    /// The bucket's items read whole out of Automerge.
    pub(super) fn read_all(
        &self,
        local: &Automerge,
        server: &Automerge,
        seqs: &HashMap<MessageId, u64>,
        bucket: Bucket,
    ) -> Vec<TimelineItem> {
        self.read_source(
            Source {
                local,
                server,
                seqs,
            },
            bucket,
        )
    }

    fn read_source(&self, state: Source<'_>, bucket: Bucket) -> Vec<TimelineItem> {
        self.reads.set(self.reads.get() + 1);
        let accepted = accepted_messages(state.server);
        read::read_messages(state.local)
            .into_iter()
            .map(|message| TimelineItem {
                undecryptable: None,
                unreadable: None,
                seq: state.seqs.get(&message.id).copied(),
                bucket,
                pending: !accepted.contains(&message.id),
                message,
            })
            .collect()
    }

    /// `items` (as of `old`) brought to `new`: the messages the new local changes touch read
    /// again, those the new server changes touch checked for acceptance, seqs looked up again
    /// if more are known. `None`: read the whole bucket.
    fn patched(
        &self,
        state: Source<'_>,
        bucket: Bucket,
        old: &Key,
        new: &Key,
        items: &[TimelineItem],
    ) -> Option<Vec<TimelineItem>> {
        let local = touched_since(state.local, &old.local)?;
        let server = touched_since(state.server, &old.server)?;
        let seqs_moved = old.seqs != new.seqs;
        let mut out = Vec::with_capacity(items.len() + local.len());
        for item in items {
            if local.contains(&item.message.id) {
                continue;
            }
            let mut item = item.clone();
            if server.contains(&item.message.id) {
                item.pending = !read::has_message(state.server, &item.message.id);
            }
            if seqs_moved {
                item.seq = state.seqs.get(&item.message.id).copied();
            }
            out.push(item);
        }
        for id in &local {
            self.messages.set(self.messages.get() + 1);
            // Gone (deleted from the map): it leaves the timeline, as a full read would drop it.
            let Some(message) = read::read_message(state.local, id) else {
                continue;
            };
            out.push(TimelineItem {
                undecryptable: None,
                unreadable: None,
                seq: state.seqs.get(id).copied(),
                bucket,
                pending: !read::has_message(state.server, id),
                message,
            });
        }
        Some(out)
    }

    pub(super) fn reads(&self) -> u64 {
        self.reads.get()
    }

    pub(super) fn messages_read(&self) -> u64 {
        self.messages.get()
    }
}

/// The messages whose item the changes `doc` holds beyond `since` may alter: every message
/// an operation of them writes in or under (`messages/<shard>/<id>/…`), and every message
/// a reaction key of them names. `None` when that cannot be told: `doc` lacks a change of
/// `since` (it was replaced by one without it), or an operation writes the message maps
/// themselves (not one message).
pub(super) fn touched_since(doc: &Automerge, since: &[ChangeHash]) -> Option<BTreeSet<MessageId>> {
    if since
        .iter()
        .any(|hash| doc.get_change_meta_by_hash(hash).is_none())
    {
        return None;
    }
    touched_by(doc, &doc.get_changes(since))
}

/// The messages `changes` (which `doc` holds) may alter, as `touched_since` tells.
pub(super) fn touched_by(
    doc: &Automerge,
    changes: &[automerge::Change],
) -> Option<BTreeSet<MessageId>> {
    touched_and_made(doc, changes, false, &mut ObjectPaths::default()).map(|(touched, _)| touched)
}

/// Paths of a document's maps at the top of its tree (its root's maps and theirs: the
/// message shards), kept across runs of changes (in the bucket's index state) so a message
/// that arrives needs no lookup of its shard. Sound while the document only grows: an
/// object's id names the same object in every document that holds the change that made it,
/// and the acceptor lets no change replace a shard map (docs/SCHEMA.md). Whoever keeps one
/// clears it whenever the document may have been replaced. Bounded by the shards.
#[derive(Debug, Default)]
pub(crate) struct ObjectPaths(HashMap<ObjectId, Vec<Prop>>);

impl ObjectPaths {
    /// Deepest path kept: `messages/<shard>`.
    const DEPTH: usize = 2;

    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.len()
    }

    fn get(&self, obj: &ObjectId) -> Option<&Vec<Prop>> {
        self.0.get(obj)
    }

    /// Keeps `path` of `obj` if it is near the top; says whether it did.
    fn keep(&mut self, obj: &ObjectId, path: &[Prop]) -> bool {
        let near_top = path.len() <= Self::DEPTH;
        if near_top {
            self.0.insert(obj.clone(), path.to_vec());
        }
        near_top
    }
}

/// A message's fields as a change wrote them: key and value.
pub(super) type Fields = Vec<(String, ScalarValue)>;

/// Fields of messages a run of changes made, as those changes wrote them (`touched_and_made`).
pub(super) type MadeFields = HashMap<MessageId, Fields>;

/// What `touched_by` tells and, with `made`, the fields of each message one of `changes`
/// made that no other of them touched, as that change wrote them: the acceptor lets no
/// change write a conflicting value under a message (docs/SCHEMA.md), so those are the
/// fields the document holds, and upkeep reads them instead of the document. Paths of
/// objects near the top are taken from and kept in `known`.
pub(super) fn touched_and_made(
    doc: &Automerge,
    changes: &[automerge::Change],
    made: bool,
    known: &mut ObjectPaths,
) -> Option<(BTreeSet<MessageId>, MadeFields)> {
    let mut made = made.then(Made::default);
    let mut touched = BTreeSet::new();
    // A message's operations mostly write in one object: its path is looked up once.
    let mut paths: HashMap<ObjectId, Vec<Prop>> = HashMap::new();
    for (at, change) in changes.iter().enumerate() {
        let change = change.decode();
        let first_op = change.start_op.get();
        for (i, op) in change.operations.into_iter().enumerate() {
            let mut path = match &op.obj {
                ObjectId::Root => Vec::new(),
                obj => match paths.get(obj).or_else(|| known.get(obj)) {
                    Some(path) => path.clone(),
                    None => {
                        let (id, _) = doc.import(&obj.to_string()).ok()?;
                        let parents = doc.parents(&id).ok()?.path();
                        let path: Vec<Prop> = parents.into_iter().map(|(_, prop)| prop).collect();
                        if !known.keep(obj, &path) {
                            paths.insert(obj.clone(), path.clone());
                        }
                        path
                    }
                },
            };
            path.push(match op.key {
                OpKey::Map(key) => Prop::Map(key.to_string()),
                // An element of a list inside a message: the message is named above it.
                OpKey::Seq(_) => Prop::Seq(0),
            });
            // An object made here (a new message's map, its lists) is where this path
            // leads: the operations in it need no lookup in the document, which costs
            // the most of all this for a message that just arrived.
            if matches!(op.action, OpType::Make(_)) {
                let made = ObjectId::Id(OpId(first_op + i as u64, change.actor_id.clone()));
                if !known.keep(&made, &path) {
                    paths.insert(made, path.clone());
                }
            }
            match (path.first(), path.get(1), path.get(2)) {
                (Some(Prop::Map(root)), _, Some(Prop::Map(id))) if root == MESSAGES => {
                    let Ok(id) = MessageId::new(id.as_str()) else {
                        continue;
                    };
                    if let Some(made) = &mut made {
                        made.note(at, &id, &path, op.action);
                    }
                    touched.insert(id);
                }
                (Some(Prop::Map(root)), Some(Prop::Map(key)), _) if root == REACTIONS => {
                    if let Some((id, _, _)) = split_reaction_key(key) {
                        touched.extend(MessageId::new(id).ok());
                    }
                }
                (Some(Prop::Map(root)), _, _) if root == MESSAGES || root == REACTIONS => {
                    return None;
                }
                // Anything else in a bucket (its schema stamp) shows in no item.
                _ => {}
            }
        }
    }
    Some((touched, made.map(Made::fields).unwrap_or_default()))
}

/// Per message the changes wrote in: the change that made it and its fields so far, or
/// `None` once anything but that change's plain writes of its fields touched it.
#[derive(Default)]
struct Made(HashMap<MessageId, Option<(usize, Fields)>>);

impl Made {
    /// Op `action` of change `at` writes at `path` (`messages/<shard>/<id>/…`).
    fn note(&mut self, at: usize, id: &MessageId, path: &[Prop], action: OpType) {
        let entry = self.0.get(id);
        let next = match (entry, path.get(3), action) {
            // The message's map, made by this change.
            (None, None, OpType::Make(automerge::ObjType::Map)) if path.len() == 3 => {
                Some((at, Vec::new()))
            }
            // One of its fields, written by the change that made it.
            (Some(Some((by, _))), Some(Prop::Map(key)), action) if *by == at && path.len() == 4 => {
                let Some(Some((_, fields))) = self.0.get_mut(id) else {
                    return;
                };
                fields.retain(|(k, _)| k != key);
                match action {
                    OpType::Put(value) => fields.push((key.clone(), value)),
                    OpType::Delete => {}
                    _ => {
                        self.0.insert(id.clone(), None);
                    }
                }
                return;
            }
            _ => None,
        };
        self.0.insert(id.clone(), next);
    }

    fn fields(self) -> MadeFields {
        self.0
            .into_iter()
            .filter_map(|(id, made)| Some((id, made?.1)))
            .collect()
    }
}

#[cfg(test)]
mod tests;
