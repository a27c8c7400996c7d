//! The engine asks for documents: a document it needs that is stored but not in memory
//! becomes an `Output::Load` (store reads, named by a `LoadId`), and the work that needs it
//! waits in a queue until the host answers with `ClientEngine::loaded`. The host knows no
//! keys and no reasons: it reads what it is told and hands the entries back, in any order.

use std::collections::BTreeSet;

use super::apply;
use super::ask::{Asked, Job, Load, LoadId, Outcome, Read, Ready, RequestId, Wanted};
use super::engine::{ClientEngine, Event, Output};
use super::error::ClientError;
use super::intent::Intent;
use super::persist;
use super::store::StoreError;
use crate::ids::DocId;

impl ClientEngine {
    /// Queues the start-up restore (see `restoring`).
    pub(super) fn start_restore(&mut self) {
        self.loads.queue.push_back(Job::Restore {
            request: RequestId::RESTORE,
            skipped: BTreeSet::new(),
        });
        self.advance();
    }

    fn ask(&mut self, wanted: Wanted, reads: Vec<Read>) -> LoadId {
        let id = LoadId(self.loads.next_load);
        self.loads.next_load += 1;
        if let Wanted::Doc(doc) = &wanted {
            self.loads.reading.insert(doc.clone(), id);
        }
        self.loads.asked.insert(
            id,
            Asked {
                wanted,
                reads: reads.clone(),
            },
        );
        self.out.push(Output::Load(Load { id, reads }));
        id
    }

    /// Whether `id` can be used now; asks for it when it is stored and not in memory.
    pub(super) fn ready(&mut self, id: &DocId) -> Ready {
        if self.docs.contains_key(id) {
            return Ready::Yes;
        }
        if let Some(error) = self.loads.failed.remove(id) {
            return Ready::Failed(error);
        }
        if self.loads.reading.contains_key(id) {
            return Ready::Wait;
        }
        match &self.loads.stored {
            None => self.ready_index(),
            Some(stored) if !stored.contains(id) => Ready::Yes,
            Some(_) => {
                self.ask(Wanted::Doc(id.clone()), persist::doc_reads(id));
                Ready::Wait
            }
        }
    }

    /// Whether the store's index is known; asks for it (the start-up load) when not, which
    /// after a failed start-up load asks again, now that something needs the store.
    pub(super) fn ready_index(&mut self) -> Ready {
        if self.loads.stored.is_some() {
            return Ready::Yes;
        }
        if !self
            .loads
            .asked
            .values()
            .any(|a| matches!(a.wanted, Wanted::Start))
        {
            self.ask(Wanted::Start, persist::start_reads());
        }
        Ready::Wait
    }

    /// `ready`, and a document stored nowhere is opened fresh (followed from seq 0).
    pub(super) fn have(&mut self, id: &DocId) -> Ready {
        match self.ready(id) {
            Ready::Yes if !self.docs.contains_key(id) => match self.ensure_doc(id) {
                Ok(_) => {
                    self.subscribe(id);
                    Ready::Yes
                }
                Err(e) => Ready::Failed(e),
            },
            other => other,
        }
    }

    /// The answer to load `id`: every entry its reads found, or the store's error. Loads may
    /// be answered in any order. An unknown id, or an entry no read asked for, is refused
    /// with an error and changes nothing else (the load's waiters learn of a bad answer).
    pub fn loaded(
        &mut self,
        id: LoadId,
        answer: Result<Vec<(String, Vec<u8>)>, StoreError>,
    ) -> Result<(), ClientError> {
        let Some(asked) = self.loads.asked.remove(&id) else {
            return Err(ClientError::UnknownLoad(id.0));
        };
        let checked = match answer {
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
        let refused = match &checked {
            Err(e @ ClientError::StrayEntry { .. }) => Some(e.clone()),
            _ => None,
        };
        match (asked.wanted, checked) {
            (Wanted::Start, Ok(entries)) => self.on_start_loaded(entries),
            (Wanted::Start, Err(e)) => self.fail_start(e),
            (Wanted::Doc(doc), result) => {
                self.loads.reading.remove(&doc);
                if !self.docs.contains_key(&doc) {
                    let restored = result.and_then(|entries| {
                        let (snapshot, changes) = persist::split_doc(&doc, entries);
                        self.restore_doc(&doc, snapshot.as_deref(), &changes)
                    });
                    if let Err(e) = restored {
                        self.loads.failed.insert(doc, e);
                    }
                }
            }
        }
        self.advance();
        refused.map_or(Ok(()), Err)
    }

    fn on_start_loaded(&mut self, entries: Vec<(String, Vec<u8>)>) {
        let (outbox, index) = persist::split_start(entries);
        if let Err(e) = self.restore_outbox(&outbox) {
            self.out.push(Output::Event(Event::Error {
                code: e.code().to_owned(),
                message: format!("outbox: {e}"),
            }));
        }
        let mut stored = index;
        // Documents opened fresh while the index was unknown are stored too.
        stored.extend(self.docs.keys().cloned());
        self.loads.stored = Some(stored);
    }

    /// The start-up load failed: everything waiting fails with it; the next need asks again.
    fn fail_start(&mut self, error: ClientError) {
        for job in std::mem::take(&mut self.loads.queue) {
            self.fail_job(job, &error);
        }
    }

    /// Runs the queued work until the first job that waits for a load.
    pub(super) fn advance(&mut self) {
        while let Some(job) = self.loads.queue.pop_front() {
            if let Some(waiting) = self.step(job) {
                self.loads.queue.push_front(waiting);
                break;
            }
        }
        // Intents behind the head run in order, but their reads need not wait: ask now.
        let behind: Vec<Intent> = self
            .loads
            .held_intents()
            .map(|(_, intent)| intent.clone())
            .collect();
        for intent in &behind {
            self.prefetch(intent);
        }
    }

    /// Asks for the stored documents `intent` touches that no load brings yet (its buckets
    /// only once its conversation is in memory: the conversation sets their width).
    fn prefetch(&mut self, intent: &Intent) {
        let (tenant, me) = (self.config.tenant.clone(), self.config.account.clone());
        let conv = apply::conv_of(intent, &tenant, &me).map(|c| DocId::conv(&tenant, &c));
        let mut wanted: Vec<DocId> = conv.iter().cloned().collect();
        if conv.is_none_or(|c| self.docs.contains_key(&c) || !self.is_stored(&c)) {
            wanted.extend(apply::targets(intent, &tenant, &me, |c, at| {
                self.bucket_for(c, at)
            }));
        }
        for doc in wanted {
            let idle = !self.docs.contains_key(&doc)
                && !self.loads.reading.contains_key(&doc)
                && !self.loads.failed.contains_key(&doc);
            if idle && self.is_stored(&doc) {
                self.ask(Wanted::Doc(doc.clone()), persist::doc_reads(&doc));
            }
        }
    }

    fn is_stored(&self, doc: &DocId) -> bool {
        self.loads.stored.as_ref().is_some_and(|s| s.contains(doc))
    }

    /// Ends a job that cannot go on: an intent is rejected with the reason, a request done.
    pub(super) fn fail_job(&mut self, job: Job, error: &ClientError) {
        match job {
            Job::Intent {
                id,
                intent,
                device_now,
            } => self.refuse_held(id, *intent, device_now, error),
            Job::Open { doc, request } => {
                self.out.push(Output::Event(Event::Error {
                    code: error.code().to_owned(),
                    message: format!("{doc}: {error}"),
                }));
                if let Some(request) = request {
                    self.done(
                        request,
                        Outcome::Failed {
                            code: error.code().to_owned(),
                            message: error.to_string(),
                        },
                    );
                }
            }
            Job::Restore { request, .. }
            | Job::OpenConversation { request, .. }
            | Job::Older { request, .. } => self.done(
                request,
                Outcome::Failed {
                    code: error.code().to_owned(),
                    message: error.to_string(),
                },
            ),
        }
    }

    pub(super) fn done(&mut self, request: RequestId, outcome: Outcome) {
        self.out
            .push(Output::Event(Event::Done { request, outcome }));
    }
}
