//! The search backlog on SQLite (migration 0044): entries a commit names, moved into FTS5
//! behind the commits ([`Projections::index_search_backlog`]).
//!
//! [`Projections::index_search_backlog`]: crate::store::Projections::index_search_backlog

use rusqlite::params;
use sqlx::sqlite::SqliteConnection;

use super::commit::in_transaction;
use crate::store::Result;

/// Moves up to `limit` backlog entries, in key order, into FTS5 with their terms from
/// `message_search_time`, in one transaction on the writer's own handle; how many it took
/// off the backlog.
pub(super) async fn index(conn: &mut SqliteConnection, limit: usize) -> Result<usize> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    in_transaction(conn, |db| {
        let mut read = db.prepare_cached(
            "SELECT b.entry, t.terms FROM search_backlog b \
             LEFT JOIN message_search_time t ON t.created_at = b.created_at \
               AND t.cid = b.entry >> 32 AND t.pos = b.entry & 4294967295 \
             ORDER BY b.entry LIMIT ?1",
        )?;
        let rows = read
            .query_map([limit], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?))
            })?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let Some(&(last, _)) = rows.last() else {
            return Ok(0);
        };
        let mut insert =
            db.prepare_cached("INSERT INTO message_search (rowid, terms) VALUES (?1, ?2)")?;
        // Every entry has its row (the triggers delete both); one without is only unnamed.
        for (entry, terms) in &rows {
            if let Some(terms) = terms {
                insert.execute(params![entry, terms])?;
            }
        }
        db.prepare_cached("DELETE FROM search_backlog WHERE entry <= ?1")?
            .execute([last])?;
        Ok(rows.len())
    })
    .await
}
