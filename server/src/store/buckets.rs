//! The bucket parts of a conversation, listed newest first (docs/FEATURES.md, "Bounded
//! buckets"). Rows are written by a trigger on `docs` (migrations `*_buckets.sql`), so every
//! commit path and every node records a new part without code of its own.

use confab_core::ids::{Bucket, ConvId, TenantId};
use sqlx::{PgPool, Row, SqlitePool};

use super::columns::limit_of;
use super::{Result, StoreError};

/// One page of parts: newest first, and whether older ones exist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketPage {
    pub buckets: Vec<Bucket>,
    pub more: bool,
}

/// `(period, part)` just above every stored part: "no bound".
fn bound(before: Option<Bucket>) -> (i64, i64) {
    before.map_or((i64::MAX, i64::MAX), |b| (b.period, i64::from(b.part)))
}

/// The page of `(period, part)` rows read with `limit + 1`.
fn page<R: Row>(rows: &[R], limit: usize) -> Result<BucketPage>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
{
    let rows = rows
        .iter()
        .map(|r| Ok((r.try_get("period")?, r.try_get("part")?)))
        .collect::<std::result::Result<Vec<(i64, i64)>, sqlx::Error>>()?;
    let more = rows.len() > limit;
    let buckets = rows
        .into_iter()
        .take(limit)
        .map(|(period, part)| {
            u32::try_from(part)
                .map(|part| Bucket::new(period, part))
                .map_err(|_| StoreError::Corrupt(format!("bucket part {part}")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(BucketPage { buckets, more })
}

pub(super) async fn list_pg(
    pool: &PgPool,
    tenant: &TenantId,
    conv: &ConvId,
    before: Option<Bucket>,
    limit: usize,
) -> Result<BucketPage> {
    let (period, part) = bound(before);
    let rows = sqlx::query(
        "SELECT period, part::int8 AS part FROM buckets \
         WHERE tenant = $1 AND conv = $2 AND (period, part) < ($3, $4) \
         ORDER BY period DESC, part DESC LIMIT $5",
    )
    .bind(tenant.as_str())
    .bind(conv.as_str())
    .bind(period)
    .bind(part)
    .bind(limit_of(limit.saturating_add(1)))
    .fetch_all(pool)
    .await?;
    page(&rows, limit)
}

pub(super) async fn list_sqlite(
    pool: &SqlitePool,
    tenant: &TenantId,
    conv: &ConvId,
    before: Option<Bucket>,
    limit: usize,
) -> Result<BucketPage> {
    let (period, part) = bound(before);
    let rows = sqlx::query(
        "SELECT period, part FROM buckets \
         WHERE tenant = ? AND conv = ? AND (period, part) < (?, ?) \
         ORDER BY period DESC, part DESC LIMIT ?",
    )
    .bind(tenant.as_str())
    .bind(conv.as_str())
    .bind(period)
    .bind(part)
    .bind(limit_of(limit.saturating_add(1)))
    .fetch_all(pool)
    .await?;
    page(&rows, limit)
}
