//! Retention: deleting the message buckets a conversation's `retention_days` expired
//! (docs/FEATURES.md, "Retention"). One transaction per conversation removes every row the
//! expired parts left: their `docs` rows (with snapshots), change log, projected messages and
//! `buckets` index rows, and writes one `bucket_drops` audit row per part.
//!
//! What stays: the conversation's own rows (its `conv` document, summary, members, read
//! markers: a marker naming a dropped message counts every kept message as unread, which is
//! what a reader who stopped before the dropped period has not read) and the rejection log
//! (it holds codes and hashes, no content).

use confab_core::ids::{Bucket, ConvId, DocId, TenantId};
use sqlx::{PgConnection, Row, SqliteConnection};

use super::columns::limit_of;
use super::{Result, StoreError};

/// What one conversation's drop deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dropped {
    /// The parts deleted, oldest first.
    pub buckets: Vec<Bucket>,
    pub changes: u64,
    pub messages: u64,
}

/// Who asks for a drop and why (the audit row).
#[derive(Debug, Clone, Copy)]
pub struct DropRequest<'a> {
    pub tenant: &'a TenantId,
    pub conv: &'a ConvId,
    /// Every period before this one goes.
    pub first_kept: i64,
    pub retention_days: u32,
    pub now_ms: i64,
}

/// A conversation that holds message buckets (one a row of the retention sweep's pages).
pub type ConvKey = (TenantId, ConvId);

fn bucket_of(period: i64, part: i64) -> Result<Bucket> {
    u32::try_from(part)
        .map(|part| Bucket::new(period, part))
        .map_err(|_| StoreError::Corrupt(format!("bucket part {part}")))
}

fn key_of(tenant: String, conv: String) -> Result<ConvKey> {
    let tenant = TenantId::new(tenant).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let conv = ConvId::new(conv).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok((tenant, conv))
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Conversations holding buckets after `after` (key order), at most `limit`.
pub(super) async fn conversations_pg(
    conn: &mut PgConnection,
    after: Option<&ConvKey>,
    limit: usize,
) -> Result<Vec<ConvKey>> {
    let (t, c) = after.map_or(("", ""), |(t, c)| (t.as_str(), c.as_str()));
    let rows = sqlx::query(
        // The primary key's own order (and collation): a walk of its index.
        "SELECT tenant, conv FROM buckets WHERE (tenant, conv) > ($1, $2) \
         GROUP BY tenant, conv ORDER BY tenant, conv LIMIT $3",
    )
    .bind(t)
    .bind(c)
    .bind(limit_of(limit))
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| key_of(r.try_get("tenant")?, r.try_get("conv")?))
        .collect()
}

pub(super) async fn conversations_sqlite(
    conn: &mut SqliteConnection,
    after: Option<&ConvKey>,
    limit: usize,
) -> Result<Vec<ConvKey>> {
    let (t, c) = after.map_or(("", ""), |(t, c)| (t.as_str(), c.as_str()));
    let rows = sqlx::query(
        "SELECT tenant, conv FROM buckets WHERE (tenant, conv) > (?, ?) \
         GROUP BY tenant, conv ORDER BY tenant, conv LIMIT ?",
    )
    .bind(t)
    .bind(c)
    .bind(limit_of(limit))
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| key_of(r.try_get("tenant")?, r.try_get("conv")?))
        .collect()
}

/// Deletes the expired parts of one conversation on Postgres, in one transaction.
pub(super) async fn drop_pg(conn: &mut PgConnection, req: DropRequest<'_>) -> Result<Dropped> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    let (tenant, conv) = (req.tenant.as_str(), req.conv.as_str());
    let rows = sqlx::query(
        "SELECT period, part::int8 AS part FROM buckets \
         WHERE tenant = $1 AND conv = $2 AND period < $3 ORDER BY period, part",
    )
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
    let messages = sqlx::query(
        "SELECT m.period, m.part::int8 AS part, COUNT(*) AS n FROM messages m \
         JOIN conversations c ON c.id = m.cid \
         WHERE c.tenant = $1 AND c.conv = $2 AND m.period < $3 GROUP BY 1, 2",
    )
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
    // The conversation's rows are a prefix of the primary key (cid, pos): the scan reads
    // only this conversation's messages, which the retention itself bounds.
    sqlx::query(
        "DELETE FROM messages WHERE cid = (SELECT id FROM conversations \
         WHERE tenant = $1 AND conv = $2) AND period < $3",
    )
    .bind(tenant)
    .bind(conv)
    .bind(req.first_kept)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM buckets WHERE tenant = $1 AND conv = $2 AND period < $3")
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

/// Deletes the expired parts of one conversation on SQLite, in one transaction.
pub(super) async fn drop_sqlite(
    conn: &mut SqliteConnection,
    req: DropRequest<'_>,
) -> Result<Dropped> {
    use sqlx::Connection;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let (tenant, conv) = (req.tenant.as_str(), req.conv.as_str());
    let rows = sqlx::query(
        "SELECT period, part FROM buckets \
         WHERE tenant = ? AND conv = ? AND period < ? ORDER BY period, part",
    )
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
            sqlx::query("SELECT doc_id, COUNT(*) AS n FROM changes WHERE doc_id = ?")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?,
        );
    }
    let messages = sqlx::query(
        "SELECT m.period, m.part, COUNT(*) AS n FROM messages m \
         JOIN conversations c ON c.id = m.cid \
         WHERE c.tenant = ? AND c.conv = ? AND m.period < ? GROUP BY 1, 2",
    )
    .bind(tenant)
    .bind(conv)
    .bind(req.first_kept)
    .fetch_all(&mut *tx)
    .await?;
    let audit = Audit::of(&dropped.buckets, &ids, &changes, &messages)?;
    for id in &ids {
        sqlx::query("DELETE FROM changes WHERE doc_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM docs WHERE doc_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(
        "DELETE FROM messages WHERE cid = (SELECT id FROM conversations \
         WHERE tenant = ? AND conv = ?) AND period < ?",
    )
    .bind(tenant)
    .bind(conv)
    .bind(req.first_kept)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM buckets WHERE tenant = ? AND conv = ? AND period < ?")
        .bind(tenant)
        .bind(conv)
        .bind(req.first_kept)
        .execute(&mut *tx)
        .await?;
    for (bucket, changes, messages) in &audit.rows {
        sqlx::query(
            "INSERT INTO bucket_drops (tenant, conv, period, part, retention_days, changes, \
             messages, dropped_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
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

/// The document ids of a conversation's parts.
fn doc_ids(req: DropRequest<'_>, buckets: &[Bucket]) -> Vec<String> {
    buckets
        .iter()
        .map(|b| DocId::msgs(req.tenant, req.conv, *b).to_string())
        .collect()
}

/// The audit rows of one drop: per part, its change and message counts.
struct Audit {
    rows: Vec<(Bucket, i64, i64)>,
    changes: u64,
    messages: u64,
}

impl Audit {
    fn of<R: Row>(buckets: &[Bucket], ids: &[String], changes: &[R], messages: &[R]) -> Result<Self>
    where
        for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'a> &'a str: sqlx::ColumnIndex<R>,
    {
        let mut rows: Vec<(Bucket, i64, i64)> = buckets.iter().map(|b| (*b, 0, 0)).collect();
        for r in changes {
            let id: String = r.try_get("doc_id").unwrap_or_default();
            let n: i64 = r.try_get("n")?;
            if let Some(i) = ids.iter().position(|x| *x == id) {
                rows[i].1 += n;
            }
        }
        for r in messages {
            let bucket = bucket_of(r.try_get("period")?, r.try_get("part")?)?;
            let n: i64 = r.try_get("n")?;
            if let Some(row) = rows.iter_mut().find(|(b, ..)| *b == bucket) {
                row.2 += n;
            }
        }
        Ok(Audit {
            changes: rows.iter().map(|r| count(r.1)).sum(),
            messages: rows.iter().map(|r| count(r.2)).sum(),
            rows,
        })
    }
}
