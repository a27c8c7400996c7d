//! The engine's side of loads: the work that may wait for them, one step at a time
//! (start-up restore, intents, opening a document, paging through a conversation:
//! `open_conversation`, `load_older`), and the answers (`loaded`). A step either finishes
//! its job or leaves it at the head of the queue with its loads out; steps are safe to run
//! again (a job decides once only what later loads would change). What is asked, read and
//! stored is the `load` part's (`Loads`); this file sends its loads out and runs the work.

use std::collections::BTreeSet;

use crate::client::apply;
use crate::client::ask::{Job, Load, LoadId, RequestId};
use crate::client::buckets::Paging;
use crate::client::engine::Outcome;
use crate::client::engine::{ClientEngine, Event, Output};
use crate::client::error::ClientError;
use crate::client::intent::Intent;
use crate::client::load::{Answer, Ready, Wanted};
use crate::client::outbox::{IntentStatus, OutboxEntry};
use crate::client::records;
use crate::client::replica::buckets_of;
use crate::client::search::index::BucketIndex;
use crate::client::store::StoreError;
use crate::ids::{Bucket, ConvId, DocId, DocTarget};

impl ClientEngine {
    /// Loads `conv` and its newest stored message buckets, newest first, until at least
    /// `limit` messages are in `timeline(conv)`; follows the bucket of `device_now`. Ends
    /// with `Event::Done { outcome: Opened }` (at once when nothing must be loaded).
    pub fn open_conversation(&mut self, conv: &ConvId, limit: usize, device_now: i64) -> RequestId {
        let request = self.loads.next_request();
        self.loads.queue.push_back(Job::OpenConversation {
            request,
            conv: conv.clone(),
            limit,
            device_now,
        });
        self.advance();
        request
    }

    /// Loads the next older message bucket of `conv`: the newest stored one older than what
    /// is in memory, else (down to the conversation's first bucket) the one before the
    /// oldest in memory, from the server. Ends with `Event::Done { outcome: Older { more } }`;
    /// `more` is false once the conversation's start is reached.
    pub fn load_older(&mut self, conv: &ConvId, device_now: i64) -> RequestId {
        let request = self.loads.next_request();
        self.loads.queue.push_back(Job::Older {
            request,
            conv: conv.clone(),
            device_now,
            target: None,
        });
        self.advance();
        request
    }

    /// `open`, ending with `Event::Done { outcome: Opened }` once the document is in memory
    /// (or `Failed` when its load failed).
    pub fn open_document(&mut self, id: &DocId) -> RequestId {
        let request = self.loads.next_request();
        self.loads.queue.push_back(Job::Open {
            doc: id.clone(),
            request: Some(request),
        });
        self.advance();
        request
    }

    /// Opens `id` at once when nothing must be loaded first; queues it otherwise.
    pub(super) fn open_doc(&mut self, id: &DocId) -> Result<(), ClientError> {
        if self.loads.queue.is_empty() {
            match self.have(id) {
                Ready::Yes => return Ok(()),
                Ready::Failed(e) => return Err(e),
                Ready::Wait => {}
            }
        }
        self.loads.queue.push_back(Job::Open {
            doc: id.clone(),
            request: None,
        });
        self.advance();
        Ok(())
    }

    /// No intent waits and every document `intent` touches is in memory (or new).
    pub(super) fn can_run_now(&mut self, intent: &Intent) -> bool {
        self.loads.queue.is_empty() && matches!(self.intent_ready(intent), Ready::Yes)
    }

    pub(super) fn hold_intent(&mut self, id: u64, intent: Intent, device_now: i64) {
        self.loads.queue.push_back(Job::Intent {
            id,
            intent: Box::new(intent),
            device_now,
        });
        self.advance();
    }

    /// The conversation first (its bucket width places a message), then the targets.
    fn intent_ready(&mut self, intent: &Intent) -> Ready {
        let (tenant, me) = (self.config.tenant.clone(), self.config.account.clone());
        if let Some(conv) = apply::conv_of(intent, &tenant, &me) {
            match self.ready(&DocId::conv(&tenant, &conv)) {
                Ready::Yes => {}
                other => return other,
            }
        }
        // A draft or a schedule is kept here when its conversation is encrypted: its
        // conversation is read from the store first, to know.
        if let Intent::SetDraft { conv, .. } | Intent::Schedule { conv, .. } = intent {
            match self.ready(&DocId::conv(&tenant, conv)) {
                Ready::Yes => {}
                other => return other,
            }
        }
        let targets = self.targets(intent);
        let mut state = Ready::Yes;
        for target in &targets {
            match self.ready(target) {
                Ready::Yes => {}
                Ready::Wait => state = Ready::Wait,
                failed @ Ready::Failed(_) => return failed,
            }
        }
        match state {
            // An encrypted conversation's group must be where the intent writes into it.
            Ready::Yes => self.group_ready(intent),
            other => other,
        }
    }

    /// A held intent that cannot run ends rejected with the reason (every intent with an
    /// id ends accepted or rejected); it wrote nothing.
    pub(super) fn refuse_held(
        &mut self,
        id: u64,
        intent: Intent,
        device_now: i64,
        error: &ClientError,
    ) {
        let (reason, detail) = match error {
            ClientError::Denied { reason, detail, .. } => (reason.clone(), detail.clone()),
            other => (self.explain(&intent, other.code()), other.to_string()),
        };
        let status = IntentStatus::Rejected {
            code: error.code().to_owned(),
            reason,
            detail,
        };
        let entry = OutboxEntry {
            id,
            intent,
            created_at: self.server_now(device_now),
            status: status.clone(),
            changes: Vec::new(),
            resend: false,
            sent_at: None,
        };
        self.outbox.insert(id, entry);
        self.persist_entry(id);
        self.out.push(Output::Event(Event::Intent { id, status }));
    }

    fn report(&mut self, doc: &DocId, error: &ClientError) {
        self.out.push(Output::Event(Event::Error {
            code: error.code().to_owned(),
            message: format!("{doc}: {error}"),
        }));
    }

    /// One step of `job`: `Some` when it still waits for a load.
    pub(super) fn step(&mut self, job: Job) -> Option<Job> {
        match job {
            Job::Intent {
                id,
                intent,
                device_now,
            } => match self.intent_ready(&intent) {
                Ready::Wait => Some(Job::Intent {
                    id,
                    intent,
                    device_now,
                }),
                Ready::Failed(e) => {
                    self.refuse_held(id, *intent, device_now, &e);
                    None
                }
                Ready::Yes => {
                    if let Err(e) = self.run_intent(Some(id), (*intent).clone(), device_now) {
                        self.refuse_held(id, *intent, device_now, &e);
                    }
                    None
                }
            },
            Job::Open { doc, request } => match self.have(&doc) {
                Ready::Wait => Some(Job::Open { doc, request }),
                Ready::Yes => {
                    if let Some(request) = request {
                        self.done(request, Outcome::Opened);
                    }
                    None
                }
                Ready::Failed(e) => {
                    self.report(&doc, &e);
                    request.and_then(|r| self.fail(r, &e))
                }
            },
            Job::Restore { request, skipped } => self.step_restore(request, skipped),
            Job::OpenConversation {
                request,
                conv,
                limit,
                device_now,
            } => match self.step_open_conversation(&conv, limit, device_now) {
                Ready::Wait => Some(Job::OpenConversation {
                    request,
                    conv,
                    limit,
                    device_now,
                }),
                Ready::Yes => {
                    self.done(request, Outcome::Opened);
                    None
                }
                Ready::Failed(e) => self.fail(request, &e),
            },
            Job::Older {
                request,
                conv,
                device_now,
                target,
            } => self.step_older(request, conv, device_now, target),
        }
    }

    fn fail(&mut self, request: RequestId, error: &ClientError) -> Option<Job> {
        self.done(
            request,
            Outcome::Failed {
                code: error.code().to_owned(),
                message: error.to_string(),
            },
        );
        None
    }

    /// `load_older` requests that waited for a listing take their next step (with what the
    /// listing brought, or offline with what is stored).
    pub(super) fn page_again(&mut self, requests: Vec<Paging>) {
        for (request, conv, device_now) in requests {
            self.loads.queue.push_back(Job::Older {
                request,
                conv,
                device_now,
                target: None,
            });
        }
        self.advance();
    }

    /// Stored message buckets of `conv`, newest first.
    fn stored_buckets(&self, conv: &ConvId) -> Vec<Bucket> {
        let mut buckets: Vec<Bucket> = self
            .loads
            .stored()
            .filter_map(|d| match d.target() {
                DocTarget::Msgs(c, b) if c == conv => Some(*b),
                _ => None,
            })
            .collect();
        buckets.sort_unstable_by(|a, b| b.cmp(a));
        buckets
    }

    /// Message buckets of `conv` in memory.
    fn loaded_buckets(&self, conv: &ConvId) -> BTreeSet<Bucket> {
        buckets_of(&self.docs, &self.config.tenant, conv)
            .map(|(b, _)| b)
            .collect()
    }

    fn step_open_conversation(&mut self, conv: &ConvId, limit: usize, device_now: i64) -> Ready {
        let conv_doc = DocId::conv(&self.config.tenant, conv);
        match self.have(&conv_doc) {
            Ready::Yes => {}
            other => return other,
        }
        // The newest part known of the current period (the live end; newer parts the
        // server lists are followed when they come).
        let period = self
            .server_now(device_now)
            .div_euclid(self.bucket_ms(conv).max(1));
        let current = self
            .newest_known(conv, period)
            .unwrap_or(Bucket::first(period));
        match self.have(&DocId::msgs(&self.config.tenant, conv, current)) {
            Ready::Yes => {}
            other => return other,
        }
        // Newest first, one at a time: only what the first screen needs is read.
        for bucket in self.stored_buckets(conv) {
            if self.timeline(conv).len() >= limit {
                break;
            }
            match self.have(&DocId::msgs(&self.config.tenant, conv, bucket)) {
                Ready::Yes => {}
                other => return other,
            }
        }
        Ready::Yes
    }

    /// The next older part to load: the newest known one (stored or listed by the server)
    /// older than what is in memory; else, online, the server's listing is asked for and
    /// the request waits for it; offline (or when a listing failed), the first part of the period before (down to
    /// the conversation's first period).
    fn step_older(
        &mut self,
        request: RequestId,
        conv: ConvId,
        device_now: i64,
        target: Option<DocId>,
    ) -> Option<Job> {
        let waiting = |target| Job::Older {
            request,
            conv: conv.clone(),
            device_now,
            target,
        };
        let target = match target {
            Some(target) => target,
            None => {
                let loaded = self.loaded_buckets(&conv);
                let oldest = loaded.first().copied();
                let next_known = self
                    .known_buckets(&conv)
                    .into_iter()
                    .rev()
                    .find(|b| oldest.is_none_or(|o| *b < o) && !loaded.contains(b));
                match next_known {
                    Some(bucket) => DocId::msgs(&self.config.tenant, &conv, bucket),
                    None if self.buckets.reached_start(&conv) => {
                        self.done(request, Outcome::Older { more: false });
                        return None;
                    }
                    None if self.online && self.buckets.may_ask(&conv) => {
                        self.wait_for_listing(request, &conv, oldest, device_now);
                        return None;
                    }
                    None => {
                        match self.have(&DocId::conv(&self.config.tenant, &conv)) {
                            Ready::Yes => {}
                            Ready::Wait => return Some(waiting(None)),
                            Ready::Failed(e) => return self.fail(request, &e),
                        }
                        let first = self
                            .conversation(&conv)
                            .and_then(|c| c.meta)
                            .map(|m| m.created_at.div_euclid(m.bucket_ms.max(1)));
                        let now = self.server_now(device_now);
                        let candidate = oldest.map_or_else(
                            || now.div_euclid(self.bucket_ms(&conv).max(1)),
                            |o| o.period - 1,
                        );
                        match first {
                            Some(first) if candidate >= first => {
                                DocId::msgs(&self.config.tenant, &conv, candidate)
                            }
                            _ => {
                                self.done(request, Outcome::Older { more: false });
                                return None;
                            }
                        }
                    }
                }
            }
        };
        match self.have(&target) {
            Ready::Wait => Some(waiting(Some(target))),
            Ready::Yes => {
                self.done(request, Outcome::Older { more: true });
                None
            }
            Ready::Failed(e) => self.fail(request, &e),
        }
    }

    /// Start-up: the outbox and the index first; then every stored document but message
    /// buckets (on a new device: this account's own private and profile documents), the newest stored bucket of each conversation (the list shows
    /// previews and unread counts), and the buckets the outbox writes to (pending messages
    /// show in their timelines). Older buckets wait for paging.
    fn step_restore(&mut self, request: RequestId, mut skipped: BTreeSet<DocId>) -> Option<Job> {
        let waiting = |skipped| Job::Restore { request, skipped };
        if matches!(self.ready_index(), Ready::Wait) {
            return Some(waiting(skipped));
        }
        let (tenant, me) = (self.config.tenant.clone(), self.config.account.clone());
        let mut wanted: Vec<DocId> = self
            .loads
            .stored()
            .filter(|d| !matches!(d.target(), DocTarget::Msgs(..)))
            .cloned()
            .collect();
        // A new device (empty store) follows them from the server; from then on they are
        // stored and restored with the rest.
        if wanted.is_empty() {
            wanted.push(DocId::private(&tenant, &me));
            wanted.push(DocId::profile(&tenant, &me));
        }
        let convs: Vec<ConvId> = wanted
            .iter()
            .filter_map(|d| match d.target() {
                DocTarget::Conv(c) => Some(c.clone()),
                _ => None,
            })
            .collect();
        for conv in &convs {
            if let Some(newest) = self.stored_buckets(conv).first() {
                wanted.push(DocId::msgs(&tenant, conv, *newest));
            }
        }
        let mut wait = self.have_all(&wanted, &mut skipped);
        if wait {
            return Some(waiting(skipped));
        }
        // What each pending intent wrote to, as written (a message's part was chosen then).
        let pending: Vec<(Intent, Vec<DocId>)> = self
            .outbox
            .values()
            .filter(|e| !e.is_final())
            .map(|e| {
                let written = e
                    .changes
                    .iter()
                    .filter_map(|c| DocId::parse(&c.doc).ok())
                    .collect();
                (e.intent.clone(), written)
            })
            .collect();
        for (intent, written) in &pending {
            if let Some(conv) = apply::conv_of(intent, &tenant, &me) {
                if self.have_all(&[DocId::conv(&tenant, &conv)], &mut skipped) {
                    wait = true;
                    continue;
                }
            }
            let targets = if written.is_empty() {
                self.targets(intent)
            } else {
                written.clone()
            };
            wait |= self.have_all(&targets, &mut skipped);
        }
        if wait {
            return Some(waiting(skipped));
        }
        self.done(request, Outcome::Restored);
        None
    }

    /// `have` for each document not skipped; a failure is reported and skipped from then
    /// on. Returns whether one is still loading.
    fn have_all(&mut self, docs: &[DocId], skipped: &mut BTreeSet<DocId>) -> bool {
        let mut wait = false;
        for doc in docs {
            if skipped.contains(doc) {
                continue;
            }
            match self.have(doc) {
                Ready::Yes => {}
                Ready::Wait => wait = true,
                Ready::Failed(e) => {
                    self.report(doc, &e);
                    skipped.insert(doc.clone());
                }
            }
        }
        wait
    }

    /// Queues the start-up restore (see `restoring`).
    pub(super) fn start_restore(&mut self) {
        self.loads.queue.push_back(Job::Restore {
            request: RequestId::RESTORE,
            skipped: BTreeSet::new(),
        });
        self.advance();
    }

    /// Whether `id` can be used now; asks for it when it is stored and not in memory.
    pub(super) fn ready(&mut self, id: &DocId) -> Ready {
        let (ready, load) = self.loads.ready(id, self.docs.contains_key(id));
        self.ask(load);
        ready
    }

    /// Whether the store's index is known; asks for it (the start-up load) when not.
    pub(super) fn ready_index(&mut self) -> Ready {
        let (ready, load) = self.loads.ready_index();
        self.ask(load);
        ready
    }

    fn ask(&mut self, load: Option<Load>) {
        if let Some(load) = load {
            self.out.push(Output::Load(load));
        }
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
        let Answer {
            wanted,
            entries,
            refused,
        } = self.loads.answer(id, answer)?;
        match (wanted, entries) {
            (Wanted::Start, Ok(entries)) => self.on_start_loaded(entries),
            (Wanted::Start, Err(e)) => self.fail_start(e),
            (Wanted::Search(ask), result) => self.searched(*ask, result),
            (Wanted::Unindex(doc), Ok(entries)) => self.unindexed(&doc, entries),
            (Wanted::Migrate, result) => self.migrated(result),
            (Wanted::TermCheck(terms), result) => self.terms_checked(terms, result),
            // Its records went with the bucket; its postings stay until a search finds them
            // without a record and drops them.
            (Wanted::Unindex(_), Err(_)) => {}
            (Wanted::Doc(doc), result) => {
                if !self.docs.contains_key(&doc) {
                    let restored = result.and_then(|entries| {
                        let split = records::split_doc(&doc, entries);
                        self.restore_doc(&doc, split.snapshot.as_deref(), &split.changes)?;
                        self.restore_opened(&doc, split.opened);
                        if let Some(state) = self.docs.get_mut(&doc) {
                            state.search = BucketIndex::restored(&doc, split.search);
                        }
                        self.index_due.doc(&doc);
                        Ok(())
                    });
                    if let Err(e) = restored {
                        self.loads.failed(doc, e);
                    }
                }
            }
        }
        self.advance();
        refused.map_or(Ok(()), Err)
    }

    fn on_start_loaded(&mut self, entries: Vec<(String, Vec<u8>)>) {
        let start = records::split_start(entries);
        self.search_started(&start.search);
        if let Err(e) = self.restore_outbox(&start.outbox) {
            self.out.push(Output::Event(Event::Error {
                code: e.code().to_owned(),
                message: format!("outbox: {e}"),
            }));
        }
        self.restore_here(&start.drafts, &start.scheduled);
        let mut stored = start.index;
        // Documents opened fresh while the index was unknown are stored too.
        stored.extend(self.docs.keys().cloned());
        self.loads.index_read(stored);
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
                let device_now = match &waiting {
                    Job::Intent { device_now, .. } => Some(*device_now),
                    _ => None,
                };
                self.loads.queue.push_front(waiting);
                // A sealed write waits for the removal its group owes: that commit first.
                if let Some(owed) = device_now.and_then(|now| self.take_owed_job(now)) {
                    self.loads.queue.push_front(owed);
                    continue;
                }
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
        self.settle_heal();
    }

    /// Asks for the stored documents `intent` touches that no load brings yet (its buckets
    /// only once its conversation is in memory: the conversation sets their width).
    fn prefetch(&mut self, intent: &Intent) {
        let (tenant, me) = (self.config.tenant.clone(), self.config.account.clone());
        let conv = apply::conv_of(intent, &tenant, &me).map(|c| DocId::conv(&tenant, &c));
        let mut wanted: Vec<DocId> = conv.iter().cloned().collect();
        if conv.is_none_or(|c| self.docs.contains_key(&c) || !self.loads.is_stored(&c)) {
            wanted.extend(self.targets(intent));
        }
        for doc in wanted {
            let load = self.loads.prefetch(&doc, self.docs.contains_key(&doc));
            self.ask(load);
        }
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
