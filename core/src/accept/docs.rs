//! A document in an acceptor's memory: the accepted state, its seqs, and which accepted
//! changes are not yet durable.

use std::collections::{HashMap, VecDeque};

use automerge::{Change, ChangeHash};

use crate::ids::DocId;
use crate::validate::AcceptedDoc;

use super::AcceptError;

/// A document as storage holds it: the answer to `Need::Doc`.
#[derive(Debug, Clone, Default)]
pub struct StoredDoc<'a> {
    /// The compacted document, if a compaction made one.
    pub snapshot: Option<&'a [u8]>,
    /// The stored changes after the snapshot, in seq order.
    pub changes: Vec<&'a [u8]>,
    /// The seq of the newest stored change (0: none).
    pub last_seq: u64,
    /// The seq the snapshot folds the log up to (0: none).
    pub snapshot_seq: u64,
}

/// A loaded document as catch-up needs it.
#[derive(Debug, Clone, Copy)]
pub struct DocView<'a> {
    pub accepted: &'a AcceptedDoc,
    /// The seq of the newest accepted change (maybe not yet committed).
    pub last_seq: u64,
    pub snapshot_seq: u64,
}

#[derive(Debug)]
pub(super) struct Loaded {
    pub accepted: AcceptedDoc,
    /// The seq of the newest accepted change (validated, maybe not yet committed).
    last_seq: u64,
    pub snapshot_seq: u64,
    pub last_used: u64,
    /// Accepted changes not yet committed, by hash, and in seq order (committing pops
    /// them from the front).
    uncommitted: HashMap<ChangeHash, u64>,
    uncommitted_order: VecDeque<(u64, ChangeHash)>,
}

impl Loaded {
    pub fn from_storage(id: DocId, stored: StoredDoc<'_>, tick: u64) -> Result<Self, AcceptError> {
        let load = |source| AcceptError::Load {
            doc: id.clone(),
            source: Box::new(source),
        };
        let mut accepted = match stored.snapshot {
            Some(bytes) => AcceptedDoc::load(id.clone(), bytes),
            None => AcceptedDoc::new(id.clone()),
        }
        .map_err(load)?;
        let changes = stored
            .changes
            .iter()
            .map(|bytes| Change::try_from(*bytes))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AcceptError::StoredChange {
                doc: id.clone(),
                reason: e.to_string(),
            })?;
        // One Automerge call for the whole log: its fixed cost per call dominates.
        accepted.apply_all(changes).map_err(load)?;
        Ok(Loaded {
            accepted,
            last_seq: stored.last_seq,
            snapshot_seq: stored.snapshot_seq,
            last_used: tick,
            uncommitted: HashMap::new(),
            uncommitted_order: VecDeque::new(),
        })
    }

    /// Gives a newly accepted change the next seq; it is uncommitted until `committed`.
    pub fn accept(&mut self, hash: ChangeHash) -> u64 {
        self.last_seq += 1;
        self.uncommitted.insert(hash, self.last_seq);
        self.uncommitted_order.push_back((self.last_seq, hash));
        self.last_seq
    }

    /// Everything up to `seq` is durable.
    pub fn committed(&mut self, seq: u64) {
        while let Some(&(first, hash)) = self.uncommitted_order.front() {
            if first > seq {
                break;
            }
            self.uncommitted_order.pop_front();
            self.uncommitted.remove(&hash);
        }
    }

    pub fn all_committed(&self) -> bool {
        self.uncommitted_order.is_empty()
    }

    pub fn uncommitted_seq(&self, hash: &ChangeHash) -> Option<u64> {
        self.uncommitted.get(hash).copied()
    }

    pub fn view(&self) -> DocView<'_> {
        DocView {
            accepted: &self.accepted,
            last_seq: self.last_seq,
            snapshot_seq: self.snapshot_seq,
        }
    }
}
