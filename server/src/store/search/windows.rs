//! Postgres: how a search reads its page (docs/SEARCH.md, "Cost"). A walk of the newest
//! entries passes every conversation's, though an account reads a few of them; the GIN
//! index gathers every entry of each term in the store before it keeps the readable
//! matches and sorts them. So a search reads windows of time, newest first, each through
//! `message_search_cid_time` (migration 0045): one descent per readable conversation and
//! only their entries of the window, each checked against the query. The planner's
//! estimates ([`Estimates`]) say how many readable entries hold a page and what the GIN
//! read would cost in window entries; the cheaper read goes first. What the windows find
//! sizes the next one, as far as their rate needs and half again, at least as far again as
//! the windows so far, within the same budget; past it, or after [`WINDOWS_MAX`] windows,
//! the rest of the page comes from the GIN index.

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use confab_core::search::Query;

use super::{bind_filters, search_columns, search_sql, words_first, SearchCursor, SearchQuery};
use crate::store::Result;

/// Newest entries (of every conversation) whose span tells how many arrive a millisecond:
/// what turns the readable entries a window needs into its time.
pub const FIRST_ENTRIES: i64 = 2_000;

/// Readable entries a window reads in the time the GIN read puts one readable entry in the
/// readable conversations' bitmap (a million: ~45 ms where a window reads an entry in
/// ~1.2 µs).
pub const INDEX_PER_READABLE: f64 = 0.036;

/// Readable entries a window reads in the time GIN gathers one entry of a term.
pub const INDEX_PER_GATHERED: f64 = 0.07;

/// Readable entries a search reads in windows at most, whatever the GIN read would cost.
pub const WINDOW_READ_MAX: f64 = 120_000.0;

/// How many times further than the windows so far the next one looks when they found no
/// readable entry or no match.
pub const GROW: i64 = 8;

/// Windows read before the GIN index is read for the rest.
pub const WINDOWS_MAX: usize = 6;

/// The planner's estimates for a query among the readable conversations (reading nothing;
/// `confab_search_estimate`, migrations 0043 and 0045).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimates {
    /// Entries of the readable conversations.
    pub readable: f64,
    /// Entries of every conversation.
    pub all: f64,
    /// Readable entries of the whole query.
    pub matches: f64,
    /// Readable entries of its words and of its prefix, for a query of both.
    pub parts: Option<words_first::Estimates>,
}

impl Estimates {
    /// Readable entries that hold a page of `limit`, and half again.
    pub fn needed(&self, limit: usize) -> f64 {
        1.5 * limit as f64 * self.readable.max(1.0) / self.matches.max(0.5)
    }

    /// Readable entries worth reading in windows rather than through the GIN index: its
    /// bitmap of the readable conversations and the entries it gathers, in window entries.
    pub fn budget(&self) -> f64 {
        let gathered_readable = match self.parts {
            Some(p) if p.words_first() => p.words,
            Some(p) => p.words + p.prefix,
            None => self.matches,
        };
        let gathered = gathered_readable * self.all.max(1.0) / self.readable.max(1.0);
        (INDEX_PER_READABLE * self.readable + INDEX_PER_GATHERED * gathered).min(WINDOW_READ_MAX)
    }

    /// The first window's milliseconds below `newest`, when `passed` entries arrived over
    /// `span_ms` there; none when the GIN index reads the page for less.
    pub fn first_window(&self, limit: usize, passed: i64, span_ms: i64) -> Option<i64> {
        let needed = self.needed(limit);
        if needed > self.budget() {
            return None;
        }
        let readable_per_ms =
            passed as f64 / span_ms.max(1) as f64 * self.readable.max(1.0) / self.all.max(1.0);
        Some(
            (needed / readable_per_ms)
                .ceil()
                .clamp(1.0, i64::MAX as f64) as i64,
        )
    }
}

/// The estimates for `query` among the conversations `cids`.
pub async fn estimate(db: &mut PgConnection, query: &Query, cids: &[i64]) -> Result<Estimates> {
    let split = query.words_and_prefix_tsquery();
    let (first, second) = match &split {
        Some((words, prefix)) => (words.clone(), Some(prefix.clone())),
        None => (query.to_tsquery(), None),
    };
    let (readable, all, first, second): (Option<f64>, Option<f64>, Option<f64>, Option<f64>) =
        sqlx::query_as(ESTIMATES)
            .bind(cids)
            .bind(first)
            .bind(second)
            .fetch_one(&mut *db)
            .await?;
    let (readable, all) = (
        readable.unwrap_or(1.0).max(1.0),
        all.unwrap_or(1.0).max(1.0),
    );
    // The store's entries of a term, as many of them readable as of all entries.
    let among_readable = |n: Option<f64>| n.unwrap_or(0.0) * readable / all;
    let (matches, parts) = match split {
        Some(_) => {
            let parts = words_first::Estimates {
                words: among_readable(first),
                prefix: among_readable(second),
            };
            // As the planner estimates a conjunction: the parts independent.
            (parts.words * parts.prefix / readable, Some(parts))
        }
        None => (among_readable(first), None),
    };
    Ok(Estimates {
        readable,
        all,
        matches,
        parts,
    })
}

/// The readable conversations' (`$1`) entries, every entry, and the entries of the tsquery
/// `$2` and of `$3` (if not null), each in the store (migration 0045).
const ESTIMATES: &str = "SELECT confab_search_estimate(NULL, $1), \
    (SELECT reltuples::float8 FROM pg_class WHERE oid = 'message_search'::regclass), \
    confab_search_estimate($2, NULL), \
    CASE WHEN $3::text IS NULL THEN NULL ELSE confab_search_estimate($3, NULL) END";

/// What the windows read so far: readable entries, matches, and the milliseconds spanned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seen {
    pub readable: i64,
    pub found: usize,
    pub span_ms: i64,
}

/// Where the page's rest is read after the windows so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// A window of this many milliseconds, on from the last.
    Window(i64),
    /// The GIN index's matches, sorted.
    Index,
}

/// The next read for a page of `limit` after `seen`, reading at most `budget` readable
/// entries in a window.
pub fn next(seen: &Seen, limit: usize, budget: i64) -> Next {
    let span = i128::from(seen.span_ms.max(1));
    let ms = |ms: i128| Next::Window(i64::try_from(ms.max(1)).unwrap_or(i64::MAX));
    if seen.readable == 0 {
        return ms(span * i128::from(GROW));
    }
    let (readable, wanted, budget) = (
        i128::from(seen.readable),
        limit.saturating_sub(seen.found) as i128,
        i128::from(budget),
    );
    let needed = match seen.found {
        0 => readable * i128::from(GROW),
        found => wanted * 3 * readable / (2 * found as i128),
    };
    if needed > budget {
        return Next::Index;
    }
    // At least as far again as the windows so far: a page's matches come in clumps (a
    // conversation's busy hour), so a short window after a rich one may find none. At most
    // what the budget spans at the rate so far.
    let most = budget * span / readable;
    ms((needed * span / readable).max(span).min(most))
}

/// The page of `q` among the conversations `cids` (not empty): its rows, newest first.
pub(crate) async fn search(
    db: &mut PgConnection,
    q: &SearchQuery<'_>,
    cids: &[i64],
) -> Result<Vec<PgRow>> {
    let since = q.since.unwrap_or(i64::MIN);
    let whole = q.query.to_tsquery();
    let mut top = q.after.unwrap_or(SearchCursor::START);
    let mut rows: Vec<PgRow> = Vec::new();
    let (newest, oldest, passed): (Option<i64>, Option<i64>, i64) = sqlx::query_as(FIRST_BOUND)
        .bind(since)
        .bind(q.until.unwrap_or(i64::MAX))
        .bind(top.created_at)
        .bind(top.cid)
        .bind(top.pos)
        .bind(FIRST_ENTRIES)
        .fetch_one(&mut *db)
        .await?;
    let (Some(mut hi), Some(oldest)) = (newest, oldest) else {
        return Ok(rows);
    };
    // Fewer entries below the start than FIRST_ENTRIES: one window reads them all.
    let (mut lo, mut budget, mut estimates) = (since, WINDOW_READ_MAX as i64, None);
    if passed == FIRST_ENTRIES {
        let e = estimate(&mut *db, q.query, cids).await?;
        budget = e.budget() as i64;
        estimates = Some(e);
        match e.first_window(q.limit, passed, hi.saturating_sub(oldest).saturating_add(1)) {
            Some(ms) => lo = hi.saturating_sub(ms - 1),
            None => budget = 0,
        }
    }
    let mut seen = Seen::default();
    for _ in 0..WINDOWS_MAX {
        if budget == 0 {
            break;
        }
        let from = lo.max(since);
        let window = SearchQuery {
            since: Some(from),
            after: Some(top),
            limit: q.limit - rows.len(),
            ..q.clone()
        };
        let statement = match q.reads_rows() {
            true => WINDOW_PG,
            false => WINDOW_PG_ENTRIES,
        };
        // Planned for its own values, never as a generic plan: the list's size and the
        // window's span choose the read.
        let read = sqlx::query(statement)
            .persistent(false)
            .bind(cids)
            .bind(&whole);
        let read = bind_filters!(read, &window).fetch_all(&mut *db).await?;
        if let Some(first) = read.first() {
            seen.readable += first.try_get::<i64, _>("readable")?;
        }
        for row in read {
            if row.try_get::<Option<String>, _>("message")?.is_some() {
                seen.found += 1;
                rows.push(row);
            }
        }
        if rows.len() >= q.limit || from <= since {
            return Ok(rows);
        }
        seen.span_ms = seen
            .span_ms
            .saturating_add(hi.saturating_sub(from).saturating_add(1));
        top = SearchCursor {
            created_at: from,
            cid: i64::MIN,
            pos: i64::MIN,
        };
        match next(&seen, q.limit, budget) {
            Next::Window(ms) => {
                hi = from.saturating_sub(1);
                lo = from.saturating_sub(ms);
            }
            Next::Index => break,
        }
    }
    let estimates = match estimates {
        Some(e) => e,
        None => estimate(&mut *db, q.query, cids).await?,
    };
    let index = words_first::read(q.query, estimates.parts);
    let rest = SearchQuery {
        after: Some(top),
        limit: q.limit - rows.len(),
        ..q.clone()
    };
    let statement = match q.reads_rows() {
        true => INDEX_PG,
        false => INDEX_PG_ENTRIES,
    };
    let read = sqlx::query(statement)
        .persistent(false)
        .bind(cids)
        .bind(index.index);
    let found = bind_filters!(read, &rest)
        .bind(index.check)
        .fetch_all(&mut *db)
        .await?;
    rows.extend(found);
    Ok(rows)
}

/// The newest entry within `$1..$2` below `($3, $4, $5)`, the oldest of the newest `$6`,
/// and how many of them there are (fewer than `$6`: every entry below the start).
const FIRST_BOUND: &str = "SELECT MAX(created_at), MIN(created_at), COUNT(*) FROM ( \
      SELECT created_at FROM message_search \
      WHERE created_at >= $1 AND created_at < $2 AND (created_at, cid, pos) < ($3, $4, $5) \
      ORDER BY created_at DESC, cid DESC, pos DESC LIMIT $6) w";

/// The matches of the GIN index among the conversations `$1`: `$2` what the index is read
/// with, `$12`, if not null, the whole query each entry is checked against
/// ([`words_first`]); `OFFSET 0` has them read whole before they are sorted.
macro_rules! index_entries {
    () => {
        "(SELECT s.cid, s.pos, s.created_at FROM message_search s \
           WHERE s.cid = ANY($1::int8[]) AND s.terms @@ $2::tsquery \
           AND ($12::tsquery IS NULL OR (s.terms || ''::tsvector) @@ $12::tsquery) OFFSET 0) s"
    };
}

/// A page of the entries `$entries` (aliased `s`) that hold `$matches`, with a filter on
/// the message row ([`SearchQuery::reads_rows`]).
macro_rules! rows_page {
    ($entries:expr, $matches:literal) => {
        search_sql!(
            concat!(
                "FROM ",
                $entries,
                " JOIN messages m ON m.cid = s.cid AND m.pos = s.pos"
            ),
            $matches,
            "NOT m.deleted",
            "s"
        )
    };
}

/// As [`rows_page`], without a filter on the message row: the page is chosen among the
/// entries alone (they hold the order's key), and only its rows are read. A deleted row has
/// no entry (its trigger removes it with the row's change), so no row drops out after the
/// page is chosen. `$3..$5` are bound and unused.
macro_rules! entries_page {
    ($entries:expr, $matches:literal) => {
        concat!(
            search_columns!(),
            "FROM (SELECT s.cid, s.pos, s.created_at FROM ",
            $entries,
            " WHERE ",
            $matches,
            " AND s.created_at >= $6 AND s.created_at < $7 \
              AND (s.created_at, s.cid, s.pos) < ($8, $9, $10) \
              ORDER BY s.created_at DESC, s.cid DESC, s.pos DESC LIMIT $11) s \
            JOIN messages m ON m.cid = s.cid AND m.pos = s.pos \
            JOIN conversations c ON c.id = m.cid \
            WHERE NOT m.deleted ORDER BY s.created_at DESC, s.cid DESC, s.pos DESC"
        )
    };
}

/// A window's page. Its readable entries (those of the conversations `$1` from `$6` on,
/// below the cursor) are kept whole with whether each matches `$2`: how many there are
/// sizes the next window, and read whole they are read through `message_search_cid_time`,
/// not by a walk of every conversation's. The check is an expression no index serves (not
/// the GIN index's every match). Each row carries the count; with no match, one row of the
/// count alone.
macro_rules! window_page {
    ($page:expr) => {
        concat!(
            "WITH w AS MATERIALIZED ( \
               SELECT s.cid, s.pos, s.created_at, (s.terms || ''::tsvector) @@ $2::tsquery AS hit \
               FROM message_search s \
               WHERE s.cid = ANY($1::int8[]) AND s.created_at >= $6 AND s.created_at < $7 \
                 AND (s.created_at, s.cid, s.pos) < ($8, $9, $10)) \
             SELECT r.readable, p.* FROM (SELECT COUNT(*) AS readable FROM w) r \
             LEFT JOIN (",
            $page,
            ") p ON TRUE ORDER BY p.created_at DESC, p.cid DESC, p.pos DESC"
        )
    };
}

const WINDOW_PG: &str = window_page!(rows_page!("w s", "s.hit"));
const WINDOW_PG_ENTRIES: &str = window_page!(entries_page!("w s", "s.hit"));
const INDEX_PG: &str = rows_page!(index_entries!(), "TRUE");
const INDEX_PG_ENTRIES: &str = entries_page!(index_entries!(), "TRUE");

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: i64 = 60_000;

    fn seen(readable: i64, found: usize, span_ms: i64) -> Seen {
        Seen {
            readable,
            found,
            span_ms,
        }
    }

    fn n(s: Seen, limit: usize) -> Next {
        next(&s, limit, BUDGET)
    }

    #[test]
    fn a_window_reads_what_the_rate_so_far_needs_and_half_again() {
        // 10 of 50 in 1,000 readable entries over 100 ms: 6,000 entries more, 600 ms.
        assert_eq!(n(seen(1_000, 10, 100), 50), Next::Window(600));
        // Half the page in the windows so far: three quarters of their span again.
        assert_eq!(n(seen(4_000, 25, 2_000), 50), Next::Window(3_000));
    }

    #[test]
    fn a_window_spans_at_least_the_windows_so_far_and_at_most_the_budget() {
        // 46 of 50 in the first window: its rate needs a tenth of its span, it reads all.
        assert_eq!(n(seen(1_000, 46, 10_000), 50), Next::Window(10_000));
        // As far again would hold more readable entries than the budget.
        assert_eq!(n(seen(2 * BUDGET, 49, 1_000), 50), Next::Window(500));
    }

    #[test]
    fn a_window_over_the_budget_leaves_the_rest_to_the_index() {
        // 1 of 50 in 2,000 entries: 147,000 entries more.
        assert_eq!(n(seen(2_000, 1, 10), 50), Next::Index);
        let largest = (1..10_000)
            .rev()
            .find(|r| n(seen(*r, 1, 10), 50) != Next::Index);
        assert_eq!(largest, Some(BUDGET * 2 / (3 * 49)));
        assert_eq!(next(&seen(100, 1, 10), 50, 0), Next::Index);
    }

    #[test]
    fn nothing_found_looks_further_until_that_is_over_the_budget() {
        // No readable entry: further by time alone.
        assert_eq!(n(seen(0, 0, 50), 50), Next::Window(50 * GROW));
        assert_eq!(n(seen(0, 0, 0), 50), Next::Window(GROW));
        // Readable entries, no match: GROW times as many, within the budget.
        assert_eq!(n(seen(100, 0, 10), 50), Next::Window(10 * GROW));
        assert_eq!(n(seen(BUDGET, 0, 10), 50), Next::Index);
    }

    #[test]
    fn extreme_counts_do_not_overflow() {
        assert_eq!(
            next(&seen(i64::MAX, 1, i64::MAX), 200, i64::MAX),
            Next::Index
        );
        assert!(matches!(n(seen(1, 200, i64::MAX), 201), Next::Window(_)));
        assert!(matches!(
            n(seen(0, 0, i64::MAX), 50),
            Next::Window(i64::MAX)
        ));
    }

    fn estimates(matches: f64, parts: Option<(f64, f64)>) -> Estimates {
        Estimates {
            readable: 1_000_000.0,
            all: 10_000_000.0,
            matches,
            parts: parts.map(|(words, prefix)| words_first::Estimates { words, prefix }),
        }
    }

    #[test]
    fn the_windows_go_first_when_they_read_less_than_the_index() {
        // A tenth of the store readable, 10,000 entries over 10 s: 100 readable a second.
        let first = |e: Estimates| e.first_window(50, 10_000, 10_000);
        // 1% of the readable entries match: 7,500 readable entries, 75 s.
        assert_eq!(first(estimates(10_000.0, None)), Some(75_000));
        // 750 readable matches: 100,000 entries in windows, more than the index's bitmap
        // of a million readable entries (36,000) and 0.07 of its 7,500 entries.
        assert_eq!(first(estimates(750.0, None)), None);
        // A word and a common prefix: the index gathers both, so windows read further.
        let word_and_prefix = estimates(20_000.0 * 50_000.0 / 1e6, Some((20_000.0, 50_000.0)));
        assert_eq!(
            word_and_prefix.budget(),
            INDEX_PER_READABLE * 1e6 + INDEX_PER_GATHERED * 700_000.0
        );
        assert!(first(word_and_prefix).is_some());
        // Unless the words are read first: then only they are gathered.
        let rare_word = estimates(100.0 * 200_000.0 / 1e6, Some((100.0, 200_000.0)));
        assert_eq!(
            rare_word.budget(),
            INDEX_PER_READABLE * 1e6 + INDEX_PER_GATHERED * 1_000.0
        );
        assert_eq!(first(rare_word), None);
        // Nothing matches (as estimated): the index.
        assert_eq!(first(estimates(0.0, None)), None);
        // Never more than WINDOW_READ_MAX, however costly the index.
        let costly = estimates(1e9, Some((1e9, 1e9)));
        assert_eq!(costly.budget(), WINDOW_READ_MAX);
    }
}
