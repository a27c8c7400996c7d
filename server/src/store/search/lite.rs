//! SQLite: how a search reads its page (docs/SEARCH.md, "Cost"). A sort of FTS5's matches
//! costs the matches; a walk of the newest entries costs the entries it passes and ends when
//! the page is full. Which is cheaper follows how often the terms match where the account
//! reads, which only reading tells. So a search reads FTS5's first few thousand matches, and
//! sorts them if that was all; otherwise it walks a little, and what that walk found chooses
//! the rest: a longer walk, or reading on in FTS5 to sort its matches when they are few
//! enough, or, past that, all of them.

use confab_core::search::Query;
use sqlx::sqlite::SqliteRow;
use sqlx::{SqliteConnection, SqlitePool};

use super::{bind_filters, hits, search_columns, search_sql, SearchCursor, SearchHit, SearchQuery};
use crate::store::{Result, StoreError};

/// FTS5 matches read first: fewer, and they are the answer, sorted (a few milliseconds).
pub(crate) const SORT_FIRST_MAX: i64 = 5_000;

/// Entries the first walk reads (about 5 ms at ten million messages): a common query's page
/// is full by then.
pub(crate) const WALK_FIRST: i64 = 40_000;

/// Entries a second walk may read: one that needs more would cost more than sorting what
/// FTS5 matches.
pub(crate) const WALK_MORE_MAX: i64 = 120_000;

/// FTS5 matches counted, and kept when readable, before they are sorted: past this many,
/// terms that the walks found rare where the account reads are common elsewhere, and FTS5's
/// whole answer is read and sorted instead.
pub(crate) const SORT_MATCHES_MAX: i64 = 50_000;

/// Entries the two walks read together when the first found `found` of a page of `limit`:
/// enough at that rate, and half again; none when the first found nothing or it would read more
/// than [`WALK_MORE_MAX`].
pub(crate) fn second_walk(found: usize, limit: usize) -> Option<i64> {
    if found == 0 {
        return None;
    }
    let entries = WALK_FIRST.saturating_mul(limit as i64).saturating_mul(3) / (2 * found as i64);
    (entries <= WALK_MORE_MAX).then_some(entries)
}

/// A page of `q` among the conversations `cids` (not empty). Its steps read one snapshot:
/// an entry the indexer moves from the backlog into FTS5 between two of them is found once.
pub(crate) async fn search(
    reader: &SqlitePool,
    q: &SearchQuery<'_>,
    cids: &[i64],
) -> Result<Vec<SearchHit>> {
    let mut snapshot = reader.begin().await?;
    let reader: &mut SqliteConnection = &mut snapshot;
    let cids = serde_json::to_string(cids).unwrap_or_default();
    let patterns = patterns(q.query);
    let fts = q.query.to_fts5();
    let mut matches = Matches::default();
    matches
        .read(&mut *reader, &cids, &fts, SORT_FIRST_MAX)
        .await?;
    if !matches.all {
        let first = walk(&mut *reader, q, &cids, &patterns, WALK_FIRST).await?;
        if first.answers(q.limit) {
            return hits(&first.rows, q.tenant);
        }
        if let (Some(entries), Some((created_at, cid, pos))) =
            (second_walk(first.rows.len(), q.limit), first.bound)
        {
            // On from the first walk's last entry: what it read is not read again.
            let rest = SearchQuery {
                after: Some(SearchCursor {
                    created_at,
                    cid,
                    pos,
                }),
                limit: q.limit - first.rows.len(),
                ..q.clone()
            };
            let second = walk(&mut *reader, &rest, &cids, &patterns, entries - WALK_FIRST).await?;
            if second.answers(rest.limit) {
                let rows: Vec<SqliteRow> = first.rows.into_iter().chain(second.rows).collect();
                return hits(&rows, q.tenant);
            }
        }
        matches
            .read(&mut *reader, &cids, &fts, SORT_MATCHES_MAX)
            .await?;
    }
    let rows = match matches.all {
        true => {
            let kept = serde_json::to_string(&matches.kept).unwrap_or_default();
            let sort = sqlx::query(SORT_KEPT).bind(&cids).bind(kept);
            bind_filters!(sort, q)
                .bind(&patterns)
                .fetch_all(&mut *reader)
                .await?
        }
        false => {
            let all = sqlx::query(SORT_ALL).bind(&cids).bind(&fts);
            bind_filters!(all, q)
                .bind(&patterns)
                .fetch_all(&mut *reader)
                .await?
        }
    };
    hits(&rows, q.tenant)
}

/// FTS5's matches read so far, in rowid order: how many, those of readable conversations,
/// and whether that was all of them.
#[derive(Default)]
struct Matches {
    read: i64,
    last: Option<i64>,
    kept: Vec<i64>,
    all: bool,
}

impl Matches {
    /// Reads on from the last match read until `max` are read or none is left.
    async fn read(
        &mut self,
        reader: &mut SqliteConnection,
        cids: &str,
        fts: &str,
        max: i64,
    ) -> Result<()> {
        let (read, kept, last): (i64, String, Option<i64>) = sqlx::query_as(MATCHES)
            .bind(cids)
            .bind(fts)
            .bind(max - self.read)
            .bind(self.last.unwrap_or(i64::MIN))
            .fetch_one(reader)
            .await?;
        let kept: Vec<i64> = serde_json::from_str(&kept)
            .map_err(|e| StoreError::Corrupt(format!("FTS5 matches: {e}")))?;
        self.all = read < max - self.read;
        self.read += read;
        self.last = last.or(self.last);
        self.kept.extend(kept);
        Ok(())
    }
}

/// What a walk read: the page's rows, and the last entry it passed (none: it passed the
/// last of all).
struct Walked {
    rows: Vec<SqliteRow>,
    bound: Option<(i64, i64, i64)>,
}

impl Walked {
    /// A full page, or every entry passed: nothing older can be missing.
    fn answers(&self, limit: usize) -> bool {
        self.rows.len() >= limit || self.bound.is_none()
    }
}

/// The page among the `entries` entries from the page's start.
async fn walk(
    reader: &mut SqliteConnection,
    q: &SearchQuery<'_>,
    cids: &str,
    patterns: &str,
    entries: i64,
) -> Result<Walked> {
    let from = q.after.unwrap_or(SearchCursor::START);
    let bound: Option<(i64, i64, i64)> = sqlx::query_as(WALK_BOUND)
        .bind(q.since.unwrap_or(i64::MIN))
        .bind(q.until.unwrap_or(i64::MAX))
        .bind(from.created_at)
        .bind(from.cid)
        .bind(from.pos)
        .bind(entries - 1)
        .fetch_optional(&mut *reader)
        .await?;
    let (at, cid, pos) = bound.unwrap_or((i64::MIN, i64::MIN, i64::MIN));
    let walk = sqlx::query(WALK).bind(cids).bind(patterns);
    let rows = bind_filters!(walk, q)
        .bind(at)
        .bind(cid)
        .bind(pos)
        .fetch_all(&mut *reader)
        .await?;
    Ok(Walked { rows, bound })
}

/// The entries newest first (migration 0026) down to `($12, $13, $14)` ([`WALK_BOUND`]),
/// each checked against `$2`, a JSON array of patterns every one of which its ` terms `
/// must hold ([`patterns`]).
const WALK: &str = search_sql!(
    "FROM message_search_time t JOIN messages m ON m.cid = t.cid AND m.pos = t.pos",
    "t.cid IN (SELECT value FROM json_each($1)) AND (t.created_at, t.cid, t.pos) >= ($12, $13, $14) \
     AND NOT EXISTS (SELECT 1 FROM json_each($2) p WHERE instr(' ' || t.terms || ' ', p.value) = 0)",
    "m.deleted = 0",
    "t"
);

/// Where a walk from the page's start (`$3..$5`, within `$1..$2`) stops: the entry `$6`
/// places down, if there is one.
const WALK_BOUND: &str = "SELECT created_at, cid, pos FROM message_search_time \
    WHERE created_at >= $1 AND created_at < $2 AND (created_at, cid, pos) < ($3, $4, $5) \
    ORDER BY created_at DESC, cid DESC, pos DESC LIMIT 1 OFFSET $6";

/// FTS5's matches of `$2` after the rowid `$4`, at most `$3`, in rowid order: how many,
/// those of the readable conversations `$1` among them as a JSON array (FTS5's rowid is `cid
/// * 2^32 + pos`, migration 0020), and the last. The backlog's entries are not among them (a
/// few thousand at most; [`SORT_KEPT`] reads them).
const MATCHES: &str = "SELECT COUNT(*), \
      json_group_array(rowid) FILTER (WHERE (rowid >> 32) IN (SELECT value FROM json_each($1))), \
      MAX(rowid) \
    FROM (SELECT rowid FROM message_search WHERE message_search MATCH $2 AND rowid > $4 \
      ORDER BY rowid LIMIT $3)";

/// The entries of the backlog (0044) not in FTS5 yet whose terms hold `$12`, the patterns
/// of [`WALK`].
macro_rules! backlog_matches {
    () => {
        "SELECT b.entry FROM search_backlog b JOIN message_search_time t \
           ON t.created_at = b.created_at AND t.cid = b.entry >> 32 \
           AND t.pos = b.entry & 4294967295 \
         WHERE NOT EXISTS (SELECT 1 FROM json_each($12) p \
           WHERE instr(' ' || t.terms || ' ', p.value) = 0)"
    };
}

/// The page among `$2`, the entries [`MATCHES`] kept, and the backlog's matches: those of
/// readable conversations are kept by their key before any row is read, then sorted.
const SORT_KEPT: &str = search_sql!(
    concat!(
        "FROM (SELECT value AS entry FROM json_each($2) UNION ALL ",
        backlog_matches!(),
        ") s JOIN messages m ON m.cid = (s.entry >> 32) AND m.pos = (s.entry & 4294967295)"
    ),
    "(s.entry >> 32) IN (SELECT value FROM json_each($1))",
    "m.deleted = 0",
    "m"
);

/// As [`SORT_KEPT`], with every match of the FTS5 query `$2`.
const SORT_ALL: &str = search_sql!(
    concat!(
        "FROM (SELECT rowid AS entry FROM message_search WHERE message_search MATCH $2 UNION ALL ",
        backlog_matches!(),
        ") s JOIN messages m ON m.cid = (s.entry >> 32) AND m.pos = (s.entry & 4294967295)"
    ),
    "(s.entry >> 32) IN (SELECT value FROM json_each($1))",
    "m.deleted = 0",
    "m"
);

/// A query's terms as [`WALK`] checks them in ` terms `: a whole word (` a `) for each, a
/// word's start (` a`) for the last when it matches as a prefix.
fn patterns(query: &Query) -> String {
    let last = query.terms.len() - 1;
    let list: Vec<String> = query
        .terms
        .iter()
        .enumerate()
        .map(|(i, t)| match i == last && query.last_is_prefix() {
            true => format!(" {t}"),
            false => format!(" {t} "),
        })
        .collect();
    serde_json::to_string(&list).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_walk_reads_what_the_first_rate_needs_within_its_bound() {
        // 25 of 50 in the first walk: twice its entries are needed, half again read.
        assert_eq!(second_walk(25, 50), Some(WALK_FIRST * 3));
        assert_eq!(second_walk(24, 50), None);
        assert_eq!(second_walk(0, 50), None);
        let rarest = (1..50).find(|k| second_walk(*k, 50).is_some());
        assert_eq!(rarest, Some(25));
        assert!(second_walk(199, 200).is_some_and(|e| e > WALK_FIRST));
    }
}
