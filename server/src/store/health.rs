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
use confab_core::ids::DocId;

use super::{NewChange, NewGeneration, PartFence, Result, Store, StoreError};

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
/// unavailable-class error. It implements every concern's trait by `forward_store!`, through
/// `guard!`.
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
    pub fn new(inner: Arc<dyn Store>, health: Health) -> Self {
        let recoveries_seen = AtomicU64::new(health.recoveries());
        Guarded {
            inner,
            health,
            recoveries_seen,
        }
    }

    /// Every store call but those `guard!` takes apart.
    async fn run<T>(&self, call: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        self.health.gate()?;
        self.health.observe(call.await)
    }

    /// A handle for another thread, behind the same health state.
    fn for_thread(&self, inner: Option<Arc<dyn Store>>) -> Option<Arc<dyn Store>> {
        Some(Arc::new(Guarded::new(inner?, self.health.clone())))
    }

    /// The commit, answered `unavailable` past [`StorageTimeouts::commit`].
    async fn commit_in_time(&self, changes: &[NewChange]) -> Result<()> {
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

    /// The fence is guarded too, until it is installed.
    async fn guarded_fence(&self, doc: &DocId) -> Result<Box<dyn PartFence>> {
        let inner = self.run(self.inner.fence_part(doc)).await?;
        Ok(Box::new(GuardedFence {
            inner,
            health: self.health.clone(),
        }))
    }

    /// An audit-log write. A flood of rejections can queue audit writes on the writer long
    /// enough to time out: that is contention, not an outage.
    async fn audit(&self, write: impl std::future::Future<Output = Result<()>>) -> Result<()> {
        self.health.gate()?;
        let result = write.await;
        match result {
            Err(StoreError::Database(sqlx::Error::PoolTimedOut)) => result,
            other => self.health.observe(other),
        }
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

/// What [`Guarded`] does around each store call, for `forward_store!`: the last arm guards
/// it ([`Guarded::run`]); the arms before it take the calls guarded otherwise, or not at all.
macro_rules! guard {
    ($guarded:ident, for_commit_thread()) => {
        $guarded.for_thread($guarded.inner.for_commit_thread())
    };
    ($guarded:ident, for_read_thread()) => {
        $guarded.for_thread($guarded.inner.for_read_thread())
    };
    // Past the guard: migrations run before the store is guarded, and probes are how it
    // comes back up.
    ($guarded:ident, migrate()) => {
        $guarded.inner.migrate().await
    };
    ($guarded:ident, probe($write:ident)) => {
        $guarded.inner.probe($write).await
    };
    ($guarded:ident, cluster_options()) => {
        $guarded.inner.cluster_options()
    };
    ($guarded:ident, commit($changes:ident)) => {
        $guarded.commit_in_time($changes).await
    };
    ($guarded:ident, fence_part($doc:ident)) => {
        $guarded.guarded_fence($doc).await
    };
    ($guarded:ident, record_rejection($record:ident)) => {
        $guarded.audit($guarded.inner.record_rejection($record)).await
    };
    ($guarded:ident, record_rejections($records:ident)) => {
        $guarded.audit($guarded.inner.record_rejections($records)).await
    };
    ($guarded:ident, $method:ident($($argument:ident),*)) => {
        $guarded.run($guarded.inner.$method($($argument),*)).await
    };
}

forward_store!(Guarded, guard);

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
