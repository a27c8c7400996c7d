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
    /// A `conv` document's policy version: the seq of its last change that moved the
    /// policy (0: none).
    pub policy_seq: u64,
}

/// What another node committed to a document after what this acceptor holds: the log
/// read after [`super::Acceptor::known_seq`] (the answer to a notification), maybe only
/// its oldest part (`changes` end before `last_seq`).
#[derive(Debug, Clone, Default)]
pub struct Tail<'a> {
    /// Changes in seq order, each with its seq.
    pub changes: Vec<(u64, &'a [u8])>,
    pub last_seq: u64,
    pub policy_seq: u64,
    /// Changes up to here were folded into a snapshot.
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
    /// them from the front; a rewind drops them all).
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

    /// Forgets the accepted changes not yet committed (another node committed first): the
    /// seqs go back to the last committed one. `false` when some of them were already
    /// applied to the Automerge document, which cannot take them back: reload it then.
    pub fn rewind(&mut self) -> bool {
        let dropped = self.uncommitted_order.len();
        if dropped == 0 {
            return true;
        }
        let tail_staged = self
            .accepted
            .staged_tail(dropped)
            .is_some_and(|hashes| hashes.eq(self.uncommitted_order.iter().map(|(_, h)| *h)));
        if !tail_staged {
            return false;
        }
        self.accepted.unstage_tail(dropped);
        self.last_seq -= dropped as u64;
        self.uncommitted.clear();
        self.uncommitted_order.clear();
        true
    }

    /// Takes another node's committed changes after `last_seq` (a prefix of what the log
    /// holds when the read was limited). `Ok(false)` when they do not continue what is
    /// held (a gap, or folded into a snapshot): reload the document.
    ///
    /// With `paths`, the changes are applied one at a time and the paths each writes are
    /// collected (an empty path when they cannot be resolved): the conversation document,
    /// whose cached typed form is refreshed by them.
    pub fn absorb(
        &mut self,
        tail: &Tail<'_>,
        paths: Option<&mut Vec<Vec<String>>>,
    ) -> Result<bool, AcceptError> {
        if !self.all_committed() {
            return Ok(false);
        }
        let fresh: Vec<(u64, &[u8])> = tail
            .changes
            .iter()
            .copied()
            .filter(|(seq, _)| *seq > self.last_seq)
            .collect();
        let continues = fresh
            .iter()
            .enumerate()
            .all(|(i, (seq, _))| *seq == self.last_seq + 1 + i as u64);
        let missing = fresh.is_empty() && tail.last_seq > self.last_seq;
        if tail.snapshot_seq > self.last_seq || !continues || missing {
            return Ok(false);
        }
        let Some(&(newest, _)) = fresh.last() else {
            return Ok(true);
        };
        let changes = fresh
            .iter()
            .map(|(_, bytes)| Change::try_from(*bytes))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AcceptError::StoredChange {
                doc: self.accepted.id().clone(),
                reason: e.to_string(),
            })?;
        let id = self.accepted.id().clone();
        let failed = |e| AcceptError::Load {
            doc: id.clone(),
            source: Box::new(e),
        };
        match paths {
            Some(paths) => {
                for change in changes {
                    match crate::validate::written_paths(&self.accepted, &change) {
                        Some(written) => paths.extend(written),
                        None => paths.push(Vec::new()),
                    }
                    self.accepted.apply(change).map_err(failed)?;
                }
            }
            // One Automerge call for all: its fixed cost per call dominates.
            None => self.accepted.apply_all(changes).map_err(failed)?,
        }
        self.last_seq = newest;
        Ok(true)
    }

    /// The seq of the newest change held (accepted here or absorbed).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
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
