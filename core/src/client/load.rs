//! The engine's store reads: a document it needs that is stored but not in memory becomes
//! an `Output::Load` (store reads, named by a `LoadId`), and the work that needs it waits
//! in a queue until the host answers with `ClientEngine::loaded`. The host knows no keys
//! and no reasons: it reads what it is told and hands the entries back, in any order.
//!
//! A state machine of its own (`Loads`): what is asked, read, failed and stored, and the
//! queue of waiting work. Whether a document is in memory is an input; the loads to ask
//! come back as values (`Load`), which the engine sends out; the engine runs the jobs.

use std::collections::{BTreeSet, HashMap, VecDeque};

use super::ask::{Job, Load, LoadId, Read, RequestId};
use super::error::ClientError;
use super::intent::Intent;
use super::records;
use super::store::StoreError;
use crate::ids::DocId;

/// What a load is for.
#[derive(Debug)]
pub(super) enum Wanted {
    Start,
    Doc(DocId),
    /// A search's postings or page records.
    Search(Box<super::search::SearchAsk>),
    /// The search records of a bucket that left the store, for its postings to go.
    Unindex(DocId),
    /// Every search record, for an index of an older layout to be migrated.
    Migrate,
    /// The first postings of terms that lost some, for the dictionary entries of terms left
    /// without any to go (`search::orphans`).
    TermCheck(Vec<(String, Vec<String>)>),
}

#[derive(Debug)]
struct Asked {
    wanted: Wanted,
    reads: Vec<Read>,
}

/// Whether a document is there to use.
pub(super) enum Ready {
    /// In memory, or stored nowhere (it starts fresh from its genesis).
    Yes,
    /// Its load is out.
    Wait,
    Failed(ClientError),
}

/// A load's answer, checked against what it asked.
pub(super) struct Answer {
    pub(super) wanted: Wanted,
    /// The entries, or why there are none to use.
    pub(super) entries: Result<Vec<(String, Vec<u8>)>, ClientError>,
    /// An entry no read asked for: the host's answer is refused with it.
    pub(super) refused: Option<ClientError>,
}

/// Loads out and the work waiting for them.
#[derive(Debug)]
pub(super) struct Loads {
    next_load: u64,
    next_request: u64,
    asked: HashMap<LoadId, Asked>,
    /// Documents being read (one load each, however many jobs wait).
    reading: HashMap<DocId, LoadId>,
    /// Documents whose load failed: the next job that needs one learns why.
    failed: HashMap<DocId, ClientError>,
    /// The store's index of documents; `None` until the start-up load is answered.
    stored: Option<BTreeSet<DocId>>,
    /// The work that waits, in call order (an intent never overtakes an earlier one).
    pub(super) queue: VecDeque<Job>,
}

impl Loads {
    fn new(stored: Option<BTreeSet<DocId>>) -> Self {
        Loads {
            next_load: 1,
            next_request: 1,
            asked: HashMap::new(),
            reading: HashMap::new(),
            failed: HashMap::new(),
            stored,
            queue: VecDeque::new(),
        }
    }

    /// A store known to be empty: nothing is ever loaded.
    pub(super) fn empty_store() -> Self {
        Self::new(Some(BTreeSet::new()))
    }

    /// A store whose contents the start-up load tells.
    pub(super) fn unknown_store() -> Self {
        Self::new(None)
    }

    /// Whether the store's index is read.
    pub(super) fn index_known(&self) -> bool {
        self.stored.is_some()
    }

    /// The start-up load told the store's index (with the documents opened meanwhile).
    pub(super) fn index_read(&mut self, stored: BTreeSet<DocId>) {
        self.stored = Some(stored);
    }

    pub(super) fn note_stored(&mut self, id: &DocId) {
        if let Some(stored) = &mut self.stored {
            stored.insert(id.clone());
        }
    }

    /// `id` left the store.
    pub(super) fn forget(&mut self, id: &DocId) {
        if let Some(stored) = &mut self.stored {
            stored.remove(id);
        }
    }

    pub(super) fn is_stored(&self, doc: &DocId) -> bool {
        self.stored.as_ref().is_some_and(|s| s.contains(doc))
    }

    pub(super) fn stored(&self) -> impl Iterator<Item = &DocId> {
        self.stored.iter().flatten()
    }

    /// The stored documents in `range` (in key order), without walking the others.
    pub(super) fn stored_in(
        &self,
        range: std::ops::RangeInclusive<DocId>,
    ) -> impl DoubleEndedIterator<Item = &DocId> {
        self.stored.iter().flat_map(move |s| s.range(range.clone()))
    }

    pub(super) fn next_request(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request - 1)
    }

    pub(super) fn holds(&self, id: u64) -> bool {
        self.held_intents().any(|(held, _)| held == id)
    }

    pub(super) fn held_intents(&self) -> impl Iterator<Item = (u64, &Intent)> {
        self.queue.iter().filter_map(|job| match job {
            Job::Intent { id, intent, .. } => Some((*id, &**intent)),
            _ => None,
        })
    }

    fn ask(&mut self, wanted: Wanted, reads: Vec<Read>) -> Load {
        let id = LoadId(self.next_load);
        self.next_load += 1;
        if let Wanted::Doc(doc) = &wanted {
            self.reading.insert(doc.clone(), id);
        }
        self.asked.insert(
            id,
            Asked {
                wanted,
                reads: reads.clone(),
            },
        );
        Load { id, reads }
    }

    /// Whether `id` (`in_memory` or not) can be used now; the load to ask when it is stored
    /// and not in memory.
    pub(super) fn ready(&mut self, id: &DocId, in_memory: bool) -> (Ready, Option<Load>) {
        if in_memory {
            return (Ready::Yes, None);
        }
        if let Some(error) = self.failed.remove(id) {
            return (Ready::Failed(error), None);
        }
        if self.reading.contains_key(id) {
            return (Ready::Wait, None);
        }
        match &self.stored {
            None => self.ready_index(),
            Some(stored) if !stored.contains(id) => (Ready::Yes, None),
            Some(_) => {
                let load = self.ask(Wanted::Doc(id.clone()), records::doc_reads(id));
                (Ready::Wait, Some(load))
            }
        }
    }

    /// Whether the store's index is known; the start-up load to ask when not (after a
    /// failed start-up load: again, now that something needs the store).
    pub(super) fn ready_index(&mut self) -> (Ready, Option<Load>) {
        if self.stored.is_some() {
            return (Ready::Yes, None);
        }
        if self
            .asked
            .values()
            .any(|a| matches!(a.wanted, Wanted::Start))
        {
            return (Ready::Wait, None);
        }
        (
            Ready::Wait,
            Some(self.ask(Wanted::Start, records::start_reads())),
        )
    }

    /// The load to ask ahead for `doc` (`in_memory` or not), when it is stored and no load
    /// brings it yet.
    pub(super) fn prefetch(&mut self, doc: &DocId, in_memory: bool) -> Option<Load> {
        let idle = !in_memory && !self.reading.contains_key(doc) && !self.failed.contains_key(doc);
        (idle && self.is_stored(doc))
            .then(|| self.ask(Wanted::Doc(doc.clone()), records::doc_reads(doc)))
    }

    /// A load for a search (its reads are the search's own).
    pub(super) fn ask_search(
        &mut self,
        ask: Box<super::search::SearchAsk>,
        reads: Vec<Read>,
    ) -> Load {
        self.ask(Wanted::Search(ask), reads)
    }

    /// A load of every search record (the index's migration).
    pub(super) fn ask_migrate(&mut self) -> Load {
        let reads = vec![Read::Prefix(records::SEARCH_RECORDS_PREFIX.to_owned())];
        self.ask(Wanted::Migrate, reads)
    }

    /// A load of the first postings of each term that lost the postings `deleted` (beside
    /// them, one more is enough to know the term still has one).
    pub(super) fn ask_term_check(&mut self, terms: Vec<(String, Vec<String>)>) -> Load {
        let reads = terms
            .iter()
            .map(|(term, deleted)| Read::Page {
                prefix: records::posting_prefix(term, false),
                from: String::new(),
                limit: u32::try_from(deleted.len() + 1).unwrap_or(u32::MAX),
            })
            .collect();
        self.ask(Wanted::TermCheck(terms), reads)
    }

    /// A load of the search records of bucket `doc`, which leaves the store.
    pub(super) fn ask_unindex(&mut self, doc: &DocId) -> Load {
        let reads = vec![Read::Prefix(records::search_records_prefix(doc))];
        self.ask(Wanted::Unindex(doc.clone()), reads)
    }

    /// The answer to load `id`: every entry its reads found, or the store's error. An
    /// unknown id is refused; an entry no read asked for makes the answer unusable.
    pub(super) fn answer(
        &mut self,
        id: LoadId,
        answer: Result<Vec<(String, Vec<u8>)>, StoreError>,
    ) -> Result<Answer, ClientError> {
        let Some(asked) = self.asked.remove(&id) else {
            return Err(ClientError::UnknownLoad(id.0));
        };
        let entries = match answer {
            Err(e) => Err(ClientError::Store(e.0)),
            Ok(entries) => match entries
                .iter()
                .find(|(key, _)| !asked.reads.iter().any(|r| r.covers(key)))
            {
                Some((key, _)) => Err(ClientError::StrayEntry {
                    load: id.0,
                    key: key.clone(),
                }),
                None => Ok(entries),
            },
        };
        let refused = match &entries {
            Err(e @ ClientError::StrayEntry { .. }) => Some(e.clone()),
            _ => None,
        };
        if let Wanted::Doc(doc) = &asked.wanted {
            self.reading.remove(doc);
        }
        Ok(Answer {
            wanted: asked.wanted,
            entries,
            refused,
        })
    }

    /// `doc` could not be restored: the next job that needs it learns why.
    pub(super) fn failed(&mut self, doc: DocId, error: ClientError) {
        self.failed.insert(doc, error);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ids::{ConvId, TenantId};

    fn doc() -> DocId {
        DocId::conv(&TenantId::new("t").unwrap(), &ConvId::new("c1").unwrap())
    }

    #[test]
    fn a_stored_document_is_asked_once_and_its_answer_checked() {
        let mut loads = Loads::unknown_store();
        // The index first, once however many ask.
        let (ready, start) = loads.ready(&doc(), false);
        assert!(matches!(ready, Ready::Wait) && start.is_some());
        assert!(loads.ready_index().1.is_none());
        let start = start.unwrap();
        let answer = loads.answer(start.id, Ok(Vec::new())).unwrap();
        assert!(matches!(answer.wanted, Wanted::Start));
        loads.index_read([doc()].into_iter().collect());
        let (ready, load) = loads.ready(&doc(), false);
        assert!(matches!(ready, Ready::Wait));
        let load = load.unwrap();
        assert!(loads.prefetch(&doc(), false).is_none());
        assert!(matches!(loads.ready(&doc(), false), (Ready::Wait, None)));
        let stray = vec![("elsewhere".to_owned(), Vec::new())];
        let answer = loads.answer(load.id, Ok(stray)).unwrap();
        assert!(answer.refused.is_some() && answer.entries.is_err());
        assert!(matches!(
            loads.answer(load.id, Ok(Vec::new())),
            Err(ClientError::UnknownLoad(_))
        ));
        loads.failed(doc(), ClientError::Corrupt("bad".into()));
        assert!(matches!(
            loads.ready(&doc(), false),
            (Ready::Failed(_), None)
        ));
        assert!(matches!(loads.ready(&doc(), true), (Ready::Yes, None)));
    }
}
