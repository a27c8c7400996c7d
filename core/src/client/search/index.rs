//! The device's index, kept up (docs/SEARCH.md, "On the device"): at a tick the engine
//! compares each bucket named due (`IndexDue`) with the accepted heads and opened count it
//! last indexed, and re-reads only the messages the new changes touch (`timeline::touched_since`;
//! one they made, from the change itself: `timeline::touched_and_made`) or that were opened
//! since. A message's entry is its record (`sx/m/<doc>/<message>`: the
//! text and what filters read) and one posting per distinct term
//! (`sx/p/<term>/<when>/<bucket>/<message>`, with the filters' fields, newest first in key
//! order; `<bucket>` is a number from the dictionary, `Dictionary`); an edit rewrites the
//! terms that changed, a tombstone or expiry removes all. So upkeep costs what the message
//! holds, never what the history or the number of held buckets does.

use std::collections::{BTreeSet, HashMap};

use automerge::{Change, ChangeHash};
use serde::{Deserialize, Serialize};

use super::super::engine::{ClientEngine, Output};
use super::super::records::{
    cbor, key_index_heads, key_posting, key_search_record, key_term, search_records_prefix, uncbor,
};
use super::super::replica::ClientDoc;
use super::super::store::StoreOp;
use super::super::timeline::{
    message_ids, touched_and_made, touched_since, MadeFields, ObjectPaths,
};
use super::dict::{place, Dictionary};
use crate::doc::read;
use crate::ids::{AccountId, DocId, DocTarget, MessageId};
use crate::model::message::MessageKind;
use crate::search::terms;

/// What the index holds of one message: its searchable text and the fields filters read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IndexRecord {
    #[serde(rename = "t")]
    pub(crate) created_at: i64,
    #[serde(rename = "a")]
    pub(crate) author: AccountId,
    #[serde(rename = "k")]
    pub(crate) kind: MessageKind,
    #[serde(rename = "b")]
    pub(crate) body: String,
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub(crate) caption: Option<String>,
}

impl IndexRecord {
    /// Its distinct terms (the server indexes the same: `search::index_text`).
    pub(crate) fn terms(&self) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = terms(&self.body).into_iter().collect();
        if let Some(c) = &self.caption {
            out.extend(terms(c));
        }
        out
    }

    pub(crate) fn posting(&self) -> Posting {
        Posting(self.kind, self.author.clone())
    }
}

/// A posting's value: what the filters read besides the time (in its key), so a query
/// reads records only for the page it shows. A CBOR array: kind, author.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Posting(pub(crate) MessageKind, pub(crate) AccountId);

/// What a held bucket's index entries are as of: accepted heads and opened messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IndexedAt {
    heads: Vec<[u8; 32]>,
    opened: usize,
}

impl IndexedAt {
    fn of(heads: &[ChangeHash], opened: usize) -> Self {
        IndexedAt {
            heads: heads.iter().map(|h| h.0).collect(),
            opened,
        }
    }
    /// Whether it is as of `heads` and `opened` (without building one to compare).
    fn is(&self, heads: &[ChangeHash], opened: usize) -> bool {
        self.opened == opened
            && self.heads.len() == heads.len()
            && self.heads.iter().zip(heads).all(|(a, b)| *a == b.0)
    }

    fn heads(&self) -> Vec<ChangeHash> {
        self.heads.iter().map(|h| ChangeHash(*h)).collect()
    }
}

/// A held bucket's index state (in its `ClientDoc`).
#[derive(Debug, Default)]
pub(crate) struct BucketIndex {
    /// The records stored for its messages.
    pub(crate) records: HashMap<MessageId, IndexRecord>,
    pub(crate) at: Option<IndexedAt>,
    /// Changes the bucket accepted in a row since it was last indexed, as they came:
    /// upkeep reads their messages without asking the document for its changes since
    /// `at` (which rebuilds them from its whole history).
    arrived: Option<Arrived>,
    /// Paths of the bucket's shard maps, kept while its index follows arrived changes in a
    /// row (cleared whenever it does not: the document may have been replaced).
    paths: ObjectPaths,
}

/// Held buckets whose index may be behind: upkeep looks at these only, so it costs what
/// arrived, not how many buckets the device holds. Whatever moves a bucket's accepted state
/// or opened messages names it (an arrival, a message opened, a snapshot or a new
/// generation, a bucket loaded or made, a catch-up's end); what moves many at once (a
/// disconnect, the dictionary turning ready, the start) names every held bucket. Debug
/// builds check after each upkeep that no held bucket was missed.
#[derive(Debug)]
pub(crate) struct IndexDue {
    every: bool,
    docs: BTreeSet<DocId>,
}

impl Default for IndexDue {
    fn default() -> Self {
        IndexDue {
            every: true,
            docs: BTreeSet::new(),
        }
    }
}

impl IndexDue {
    pub(crate) fn doc(&mut self, id: &DocId) {
        if !self.every {
            self.docs.insert(id.clone());
        }
    }

    pub(crate) fn every(&mut self) {
        self.every = true;
        self.docs.clear();
    }

    fn take(&mut self) -> (bool, BTreeSet<DocId>) {
        let every = std::mem::take(&mut self.every);
        (every, std::mem::take(&mut self.docs))
    }
}

/// Accepted changes that took a bucket from heads `since` to `heads`.
#[derive(Debug)]
struct Arrived {
    since: Vec<ChangeHash>,
    heads: Vec<ChangeHash>,
    changes: Vec<Change>,
}

/// Changes kept for upkeep at most; more (no upkeep ran meanwhile) and it asks the document.
const ARRIVED_MAX: usize = 1024;

impl BucketIndex {
    /// `changes` were accepted, taking the bucket from heads `before` to `after`.
    pub(crate) fn arrived(
        &mut self,
        before: &[ChangeHash],
        after: Vec<ChangeHash>,
        changes: &[Change],
    ) {
        match &mut self.arrived {
            Some(a) if a.heads == before && a.changes.len() + changes.len() <= ARRIVED_MAX => {
                a.changes.extend(changes.iter().cloned());
                a.heads = after;
            }
            _ if changes.len() <= ARRIVED_MAX => {
                self.arrived = Some(Arrived {
                    since: before.to_vec(),
                    heads: after,
                    changes: changes.to_vec(),
                });
            }
            _ => self.arrived = None,
        }
    }

    /// Back from the store: the records under `sx/m/<doc>/` and `sx/h/<doc>` (an entry that
    /// does not read back is indexed again).
    pub(crate) fn restored(doc: &DocId, entries: Vec<(String, Vec<u8>)>) -> Self {
        let prefix = search_records_prefix(doc);
        let heads = key_index_heads(doc);
        let mut out = BucketIndex::default();
        for (key, value) in entries {
            if key == heads {
                out.at = uncbor(&value).ok();
            } else if let Some(id) = key.strip_prefix(&prefix) {
                if let (Ok(id), Ok(r)) = (MessageId::new(id), uncbor::<IndexRecord>(&value)) {
                    out.records.insert(id, r);
                }
            }
        }
        out
    }
}

/// Whether held bucket `id`'s index is not as of its accepted heads and opened messages
/// (one still catching up counts only with `catching_up`).
fn is_stale(id: &DocId, state: &ClientDoc, catching_up: bool) -> bool {
    matches!(id.target(), DocTarget::Msgs(..))
        && (catching_up || !state.catching_up)
        && !state
            .search
            .at
            .as_ref()
            .is_some_and(|at| at.is(&state.server.get_heads(), state.opened.len()))
}

/// The writes that take message `id` of `doc` from entry `old` to `new`.
pub(crate) fn entry_ops(
    dict: &mut Dictionary,
    doc: &DocId,
    id: &MessageId,
    old: Option<&IndexRecord>,
    new: Option<&IndexRecord>,
    ops: &mut Vec<StoreOp>,
) {
    let old_terms = old.map(IndexRecord::terms).unwrap_or_default();
    let new_terms = new.map(IndexRecord::terms).unwrap_or_default();
    let number = match (old, new) {
        (_, Some(_)) => dict.number_for(doc, ops),
        // Nothing was indexed under a bucket without a number.
        (Some(_), None) => match dict.number(doc) {
            Some(n) => n,
            None => return ops.push(StoreOp::Delete(key_search_record(doc, id))),
        },
        (None, None) => return,
    };
    let old_place = old.map(|o| place(o.created_at, number, id));
    let new_place = new.map(|n| place(n.created_at, number, id));
    // The filters' fields and the time never change once written; only new terms need a
    // posting then.
    let same = old.is_some_and(|o| new.is_some_and(|n| o.posting() == n.posting()))
        && old_place == new_place;
    if let Some(at) = &old_place {
        for t in &old_terms {
            if !(same && new_terms.contains(t)) {
                let key = key_posting(t, at);
                if !new_terms.contains(t) {
                    dict.lost.entry(t.clone()).or_default().push(key.clone());
                }
                ops.push(StoreOp::Delete(key));
            }
        }
    }
    match (new, &new_place) {
        (Some(new), Some(at)) => {
            dict.version(ops);
            let value = cbor(&new.posting());
            for t in &new_terms {
                if !(same && old_terms.contains(t)) {
                    ops.push(StoreOp::Put(key_posting(t, at), value.clone()));
                }
                if dict.new_term(t) {
                    ops.push(StoreOp::Put(key_term(t), Vec::new()));
                }
            }
            ops.push(StoreOp::Put(key_search_record(doc, id), cbor(new)));
        }
        _ => ops.push(StoreOp::Delete(key_search_record(doc, id))),
    }
}

impl ClientEngine {
    /// Brings the index up to every held bucket's accepted state, caught up or not (before
    /// a search reads the store).
    pub(crate) fn sync_search(&mut self) {
        self.index_buckets(true);
    }

    /// Index upkeep at a `tick`: every held bucket that is not catching up. It runs after
    /// the frames that brought the messages were handled and shown, never in their `drain`
    /// (docs/SEARCH.md, "On the device").
    pub(crate) fn keep_index_up(&mut self) {
        self.index_buckets(false);
    }

    /// Whether `keep_index_up` has work: the engine's wakeup is due at once meanwhile.
    pub(crate) fn index_behind(&self) -> bool {
        if !self.dict.ready {
            return false;
        }
        if self.index_due.every {
            return self.stale_buckets(false).next().is_some();
        }
        self.index_due.docs.iter().any(|id| self.due_is_stale(id))
    }

    /// Whether bucket `id`, named due, is held and behind (and not catching up).
    fn due_is_stale(&self, id: &DocId) -> bool {
        self.docs.get(id).is_some_and(|s| is_stale(id, s, false))
    }

    /// Held buckets whose index is not as of their accepted heads and opened messages;
    /// those still catching up only with `catching_up`.
    fn stale_buckets(&self, catching_up: bool) -> impl Iterator<Item = &DocId> {
        self.docs
            .iter()
            .filter(move |(id, s)| is_stale(id, s, catching_up))
            .map(|(id, _)| id)
    }

    fn index_buckets(&mut self, catching_up: bool) {
        // Bucket numbers are given only once the stored ones are known.
        if !self.dict.ready {
            return;
        }
        let (every, due) = self.index_due.take();
        let stale: Vec<DocId> = if every || catching_up {
            self.stale_buckets(catching_up).cloned().collect()
        } else {
            // One still catching up is named again when it is caught up.
            due.into_iter().filter(|id| self.due_is_stale(id)).collect()
        };
        if !stale.is_empty() {
            let mut ops = Vec::new();
            for id in stale {
                self.sync_bucket(&id, &mut ops);
            }
            // A write of its own: a crash before it leaves the stored heads behind the
            // bucket's, and the bucket is indexed again after the restart.
            self.out.push(Output::Persist(ops));
            self.check_lost_terms();
        }
        debug_assert!(
            self.stale_buckets(catching_up).next().is_none(),
            "a bucket's index fell behind without being named due"
        );
    }

    fn sync_bucket(&mut self, id: &DocId, ops: &mut Vec<StoreOp>) {
        let Some(state) = self.docs.get_mut(id) else {
            return;
        };
        let heads = state.server.get_heads();
        let arrived = state.search.arrived.take();
        // Messages the arrived changes made, read from those changes, not the document.
        let mut made = MadeFields::new();
        let mut in_a_row = false;
        let paths = &mut state.search.paths;
        let touched: Option<BTreeSet<MessageId>> = state.search.at.as_ref().and_then(|at| {
            let since = at.heads();
            // The changes since `at`, when they came in a row to these heads.
            let mut touched = match arrived {
                Some(a) if a.since == since && a.heads == heads => {
                    let (touched, fields) =
                        touched_and_made(&state.server, &a.changes, true, paths)?;
                    made = fields;
                    in_a_row = true;
                    touched
                }
                _ => touched_since(&state.server, &since)?,
            };
            if at.opened != state.opened.len() {
                touched.extend(state.opened.keys().cloned());
            }
            Some(touched)
        });
        if !in_a_row {
            state.search.paths.clear();
        }
        let touched = touched.unwrap_or_else(|| {
            let mut all: BTreeSet<MessageId> = message_ids(&state.server).into_iter().collect();
            all.extend(state.search.records.keys().cloned());
            all
        });
        for message in touched {
            let fields = match made.remove(&message) {
                Some(fields) => read::message_from_fields(
                    fields.iter().map(|(k, v)| (k, read::scalar_ref(v))),
                    message.clone(),
                ),
                None => read::read_message_fields(&state.server, &message),
            };
            let want = fields.filter(|m| m.deleted_at.is_none()).and_then(|m| {
                let read = state
                    .opened
                    .get(&message)
                    .and_then(|o| o.read_for(&m.author));
                let (body, caption) = match (&m.sealed, read) {
                    (None, _) => (m.body, m.caption),
                    (Some(_), Some(content)) => (content.body.clone(), content.caption.clone()),
                    // Not read on this device (yet), or read from another account's device
                    // than the author it names now: nothing to index.
                    _ => return None,
                };
                let record = IndexRecord {
                    created_at: m.created_at,
                    author: m.author,
                    kind: m.kind,
                    body,
                    caption,
                };
                (!record.terms().is_empty()).then_some(record)
            });
            let have = state.search.records.get(&message);
            if have == want.as_ref() {
                continue;
            }
            entry_ops(&mut self.dict, id, &message, have, want.as_ref(), ops);
            match want {
                Some(r) => state.search.records.insert(message, r),
                None => state.search.records.remove(&message),
            };
        }
        let at = IndexedAt::of(&heads, state.opened.len());
        ops.push(StoreOp::Put(key_index_heads(id), cbor(&at)));
        state.search.at = Some(at);
    }

    /// Bucket `id` leaves the store (retention): its index entries go with it. A held
    /// bucket knows its records; for one only stored they are read first, and its postings
    /// go when that answer comes (`unindexed`), the records at once.
    pub(crate) fn unindex_bucket(&mut self, id: &DocId) {
        let mut ops = Vec::new();
        match self.docs.get(id) {
            Some(state) => {
                for (message, record) in &state.search.records {
                    entry_ops(&mut self.dict, id, message, Some(record), None, &mut ops);
                }
            }
            None => {
                let load = self.loads.ask_unindex(id);
                self.out.push(Output::Load(load));
            }
        }
        ops.push(StoreOp::DeletePrefix(search_records_prefix(id)));
        ops.push(StoreOp::Delete(key_index_heads(id)));
        self.out.push(Output::Persist(ops));
        self.check_lost_terms();
    }

    /// The records of a bucket that left the store, read back: their postings go.
    pub(crate) fn unindexed(&mut self, id: &DocId, entries: Vec<(String, Vec<u8>)>) {
        let index = BucketIndex::restored(id, entries);
        let mut ops = Vec::new();
        for (message, record) in &index.records {
            entry_ops(&mut self.dict, id, message, Some(record), None, &mut ops);
        }
        if !ops.is_empty() {
            self.out.push(Output::Persist(ops));
        }
        self.check_lost_terms();
    }
}
