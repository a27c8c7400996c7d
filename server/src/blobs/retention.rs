//! Blobs follow their messages out (docs/ATTACHMENTS.md, "Retention"): after a retention
//! sweep dropped message buckets, the blobs of each conversation with a retention that were
//! uploaded before its window and are referenced by no message still stored are deleted.
//! That is every blob referenced only by dropped messages (a message is sent after its blob
//! is uploaded), and every upload nobody sent that is as old. Upload sessions left
//! unfinished for a day go too, in every conversation.
//!
//! Cost per conversation with a retention: a listing of its blobs, and, only when some are
//! older than the window, one read of each bucket still stored, which the retention itself
//! bounds (the kept window, not the conversation's age).

use std::collections::HashSet;
use std::time::Duration;

use confab_core::automerge::{Automerge, Change};
use confab_core::doc::read;
use confab_core::ids::{Bucket, ConvId, DocId, TenantId};
use futures_util::TryStreamExt;
use object_store::path::Path;
use object_store::ObjectStore;

use super::{store_error, BlobError, BlobHash, Blobs, Scope};
use crate::engine::Engine;

/// Unfinished uploads older than this are deleted.
pub const STALE_UPLOAD_MS: i64 = 24 * 3600 * 1000;
const DAY_MS: i64 = 24 * 3600 * 1000;
/// Buckets read per page when collecting references.
const BUCKET_PAGE: usize = 64;

/// What a sweep deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlobSweep {
    pub conversations: usize,
    pub blobs_deleted: usize,
    pub uploads_deleted: usize,
    /// Conversations whose sweep failed (logged; tried again next time).
    pub failed: usize,
}

/// The folders directly under `prefix`.
async fn folders(store: &dyn ObjectStore, prefix: &Path) -> Result<Vec<Path>, BlobError> {
    let listed = store
        .list_with_delimiter(Some(prefix))
        .await
        .map_err(store_error)?;
    Ok(listed.common_prefixes)
}

fn last_segment(path: &Path) -> Option<String> {
    path.filename().map(str::to_owned)
}

impl Blobs {
    /// Deletes the blobs retention left without a message, and stale upload sessions, as
    /// of `now_ms` (the server's clock in production; any time in tests).
    pub async fn sweep(&self, engine: &Engine, now_ms: i64) -> Result<BlobSweep, BlobError> {
        let mut report = BlobSweep::default();
        for tenant_dir in folders(self.store.as_ref(), &Path::from("t")).await? {
            let Some(tenant) = last_segment(&tenant_dir).and_then(|t| TenantId::new(t).ok()) else {
                continue;
            };
            for conv_dir in folders(self.store.as_ref(), &tenant_dir.clone().join("c")).await? {
                let Some(conv) = last_segment(&conv_dir).and_then(|c| ConvId::new(c).ok()) else {
                    continue;
                };
                report.conversations += 1;
                let scope = Scope::new(&tenant, &conv);
                match self.sweep_one(engine, &scope, now_ms).await {
                    Ok((blobs, uploads)) => {
                        report.blobs_deleted += blobs;
                        report.uploads_deleted += uploads;
                    }
                    Err(error) => {
                        report.failed += 1;
                        tracing::warn!(%tenant, %conv, %error, "attachment sweep failed");
                    }
                }
            }
        }
        Ok(report)
    }

    async fn sweep_one(
        &self,
        engine: &Engine,
        scope: &Scope,
        now_ms: i64,
    ) -> Result<(usize, usize), BlobError> {
        let mut uploads = 0;
        for upload in folders(self.store.as_ref(), &scope.uploads()).await? {
            let started = self
                .store
                .list(Some(&upload))
                .try_fold(i64::MAX, |min, meta| async move {
                    Ok(min.min(meta.last_modified.timestamp_millis()))
                })
                .await
                .map_err(store_error)?;
            if started.saturating_add(STALE_UPLOAD_MS) < now_ms {
                if let Some(id) = last_segment(&upload) {
                    self.delete_session(scope, &id).await?;
                    uploads += 1;
                }
            }
        }
        let Some(days) = engine
            .conversation(&scope.tenant, &scope.conv)
            .await
            .and_then(|c| c.settings.retention())
        else {
            return Ok((0, uploads));
        };
        let window_start = now_ms.saturating_sub(i64::from(days).saturating_mul(DAY_MS));
        let old: Vec<BlobHash> = self
            .store
            .list(Some(&scope.blobs()))
            .try_filter_map(|meta| async move {
                let old = meta.last_modified.timestamp_millis() < window_start;
                Ok(meta
                    .location
                    .filename()
                    .and_then(|name| BlobHash::parse(name).ok())
                    .filter(|_| old))
            })
            .try_collect()
            .await
            .map_err(store_error)?;
        if old.is_empty() {
            return Ok((0, uploads));
        }
        let referenced = referenced(engine, scope, i64::MIN).await?;
        let mut deleted = 0;
        for hash in old.iter().filter(|h| !referenced.contains(h)) {
            self.delete(scope, hash).await?;
            deleted += 1;
        }
        Ok((deleted, uploads))
    }

    /// Runs a retention sweep of the engine and then of the blobs every `every`, until the
    /// engine stops (in place of `Engine::spawn_retention` when attachments are served).
    pub fn spawn_retention(self: std::sync::Arc<Self>, engine: Engine, every: Duration) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if engine.is_stopping() {
                    return;
                }
                let now = crate::clock::now_ms();
                match engine.expire_buckets(now).await {
                    Ok(report) if report.buckets > 0 || report.failed > 0 => {
                        tracing::info!(?report, "retention sweep");
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "retention sweep failed"),
                }
                match self.sweep(&engine, now).await {
                    Ok(report) if report.blobs_deleted > 0 || report.failed > 0 => {
                        tracing::info!(?report, "attachment sweep");
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "attachment sweep failed"),
                }
            }
        });
    }
}

/// Every blob of this conversation that a message still stored in a bucket of `from_period`
/// or later references (buckets are read newest first, so older ones are never read).
pub(crate) async fn referenced(
    engine: &Engine,
    scope: &Scope,
    from_period: i64,
) -> Result<HashSet<BlobHash>, BlobError> {
    let store = engine.store();
    let failed = |e: crate::store::StoreError| BlobError::Store(format!("reading messages: {e}"));
    let mut out = HashSet::new();
    let mut before: Option<Bucket> = None;
    loop {
        let page = store
            .buckets(&scope.tenant, &scope.conv, before, BUCKET_PAGE)
            .await
            .map_err(failed)?;
        for bucket in &page.buckets {
            if bucket.period < from_period {
                return Ok(out);
            }
            let id = DocId::msgs(&scope.tenant, &scope.conv, *bucket);
            let stored = store.load_doc(&id).await.map_err(failed)?;
            let conv = scope.conv.clone();
            let found = tokio::task::spawn_blocking(move || -> Result<Vec<BlobHash>, String> {
                let mut doc = match &stored.snapshot {
                    Some(bytes) => Automerge::load(bytes).map_err(|e| e.to_string())?,
                    None => confab_core::doc::genesis(&id).map_err(|e| e.to_string())?,
                };
                let changes = stored
                    .changes
                    .iter()
                    .map(|(_, bytes)| Change::try_from(&bytes[..]).map_err(|e| e.to_string()))
                    .collect::<Result<Vec<_>, _>>()?;
                doc.apply_changes(changes).map_err(|e| e.to_string())?;
                // By an attachment's URL, or a sealed message's `blobs`.
                Ok(read::read_messages(&doc)
                    .iter()
                    .flat_map(|m| m.blob_hashes(&conv))
                    .collect())
            })
            .await
            .map_err(|e| BlobError::Store(e.to_string()))?
            // A bucket that cannot be read keeps every blob: deleting on a guess loses data.
            .map_err(|e| BlobError::Store(format!("bucket {bucket:?}: {e}")))?;
            out.extend(found);
        }
        if !page.more {
            return Ok(out);
        }
        before = page.buckets.last().copied();
    }
}
