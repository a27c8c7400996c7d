//! Storage health: fail fast while the database is unreachable or full, recover by itself.
//!
//! One [`Health`] state is shared by the engine, the group committer and HTTP (`/readyz`,
//! REST). It turns *down* as soon as any storage call fails with an error of the
//! unavailable class ([`StoreError::is_unavailable`]: the connection is gone, the pool
//! cannot get one, the server is shutting down, the disk is full, the file cannot be
//! written). While down, every call through [`Guarded`] fails at once with
//! [`StoreError::Unavailable`] instead of waiting on a pool: submits are answered
//! `unavailable` with a `retry_after_ms`, `/readyz` answers 503. A background prober
//! ([`spawn_prober`]) turns it *up* again: every [`PROBE_DOWN_EVERY`] while down it makes a
//! small write (SQLite: `BEGIN IMMEDIATE`, an update of the one-row `storage_probe` table
//! with a 64 KiB blob, `COMMIT`; Postgres: the same update), so a database that answers
//! reads but cannot write (disk full) stays down; every [`PROBE_UP_EVERY`] while up it reads
//! (`SELECT 1`), so an outage without traffic is noticed too. Each probe is bounded by
//! [`PROBE_TIMEOUT`].

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use confab_core::ids::{AccountId, Bucket, ConvId, DocId, MessageId, TenantId};
use confab_core::model::joining::Invite;
use confab_core::protocol::Membership;

use super::buckets::BucketPage;
use super::clients::Key;
use super::discovery::{DiscoverItem, DiscoverQuery};
use super::forget;
use super::notifications::{
    Joined, Mark, NewNotification, Notification, Quiet, StreamPost, StreamRow,
};
use super::retention::{ConvKey, DropRequest, Dropped};
use super::schedule::Claim;
use super::stats::ConvStats;
use super::webhooks::{Delivery, NewDelivery};
use super::{
    ChangeLog, Cluster, ConvListItem, ConvRow, Devices, Directory, Forgetting, LogTail, MessageRow,
    NewChange, NewGeneration, Outboxes, PartFence, Projections, RejectionRecord, Result, Retention,
    Store, StoreError, StoredDoc,
};

/// How long one probe may take before it counts as failed.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// Probe period while the storage is down (how soon recovery is noticed).
pub const PROBE_DOWN_EVERY: Duration = Duration::from_millis(250);
/// Probe period while the storage is up (how soon an outage without traffic is noticed):
/// with the probe's own bound, `/readyz` turns 503 within 750 ms of an outage nobody writes
/// through (the README promises about a second); a `SELECT 1` four times a second costs
/// nothing.
pub const PROBE_UP_EVERY: Duration = Duration::from_millis(250);
/// What clients are told to wait before resubmitting while the storage is down: a few
/// probe periods, so a short blip costs little and a long outage is not hammered.
pub const RETRY_AFTER_MS: u64 = 1000;
/// The longest a commit may take before its changes are answered `unavailable` and the
/// state turns down: a database that is up but slow (every round trip seconds) must not
/// leave the committer, and every client queued behind it, waiting without end. Above the
/// pool timeouts (2 s Postgres, 5 s SQLite) so a busy but healthy database is not cut off.
pub const COMMIT_TIMEOUT: Duration = Duration::from_secs(6);

/// How long the storage may take to answer before it counts as down, and how often it is
/// probed while up. The defaults are [`PROBE_TIMEOUT`], [`PROBE_UP_EVERY`] and
/// [`COMMIT_TIMEOUT`]; only a process that runs many times slower than real time (the cost
/// meter under callgrind, whose count must not depend on how many probes a slow machine
/// fits in) sets others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageTimeouts {
    pub probe: Duration,
    pub probe_up_every: Duration,
    pub commit: Duration,
}

impl Default for StorageTimeouts {
    fn default() -> Self {
        StorageTimeouts {
            probe: PROBE_TIMEOUT,
            probe_up_every: PROBE_UP_EVERY,
            commit: COMMIT_TIMEOUT,
        }
    }
}

/// The shared up/down state; cheap to clone.
#[derive(Clone, Default)]
pub struct Health {
    inner: Arc<State>,
}

#[derive(Default)]
struct State {
    down: AtomicBool,
    /// Counts recoveries (down → up).
    recoveries: AtomicU64,
    /// Why it is down (the first failure of the outage, or the latest failed probe).
    reason: Mutex<String>,
    timeouts: StorageTimeouts,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("down", &self.is_down())
            .finish()
    }
}

impl Health {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_timeouts(timeouts: StorageTimeouts) -> Self {
        Health {
            inner: Arc::new(State {
                timeouts,
                ..State::default()
            }),
        }
    }

    /// True while the storage is known to be unreachable or unable to write.
    pub fn is_down(&self) -> bool {
        self.inner.down.load(Ordering::SeqCst)
    }

    /// Why it is down (empty while up).
    pub fn reason(&self) -> String {
        if !self.is_down() {
            return String::new();
        }
        self.inner
            .reason
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// How long a client should wait before trying again.
    pub fn retry_after_ms(&self) -> u64 {
        RETRY_AFTER_MS
    }

    /// Marks the storage down (logged once per outage).
    pub fn set_down(&self, reason: impl Display) {
        let reason = reason.to_string();
        let was_down = self.inner.down.swap(true, Ordering::SeqCst);
        if let Ok(mut r) = self.inner.reason.lock() {
            *r = reason.clone();
        }
        if !was_down {
            tracing::error!(%reason, "storage unavailable: failing writes fast until it is back");
        }
    }

    /// Marks the storage up again (logged once per recovery).
    pub fn set_up(&self) {
        if self.inner.down.swap(false, Ordering::SeqCst) {
            self.inner.recoveries.fetch_add(1, Ordering::SeqCst);
            tracing::warn!("storage available again");
        }
    }

    /// What a probe's answer means. Only a write probe (sent while down) brings the storage
    /// back: a read probe sent while up that succeeds after a commit failed meanwhile says
    /// nothing about writes (on a full disk it flipped `/readyz` to 200 for a moment).
    fn probed(
        &self,
        was_down: bool,
        answer: std::result::Result<Result<()>, tokio::time::error::Elapsed>,
    ) {
        match answer {
            Ok(Ok(())) if was_down => self.set_up(),
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                if was_down {
                    tracing::debug!(error = %e, "storage probe failed");
                }
                self.set_down(format!("probe: {e}"));
            }
            Err(_) => self.set_down(format!(
                "probe: no answer within {} ms",
                self.inner.timeouts.probe.as_millis()
            )),
        }
    }

    /// How many times the storage came back (see [`Guarded`]'s commit).
    fn recoveries(&self) -> u64 {
        self.inner.recoveries.load(Ordering::SeqCst)
    }

    /// `Err(Unavailable)` at once while down.
    pub fn gate(&self) -> Result<()> {
        if self.is_down() {
            return Err(StoreError::Unavailable(self.reason()));
        }
        Ok(())
    }

    /// Passes `result` through, marking the storage down if it failed for an
    /// unavailable-class reason.
    pub fn observe<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(e) = &result {
            if e.is_unavailable() {
                self.set_down(e);
            }
        }
        result
    }
}

/// Starts the prober for `store` (the unguarded store): it ends when every other handle of
/// `health` is gone.
///
/// It runs on a thread and runtime of its own (and, with Postgres, its one connection is
/// made and driven there): on the shared runtime a probe's answer waited its turn behind
/// thousands of busy connection tasks, and a healthy but busy database was declared down
/// ("no answer within 500 ms") and every submit refused `unavailable` for it
/// (docs/BENCHMARKS.md, "Many at once"). The probe must time the database, not the
/// server's own queue.
pub fn spawn_prober(health: &Health, store: Arc<dyn Store>) {
    let weak: Weak<State> = Arc::downgrade(&health.inner);
    let probing = async move {
        loop {
            let Some(inner) = weak.upgrade() else {
                return;
            };
            let health = Health { inner };
            let down = health.is_down();
            let answer = tokio::time::timeout(health.inner.timeouts.probe, store.probe(down)).await;
            health.probed(down, answer);
            let wait = if health.is_down() {
                PROBE_DOWN_EVERY
            } else {
                health.inner.timeouts.probe_up_every
            };
            drop(health);
            tokio::time::sleep(wait).await;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::warn!(error = %e, "no prober runtime; probing on the shared one");
            tokio::spawn(probing);
            return;
        }
    };
    // The future moves to the thread only if the thread starts; otherwise it runs here.
    let (handoff, take) = std::sync::mpsc::sync_channel(1);
    let started = std::thread::Builder::new()
        .name("storage-probe".into())
        .spawn(move || {
            if let Ok(probing) = take.recv() {
                runtime.block_on(probing);
            }
        });
    match started {
        Ok(_) => {
            if let Err(std::sync::mpsc::SendError(probing)) = handoff.send(probing) {
                tokio::spawn(probing);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "no prober thread; probing on the shared runtime");
            tokio::spawn(probing);
        }
    }
}

/// A store behind the health state: fails at once while down, marks it down on an
/// unavailable-class error. It implements every concern's trait, forwarding each method.
pub struct Guarded {
    inner: Arc<dyn Store>,
    health: Health,
    /// The recoveries this handle's commits have seen.
    recoveries_seen: AtomicU64,
}

impl std::fmt::Debug for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}

impl Guarded {
    /// An audit-log write's result. A flood of rejections can queue audit writes on the
    /// writer long enough to time out: that is contention, not an outage.
    fn observe_audit(&self, result: Result<()>) -> Result<()> {
        match result {
            Err(StoreError::Database(sqlx::Error::PoolTimedOut)) => result,
            other => self.health.observe(other),
        }
    }

    pub fn new(inner: Arc<dyn Store>, health: Health) -> Self {
        let recoveries_seen = AtomicU64::new(health.recoveries());
        Guarded {
            inner,
            health,
            recoveries_seen,
        }
    }

    async fn run<T>(&self, call: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        self.health.gate()?;
        self.health.observe(call.await)
    }
}

/// A fence whose install the health state guards and observes, as every other call.
struct GuardedFence {
    inner: Box<dyn PartFence>,
    health: Health,
}

#[async_trait]
impl PartFence for GuardedFence {
    async fn install(self: Box<Self>, next: &NewGeneration) -> Result<()> {
        self.health.gate()?;
        self.health.observe(self.inner.install(next).await)
    }
}

#[async_trait]
impl Store for Guarded {
    fn for_commit_thread(&self) -> Option<Arc<dyn Store>> {
        let inner = self.inner.for_commit_thread()?;
        Some(Arc::new(Guarded::new(inner, self.health.clone())))
    }
    fn for_read_thread(&self) -> Option<Arc<dyn Store>> {
        let inner = self.inner.for_read_thread()?;
        Some(Arc::new(Guarded::new(inner, self.health.clone())))
    }
    async fn migrate(&self) -> Result<()> {
        self.inner.migrate().await
    }
    async fn ping(&self) -> Result<()> {
        self.run(self.inner.ping()).await
    }
    async fn probe(&self, write: bool) -> Result<()> {
        self.inner.probe(write).await
    }
}

#[async_trait]
impl ChangeLog for Guarded {
    async fn load_doc(&self, doc: &DocId) -> Result<StoredDoc> {
        self.run(self.inner.load_doc(doc)).await
    }
    async fn commit(&self, changes: &[NewChange]) -> Result<()> {
        self.health.gate()?;
        // The committer's Postgres pool does not test connections before use (a round trip
        // per commit): after an outage its idle connection is dead, and the first commit
        // would fail on it and turn the state down again. A ping first replaces it.
        let recoveries = self.health.recoveries();
        let ping = self.recoveries_seen.swap(recoveries, Ordering::SeqCst) != recoveries;
        let call = async {
            if ping {
                let _ = self.inner.ping().await;
            }
            self.inner.commit(changes).await
        };
        // A timed-out commit may still have committed on the database's side: it is
        // answered `unavailable` (never a rejection), and the client's resubmission is
        // idempotent (an already stored change is acked with its seq).
        let limit = self.health.inner.timeouts.commit;
        let result = match tokio::time::timeout(limit, call).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable(format!(
                "commit: no answer within {} ms",
                limit.as_millis()
            ))),
        };
        self.health.observe(result)
    }
    async fn log_tail(&self, doc: &DocId, after: u64, limit: usize) -> Result<LogTail> {
        self.run(self.inner.log_tail(doc, after, limit)).await
    }
    async fn changes_after(
        &self,
        doc: &DocId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>> {
        self.run(self.inner.changes_after(doc, after, limit)).await
    }
    async fn seq_of(&self, doc: &DocId, hash: &[u8; 32]) -> Result<Option<u64>> {
        self.run(self.inner.seq_of(doc, hash)).await
    }
    async fn actor_account(&self, tenant: &TenantId, actor: &[u8]) -> Result<Option<AccountId>> {
        self.run(self.inner.actor_account(tenant, actor)).await
    }
    async fn compact(&self, doc: &DocId, snapshot: &[u8], seq: u64) -> Result<()> {
        self.run(self.inner.compact(doc, snapshot, seq)).await
    }
    async fn install_generation(&self, doc: &DocId, next: &NewGeneration) -> Result<()> {
        self.run(self.inner.install_generation(doc, next)).await
    }
    async fn fence_part(&self, doc: &DocId) -> Result<Box<dyn PartFence>> {
        let inner = self.run(self.inner.fence_part(doc)).await?;
        Ok(Box::new(GuardedFence {
            inner,
            health: self.health.clone(),
        }))
    }
    async fn doc_ids(&self) -> Result<Vec<String>> {
        self.run(self.inner.doc_ids()).await
    }
    async fn stored_bytes(&self, doc: &DocId) -> Result<u64> {
        self.run(self.inner.stored_bytes(doc)).await
    }
    async fn record_rejection(&self, record: &RejectionRecord) -> Result<()> {
        self.health.gate()?;
        let result = self.inner.record_rejection(record).await;
        self.observe_audit(result)
    }
    // Forwarded, not the single write in a loop (one transaction per rejection): behind
    // this guard a flood's audit batches became 1,024 single-row transactions each, which
    // held SQLite's one writer in front of the commits for seconds after the flood.
    async fn record_rejections(&self, records: &[RejectionRecord]) -> Result<()> {
        self.health.gate()?;
        let result = self.inner.record_rejections(records).await;
        self.observe_audit(result)
    }
    async fn rejection_count(&self, tenant: &TenantId) -> Result<i64> {
        self.run(self.inner.rejection_count(tenant)).await
    }
}

#[async_trait]
impl Projections for Guarded {
    async fn search(
        &self,
        query: &super::search::SearchQuery<'_>,
    ) -> Result<Vec<super::search::SearchHit>> {
        self.run(self.inner.search(query)).await
    }
    async fn search_backfill_page(
        &self,
        limit: usize,
    ) -> Result<Option<super::search::backfill::Page>> {
        self.run(self.inner.search_backfill_page(limit)).await
    }
    async fn search_backfill_write(
        &self,
        page: &super::search::backfill::Page,
        entries: &[super::search::backfill::Entry],
    ) -> Result<()> {
        self.run(self.inner.search_backfill_write(page, entries))
            .await
    }
    async fn index_search_backlog(&self, limit: usize) -> Result<usize> {
        self.run(self.inner.index_search_backlog(limit)).await
    }
    async fn membership(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        account: &AccountId,
    ) -> Result<Option<(String, String)>> {
        self.run(self.inner.membership(tenant, conv, account)).await
    }
    async fn conversation(&self, tenant: &TenantId, conv: &ConvId) -> Result<Option<ConvRow>> {
        self.run(self.inner.conversation(tenant, conv)).await
    }
    async fn conv_stats(&self, tenant: &TenantId, conv: &ConvId) -> Result<Option<ConvStats>> {
        self.run(self.inner.conv_stats(tenant, conv)).await
    }
    async fn read_times(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
    ) -> Result<std::collections::BTreeMap<AccountId, i64>> {
        self.run(self.inner.read_times(tenant, conv)).await
    }
    async fn conversations_of(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Vec<ConvListItem>> {
        self.run(self.inner.conversations_of(tenant, account)).await
    }
    async fn messages(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<MessageRow>> {
        self.run(self.inner.messages(tenant, conv, before, limit))
            .await
    }
    async fn buckets(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        before: Option<Bucket>,
        limit: usize,
    ) -> Result<BucketPage> {
        self.run(self.inner.buckets(tenant, conv, before, limit))
            .await
    }
    async fn memberships_of(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Vec<Membership>> {
        self.run(self.inner.memberships_of(tenant, account)).await
    }
    async fn active_members(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        admins_only: bool,
        limit: usize,
    ) -> Result<Vec<AccountId>> {
        self.run(self.inner.active_members(tenant, conv, admins_only, limit))
            .await
    }
    async fn fanout_members(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        after: Option<&AccountId>,
        limit: usize,
    ) -> Result<Vec<(AccountId, u64)>> {
        self.run(self.inner.fanout_members(tenant, conv, after, limit))
            .await
    }
    async fn author_of(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        message: &MessageId,
    ) -> Result<Option<AccountId>> {
        self.run(self.inner.author_of(tenant, conv, message)).await
    }
    async fn message_deleted(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        message: &MessageId,
    ) -> Result<Option<bool>> {
        self.run(self.inner.message_deleted(tenant, conv, message))
            .await
    }
    async fn message_bucket(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        message: &MessageId,
    ) -> Result<Option<Bucket>> {
        self.run(self.inner.message_bucket(tenant, conv, message))
            .await
    }
    async fn discover(&self, query: &DiscoverQuery<'_>) -> Result<Vec<DiscoverItem>> {
        self.run(self.inner.discover(query)).await
    }
    async fn discovery_stale(
        &self,
        after: Option<(&TenantId, &ConvId)>,
        limit: usize,
    ) -> Result<Vec<(TenantId, ConvId)>> {
        self.run(self.inner.discovery_stale(after, limit)).await
    }
    async fn discovery_write(&self, rows: &[ConvRow]) -> Result<u64> {
        self.run(self.inner.discovery_write(rows)).await
    }
}

#[async_trait]
impl Retention for Guarded {
    async fn conversations_with_buckets(
        &self,
        after: Option<&ConvKey>,
        limit: usize,
    ) -> Result<Vec<ConvKey>> {
        self.run(self.inner.conversations_with_buckets(after, limit))
            .await
    }
    async fn drop_buckets(&self, req: DropRequest<'_>) -> Result<Dropped> {
        self.run(self.inner.drop_buckets(req)).await
    }
}

#[async_trait]
impl Forgetting for Guarded {
    async fn release_blobs(&self, rows: &[forget::BlobRelease]) -> Result<()> {
        self.run(self.inner.release_blobs(rows)).await
    }
    async fn due_blob_releases(
        &self,
        deleted_before: i64,
        limit: usize,
    ) -> Result<Vec<forget::BlobRelease>> {
        self.run(self.inner.due_blob_releases(deleted_before, limit))
            .await
    }
    async fn settle_blob_release(&self, row: &forget::BlobRelease) -> Result<()> {
        self.run(self.inner.settle_blob_release(row)).await
    }
    async fn request_erasure(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        by: &AccountId,
        now: i64,
    ) -> Result<forget::Erasure> {
        self.run(self.inner.request_erasure(tenant, account, by, now))
            .await
    }
    async fn erasure(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Option<forget::Erasure>> {
        self.run(self.inner.erasure(tenant, account)).await
    }
    async fn claim_erasure(&self, now: i64, until: i64) -> Result<Option<forget::Erasure>> {
        self.run(self.inner.claim_erasure(now, until)).await
    }
    async fn save_erasure(&self, erasure: &forget::Erasure, until: i64) -> Result<()> {
        self.run(self.inner.save_erasure(erasure, until)).await
    }
    async fn claim_cuts(
        &self,
        timing: crate::store::cuts::CutTiming,
        node: &str,
        limit: usize,
    ) -> Result<Vec<crate::store::cuts::DueCut>> {
        self.run(self.inner.claim_cuts(timing, node, limit)).await
    }
    async fn finish_cut(&self, due: &crate::store::cuts::DueCut) -> Result<()> {
        self.run(self.inner.finish_cut(due)).await
    }
    async fn retry_cut(&self, due: &crate::store::cuts::DueCut, after_ms: i64) -> Result<()> {
        self.run(self.inner.retry_cut(due, after_ms)).await
    }
    async fn pending_cuts(&self) -> Result<i64> {
        self.run(self.inner.pending_cuts()).await
    }
    async fn authored_messages(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        after: (i64, i64),
        limit: usize,
    ) -> Result<Vec<forget::Authored>> {
        self.run(self.inner.authored_messages(tenant, account, after, limit))
            .await
    }
    async fn vacuum_forgotten(&self, full: bool) -> Result<bool> {
        self.run(self.inner.vacuum_forgotten(full)).await
    }
    async fn forget_search_entries(&self, limit: usize) -> Result<usize> {
        self.run(self.inner.forget_search_entries(limit)).await
    }
}

#[async_trait]
impl Outboxes for Guarded {
    async fn insert_notifications(&self, rows: &[NewNotification]) -> Result<Vec<(i64, usize)>> {
        self.run(self.inner.insert_notifications(rows)).await
    }
    async fn advance_stream(&self, post: &StreamPost) -> Result<StreamRow> {
        self.run(self.inner.advance_stream(post)).await
    }
    async fn join_streams(&self, joined: &[Joined]) -> Result<()> {
        self.run(self.inner.join_streams(joined)).await
    }
    async fn quiet_marks(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Vec<(ConvId, Option<i64>)>> {
        self.run(self.inner.quiet_marks(tenant, account)).await
    }
    async fn set_quiet(&self, changes: &[Quiet]) -> Result<()> {
        self.run(self.inner.set_quiet(changes)).await
    }
    async fn stream_marks(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        first: &AccountId,
        last: &AccountId,
    ) -> Result<Vec<(AccountId, Mark)>> {
        self.run(self.inner.stream_marks(tenant, conv, first, last))
            .await
    }
    async fn notification_page(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        before: Option<i64>,
        unread_only: bool,
        limit: usize,
        quiet: &[ConvId],
    ) -> Result<Vec<Notification>> {
        self.run(
            self.inner
                .notification_page(tenant, account, before, unread_only, limit, quiet),
        )
        .await
    }
    async fn unread_notifications(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        quiet: &[ConvId],
    ) -> Result<i64> {
        self.run(self.inner.unread_notifications(tenant, account, quiet))
            .await
    }
    async fn mark_notifications_read(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        up_to: Option<i64>,
        at: i64,
        quiet: &[ConvId],
    ) -> Result<i64> {
        self.run(
            self.inner
                .mark_notifications_read(tenant, account, up_to, at, quiet),
        )
        .await
    }
    async fn forget_notified(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        message: &MessageId,
    ) -> Result<i64> {
        self.run(self.inner.forget_notified(tenant, conv, message))
            .await
    }
    async fn enqueue_deliveries(&self, rows: &[NewDelivery]) -> Result<()> {
        self.run(self.inner.enqueue_deliveries(rows)).await
    }
    async fn waiting_delivery(&self, key: &str) -> Result<Option<(i64, String)>> {
        self.run(self.inner.waiting_delivery(key)).await
    }
    async fn merge_delivery(&self, id: i64, key: &str, old: &str, new: &str) -> Result<bool> {
        self.run(self.inner.merge_delivery(id, key, old, new)).await
    }
    async fn claim_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        self.run(self.inner.claim_deliveries(now, lease_until, limit))
            .await
    }
    async fn delivered(&self, id: i64) -> Result<()> {
        self.run(self.inner.delivered(id)).await
    }
    async fn delivery_failed(
        &self,
        id: i64,
        attempts: i64,
        next_at: i64,
        dead_at: Option<i64>,
        error: &str,
    ) -> Result<()> {
        self.run(
            self.inner
                .delivery_failed(id, attempts, next_at, dead_at, error),
        )
        .await
    }
    async fn dead_deliveries(&self) -> Result<i64> {
        self.run(self.inner.dead_deliveries()).await
    }
    async fn pending_deliveries(&self) -> Result<i64> {
        self.run(self.inner.pending_deliveries()).await
    }
    async fn claim_scheduled(
        &self,
        now: i64,
        lease_until: i64,
        node: &str,
        limit: usize,
    ) -> Result<Vec<Claim>> {
        self.run(self.inner.claim_scheduled(now, lease_until, node, limit))
            .await
    }
    async fn finish_scheduled(&self, doc: &str, gen: i64, next_at: Option<i64>) -> Result<()> {
        self.run(self.inner.finish_scheduled(doc, gen, next_at))
            .await
    }
    async fn retry_scheduled(&self, doc: &str, at: i64) -> Result<()> {
        self.run(self.inner.retry_scheduled(doc, at)).await
    }
    async fn hint_scheduled(&self, doc: &str, at: i64) -> Result<()> {
        self.run(self.inner.hint_scheduled(doc, at)).await
    }
    async fn post_bucket(&self, doc: &str, message: &str, bucket: &str) -> Result<String> {
        self.run(self.inner.post_bucket(doc, message, bucket)).await
    }
    async fn move_post(&self, doc: &str, message: &str, to: &str) -> Result<()> {
        self.run(self.inner.move_post(doc, message, to)).await
    }
    async fn post_done(&self, doc: &str, message: &str) -> Result<()> {
        self.run(self.inner.post_done(doc, message)).await
    }
}

#[async_trait]
impl Directory for Guarded {
    async fn create_invite(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        token_hash: &[u8; 32],
        invite: &Invite,
    ) -> Result<()> {
        self.run(self.inner.create_invite(tenant, conv, token_hash, invite))
            .await
    }
    async fn invite_by_token(
        &self,
        tenant: &TenantId,
        token_hash: &[u8; 32],
    ) -> Result<Option<(ConvId, Invite)>> {
        self.run(self.inner.invite_by_token(tenant, token_hash))
            .await
    }
    async fn invites(&self, tenant: &TenantId, conv: &ConvId, limit: usize) -> Result<Vec<Invite>> {
        self.run(self.inner.invites(tenant, conv, limit)).await
    }
    async fn live_invites(&self, tenant: &TenantId, conv: &ConvId, now_ms: i64) -> Result<u64> {
        self.run(self.inner.live_invites(tenant, conv, now_ms))
            .await
    }
    async fn revoke_invite(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        id: &str,
        now_ms: i64,
    ) -> Result<bool> {
        self.run(self.inner.revoke_invite(tenant, conv, id, now_ms))
            .await
    }
    async fn use_invite(&self, tenant: &TenantId, id: &str, now_ms: i64) -> Result<bool> {
        self.run(self.inner.use_invite(tenant, id, now_ms)).await
    }
    async fn unuse_invite(&self, tenant: &TenantId, id: &str) -> Result<()> {
        self.run(self.inner.unuse_invite(tenant, id)).await
    }
    async fn register_identifiers(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        hashes: &[String],
    ) -> Result<()> {
        self.run(self.inner.register_identifiers(tenant, account, hashes))
            .await
    }
    async fn match_identifiers(
        &self,
        tenant: &TenantId,
        hashes: &[String],
    ) -> Result<Vec<(String, AccountId)>> {
        self.run(self.inner.match_identifiers(tenant, hashes)).await
    }
}

#[async_trait]
impl Devices for Guarded {
    async fn upload_key_packages(
        &self,
        upload: &super::devices::Upload<'_>,
    ) -> Result<std::result::Result<u64, super::devices::UploadRefused>> {
        self.run(self.inner.upload_key_packages(upload)).await
    }
    async fn claim_key_packages(
        &self,
        tenant: &TenantId,
        accounts: &[AccountId],
        ordinary: &dyn super::devices::Ordinary,
        at: i64,
    ) -> Result<Vec<super::devices::Claimed>> {
        self.run(
            self.inner
                .claim_key_packages(tenant, accounts, ordinary, at),
        )
        .await
    }
    async fn co_members(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        others: &[AccountId],
    ) -> Result<Vec<AccountId>> {
        self.run(self.inner.co_members(tenant, account, others))
            .await
    }
    async fn devices_of(
        &self,
        tenant: &TenantId,
        accounts: &[AccountId],
    ) -> Result<Vec<super::devices::DeviceRow>> {
        self.run(self.inner.devices_of(tenant, accounts)).await
    }
    async fn directory_of(
        &self,
        tenant: &TenantId,
        ask: &confab_core::e2ee::DirectoryAsk,
    ) -> Result<confab_core::e2ee::DirectoryAnswer> {
        self.run(self.inner.directory_of(tenant, ask)).await
    }
    async fn removed_devices_of(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Vec<confab_core::ids::DeviceId>> {
        self.run(self.inner.removed_devices_of(tenant, account))
            .await
    }
    async fn remove_device(
        &self,
        device: &confab_core::e2ee::DeviceIdentity,
        at: i64,
    ) -> Result<bool> {
        self.run(self.inner.remove_device(device, at)).await
    }
    async fn key_packages_held(
        &self,
        device: &confab_core::e2ee::DeviceIdentity,
        at: i64,
    ) -> Result<u64> {
        self.run(self.inner.key_packages_held(device, at)).await
    }
}

#[async_trait]
impl Cluster for Guarded {
    fn cluster_options(&self) -> Option<sqlx::postgres::PgConnectOptions> {
        self.inner.cluster_options()
    }
    async fn notify(&self, channel: &'static str, payloads: &[String]) -> Result<()> {
        self.run(self.inner.notify(channel, payloads)).await
    }
    async fn sync_clients(
        &self,
        node: &str,
        came: &[Key],
        went: &[Key],
        reset: bool,
    ) -> Result<()> {
        self.run(self.inner.sync_clients(node, came, went, reset))
            .await
    }
    async fn clients_elsewhere(
        &self,
        node: &str,
        accounts: &[Key],
        alive_ms: i64,
    ) -> Result<Vec<Key>> {
        self.run(self.inner.clients_elsewhere(node, accounts, alive_ms))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_fails_fast_while_down_and_recovers() {
        let health = Health::new();
        assert!(health.gate().is_ok());
        let failed: Result<()> = Err(StoreError::Database(sqlx::Error::PoolClosed));
        assert!(health.observe(failed).is_err());
        assert!(health.is_down());
        assert!(matches!(health.gate(), Err(StoreError::Unavailable(_))));
        assert!(!health.reason().is_empty());
        let other: Result<()> = Err(StoreError::Corrupt("x".into()));
        let _ = health.observe(other);
        health.set_up();
        assert!(health.gate().is_ok());
        let conflict: Result<()> = Err(StoreError::SeqConflict("d".into()));
        let _ = health.observe(conflict);
        assert!(!health.is_down(), "a conflict is about the request");
    }

    /// A read probe sent while up that answers after a commit failed (the disk filled in
    /// between) leaves the storage down; a write probe sent while down brings it back.
    #[test]
    fn only_a_write_probe_brings_the_storage_back() {
        let health = Health::new();
        let was_down = health.is_down();
        let failed: Result<()> = Err(StoreError::Database(sqlx::Error::PoolClosed));
        let _ = health.observe(failed);
        health.probed(was_down, Ok(Ok(())));
        assert!(health.is_down(), "a read probe said nothing about writes");
        health.probed(health.is_down(), Ok(Ok(())));
        assert!(!health.is_down(), "the write probe succeeded");
        health.probed(
            false,
            Ok(Err(StoreError::Database(sqlx::Error::PoolClosed))),
        );
        assert!(health.is_down(), "a failed read probe turns it down");
    }
}
