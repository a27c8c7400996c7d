//! The bucket parts of a conversation, listed newest first (docs/FEATURES.md, "Bounded
//! buckets"). Rows are written by a trigger on `docs` (migrations `*_buckets.sql`), so every
//! commit path and every node records a new part without code of its own. Read by
//! `Projections::buckets` (`projection.rs`).

use confab_core::ids::Bucket;
use sqlx::Row;

use super::{Result, StoreError};

/// One page of parts: newest first, and whether older ones exist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketPage {
    pub buckets: Vec<Bucket>,
    pub more: bool,
}

/// `(period, part)` just above every stored part: "no bound".
pub(super) fn bound(before: Option<Bucket>) -> (i64, i64) {
    before.map_or((i64::MAX, i64::MAX), |b| (b.period, i64::from(b.part)))
}

/// The page of `(period, part)` rows read with `limit + 1`.
pub(super) fn page<R: Row>(rows: &[R], limit: usize) -> Result<BucketPage>
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
