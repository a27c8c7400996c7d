//! The engine's side of the device's search index (`crate::client::search::index` and
//! `dict`): the dictionary's start-up and migration, keeping each due bucket's entries up at
//! a tick, and terms left without postings leaving the dictionary (`sx/w/<term>`) once no
//! message the device may read holds them. Whether a term that lost postings still has one
//! is a store read asked after the write that deleted them (a host carries outputs in
//! order), so the postings that write deleted never count.

use std::collections::{BTreeSet, HashMap};

use crate::client::engine::{ClientEngine, ClientError, Output};
use crate::client::records::{
    cbor, key_index_heads, key_term, search_records_prefix, uncbor, OLD_POSTINGS_PREFIX,
    SEARCH_RECORDS_PREFIX,
};
use crate::client::replica::ClientDoc;
use crate::client::search::dict::Dictionary;
use crate::client::search::index::{entry_ops, BucketIndex, IndexRecord, IndexedAt};
use crate::client::store::StoreOp;
use crate::client::timeline::{message_ids, touched_and_made, touched_since, MadeFields};
use crate::doc::read;
use crate::ids::{DocId, DocTarget, MessageId};

impl ClientEngine {
    /// The start-up load's `sx/` entries: the numbers, and the migration when the layout
    /// is older (searches and upkeep wait for it).
    pub(crate) fn search_started(&mut self, entries: &[(String, Vec<u8>)]) {
        if self.dict.started(entries) {
            self.index_ready();
        } else {
            let load = self.loads.ask_migrate();
            self.out.push(Output::Load(load));
        }
    }

    /// Every search record, read for the migration (or the read's error: searches wait
    /// for the next start).
    pub(crate) fn migrated(&mut self, answer: Result<Vec<(String, Vec<u8>)>, ClientError>) {
        match answer {
            Ok(records) => {
                let held: HashMap<DocId, &BucketIndex> = self
                    .docs
                    .iter()
                    .filter(|(id, _)| matches!(id.target(), DocTarget::Msgs(..)))
                    .map(|(id, s)| (id.clone(), &s.search))
                    .collect();
                let ops = migrate(&mut self.dict, &held, records);
                self.out.push(Output::Persist(ops));
                self.index_ready();
            }
            Err(e) => {
                self.dict.migration_failed = true;
                self.fail_waiting_searches(&e);
            }
        }
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

impl ClientEngine {
    /// Asks for the first postings of every term that lost some since the last ask.
    pub(crate) fn check_lost_terms(&mut self) {
        let lost = self.dict.take_lost();
        if lost.is_empty() {
            return;
        }
        let load = self.loads.ask_term_check(lost);
        self.out.push(Output::Load(load));
    }

    /// The answer: a term none of whose postings is left, and which no posting wrote
    /// again since, leaves the dictionary. A failed read asks again with the next write.
    pub(crate) fn terms_checked(
        &mut self,
        terms: Vec<(String, Vec<String>)>,
        answer: Result<Vec<(String, Vec<u8>)>, ClientError>,
    ) {
        let Ok(entries) = answer else {
            for (term, deleted) in terms {
                self.dict.lost.entry(term).or_default().extend(deleted);
            }
            return;
        };
        let mut ops = Vec::new();
        for (term, deleted) in terms {
            let prefix = crate::client::records::posting_prefix(&term, false);
            let held = entries
                .iter()
                .any(|(key, _)| key.starts_with(&prefix) && !deleted.contains(key));
            if !held && !self.dict.rewritten(&term) {
                ops.push(StoreOp::Delete(key_term(&term)));
            }
        }
        if !ops.is_empty() {
            self.out.push(Output::Persist(ops));
        }
    }
}

/// The migration from an older layout: the old postings go, and every record's postings
/// are written anew (a held bucket's from memory, which upkeep may have moved past what
/// was read). `records` is the answer to a read of every `sx/m/` entry.
fn migrate(
    dict: &mut Dictionary,
    held: &HashMap<DocId, &BucketIndex>,
    records: Vec<(String, Vec<u8>)>,
) -> Vec<StoreOp> {
    let mut ops = vec![StoreOp::DeletePrefix(OLD_POSTINGS_PREFIX.into())];
    for (key, value) in records {
        let Some((doc, id)) = key
            .strip_prefix(SEARCH_RECORDS_PREFIX)
            .and_then(|rest| rest.rsplit_once('/'))
        else {
            continue;
        };
        let (Ok(doc), Ok(id)) = (DocId::parse(doc), MessageId::new(id)) else {
            continue;
        };
        if held.contains_key(&doc) {
            continue;
        }
        if let Ok(record) = uncbor::<IndexRecord>(&value) {
            entry_ops(dict, &doc, &id, None, Some(&record), &mut ops);
        }
    }
    for (doc, index) in held {
        for (id, record) in &index.records {
            entry_ops(dict, doc, id, None, Some(record), &mut ops);
        }
    }
    dict.version(&mut ops);
    ops
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
