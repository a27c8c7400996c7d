//! Retention: deleting the message buckets a conversation's `retention_days` expired
//! (docs/FEATURES.md, "Retention"). One transaction per conversation removes every row the
//! expired parts left: their `docs` rows (with snapshots), change log, projected messages and
//! `buckets` index rows, and writes one `bucket_drops` audit row per part.
//!
//! The statements both backends write alike are here (the sweep's pages, the expired parts
//! and their messages); the documents' rows differ (row locks and arrays on Postgres, one
//! document at a time on SQLite): `sqlite/retention.rs`, `postgres/retention.rs`.
//!
//! What stays: the conversation's own rows (its `conv` document, summary, members, read
//! markers: a marker naming a dropped message counts every kept message as unread, which is
//! what a reader who stopped before the dropped period has not read) and the rejection log
//! (it holds codes and hashes, no content).

use confab_core::ids::{Bucket, ConvId, DocId, TenantId};
use sqlx::Row;

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

/// The expired parts of a conversation, oldest first ($1 tenant, $2 conv, $3 first kept).
pub(super) const EXPIRED_BUCKETS: &str =
    "SELECT period, CAST(part AS BIGINT) AS part FROM buckets \
     WHERE tenant = $1 AND conv = $2 AND period < $3 ORDER BY period, part";
/// Projected messages per expired part (the audit row's count).
pub(super) const EXPIRED_MESSAGES: &str =
    "SELECT m.period, CAST(m.part AS BIGINT) AS part, COUNT(*) AS n FROM messages m \
     JOIN conversations c ON c.id = m.cid \
     WHERE c.tenant = $1 AND c.conv = $2 AND m.period < $3 GROUP BY 1, 2";
/// The expired parts' projected messages: the conversation's rows are a prefix of the
/// primary key (cid, pos), so the scan reads only this conversation's messages, which the
/// retention itself bounds.
pub(super) const DROP_MESSAGES: &str = "DELETE FROM messages WHERE cid = (SELECT id \
     FROM conversations WHERE tenant = $1 AND conv = $2) AND period < $3";
/// The expired parts' index rows.
pub(super) const DROP_BUCKETS: &str =
    "DELETE FROM buckets WHERE tenant = $1 AND conv = $2 AND period < $3";

pub(super) fn bucket_of(period: i64, part: i64) -> Result<Bucket> {
    u32::try_from(part)
        .map(|part| Bucket::new(period, part))
        .map_err(|_| StoreError::Corrupt(format!("bucket part {part}")))
}

pub(super) fn key_of(tenant: String, conv: String) -> Result<ConvKey> {
    let tenant = TenantId::new(tenant).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let conv = ConvId::new(conv).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok((tenant, conv))
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

macro_rules! queries {
    ($conn:ty) => {
        use sqlx::Row;

        use crate::store::columns::limit_of;
        use crate::store::retention::{key_of, ConvKey};
        use crate::store::Result;

        /// Conversations holding buckets after `after` (key order), at most `limit`: a walk
        /// of the primary key's index, in its own order (and collation).
        pub(in crate::store) async fn conversations(
            conn: &mut $conn,
            after: Option<&ConvKey>,
            limit: usize,
        ) -> Result<Vec<ConvKey>> {
            let (t, c) = after.map_or(("", ""), |(t, c)| (t.as_str(), c.as_str()));
            let rows = sqlx::query(
                "SELECT tenant, conv FROM buckets WHERE (tenant, conv) > ($1, $2) \
                 GROUP BY tenant, conv ORDER BY tenant, conv LIMIT $3",
            )
            .bind(t)
            .bind(c)
            .bind(limit_of(limit))
            .fetch_all(&mut *conn)
            .await?;
            rows.iter()
                .map(|r| key_of(r.try_get("tenant")?, r.try_get("conv")?))
                .collect()
        }
    };
}

pub(super) mod pg {
    queries!(sqlx::PgConnection);
}

pub(super) mod lite {
    queries!(sqlx::SqliteConnection);
}

/// The document ids of a conversation's parts.
pub(super) fn doc_ids(req: DropRequest<'_>, buckets: &[Bucket]) -> Vec<String> {
    buckets
        .iter()
        .map(|b| DocId::msgs(req.tenant, req.conv, *b).to_string())
        .collect()
}

/// The audit rows of one drop: per part, its change and message counts.
pub(super) struct Audit {
    pub rows: Vec<(Bucket, i64, i64)>,
    pub changes: u64,
    pub messages: u64,
}

impl Audit {
    pub fn of<R: Row>(
        buckets: &[Bucket],
        ids: &[String],
        changes: &[R],
        messages: &[R],
    ) -> Result<Self>
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
