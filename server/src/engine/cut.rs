//! Cutting a message part's history (docs/STORAGE.md, "Cutting a part's history"): the
//! conversation's unit rebuilds the part as its next generation (`confab_core::doc::cut`)
//! between jobs, installs it in place of the part's log and snapshot in one fenced
//! transaction (`ChangeLog::install_generation`), and sends it to the part's subscribers.
//! A committed delete makes its part due after `cut_after_delete`, an edit after
//! `cut_after_edit`: the commit notes it in `cut_due` (a trigger, `store::cuts`), so the due
//! list survives restarts; a task on every node claims the due parts under a lease and cuts
//! them (`spawn_cuts`). A cut is first tried without holding the part's row; if another
//! node's writer moved the part meanwhile, it is tried once more behind the row
//! (`ChangeLog::fence_part`), where no writer can move it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use confab_core::accept::UnitId;
use confab_core::ids::{DocId, DocTarget};
use tokio::sync::oneshot;

use super::{Engine, Job};
use crate::store::cuts::{CutTiming, DueCut};

/// How long a claimed part is this node's: another node, or this one restarted, takes it
/// over after that. A cut that outlives it is safe, only wasted: the install is fenced.
pub const CUT_LEASE: Duration = Duration::from_secs(10);
/// Parts claimed per store call.
const CLAIM_PAGE: usize = 16;

/// What one cut did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutReport {
    /// The generation the part is now.
    pub generation: u64,
    /// The seq the cut took (the part's last seq now).
    pub seq: u64,
    /// Changes of the earlier generation deleted.
    pub changes_dropped: u64,
    /// Bytes of the new generation's snapshot.
    pub bytes: usize,
    /// From the start of the rebuild to the end of the install: what writers waited.
    pub stalled: Duration,
}

/// Why a cut did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CutError {
    /// Not a message part: only parts are cut.
    #[error("{0} is not a message part")]
    NotAPart(DocId),
    /// Another node committed to the part, or cut it, since this one read it: the part
    /// leaves memory here, and the cut is tried again later.
    #[error("another node wrote {0} first")]
    Moved(DocId),
    #[error("cutting {doc}: {message}")]
    Failed { doc: DocId, message: String },
}

impl Engine {
    /// Cuts the history of `doc`, a message part, now: `None` when it was never written.
    /// `fenced`: behind the part's row, so that no other node's writer can move it
    /// meanwhile; their commits of the part wait for the cut.
    pub async fn cut_part(&self, doc: &DocId, fenced: bool) -> Result<Option<CutReport>, CutError> {
        let DocTarget::Msgs(conv, _) = doc.target() else {
            return Err(CutError::NotAPart(doc.clone()));
        };
        let key = UnitId::Conv(doc.tenant().clone(), conv.clone());
        let (reply, rx) = oneshot::channel();
        let failed = |message: String| CutError::Failed {
            doc: doc.clone(),
            message,
        };
        self.dispatch(
            key,
            Job::Cut {
                doc: doc.clone(),
                fenced,
                reply,
            },
        )
        .await
        .map_err(|e| failed(e.to_string()))?;
        rx.await
            .unwrap_or_else(|_| Err(failed("the unit stopped".into())))
    }

    /// Cuts every part that is due and that this node can claim. Returns how many were cut.
    pub async fn run_due_cuts(&self) -> usize {
        let config = &self.inner.config;
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let timing = CutTiming {
            after_delete: ms(config.cut_after_delete),
            after_edit: ms(config.cut_after_edit),
            lease: ms(CUT_LEASE),
        };
        let mut cut = 0;
        loop {
            let claimed = match self
                .store()
                .claim_cuts(timing, self.node(), CLAIM_PAGE)
                .await
            {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::warn!(%error, "due history cuts not claimed");
                    return cut;
                }
            };
            let full = claimed.len() == CLAIM_PAGE;
            for due in claimed {
                cut += usize::from(self.run_cut(&due, ms(config.cut_retry)).await);
            }
            if !full {
                return cut;
            }
        }
    }

    /// Cuts one claimed part and settles its row: whether it was cut.
    async fn run_cut(&self, due: &DueCut, retry_ms: i64) -> bool {
        let doc = &due.doc;
        tracing::debug!(%doc, "history cut started");
        let mut result = self.cut_part(doc, false).await;
        // Another node's writer committed during the rebuild. A part written on two nodes
        // at once may never leave a gap as long as a rebuild, so the next try holds the
        // row: their commits of this part wait for one rebuild instead.
        if matches!(result, Err(CutError::Moved(_))) {
            tracing::debug!(%doc, "history cut moved by another node; again, fenced");
            result = self.cut_part(doc, true).await;
        }
        let settled = match &result {
            Ok(_) => self.store().finish_cut(due).await,
            // Another node committed first: contention, not a fault; the next pass tries.
            Err(CutError::Moved(_)) => self.store().retry_cut(due, 0).await,
            Err(error) => {
                tracing::warn!(%doc, %error, "history cut failed; trying again");
                self.store().retry_cut(due, retry_ms).await
            }
        };
        if let Err(error) = settled {
            // The lease runs out and the part is claimed again.
            tracing::warn!(%doc, %error, "history cut not settled");
        }
        match result {
            Ok(Some(report)) => {
                self.note_unvacuumed();
                tracing::info!(%doc, generation = report.generation,
                    dropped = report.changes_dropped, stalled_ms = report.stalled.as_millis() as u64,
                    "history cut");
                true
            }
            _ => false,
        }
    }

    /// Whether old row versions wait for the purge pass to drop (`crate::forget`): a due
    /// cut was installed on this node (its part's change log deleted, the previews emptied
    /// before it), or the last vacuum did not run, since the last call.
    pub fn take_unvacuumed(&self) -> bool {
        self.inner.unvacuumed.swap(false, Ordering::SeqCst)
    }

    /// Old row versions wait for the purge pass's vacuum.
    pub fn note_unvacuumed(&self) {
        self.inner.unvacuumed.store(true, Ordering::SeqCst);
    }

    /// Runs the due cuts every `every` until the engine stops (`serve`).
    pub fn spawn_cuts(&self, every: Duration) {
        let engine = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if engine.is_stopping() {
                    return;
                }
                engine.run_due_cuts().await;
            }
        });
    }
}
