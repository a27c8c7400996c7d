//! The blobs of messages deleted for everyone (docs/ATTACHMENTS.md, "Deleted messages"):
//! each candidate a delete recorded is deleted from the blob store once its delay has
//! passed, unless a live message of its conversation still names it. Blobs are one
//! conversation's (a forward copies them), so the count is within the conversation.
//!
//! Cost per candidate: the blob's description, and the conversation's buckets from a day
//! before the blob's upload on (a message names a blob after it is uploaded; the day covers
//! a client clock's skew), not its whole history.

use confab_core::ids::TenantId;

use crate::blobs::retention::referenced;
use crate::blobs::{BlobError, BlobHash, Blobs, Scope};
use crate::engine::Engine;

/// Candidates read per page.
const PAGE: usize = 64;
/// Before a blob's upload, the buckets still read for messages naming it.
const SKEW_MS: i64 = 24 * 3600 * 1000;

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReleaseSweep {
    /// Candidates handled (deleted, kept or already gone).
    pub candidates: usize,
    /// Blobs deleted.
    pub deleted: usize,
    /// Blobs kept: another live message names them.
    pub kept: usize,
}

impl Blobs {
    /// Handles every candidate whose delete happened at or before `deleted_before`. A
    /// candidate's row goes only after its blob was handled: a crash in between leaves it
    /// for the next sweep, which finds the blob gone or deletes it then (on any node).
    pub async fn sweep_released(
        &self,
        engine: &Engine,
        deleted_before: i64,
    ) -> Result<ReleaseSweep, BlobError> {
        let store = engine.store();
        let failed = |e: crate::store::StoreError| BlobError::Store(e.to_string());
        let mut report = ReleaseSweep::default();
        loop {
            let due = store
                .due_blob_releases(deleted_before, PAGE)
                .await
                .map_err(failed)?;
            if due.is_empty() {
                return Ok(report);
            }
            for row in &due {
                let scope = Scope::new(&row.tenant, &row.conv);
                // A hash that does not parse names no blob: nothing to delete.
                if let Ok(hash) = BlobHash::parse(&row.hash) {
                    match self.release_one(engine, &row.tenant, &scope, &hash).await? {
                        Some(true) => report.deleted += 1,
                        Some(false) => report.kept += 1,
                        None => {}
                    }
                }
                store.settle_blob_release(row).await.map_err(failed)?;
                report.candidates += 1;
            }
        }
    }

    /// `Some(true)`: deleted; `Some(false)`: still named; `None`: not stored.
    async fn release_one(
        &self,
        engine: &Engine,
        tenant: &TenantId,
        scope: &Scope,
        hash: &BlobHash,
    ) -> Result<Option<bool>, BlobError> {
        let Some(meta) = self.meta(scope, hash).await? else {
            return Ok(None);
        };
        let from = engine
            .conversation(tenant, &scope.conv)
            .await
            .map_or(i64::MIN, |c| {
                c.period_of(meta.created_at.saturating_sub(SKEW_MS))
            });
        if referenced(engine, scope, from).await?.contains(hash) {
            return Ok(Some(false));
        }
        self.delete(scope, hash).await?;
        Ok(Some(true))
    }
}
