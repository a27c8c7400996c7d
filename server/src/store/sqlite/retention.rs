//! Retention on SQLite: the sweep's pages and the drop under `BEGIN IMMEDIATE`, its
//! documents' rows one document at a time (the other statements are shared,
//! `crate::store::retention`).

use async_trait::async_trait;
use sqlx::{Connection, Row, SqliteConnection};

use super::SqliteStore;
use crate::store::retention::{
    bucket_of, doc_ids, lite as shared, Audit, ConvKey, DropRequest, Dropped, DROP_BUCKETS,
    DROP_MESSAGES, EXPIRED_BUCKETS, EXPIRED_MESSAGES,
};
use crate::store::{Result, Retention};

#[async_trait]
impl Retention for SqliteStore {
    async fn conversations_with_buckets(
        &self,
        after: Option<&ConvKey>,
        limit: usize,
    ) -> Result<Vec<ConvKey>> {
        on_reader!(self, |conn| shared::conversations(conn, after, limit))
    }

    async fn drop_buckets(&self, req: DropRequest<'_>) -> Result<Dropped> {
        on_writer!(self, |conn| drop_on(conn, req))
    }
}

/// Deletes the expired parts of one conversation on SQLite, in one transaction.
async fn drop_on(conn: &mut SqliteConnection, req: DropRequest<'_>) -> Result<Dropped> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let (tenant, conv) = (req.tenant.as_str(), req.conv.as_str());
    let rows = sqlx::query(EXPIRED_BUCKETS)
        .bind(tenant)
        .bind(conv)
        .bind(req.first_kept)
        .fetch_all(&mut *tx)
        .await?;
    let mut dropped = Dropped::default();
    for r in &rows {
        dropped
            .buckets
            .push(bucket_of(r.try_get("period")?, r.try_get("part")?)?);
    }
    if dropped.buckets.is_empty() {
        return Ok(dropped);
    }
    let ids = doc_ids(req, &dropped.buckets);
    let mut changes = Vec::with_capacity(ids.len());
    for id in &ids {
        changes.push(
            sqlx::query("SELECT doc_id, COUNT(*) AS n FROM changes WHERE doc_id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?,
        );
    }
    let messages = sqlx::query(EXPIRED_MESSAGES)
        .bind(tenant)
        .bind(conv)
        .bind(req.first_kept)
        .fetch_all(&mut *tx)
        .await?;
    let audit = Audit::of(&dropped.buckets, &ids, &changes, &messages)?;
    for id in &ids {
        sqlx::query("DELETE FROM changes WHERE doc_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM docs WHERE doc_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(DROP_MESSAGES)
        .bind(tenant)
        .bind(conv)
        .bind(req.first_kept)
        .execute(&mut *tx)
        .await?;
    sqlx::query(DROP_BUCKETS)
        .bind(tenant)
        .bind(conv)
        .bind(req.first_kept)
        .execute(&mut *tx)
        .await?;
    for (bucket, changes, messages) in &audit.rows {
        sqlx::query(
            "INSERT INTO bucket_drops (tenant, conv, period, part, retention_days, changes, \
             messages, dropped_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (tenant, conv, period, part) DO UPDATE SET \
             changes = changes + excluded.changes, messages = messages + excluded.messages, \
             dropped_at = excluded.dropped_at",
        )
        .bind(tenant)
        .bind(conv)
        .bind(bucket.period)
        .bind(i64::from(bucket.part))
        .bind(i64::from(req.retention_days))
        .bind(*changes)
        .bind(*messages)
        .bind(req.now_ms)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    dropped.changes = audit.changes;
    dropped.messages = audit.messages;
    Ok(dropped)
}
