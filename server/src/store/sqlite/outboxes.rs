//! The notification feed, the webhook outbox and the scheduler's tables on SQLite: the
//! shared statements, and the inserts and claims written for SQLite (one node: a
//! conditional update is the whole claim).

use async_trait::async_trait;
use confab_core::ids::{AccountId, ConvId, MessageId, TenantId};
use sqlx::SqliteConnection;

use super::SqliteStore;
use crate::store::columns::{limit_of, Cols};
use crate::store::notifications::{
    self, Coalesced, CoalescedRow, NewNotification, Notification, COALESCED_SOURCE,
};
use crate::store::schedule::{self, Claim};
use crate::store::webhooks::{self, Delivery, NewDelivery};
use crate::store::{Outboxes, Result};

/// One statement per row: SQLite's `RETURNING` names the row it inserted. A row naming a
/// message is written only while that message's row is not deleted
/// (`notifications::live_lite`): checked in the write transaction, which no deletion can
/// interleave with (one writer).
async fn insert_notifications(
    conn: &mut SqliteConnection,
    rows: &[NewNotification],
) -> Result<Vec<(i64, usize)>> {
    let sql = format!(
        "INSERT INTO notifications (tenant, account, kind, conv, source, message, \
         actor, preview, created_at) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 WHERE {} \
         ON CONFLICT DO NOTHING RETURNING id",
        notifications::live_lite("$1", "$4", "$6")
    );
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let mut out = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let row = sqlx::query(&sql)
            .bind(r.tenant.as_str())
            .bind(r.account.as_str())
            .bind(r.kind.as_str())
            .bind(r.conv.as_str())
            .bind(r.source.as_str())
            .bind(r.message.as_ref().map(MessageId::as_str))
            .bind(r.actor.as_str())
            .bind(r.preview.as_str())
            .bind(r.created_at)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = row {
            out.push((row.int("id")?, i));
        }
    }
    tx.commit().await?;
    Ok(out)
}

/// Coalesced rows per write transaction.
const COALESCE_CHUNK: usize = 128;

/// Two statements per row in one transaction: the old row goes (its count kept if it was
/// unread) and the new one takes the next id, at the top of the feed.
async fn coalesce_notifications(
    conn: &mut SqliteConnection,
    rows: &[Coalesced],
) -> Result<Vec<CoalescedRow>> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let mut out = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        let old = sqlx::query(
            "DELETE FROM notifications WHERE tenant = $1 AND account = $2 AND conv = $3 \
             AND source = $4 RETURNING count, read_at",
        )
        .bind(r.tenant.as_str())
        .bind(r.account.as_str())
        .bind(r.conv.as_str())
        .bind(COALESCED_SOURCE)
        .fetch_optional(&mut *tx)
        .await?;
        let kept = match old {
            Some(row) if row.opt_int("read_at")?.is_none() => row.int("count")?,
            _ => 0,
        };
        let count = kept.saturating_add(r.count);
        let row = sqlx::query(
            "INSERT INTO notifications (tenant, account, kind, conv, source, message, \
             actor, preview, created_at, count) \
             VALUES ($1, $2, 'message', $3, $4, $5, $6, '', $7, $8) RETURNING id",
        )
        .bind(r.tenant.as_str())
        .bind(r.account.as_str())
        .bind(r.conv.as_str())
        .bind(COALESCED_SOURCE)
        .bind(r.message.as_str())
        .bind(r.actor.as_str())
        .bind(r.created_at)
        .bind(count)
        .fetch_one(&mut *tx)
        .await?;
        out.push(CoalescedRow {
            id: row.int("id")?,
            index: i,
            count,
        });
    }
    tx.commit().await?;
    Ok(out)
}

/// In one write transaction; one that carries a message's text only while that message's
/// row is not deleted (`notifications::live_lite`).
async fn enqueue_deliveries(conn: &mut SqliteConnection, rows: &[NewDelivery]) -> Result<()> {
    let live = notifications::live_lite("$1", "$6", "$7");
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    for r in rows {
        webhooks::lite::enqueue_one(&mut tx, r, &live).await?;
    }
    tx.commit().await?;
    Ok(())
}

#[async_trait]
impl Outboxes for SqliteStore {
    async fn insert_notifications(&self, rows: &[NewNotification]) -> Result<Vec<(i64, usize)>> {
        on_writer!(self, |conn| insert_notifications(conn, rows))
    }

    /// In transactions of [`COALESCE_CHUNK`] rows: the writer is the commits' too, and a
    /// fan-out to thousands must not hold it for long at a time.
    async fn coalesce_notifications(&self, rows: &[Coalesced]) -> Result<Vec<CoalescedRow>> {
        let mut out = Vec::with_capacity(rows.len());
        for (n, chunk) in rows.chunks(COALESCE_CHUNK).enumerate() {
            let stored: Vec<CoalescedRow> =
                on_writer!(self, |conn| coalesce_notifications(conn, chunk))?;
            let offset = n * COALESCE_CHUNK;
            out.extend(stored.into_iter().map(|r| CoalescedRow {
                index: r.index + offset,
                ..r
            }));
        }
        Ok(out)
    }

    async fn notification_page(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        before: Option<i64>,
        unread_only: bool,
        limit: usize,
    ) -> Result<Vec<Notification>> {
        on_reader!(self, |conn| notifications::lite::page(
            conn,
            tenant,
            account,
            before,
            unread_only,
            limit
        ))
    }

    async fn unread_notifications(&self, tenant: &TenantId, account: &AccountId) -> Result<i64> {
        on_reader!(self, |conn| notifications::lite::unread(
            conn, tenant, account
        ))
    }

    async fn mark_notifications_read(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        up_to: Option<i64>,
        at: i64,
    ) -> Result<i64> {
        on_writer!(self, |conn| notifications::lite::mark_read(
            conn, tenant, account, up_to, at
        ))
    }

    async fn forget_notified(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        message: &MessageId,
    ) -> Result<i64> {
        on_writer!(self, |conn| notifications::lite::forget(
            conn, tenant, conv, message
        ))
    }

    async fn enqueue_deliveries(&self, rows: &[NewDelivery]) -> Result<()> {
        on_writer!(self, |conn| enqueue_deliveries(conn, rows))
    }

    async fn waiting_delivery(&self, key: &str) -> Result<Option<(i64, String)>> {
        on_writer!(self, |conn| webhooks::lite::waiting(conn, key))
    }

    async fn merge_delivery(&self, id: i64, key: &str, old: &str, new: &str) -> Result<bool> {
        on_writer!(self, |conn| webhooks::lite::merge(conn, id, key, old, new))
    }

    async fn claim_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        on_writer!(self, |conn| webhooks::lite::claim(
            conn,
            now,
            lease_until,
            limit
        ))
    }

    async fn delivered(&self, id: i64) -> Result<()> {
        on_writer!(self, |conn| webhooks::lite::delivered(conn, id))
    }

    async fn delivery_failed(
        &self,
        id: i64,
        attempts: i64,
        next_at: i64,
        dead_at: Option<i64>,
        error: &str,
    ) -> Result<()> {
        on_writer!(self, |conn| webhooks::lite::failed(
            conn, id, attempts, next_at, dead_at, error
        ))
    }

    async fn dead_deliveries(&self) -> Result<i64> {
        on_reader!(self, |conn| webhooks::lite::count(conn, true))
    }

    async fn pending_deliveries(&self) -> Result<i64> {
        on_reader!(self, |conn| webhooks::lite::count(conn, false))
    }

    async fn claim_scheduled(
        &self,
        now: i64,
        lease_until: i64,
        node: &str,
        limit: usize,
    ) -> Result<Vec<Claim>> {
        // One node per SQLite file: the conditional update is the whole claim.
        let rows = sqlx::query(
            "UPDATE schedule_hints SET claimed_until = $2, claimed_by = $3 \
             WHERE doc_id IN (SELECT doc_id FROM schedule_hints \
               WHERE next_at <= $1 AND claimed_until < $1 ORDER BY next_at LIMIT $4) \
             RETURNING doc_id, gen",
        )
        .bind(now)
        .bind(lease_until)
        .bind(node)
        .bind(limit_of(limit))
        .fetch_all(&self.writer)
        .await?;
        schedule::claims(rows)
    }

    async fn finish_scheduled(&self, doc: &str, gen: i64, next_at: Option<i64>) -> Result<()> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        schedule::lite::finish_in(&mut tx, doc, gen, next_at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn retry_scheduled(&self, doc: &str, at: i64) -> Result<()> {
        let mut conn = self.writer.acquire().await?;
        schedule::lite::retry(&mut conn, doc, at).await
    }

    async fn hint_scheduled(&self, doc: &str, at: i64) -> Result<()> {
        let mut conn = self.writer.acquire().await?;
        schedule::lite::hint(&mut conn, doc, at).await
    }

    async fn post_bucket(&self, doc: &str, message: &str, bucket: &str) -> Result<String> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let stored = schedule::lite::post_bucket_in(&mut tx, doc, message, bucket).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn move_post(&self, doc: &str, message: &str, to: &str) -> Result<()> {
        let mut conn = self.writer.acquire().await?;
        schedule::lite::move_post(&mut conn, doc, message, to).await
    }

    async fn post_done(&self, doc: &str, message: &str) -> Result<()> {
        let mut conn = self.writer.acquire().await?;
        schedule::lite::post_done(&mut conn, doc, message).await
    }
}
