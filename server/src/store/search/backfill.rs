//! The search backfill's statements (`engine::search_backfill`, docs/SEARCH.md,
//! "Backfill"): a marker row walks every message row once in `(cid, pos)` order, a page at
//! a time; the engine reads the text of the page's rows that have no entry from their
//! buckets, and the store writes their entries and moves the marker in one transaction.
//! An entry is written only where the row has none and is not deleted, so a commit's
//! (newer) terms and a tombstone always win; two nodes walking at once only repeat work.

use confab_core::ids::{Bucket, ConvId, MessageId, TenantId};

use crate::store::columns::{bucket_of, conv_id, message_id, tenant_corrupt, Cols};
use crate::store::Result;

/// Where the walk stands: after this `(cid, pos)`, or finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub cid: i64,
    pub pos: i64,
    pub done: bool,
}

/// A message row of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visited {
    pub cid: i64,
    pub pos: i64,
    pub tenant: TenantId,
    pub conv: ConvId,
    pub message: MessageId,
    pub bucket: Bucket,
    /// Not deleted and without an entry: its terms are wanted.
    pub wanted: bool,
}

/// The rows after `from`, in the walk's order; the last page has fewer than asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub from: Marker,
    pub rows: Vec<Visited>,
    pub last: bool,
}

impl Page {
    /// The marker once this page is written.
    pub fn next(&self) -> Marker {
        let (cid, pos) = self
            .rows
            .last()
            .map_or((self.from.cid, self.from.pos), |r| (r.cid, r.pos));
        Marker {
            cid,
            pos,
            done: self.last,
        }
    }
}

/// One message's terms (space-separated, as `confab_core::search::index_text` gives them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub cid: i64,
    pub pos: i64,
    pub terms: String,
}

pub(crate) const MARKER: &str = "SELECT cid, pos, done FROM search_backfill";

/// The marker moves only from where the page began (another node may have moved it).
pub(crate) const ADVANCE: &str =
    "UPDATE search_backfill SET cid = $1, pos = $2, done = $3 WHERE cid = $4 AND pos = $5";

/// A page of rows after `($1, $2)`, `$3` of them; `{indexed}` is the backend's "has an
/// entry" condition on `m`.
macro_rules! page_sql {
    ($indexed:literal, $live:literal) => {
        concat!(
            "SELECT m.cid, m.pos, c.tenant, c.conv, m.message, m.period, \
             CAST(m.part AS BIGINT) AS part, (",
            $live,
            " AND NOT EXISTS (",
            $indexed,
            ")) AS wanted FROM messages m JOIN conversations c ON c.id = m.cid \
             WHERE (m.cid, m.pos) > ($1, $2) ORDER BY m.cid, m.pos LIMIT $3"
        )
    };
}

pub(crate) const PAGE_PG: &str = page_sql!(
    "SELECT 1 FROM message_search s \
     WHERE s.created_at = m.created_at AND s.cid = m.cid AND s.pos = m.pos",
    "NOT m.deleted"
);

pub(crate) const PAGE_LITE: &str = page_sql!(
    "SELECT 1 FROM message_search_time t \
     WHERE t.created_at = m.created_at AND t.cid = m.cid AND t.pos = m.pos",
    "m.deleted = 0"
);

/// Postgres: the entries, where the row is live and has none. The row is locked for share,
/// so a tombstone being committed is waited for and seen (and one committed later deletes
/// this entry through its trigger).
pub(crate) const WRITE_PG: &str = "\
    INSERT INTO message_search (cid, pos, created_at, terms) \
    SELECT m.cid, m.pos, m.created_at, array_to_tsvector(string_to_array(x.terms, ' ')) \
    FROM UNNEST($1::int8[], $2::int8[], $3::text[]) AS x(cid, pos, terms) \
    JOIN messages m ON m.cid = x.cid AND m.pos = x.pos \
    WHERE NOT m.deleted FOR SHARE OF m \
    ON CONFLICT (created_at, cid, pos) DO NOTHING";

/// SQLite: a live row without an entry, its `created_at` (writes are serialized, so nothing
/// changes it between this and the insert).
pub(crate) const UNINDEXED_LITE: &str = "\
    SELECT m.created_at FROM messages m WHERE m.cid = $1 AND m.pos = $2 AND m.deleted = 0 \
    AND NOT EXISTS (SELECT 1 FROM message_search_time t \
      WHERE t.created_at = m.created_at AND t.cid = m.cid AND t.pos = m.pos)";

/// The next page after the marker on `$pool` by `$page` (the backend's [`PAGE_PG`] or
/// [`PAGE_LITE`]), `None` once the walk is done: `Projections::search_backfill_page` on
/// either backend.
macro_rules! read_page {
    ($pool:expr, $page:expr, $limit:expr) => {{
        use crate::store::search::backfill;
        let limit: usize = $limit;
        let row = sqlx::query(backfill::MARKER).fetch_one($pool).await?;
        let from = backfill::marker(&row)?;
        match from.done {
            true => Ok(None),
            false => {
                let rows = sqlx::query($page)
                    .bind(from.cid)
                    .bind(from.pos)
                    .bind(crate::store::columns::limit_of(limit))
                    .fetch_all($pool)
                    .await?;
                backfill::page(from, &rows, limit).map(Some)
            }
        }
    }};
}
pub(crate) use read_page;

pub(crate) fn marker<R: Cols>(row: &R) -> Result<Marker> {
    Ok(Marker {
        cid: row.int("cid")?,
        pos: row.int("pos")?,
        done: row.flag("done")?,
    })
}

pub(crate) fn page<R: Cols>(from: Marker, rows: &[R], limit: usize) -> Result<Page> {
    let rows = rows
        .iter()
        .map(|r| {
            Ok(Visited {
                cid: r.int("cid")?,
                pos: r.int("pos")?,
                tenant: tenant_corrupt(r.text("tenant")?)?,
                conv: conv_id(r.text("conv")?)?,
                message: message_id(r.text("message")?)?,
                bucket: bucket_of(r)?,
                wanted: r.flag("wanted")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Page {
        from,
        last: rows.len() < limit,
        rows,
    })
}
