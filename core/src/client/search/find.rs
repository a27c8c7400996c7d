//! A query against the device's index, as pure functions of what the store answered: the
//! postings each term reads, the messages every term matches (filtered and ordered from the
//! postings alone), the page, and each hit with its highlighted snippets.

use std::collections::{BTreeSet, HashMap};

use unicode_segmentation::UnicodeSegmentation;

use super::super::ask::Read;
use super::super::records::{posting_prefix, uncbor, POSTINGS_PREFIX};
use super::dict::{parse_place, Dictionary};
use super::index::{IndexRecord, Posting};
use super::{SearchError, SearchHit, SearchOptions, SearchSource, Snippet, SnippetPart};
use crate::ids::{DocId, DocTarget, MessageId};
use crate::search::{terms, Query};

/// Results of a page when the caller names none.
pub const LIMIT_DEFAULT: usize = 50;
/// Results of a page at most (the server's `limit` bound).
pub const LIMIT_MAX: usize = 200;
/// Characters a snippet shows before its first highlight, and in all.
const SNIPPET_LEAD: usize = 40;
const SNIPPET_CHARS: usize = 160;

pub use crate::search::PREFIX_MIN_CHARS;

/// Whether a word (a term) matches term `i` of `query`.
pub(crate) fn term_matches(query: &Query, i: usize, word: &str) -> bool {
    let t = query.terms[i].as_str();
    word == t || (i + 1 == query.terms.len() && query.last_is_prefix() && word.starts_with(t))
}

/// The store reads of a query that reads every posting of its terms (the last one's as a
/// prefix): the search that must know every message it matches (`all`). Keys alone unless
/// a filter reads the postings' values.
pub(crate) fn posting_reads(query: &Query, options: &SearchOptions) -> Vec<Read> {
    let last = query.terms.len() - 1;
    let prefix = query.last_is_prefix();
    let values = options.filters_postings();
    query
        .terms
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let prefix = posting_prefix(t, prefix && i == last);
            if values {
                Read::Prefix(prefix)
            } else {
                Read::PageKeys {
                    from: prefix.clone(),
                    prefix,
                    limit: u32::MAX,
                }
            }
        })
        .collect()
}

/// Where a match sorts: whole-word matches of the last term first, then by place in the
/// postings (newest first, then bucket number and message: total, so a cursor is a
/// position in it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Rank {
    pub(crate) prefix_only: bool,
    pub(crate) place: String,
}

impl Rank {
    pub(crate) fn encode(&self) -> String {
        format!("d2.{}.{}", u8::from(self.prefix_only), self.place)
    }

    pub(crate) fn decode(text: &str) -> Option<Rank> {
        let (prefix_only, place) = text.strip_prefix("d2.")?.split_once('.')?;
        let prefix_only = match prefix_only {
            "0" => false,
            "1" => true,
            _ => return None,
        };
        parse_place(place)?;
        Some(Rank {
            prefix_only,
            place: place.to_owned(),
        })
    }
}

/// A message every term matches, as its postings tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) rank: Rank,
    pub(crate) doc: DocId,
    pub(crate) message: MessageId,
    /// The posting keys read for it (dropped if its record is gone).
    pub(crate) keys: Vec<String>,
}

/// A posting read back: its term and place, and the candidate it makes when it passes
/// `options`' filters (`None`: it does not, or it does not parse).
pub(crate) fn posting_candidate(
    dict: &Dictionary,
    options: &SearchOptions,
    place: &str,
    value: &[u8],
    prefix_only: bool,
) -> Option<Candidate> {
    let (time, number, message) = parse_place(place)?;
    let doc = dict.doc(number)?;
    // Read as keys alone (an empty value) unless a filter needs the value.
    let posting_passes = !options.filters_postings()
        || uncbor::<Posting>(value).is_ok_and(|p| passes_posting(options, &p));
    (posting_passes && passes_place(options, doc, time)).then(|| Candidate {
        rank: Rank {
            prefix_only,
            place: place.to_owned(),
        },
        doc: doc.clone(),
        message,
        keys: Vec::new(),
    })
}

/// The messages every term of `query` matches among `entries` (the answer to
/// `posting_reads`) that pass `options`' filters, in rank order.
pub(crate) fn candidates(
    dict: &Dictionary,
    query: &Query,
    options: &SearchOptions,
    entries: &[(String, Vec<u8>)],
) -> Vec<Candidate> {
    let last = query.terms.len() - 1;
    let mut per_term: Vec<BTreeSet<&str>> = vec![BTreeSet::new(); query.terms.len()];
    let mut exact: BTreeSet<&str> = BTreeSet::new();
    let mut found: HashMap<&str, (&[u8], Vec<String>)> = HashMap::new();
    for (key, value) in entries {
        let Some((term, at)) = key
            .strip_prefix(POSTINGS_PREFIX)
            .and_then(|rest| rest.split_once('/'))
        else {
            continue;
        };
        let mut any = false;
        for (i, set) in per_term.iter_mut().enumerate() {
            if term_matches(query, i, term) {
                set.insert(at);
                any = true;
            }
        }
        if !any {
            continue;
        }
        if term == query.terms[last] {
            exact.insert(at);
        }
        let slot = found.entry(at).or_insert((value, Vec::new()));
        slot.1.push(key.clone());
    }
    let Some(smallest) = per_term.iter().min_by_key(|s| s.len()) else {
        return Vec::new();
    };
    let mut out: Vec<Candidate> = smallest
        .iter()
        .filter(|at| per_term.iter().all(|s| s.contains(*at)))
        .filter_map(|at| {
            let (value, keys) = found.get(at)?;
            let mut c = posting_candidate(dict, options, at, value, !exact.contains(at))?;
            c.keys = keys.clone();
            Some(c)
        })
        .collect();
    out.sort_by(|a, b| a.rank.cmp(&b.rank));
    out
}

/// Whether a posting of bucket `doc` at `time` passes the filters its key tells.
fn passes_place(options: &SearchOptions, doc: &DocId, time: i64) -> bool {
    let DocTarget::Msgs(conv, _) = doc.target() else {
        return false;
    };
    options.conv.as_ref().is_none_or(|c| c == conv)
        && options.since.is_none_or(|s| time >= s)
        && options.until.is_none_or(|u| time < u)
}

/// Whether a posting's value (kind and author) passes the filters
/// (`SearchOptions::filters_postings`).
fn passes_posting(options: &SearchOptions, Posting(kind, author): &Posting) -> bool {
    options.author.as_ref().is_none_or(|a| a == author)
        && options.kind.is_none_or(|k| k == *kind)
        && (!options.has_attachment || kind.is_media())
}

/// The page after `after` of `all` (in rank order): at most `limit`, and the cursor of the
/// next page when more follow.
pub(crate) fn page(
    all: Vec<Candidate>,
    after: Option<&Rank>,
    limit: usize,
) -> (Vec<Candidate>, Option<String>) {
    let mut rest: Vec<Candidate> = all
        .into_iter()
        .filter(|c| after.is_none_or(|a| c.rank > *a))
        .collect();
    let more = rest.len() > limit;
    rest.truncate(limit);
    let next = more.then(|| rest.last().map(|c| c.rank.encode())).flatten();
    (rest, next)
}

/// The options' page size and position, checked.
pub(crate) fn paging(options: &SearchOptions) -> Result<(usize, Option<Rank>), SearchError> {
    let limit = options.limit.unwrap_or(LIMIT_DEFAULT);
    if !(1..=LIMIT_MAX).contains(&limit) {
        return Err(SearchError::Limit(limit));
    }
    let after = options
        .cursor
        .as_deref()
        .map(|c| Rank::decode(c).ok_or(SearchError::Cursor))
        .transpose()?;
    Ok((limit, after))
}

/// A local hit: the candidate with its record's text and snippets.
pub(crate) fn local_hit(c: &Candidate, record: IndexRecord, query: &Query) -> Option<SearchHit> {
    let DocTarget::Msgs(conv, bucket) = c.doc.target() else {
        return None;
    };
    Some(SearchHit {
        source: SearchSource::Device,
        conv: conv.clone(),
        message: c.message.clone(),
        bucket: Some(*bucket),
        snippets: snippets(&record.body, record.caption.as_deref(), query),
        author: record.author,
        kind: record.kind,
        created_at: record.created_at,
        body: record.body,
        caption: record.caption,
    })
}

/// The snippets of a message's body and caption: each around its first matching word.
pub fn snippets(body: &str, caption: Option<&str>, query: &Query) -> Vec<Snippet> {
    [Some(body), caption]
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, text)| snippet(text, query, i == 1))
        .collect()
}

/// Whether a word of a text matches a term of the query (the last as a prefix).
fn word_matches(word: &str, query: &Query) -> bool {
    terms(word)
        .iter()
        .any(|w| (0..query.terms.len()).any(|i| term_matches(query, i, w)))
}

fn snippet(text: &str, query: &Query, caption: bool) -> Option<Snippet> {
    let words: Vec<&str> = text.split_word_bounds().collect();
    let hits: Vec<bool> = words.iter().map(|w| word_matches(w, query)).collect();
    let first = hits.iter().position(|h| *h)?;
    let mut start = first;
    let mut lead = 0;
    while start > 0 && lead + words[start - 1].chars().count() <= SNIPPET_LEAD {
        start -= 1;
        lead += words[start].chars().count();
    }
    let mut end = start;
    let mut shown = 0;
    while end < words.len() && (end <= first || shown + words[end].chars().count() <= SNIPPET_CHARS)
    {
        shown += words[end].chars().count();
        end += 1;
    }
    let mut parts: Vec<SnippetPart> = Vec::new();
    for i in start..end {
        match parts.last_mut() {
            Some(p) if p.hit == hits[i] && !hits[i] => p.text.push_str(words[i]),
            _ => parts.push(SnippetPart {
                text: words[i].to_owned(),
                hit: hits[i],
            }),
        }
    }
    Some(Snippet {
        caption,
        parts,
        cut_start: start > 0,
        cut_end: end < words.len(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn snippets_highlight_folded_words_around_the_first() {
        let q = Query::parse("cafe to").unwrap();
        let s = snippet("Meet me at the Café tomorrow, café!", &q, false).unwrap();
        let hits: Vec<&str> = s
            .parts
            .iter()
            .filter(|p| p.hit)
            .map(|p| p.text.as_str())
            .collect();
        assert_eq!(hits, ["Café", "tomorrow", "café"]);
        assert!(!s.cut_start && !s.cut_end);
        let long = format!("{} needle {}", "word ".repeat(100), "tail ".repeat(100));
        let s = snippet(&long, &Query::parse("needle").unwrap(), false).unwrap();
        let text: String = s.parts.iter().map(|p| p.text.as_str()).collect();
        assert!(s.cut_start && s.cut_end && text.chars().count() <= SNIPPET_CHARS + 10);
        assert!(snippet("nothing here", &q, false).is_none());
    }

    #[test]
    fn cursors_round_trip_and_refuse_junk() {
        let r = Rank {
            prefix_only: true,
            place: super::super::dict::place(1_700_000_000_000, 3, &MessageId::new("m-1").unwrap()),
        };
        assert_eq!(Rank::decode(&r.encode()), Some(r));
        for junk in [
            "",
            "d2.",
            "d2.2.00000000/1/a",
            "d2.0.0000000/1/a",
            "d2.0.00000000/x/a",
            "d2.0.00000000/1",
            "d1.0.00000000/1/a",
        ] {
            assert_eq!(Rank::decode(junk), None, "{junk}");
        }
    }
}
