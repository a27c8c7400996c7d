//! The acceptance engine: one worker task per serialization unit (a conversation with its
//! message buckets, or an account's profile and private documents). Each unit validates with
//! core's policy, applies, hands its batch to the group committer, acks once durable and
//! pushes to subscribers. Units load lazily and leave memory when idle.

mod audit;
mod bindings;
mod catchup;
mod cluster;
mod committer;
pub mod cut;
mod feed;
pub mod lapses;
pub(crate) mod projection;
mod reader;
pub mod retention;
mod saved_parts;
pub mod schedule;
pub mod search_backfill;
pub mod search_indexer;
mod signals;
mod threads;
mod unit;

pub use threads::ReadRefusal;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use confab_core::automerge::{Automerge, ChangeHash};
use confab_core::doc::{DocError, IntentTag};
use confab_core::ids::{AccountId, ConvId, DocId, DocTarget, TenantId};
use confab_core::model::conversation::{Conversation, MemberStatus};
use confab_core::model::url::UrlRule;
use confab_core::policy::Author;
use confab_core::protocol::{ErrorCode, SignalKind};
use confab_core::validate::RejectCode;
use tokio::sync::{mpsc, oneshot};

pub use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::net::outlet::Outlet;
use crate::store::health::{spawn_prober, Guarded, Health, StorageTimeouts};
use crate::store::Store;
pub use feed::FeedConn;

/// Engine tuning.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Units kept in memory before idle ones are evicted early.
    pub max_units: usize,
    /// How long an idle unit without subscribers stays in memory.
    pub idle: Duration,
    /// Changes per catch-up frame.
    pub catch_up_page: usize,
    /// Message buckets a conversation unit keeps loaded.
    pub max_buckets: usize,
    /// Bytes of its newest committed changes each loaded document keeps in memory for
    /// catch-up without the database (`--recent-log-bytes`; 0: none).
    pub recent_log_bytes: usize,
    /// Which schemes URL fields accept (validation's `Env::urls`).
    pub urls: UrlRule,
    /// This node's name in logs, metrics and its listening connection (`--node-id`).
    pub node: String,
    /// How long after a delete its part's history is cut (`cut`; `--cut-after-delete-secs`).
    pub cut_after_delete: Duration,
    /// How long after an edit its part's history is cut (`--cut-after-edit-secs`).
    pub cut_after_edit: Duration,
    /// How long a cut that failed waits before it is tried again.
    pub cut_retry: Duration,
    /// How long the storage may take before it counts as down.
    pub storage_timeouts: StorageTimeouts,
}

/// A node name when none is given: the host's name and the process id.
pub fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_owned());
    format!("{host}-{}", std::process::id())
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_units: 10_000,
            idle: Duration::from_secs(60),
            catch_up_page: 500,
            max_buckets: 4,
            recent_log_bytes: 256 << 10,
            urls: UrlRule::HttpsOnly,
            node: default_node_id(),
            cut_after_delete: Duration::from_secs(60),
            cut_after_edit: Duration::from_secs(3600),
            cut_retry: Duration::from_secs(5),
            storage_timeouts: StorageTimeouts::default(),
        }
    }
}

/// What the engine tells a connection's task (frames go straight into its outlet).
#[derive(Debug, Clone)]
pub enum Control {
    /// The account lost read access to `doc`.
    Revoke {
        doc: DocId,
        code: RejectCode,
        reason: String,
    },
    /// The connection could not keep up with pushes of `doc`; it should close (the client
    /// reconnects and catches up from its cursor).
    Lagged(DocId),
    /// The connection could not keep up with its membership pushes; it should close (the
    /// client reconnects and lists its memberships).
    FeedLagged,
    /// This node may have missed membership changes: list them again.
    FeedResync,
}

/// A subscribed connection.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    pub id: u64,
    pub account: AccountId,
    pub service: bool,
    /// Where catch-up and pushes are written, framed, in order.
    pub outlet: Arc<Outlet>,
    pub control: mpsc::Sender<Control>,
}

/// The answer to one submitted change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitOutcome {
    Ack {
        hash: [u8; 32],
        seq: u64,
    },
    Reject {
        hash: Option<[u8; 32]>,
        /// On the wire as `code.as_str()`.
        code: RejectCode,
        reason: String,
    },
    /// Not decided (storage failed or the server is stopping): resubmit later.
    Failed {
        hash: Option<[u8; 32]>,
        /// `internal`, `unavailable` or `shutting_down`: always a retryable code.
        code: ErrorCode,
        message: String,
        /// How long the client should wait before resubmitting, when the server knows.
        retry_after_ms: Option<u64>,
    },
}

/// A REST intent: runs on a copy of the accepted document with the account's server actor.
pub type IntentFn =
    Box<dyn FnOnce(&mut Automerge, &IntentTag) -> Result<Option<ChangeHash>, DocError> + Send>;

pub(crate) enum Job {
    Submit {
        doc: DocId,
        author: Author,
        changes: Vec<Vec<u8>>,
        reply: oneshot::Sender<Vec<SubmitOutcome>>,
        /// When the connection queued it (the `queue` stage ends when the unit takes it).
        received: std::time::Instant,
        /// The connection it came from: units take turns between connections (`unit::fair`).
        conn: Option<u64>,
    },
    Write {
        doc: DocId,
        author: Author,
        intent: IntentFn,
        reply: oneshot::Sender<SubmitOutcome>,
    },
    Subscribe {
        doc: DocId,
        after: u64,
        conn: ConnHandle,
        reply: oneshot::Sender<Result<(), (ErrorCode, String)>>,
    },
    Unsubscribe {
        doc: DocId,
        conn: u64,
        /// The connection closed (not a client's `unsubscribe`): when it was the account's
        /// last one on a conversation, the others get an `offline` presence.
        closed: bool,
    },
    Signal {
        doc: DocId,
        from: Author,
        conn: u64,
        kind: SignalKind,
        data: Option<String>,
        /// Refused when `from` may not read `doc`.
        reply: oneshot::Sender<Result<(), (ErrorCode, String)>>,
    },
    Conversation {
        reply: oneshot::Sender<Option<Conversation>>,
    },
    /// The account's private document, typed, from memory (the scheduler: `schedule`).
    Private {
        reply: oneshot::Sender<Option<confab_core::doc::read::PrivateData>>,
    },
    /// Deletes the conversation's buckets its retention expired at `now_ms` (`retention`).
    Expire {
        now_ms: i64,
        reply: oneshot::Sender<Result<retention::Expired, String>>,
    },
    /// The search terms of these messages of a bucket, for the backfill (`search_backfill`).
    SearchTerms {
        doc: DocId,
        messages: Vec<confab_core::ids::MessageId>,
        reply: oneshot::Sender<Result<search_backfill::Terms, String>>,
    },
    /// Cuts this message part's history (`cut`), `fenced`: behind the part's row
    /// (`ChangeLog::fence_part`).
    Cut {
        doc: DocId,
        fenced: bool,
        reply: oneshot::Sender<Result<Option<cut::CutReport>, cut::CutError>>,
    },
    /// Answered once every job queued before it is committed and answered.
    Barrier { reply: oneshot::Sender<()> },
    /// Where these accounts stand in this conversation, for a thread of it (`threads`).
    Standing {
        accounts: Vec<AccountId>,
        reply: oneshot::Sender<Result<threads::Standings, String>>,
    },
    /// Whether this conversation holds `message`, for a thread created on it (`threads`).
    ParentMessage {
        message: confab_core::ids::MessageId,
        reply: oneshot::Sender<Result<confab_core::policy::ParentMessage, String>>,
    },
    /// This thread's parent (or a conversation above it) may have moved its policy.
    ParentMoved,
    /// Another node relayed this signal to its subscribers (`signals`): relay it to ours.
    RemoteSignal {
        doc: DocId,
        from: AccountId,
        service: bool,
        kind: SignalKind,
        data: Option<String>,
    },
}

/// A serialization unit: one worker task each.
pub(crate) use confab_core::accept::UnitId as UnitKey;

pub(crate) struct Inner {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    config: EngineConfig,
    units: Mutex<HashMap<UnitKey, UnitHandle>>,
    committer: mpsc::Sender<committer::CommitRequest>,
    audit: audit::Audit,
    stopping: AtomicBool,
    /// Whether the storage can be used (see `store::health`).
    health: Health,
    /// Whether this node is one of a cluster (its store has other nodes' commits to listen
    /// to), and whether it listens now.
    clustered: bool,
    listening: cluster::Listening,
    /// The latest time a retention sweep ran for (`retention`).
    retention_clock: std::sync::atomic::AtomicI64,
    /// Old row versions wait for the purge pass's vacuum: a cut was installed here since
    /// (see `cut`).
    unvacuumed: AtomicBool,
    /// Connections following their account's memberships (see `feed`).
    feeds: feed::Feeds,
    /// Committed actor bindings, shared by the units (see `bindings`).
    bindings: bindings::Bindings,
    /// The units' reads of storage (see `reader`).
    reader: reader::Reader,
    /// Saved bucket parts kept for catch-up (see `saved_parts`).
    saved_parts: saved_parts::SavedParts,
    /// Told of every committed change (the notification feed, `crate::notify`, installs
    /// one; the engine knows only this trait, so it imports nothing above it).
    observer: std::sync::OnceLock<Arc<dyn CommitObserver>>,
    /// Publishes signals for the other nodes (a cluster only; see `signals`).
    signals: Option<signals::Publisher>,
    /// The threads in memory under each conversation (see `threads`).
    threads: threads::Registry,
}

/// Told of each committed change once its acks and pushes are out, on the unit's task:
/// it must not wait (hand the work to a task of its own).
pub trait CommitObserver: Send + Sync + 'static {
    fn committed(&self, change: &crate::store::NewChange, effects: &[confab_core::policy::Effect]);
}

/// A unit in memory: its job queue, and the inbox of other nodes' commits to its documents.
#[derive(Clone)]
pub(crate) struct UnitHandle {
    tx: mpsc::Sender<Job>,
    inbox: Arc<cluster::Inbox>,
}

/// Why a job could not be handed to its unit.
#[derive(Debug, Clone, Copy, thiserror::Error)]
pub(crate) enum DispatchError {
    #[error("engine lock poisoned")]
    LockPoisoned,
    #[error("unit unavailable")]
    UnitUnavailable,
}

/// The engine held by a task that must not keep it alive (the notification worker).
#[derive(Clone)]
pub struct WeakEngine(std::sync::Weak<Inner>);

impl std::fmt::Debug for WeakEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeakEngine")
            .field("alive", &(self.0.strong_count() > 0))
            .finish()
    }
}

impl WeakEngine {
    pub fn upgrade(&self) -> Option<Engine> {
        self.0.upgrade().map(|inner| Engine { inner })
    }
}

/// The engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("units", &self.units_in_memory())
            .finish()
    }
}

impl Engine {
    /// Puts `store` behind a health state with its prober: while the storage is down,
    /// everything that needs it fails at once (`unavailable`) instead of waiting.
    pub fn new(store: Arc<dyn Store>, metrics: Arc<Metrics>, config: EngineConfig) -> Self {
        let health = Health::with_timeouts(config.storage_timeouts);
        spawn_prober(&health, store.clone());
        let cluster_options = store.cluster_options();
        metrics.set_node(&config.node);
        let store: Arc<dyn Store> = Arc::new(Guarded::new(store, health.clone()));
        let committer = committer::spawn(store.clone(), metrics.clone(), &config.node);
        let reader = reader::Reader::spawn(store.clone(), &config.node);
        let audit = audit::Audit::spawn(store.clone(), metrics.clone());
        let signals = cluster_options
            .is_some()
            .then(|| signals::Publisher::spawn(store.clone(), &config.node, metrics.clone()));
        let engine = Engine {
            inner: Arc::new(Inner {
                store,
                metrics,
                config,
                units: Mutex::new(HashMap::new()),
                committer,
                audit,
                stopping: AtomicBool::new(false),
                health,
                clustered: cluster_options.is_some(),
                listening: cluster::Listening::default(),
                retention_clock: std::sync::atomic::AtomicI64::new(i64::MIN),
                unvacuumed: AtomicBool::new(false),
                feeds: feed::Feeds::default(),
                bindings: bindings::Bindings::default(),
                reader,
                saved_parts: saved_parts::SavedParts::default(),
                observer: std::sync::OnceLock::new(),
                signals,
                threads: threads::Registry::default(),
            }),
        };
        if let Some(options) = cluster_options {
            cluster::spawn_listener(engine.clone(), options);
        }
        engine
    }

    /// This node's name (`--node-id`).
    pub fn node(&self) -> &str {
        &self.inner.config.node
    }

    /// Whether this node hears the other nodes' commits (always, on a store of one node):
    /// while it does not, its subscribers would miss them, so `/readyz` says not ready.
    pub fn is_listening(&self) -> bool {
        !self.inner.clustered || self.inner.listening.get()
    }

    /// Another node (or this one) committed `doc` up to a seq: its unit, if in memory,
    /// catches up from the log.
    fn remote_commit(&self, doc: DocId, committed: cluster::Committed) {
        let inbox = self
            .inner
            .units
            .lock()
            .ok()
            .and_then(|units| units.get(&UnitKey::of(&doc)).map(|u| u.inbox.clone()));
        if let Some(inbox) = inbox {
            inbox.note(doc.clone(), committed);
        }
        // Any commit to a conversation document may have moved its policy (a notification
        // does not say): the threads below it here ask again.
        if let DocTarget::Conv(conv) = doc.target() {
            self.parent_moved(doc.tenant(), conv);
        }
    }

    /// Starts pushing `account`'s membership changes to `conn` (before its list is read, so
    /// nothing committed after the list's snapshot is missed).
    pub fn follow_memberships(&self, tenant: TenantId, account: AccountId, conn: FeedConn) {
        self.inner.feeds.follow(tenant, account, conn);
    }

    /// Whether `account` has a connected client on this node (a connection following its
    /// memberships, as every client does once connected).
    pub fn has_client(&self, tenant: &TenantId, account: &AccountId) -> bool {
        self.inner.feeds.has(tenant, account)
    }

    pub fn unfollow_memberships(&self, tenant: &TenantId, account: &AccountId, conn: u64) {
        self.inner.feeds.unfollow(tenant, account, conn);
    }

    /// Tells the other nodes of a cluster about a signal this node relayed (`signals`).
    pub(crate) fn publish_signal(
        &self,
        doc: &DocId,
        from: (&AccountId, bool),
        kind: SignalKind,
        data: Option<&str>,
    ) {
        if let Some(publisher) = &self.inner.signals {
            publisher.publish(doc, from, kind, data);
        }
    }

    /// A signal another node published: the conversation's unit, if in memory, relays it to
    /// its subscribers here.
    fn remote_signal(&self, payload: &str) {
        let Some(signal) = signals::parse(payload) else {
            tracing::warn!(payload, "unreadable signal notification");
            return;
        };
        if signal.node == self.node() {
            return;
        }
        let handed = self.relay_here(
            signal.doc,
            signal.from,
            signal.service,
            signal.kind,
            signal.data,
        );
        if handed {
            self.metrics().cluster.signals_relayed.inc();
        }
    }

    /// Hands a signal already checked to `doc`'s unit, if in memory (a unit not in memory has
    /// no subscribers here); whether it was. A unit whose queue is full drops it (signals
    /// are ephemeral).
    fn relay_here(
        &self,
        doc: DocId,
        from: AccountId,
        service: bool,
        kind: SignalKind,
        data: Option<String>,
    ) -> bool {
        let tx = self
            .inner
            .units
            .lock()
            .ok()
            .and_then(|units| units.get(&UnitKey::of(&doc)).map(|u| u.tx.clone()));
        tx.is_some_and(|tx| {
            tx.try_send(Job::RemoteSignal {
                doc,
                from,
                service,
                kind,
                data,
            })
            .is_ok()
        })
    }

    /// The directory removed a device of `account`: every conversation the account is an
    /// active member of hears a `devices_changed` signal from it, on every node, so that the
    /// members' devices online now ask `list_devices` again and the group's committer takes
    /// the device out at once (docs/E2EE.md, "Every leaf is a registered device"). Devices
    /// offline learn it when they connect. One signal per conversation of the account:
    /// removals are rare, and a failed lookup only delays what the next connection does.
    pub async fn devices_changed(&self, tenant: &TenantId, account: &AccountId) {
        let memberships = match self.store().memberships_of(tenant, account).await {
            Ok(memberships) => memberships,
            Err(e) => {
                tracing::warn!(error = %e, %account, "devices_changed: no memberships");
                return;
            }
        };
        for membership in memberships
            .into_iter()
            .filter(|m| m.status == MemberStatus::Active)
        {
            let doc = DocId::conv(tenant, &membership.conv);
            self.publish_signal(&doc, (account, false), SignalKind::DevicesChanged, None);
            self.relay_here(
                doc,
                account.clone(),
                false,
                SignalKind::DevicesChanged,
                None,
            );
        }
    }

    /// Whether other nodes may share this store (Postgres): what this node knows alone
    /// (its connections, its presence) is not all there is.
    pub fn is_clustered(&self) -> bool {
        self.inner.clustered
    }

    /// Starts tracking which accounts get a first client or lose their last one here;
    /// answers those with a client now.
    pub fn track_clients(&self) -> Vec<(TenantId, AccountId)> {
        self.inner.feeds.track_comings()
    }

    /// The accounts that came (`true`) or went (`false`) since the last call (tracked only
    /// after [`Engine::track_clients`]).
    pub fn take_client_comings(&self) -> HashMap<(TenantId, AccountId), bool> {
        self.inner.feeds.take_comings()
    }

    /// Resolves once an account came or went since the last wait.
    pub async fn client_comings_noted(&self) {
        self.inner.feeds.comings_noted().await;
    }

    /// Every membership of `account` (any status), each as of its conversation's last seq.
    pub async fn memberships(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Vec<confab_core::protocol::Membership>, (ErrorCode, String)> {
        self.store()
            .memberships_of(tenant, account)
            .await
            .map_err(
                |e| match e.is_unavailable() || self.inner.health.is_down() {
                    true => (ErrorCode::Unavailable, e.to_string()),
                    false => (ErrorCode::Internal, e.to_string()),
                },
            )
    }

    /// A membership changed (another node's commit, or this one's, on a clustered store).
    fn membership_notified(&self, payload: &str) {
        match feed::parse(payload) {
            Some((tenant, account, m)) => {
                let sent = self.inner.feeds.tell(&tenant, &account, m);
                self.inner.metrics.frames_out(sent);
            }
            None => tracing::warn!(payload, "unreadable membership notification"),
        }
    }

    /// A unit committed `change`: on a store of one node, its membership changes are pushed
    /// from here (a clustered store's trigger notifies every node, this one included).
    pub(crate) fn memberships_committed(&self, change: &crate::store::NewChange) {
        if self.inner.clustered {
            return;
        }
        for (tenant, account, m) in feed::changed_by(change) {
            let sent = self.inner.feeds.tell(&tenant, &account, m);
            self.inner.metrics.frames_out(sent);
        }
    }

    /// Installs the observer of committed changes; false if one is installed already.
    pub fn observe_commits(&self, observer: Arc<dyn CommitObserver>) -> bool {
        self.inner.observer.set(observer).is_ok()
    }

    /// A handle that does not keep the engine alive.
    pub fn downgrade(&self) -> WeakEngine {
        WeakEngine(Arc::downgrade(&self.inner))
    }

    /// A unit committed `change`: its observer hears of it (`CommitObserver`).
    pub(crate) fn notify_committed(
        &self,
        change: &crate::store::NewChange,
        effects: &[confab_core::policy::Effect],
    ) {
        if let Some(observer) = self.inner.observer.get() {
            observer.committed(change, effects);
        }
    }

    /// Notifications were lost: every unit in memory re-reads the log.
    fn resync_all(&self) {
        self.inner.feeds.resync();
        if let Ok(units) = self.inner.units.lock() {
            for unit in units.values() {
                unit.inbox.resync();
            }
        }
    }

    /// The storage's health state (shared with the store's guard and `/readyz`).
    pub fn health(&self) -> &Health {
        &self.inner.health
    }

    /// The wait to suggest with a failure of `code`.
    pub(crate) fn retry_after_ms(&self, code: ErrorCode) -> Option<u64> {
        (code == ErrorCode::Unavailable).then(|| self.inner.health.retry_after_ms())
    }

    /// A failure decided while the storage is down is the outage's (a load or lookup that
    /// failed fast): `unavailable`, with when to retry.
    pub(crate) fn outage_outcome(&self, outcome: SubmitOutcome) -> SubmitOutcome {
        match outcome {
            SubmitOutcome::Failed {
                hash,
                code: ErrorCode::Internal,
                message,
                ..
            } if self.inner.health.is_down() => SubmitOutcome::Failed {
                hash,
                code: ErrorCode::Unavailable,
                message,
                retry_after_ms: Some(self.inner.health.retry_after_ms()),
            },
            other => other,
        }
    }

    /// Answers for `changes` while the storage is down, at once (no unit, no pool).
    fn unavailable(&self, changes: &[Vec<u8>]) -> Vec<SubmitOutcome> {
        let health = &self.inner.health;
        let message = format!("storage unavailable: {}", health.reason());
        changes
            .iter()
            .map(|bytes| SubmitOutcome::Failed {
                hash: confab_core::validate::parse_change(bytes)
                    .ok()
                    .map(|c| c.hash().0),
                code: ErrorCode::Unavailable,
                message: message.clone(),
                retry_after_ms: Some(health.retry_after_ms()),
            })
            .collect()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// A read of the units' (and their catch-up's) on the reader thread (`reader`).
    pub(crate) async fn read<T, F, Fut>(&self, read: F) -> crate::store::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Arc<dyn Store>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = crate::store::Result<T>> + Send + 'static,
    {
        self.inner.reader.read(read).await
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Saved bucket parts kept for catch-up.
    pub(crate) fn saved_parts(&self) -> &saved_parts::SavedParts {
        &self.inner.saved_parts
    }

    pub fn units_in_memory(&self) -> usize {
        self.inner.units.lock().map(|u| u.len()).unwrap_or(0)
    }

    /// Sends a job to its unit, starting the unit if needed.
    async fn dispatch(&self, key: UnitKey, mut job: Job) -> Result<(), DispatchError> {
        for _ in 0..3 {
            let sender = {
                let mut units = self
                    .inner
                    .units
                    .lock()
                    .map_err(|_| DispatchError::LockPoisoned)?;
                match units.get(&key) {
                    Some(unit) if !unit.tx.is_closed() => unit.tx.clone(),
                    _ => {
                        let unit = unit::spawn(key.clone(), self.clone());
                        let tx = unit.tx.clone();
                        units.insert(key.clone(), unit);
                        tx
                    }
                }
            };
            match sender.send(job).await {
                Ok(()) => return Ok(()),
                // The unit stopped between lookup and send: start a new one.
                Err(mpsc::error::SendError(back)) => job = back,
            }
        }
        Err(DispatchError::UnitUnavailable)
    }

    pub(crate) fn unit_stopped(&self, key: &UnitKey, tx: &mpsc::Sender<Job>) {
        if let Ok(mut units) = self.inner.units.lock() {
            if units.get(key).is_some_and(|u| u.tx.same_channel(tx)) {
                units.remove(key);
            }
        }
        // What the unit held is freed as it ends: give it back to the system.
        crate::memory::release_soon();
    }

    pub fn is_stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::SeqCst)
    }

    /// Queues changes on their unit and returns where the answers will come. Awaiting this
    /// only waits for queue space, so a caller that awaits each call in turn keeps its order.
    pub async fn enqueue_submit(
        &self,
        doc: DocId,
        author: Author,
        changes: Vec<Vec<u8>>,
    ) -> oneshot::Receiver<Vec<SubmitOutcome>> {
        self.enqueue_submit_from(None, doc, author, changes).await
    }

    /// `enqueue_submit` for connection `conn`: a unit takes turns between connections, so
    /// one connection's backlog never holds up another's submit.
    pub async fn enqueue_submit_from(
        &self,
        conn: Option<u64>,
        doc: DocId,
        author: Author,
        changes: Vec<Vec<u8>>,
    ) -> oneshot::Receiver<Vec<SubmitOutcome>> {
        let count = changes.len();
        let (reply, rx) = oneshot::channel();
        let failed = |message: &str| {
            vec![
                SubmitOutcome::Failed {
                    code: ErrorCode::Internal,
                    retry_after_ms: None,
                    hash: None,
                    message: message.to_owned()
                };
                count
            ]
        };
        if self.is_stopping() {
            let _ = reply.send(failed("the server is shutting down"));
            return rx;
        }
        if self.inner.health.is_down() {
            let _ = reply.send(self.unavailable(&changes));
            return rx;
        }
        let key = UnitKey::of(&doc);
        let (fallback, fallback_rx) = oneshot::channel();
        let job = Job::Submit {
            doc,
            author,
            changes,
            reply,
            received: std::time::Instant::now(),
            conn,
        };
        if let Err(e) = self.dispatch(key, job).await {
            let _ = fallback.send(failed(&e.to_string()));
            return fallback_rx;
        }
        rx
    }

    /// Validates, commits and answers each change in order.
    pub async fn submit(
        &self,
        doc: DocId,
        author: Author,
        changes: Vec<Vec<u8>>,
    ) -> Vec<SubmitOutcome> {
        let count = changes.len();
        self.enqueue_submit(doc, author, changes)
            .await
            .await
            .unwrap_or_else(|_| {
                vec![
                    SubmitOutcome::Failed {
                        code: ErrorCode::Internal,
                        retry_after_ms: None,
                        hash: None,
                        message: "the unit stopped".into()
                    };
                    count
                ]
            })
    }

    /// Builds one change on the server (REST) and submits it through the same validation.
    pub async fn write(&self, doc: DocId, author: Author, intent: IntentFn) -> SubmitOutcome {
        if self.inner.health.is_down() {
            return SubmitOutcome::Failed {
                hash: None,
                code: ErrorCode::Unavailable,
                message: format!("storage unavailable: {}", self.inner.health.reason()),
                retry_after_ms: Some(self.inner.health.retry_after_ms()),
            };
        }
        let (reply, rx) = oneshot::channel();
        let key = UnitKey::of(&doc);
        if let Err(e) = self
            .dispatch(
                key,
                Job::Write {
                    doc,
                    author,
                    intent,
                    reply,
                },
            )
            .await
        {
            return SubmitOutcome::Failed {
                code: ErrorCode::Internal,
                retry_after_ms: None,
                hash: None,
                message: e.to_string(),
            };
        }
        rx.await.unwrap_or(SubmitOutcome::Failed {
            code: ErrorCode::Internal,
            retry_after_ms: None,
            hash: None,
            message: "the unit stopped".into(),
        })
    }

    /// Checks read access, sends catch-up after `after`, then live pushes.
    pub async fn subscribe(
        &self,
        doc: DocId,
        after: u64,
        conn: ConnHandle,
    ) -> Result<(), (ErrorCode, String)> {
        let (reply, rx) = oneshot::channel();
        self.dispatch(
            UnitKey::of(&doc),
            Job::Subscribe {
                doc,
                after,
                conn,
                reply,
            },
        )
        .await
        .map_err(|e| (ErrorCode::Internal, e.to_string()))?;
        rx.await
            .unwrap_or(Err((ErrorCode::Internal, "the unit stopped".into())))
    }

    pub async fn unsubscribe(&self, doc: DocId, conn: u64) {
        let job = Job::Unsubscribe {
            doc: doc.clone(),
            conn,
            closed: false,
        };
        let _ = self.dispatch(UnitKey::of(&doc), job).await;
    }

    /// Connection `conn` closed: it stops following `doc`, and when it was its account's
    /// last connection on that conversation the other subscribers get an `offline` presence
    /// (docs/PROTOCOL.md, Presence).
    pub async fn connection_closed(&self, doc: DocId, conn: u64) {
        let job = Job::Unsubscribe {
            doc: doc.clone(),
            conn,
            closed: true,
        };
        let _ = self.dispatch(UnitKey::of(&doc), job).await;
    }

    /// Relays a signal to the conversation's other subscribers, `from` the authenticated
    /// author. Refused (`forbidden`) when the author may not read the conversation, and
    /// (`invalid_doc`) for documents that are not conversations.
    pub async fn signal(
        &self,
        doc: DocId,
        from: Author,
        conn: u64,
        kind: SignalKind,
        data: Option<String>,
    ) -> Result<(), (ErrorCode, String)> {
        if !matches!(doc.target(), DocTarget::Conv(_)) {
            return Err((
                ErrorCode::InvalidDoc,
                "signals go to conversation documents".into(),
            ));
        }
        let (reply, rx) = oneshot::channel();
        self.dispatch(
            UnitKey::of(&doc),
            Job::Signal {
                doc,
                from,
                conn,
                kind,
                data,
                reply,
            },
        )
        .await
        .map_err(|e| (ErrorCode::Internal, e.to_string()))?;
        rx.await
            .unwrap_or(Err((ErrorCode::Internal, "the unit stopped".into())))
    }

    /// The bucket parts of the conversation `doc` (its `conv` document), newest first, for
    /// an author who may read it.
    pub async fn buckets(
        &self,
        doc: &DocId,
        author: &Author,
        before: Option<confab_core::ids::Bucket>,
        limit: usize,
    ) -> Result<crate::store::buckets::BucketPage, (ErrorCode, String)> {
        let (conv, _) = self.readable_conv(doc, author).await?;
        self.store()
            .buckets(doc.tenant(), conv, before, limit)
            .await
            .map_err(|e| self.read_failed(&e))
    }

    /// The conversation of the `conv` document `doc`, typed, once `author` may read it.
    async fn readable_conv<'d>(
        &self,
        doc: &'d DocId,
        author: &Author,
    ) -> Result<(&'d ConvId, Option<Conversation>), (ErrorCode, String)> {
        let DocTarget::Conv(conv) = doc.target() else {
            return Err((
                ErrorCode::InvalidDoc,
                "only a conversation's conv document answers this".into(),
            ));
        };
        let typed = self.conversation(doc.tenant(), conv).await;
        self.may_read(typed.as_ref(), doc, author)
            .await
            .map_err(|e| match e {
                ReadRefusal::Denied(denied) => (ErrorCode::Forbidden, denied.to_string()),
                ReadRefusal::Unavailable(e) => (ErrorCode::Unavailable, e),
            })?;
        Ok((conv, typed))
    }

    /// A failed store read as a connection's error code.
    fn read_failed(&self, e: &crate::store::StoreError) -> (ErrorCode, String) {
        match e.is_unavailable() || self.inner.health.is_down() {
            true => (ErrorCode::Unavailable, e.to_string()),
            false => (ErrorCode::Internal, e.to_string()),
        }
    }

    /// The read markers of the conversation of `doc` with their stored times
    /// (`Projections::read_times`, what REST answers as `last_read_at`), for a reader.
    pub async fn read_times(
        &self,
        doc: &DocId,
        author: &Author,
    ) -> Result<Vec<confab_core::protocol::ReadTime>, (ErrorCode, String)> {
        let (conv, typed) = self.readable_conv(doc, author).await?;
        let times = self
            .store()
            .read_times(doc.tenant(), conv)
            .await
            .map_err(|e| self.read_failed(&e))?;
        // The marker from the accepted document, its time from the store: as REST pairs them.
        let reads = typed.map(|c| c.reads).unwrap_or_default();
        Ok(reads
            .into_iter()
            .map(|(account, message)| confab_core::protocol::ReadTime {
                at: times.get(&account).copied(),
                account: account.to_string(),
                message: message.to_string(),
            })
            .collect())
    }

    /// The accepted conversation, typed (loads it if needed).
    pub async fn conversation(&self, tenant: &TenantId, conv: &ConvId) -> Option<Conversation> {
        let (reply, rx) = oneshot::channel();
        let key = UnitKey::Conv(tenant.clone(), conv.clone());
        self.dispatch(key, Job::Conversation { reply }).await.ok()?;
        rx.await.ok().flatten()
    }

    /// Stops taking submits; in-flight batches finish and are acked.
    pub fn begin_shutdown(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
    }

    /// Waits until every unit has committed and answered what it took (or `limit` passes).
    pub async fn drain(&self, limit: Duration) {
        let senders: Vec<mpsc::Sender<Job>> = self
            .inner
            .units
            .lock()
            .map(|u| u.values().map(|u| u.tx.clone()).collect())
            .unwrap_or_default();
        let barriers = senders.into_iter().map(|tx| async move {
            let (reply, rx) = oneshot::channel();
            if tx.send(Job::Barrier { reply }).await.is_ok() {
                let _ = rx.await;
            }
        });
        let _ = tokio::time::timeout(limit, futures_util::future::join_all(barriers)).await;
    }
}
