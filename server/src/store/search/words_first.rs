//! Postgres: a query of whole words with a prefix last ("news the") is read by its words
//! alone when they are rare where the account reads and the prefix is common, and each entry
//! read is then checked against the whole query (docs/SEARCH.md, "Cost"). GIN gathers a
//! prefix's every entry before it ANDs them with a word's: a 3-letter prefix in 15% of ten
//! million messages is 1.5 million entries, ~100 ms, for the few messages the word is in.
//! The planner's estimates of both parts choose, before the search is planned.

use confab_core::search::Query;
use sqlx::PgConnection;

use crate::store::Result;

/// Estimated readable entries of the words above which the words are not read first: reading
/// and checking that many costs more than gathering the prefix, and for common words the
/// planner walks the newest entries instead (6 ms where words first took 340 ms: "mab aab",
/// 58,000 readable entries of "mab", ten million messages).
pub const WORDS_MAX: f64 = 5_000.0;

/// How many times the words' entries the prefix's must be for the words to be read first.
pub const PREFIX_OVER_WORDS: f64 = 50.0;

/// Both parts' entries among the readable conversations, as the planner estimates them
/// (`confab_search_estimate`, migration 0043).
pub(crate) const ESTIMATES: &str =
    "SELECT confab_search_estimate($1, $3) AS words, confab_search_estimate($2, $3) AS prefix";

/// The planner's estimates of a query's two parts among the readable conversations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimates {
    pub words: f64,
    pub prefix: f64,
}

impl Estimates {
    /// Whether the words are read first.
    pub fn words_first(&self) -> bool {
        self.words <= WORDS_MAX && self.words * PREFIX_OVER_WORDS < self.prefix
    }
}

/// What a search reads from the index, and what each entry it reads must also match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// The tsquery the index is read with.
    pub index: String,
    /// The whole query, checked on each entry's own terms when `index` is only its words.
    pub check: Option<String>,
}

/// How `query` is read among the conversations `cids`.
pub async fn read(db: &mut PgConnection, query: &Query, cids: &[i64]) -> Result<Read> {
    let whole = query.to_tsquery();
    let Some((words, prefix)) = query.words_and_prefix_tsquery() else {
        return Ok(Read {
            index: whole,
            check: None,
        });
    };
    let (w, p): (Option<f64>, Option<f64>) = sqlx::query_as(ESTIMATES)
        .bind(&words)
        .bind(&prefix)
        .bind(cids)
        .fetch_one(db)
        .await?;
    let estimates = Estimates {
        words: w.unwrap_or(f64::INFINITY),
        prefix: p.unwrap_or(0.0),
    };
    Ok(match estimates.words_first() {
        true => Read {
            index: words,
            check: Some(whole),
        },
        false => Read {
            index: whole,
            check: None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_first_only_for_rare_words_and_a_much_commoner_prefix() {
        let e = |words, prefix| Estimates { words, prefix }.words_first();
        assert!(e(40.0, 150_000.0));
        assert!(e(WORDS_MAX, WORDS_MAX * PREFIX_OVER_WORDS + 1.0));
        // Common words: the planner's walk of the newest entries reads less.
        assert!(!e(WORDS_MAX + 1.0, 1.0e9));
        // A prefix not much commoner than the words: the whole query reads little anyway.
        assert!(!e(100.0, 100.0 * PREFIX_OVER_WORDS));
        assert!(!e(100.0, 10.0));
    }
}
