//! The audit log of rejections, written by one task in batches.
//!
//! A unit hands each rejection to a bounded queue and goes on; the writer takes whatever
//! gathers within `LINGER` of the first (up to `BATCH`) and stores it in one transaction. A flood of rejections is
//! then a few writes instead of one each, which on SQLite (one writer) would otherwise queue
//! in front of the group committer. The log is best-effort under a flood: when the queue is
//! full, rejections are counted (`confab_audit_dropped_total`) and summed up in the server
//! log instead of stored. The `confab_changes_rejected_total` metric counts every one.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::store::{RejectionRecord, Store};

/// Rejections waiting for the writer before new ones are dropped.
pub(crate) const QUEUE: usize = 16_384;

/// Rejections stored in one transaction at most.
const BATCH: usize = 1_024;

/// How long the writer gathers rejections after the first before it writes them. On SQLite
/// every write is a durable transaction on the one writer the group committer also uses:
/// under a flood a few large writes hold up commits far less than many small ones.
const LINGER: Duration = Duration::from_millis(100);

/// Where units send rejections; cheap to clone.
#[derive(Clone)]
pub(crate) struct Audit {
    tx: mpsc::Sender<RejectionRecord>,
    dropped: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
}

impl Audit {
    pub(crate) fn spawn(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        tokio::spawn(write(store, rx, dropped.clone()));
        Audit {
            tx,
            dropped,
            metrics,
        }
    }

    /// Queues one rejection; never waits.
    pub(crate) fn record(&self, record: RejectionRecord) {
        if self.tx.try_send(record).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            self.metrics.audit_dropped.inc();
        }
    }
}

async fn write(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<RejectionRecord>,
    dropped: Arc<AtomicU64>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let deadline = tokio::time::Instant::now() + LINGER;
        while batch.len() < BATCH {
            let room = BATCH - batch.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room)).await {
                Ok(n) if n > 0 => continue,
                _ => break,
            }
        }
        log_batch(&batch);
        if let Err(e) = store.record_rejections(&batch).await {
            tracing::warn!(error = %e, rejections = batch.len(), "audit log write failed");
        }
        batch.clear();
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            tracing::warn!(
                rejections = lost,
                "audit log queue full: rejections counted but not stored"
            );
        }
    }
}

/// One log line per rejection, or one per document, account and code when a batch holds
/// several (a flood must not become a flood of log lines).
fn log_batch(batch: &[RejectionRecord]) {
    let mut groups: BTreeMap<(&str, &str, &str), (usize, &RejectionRecord)> = BTreeMap::new();
    for r in batch {
        groups
            .entry((r.doc.as_str(), r.account.as_str(), r.code.as_str()))
            .or_insert((0, r))
            .0 += 1;
    }
    for ((doc, account, code), (count, first)) in groups {
        if count == 1 {
            tracing::info!(%doc, %account, code, reason = %first.reason, "change rejected");
        } else {
            tracing::info!(%doc, %account, code, count, first_reason = %first.reason, "changes rejected");
        }
    }
}
