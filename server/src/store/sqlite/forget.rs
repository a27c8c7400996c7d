//! Forgetting on SQLite: the shared statements (`crate::store::forget`), writes on the one
//! writer.

use async_trait::async_trait;
use confab_core::ids::{AccountId, TenantId};

use super::SqliteStore;
use crate::store::cuts::{lite as cuts, CutTiming, DueCut};
use crate::store::forget::{lite as forget, Authored, BlobRelease, Erasure};
use crate::store::{Forgetting, Result};

#[async_trait]
impl Forgetting for SqliteStore {
    async fn release_blobs(&self, rows: &[BlobRelease]) -> Result<()> {
        on_writer!(self, |conn| forget::release(conn, rows))
    }

    async fn due_blob_releases(
        &self,
        deleted_before: i64,
        limit: usize,
    ) -> Result<Vec<BlobRelease>> {
        on_reader!(self, |conn| forget::due_releases(
            conn,
            deleted_before,
            limit
        ))
    }

    async fn settle_blob_release(&self, row: &BlobRelease) -> Result<()> {
        on_writer!(self, |conn| forget::settle_release(conn, row))
    }

    async fn request_erasure(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        by: &AccountId,
        now: i64,
    ) -> Result<Erasure> {
        on_writer!(self, |conn| forget::request(conn, tenant, account, by, now))
    }

    async fn erasure(&self, tenant: &TenantId, account: &AccountId) -> Result<Option<Erasure>> {
        on_reader!(self, |conn| forget::get(conn, tenant, account))
    }

    async fn claim_erasure(&self, now: i64, until: i64) -> Result<Option<Erasure>> {
        on_writer!(self, |conn| forget::claim(conn, now, until))
    }

    async fn save_erasure(&self, erasure: &Erasure, until: i64) -> Result<()> {
        on_writer!(self, |conn| forget::save(conn, erasure, until))
    }

    async fn authored_messages(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        after: (i64, i64),
        limit: usize,
    ) -> Result<Vec<Authored>> {
        on_reader!(self, |conn| forget::authored(
            conn, tenant, account, after, limit
        ))
    }

    /// `secure_delete` zeroes freed cells as they are freed; what is left is the WAL's older
    /// frames, which a truncating checkpoint removes. `full` changes nothing here.
    async fn vacuum_forgotten(&self, _full: bool) -> Result<bool> {
        on_writer!(self, |conn| async move {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&mut *conn)
                .await?;
            Ok(true)
        })
    }

    async fn forget_search_entries(&self, limit: usize) -> Result<usize> {
        on_writer!(self, |conn| async move {
            use sqlx::Connection;
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
            let queued: Vec<(i64, String)> =
                sqlx::query_as("SELECT entry, terms FROM search_forget ORDER BY entry LIMIT $1")
                    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                    .fetch_all(&mut *tx)
                    .await?;
            for (entry, terms) in &queued {
                sqlx::query(
                    "INSERT INTO message_search (message_search, rowid, terms) \
                     VALUES ('delete', $1, $2)",
                )
                .bind(entry)
                .bind(terms)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM search_forget WHERE entry = $1")
                    .bind(entry)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(queued.len())
        })
    }

    async fn claim_cuts(&self, timing: CutTiming, node: &str, limit: usize) -> Result<Vec<DueCut>> {
        on_writer!(self, |conn| cuts::claim(conn, timing, node, limit))
    }

    async fn finish_cut(&self, due: &DueCut) -> Result<()> {
        on_writer!(self, |conn| cuts::finish(
            conn, due.cid, due.bucket, due.gen
        ))
    }

    async fn retry_cut(&self, due: &DueCut, after_ms: i64) -> Result<()> {
        on_writer!(self, |conn| cuts::retry(
            conn, due.cid, due.bucket, after_ms
        ))
    }

    async fn pending_cuts(&self) -> Result<i64> {
        on_reader!(self, |conn| cuts::pending(conn))
    }
}
