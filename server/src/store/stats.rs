//! Per-conversation stats and view counts (docs/SCHEMA.md, "Projection: stats and views"):
//! read from columns and a table that triggers keep (migrations: Postgres 0019 and 0020,
//! SQLite 0013 and 0014), so neither counts messages or members when it is asked.

use confab_core::ids::{ConvId, TenantId};
use sqlx::{PgPool, Row, SqlitePool};

use super::Result;

/// Seed 001 `stats`: messages not deleted, of them media (image, video, voice) and files
/// (file), and the active members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ConvStats {
    pub messages: i64,
    pub media: i64,
    pub files: i64,
    pub members: i64,
}

/// How many read markers stand at each position at or after `from`, in position order.
/// A post's view count is the sum over the positions at or after its own (`views_at`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadPositions(pub Vec<(i64, i64)>);

impl ReadPositions {
    /// The number of accounts whose read marker stands at or after `pos`. O(positions).
    pub fn views_at(&self, pos: i64) -> i64 {
        let start = self.0.partition_point(|(p, _)| *p < pos);
        self.0[start..].iter().map(|(_, n)| *n).sum()
    }

    /// The view counts of posts at `positions`, in their order: one pass of suffix sums.
    pub fn views_of(&self, positions: &[i64]) -> Vec<i64> {
        let mut suffix = vec![0i64; self.0.len() + 1];
        for (i, (_, n)) in self.0.iter().enumerate().rev() {
            suffix[i] = suffix[i + 1].saturating_add(*n);
        }
        positions
            .iter()
            .map(|pos| suffix[self.0.partition_point(|(p, _)| *p < *pos)])
            .collect()
    }
}

macro_rules! stats_sql {
    ($a:literal, $b:literal) => {
        concat!(
            "SELECT message_count, media_count, file_count, active_members ",
            "FROM conversations WHERE tenant = ",
            $a,
            " AND conv = ",
            $b
        )
    };
}
macro_rules! positions_sql {
    ($a:literal, $b:literal, $c:literal) => {
        concat!(
            "SELECT r.pos, r.readers FROM conversations c ",
            "JOIN read_positions r ON r.cid = c.id WHERE c.tenant = ",
            $a,
            " AND c.conv = ",
            $b,
            " AND r.pos >= ",
            $c,
            " ORDER BY r.pos"
        )
    };
}

fn stats_of<R: Row>(row: &R) -> Result<ConvStats>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    i64: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(ConvStats {
        messages: row.try_get("message_count")?,
        media: row.try_get("media_count")?,
        files: row.try_get("file_count")?,
        members: row.try_get("active_members")?,
    })
}

pub async fn stats_sqlite(
    pool: &SqlitePool,
    tenant: &TenantId,
    conv: &ConvId,
) -> Result<Option<ConvStats>> {
    let row = sqlx::query(stats_sql!("?", "?"))
        .bind(tenant.as_str())
        .bind(conv.as_str())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(stats_of).transpose()
}

pub async fn stats_pg(
    pool: &PgPool,
    tenant: &TenantId,
    conv: &ConvId,
) -> Result<Option<ConvStats>> {
    let row = sqlx::query(stats_sql!("$1", "$2"))
        .bind(tenant.as_str())
        .bind(conv.as_str())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(stats_of).transpose()
}

pub async fn positions_sqlite(
    pool: &SqlitePool,
    tenant: &TenantId,
    conv: &ConvId,
    from: i64,
) -> Result<ReadPositions> {
    let rows = sqlx::query(positions_sql!("?", "?", "?"))
        .bind(tenant.as_str())
        .bind(conv.as_str())
        .bind(from)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_>>()
        .map(ReadPositions)
}

pub async fn positions_pg(
    pool: &PgPool,
    tenant: &TenantId,
    conv: &ConvId,
    from: i64,
) -> Result<ReadPositions> {
    let rows = sqlx::query(positions_sql!("$1", "$2", "$3"))
        .bind(tenant.as_str())
        .bind(conv.as_str())
        .bind(from)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_>>()
        .map(ReadPositions)
}

#[cfg(test)]
mod tests {
    use super::ReadPositions;

    #[test]
    fn views_count_the_markers_at_or_after_a_post() {
        let p = ReadPositions(vec![(2, 1), (5, 3), (9, 2)]);
        assert_eq!(p.views_of(&[9, 5, 4, 1, 10]), vec![2, 5, 5, 6, 0]);
        assert_eq!(p.views_at(5), 5);
        assert_eq!(ReadPositions::default().views_of(&[1]), vec![0]);
    }
}
