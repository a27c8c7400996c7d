//! Retention that deletes (docs/FEATURES.md, "Retention"): a sweep over the conversations
//! that hold message buckets asks each conversation's unit to drop the buckets its
//! `retention_days` expired. The unit does it between jobs, after every earlier commit, so a
//! dropped bucket leaves memory and its subscribers in the same step as its rows.

use std::sync::atomic::Ordering;
use std::time::Duration;

use confab_core::accept::UnitId;
use tokio::sync::oneshot;

use super::{Engine, Job};
use crate::store::retention::ConvKey;
use crate::store::StoreError;

/// Conversations read from the `buckets` index per page of a sweep.
const PAGE: usize = 256;

/// What one conversation's unit dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expired {
    pub dropped: crate::store::retention::Dropped,
}

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub conversations: usize,
    pub buckets: usize,
    pub changes: u64,
    pub messages: u64,
    /// Conversations whose drop failed (logged; tried again by the next sweep).
    pub failed: usize,
}

/// Why a sweep stopped early.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("listing conversations: {0}")]
    Store(#[from] StoreError),
}

impl Engine {
    /// Drops every bucket any conversation's retention expired at `now_ms` (the server's
    /// clock in production, any time in tests). Conversations are visited one at a time, so
    /// a sweep never holds more than one extra unit's worth of work.
    pub async fn expire_buckets(&self, now_ms: i64) -> Result<SweepReport, SweepError> {
        self.inner
            .retention_clock
            .fetch_max(now_ms, Ordering::SeqCst);
        let mut report = SweepReport::default();
        let mut after: Option<ConvKey> = None;
        loop {
            let page = self
                .store()
                .conversations_with_buckets(after.as_ref(), PAGE)
                .await?;
            let full = page.len() == PAGE;
            for (tenant, conv) in page {
                report.conversations += 1;
                match self
                    .expire_one(UnitId::Conv(tenant.clone(), conv.clone()), now_ms)
                    .await
                {
                    Ok(expired) => {
                        report.buckets += expired.dropped.buckets.len();
                        report.changes += expired.dropped.changes;
                        report.messages += expired.dropped.messages;
                    }
                    Err(error) => {
                        report.failed += 1;
                        tracing::warn!(%tenant, %conv, %error, "retention drop failed");
                    }
                }
                after = Some((tenant, conv));
            }
            if !full {
                return Ok(report);
            }
        }
    }

    async fn expire_one(&self, key: UnitId, now_ms: i64) -> Result<Expired, String> {
        let (reply, rx) = oneshot::channel();
        self.dispatch(key, Job::Expire { now_ms, reply })
            .await
            .map_err(|e| e.to_string())?;
        rx.await.unwrap_or_else(|_| Err("the unit stopped".into()))
    }

    /// The time expiry is judged at: the server's clock, or a later time a sweep ran for.
    pub(crate) fn retention_now(&self) -> i64 {
        super::now_ms().max(self.inner.retention_clock.load(Ordering::SeqCst))
    }

    /// Runs a sweep every `every` until the engine stops (`serve`).
    pub fn spawn_retention(&self, every: Duration) {
        let engine = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if engine.is_stopping() {
                    return;
                }
                match engine.expire_buckets(super::now_ms()).await {
                    Ok(report) if report.buckets > 0 || report.failed > 0 => {
                        tracing::info!(?report, "retention sweep");
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "retention sweep failed"),
                }
            }
        });
    }
}
