//! One serialization unit: a conversation (its `conv` document and message buckets) or an
//! account (profile and private documents). Jobs run one after another; accepted changes
//! are committed in batches (see `pipeline`) and acked only once durable.

mod fair;
mod pipeline;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_core::automerge::legacy::{Key, OpType};
use confab_core::automerge::{ActorId, Change, ScalarValue};
use confab_core::doc::{schema::keys, IntentTag};
use confab_core::ids::{AccountId, ConvId, DocId, DocTarget};
use confab_core::model::conversation::Conversation;
use confab_core::policy::{Author, Effect};
use confab_core::protocol::{ErrorCode, ServerFrame};
use confab_core::validate::{self, refresh_conversation, AcceptedDoc, Env, Verdict};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use self::pipeline::{oldest_done, Batch, InFlight, MAX_IN_FLIGHT};
use super::committer::CommitResult;
use super::{now_ms, projection, ConnHandle, Engine, Job, SubmitOutcome, UnitKey};
use crate::store::{NewChange, RejectionRecord, StoredDoc};

struct DocState {
    accepted: AcceptedDoc,
    /// The seq of the newest accepted change (validated, maybe not yet committed).
    last_seq: u64,
    /// The seq of the newest committed change.
    committed_seq: u64,
    snapshot_seq: u64,
    last_used: u64,
}

struct Pending {
    change: NewChange,
    effects: Vec<Effect>,
}

/// Where a change's answer comes from: decided now, or after the commit of `pending[i]`.
enum Slot {
    Done(SubmitOutcome),
    Pending(usize),
}

enum Waiter {
    Submit(oneshot::Sender<Vec<SubmitOutcome>>, Vec<Slot>),
    Write(oneshot::Sender<SubmitOutcome>, Slot),
}

/// Changes validated before one commit.
const MAX_BATCH_CHANGES: usize = 512;

/// Staged changes a bucket keeps before they are applied in one Automerge call (each call
/// has a high fixed cost; the overlay lets validation go on without them).
const MAX_STAGED: usize = 2048;

/// Staged changes that make a unit with nothing else to do apply them: a quiet unit never
/// stalls long on a big apply when the next message comes (32 take ~1 ms), a busy one
/// still applies in big, cheap calls.
const SPARE_APPLY: usize = 32;

fn job_changes(job: &Job) -> usize {
    match job {
        Job::Submit { changes, .. } => changes.len(),
        _ => 1,
    }
}

pub(crate) fn spawn(key: UnitKey, engine: Engine) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel(1024);
    let unit = Unit {
        key,
        engine,
        tx: tx.clone(),
        docs: HashMap::new(),
        conv: None,
        subscribers: HashMap::new(),
        bindings: HashMap::new(),
        last_post: HashMap::new(),
        tick: 0,
        batch: Batch::default(),
        in_flight: VecDeque::new(),
        epoch: Arc::new(AtomicBool::new(false)),
        broken: None,
    };
    tokio::spawn(unit.run(rx));
    tx
}

/// The actor the server writes REST intents with for `account`: stable, so its seq continues.
fn rest_actor(doc: &DocId, account: &AccountId) -> ActorId {
    let digest = Sha256::new()
        .chain_update(b"confab/rest/v1\0")
        .chain_update(doc.tenant().as_str().as_bytes())
        .chain_update(b"\0")
        .chain_update(account.as_str().as_bytes())
        .finalize();
    ActorId::from(&digest[..16])
}

fn failed(hash: Option<[u8; 32]>, message: impl Into<String>) -> Slot {
    Slot::Done(SubmitOutcome::Failed {
        code: ErrorCode::Internal,
        retry_after_ms: None,
        hash,
        message: message.into(),
    })
}

struct Unit {
    key: UnitKey,
    engine: Engine,
    tx: mpsc::Sender<Job>,
    docs: HashMap<DocId, DocState>,
    conv: Option<Conversation>,
    subscribers: HashMap<DocId, Vec<ConnHandle>>,
    bindings: HashMap<ActorId, AccountId>,
    last_post: HashMap<AccountId, i64>,
    tick: u64,
    /// The batch being validated.
    batch: Batch,
    /// Batches handed to the committer, oldest first.
    in_flight: VecDeque<InFlight>,
    /// Shared with the committer; set when a batch fails (see `pipeline`).
    epoch: Arc<AtomicBool>,
    /// Set when an Automerge call failed on accepted state; the unit reloads after the job.
    broken: Option<String>,
}

/// What the unit's loop woke up for.
enum Wake {
    Committed(CommitResult),
    /// Jobs wait in the fair queue.
    Queued,
    /// Nothing to do but staged changes to apply.
    Spare,
    Job(Job),
    Closed,
    Idle,
}

impl Unit {
    async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        // Jobs taken from the channel, waiting for their connection's turn. (Not a field:
        // a REST intent is not `Sync`, and `&self` is held across awaits.)
        let mut fair = fair::FairQueue::default();
        loop {
            let over = self.engine.units_in_memory() > self.engine.inner.config.max_units;
            let idle = if over {
                Duration::from_secs(1)
            } else {
                self.engine.inner.config.idle
            };
            let room = self.in_flight.len() < MAX_IN_FLIGHT;
            let staged = self
                .docs
                .values()
                .any(|s| s.accepted.staged_len() >= SPARE_APPLY);
            let queued = !fair.is_empty();
            let wake = tokio::select! {
                biased;
                result = oldest_done(&mut self.in_flight) => Wake::Committed(result),
                () = std::future::ready(()), if room && queued => Wake::Queued,
                job = tokio::time::timeout(idle, rx.recv()), if room && !queued => match job {
                    Ok(Some(job)) => Wake::Job(job),
                    Ok(None) => Wake::Closed,
                    Err(_) => Wake::Idle,
                },
                // Only when nothing else is ready: spare time applies staged changes, so a
                // quiet unit never stalls on a big apply when the next message comes.
                () = std::future::ready(()), if staged => Wake::Spare,
            };
            let job = match wake {
                Wake::Committed(result) => {
                    self.finish_oldest(result);
                    continue;
                }
                Wake::Spare => {
                    self.apply_staged(SPARE_APPLY - 1).await;
                    continue;
                }
                Wake::Job(job) => Some(job),
                Wake::Queued => None,
                Wake::Closed => break,
                Wake::Idle
                    if self.in_flight.is_empty()
                        && self.subscribers.values().all(Vec::is_empty) =>
                {
                    break
                }
                Wake::Idle => continue,
            };
            // Everything that arrived waits for its connection's turn (bounded: the rest
            // stays in the channel and pushes back on its connections). Bounded batches keep
            // ack latency and the memory of one commit in check.
            if let Some(job) = job {
                fair.push(job);
            }
            while fair.queued() < fair::MAX_QUEUED {
                match rx.try_recv() {
                    Ok(job) => fair.push(job),
                    Err(_) => break,
                }
            }
            let jobs = fair.take_batch(512, MAX_BATCH_CHANGES);
            self.process(jobs).await;
        }
        // Leave the registry first, then refuse new sends and finish what is queued.
        self.engine.unit_stopped(&self.key, &self.tx);
        rx.close();
        let mut rest = Vec::new();
        while !fair.is_empty() {
            rest.extend(fair.take_batch(usize::MAX, usize::MAX));
        }
        while let Some(job) = rx.recv().await {
            rest.push(job);
        }
        if !rest.is_empty() {
            self.process(rest).await;
        }
        self.settle().await;
        self.set_loaded(0);
    }

    fn set_loaded(&mut self, count: usize) {
        let metrics = &self.engine.inner.metrics;
        let before = self.docs.len() as i64;
        metrics.docs_in_memory.inc_by(count as i64 - before);
        if count == 0 {
            self.docs.clear();
        }
    }

    /// Validates the jobs' changes into the current batch and hands it to the committer.
    async fn process(&mut self, jobs: Vec<Job>) {
        for job in jobs {
            match job {
                Job::Submit {
                    doc,
                    author,
                    changes,
                    reply,
                    received,
                    conn: _,
                } => {
                    let now = Instant::now();
                    let waited = now.saturating_duration_since(received);
                    self.engine
                        .inner
                        .metrics
                        .stages
                        .queue
                        .observe(waited.as_secs_f64());
                    self.batch.opened.get_or_insert(now);
                    let mut slots = Vec::with_capacity(changes.len());
                    for bytes in changes {
                        slots.push(self.accept(&doc, &author, bytes).await);
                    }
                    self.batch.waiting.push(Waiter::Submit(reply, slots));
                    self.reload().await;
                }
                Job::Write {
                    doc,
                    author,
                    intent,
                    reply,
                } => {
                    let slot = self.write(&doc, &author, intent).await;
                    self.batch.waiting.push(Waiter::Write(reply, slot));
                    self.reload().await;
                }
                other => {
                    // Reads and subscriptions see every earlier submit as committed, and
                    // the documents with every accepted change applied.
                    self.settle().await;
                    self.apply_staged(0).await;
                    self.handle(other).await;
                }
            }
        }
        self.start_commit().await;
        self.apply_staged(MAX_STAGED).await;
    }

    async fn load(&mut self, doc: &DocId) -> Result<(), String> {
        self.tick += 1;
        if let Some(state) = self.docs.get_mut(doc) {
            state.last_used = self.tick;
            return Ok(());
        }
        let stored: StoredDoc = self
            .engine
            .store()
            .load_doc(doc)
            .await
            .map_err(|e| e.to_string())?;
        let mut accepted = match &stored.snapshot {
            Some(bytes) => AcceptedDoc::load(doc.clone(), bytes),
            None => AcceptedDoc::new(doc.clone()),
        }
        .map_err(|e| format!("loading {doc}: {e}"))?;
        let changes = stored
            .changes
            .iter()
            .map(|(_, bytes)| Change::try_from(&bytes[..]))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("stored change of {doc}: {e}"))?;
        // One Automerge call for the whole log: its fixed cost per call dominates.
        accepted
            .apply_all(changes)
            .map_err(|e| format!("stored changes of {doc}: {e}"))?;
        self.engine.inner.metrics.docs_in_memory.inc();
        self.docs.insert(
            doc.clone(),
            DocState {
                accepted,
                last_seq: stored.last_seq,
                committed_seq: stored.last_seq,
                snapshot_seq: stored.snapshot_seq,
                last_used: self.tick,
            },
        );
        self.evict_buckets();
        Ok(())
    }

    /// Keeps at most `max_buckets` message buckets in memory (least recently used go). A
    /// bucket with changes not yet committed stays: reloaded, it would miss them.
    fn evict_buckets(&mut self) {
        let max = self.engine.inner.config.max_buckets.max(1);
        loop {
            let buckets: Vec<(&DocId, &DocState)> = self
                .docs
                .iter()
                .filter(|(id, _)| matches!(id.target(), DocTarget::Msgs(..)))
                .collect();
            if buckets.len() <= max {
                return;
            }
            let Some(oldest) = buckets
                .iter()
                .filter(|(_, s)| s.last_seq == s.committed_seq)
                .min_by_key(|(_, s)| s.last_used)
                .map(|(id, _)| (*id).clone())
            else {
                return;
            };
            self.docs.remove(&oldest);
            self.engine.inner.metrics.docs_in_memory.dec();
        }
    }

    /// Loads `doc` and, in a conversation unit, the conversation itself.
    async fn ensure(&mut self, doc: &DocId) -> Result<(), String> {
        if let UnitKey::Conv(tenant, conv) = self.key.clone() {
            let conv_doc = DocId::conv(&tenant, &conv);
            if self.conv.is_none() || !self.docs.contains_key(&conv_doc) {
                self.load(&conv_doc).await?;
                if let Some(state) = self.docs.get(&conv_doc) {
                    self.conv = Some(confab_core::doc::read::read_conversation(
                        state.accepted.doc(),
                        conv.clone(),
                    ));
                }
            }
        }
        self.load(doc).await
    }

    /// Drops everything in memory: after a failed commit, memory may hold what storage lost.
    fn reset(&mut self) {
        self.set_loaded(0);
        self.conv = None;
        self.bindings.clear();
    }

    async fn binding(&mut self, doc: &DocId, actor: &ActorId) -> Result<(), String> {
        if self.bindings.contains_key(actor) {
            return Ok(());
        }
        if let Some(account) = self
            .engine
            .store()
            .actor_account(doc.tenant(), actor.to_bytes())
            .await
            .map_err(|e| e.to_string())?
        {
            self.bindings.insert(actor.clone(), account);
        }
        Ok(())
    }

    /// The parent of a thread (or of a conversation whose creation names one).
    async fn parent_of(&self, doc: &DocId, change: &Change) -> HashMap<ConvId, Conversation> {
        let mut out = HashMap::new();
        let DocTarget::Conv(own) = doc.target() else {
            return out;
        };
        let from_state = self
            .conv
            .as_ref()
            .and_then(|c| c.meta.as_ref())
            .and_then(|m| m.thread.as_ref())
            .map(|t| t.parent.clone());
        let parent = from_state.or_else(|| {
            // Hostile bytes can make decoding panic; validation rejects them right after.
            let expanded =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| change.decode())).ok()?;
            expanded
                .operations
                .iter()
                .find_map(|op| match (&op.key, &op.action) {
                    (Key::Map(k), OpType::Put(ScalarValue::Str(s)))
                        if k.as_str() == keys::PARENT =>
                    {
                        ConvId::new(s.as_str()).ok()
                    }
                    _ => None,
                })
        });
        if let Some(parent) = parent.filter(|p| p != own) {
            let lookup = self.engine.conversation(doc.tenant(), &parent);
            // A cycle of units waiting on each other ends here instead of hanging.
            if let Ok(Some(conv)) = tokio::time::timeout(Duration::from_secs(2), lookup).await {
                out.insert(parent, conv);
            }
        }
        out
    }

    async fn accept(&mut self, doc: &DocId, author: &Author, bytes: Vec<u8>) -> Slot {
        let change = match validate::parse_change(&bytes) {
            Ok(c) => c,
            Err(r) => return self.reject(doc, author, None, "malformed_change", r.reason),
        };
        let hash = change.hash().0;
        if let Some(message) = &self.broken {
            return failed(Some(hash), message.clone());
        }
        if let Some(reason) = self.outsider(doc, author) {
            return self.reject(doc, author, Some(hash), "not_member", reason);
        }
        if let Err(e) = self.ensure(doc).await {
            return failed(Some(hash), e);
        }
        if let Err(e) = self.binding(doc, change.actor_id()).await {
            return failed(Some(hash), e);
        }
        if let Some(i) = self
            .batch
            .pending
            .iter()
            .position(|p| p.change.hash == hash && p.change.doc == *doc)
        {
            // Acked with it, like an accepted change, only to its writer or a reader; anyone
            // else goes on to validation, which refuses them (see `validate::validate`).
            let writer = self.batch.pending[i].change.account == author.account;
            if writer
                || self
                    .readable_by(doc, &author.account, author.service)
                    .is_ok()
            {
                return Slot::Pending(i);
            }
        }
        let others = self.parent_of(doc, &change).await;
        let now = now_ms();
        let verdict = {
            let Some(state) = self.docs.get_mut(doc) else {
                return failed(Some(hash), "document not loaded");
            };
            let env = Env {
                author,
                bindings: &self.bindings,
                conv: self.conv.as_ref(),
                others: &others,
                now_ms: now,
                last_post_ms: self.last_post.get(&author.account).copied(),
                urls: self.engine.inner.config.urls,
            };
            validate::validate_staged(&mut state.accepted, &env, change)
        };
        let accepted = match verdict {
            Err(r) => {
                return self.reject(doc, author, r.hash.map(|h| h.0), r.code.as_str(), r.reason)
            }
            Ok(Verdict::AlreadyAccepted(h)) => {
                return match self.engine.store().seq_of(doc, &h.0).await {
                    // A change folded into a snapshot keeps no seq of its own: report the snapshot's.
                    Ok(seq) => Slot::Done(SubmitOutcome::Ack {
                        hash: h.0,
                        seq: seq
                            .unwrap_or_else(|| self.docs.get(doc).map_or(0, |s| s.snapshot_seq)),
                    }),
                    Err(e) => failed(Some(h.0), e.to_string()),
                };
            }
            Ok(Verdict::Accept(a)) => *a,
        };
        let validate::Accepted {
            change,
            new_binding,
            effects,
            footprint,
            ..
        } = accepted;
        let Some(state) = self.docs.get_mut(doc) else {
            return failed(Some(hash), "document not loaded");
        };
        // Bucket changes wait in the document's stage and are applied in one Automerge call
        // per batch (flush); a projection that reads the bucket needs them applied now.
        let reads_bucket = effects
            .iter()
            .any(|e| matches!(e, Effect::EditBody(_) | Effect::DeleteMessage(_)));
        let staged = state.accepted.stage(change, footprint).and_then(|()| {
            if reads_bucket {
                state.accepted.apply_staged()
            } else {
                Ok(())
            }
        });
        if let Err(e) = staged {
            let message = format!("applying an accepted change: {e}");
            self.broken = Some(message.clone());
            return failed(Some(hash), message);
        }
        state.last_seq += 1;
        let seq = state.last_seq;
        if let Some(actor) = &new_binding {
            self.bindings.insert(actor.clone(), author.account.clone());
        }
        let projection =
            if let (DocTarget::Conv(_), Some(conv)) = (doc.target(), self.conv.as_mut()) {
                let was_created = conv.meta.is_some();
                refresh_conversation(conv, state.accepted.doc(), &effects);
                projection::for_conv(doc, conv, &effects, !was_created && conv.meta.is_some())
            } else {
                projection::for_msgs(doc, seq, state.accepted.doc(), &effects)
            };
        if effects.iter().any(|e| matches!(e, Effect::PostMessage(_))) {
            self.last_post.insert(author.account.clone(), now);
        }
        self.batch.pending.push(Pending {
            change: NewChange {
                doc: doc.clone(),
                hash,
                bytes,
                account: author.account.clone(),
                accepted_at: now,
                seq,
                bind_actor: new_binding.map(|a| a.to_bytes().to_vec()),
                projection,
            },
            effects,
        });
        Slot::Pending(self.batch.pending.len() - 1)
    }

    /// Why `author` may write nothing in message bucket `doc`, when that is known without
    /// validating: the conversation exists and the account was never a member of it (and is
    /// not a service account). Every bucket effect needs membership then (docs/POLICY.md);
    /// self-joins and creations go to the conversation document, not to buckets.
    fn outsider(&self, doc: &DocId, author: &Author) -> Option<String> {
        if author.service || !matches!(doc.target(), DocTarget::Msgs(..)) {
            return None;
        }
        let conv = self.conv.as_ref().filter(|c| c.meta.is_some())?;
        conv.member(&author.account)
            .is_none()
            .then(|| format!("{} is not a member of {}", author.account, conv.id))
    }

    fn reject(
        &self,
        doc: &DocId,
        author: &Author,
        hash: Option<[u8; 32]>,
        code: &str,
        reason: String,
    ) -> Slot {
        self.engine.inner.metrics.rejected(code);
        // Logged and stored in batches by the audit writer (`engine::audit`).
        self.engine.inner.audit.record(RejectionRecord {
            tenant: doc.tenant().clone(),
            doc: doc.to_string(),
            account: author.account.clone(),
            hash,
            code: code.to_owned(),
            reason: reason.clone(),
            at: now_ms(),
        });
        Slot::Done(SubmitOutcome::Reject {
            hash,
            code: code.to_owned(),
            reason,
        })
    }

    async fn write(&mut self, doc: &DocId, author: &Author, intent: super::IntentFn) -> Slot {
        if let Some(message) = &self.broken {
            return failed(None, message.clone());
        }
        if let Err(e) = self.ensure(doc).await {
            return failed(None, e);
        }
        let Some(state) = self.docs.get_mut(doc) else {
            return failed(None, "document not loaded");
        };
        if let Err(e) = state.accepted.apply_staged() {
            let message = format!("applying accepted changes: {e}");
            self.broken = Some(message.clone());
            return failed(None, message);
        }
        let mut fork = state
            .accepted
            .doc()
            .fork()
            .with_actor(rest_actor(doc, &author.account));
        let tag = IntentTag::new(format!("rest-{}", now_ms()), "rest");
        match intent(&mut fork, &tag) {
            Ok(Some(_)) => {}
            Ok(None) => {
                return self.reject(
                    doc,
                    author,
                    None,
                    "not_applicable",
                    "the intent changes nothing".into(),
                )
            }
            Err(e) => return self.reject(doc, author, None, "not_applicable", e.to_string()),
        }
        let Some(change) = fork.get_last_local_change() else {
            return failed(None, "the intent made no change");
        };
        let bytes = change.raw_bytes().to_vec();
        self.accept(doc, author, bytes).await
    }

    /// Applies the staged changes of every document holding more than `over` (one
    /// Automerge call each). On an error memory no longer matches what was accepted: the
    /// batches in flight are refused, and once the committer is past them the unit reloads
    /// from storage.
    async fn apply_staged(&mut self, over: usize) {
        let mut failure = None;
        for (doc, state) in self.docs.iter_mut() {
            if state.accepted.staged_len() <= over {
                continue;
            }
            if let Err(e) = state.accepted.apply_staged() {
                failure = Some(format!("applying accepted changes of {doc}: {e}"));
                break;
            }
        }
        if let Some(message) = failure {
            self.broken = Some(message);
            self.reload().await;
        }
    }

    /// Memory no longer matches what was accepted (an Automerge call failed): refuse the
    /// batches validated on it, wait until the committer is past them, and start over from
    /// storage.
    async fn reload(&mut self) {
        let Some(message) = self.broken.take() else {
            return;
        };
        tracing::error!(%message, "reloading from storage");
        self.epoch.store(true, std::sync::atomic::Ordering::SeqCst);
        self.start_commit().await;
        self.epoch = Arc::new(AtomicBool::new(false));
        self.reset();
        self.settle().await;
    }

    /// May `conn` read `doc`?
    fn readable(&self, doc: &DocId, conn: &ConnHandle) -> Result<(), (ErrorCode, String)> {
        self.readable_by(doc, &conn.account, conn.service)
    }

    /// May `account` (a service account when `service`) read `doc`?
    fn readable_by(
        &self,
        doc: &DocId,
        account: &AccountId,
        service: bool,
    ) -> Result<(), (ErrorCode, String)> {
        match doc.target() {
            DocTarget::Profile(_) => Ok(()),
            DocTarget::Private(owner) if owner == account => Ok(()),
            DocTarget::Private(_) => Err((
                ErrorCode::Forbidden,
                "private documents are their account's".into(),
            )),
            DocTarget::Conv(_) | DocTarget::Msgs(..) => {
                let conv = self.conv.as_ref().filter(|c| c.meta.is_some());
                match conv {
                    None => Err((ErrorCode::Forbidden, "no such conversation".into())),
                    Some(_) if service => Ok(()),
                    Some(c) if c.active_member(account).is_some() => Ok(()),
                    Some(_) => Err((
                        ErrorCode::Forbidden,
                        format!("{account} is not an active member"),
                    )),
                }
            }
        }
    }

    async fn handle(&mut self, job: Job) {
        match job {
            Job::Subscribe {
                doc,
                after,
                conn,
                reply,
            } => {
                let result = self.subscribe(&doc, after, &conn).await;
                if result.is_ok() {
                    self.subscribers.entry(doc).or_default().push(conn);
                }
                let _ = reply.send(result);
            }
            Job::Unsubscribe { doc, conn } => {
                if let Some(subs) = self.subscribers.get_mut(&doc) {
                    subs.retain(|c| c.id != conn);
                }
            }
            Job::Signal {
                doc,
                from,
                conn,
                kind,
                data,
                reply,
            } => {
                let result = self.signal(&doc, &from, conn, kind, data).await;
                let _ = reply.send(result);
            }
            Job::Conversation { reply } => {
                let conv = match &self.key {
                    UnitKey::Conv(tenant, conv) => {
                        let id = DocId::conv(tenant, conv);
                        match self.ensure(&id).await {
                            Ok(()) => self.conv.clone().filter(|c| c.meta.is_some()),
                            Err(_) => None,
                        }
                    }
                    UnitKey::Account(..) => None,
                };
                let _ = reply.send(conv);
            }
            Job::Barrier { reply } => {
                let _ = reply.send(());
            }
            Job::Submit { .. } | Job::Write { .. } => {}
        }
    }

    /// Relays a signal from an author who may read the conversation; `from` is always the
    /// authenticated account, never anything the client sent.
    async fn signal(
        &mut self,
        doc: &DocId,
        from: &Author,
        conn: u64,
        kind: confab_core::protocol::SignalKind,
        data: Option<String>,
    ) -> Result<(), (ErrorCode, String)> {
        self.ensure(doc)
            .await
            .map_err(|e| (ErrorCode::Internal, e))?;
        self.readable_by(doc, &from.account, from.service)?;
        let frame = ServerFrame::Signal {
            doc: doc.to_string(),
            from: from.account.to_string(),
            kind,
            data,
        };
        self.push(doc, frame, Some(conn));
        Ok(())
    }

    async fn subscribe(
        &mut self,
        doc: &DocId,
        after: u64,
        conn: &ConnHandle,
    ) -> Result<(), (ErrorCode, String)> {
        self.ensure(doc).await.map_err(|e| {
            // Failed fast because the storage is down: retryable, say so.
            let code = match self.engine.health().is_down() {
                true => ErrorCode::Unavailable,
                false => ErrorCode::Internal,
            };
            (code, e)
        })?;
        self.readable(doc, conn)?;
        let info = self.docs.get(doc).map(|s| super::catchup::DocInfo {
            accepted: &s.accepted,
            last_seq: s.last_seq,
            snapshot_seq: s.snapshot_seq,
        });
        super::catchup::send(&self.engine, doc, after, info, conn).await
    }
}
