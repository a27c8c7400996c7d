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

use super::super::records::{
    cbor, key_index_heads, key_posting, key_search_record, key_term, search_records_prefix, uncbor,
};
use super::super::store::StoreOp;
use super::super::timeline::ObjectPaths;
use super::dict::{place, Dictionary};
use crate::ids::{AccountId, DocId, MessageId};
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
    pub(crate) opened: usize,
}

impl IndexedAt {
    pub(crate) fn of(heads: &[ChangeHash], opened: usize) -> Self {
        IndexedAt {
            heads: heads.iter().map(|h| h.0).collect(),
            opened,
        }
    }
    /// Whether it is as of `heads` and `opened` (without building one to compare).
    pub(crate) fn is(&self, heads: &[ChangeHash], opened: usize) -> bool {
        self.opened == opened
            && self.heads.len() == heads.len()
            && self.heads.iter().zip(heads).all(|(a, b)| *a == b.0)
    }

    pub(crate) fn heads(&self) -> Vec<ChangeHash> {
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
    pub(crate) arrived: Option<Arrived>,
    /// Paths of the bucket's shard maps, kept while its index follows arrived changes in a
    /// row (cleared whenever it does not: the document may have been replaced).
    pub(crate) paths: ObjectPaths,
}

/// Held buckets whose index may be behind: upkeep looks at these only, so it costs what
/// arrived, not how many buckets the device holds. Whatever moves a bucket's accepted state
/// or opened messages names it (an arrival, a message opened, a snapshot or a new
/// generation, a bucket loaded or made, a catch-up's end); what moves many at once (a
/// disconnect, the dictionary turning ready, the start) names every held bucket. Debug
/// builds check after each upkeep that no held bucket was missed.
#[derive(Debug)]
pub(crate) struct IndexDue {
    pub(crate) every: bool,
    pub(crate) docs: BTreeSet<DocId>,
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

    pub(crate) fn take(&mut self) -> (bool, BTreeSet<DocId>) {
        let every = std::mem::take(&mut self.every);
        (every, std::mem::take(&mut self.docs))
    }
}

/// Accepted changes that took a bucket from heads `since` to `heads`.
#[derive(Debug)]
pub(crate) struct Arrived {
    pub(crate) since: Vec<ChangeHash>,
    pub(crate) heads: Vec<ChangeHash>,
    pub(crate) changes: Vec<Change>,
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
