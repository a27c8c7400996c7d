//! Forgetting on Postgres: the shared statements (`crate::store::forget`), and the `VACUUM`
//! of the tables a purge rewrites, run by one node at a time.

use async_trait::async_trait;
use confab_core::ids::{AccountId, TenantId};
use sqlx::Row;

use super::PgStore;
use crate::store::cuts::{pg as cuts, CutTiming, DueCut};
use crate::store::forget::{pg as forget, Authored, BlobRelease, Erasure};
use crate::store::{Forgetting, Result};

/// The tables whose rows a delete for everyone or an erasure rewrites or deletes: the
/// projected message (its preview), its search terms, notifications' and queued webhook
/// deliveries' previews, and the documents' rows and change log (profiles and private
/// documents cleared, retention, history cuts).
const PURGED_TABLES: &str =
    "messages, message_search, notifications, webhook_outbox, docs, changes";

#[async_trait]
impl Forgetting for PgStore {
    async fn release_blobs(&self, rows: &[BlobRelease]) -> Result<()> {
        on_pool!(self, |conn| forget::release(conn, rows))
    }

    async fn due_blob_releases(
        &self,
        deleted_before: i64,
        limit: usize,
    ) -> Result<Vec<BlobRelease>> {
        on_pool!(self, |conn| forget::due_releases(
            conn,
            deleted_before,
            limit
        ))
    }

    async fn settle_blob_release(&self, row: &BlobRelease) -> Result<()> {
        on_pool!(self, |conn| forget::settle_release(conn, row))
    }

    async fn request_erasure(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        by: &AccountId,
        now: i64,
    ) -> Result<Erasure> {
        on_pool!(self, |conn| forget::request(conn, tenant, account, by, now))
    }

    async fn erasure(&self, tenant: &TenantId, account: &AccountId) -> Result<Option<Erasure>> {
        on_pool!(self, |conn| forget::get(conn, tenant, account))
    }

    async fn claim_erasure(&self, now: i64, until: i64) -> Result<Option<Erasure>> {
        on_pool!(self, |conn| forget::claim(conn, now, until))
    }

    async fn save_erasure(&self, erasure: &Erasure, until: i64) -> Result<()> {
        on_pool!(self, |conn| forget::save(conn, erasure, until))
    }

    async fn authored_messages(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        after: (i64, i64),
        limit: usize,
    ) -> Result<Vec<Authored>> {
        on_pool!(self, |conn| forget::authored(
            conn, tenant, account, after, limit
        ))
    }

    /// Nodes of a cluster would queue behind each other's `VACUUM` of the same tables: one
    /// runs it (a session advisory lock), the others skip this round.
    /// GIN drops a deleted entry's terms at `VACUUM` ([`Self::vacuum_forgotten`]).
    async fn forget_search_entries(&self, _limit: usize) -> Result<usize> {
        Ok(0)
    }

    async fn vacuum_forgotten(&self, full: bool) -> Result<bool> {
        on_pool!(self, |conn| async move {
            let got: bool = sqlx::query("SELECT pg_try_advisory_lock(hashtext('confab.forget'))")
                .fetch_one(&mut *conn)
                .await?
                .try_get(0)?;
            if !got {
                return Ok(false);
            }
            let verb = if full { "VACUUM FULL" } else { "VACUUM" };
            let vacuumed = sqlx::query(&format!("{verb} {PURGED_TABLES}"))
                .execute(&mut *conn)
                .await;
            sqlx::query("SELECT pg_advisory_unlock(hashtext('confab.forget'))")
                .execute(&mut *conn)
                .await?;
            vacuumed?;
            Ok(true)
        })
    }

    async fn claim_cuts(&self, timing: CutTiming, node: &str, limit: usize) -> Result<Vec<DueCut>> {
        on_pool!(self, |conn| cuts::claim(conn, timing, node, limit))
    }

    async fn finish_cut(&self, due: &DueCut) -> Result<()> {
        on_pool!(self, |conn| cuts::finish(
            conn, due.cid, due.bucket, due.gen
        ))
    }

    async fn retry_cut(&self, due: &DueCut, after_ms: i64) -> Result<()> {
        on_pool!(self, |conn| cuts::retry(
            conn, due.cid, due.bucket, after_ms
        ))
    }

    async fn pending_cuts(&self) -> Result<i64> {
        on_pool!(self, |conn| cuts::pending(conn))
    }
}
