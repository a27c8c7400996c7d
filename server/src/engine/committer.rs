//! Group commit: one task merges the commit requests of every unit into one transaction, so
//! throughput is not one fsync per change.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use confab_core::protocol::ErrorCode;
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;
use crate::store::{ChangeLog, NewChange, Store, StoreError};

/// A commit's answer: when it became durable, or why it did not.
pub(crate) type CommitResult = Result<Instant, CommitError>;

/// Why a commit did not happen, with the code its changes are answered with: `unavailable`
/// when the database is down or full (resubmit after a while), `internal` otherwise.
#[derive(Debug, Clone)]
pub(crate) struct CommitError {
    pub code: ErrorCode,
    pub message: String,
    /// Another node committed first (`StoreError::is_conflict`): the unit validates the
    /// batch again instead of failing it.
    pub conflict: bool,
}

impl CommitError {
    fn of(e: &StoreError) -> Self {
        CommitError {
            code: if e.is_unavailable() {
                ErrorCode::Unavailable
            } else {
                ErrorCode::Internal
            },
            message: e.to_string(),
            conflict: e.is_conflict(),
        }
    }
}

impl From<&str> for CommitError {
    fn from(message: &str) -> Self {
        CommitError {
            code: ErrorCode::Internal,
            message: message.to_owned(),
            conflict: false,
        }
    }
}

impl From<String> for CommitError {
    fn from(message: String) -> Self {
        CommitError {
            code: ErrorCode::Internal,
            message,
            conflict: false,
        }
    }
}

/// One unit's batch, answered once it is durable (or not).
pub(crate) struct CommitRequest {
    pub changes: Vec<NewChange>,
    pub reply: oneshot::Sender<CommitResult>,
    /// When the unit handed it over (the `commit_wait` stage ends when its commit starts).
    pub sent: Instant,
    /// The unit's epoch: set when one of its batches fails, so the batches it validated on
    /// top of that one are refused instead of stored.
    pub poisoned: Arc<AtomicBool>,
}

impl CommitRequest {
    fn fail(self, error: CommitError) {
        self.poisoned.store(true, Ordering::SeqCst);
        let _ = self.reply.send(Err(error));
    }
}

const POISONED: &str = "an earlier batch of this conversation was not stored";

/// Most changes merged into one transaction.
const MAX_GROUP: usize = 4096;

/// Starts the committer on a thread and runtime of its own: the database's answer to a
/// commit is taken at once, not queued behind the dozens of connection tasks woken by the
/// previous commit's pushes (docs/BENCHMARKS.md). The thread ends when every sender is
/// gone. Falls back to a task on the caller's runtime if the thread cannot be made.
pub(crate) fn spawn(
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    node: &str,
) -> mpsc::Sender<CommitRequest> {
    let (tx, rx) = mpsc::channel::<CommitRequest>(1024);
    let (handoff, parts) = std::sync::mpsc::sync_channel::<Parts>(1);
    let thread = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .and_then(|runtime| {
            std::thread::Builder::new()
                .name(format!("{node}-commit"))
                .spawn(move || {
                    if let Ok((store, metrics, rx)) = parts.recv() {
                        runtime.block_on(async move {
                            // Made here so its connections belong to this runtime.
                            let store = store.for_commit_thread().unwrap_or(store);
                            run(store, metrics, rx).await;
                        });
                    }
                })
        });
    let parts = (store, metrics, rx);
    let unsent = match thread {
        Ok(_) => handoff.send(parts).err().map(|e| e.0),
        Err(e) => {
            tracing::warn!(error = %e, "no committer thread; committing on the shared runtime");
            Some(parts)
        }
    };
    if let Some((store, metrics, rx)) = unsent {
        tokio::spawn(run(store, metrics, rx));
    }
    tx
}

type Parts = (Arc<dyn Store>, Arc<Metrics>, mpsc::Receiver<CommitRequest>);

async fn run(store: Arc<dyn Store>, metrics: Arc<Metrics>, mut rx: mpsc::Receiver<CommitRequest>) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        let mut total = group[0].changes.len();
        while total < MAX_GROUP {
            match rx.try_recv() {
                Ok(next) => {
                    total += next.changes.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        commit_group(store.as_ref(), &metrics, group).await;
    }
}

/// A commit slower than this is logged (debug): where a slow ack's time went.
const SLOW_COMMIT_S: f64 = 0.010;

async fn commit_group(store: &dyn ChangeLog, metrics: &Metrics, group: Vec<CommitRequest>) {
    let (poisoned, mut group): (Vec<_>, Vec<_>) = group
        .into_iter()
        .partition(|r| r.poisoned.load(Ordering::SeqCst));
    for request in poisoned {
        request.fail(POISONED.into());
    }
    if group.is_empty() {
        return;
    }
    // The changes move into one list (no copies) and back out if they must be retried.
    let counts: Vec<usize> = group.iter().map(|r| r.changes.len()).collect();
    let mut merged: Vec<NewChange> = Vec::with_capacity(counts.iter().sum());
    for request in &mut group {
        merged.append(&mut request.changes);
    }
    let started = Instant::now();
    for request in &group {
        metrics.stages.commit_wait.observe(
            started
                .saturating_duration_since(request.sent)
                .as_secs_f64(),
        );
    }
    let result = store.commit(&merged).await;
    let took = started.elapsed().as_secs_f64();
    metrics.commit_seconds.observe(took);
    metrics.stages.commit.observe(took);
    metrics.commit_batch_size.observe(merged.len() as f64);
    if took > SLOW_COMMIT_S {
        tracing::debug!(ms = took * 1000.0, changes = merged.len(), "slow commit");
    }
    match result {
        Ok(()) => {
            for request in group {
                let _ = request.reply.send(Ok(Instant::now()));
            }
        }
        // One unit's conflict must not fail the others: retry each on its own.
        Err(e) if e.is_conflict() && group.len() > 1 => {
            let mut rest = merged.into_iter();
            for (mut request, count) in group.into_iter().zip(counts) {
                request.changes = rest.by_ref().take(count).collect();
                if request.poisoned.load(Ordering::SeqCst) {
                    request.fail(POISONED.into());
                    continue;
                }
                match store.commit(&request.changes).await {
                    Ok(()) => {
                        let _ = request.reply.send(Ok(Instant::now()));
                    }
                    Err(e) => request.fail(CommitError::of(&e)),
                }
            }
        }
        Err(e) => {
            if e.is_conflict() {
                // Another node committed first: routine in a cluster, counted by the unit
                // (`confab_cluster_commit_conflicts_total`) and validated again.
                tracing::debug!(error = %e, changes = merged.len(), "group commit conflict");
            } else {
                tracing::error!(error = %e, changes = merged.len(), "group commit failed");
            }
            let error = CommitError::of(&e);
            for request in group {
                request.fail(error.clone());
            }
        }
    }
}
