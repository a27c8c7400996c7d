//! One serialization unit: a conversation (its `conv` document and message buckets) or an
//! account (profile and private documents). Jobs run one after another; accepted changes
//! are committed in batches (see `pipeline`) and acked only once durable.

mod closed;
mod cut;
mod expire;
mod fair;
mod pipeline;
mod presence;
pub(super) mod recent;
mod remote;
mod search;
mod threads;
mod waiting;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_core::accept::{
    AcceptError, Acceptor, AcceptorConfig, Decision, Need, Step, Submission,
};
use confab_core::doc::IntentTag;
use confab_core::ids::{AccountId, DocId, DocTarget};
use confab_core::policy::{Author, Effect};
use confab_core::protocol::{encode_server, ErrorCode, ServerFrame};
use confab_core::validate::{RejectCode, Rejection};
use tokio::sync::{mpsc, oneshot};

use self::pipeline::{oldest_done, Batch, InFlight, MAX_IN_FLIGHT};
use super::committer::CommitResult;
use super::saved_parts::SavedPart;
use super::threads::PARENT_TIMEOUT;
use super::{now_ms, projection, ConnHandle, Engine, Job, SubmitOutcome, UnitKey};
use crate::net::frame::binary_frame;
use crate::store::{NewChange, RejectionRecord, StoreError, StoredDoc};

/// Why a unit could not decide a change (it is answered `internal` or `unavailable`).
#[derive(Debug, thiserror::Error)]
enum UnitError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Accept(#[from] AcceptError),
    /// A thread's parent could not be asked (its unit did not answer in time, or failed).
    #[error("the thread's parent: {0}")]
    Parent(String),
    /// Another conversation's unit did not answer in time whether it is encrypted.
    #[error("{0} did not answer in time")]
    Unanswered(String),
}

struct Pending {
    change: NewChange,
    effects: Vec<Effect>,
    /// Who submitted it (validated again with it if another node commits first).
    author: Author,
}

/// Where a change's answer comes from: decided now, after the commit of `pending[i]`, or
/// (a resubmission of a change accepted in a batch still being committed) acked once the
/// batch it waits in is committed with every batch before it.
enum Slot {
    Done(SubmitOutcome),
    Pending(usize),
    Durable {
        hash: [u8; 32],
        seq: u64,
    },
    /// A change whose batch lost its commit to another node, to validate again.
    Again {
        doc: DocId,
        author: Author,
        bytes: Vec<u8>,
    },
}

/// The answer to a resubmission that waited for a batch another node's commit made
/// invalid: retryable (the client sends it again, and it is acked if it was stored).
fn lost_slot(hash: Option<[u8; 32]>) -> Slot {
    Slot::Done(SubmitOutcome::Failed {
        code: ErrorCode::Internal,
        retry_after_ms: None,
        hash,
        message: "the batch it waited for lost its commit to another node".into(),
    })
}

/// Answers waiting for a batch's commit: one submit's, or one REST write's.
struct Waiter {
    reply: Reply,
    slots: Vec<Slot>,
    /// How many times its changes were validated again because another node committed
    /// first (bounded by `MAX_ATTEMPTS`).
    attempts: u8,
}

enum Reply {
    Submit(oneshot::Sender<Vec<SubmitOutcome>>),
    Write(oneshot::Sender<SubmitOutcome>),
}

impl Waiter {
    fn send(self, outcomes: Vec<SubmitOutcome>) {
        match self.reply {
            Reply::Submit(reply) => {
                let _ = reply.send(outcomes);
            }
            Reply::Write(reply) => {
                if let Some(outcome) = outcomes.into_iter().next() {
                    let _ = reply.send(outcome);
                }
            }
        }
    }
}

/// Times a change is validated again after losing its commit to another node before the
/// client is told to resubmit (`internal`, retryable): a hot conversation with writers on
/// every node must not keep one change cycling.
const MAX_ATTEMPTS: u8 = 8;

/// How long a unit that lost a commit to another node keeps one small batch in flight.
const CONTENDED_FOR: Duration = Duration::from_secs(1);

/// Changes per batch in that time.
const CONTENDED_BATCH: usize = 64;

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

pub(crate) fn spawn(key: UnitKey, engine: Engine) -> super::UnitHandle {
    let (tx, rx) = mpsc::channel(1024);
    let inbox = Arc::new(super::cluster::Inbox::default());
    let config = AcceptorConfig {
        urls: engine.inner.config.urls,
        max_buckets: engine.inner.config.max_buckets,
    };
    let unit = Unit {
        acceptor: Acceptor::new(key.clone(), config),
        loaded: 0,
        key,
        engine,
        tx: tx.clone(),
        subscribers: HashMap::new(),
        presence: presence::PresenceMemory::default(),
        waiting: waiting::WaitingDevices::default(),
        batch: Batch::default(),
        in_flight: VecDeque::new(),
        epoch: Arc::new(AtomicBool::new(false)),
        inbox: inbox.clone(),
        delivered: HashMap::new(),
        retries: Vec::new(),
        stale: Vec::new(),
        lost_epoch: None,
        contended_until: None,
        written: HashMap::new(),
        recent: HashMap::new(),
        closed: Vec::new(),
        unsure: false,
        parent: None,
    };
    tokio::spawn(unit.run(rx));
    super::UnitHandle { tx, inbox }
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
    /// Decides every change; the unit answers its needs and carries out its verdicts.
    acceptor: Acceptor,
    /// Documents the acceptor held when the `docs_in_memory` gauge was last set.
    loaded: usize,
    subscribers: HashMap<DocId, Vec<ConnHandle>>,
    /// The last presence relayed here per subscribed person, for new subscribers.
    presence: presence::PresenceMemory,
    /// Devices waiting to be added to the conversation's group, for new subscribers.
    waiting: waiting::WaitingDevices,
    /// The batch being validated.
    batch: Batch,
    /// Batches handed to the committer, oldest first.
    in_flight: VecDeque<InFlight>,
    /// Shared with the committer; set when a batch fails (see `pipeline`).
    epoch: Arc<AtomicBool>,
    /// Other nodes' commits to this unit's documents (see `remote`).
    inbox: Arc<super::cluster::Inbox>,
    /// The newest seq pushed to each subscribed document's subscribers.
    delivered: HashMap<DocId, u64>,
    /// Answers whose changes lost their commit to another node: validated again, in their
    /// order, before anything newer (see `remote`).
    retries: Vec<Waiter>,
    /// Documents another node committed to first: read from the log before the retries.
    stale: Vec<DocId>,
    /// The epoch whose batches are validated again rather than failed (the one a conflict
    /// ended; the batches validated on top of the lost one come back refused).
    lost_epoch: Option<Arc<AtomicBool>>,
    /// Until when the unit commits one batch at a time (it lost a commit to another node).
    contended_until: Option<Instant>,
    /// When each document last had a change accepted here (see `remote::catch_up`).
    written: HashMap<DocId, Instant>,
    /// The newest committed changes of the documents the acceptor holds (see `recent`).
    recent: HashMap<DocId, recent::RecentLog>,
    /// Bucket parts that closed, whose saves are still to be kept (see `closed`).
    closed: Vec<DocId>,
    /// A commit failed in an outage and memory was rewound to what was committed before it
    /// (kept to serve reads while the storage is down). That commit may have been stored
    /// anyway, so memory is dropped before anything else once the storage is back.
    unsure: bool,
    /// The parent this thread is registered under (see `threads`).
    parent: Option<confab_core::ids::ConvId>,
}

/// What the unit's loop woke up for.
enum Wake {
    Committed(CommitResult),
    /// Other nodes committed to this unit's documents.
    Remote,
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
            // Right after losing a commit to another node, one batch at a time: every batch in
            // flight is lost with the first, so a deep pipeline only multiplies the waste.
            let contended = self.contended_until.is_some_and(|t| Instant::now() < t);
            let depth = if contended { 1 } else { MAX_IN_FLIGHT };
            let room = self.in_flight.len() < depth;
            let staged = self.acceptor.most_staged() >= SPARE_APPLY;
            let queued = !fair.is_empty();
            if !self.retries.is_empty() {
                // Changes that lost their commit to another node go before anything newer.
                self.settle().await;
                continue;
            }
            let inbox = self.inbox.clone();
            let wake = tokio::select! {
                biased;
                result = oldest_done(&mut self.in_flight) => Wake::Committed(result),
                () = inbox.wait() => Wake::Remote,
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
                    if !self.keep_closed_parts() {
                        self.reload().await;
                    }
                    continue;
                }
                Wake::Remote => {
                    self.take_remote().await;
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
            let jobs = fair.take_batch(512, self.batch_limit());
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
        self.reset();
        self.leave_parent();
    }

    /// Changes per batch: fewer right after a commit lost to another node, so a batch is
    /// validated and committed before the next other node's commit comes in between.
    fn batch_limit(&self) -> usize {
        match self.contended_until {
            Some(until) if Instant::now() < until => CONTENDED_BATCH,
            _ => MAX_BATCH_CHANGES,
        }
    }

    /// Validates the jobs' changes into the current batch and hands it to the committer.
    async fn process(&mut self, jobs: Vec<Job>) {
        self.trust_memory();
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
                    self.batch.waiting.push(Waiter {
                        reply: Reply::Submit(reply),
                        slots,
                        attempts: 0,
                    });
                    self.reload().await;
                }
                Job::Write {
                    doc,
                    author,
                    intent,
                    reply,
                } => {
                    let slot = self.write(&doc, &author, intent).await;
                    self.batch.waiting.push(Waiter {
                        reply: Reply::Write(reply),
                        slots: vec![slot],
                        attempts: 0,
                    });
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

    /// Answers the acceptor's need for a stored document.
    async fn load(&mut self, doc: DocId) -> Result<(), UnitError> {
        let id = doc.clone();
        let stored: StoredDoc = self
            .engine
            .read(move |store| async move { store.load_doc(&id).await })
            .await?;
        let result = self.acceptor.load(
            doc.clone(),
            confab_core::accept::StoredDoc {
                snapshot: stored.snapshot.as_deref(),
                changes: stored.changes.iter().map(|(_, b)| &b[..]).collect(),
                last_seq: stored.last_seq,
                snapshot_seq: stored.snapshot_seq,
                policy_seq: stored.policy_seq,
            },
        );
        if result.is_ok() {
            self.remember_loaded(&doc, stored.changes);
        }
        self.count_loaded();
        Ok(result?)
    }

    /// Loads what reading or writing `doc` needs (its conversation first).
    async fn prepare(&mut self, doc: &DocId) -> Result<(), UnitError> {
        while let Some(Need::Doc(id)) = self.acceptor.need_to_read(doc)? {
            self.load(id).await?;
        }
        Ok(())
    }

    /// Keeps the `docs_in_memory` gauge in step with what the acceptor holds.
    fn count_loaded(&mut self) {
        let now = self.acceptor.loaded_len();
        let metric = &self.engine.inner.metrics.docs_in_memory;
        metric.inc_by(now as i64 - self.loaded as i64);
        self.loaded = now;
        self.prune_recent();
    }

    /// Drops everything in memory: after a failed commit, memory may hold what storage lost.
    fn reset(&mut self) {
        self.acceptor.reset();
        self.unsure = false;
        self.count_loaded();
    }

    /// After an outage, memory that was kept to serve reads is dropped before the unit
    /// does anything else (see `unsure`).
    fn trust_memory(&mut self) {
        if self.unsure && !self.engine.health().is_down() {
            tracing::debug!("storage back: reloading what was kept through the outage");
            self.reset();
        }
    }

    /// Drives the acceptor through one submission, answering its needs from storage and
    /// the other units.
    async fn decide(&mut self, sub: &mut Submission<'_>) -> Result<Decision, UnitError> {
        loop {
            match self.acceptor.step(sub) {
                Step::Done(decision) => return Ok(decision),
                Step::Need(Need::Doc(id)) => self.load(id).await?,
                Step::Need(Need::Binding(actor)) => {
                    let tenant = sub.doc().tenant();
                    let bindings = &self.engine.inner.bindings;
                    let account = match bindings.get(tenant, actor.to_bytes()) {
                        Some(account) => Some(account),
                        None => {
                            let (t, a) = (tenant.clone(), actor.to_bytes().to_vec());
                            let found = self
                                .engine
                                .read(move |store| async move { store.actor_account(&t, &a).await })
                                .await?;
                            if let Some(account) = &found {
                                bindings.remember(tenant, actor.to_bytes(), account);
                            }
                            found
                        }
                    };
                    self.acceptor.answer_binding(sub, actor, account);
                }
                Step::Need(Need::Parent(parent)) => {
                    let lookup = self.engine.conversation(sub.doc().tenant(), &parent);
                    // A cycle of units waiting on each other ends here instead of hanging.
                    let found = tokio::time::timeout(PARENT_TIMEOUT, lookup)
                        .await
                        .ok()
                        .flatten();
                    sub.answer_parent(parent, found);
                }
                Step::Need(Need::Standing { parent, account }) => {
                    self.ask_standing(parent, account).await?;
                }
                Step::Need(Need::ParentMessage { parent, message }) => {
                    let found = self
                        .engine
                        .parent_message(sub.doc().tenant(), &parent, message)
                        .await
                        .map_err(UnitError::Parent)?;
                    sub.answer_parent_message(found);
                }
                Step::Need(Need::MessageBucket { message }) => {
                    let (tenant, doc) = (sub.doc().tenant().clone(), sub.doc().clone());
                    let DocTarget::Msgs(conv, _) = doc.target() else {
                        sub.answer_message_bucket(None);
                        continue;
                    };
                    let conv = conv.clone();
                    let bucket = self
                        .engine
                        .read(move |store| async move {
                            store.message_bucket(&tenant, &conv, &message).await
                        })
                        .await?;
                    sub.answer_message_bucket(bucket);
                }
                Step::Need(Need::Devices(ask)) => {
                    let tenant = sub.doc().tenant().clone();
                    let answer = self
                        .engine
                        .read(move |store| async move { store.directory_of(&tenant, &ask).await })
                        .await?;
                    sub.answer_devices(answer);
                }
                Step::Need(Need::Encrypted(convs)) => {
                    let mut encrypted = Vec::new();
                    for conv in convs {
                        let lookup = self.engine.conversation(sub.doc().tenant(), &conv);
                        // Another unit's: a cycle of units waiting on each other ends here.
                        let found = tokio::time::timeout(PARENT_TIMEOUT, lookup)
                            .await
                            .map_err(|_| UnitError::Unanswered(conv.to_string()))?;
                        if found.is_some_and(|c| c.encrypted()) {
                            encrypted.push(conv);
                        }
                    }
                    sub.answer_encrypted(encrypted);
                }
                Step::Need(Need::SeqOf(hash)) => {
                    let (doc, hash_bytes) = (sub.doc().clone(), hash.0);
                    let seq = self
                        .engine
                        .read(move |store| async move { store.seq_of(&doc, &hash_bytes).await })
                        .await?;
                    sub.answer_seq(seq);
                }
            }
        }
    }

    /// Accepts one change, then the follow-ups it calls for (`accept::follow`: a message
    /// reopening an archived conversation, a response moving its proposal's status), in
    /// the same batch so they commit together.
    async fn accept(&mut self, doc: &DocId, author: &Author, bytes: Vec<u8>) -> Slot {
        let slot = self.accept_one(doc, author, bytes).await;
        let Slot::Pending(i) = slot else {
            return slot;
        };
        let follow_up = self.batch.pending.get(i).map(|p| {
            self.acceptor
                .follow_up(doc, author, &p.effects, p.change.accepted_at)
        });
        match follow_up {
            // Decided like any change; a refusal is audited and leaves the change as it is.
            Some(Ok(next)) => {
                for next in next {
                    self.accept_one(&next.doc, author, next.bytes).await;
                }
            }
            Some(Err(e)) => tracing::warn!(%doc, error = %e, "follow-up not written"),
            None => {}
        }
        slot
    }

    async fn accept_one(&mut self, doc: &DocId, author: &Author, bytes: Vec<u8>) -> Slot {
        let now = now_ms();
        let mut sub = match Submission::new(doc, author, &bytes, now) {
            Ok(sub) => sub,
            Err(r) => return self.reject(doc, author, r),
        };
        if let Some(r) = self.refuse_expired_write(doc, sub.hash()).await {
            return self.reject(doc, author, r);
        }
        let hash = sub.hash().0;
        let decided = self.decide(&mut sub).await;
        let accepted = match decided {
            Err(e) => return failed(Some(hash), e.to_string()),
            Ok(Decision::Failed(e)) => return failed(Some(hash), e.to_string()),
            Ok(Decision::Rejected(r)) => return self.reject(doc, author, r),
            Ok(Decision::AlreadyAccepted {
                hash,
                seq,
                durable: true,
            }) => return Slot::Done(SubmitOutcome::Ack { hash: hash.0, seq }),
            // Accepted in a batch not yet committed: acked with that commit, never before.
            Ok(Decision::AlreadyAccepted {
                hash,
                seq,
                durable: false,
            }) => return Slot::Durable { hash: hash.0, seq },
            Ok(Decision::Accepted(a)) => {
                self.written.insert(doc.clone(), Instant::now());
                a
            }
        };
        let fence = match (accepted.fence, &self.key) {
            (Some(policy_seq), UnitKey::Conv(tenant, conv)) => Some(crate::store::Fence {
                conv_doc: DocId::conv(tenant, conv),
                policy_seq,
            }),
            _ => None,
        };
        let parent_fence =
            accepted
                .parent_fence
                .as_ref()
                .map(|(parent, policy_seq)| crate::store::Fence {
                    conv_doc: DocId::conv(doc.tenant(), parent),
                    policy_seq: *policy_seq,
                });
        let projection = match (doc.target(), self.acceptor.conversation()) {
            (DocTarget::Conv(_), Some(conv)) => {
                projection::for_conv(doc, conv, &accepted.effects, accepted.created)
            }
            (DocTarget::Conv(_), None) => Vec::new(),
            _ => self.acceptor.doc(doc).map_or_else(Vec::new, |d| {
                // A bucket's unit holds its conversation; without it, nothing is indexed.
                let encrypted = self.acceptor.conversation().is_none_or(|c| c.encrypted());
                projection::for_msgs(doc, accepted.seq, d.doc(), &accepted.effects, encrypted)
            }),
        };
        // A delete's blobs are recorded now, before its commit: the sweep checks that no
        // live message names them, so a delete that never commits releases nothing.
        let released = crate::engine::projection::released_blobs(doc, &accepted.effects, now);
        if !released.is_empty() {
            let store = self.engine.store().clone();
            tokio::spawn(async move {
                if let Err(error) = store.release_blobs(&released).await {
                    tracing::warn!(%error, "a deleted message's blobs were not recorded");
                }
            });
        }
        self.batch.pending.push(Pending {
            change: NewChange {
                doc: doc.clone(),
                hash,
                bytes,
                account: author.account.clone(),
                accepted_at: now,
                seq: accepted.seq,
                bind_actor: accepted.new_binding.map(|a| a.to_bytes().to_vec()),
                projection,
                moves_policy: accepted.moves_policy,
                fence,
                parent_fence,
            },
            effects: accepted.effects,
            author: author.clone(),
        });
        Slot::Pending(self.batch.pending.len() - 1)
    }

    fn reject(&self, doc: &DocId, author: &Author, rejection: Rejection) -> Slot {
        let Rejection { hash, code, reason } = rejection;
        let hash = hash.map(|h| h.0);
        self.engine.inner.metrics.rejected(code);
        // Logged and stored in batches by the audit writer (`engine::audit`).
        self.engine.inner.audit.record(RejectionRecord {
            tenant: doc.tenant().clone(),
            doc: doc.to_string(),
            account: author.account.clone(),
            hash,
            code,
            reason: reason.clone(),
            at: now_ms(),
        });
        Slot::Done(SubmitOutcome::Reject { hash, code, reason })
    }

    async fn write(&mut self, doc: &DocId, author: &Author, intent: super::IntentFn) -> Slot {
        if let Some(message) = self.acceptor.broken() {
            return failed(None, message.to_owned());
        }
        if let Err(e) = self.prepare(doc).await {
            return failed(None, e.to_string());
        }
        let mut fork = match self.acceptor.fork(
            doc,
            confab_core::accept::host_actor(doc.tenant(), &author.account),
        ) {
            Ok(fork) => fork,
            Err(e) => return failed(None, e.to_string()),
        };
        let tag = IntentTag::new(format!("rest-{}", now_ms()), "rest");
        let not_applicable =
            |reason: String| Rejection::new(None, RejectCode::NotApplicable, reason);
        match intent(&mut fork, &tag) {
            Ok(Some(_)) => {}
            Ok(None) => {
                let r = not_applicable("the intent changes nothing".into());
                return self.reject(doc, author, r);
            }
            Err(e) => return self.reject(doc, author, not_applicable(e.to_string())),
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
        if self.acceptor.apply_staged(over).is_err() || !self.keep_closed_parts() {
            self.reload().await;
        }
    }

    /// Memory no longer matches what was accepted (an Automerge call failed): refuse the
    /// batches validated on it, wait until the committer is past them, and start over from
    /// storage.
    async fn reload(&mut self) {
        let Some(message) = self.acceptor.broken().map(str::to_owned) else {
            return;
        };
        tracing::error!(%message, "reloading from storage");
        self.epoch.store(true, std::sync::atomic::Ordering::SeqCst);
        self.start_commit().await;
        self.epoch = Arc::new(AtomicBool::new(false));
        self.reset();
        self.settle().await;
    }

    /// May `account` (a service account when `service`) read `doc`?
    fn readable_by(
        &self,
        doc: &DocId,
        account: &AccountId,
        service: bool,
    ) -> Result<(), (ErrorCode, String)> {
        self.acceptor
            .may_read(doc, account, service)
            .map_err(|e| (ErrorCode::Forbidden, e.to_string()))
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
                if let Ok(sent) = result {
                    // The catch-up sent everything up to `sent`; pushes to the earlier
                    // subscribers go on from where they are.
                    self.delivered.entry(doc.clone()).or_insert(sent);
                    // Who is here now, after the catch-up (docs/PROTOCOL.md, Presence).
                    let waiting = self.waiting.snapshot(&doc);
                    for frame in self
                        .presence
                        .snapshot(&doc, &conn.account)
                        .iter()
                        .chain(&waiting)
                    {
                        let _ = conn.outlet.push(&binary_frame(&encode_server(frame)));
                    }
                    self.subscribers.entry(doc).or_default().push(conn);
                }
                let _ = reply.send(result.map(|_| ()));
            }
            Job::Unsubscribe { doc, conn, closed } => {
                if let Some(subs) = self.subscribers.get_mut(&doc) {
                    // A person (not a service) whose last connection here just closed.
                    let gone = subs
                        .iter()
                        .find(|c| c.id == conn && !c.service && closed)
                        .map(|c| c.account.clone());
                    subs.retain(|c| c.id != conn);
                    let gone = gone.filter(|a| !subs.iter().any(|c| c.account == *a));
                    if let (Some(account), DocTarget::Conv(_)) = (gone, doc.target()) {
                        self.presence.gone(&doc, &account);
                        let kind = confab_core::protocol::SignalKind::Presence;
                        let frame = ServerFrame::Signal {
                            doc: doc.to_string(),
                            from: account.to_string(),
                            kind,
                            data: Some("offline".into()),
                        };
                        self.push(&doc, frame, None);
                        // Gone from this node; if the account is still on another, its next
                        // refresh says so there.
                        self.engine
                            .publish_signal(&doc, (&account, false), kind, Some("offline"));
                    }
                }
                if self.subscribers.get(&doc).is_some_and(Vec::is_empty) {
                    self.subscribers.remove(&doc);
                    self.presence.forget(&doc);
                    self.delivered.remove(&doc);
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
                        match self.prepare(&id).await {
                            Ok(()) => self
                                .acceptor
                                .conversation()
                                .filter(|c| c.meta.is_some())
                                .cloned(),
                            Err(_) => None,
                        }
                    }
                    UnitKey::Account(..) => None,
                };
                let _ = reply.send(conv);
            }
            Job::Private { reply } => {
                let data = match &self.key {
                    UnitKey::Account(tenant, account) => {
                        let id = DocId::private(tenant, account);
                        match self.prepare(&id).await {
                            Ok(()) => self
                                .acceptor
                                .doc(&id)
                                .map(|d| confab_core::doc::read::read_private(d.doc())),
                            Err(_) => None,
                        }
                    }
                    UnitKey::Conv(..) => None,
                };
                let _ = reply.send(data);
            }
            Job::Barrier { reply } => {
                let _ = reply.send(());
            }
            Job::Standing { accounts, reply } => {
                let answer = self.standings_here(accounts).await;
                let _ = reply.send(answer.map_err(|e| e.to_string()));
            }
            Job::ParentMessage { message, reply } => {
                let answer = self.parent_message_here(message).await;
                let _ = reply.send(answer.map_err(|e| e.to_string()));
            }
            Job::ParentMoved => self.parent_moved().await,
            Job::RemoteSignal {
                doc,
                from,
                service,
                kind,
                data,
            } => self.remote_signal(&doc, &from, service, kind, data),
            Job::Expire { now_ms, reply } => {
                let _ = reply.send(self.expire(now_ms).await);
            }
            Job::SearchTerms {
                doc,
                messages,
                reply,
            } => {
                let _ = reply.send(self.search_terms(&doc, &messages).await);
            }
            Job::Cut { doc, fenced, reply } => {
                let _ = reply.send(self.cut(&doc, fenced).await);
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
        self.prepare(doc)
            .await
            .map_err(|e| (ErrorCode::Internal, e.to_string()))?;
        self.standing_for_read(&from.account, from.service).await?;
        self.readable_by(doc, &from.account, from.service)?;
        let mut data = data;
        if kind == confab_core::protocol::SignalKind::DevicesChanged {
            return Err((
                ErrorCode::Forbidden,
                "devices_changed comes from the server".into(),
            ));
        }
        if kind == confab_core::protocol::SignalKind::DeviceWaiting {
            // The device is the connection's own, never what the frame says.
            let Some(device) = from.device.as_ref().filter(|_| !from.service) else {
                return Err((
                    ErrorCode::Forbidden,
                    "device_waiting comes from a member's device".into(),
                ));
            };
            self.waiting.heard(doc, &from.account, device.as_str());
            data = Some(device.to_string());
        }
        if kind == confab_core::protocol::SignalKind::Presence && !from.service {
            self.presence.relayed(doc, &from.account, data.as_deref());
        }
        self.engine
            .publish_signal(doc, (&from.account, from.service), kind, data.as_deref());
        let frame = ServerFrame::Signal {
            doc: doc.to_string(),
            from: from.account.to_string(),
            kind,
            data,
        };
        self.push(doc, frame, Some(conn));
        Ok(())
    }

    /// Relays a signal another node took (it checked the sender may read `doc`) to the
    /// subscribers here; with none, there is nobody to tell (a waiting device is kept).
    fn remote_signal(
        &mut self,
        doc: &DocId,
        from: &AccountId,
        service: bool,
        kind: confab_core::protocol::SignalKind,
        data: Option<String>,
    ) {
        // Kept even with nobody subscribed here: a member's device may subscribe later.
        if let (confab_core::protocol::SignalKind::DeviceWaiting, Some(device)) = (kind, &data) {
            self.waiting.heard(doc, from, device);
        }
        let Some(subs) = self.subscribers.get(doc) else {
            return;
        };
        // Another node saw the account's last connection there close; one of its
        // connections here says it is still here.
        let presence = kind == confab_core::protocol::SignalKind::Presence;
        if presence && data.as_deref() == Some("offline") && subs.iter().any(|c| c.account == *from)
        {
            return;
        }
        if presence && !service {
            self.presence.relayed(doc, from, data.as_deref());
        }

        let frame = ServerFrame::Signal {
            doc: doc.to_string(),
            from: from.to_string(),
            kind,
            data,
        };
        self.push(doc, frame, None);
    }

    /// Sends `doc`'s catch-up after `after`; the seq it is caught up to.
    async fn subscribe(
        &mut self,
        doc: &DocId,
        after: u64,
        conn: &ConnHandle,
    ) -> Result<u64, (ErrorCode, String)> {
        // Access and retention are the conversation's: a bucket part need not be loaded
        // for them, nor for a kept save of it.
        let gate = match doc.target() {
            DocTarget::Msgs(conv, _) => DocId::conv(doc.tenant(), conv),
            _ => doc.clone(),
        };
        self.prepare_for_read(&gate).await?;
        self.standing_for_read(&conn.account, conn.service).await?;
        self.readable_by(doc, &conn.account, conn.service)?;
        self.refuse_expired(doc)?;
        if self.acceptor.known_seq(doc).is_none() {
            if let Some(part) = self.kept_part(doc, after).await {
                super::catchup::send_kept(&self.engine, doc, after, &part, conn).await?;
                return Ok(part.last_seq);
            }
        }
        self.prepare_for_read(doc).await?;
        let info = self.acceptor.view(doc);
        let keepable =
            matches!(doc.target(), DocTarget::Msgs(..)) && !self.acceptor.has_uncommitted(doc);
        let recent = self.recent.get(doc);
        super::catchup::send(&self.engine, doc, after, info, keepable, recent, conn).await?;
        Ok(self.acceptor.known_seq(doc).unwrap_or(0))
    }

    /// Loads what reading `doc` needs; a failure is `unavailable` while the storage is down.
    async fn prepare_for_read(&mut self, doc: &DocId) -> Result<(), (ErrorCode, String)> {
        self.prepare(doc).await.map_err(|e| {
            // Failed fast because the storage is down: retryable, say so.
            let code = match self.engine.health().is_down() {
                true => ErrorCode::Unavailable,
                false => ErrorCode::Internal,
            };
            (code, e.to_string())
        })
    }

    /// The kept save of a bucket part not in memory, for a client at `after` that gets a
    /// snapshot of it, if the part's log still ends at its seq (another node, or this one
    /// before a restart of the unit, may have added to it). The log is read only then.
    async fn kept_part(&self, doc: &DocId, after: u64) -> Option<Arc<SavedPart>> {
        let part = self
            .engine
            .saved_parts()
            .get(doc)
            .filter(|p| super::catchup::wants_snapshot(after, p.last_seq, p.snapshot_seq))?;
        let (id, seq) = (doc.clone(), part.last_seq);
        let newer = self
            .engine
            .read(move |store| async move { store.changes_after(&id, seq, 1).await })
            .await;
        matches!(newer, Ok(changes) if changes.is_empty()).then_some(part)
    }
}
