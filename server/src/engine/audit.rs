//! The audit log of rejections, written by one task in batches.
//!
//! A unit hands each rejection to a bounded queue and goes on; the writer gathers them until
//! none came for `LINGER` (or `HIGH_WATER` gathered) and stores them in transactions of up
//! to `BATCH`, resting between them (`REST_FACTOR`). A flood of rejections is
//! then a few writes instead of one each, which on SQLite (one writer) would otherwise queue
//! in front of the group committer. The log is best-effort under a flood: when the queue is
//! full, rejections are counted (`confab_audit_dropped_total`) and summed up in the server
//! log instead of stored. The `confab_changes_rejected_total` metric counts every one.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::store::{ChangeLog, RejectionRecord};

/// Rejections waiting for the writer before new ones are dropped.
pub(crate) const QUEUE: usize = 16_384;

/// Rejections stored in one transaction at most.
const BATCH: usize = 1_024;

/// The writer writes once no rejection came for this long (or `HIGH_WATER` gathered). On
/// SQLite every write is a durable transaction on the one writer the group committer also
/// uses: under a flood a few large writes, after it, hold up commits far less than many
/// small ones while it is answered.
const LINGER: Duration = Duration::from_millis(100);

/// Rejections of one document, account and code stored per gathering; the rest of a flood's
/// are counted (`confab_audit_dropped_total`) and summed up in the server log. Storing
/// 10,000 identical rows told nothing more, and on SQLite their megabytes of log and
/// checkpoint slowed the commits that came after them for a second (docs/BENCHMARKS.md,
/// "Flood").
const PER_GROUP: usize = 100;

/// Rejections gathered before the writer writes even though more keep coming (a long flood).
/// Gathered ones have left the queue, which has its full room again meanwhile.
const HIGH_WATER: usize = QUEUE;

/// After each write the writer rests this many times as long as the write took (within
/// `REST_MIN..REST_MAX`): on SQLite the group committer shares the one writer connection,
/// so the audit log holds it at most a third of the time and a flood's rejections are
/// written between the commits instead of in one run in front of them.
const REST_FACTOR: u32 = 2;
const REST_MIN: Duration = Duration::from_millis(20);
const REST_MAX: Duration = Duration::from_millis(500);

/// Where units send rejections; cheap to clone.
#[derive(Clone)]
pub(crate) struct Audit {
    tx: mpsc::Sender<RejectionRecord>,
    dropped: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
}

impl Audit {
    pub(crate) fn spawn(store: Arc<dyn ChangeLog>, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        tokio::spawn(write(store, rx, dropped.clone(), metrics.clone()));
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
    store: Arc<dyn ChangeLog>,
    mut rx: mpsc::Receiver<RejectionRecord>,
    dropped: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
) {
    let mut gathered = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut gathered, BATCH).await > 0 {
        // Gather until no rejection came for `LINGER` (the flood is over: its batches then
        // do not compete with the member's commits while it is answered), or `HIGH_WATER`.
        while gathered.len() < HIGH_WATER {
            let room = HIGH_WATER - gathered.len();
            match tokio::time::timeout(LINGER, rx.recv_many(&mut gathered, room)).await {
                Ok(n) if n > 0 => continue,
                _ => break,
            }
        }
        log_batch(&gathered);
        let (kept, skipped) = sample(std::mem::take(&mut gathered));
        if skipped > 0 {
            metrics.audit_dropped.inc_by(skipped as u64);
            tracing::info!(
                rejections = skipped,
                "audit log: rejections beyond {PER_GROUP} of one document, account and code counted, not stored"
            );
        }
        for batch in kept.chunks(BATCH) {
            let started = std::time::Instant::now();
            if let Err(e) = store.record_rejections(batch).await {
                tracing::warn!(error = %e, rejections = batch.len(), "audit log write failed");
            }
            let took = started.elapsed();
            let ms = took.as_secs_f64() * 1000.0;
            tracing::debug!(ms, rejections = batch.len(), "audit log written");
            let lost = dropped.swap(0, Ordering::Relaxed);
            if lost > 0 {
                tracing::warn!(
                    rejections = lost,
                    "audit log queue full: rejections counted but not stored"
                );
            }
            tokio::time::sleep((took * REST_FACTOR).clamp(REST_MIN, REST_MAX)).await;
        }
    }
}

/// The first `PER_GROUP` rejections of each document, account and code, in order, and how
/// many more there were.
fn sample(gathered: Vec<RejectionRecord>) -> (Vec<RejectionRecord>, usize) {
    let mut seen: HashMap<(String, String, &'static str), usize> = HashMap::new();
    let total = gathered.len();
    let kept: Vec<RejectionRecord> = gathered
        .into_iter()
        .filter(|r| {
            let key = (r.doc.clone(), r.account.to_string(), r.code.as_str());
            let n = seen.entry(key).or_insert(0);
            *n += 1;
            *n <= PER_GROUP
        })
        .collect();
    let skipped = total - kept.len();
    (kept, skipped)
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

#[cfg(test)]
mod tests {
    use confab_core::ids::{AccountId, TenantId};
    use confab_core::policy::DenyCode;
    use confab_core::validate::RejectCode;

    use super::{sample, RejectionRecord, PER_GROUP};

    fn record(doc: &str, account: &str, code: RejectCode, at: i64) -> RejectionRecord {
        RejectionRecord {
            tenant: TenantId::new("t").expect("tenant"),
            doc: doc.to_owned(),
            account: AccountId::new(account).expect("account"),
            hash: None,
            code,
            reason: String::new(),
            at,
        }
    }

    #[test]
    fn a_flood_keeps_its_first_rows_per_document_account_and_code() {
        let member = RejectCode::Policy(DenyCode::NotMember);
        let mut gathered: Vec<RejectionRecord> = (0..1_000)
            .map(|i| record("t/msgs/c.1", "eve", member, i))
            .collect();
        gathered.push(record("t/msgs/c.1", "bob", member, 5));
        gathered.push(record("t/msgs/c.2", "eve", member, 6));
        let (kept, skipped) = sample(gathered);
        assert_eq!(skipped, 1_000 - PER_GROUP);
        assert_eq!(kept.len(), PER_GROUP + 2);
        let eve: Vec<i64> = kept
            .iter()
            .filter(|r| r.account.as_str() == "eve" && r.doc == "t/msgs/c.1")
            .map(|r| r.at)
            .collect();
        assert_eq!(
            eve,
            (0..PER_GROUP as i64).collect::<Vec<_>>(),
            "the first ones, in order"
        );
    }
}
