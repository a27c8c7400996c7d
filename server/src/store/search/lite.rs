//! SQLite's ways to a search page (docs/SEARCH.md, "Cost"): a walk of the newest entries,
//! an FTS5 read of every match, or an FTS5 read of the whole words with the last term's
//! prefix checked in the entry; a sample of the newest entries chooses between them.

use confab_core::search::Query;

use crate::store::columns::Cols;
use crate::store::Result;

/// SQLite, few matches: FTS5 finds them all (its rowid is `cid * 2^32 + pos`, migration
/// 0020), keeps those of readable conversations by their rowid (before the join, so a
/// match elsewhere costs no row read), then they are sorted. FTS5 reads every entry of a
/// prefix before its first match, so this costs the last term's matches in the tenant.
pub(crate) const SEARCH_LITE: &str = search_sql!(
    "FROM message_search JOIN messages m ON m.cid = (message_search.rowid >> 32) \
     AND m.pos = (message_search.rowid & 4294967295)",
    "message_search MATCH $2 \
     AND (message_search.rowid >> 32) IN (SELECT value FROM json_each($1))",
    "m.deleted = 0",
    "m"
);

/// SQLite, few matches of the whole words but many of the last term's prefix: FTS5 finds
/// the whole words (`$2`, no prefix) and the entry's terms are checked for the prefix
/// (`$12`, [`Patterns::last`]), so the prefix's matches cost nothing.
pub(crate) const SEARCH_WORDS_LITE: &str = search_sql!(
    "FROM message_search JOIN messages m ON m.cid = (message_search.rowid >> 32) \
     AND m.pos = (message_search.rowid & 4294967295) \
     JOIN message_search_time t \
     ON t.created_at = m.created_at AND t.cid = m.cid AND t.pos = m.pos",
    "message_search MATCH $2 \
     AND (message_search.rowid >> 32) IN (SELECT value FROM json_each($1)) \
     AND instr(' ' || t.terms || ' ', $12) > 0",
    "m.deleted = 0",
    "m"
);

/// SQLite, many matches: the entries newest first (migration 0026), each checked against
/// `$2`, a JSON array of patterns every one of which its ` terms ` must hold ([`Patterns`]).
pub(crate) const WALK_LITE: &str = search_sql!(
    "FROM message_search_time t JOIN messages m ON m.cid = t.cid AND m.pos = t.pos",
    "t.cid IN (SELECT value FROM json_each($1)) AND NOT EXISTS \
     (SELECT 1 FROM json_each($2) p WHERE instr(' ' || t.terms || ' ', p.value) = 0)",
    "m.deleted = 0",
    "t"
);

/// SQLite: the [`WALK_SAMPLE`] newest entries in the page's range (`$5..$9`: since, until,
/// the cursor), counted: all of them, those of readable conversations (`$1`), those that
/// are also matches (`$2`, all patterns), those whose terms hold the last term's prefix
/// (`$3`) and those that hold every whole word (`$4`) in any conversation.
pub(crate) const SAMPLE_LITE: &str = "\
    SELECT count(*) AS n, \
    coalesce(sum(t.cid IN (SELECT value FROM json_each($1))), 0) AS readable, \
    coalesce(sum(t.cid IN (SELECT value FROM json_each($1)) AND NOT EXISTS \
      (SELECT 1 FROM json_each($2) p WHERE instr(' ' || t.terms || ' ', p.value) = 0)), 0) AS hits, \
    coalesce(sum(instr(' ' || t.terms || ' ', $3) > 0), 0) AS last, \
    coalesce(sum(NOT EXISTS \
      (SELECT 1 FROM json_each($4) p WHERE instr(' ' || t.terms || ' ', p.value) = 0)), 0) AS words \
    FROM (SELECT cid, terms FROM message_search_time \
      WHERE created_at >= $5 AND created_at < $6 AND (created_at, cid, pos) < ($7, $8, $9) \
      ORDER BY created_at DESC, cid DESC, pos DESC LIMIT $10) t";

/// Entries the sample reads ([`SAMPLE_LITE`]): about as long as a sort of as many matches
/// or a walk past as many entries (a few ms), so a query pays it once at most over its
/// cheaper way's cost, and its counts tell that way (docs/SEARCH.md, "Cost").
pub(crate) const WALK_SAMPLE: i64 = 4_000;

/// A query's terms as [`WALK_LITE`] and [`SAMPLE_LITE`] check them in ` terms `: a whole
/// word (` a `) for each, a word's start (` a`) for the last, which matches as a prefix.
pub(crate) struct Patterns {
    /// Every term's, a JSON array.
    pub all: String,
    /// The whole words' (every term but the last), a JSON array.
    pub words: String,
    /// The last term's prefix.
    pub last: String,
}

impl Patterns {
    pub(crate) fn of(query: &Query) -> Self {
        let last = query.terms.len() - 1;
        let words: Vec<String> = query.terms[..last]
            .iter()
            .map(|t| format!(" {t} "))
            .collect();
        let last = format!(" {}", query.terms[last]);
        let mut all = words.clone();
        all.push(last.clone());
        Patterns {
            all: serde_json::to_string(&all).unwrap_or_default(),
            words: serde_json::to_string(&words).unwrap_or_default(),
            last,
        }
    }
}

/// How a SQLite search reads its page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Way {
    /// [`WALK_LITE`].
    Walk,
    /// [`SEARCH_LITE`].
    Matches,
    /// [`SEARCH_WORDS_LITE`].
    Words,
}

/// The counts of [`SAMPLE_LITE`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sample {
    pub n: f64,
    pub readable: f64,
    pub hits: f64,
    pub last: f64,
    pub words: f64,
}

/// Cost of a match FTS5 reads for a prefix (it merges them all before the first), and of
/// one for whole words (read one by one, a row read for a readable one), in entries a walk
/// passes in the same time (measured in docs/BENCHMARKS.md, "Search").
const PREFIX_MATCH_COST: f64 = 1.2;
const WORD_MATCH_COST: f64 = 1.0;

impl Sample {
    pub(crate) fn of<R: Cols>(row: &R) -> Result<Self> {
        let f = |c: &str| row.int(c).map(|v| v as f64);
        Ok(Sample {
            n: f("n")?,
            readable: f("readable")?,
            hits: f("hits")?,
            last: f("last")?,
            words: f("words")?,
        })
    }

    /// The cheapest way for a page of `limit` when the readable conversations hold
    /// `messages` and the query has `terms` terms: a walk passes about `limit / density`
    /// entries (the density of readable matches in the sample), a read from FTS5 costs the
    /// tenant's matches (the sample's share of them, scaled by the readable messages over
    /// the readable entries sampled).
    pub(crate) fn way(&self, limit: usize, messages: i64, terms: usize) -> Way {
        let limit = limit as f64;
        if self.n < WALK_SAMPLE as f64 || self.hits >= limit {
            return Way::Walk;
        }
        let scale = messages.max(1) as f64 / self.readable.max(1.0);
        let walk = (limit - self.hits) * self.n / self.hits.max(0.5);
        let matches = self.last.max(0.5) * scale * PREFIX_MATCH_COST;
        let words = match terms > 1 {
            true => self.words.max(0.5) * scale * WORD_MATCH_COST,
            false => f64::INFINITY,
        };
        if walk <= matches && walk <= words {
            Way::Walk
        } else if words < matches {
            Way::Words
        } else {
            Way::Matches
        }
    }
}

/// The query's whole words (every term but the last) as an FTS5 `MATCH` expression, as
/// `Query::to_fts5` quotes them: `"a" "b"`.
pub(crate) fn words_fts5(query: &Query) -> String {
    let last = query.terms.len() - 1;
    query.terms[..last]
        .iter()
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_chooses_the_cheaper_way() {
        let sample = |n, readable, hits, last, words| Sample {
            n,
            readable,
            hits,
            last,
            words,
        };
        // Fewer entries than a sample, or a page found in it: the walk.
        assert_eq!(
            sample(10.0, 5.0, 0.0, 0.0, 0.0).way(50, 1_000, 1),
            Way::Walk
        );
        assert_eq!(
            sample(4e3, 4e2, 60.0, 9e2, 4e3).way(50, 1_000_000, 1),
            Way::Walk
        );
        // A common prefix: 20 matches in 400 readable entries, a million readable messages.
        assert_eq!(
            sample(4e3, 4e2, 20.0, 2e2, 4e3).way(50, 1_000_000, 1),
            Way::Walk
        );
        // A rare one: none sampled.
        assert_eq!(
            sample(4e3, 4e2, 0.0, 0.0, 4e3).way(50, 1_000_000, 1),
            Way::Matches
        );
        // A rare word before a common prefix: FTS5 reads the word, the prefix is checked.
        assert_eq!(
            sample(4e3, 4e2, 0.0, 1.5e3, 1.0).way(50, 1_000_000, 2),
            Way::Words
        );
        // A common word before a rare prefix: FTS5 reads the prefix.
        assert_eq!(
            sample(4e3, 4e2, 0.0, 1.0, 1.5e3).way(50, 1_000_000, 2),
            Way::Matches
        );
    }

    #[test]
    fn patterns_mark_whole_words_and_the_last_prefix() {
        let q = Query::parse("Caf\u{e9} au l").expect("terms");
        let p = Patterns::of(&q);
        assert_eq!(p.all, r#"[" cafe "," au "," l"]"#);
        assert_eq!(p.words, r#"[" cafe "," au "]"#);
        assert_eq!(p.last, " l");
        let one = Patterns::of(&Query::parse("x").expect("terms"));
        assert_eq!((one.words.as_str(), one.last.as_str()), ("[]", " x"));
    }
}
