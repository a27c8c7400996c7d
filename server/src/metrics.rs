//! Prometheus metrics (`/metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabel {
    pub direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabel {
    pub stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabel {
    pub node: String,
}

/// A cluster of nodes on one Postgres (`engine::cluster`).
#[derive(Debug, Clone)]
pub struct ClusterMetrics {
    /// 1 while the node listens for other nodes' commits (0: `/readyz` answers 503).
    pub listening: Gauge,
    /// Commit notifications received (other nodes' and this node's own).
    pub notifications: Counter,
    /// Reads of the change log to catch up on other nodes' commits.
    pub catchup_reads: Counter,
    /// This node's commits refused because another node committed first.
    pub commit_conflicts: Counter,
    /// Listener connections re-made, after which every unit re-read the log.
    pub resyncs: Counter,
    /// From another node's commit to its changes pushed here (the database's clock against
    /// this node's).
    pub lag_seconds: Histogram,
    /// Seqs one catch-up read brought in.
    pub lag_seqs: Histogram,
    /// Signals published for the other nodes.
    pub signals_published: Counter,
    /// Signals not published (the queue was full, or the database failed).
    pub signals_dropped: Counter,
    /// Other nodes' signals relayed to this node's subscribers.
    pub signals_relayed: Counter,
}

/// The scheduler of scheduled messages (`engine::schedule`).
#[derive(Debug, Clone)]
pub struct ScheduleMetrics {
    /// Due messages posted into their conversations.
    pub posted: Counter,
    /// Due messages refused (kept in the author's private document), by reject code.
    pub refused: Family<ReasonLabel, Counter>,
    /// Documents left for a later pass after a transient failure (storage, shutdown).
    pub retried: Counter,
    /// From a message's scheduled time to its post: the poll interval normally, up to the
    /// claim lease after a node died mid-pass, longer while the storage was down.
    pub lateness_seconds: Histogram,
}

/// The notification feed and its webhooks (`crate::notify`).
#[derive(Debug, Clone, Default)]
pub struct NotifyMetrics {
    /// Notifications stored.
    pub created: Counter,
    /// Events dropped because the notifier's queue was full.
    pub dropped: Counter,
    /// Messages folded into a per-conversation count because the queue was full.
    pub folded: Counter,
    /// Webhook deliveries of new messages merged into one still waiting.
    pub webhook_merged: Counter,
    /// Events or rows not computed or stored because the storage failed.
    pub failed: Counter,
    /// Attempts at a batch put off because the storage was unavailable (tried again).
    pub deferred: Counter,
    /// Webhook deliveries the receiver took (2xx).
    pub webhook_delivered: Counter,
    /// Webhook attempts that failed (an error status, no connection, a timeout).
    pub webhook_failed_attempts: Counter,
    /// Webhook deliveries given up after their last attempt, as stored.
    pub webhook_dead_letters: Gauge,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// Where a submitted change's time goes before its answer, one histogram per stage (the
/// README's operations section lists them): waiting for its unit, validation, waiting for
/// the committer, the commit, and the unit taking the commit's answer.
#[derive(Debug, Clone)]
pub struct SubmitStages {
    pub queue: Histogram,
    pub validate: Histogram,
    pub commit_wait: Histogram,
    pub commit: Histogram,
    pub answer: Histogram,
}

/// Every metric the server exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub connections: Gauge,
    pub frames: Family<DirectionLabel, Counter>,
    /// The two members of `frames`, looked up once: every frame counts, and a family
    /// lookup hashes the label under a lock.
    frames_in: Counter,
    frames_out: Counter,
    pub changes_accepted: Counter,
    pub changes_rejected: Family<ReasonLabel, Counter>,
    pub commit_seconds: Histogram,
    pub commit_batch_size: Histogram,
    pub docs_in_memory: Gauge,
    pub stages: SubmitStages,
    /// Rejections the audit log did not store (its queue was full, or a flood beyond the
    /// rows it keeps per document, account and code).
    pub audit_dropped: Counter,
    /// Submit frames refused before decoding because a work budget was spent.
    pub submits_limited: Family<ReasonLabel, Counter>,
    /// 1 while the storage is up, 0 while it is known down (set from the health state
    /// when metrics are scraped).
    pub storage_up: Gauge,
    /// Catch-up pages answered from a unit's memory (`engine::unit::recent`), not the store.
    pub catch_up_from_memory: Counter,
    /// Catch-up snapshots sent from a kept save of the bucket part (`engine::saved_parts`).
    pub catch_up_kept_snapshots: Counter,
    pub cluster: ClusterMetrics,
    pub schedule: ScheduleMetrics,
    pub notify: NotifyMetrics,
    /// `confab_node_info{node}`: 1, naming this node.
    node_info: Family<NodeLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("confab");
        let connections = Gauge::default();
        let frames = Family::<DirectionLabel, Counter>::default();
        let changes_accepted = Counter::default();
        let changes_rejected = Family::<ReasonLabel, Counter>::default();
        let commit_seconds = latency_histogram();
        let stage_family: HistogramFamily<StageLabel> =
            Family::new_with_constructor(latency_histogram);
        let stage = |stage: &'static str| stage_family.get_or_create(&StageLabel { stage }).clone();
        let stages = SubmitStages {
            queue: stage("queue"),
            validate: stage("validate"),
            commit_wait: stage("commit_wait"),
            commit: stage("commit"),
            answer: stage("answer"),
        };
        let commit_batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        let docs_in_memory = Gauge::default();
        let audit_dropped = Counter::default();
        let submits_limited = Family::<ReasonLabel, Counter>::default();
        let storage_up = Gauge::default();
        let catch_up_from_memory = Counter::default();
        let catch_up_kept_snapshots = Counter::default();
        let cluster = ClusterMetrics {
            listening: Gauge::default(),
            notifications: Counter::default(),
            catchup_reads: Counter::default(),
            commit_conflicts: Counter::default(),
            resyncs: Counter::default(),
            lag_seconds: latency_histogram(),
            lag_seqs: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            signals_published: Counter::default(),
            signals_dropped: Counter::default(),
            signals_relayed: Counter::default(),
        };
        let schedule = ScheduleMetrics {
            posted: Counter::default(),
            refused: Family::default(),
            retried: Counter::default(),
            lateness_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 16)),
        };
        registry.register(
            "scheduled_posted",
            "Scheduled messages posted at their time",
            schedule.posted.clone(),
        );
        registry.register(
            "scheduled_refused",
            "Scheduled messages refused at their time (the author sees the code), by reject code",
            schedule.refused.clone(),
        );
        registry.register(
            "scheduled_retried",
            "Scheduler passes over a private document left for later after a transient failure",
            schedule.retried.clone(),
        );
        registry.register(
            "scheduled_lateness_seconds",
            "From a scheduled message's time to its post",
            schedule.lateness_seconds.clone(),
        );
        let notify = NotifyMetrics::default();
        registry.register(
            "notifications_created",
            "Notifications stored in accounts' feeds",
            notify.created.clone(),
        );
        registry.register(
            "notifications_dropped",
            "Commit events not turned into notifications because the notifier's queue was full",
            notify.dropped.clone(),
        );
        registry.register(
            "notifications_folded",
            "Group messages folded into a per-conversation count because the notifier's queue was full (their readers still hear of them)",
            notify.folded.clone(),
        );
        registry.register(
            "webhook_merged",
            "Push webhook deliveries of new messages merged into one still waiting for the same conversation",
            notify.webhook_merged.clone(),
        );
        registry.register(
            "notifications_failed",
            "Notification events or rows given up because the storage failed",
            notify.failed.clone(),
        );
        registry.register(
            "notifications_deferred",
            "Attempts at a notification batch put off because the storage was unavailable (the batch is tried again)",
            notify.deferred.clone(),
        );
        registry.register(
            "webhook_delivered",
            "Push webhook deliveries the receiver answered with 2xx",
            notify.webhook_delivered.clone(),
        );
        registry.register(
            "webhook_failed_attempts",
            "Push webhook attempts that failed (error status, no connection, timeout); retried with backoff",
            notify.webhook_failed_attempts.clone(),
        );
        registry.register(
            "webhook_dead_letters",
            "Push webhook deliveries given up after --webhook-max-attempts (kept in webhook_outbox)",
            notify.webhook_dead_letters.clone(),
        );
        let node_info = Family::<NodeLabel, Gauge>::default();
        registry.register(
            "node_info",
            "This node's identity (--node-id)",
            node_info.clone(),
        );
        registry.register(
            "cluster_listening",
            "1 while this node listens for other nodes' commits (0: /readyz answers 503)",
            cluster.listening.clone(),
        );
        registry.register(
            "cluster_notifications",
            "Commit notifications received from the database",
            cluster.notifications.clone(),
        );
        registry.register(
            "cluster_catchup_reads",
            "Change-log reads catching up on other nodes' commits",
            cluster.catchup_reads.clone(),
        );
        registry.register(
            "cluster_commit_conflicts",
            "Commits refused because another node committed first (validated again)",
            cluster.commit_conflicts.clone(),
        );
        registry.register(
            "cluster_resyncs",
            "Listener connections re-made (every unit re-read the log)",
            cluster.resyncs.clone(),
        );
        registry.register(
            "cluster_lag_seconds",
            "From another node's commit to its changes pushed by this node",
            cluster.lag_seconds.clone(),
        );
        registry.register(
            "cluster_lag_seqs",
            "Seqs one catch-up read brought in",
            cluster.lag_seqs.clone(),
        );
        registry.register(
            "cluster_signals_published",
            "Signals (typing, presence) published for the other nodes",
            cluster.signals_published.clone(),
        );
        registry.register(
            "cluster_signals_dropped",
            "Signals not published for the other nodes (queue full, or the database failed)",
            cluster.signals_dropped.clone(),
        );
        registry.register(
            "cluster_signals_relayed",
            "Other nodes' signals relayed to this node's subscribers",
            cluster.signals_relayed.clone(),
        );
        registry.register(
            "storage_up",
            "1 while the storage takes writes, 0 while it is unreachable or full (/readyz answers 503)",
            storage_up.clone(),
        );
        registry.register(
            "catch_up_from_memory",
            "Catch-up pages sent from a unit's memory of recent changes instead of the database",
            catch_up_from_memory.clone(),
        );
        registry.register(
            "catch_up_kept_snapshots",
            "Catch-up snapshots of bucket parts sent from a kept save, without loading or saving the part",
            catch_up_kept_snapshots.clone(),
        );
        registry.register(
            "audit_dropped",
            "Rejections not stored in the audit log: its queue was full, or more than 100 of one document, account and code came together (a flood)",
            audit_dropped.clone(),
        );
        registry.register(
            "submits_limited",
            "Submit frames refused with rate_limited, by budget (connection or account)",
            submits_limited.clone(),
        );
        registry.register(
            "connections",
            "Open WebSocket connections",
            connections.clone(),
        );
        registry.register("frames", "WebSocket frames by direction", frames.clone());
        registry.register(
            "changes_accepted",
            "Changes accepted and committed",
            changes_accepted.clone(),
        );
        registry.register(
            "changes_rejected",
            "Changes rejected, by reason code",
            changes_rejected.clone(),
        );
        registry.register(
            "commit_seconds",
            "Latency of one group commit",
            commit_seconds.clone(),
        );
        registry.register(
            "submit_stage_seconds",
            "Time a submitted batch spends in each stage before its answer",
            stage_family,
        );
        registry.register(
            "commit_batch_size",
            "Changes per group commit",
            commit_batch_size.clone(),
        );
        registry.register(
            "docs_in_memory",
            "Documents held in memory",
            docs_in_memory.clone(),
        );
        let frames_in = frames
            .get_or_create(&DirectionLabel { direction: "in" })
            .clone();
        let frames_out = frames
            .get_or_create(&DirectionLabel { direction: "out" })
            .clone();
        Metrics {
            registry,
            connections,
            frames,
            frames_in,
            frames_out,
            changes_accepted,
            changes_rejected,
            commit_seconds,
            commit_batch_size,
            docs_in_memory,
            stages,
            audit_dropped,
            submits_limited,
            storage_up,
            catch_up_from_memory,
            catch_up_kept_snapshots,
            cluster,
            schedule,
            notify,
            node_info,
        }
    }

    /// Names this node in `confab_node_info`.
    pub fn set_node(&self, node: &str) {
        self.node_info
            .get_or_create(&NodeLabel {
                node: node.to_owned(),
            })
            .set(1);
    }

    pub fn rejected(&self, code: confab_core::validate::RejectCode) {
        self.changes_rejected
            .get_or_create(&ReasonLabel {
                reason: code.as_str().to_owned(),
            })
            .inc();
    }

    pub fn frame_in(&self) {
        self.frames_in.inc();
    }

    pub fn frames_out(&self, count: usize) {
        self.frames_out.inc_by(count as u64);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_counted_by_direction() {
        let metrics = Metrics::new();
        metrics.frame_in();
        metrics.frames_out(3);
        metrics.frames_out(2);
        let text = metrics.render();
        assert!(
            text.contains("confab_frames_total{direction=\"in\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("confab_frames_total{direction=\"out\"} 5\n"),
            "{text}"
        );
    }
}
