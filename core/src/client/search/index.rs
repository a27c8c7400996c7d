//! The device's index, kept up (docs/SEARCH.md, "On the device"): after every input the
//! engine compares each held bucket's accepted heads and opened count with those it last
//! indexed, and re-reads only the messages the new changes touch (`timeline::touched_since`)
//! or that were opened since. A message's entry is its record (`sx/m/<doc>/<message>`: the
//! text and what filters read) and one posting per distinct term (`sx/t/<term>/<doc>/<message>`,
//! with the filters' fields); an edit rewrites the terms that changed, a tombstone or
//! expiry removes all. So upkeep costs what the message holds, never what the history does.

use std::collections::{BTreeSet, HashMap};

use automerge::ChangeHash;
use serde::{Deserialize, Serialize};

use super::super::engine::{ClientEngine, Output};
use super::super::records::{
    cbor, key_index_heads, key_posting, key_search_record, search_records_prefix, uncbor,
};
use super::super::sealed::Opened;
use super::super::store::StoreOp;
use super::super::timeline::{message_ids, touched_since};
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
        Posting {
            created_at: self.created_at,
            author: self.author.clone(),
            kind: self.kind,
        }
    }
}

/// A posting's value: what the filters and the order read, so a query reads records only
/// for the page it shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Posting {
    #[serde(rename = "t")]
    pub(crate) created_at: i64,
    #[serde(rename = "a")]
    pub(crate) author: AccountId,
    #[serde(rename = "k")]
    pub(crate) kind: MessageKind,
}

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
}

impl BucketIndex {
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
    doc: &DocId,
    id: &MessageId,
    old: Option<&IndexRecord>,
    new: Option<&IndexRecord>,
    ops: &mut Vec<StoreOp>,
) {
    let old_terms = old.map(IndexRecord::terms).unwrap_or_default();
    let new_terms = new.map(IndexRecord::terms).unwrap_or_default();
    for t in old_terms.difference(&new_terms) {
        ops.push(StoreOp::Delete(key_posting(t, doc, id)));
    }
    if let Some(new) = new {
        // The filters' fields never change once written; only new terms need a posting.
        let same_fields = old.is_some_and(|o| o.posting() == new.posting());
        let value = cbor(&new.posting());
        for t in &new_terms {
            if !(same_fields && old_terms.contains(t)) {
                ops.push(StoreOp::Put(key_posting(t, doc, id), value.clone()));
            }
        }
        ops.push(StoreOp::Put(key_search_record(doc, id), cbor(new)));
    } else if old.is_some() {
        ops.push(StoreOp::Delete(key_search_record(doc, id)));
    }
}

impl ClientEngine {
    /// Brings the index up to every held bucket's accepted state (run before each `drain`
    /// and before a search reads the store).
    pub(crate) fn sync_search(&mut self) {
        let stale: Vec<DocId> = self
            .docs
            .iter()
            .filter(|(id, _)| matches!(id.target(), DocTarget::Msgs(..)))
            .filter(|(_, s)| {
                s.search.at.as_ref() != Some(&IndexedAt::of(&s.server.get_heads(), s.opened.len()))
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            self.sync_bucket(&id);
        }
    }

    fn sync_bucket(&mut self, id: &DocId) {
        let Some(state) = self.docs.get_mut(id) else {
            return;
        };
        let heads = state.server.get_heads();
        let touched: Option<BTreeSet<MessageId>> = state.search.at.as_ref().and_then(|at| {
            let mut touched = touched_since(&state.server, &at.heads())?;
            if at.opened != state.opened.len() {
                touched.extend(state.opened.keys().cloned());
            }
            Some(touched)
        });
        let touched = touched.unwrap_or_else(|| {
            let mut all: BTreeSet<MessageId> = message_ids(&state.server).into_iter().collect();
            all.extend(state.search.records.keys().cloned());
            all
        });
        let mut ops = Vec::new();
        for message in touched {
            let want = read::read_message_fields(&state.server, &message)
                .filter(|m| m.deleted_at.is_none())
                .and_then(|m| {
                    let (body, caption) = match (&m.sealed, state.opened.get(&message)) {
                        (None, _) => (m.body, m.caption),
                        (Some(_), Some(Opened::Read { content, .. })) => {
                            (content.body.clone(), content.caption.clone())
                        }
                        // Not read on this device (yet): nothing to index.
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
            entry_ops(id, &message, have, want.as_ref(), &mut ops);
            match want {
                Some(r) => state.search.records.insert(message, r),
                None => state.search.records.remove(&message),
            };
        }
        let at = IndexedAt::of(&heads, state.opened.len());
        ops.push(StoreOp::Put(key_index_heads(id), cbor(&at)));
        state.search.at = Some(at);
        self.out.push(Output::Persist(ops));
    }

    /// Bucket `id` leaves the store (retention): its index entries go with it. A held
    /// bucket knows its records; for one only stored they are read first, and its postings
    /// go when that answer comes (`unindexed`), the records at once.
    pub(crate) fn unindex_bucket(&mut self, id: &DocId) {
        let mut ops = Vec::new();
        match self.docs.get(id) {
            Some(state) => {
                for (message, record) in &state.search.records {
                    entry_ops(id, message, Some(record), None, &mut ops);
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
    }

    /// The records of a bucket that left the store, read back: their postings go.
    pub(crate) fn unindexed(&mut self, id: &DocId, entries: Vec<(String, Vec<u8>)>) {
        let index = BucketIndex::restored(id, entries);
        let mut ops = Vec::new();
        for (message, record) in &index.records {
            entry_ops(id, message, Some(record), None, &mut ops);
        }
        if !ops.is_empty() {
            self.out.push(Output::Persist(ops));
        }
    }
}
