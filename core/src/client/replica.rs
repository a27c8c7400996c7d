//! One document as this client holds it (`ClientDoc`: the accepted and the local replica,
//! the cursor, the subscription's state, the cached views), and reads across the held
//! documents that several parts of the engine share. The engine owns the documents
//! (`ClientEngine::docs`); nothing here changes which are held.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use automerge::{Automerge, Change, ChangeHash};

use serde_bytes::ByteBuf;

use super::cache::{ReadStats, ViewCell};
use super::records::{cbor, SnapshotRecord};
use super::timeline::{TimelineCell, TimelineItem};
use crate::ids::{Bucket, ConvId, DocId, DocTarget, MessageId, TenantId};

/// One document as this client holds it.
pub(super) struct ClientDoc {
    /// Accepted changes only.
    pub(super) server: Automerge,
    /// Accepted plus this device's pending changes: what the user sees.
    pub(super) local: Automerge,
    /// Every change up to this seq is in `server` and stored: catch-up resumes after it.
    pub(super) cursor: u64,
    /// Server order of messages created in this document.
    pub(super) message_seq: HashMap<MessageId, u64>,
    pub(super) changes_since_snapshot: usize,
    pub(super) revoked: Option<String>,
    /// This device's changes acked with a seq beyond `cursor`: in `server` and stored as ack
    /// records until that seq arrives in order.
    pub(super) acked: HashMap<ChangeHash, u64>,
    /// Subscribed, `synced` not yet received (the store fold waits for it).
    pub(super) catching_up: bool,
    /// Not subscribed yet: the conversation's creation still waits in the outbox, and the
    /// server refuses to subscribe to a conversation that does not exist.
    pub(super) deferred: bool,
    /// The server refused to subscribe it (`forbidden`), as of its conversation's feed entry
    /// (its seq, `None` without one): a newer entry that says active subscribes it again
    /// (docs/FEATURES.md, "The membership feed").
    pub(super) refused: Option<Option<u64>>,
    /// What the policy reads of a conversation document, as of `local`'s heads.
    pub(super) view: ViewCell,
    /// A message bucket's timeline items, as of its heads.
    pub(super) timeline: TimelineCell,
    /// What this device read of a message bucket's sealed messages.
    pub(super) opened: super::sealed::OpenedBook,
    /// A message bucket's sealed messages waiting to be opened, in order with the parts
    /// before it.
    pub(super) to_open: super::opening::ToOpen,
    /// A message bucket's search index entries, as stored.
    pub(super) search: super::search::index::BucketIndex,
}

impl ClientDoc {
    /// What the store keeps of this document's snapshot: `data` (the saved document), with
    /// the cursor and the messages' server order it stands at.
    pub(super) fn snapshot_record(&self, data: Vec<u8>) -> Vec<u8> {
        cbor(&SnapshotRecord {
            seq: self.cursor,
            data: ByteBuf::from(data),
            message_seq: self.message_seq.clone(),
        })
    }

    pub(super) fn new(server: Automerge, local: Automerge, cursor: u64) -> Self {
        ClientDoc {
            server,
            local,
            cursor,
            message_seq: HashMap::new(),
            changes_since_snapshot: 0,
            revoked: None,
            acked: HashMap::new(),
            catching_up: false,
            deferred: false,
            refused: None,
            view: ViewCell::default(),
            timeline: TimelineCell::default(),
            opened: HashMap::new(),
            to_open: Default::default(),
            search: Default::default(),
        }
    }

    /// This message bucket's timeline items (cached, unsorted).
    pub(super) fn timeline_items(&self, bucket: Bucket) -> Arc<Vec<TimelineItem>> {
        self.timeline
            .items(&self.local, &self.server, &self.message_seq, bucket)
    }

    /// This message bucket's items read whole, bypassing the cache.
    pub(super) fn timeline_read_whole(&self, bucket: Bucket) -> Vec<TimelineItem> {
        TimelineCell::default().read_all(&self.local, &self.server, &self.message_seq, bucket)
    }
}

/// The documents this client holds, by id.
pub(super) type Docs = BTreeMap<DocId, ClientDoc>;

/// The held message buckets of `conv`, in id order (a key range: the cost is this
/// conversation's parts, not every held document).
pub(super) fn buckets_of<'a>(
    docs: &'a Docs,
    tenant: &TenantId,
    conv: &'a ConvId,
) -> impl DoubleEndedIterator<Item = (Bucket, &'a ClientDoc)> + 'a {
    docs.range(
        DocId::msgs(tenant, conv, Bucket::new(i64::MIN, 0))
            ..=DocId::msgs(tenant, conv, Bucket::new(i64::MAX, u32::MAX)),
    )
    .filter_map(move |(id, state)| match id.target() {
        DocTarget::Msgs(c, bucket) if c == conv => Some((*bucket, state)),
        _ => None,
    })
}

/// How often the held documents' views were read (see [`ReadStats`]).
pub(super) fn read_stats(docs: &Docs) -> ReadStats {
    let mut total = ReadStats::default();
    for state in docs.values() {
        let s = state.view.stats();
        total.views += s.views;
        total.members += s.members;
        total.full += s.full;
    }
    total
}

/// Ids of the messages a change creates (`messages/<shard>/<id>` maps).
pub(super) fn created_messages(change: &Change) -> Vec<MessageId> {
    use automerge::legacy::{Key, ObjectId, OpType};
    change
        .decode()
        .operations
        .iter()
        .filter_map(|op| match (&op.obj, &op.key, &op.action) {
            (ObjectId::Id(_), Key::Map(key), OpType::Make(automerge::ObjType::Map)) => {
                MessageId::new(key.as_str()).ok()
            }
            _ => None,
        })
        .collect()
}

/// Whether `change` writes a message's sealed content (a new message, an edit) or removes
/// it (a delete).
pub(super) fn writes_sealed(change: &Change) -> bool {
    use automerge::legacy::{Key, OpType};
    change.decode().operations.iter().any(|op| {
        matches!(
            (&op.key, &op.action),
            (Key::Map(key), OpType::Put(_) | OpType::Delete) if key.as_str() == crate::doc::schema::keys::SEALED
        )
    })
}
