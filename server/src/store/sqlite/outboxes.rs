//! The notification feed, the webhook outbox and the scheduler's tables on SQLite: the
//! shared statements, and the inserts and claims written for SQLite (one node: a
//! conditional update is the whole claim).

use async_trait::async_trait;
use confab_core::ids::{AccountId, ConvId, MessageId, TenantId};
use sqlx::SqliteConnection;

use super::SqliteStore;
use crate::store::columns::{limit_of, Cols};
use crate::store::notifications::{
    self, Joined, Mark, NewNotification, Notification, Quiet, StreamPost, StreamRow,
};

/// Joined members' marks per write transaction.
const JOIN_CHUNK: usize = 128;
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

/// One write transaction: the stream's new id is the notifications' next
/// (`sqlite_sequence`, moved on so that the rows' ids stay above it), then the step
/// (`notifications::lite::advance`: the author and the addressed, never the group).
async fn advance_stream(conn: &mut SqliteConnection, post: &StreamPost) -> Result<StreamRow> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    sqlx::query(
        "INSERT INTO sqlite_sequence (name, seq) SELECT 'notifications', \
         COALESCE((SELECT MAX(id) FROM notifications), 0) \
         WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'notifications')",
    )
    .execute(&mut *tx)
    .await?;
    let id = sqlx::query(
        "UPDATE sqlite_sequence SET seq = seq + 1 WHERE name = 'notifications' RETURNING seq",
    )
    .fetch_one(&mut *tx)
    .await?
    .int("seq")?;
    let stored = notifications::lite::advance(&mut tx, post, id).await?;
    tx.commit().await?;
    Ok(stored)
}

async fn set_quiet(conn: &mut SqliteConnection, changes: &[Quiet]) -> Result<()> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    for q in changes {
        notifications::lite::set_quiet(&mut tx, q).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn join_streams(conn: &mut SqliteConnection, joined: &[Joined]) -> Result<()> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    for j in joined {
        notifications::lite::join(&mut tx, j).await?;
    }
    tx.commit().await?;
    Ok(())
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

    async fn advance_stream(&self, post: &StreamPost) -> Result<StreamRow> {
        on_writer!(self, |conn| advance_stream(conn, post))
    }

    /// In transactions of [`JOIN_CHUNK`]: the writer is the commits' too, and a new group
    /// of thousands must not hold it for long at a time.
    async fn join_streams(&self, joined: &[Joined]) -> Result<()> {
        for chunk in joined.chunks(JOIN_CHUNK) {
            on_writer!(self, |conn| join_streams(conn, chunk))?;
        }
        Ok(())
    }

    async fn quiet_marks(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Vec<(ConvId, Option<i64>)>> {
        on_reader!(self, |conn| notifications::lite::quiet_marks(
            conn, tenant, account
        ))
    }

    async fn set_quiet(&self, changes: &[Quiet]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        on_writer!(self, |conn| set_quiet(conn, changes))
    }

    async fn stream_marks(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        first: &AccountId,
        last: &AccountId,
    ) -> Result<Vec<(AccountId, Mark)>> {
        on_reader!(self, |conn| notifications::lite::marks(
            conn, tenant, conv, first, last
        ))
    }

    async fn notification_page(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        before: Option<i64>,
        unread_only: bool,
        limit: usize,
        quiet: &[ConvId],
    ) -> Result<Vec<Notification>> {
        on_reader!(self, |conn| notifications::lite::page(
            conn,
            tenant,
            account,
            before,
            unread_only,
            limit,
            quiet
        ))
    }

    async fn unread_notifications(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        quiet: &[ConvId],
    ) -> Result<i64> {
        on_reader!(self, |conn| notifications::lite::unread(
            conn, tenant, account, quiet
        ))
    }

    async fn mark_notifications_read(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        up_to: Option<i64>,
        at: i64,
        quiet: &[ConvId],
    ) -> Result<i64> {
        on_writer!(self, |conn| notifications::lite::mark_read(
            conn, tenant, account, up_to, at, quiet
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
