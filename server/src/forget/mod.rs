//! Forgetting what was deleted (docs/STORAGE.md, "What a delete removes"): the blobs of
//! messages deleted for everyone, account erasures, and the database's clean-up after both.
//!
//! One loop per node ([`spawn`]) runs every `--purge-sweep-secs`: it resumes the erasures no
//! node holds (`erasure`), sweeps the blobs whose delete is older than
//! `--blob-release-delay-secs` (`blobs`), deletes the search entries of deleted messages
//! from SQLite's index, and when any of these removed something or a history
//! cut was installed on this node since the last pass, has the database drop the old row
//! versions (`Forgetting::vacuum_forgotten`). Every step is
//! idempotent and its progress is in the database, so a node killed mid-way leaves work the
//! next pass (of any node) finishes.

pub mod blobs;
pub mod erasure;

use std::sync::Arc;
use std::time::Duration;

use crate::blobs::Blobs;
use crate::engine::Engine;

/// How the loop runs (flags in `config`).
#[derive(Debug, Clone, Copy)]
pub struct PurgeConfig {
    /// Between passes.
    pub every: Duration,
    /// How long a deleted message's blobs stay (a delete's undo window for clients that
    /// still show the message, and for a forward in flight).
    pub blob_delay: Duration,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    pub blobs: blobs::ReleaseSweep,
    /// Erasures that reached their end in this pass.
    pub erasures_done: usize,
    /// Deleted messages' search entries taken out of the index's pages.
    pub search_entries: usize,
    /// Whether the database was asked to drop old row versions.
    pub vacuumed: bool,
}

/// One pass as of `now_ms`.
pub async fn pass(engine: &Engine, store: &Blobs, config: PurgeConfig, now_ms: i64) -> PassReport {
    let mut report = PassReport::default();
    let mut purged = false;
    loop {
        match erasure::resume_one(engine, now_ms).await {
            Ok(Some(e)) => {
                purged = true;
                if e.done_at.is_some() {
                    report.erasures_done += 1;
                }
            }
            Ok(None) => break,
            Err(error) => {
                tracing::warn!(%error, "erasure interrupted; the next pass resumes it");
                break;
            }
        }
    }
    let delay = i64::try_from(config.blob_delay.as_millis()).unwrap_or(i64::MAX);
    match store
        .sweep_released(engine, now_ms.saturating_sub(delay))
        .await
    {
        Ok(sweep) => {
            purged |= sweep.deleted > 0;
            report.blobs = sweep;
        }
        Err(error) => tracing::warn!(%error, "sweep of deleted messages' blobs failed"),
    }
    report.search_entries = forget_search_entries(engine).await;
    purged |= report.search_entries > 0;
    if engine.take_unvacuumed() || purged {
        let done = match engine.store().vacuum_forgotten(false).await {
            Ok(done) => done,
            Err(error) => {
                tracing::warn!(%error, "vacuum after a purge failed; the next pass tries again");
                false
            }
        };
        report.vacuumed = done;
        // Not done here (failed, or another node's vacuum holds the lock and may have
        // started before what this one was for): the next pass asks again.
        if !done {
            engine.note_unvacuumed();
        }
    }
    report
}

/// Entries per transaction: each costs milliseconds on SQLite's one writer, and a commit
/// waits behind one transaction at most.
const SEARCH_FORGET_CHUNK: usize = 8;
/// A pass's time for them; a longer queue (a retention drop) goes on at the next pass.
const SEARCH_FORGET_PER_PASS: Duration = Duration::from_secs(30);

/// Deletes the queued search entries of deleted and dropped messages from the index's pages
/// (SQLite; docs/STORAGE.md, "What a delete removes"), for up to `SEARCH_FORGET_PER_PASS`.
async fn forget_search_entries(engine: &Engine) -> usize {
    let started = tokio::time::Instant::now();
    let mut done = 0;
    while !engine.is_stopping() && started.elapsed() < SEARCH_FORGET_PER_PASS {
        match engine
            .store()
            .forget_search_entries(SEARCH_FORGET_CHUNK)
            .await
        {
            Ok(n) => {
                done += n;
                if n < SEARCH_FORGET_CHUNK {
                    break;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "deleting search entries failed; the next pass goes on");
                break;
            }
        }
    }
    done
}

/// Runs [`pass`] every `config.every` until the engine stops (`serve`).
pub fn spawn(engine: Engine, store: Arc<Blobs>, config: PurgeConfig) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(config.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if engine.is_stopping() {
                return;
            }
            let report = pass(&engine, &store, config, crate::clock::now_ms()).await;
            if report != PassReport::default() {
                tracing::info!(?report, "purge pass");
            }
        }
    });
}
