//! Search of plaintext conversations' messages (docs/SEARCH.md): which conversations an
//! account may read, from the projection and by the acceptor's own rule
//! (`confab_core::accept::member_may_read`), then the matches among them, newest first, a
//! page at a time, walking the newest entries or reading the inverted index (docs/SEARCH.md,
//! "Cost"). The index is written by the commit (migrations: Postgres 0027 and 0033, SQLite
//! 0020 and 0026); Postgres reads in windows of time (`windows`), SQLite in steps (`lite`);
//! the backfill's statements are in `backfill`.

use std::collections::HashMap;

use confab_core::accept::member_may_read;
use confab_core::ids::{AccountId, ConvId, TenantId};
use confab_core::model::conversation::MemberStatus;
use confab_core::policy::Standing;
use confab_core::search::Query;

use super::columns::{conv_id, message_row, Cols};
use super::{MessageRow, Result};

pub mod backfill;
pub mod lite;
pub mod windows;
pub mod words_first;

/// Thread levels the permission follows up (a deeper chain is not readable).
const PARENT_DEPTH_MAX: usize = 8;

/// Where a page continues: after this (created_at, conversation key, position).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchCursor {
    pub created_at: i64,
    pub cid: i64,
    pub pos: i64,
}

impl SearchCursor {
    /// Before every entry: where a first page starts.
    pub const START: SearchCursor = SearchCursor {
        created_at: i64::MAX,
        cid: i64::MAX,
        pos: i64::MAX,
    };

    /// The opaque text a client sends back.
    pub fn encode(&self) -> String {
        format!("s1.{:x}.{:x}.{:x}", self.created_at, self.cid, self.pos)
    }

    pub fn decode(text: &str) -> Option<Self> {
        let mut parts = text.strip_prefix("s1.")?.split('.');
        let mut next = || i64::from_str_radix(parts.next()?, 16).ok();
        let cursor = SearchCursor {
            created_at: next()?,
            cid: next()?,
            pos: next()?,
        };
        parts.next().is_none().then_some(cursor)
    }
}

/// A search on behalf of `account`.
#[derive(Debug, Clone)]
pub struct SearchQuery<'a> {
    pub tenant: &'a TenantId,
    pub account: &'a AccountId,
    pub query: &'a Query,
    pub conv: Option<&'a ConvId>,
    pub author: Option<&'a AccountId>,
    pub kind: Option<&'a str>,
    /// Only messages with attachments (image, video, voice and file messages, as the
    /// conversation stats count them).
    pub has_attachment: bool,
    /// `created_at` bounds, `since` inclusive, `until` exclusive (ms).
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub after: Option<SearchCursor>,
    pub limit: usize,
}

impl<'a> SearchQuery<'a> {
    /// Whether a filter reads the message row (author, kind, attachments): the index entries
    /// alone cannot choose the page.
    pub fn reads_rows(&self) -> bool {
        self.author.is_some() || self.kind.is_some() || self.has_attachment
    }

    /// A search without filters, its first page.
    pub fn new(
        tenant: &'a TenantId,
        account: &'a AccountId,
        query: &'a Query,
        limit: usize,
    ) -> Self {
        SearchQuery {
            tenant,
            account,
            query,
            conv: None,
            author: None,
            kind: None,
            has_attachment: false,
            since: None,
            until: None,
            after: None,
            limit,
        }
    }
}

/// One match: the projected row and where the next page continues from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    pub row: MessageRow,
    pub cursor: SearchCursor,
}

/// The account's memberships with each conversation's key and parent, any status.
pub(crate) const MEMBERSHIPS: &str = "\
    SELECT c.id, c.conv, c.parent, m.status FROM memberships m \
    JOIN conversations c ON c.tenant = m.tenant AND c.conv = m.conv \
    WHERE m.tenant = $1 AND m.account = $2";

/// A membership of the searcher: the conversation's key, id and parent, and where the
/// account stands in it.
pub(crate) struct Entry {
    pub cid: i64,
    pub conv: ConvId,
    pub parent: Option<ConvId>,
    pub standing: Standing,
}

/// The rows of [`MEMBERSHIPS`].
pub(crate) fn entries<R: Cols>(rows: &[R]) -> Result<Vec<Entry>> {
    rows.iter()
        .map(|r| {
            let standing = match MemberStatus::parse(&r.text("status")?).ok() {
                Some(MemberStatus::Active) => Standing::Active,
                other => Standing::Out(other),
            };
            Ok(Entry {
                cid: r.int("id")?,
                conv: conv_id(r.text("conv")?)?,
                parent: r.opt_text("parent")?.map(conv_id).transpose()?,
                standing,
            })
        })
        .collect()
}

/// The conversation keys `account` may read (only `only`, if given): an active member,
/// and for a thread an active member of every conversation above it.
pub(crate) fn readable(entries: &[Entry], account: &AccountId, only: Option<&ConvId>) -> Vec<i64> {
    let by_conv: HashMap<&ConvId, &Entry> = entries.iter().map(|e| (&e.conv, e)).collect();
    let standing_in = |conv: &ConvId| {
        by_conv
            .get(conv)
            .map_or(Standing::Out(None), |e| e.standing)
    };
    let may_read = |entry: &Entry| -> bool {
        let mut at = entry;
        for _ in 0..PARENT_DEPTH_MAX {
            let above = at.parent.as_ref().map(standing_in);
            if member_may_read(at.standing, above, account).is_err() {
                return false;
            }
            match at.parent.as_ref().and_then(|p| by_conv.get(p)) {
                Some(parent) => at = parent,
                // No parent, or one the account never joined (refused above).
                None => return true,
            }
        }
        false
    };
    entries
        .iter()
        .filter(|e| only.is_none_or(|o| *o == e.conv))
        .filter(|e| may_read(e))
        .map(|e| e.cid)
        .collect()
}

/// What every search statement reads: the hit's conversation and message row.
macro_rules! search_columns {
    () => {
        "SELECT c.conv, m.cid, m.message, m.pos, m.period, CAST(m.part AS BIGINT) AS part, \
         m.seq, m.author, m.kind, m.created_at, m.preview, m.deleted "
    };
}
pub(crate) use search_columns;

/// The columns and filters every search statement shares; `$from` and `$matches` are the
/// index read and its match condition (`$1` the readable keys, `$2` the query), `$key` the
/// alias whose `(created_at, cid, pos)` the order and the bounds read.
macro_rules! search_sql {
    ($from:expr, $matches:literal, $not_deleted:literal, $key:literal) => {
        concat!(
            search_columns!(),
            $from,
            " JOIN conversations c ON c.id = m.cid WHERE ",
            $matches,
            " AND ",
            $not_deleted,
            " AND ($3 IS NULL OR m.author = $3) AND ($4 IS NULL OR m.kind = $4) \
             AND ($5 = 0 OR m.kind IN ('image', 'video', 'voice', 'file')) AND ",
            $key,
            ".created_at >= $6 AND ",
            $key,
            ".created_at < $7 AND (",
            $key,
            ".created_at, ",
            $key,
            ".cid, ",
            $key,
            ".pos) < ($8, $9, $10) ORDER BY ",
            $key,
            ".created_at DESC, ",
            $key,
            ".cid DESC, ",
            $key,
            ".pos DESC LIMIT $11"
        )
    };
}
pub(crate) use search_sql;

/// Postgres: a search's settings, for its transaction. The memory its bitmaps may take: a
/// prefix's terms are gathered in one bitmap; past `work_mem` (4 MB by default) it keeps
/// whole pages instead of entries, and every entry on those pages is read and checked ("lbb
/// wbb*" at ten million messages read and checked 50,704 entries for 2,902 matches, 262 ms;
/// with 16 MB the 2,902, 94 ms). No JIT: a window's or a common prefix's estimated cost
/// passes `jit_above_cost`, and compiling its expressions took longer than running them.
pub(crate) const SETTINGS_PG: &str =
    "SELECT set_config('work_mem', '16MB', true), set_config('jit', 'off', true)";

/// Binds a search's parameters `$3..$11` after the backend's `$1` and `$2`.
macro_rules! bind_filters {
    ($query:expr, $q:expr) => {{
        let q = $q;
        let after = q.after.unwrap_or(crate::store::search::SearchCursor::START);
        $query
            .bind(q.author.map(|a| a.as_str()))
            .bind(q.kind)
            .bind(i64::from(q.has_attachment))
            .bind(q.since.unwrap_or(i64::MIN))
            .bind(q.until.unwrap_or(i64::MAX))
            .bind(after.created_at)
            .bind(after.cid)
            .bind(after.pos)
            .bind(crate::store::columns::limit_of(q.limit))
    }};
}
pub(crate) use bind_filters;

/// The hits of a search statement's rows.
pub(crate) fn hits<R: Cols>(rows: &[R], tenant: &TenantId) -> Result<Vec<SearchHit>> {
    rows.iter()
        .map(|r| {
            let conv = conv_id(r.text("conv")?)?;
            let row = message_row(r, "", tenant, &conv)?;
            let cursor = SearchCursor {
                created_at: row.created_at,
                cid: r.int("cid")?,
                pos: row.pos,
            };
            Ok(SearchHit { row, cursor })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(cid: i64, conv: &str, parent: Option<&str>, standing: Standing) -> Entry {
        let id = |c: &str| ConvId::new(c).expect("id");
        Entry {
            cid,
            conv: id(conv),
            parent: parent.map(id),
            standing,
        }
    }

    #[test]
    fn threads_follow_every_parent_above() {
        let me = AccountId::new("me").expect("id");
        let left = Standing::Out(Some(MemberStatus::Left));
        let mut all = vec![
            entry(1, "g", None, Standing::Active),
            entry(2, "t", Some("g"), Standing::Active),
            entry(3, "tt", Some("t"), Standing::Active),
            entry(4, "gone", None, left),
            entry(5, "orphan", Some("nowhere"), Standing::Active),
            entry(6, "under-gone", Some("gone"), Standing::Active),
        ];
        let mut got = readable(&all, &me, None);
        got.sort_unstable();
        assert_eq!(got, [1, 2, 3]);
        assert_eq!(
            readable(&all, &me, Some(&ConvId::new("t").expect("id"))),
            [2]
        );
        // Leaving the group closes its thread and the thread's own thread.
        all[0].standing = Standing::Out(Some(MemberStatus::Banned));
        assert!(readable(&all, &me, None).is_empty());
    }

    #[test]
    fn cursor_round_trips_and_refuses_other_text() {
        let c = SearchCursor {
            created_at: 1_700_000_000_000,
            cid: 7,
            pos: 42,
        };
        assert_eq!(SearchCursor::decode(&c.encode()), Some(c));
        for bad in ["", "s1.", "s1.1.2", "s1.1.2.3.4", "s2.1.2.3", "s1.x.2.3"] {
            assert_eq!(SearchCursor::decode(bad), None, "{bad}");
        }
    }
}
