//! Postgres: a query of whole words with a prefix last ("news the") is read by its words
//! alone when they are rare where the account reads and the prefix is common, and each entry
//! read is then checked against the whole query (docs/SEARCH.md, "Cost"). GIN gathers a
//! prefix's every entry before it ANDs them with a word's: a 3-letter prefix in 15% of ten
//! million messages is 1.5 million entries, ~100 ms, for the few messages the word is in.
//! The planner's estimates of both parts (`windows::estimate`) choose, before the search is
//! planned.

use confab_core::search::Query;

/// Estimated readable entries of the words above which the words are not read first: reading
/// and checking that many costs more than gathering the prefix (words first took 340 ms for
/// "mab aab", 58,000 readable entries of "mab", ten million messages), and such a query's
/// page is read in windows of time anyway.
pub const WORDS_MAX: f64 = 5_000.0;

/// How many times the words' entries the prefix's must be for the words to be read first.
pub const PREFIX_OVER_WORDS: f64 = 50.0;

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

/// How the GIN index reads `query`, from the estimates of its words and prefix
/// (`windows::estimate`; none for a query without both).
pub fn read(query: &Query, parts: Option<Estimates>) -> Read {
    let whole = query.to_tsquery();
    match (query.words_and_prefix_tsquery(), parts) {
        (Some((words, _)), Some(e)) if e.words_first() => Read {
            index: words,
            check: Some(whole),
        },
        _ => Read {
            index: whole,
            check: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_first_only_for_rare_words_and_a_much_commoner_prefix() {
        let e = |words, prefix| Estimates { words, prefix }.words_first();
        assert!(e(40.0, 150_000.0));
        assert!(e(WORDS_MAX, WORDS_MAX * PREFIX_OVER_WORDS + 1.0));
        // Common words: checking each of their entries costs more than the prefix.
        assert!(!e(WORDS_MAX + 1.0, 1.0e9));
        // A prefix not much commoner than the words: the whole query reads little anyway.
        assert!(!e(100.0, 100.0 * PREFIX_OVER_WORDS));
        assert!(!e(100.0, 10.0));
    }
}
