//! Retention on Postgres: the sweep's pages and the drop, holding the documents' rows in
//! the commit's lock order and deleting them as arrays (the other statements are shared,
//! `crate::store::retention`).

use async_trait::async_trait;
use sqlx::{Connection, PgConnection, Row};

use super::PgStore;
use crate::store::retention::{
    bucket_of, doc_ids, pg as shared, Audit, ConvKey, DropRequest, Dropped, DROP_BUCKETS,
    DROP_MESSAGES, EXPIRED_BUCKETS, EXPIRED_MESSAGES,
};
use crate::store::{Result, Retention};

#[async_trait]
impl Retention for PgStore {
    async fn conversations_with_buckets(
        &self,
        after: Option<&ConvKey>,
        limit: usize,
    ) -> Result<Vec<ConvKey>> {
        on_pool!(self, |conn| shared::conversations(conn, after, limit))
    }

    async fn drop_buckets(&self, req: DropRequest<'_>) -> Result<Dropped> {
        on_pool!(self, |conn| drop_on(conn, req))
    }
}

/// Deletes the expired parts of one conversation on Postgres, in one transaction.
async fn drop_on(conn: &mut PgConnection, req: DropRequest<'_>) -> Result<Dropped> {
    let mut tx = conn.begin().await?;
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
    // The documents' rows first, in the commit's lock order: a commit to one of them waits,
    // then finds its row gone (a seq conflict) instead of writing beside the drop.
    sqlx::query(
        "SELECT 1 FROM docs WHERE doc_id = ANY($1) ORDER BY doc_id COLLATE \"C\" FOR UPDATE",
    )
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    let changes = sqlx::query(
        "SELECT doc_id, COUNT(*) AS n FROM changes WHERE doc_id = ANY($1) GROUP BY doc_id",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    let messages = sqlx::query(EXPIRED_MESSAGES)
        .bind(tenant)
        .bind(conv)
        .bind(req.first_kept)
        .fetch_all(&mut *tx)
        .await?;
    let audit = Audit::of(&dropped.buckets, &ids, &changes, &messages)?;
    sqlx::query("DELETE FROM changes WHERE doc_id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM docs WHERE doc_id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
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
             changes = bucket_drops.changes + EXCLUDED.changes, \
             messages = bucket_drops.messages + EXCLUDED.messages, \
             dropped_at = EXCLUDED.dropped_at",
        )
        .bind(tenant)
        .bind(conv)
        .bind(bucket.period)
        .bind(i32::try_from(bucket.part).unwrap_or(i32::MAX))
        .bind(i32::try_from(req.retention_days).unwrap_or(i32::MAX))
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
