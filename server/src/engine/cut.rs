//! Cutting a message part's history (docs/STORAGE.md, "Cutting a part's history"): the
//! conversation's unit rebuilds the part as its next generation (`confab_core::doc::cut`)
//! between jobs, installs it in place of the part's log and snapshot in one fenced
//! transaction (`ChangeLog::install_generation`), and sends it to the part's subscribers.
//! A delete schedules a cut of its part after `cut_after_delete`, an edit after
//! `cut_after_edit`; a task runs the due ones (`spawn_cuts`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use confab_core::accept::UnitId;
use confab_core::ids::{DocId, DocTarget};
use confab_core::policy::Effect;
use tokio::sync::oneshot;

use super::{Engine, Job};

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

/// When each part is due for a cut (in memory: after a restart, a part whose cut was due is
/// cut again once a later delete or edit schedules it).
#[derive(Default)]
pub(crate) struct CutSchedule {
    due: Mutex<HashMap<DocId, Instant>>,
}

impl CutSchedule {
    /// Notes a committed change's effects: a delete makes its part due after
    /// `after_delete`, an edit after `after_edit`; an earlier due time stays.
    pub(crate) fn note(&self, doc: &DocId, effects: &[Effect], delays: (Duration, Duration)) {
        let delay = effects
            .iter()
            .filter_map(|e| match e {
                Effect::DeleteMessage(_) => Some(delays.0),
                Effect::EditBody(_) => Some(delays.1),
                _ => None,
            })
            .min();
        let Some(delay) = delay else { return };
        let at = Instant::now() + delay;
        let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        due.entry(doc.clone())
            .and_modify(|t| *t = (*t).min(at))
            .or_insert(at);
    }

    /// Takes the parts due by `now`.
    fn take_due(&self, now: Instant) -> Vec<DocId> {
        let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        let ready: Vec<DocId> = due
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(doc, _)| doc.clone())
            .collect();
        for doc in &ready {
            due.remove(doc);
        }
        ready
    }

    /// Makes `doc` due again after `delay` (a cut that lost to another node's commit).
    fn again(&self, doc: DocId, delay: Duration) {
        let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        due.entry(doc).or_insert(Instant::now() + delay);
    }
}

impl Engine {
    /// Cuts the history of `doc`, a message part, now: `None` when it was never written.
    pub async fn cut_part(&self, doc: &DocId) -> Result<Option<CutReport>, CutError> {
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
                reply,
            },
        )
        .await
        .map_err(|e| failed(e.to_string()))?;
        rx.await
            .unwrap_or_else(|_| Err(failed("the unit stopped".into())))
    }

    /// Notes a committed change for the cut schedule.
    pub(crate) fn note_for_cut(&self, doc: &DocId, effects: &[Effect]) {
        if matches!(doc.target(), DocTarget::Msgs(..)) {
            let config = &self.inner.config;
            let delays = (config.cut_after_delete, config.cut_after_edit);
            self.inner.cuts.note(doc, effects, delays);
        }
    }

    /// Cuts every part that is due. Returns how many were cut.
    pub async fn run_due_cuts(&self) -> usize {
        let mut cut = 0;
        for doc in self.inner.cuts.take_due(Instant::now()) {
            match self.cut_part(&doc).await {
                Ok(Some(report)) => {
                    cut += 1;
                    tracing::info!(%doc, generation = report.generation,
                        dropped = report.changes_dropped, stalled_ms = report.stalled.as_millis() as u64,
                        "history cut");
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%doc, %error, "history cut failed; trying again");
                    self.inner.cuts.again(doc, self.inner.config.cut_retry);
                }
            }
        }
        cut
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
