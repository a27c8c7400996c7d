//! Search terms: how message text and queries become the words an index holds
//! (docs/SEARCH.md). The server's indexes and a device's index use this one function, so a
//! query folds exactly as the text it should find.
//!
//! A term is a word of Unicode word segmentation (UAX #29), decomposed (NFD) with its
//! combining marks dropped, lowercased, and split at anything that is not a letter or a
//! digit: "Café" and "cafe" are the term `cafe`, "l'été" the terms `l` and `ete`. Terms
//! hold letters and digits only, so no index's query syntax can appear in one.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;

/// Characters a term keeps; a longer word is indexed and matched by its first ones.
pub const TERM_CHARS_MAX: usize = 64;
/// Characters of a query (the whole text as sent).
pub const QUERY_CHARS_MAX: usize = 1_000;
/// Terms of a query.
pub const QUERY_TERMS_MAX: usize = 16;
/// The shortest last term matched as a prefix (the word being typed); a shorter one
/// matches whole words only, so one letter never reads a large part of an index. The
/// device's index and the server's follow it alike.
pub const PREFIX_MIN_CHARS: usize = 2;

/// Why a query cannot be searched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("a query has at most {QUERY_CHARS_MAX} characters, this one {0}")]
    TooLong(usize),
    #[error("a query has at most {QUERY_TERMS_MAX} terms, this one {0}")]
    TooManyTerms(usize),
    #[error("the query has no letters or digits to search for")]
    Empty,
}

impl QueryError {
    /// The error's code in REST and on the wire.
    pub fn code(&self) -> &'static str {
        match self {
            QueryError::TooLong(_) => "query_too_long",
            QueryError::TooManyTerms(_) => "query_too_many_terms",
            QueryError::Empty => "query_empty",
        }
    }
}

/// The terms of `text` in order, repeats included.
pub fn terms(text: &str) -> Vec<String> {
    if text.is_ascii() {
        return ascii_terms(text);
    }
    let mut out = Vec::new();
    for word in text.unicode_words() {
        if word.is_ascii() {
            out.extend(ascii_terms(word));
            continue;
        }
        let folded: String = word
            .nfd()
            .filter(|c| !is_combining_mark(*c))
            .flat_map(char::to_lowercase)
            .collect();
        out.extend(
            folded
                .split(|c: char| !c.is_alphanumeric())
                .filter(|t| !t.is_empty())
                .map(|t| t.chars().take(TERM_CHARS_MAX).collect::<String>()),
        );
    }
    out
}

/// The terms of ASCII text: its runs of ASCII letters and digits, lowercased. The same as
/// the segmentation's (no word boundary falls inside such a run, UAX #29 WB5 and WB8–WB10,
/// and the split at other characters parts what segmentation joined, as in "can't" or
/// "3.14"), without its tables or the normalization: most chat text is ASCII, and both the
/// server's commit and a device's index upkeep pay for every message's terms.
fn ascii_terms(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(|t| t[..t.len().min(TERM_CHARS_MAX)].to_ascii_lowercase())
        .collect()
}

/// The distinct terms of a message's searchable text, space-separated (what the server's
/// indexes are given), or `None` when it has none.
pub fn index_text<'a>(parts: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out: Vec<String> = Vec::new();
    for part in parts {
        for t in terms(part) {
            if seen.insert(t.clone()) {
                out.push(t);
            }
        }
    }
    (!out.is_empty()).then(|| out.join(" "))
}

/// A term quoted as a `tsquery` lexeme: `'it''s'`.
fn tsquery_lexeme(term: &str) -> String {
    format!("'{}'", term.replace('\\', "\\\\").replace('\'', "''"))
}

/// A parsed query: every term must match; the last one as a prefix (the word being typed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub terms: Vec<String>,
}

impl Query {
    pub fn parse(text: &str) -> Result<Self, QueryError> {
        let chars = text.chars().count();
        if chars > QUERY_CHARS_MAX {
            return Err(QueryError::TooLong(chars));
        }
        let mut terms = terms(text);
        // A repeated term adds nothing to an AND; the last stays last (it is the prefix).
        let mut seen = std::collections::BTreeSet::new();
        terms.reverse();
        terms.retain(|t| seen.insert(t.clone()));
        terms.reverse();
        match terms.len() {
            0 => Err(QueryError::Empty),
            n if n > QUERY_TERMS_MAX => Err(QueryError::TooManyTerms(n)),
            _ => Ok(Query { terms }),
        }
    }

    /// Whether the last term matches as a prefix ([`PREFIX_MIN_CHARS`]).
    pub fn last_is_prefix(&self) -> bool {
        self.terms
            .last()
            .is_some_and(|t| t.chars().count() >= PREFIX_MIN_CHARS)
    }

    /// The query as a Postgres `tsquery` literal (cast with `::tsquery`, which takes
    /// lexemes as written): `'a' & 'bc':*`, the last a prefix only as [`Self::last_is_prefix`]
    /// says.
    pub fn to_tsquery(&self) -> String {
        let last = self.terms.len() - 1;
        self.terms
            .iter()
            .enumerate()
            .map(|(i, t)| match i == last && self.last_is_prefix() {
                true => tsquery_lexeme(t) + ":*",
                false => tsquery_lexeme(t),
            })
            .collect::<Vec<_>>()
            .join(" & ")
    }

    /// A query of whole words and a prefix last, split in two `tsquery` literals: its whole
    /// words (`'a' & 'b'`) and its prefix (`'cd':*`). `None` when there is no such split
    /// (one term, or a last term matched whole).
    pub fn words_and_prefix_tsquery(&self) -> Option<(String, String)> {
        let (prefix, words) = self.terms.split_last()?;
        if words.is_empty() || !self.last_is_prefix() {
            return None;
        }
        let words = words
            .iter()
            .map(|t| tsquery_lexeme(t))
            .collect::<Vec<_>>()
            .join(" & ");
        Some((words, tsquery_lexeme(prefix) + ":*"))
    }

    /// The query as an SQLite FTS5 `MATCH` expression: every term a quoted string, the last
    /// with a prefix star as [`Self::last_is_prefix`] says: `"a" "bc"*`.
    pub fn to_fts5(&self) -> String {
        let last = self.terms.len() - 1;
        self.terms
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let quoted = format!("\"{}\"", t.replace('"', "\"\""));
                if i == last && self.last_is_prefix() {
                    quoted + "*"
                } else {
                    quoted
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_case_and_diacritics() {
        assert_eq!(terms("Café CAFÉ cafe"), ["cafe", "cafe", "cafe"]);
        assert_eq!(
            terms("l'été, Ørsted Straße"),
            ["l", "ete", "ørsted", "straße"]
        );
        assert_eq!(terms("naïve résumé"), ["naive", "resume"]);
    }

    #[test]
    fn fts_syntax_is_only_words() {
        let q = Query::parse("\"a\" * NEAR(b c) x:y AND OR (d) -e ^f {g} 'h'").expect("terms");
        for t in &q.terms {
            assert!(t.chars().all(char::is_alphanumeric), "{t}");
        }
        assert_eq!(
            q.terms,
            ["a", "near", "b", "c", "x", "y", "and", "or", "d", "e", "f", "g", "h"]
        );
        // One letter last matches a whole word only.
        assert!(q.to_fts5().ends_with(" \"h\""));
        assert!(q.to_tsquery().ends_with(" & 'h'"));
        let q = Query::parse("x:y hé").expect("terms");
        assert_eq!(q.to_fts5(), "\"x\" \"y\" \"he\"*");
        assert_eq!(q.to_tsquery(), "'x' & 'y' & 'he':*");
        assert_eq!(
            q.words_and_prefix_tsquery(),
            Some(("'x' & 'y'".to_owned(), "'he':*".to_owned()))
        );
        // One term, or a last term too short to be a prefix: nothing to split.
        for whole in ["he", "x:y h"] {
            let q = Query::parse(whole).expect("terms");
            assert_eq!(q.words_and_prefix_tsquery(), None, "{whole}");
        }
        assert_eq!(Query::parse("\" * : ( ) ''"), Err(QueryError::Empty));
    }

    /// The segmentation's terms, without the ASCII path: what `ascii_terms` must equal.
    fn segmented_terms(text: &str) -> Vec<String> {
        text.unicode_words()
            .flat_map(|word| {
                word.nfd()
                    .filter(|c| !is_combining_mark(*c))
                    .flat_map(char::to_lowercase)
                    .collect::<String>()
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|t| !t.is_empty())
                    .map(|t| t.chars().take(TERM_CHARS_MAX).collect::<String>())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn ascii_text_is_segmented_as_unicode_text() {
        let tricky = "can't 3.14 1,000.5 foo_bar a:b x.y.z e-mail A'B'C __init__ \r\n\t \
                      v1.2.3-rc1 @user #tag http://ex.am/p?q=1&r=2 12:30 $5 a.b.";
        assert_eq!(ascii_terms(tricky), segmented_terms(tricky));
        assert_eq!(terms(tricky), segmented_terms(tricky));
        let long = format!("{}.{} z", "Ab".repeat(40), "9".repeat(70));
        assert_eq!(terms(&long), segmented_terms(&long));
    }

    proptest::proptest! {
        #[test]
        fn ascii_terms_match_the_segmentation(text in "[\\x00-\\x7f]{0,120}") {
            proptest::prop_assert_eq!(ascii_terms(&text), segmented_terms(&text));
        }

        #[test]
        fn mixed_text_matches_the_segmentation(
            text in "([a-zA-Z0-9 .,:;'_@#-]|é|É|ß|ø|ı|İ|日本|Ⅻ|١٢|ﬁ){0,60}"
        ) {
            proptest::prop_assert_eq!(terms(&text), segmented_terms(&text));
        }
    }

    #[test]
    fn bounds() {
        let long = "a".repeat(10_000);
        assert_eq!(Query::parse(&long), Err(QueryError::TooLong(10_000)));
        let many = (0..20)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(Query::parse(&many), Err(QueryError::TooManyTerms(20)));
        let word = "x".repeat(100);
        assert_eq!(terms(&word), ["x".repeat(TERM_CHARS_MAX)]);
    }

    #[test]
    fn last_term_stays_last() {
        let q = Query::parse("ab cd ab").expect("terms");
        assert_eq!(q.terms, ["cd", "ab"]);
        assert_eq!(index_text(["b a b", "c"]).as_deref(), Some("b a c"));
        assert_eq!(index_text(["!!"]), None);
    }
}
