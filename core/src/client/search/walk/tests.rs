//! The walk against a store in memory: exact results, in order, over every page, and a bound
//! on what two words never together read.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use super::super::super::ask::Read;
use super::super::super::records::{cbor, key_posting, key_term};
use super::super::dict::{place, Dictionary};
use super::super::find::{paging, Rank};
use super::super::index::Posting;
use super::super::SearchOptions;
use super::{Step, Walk, WALK_READ_MAX};
use crate::ids::{AccountId, ConvId, DocId, MessageId, TenantId};
use crate::model::message::MessageKind;
use crate::search::Query;

/// A store's `sx/p/` entries: message `n` (newer as `n` grows) holds the words `words(n)`.
fn store(messages: usize, words: impl Fn(usize) -> Vec<&'static str>) -> (Dictionary, Store) {
    store_at(
        (0..messages)
            .map(|n| (1_700_000_000_000 + n as i64, words(n)))
            .collect(),
    )
}

/// A store's `sx/p/` entries: message `n` was sent at `messages[n].0` and holds its words.
fn store_at(messages: Vec<(i64, Vec<&'static str>)>) -> (Dictionary, Store) {
    store_with(messages, |_| {
        Posting(MessageKind::Text, AccountId::new("ann").unwrap())
    })
}

/// `store_at`, message `n`'s kind and author `posting(n)`.
fn store_with(
    messages: Vec<(i64, Vec<&'static str>)>,
    posting: impl Fn(usize) -> Posting,
) -> (Dictionary, Store) {
    let mut dict = Dictionary::fresh();
    let doc = DocId::msgs(
        &TenantId::new("acme").unwrap(),
        &ConvId::new("g").unwrap(),
        1,
    );
    let number = dict.number_for(&doc, &mut Vec::new());
    let mut entries = BTreeMap::new();
    for (n, (time, words)) in messages.into_iter().enumerate() {
        let value = cbor(&posting(n));
        let at = place(time, number, &id(n));
        for w in words {
            entries.insert(key_posting(w, &at), value.clone());
        }
    }
    (dict, Store { entries, loads: 0 })
}

fn id(n: usize) -> MessageId {
    MessageId::new(format!("m{n:06}")).unwrap()
}

struct Store {
    entries: BTreeMap<String, Vec<u8>>,
    loads: usize,
}

impl Store {
    /// The dictionary's entries (`sx/w/<term>`) of every word `history` holds.
    fn add_dictionary(&mut self, history: &[(i64, Vec<&'static str>)]) {
        for (_, words) in history {
            for w in words {
                self.entries.insert(key_term(w), Vec::new());
            }
        }
    }

    fn answer(&mut self, reads: &[Read]) -> Vec<(String, Vec<u8>)> {
        self.loads += 1;
        let mut out = Vec::new();
        for read in reads {
            let (from, prefix, limit, values) = match read {
                Read::Key(k) => (k.as_str(), k.as_str(), 1, true),
                Read::Prefix(p) => (p.as_str(), p.as_str(), usize::MAX, true),
                Read::Page {
                    prefix,
                    from,
                    limit,
                } => (from.as_str(), prefix.as_str(), *limit as usize, true),
                Read::PageKeys {
                    prefix,
                    from,
                    limit,
                } => (from.as_str(), prefix.as_str(), *limit as usize, false),
            };
            let found = self.entries.range(from.to_owned()..);
            let found = found.take_while(|(k, _)| k.starts_with(prefix)).take(limit);
            // Keys alone answer with empty values, as a host may: the walk must not need them.
            out.extend(found.filter(|(k, _)| read.covers(k)).map(|(k, v)| {
                let value = if values { v.clone() } else { Vec::new() };
                (k.clone(), value)
            }));
        }
        out
    }

    /// One page: its messages, next cursor and whether the walk stopped at its bound.
    fn page(
        &mut self,
        dict: &Dictionary,
        query: &str,
        options: &SearchOptions,
    ) -> (Vec<String>, Option<String>, bool) {
        let (limit, after) = paging(options).unwrap();
        let mut walk = Walk::new(Query::parse(query).unwrap(), options.clone(), limit, after);
        let mut reads = walk.first();
        loop {
            let entries = self.answer(&reads);
            match walk.answered(dict, &entries) {
                Step::Read(next) => reads = next,
                Step::Everything => panic!("a walk of whole words reads pages"),
                Step::Done => break,
            }
        }
        let mut next = None;
        if walk.found.len() > limit {
            walk.found.truncate(limit);
            next = walk.found.last().map(|c| c.rank.encode());
        }
        if walk.bounded {
            assert!(next.is_none(), "a bounded walk found less than a page");
            next = walk.bound_cursor();
        }
        let found = walk.found.iter().map(|c| c.message.to_string()).collect();
        (found, next, walk.bounded)
    }

    /// Every page, and how many stopped at the bound.
    fn all(&mut self, dict: &Dictionary, query: &str, limit: usize) -> (Vec<String>, usize) {
        let options = SearchOptions {
            limit: Some(limit),
            ..SearchOptions::default()
        };
        self.all_of(dict, query, options)
    }

    /// Every page of a search with `options`, and how many stopped at the bound.
    fn all_of(
        &mut self,
        dict: &Dictionary,
        query: &str,
        mut options: SearchOptions,
    ) -> (Vec<String>, usize) {
        let (mut found, mut bounded) = (Vec::new(), 0);
        loop {
            let (page, next, b) = self.page(dict, query, &options);
            found.extend(page);
            bounded += usize::from(b);
            match next {
                Some(n) => options.cursor = Some(n),
                None => return (found, bounded),
            }
        }
    }
}

#[test]
fn two_dense_words_seldom_together_page_exactly() {
    // "lolo" in every 3rd message, "jomi" in every 7th: together in every 21st. "kalo"
    // nearly everywhere, beside both.
    let words = |n: usize| {
        let mut w = vec!["kalo"];
        if n.is_multiple_of(3) {
            w.push("lolo");
        }
        if n.is_multiple_of(7) {
            w.push("jomi");
        }
        w
    };
    let messages = 20_000;
    let (dict, mut store) = store(messages, words);
    let both: Vec<String> = (0..messages)
        .rev()
        .filter(|n| n % 21 == 0)
        .map(|n| id(n).to_string())
        .collect();
    for query in ["lolo jomi", "jomi lolo", "kalo jomi lolo"] {
        for limit in [1, 20, 200] {
            let (found, bounded) = store.all(&dict, query, limit);
            assert_eq!(found, both, "{query}, limit {limit}");
            assert_eq!(bounded, 0);
        }
    }
    // A page of 20 reads few pages of postings, not one key per candidate.
    store.loads = 0;
    let (found, _, _) = store.page(&dict, "lolo jomi", &SearchOptions::default());
    assert_eq!(found.len(), 50);
    assert!(store.loads <= 12, "{} loads", store.loads);
}

#[test]
fn two_words_never_together_stop_at_the_bound() {
    let messages = WALK_READ_MAX * 2;
    let (dict, mut store) = store(messages, |n| vec![if n % 2 == 0 { "lolo" } else { "jomi" }]);
    let options = SearchOptions {
        limit: Some(20),
        ..SearchOptions::default()
    };
    let (found, next, bounded) = store.page(&dict, "lolo jomi", &options);
    assert!(found.is_empty() && bounded);
    assert!(store.loads <= 40, "{} loads", store.loads);
    let cursor = Rank::decode(next.as_deref().unwrap()).unwrap();
    assert!(!cursor.prefix_only);
    // The pages after it go on from there, and end.
    let (found, pages) = store.all(&dict, "lolo jomi", 20);
    assert!(found.is_empty());
    assert!((1..=4).contains(&pages), "{pages} bounded pages");
}

/// xorshift64*: random data from a proptest seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) % n.max(1)
    }
}

const WORDS: [&str; 4] = ["lolo", "jomi", "kalo", "miru"];

/// Messages whose times jump, repeat and crawl, and whose words' densities change along
/// the history (so a page sized by a density read earlier falls short or overshoots).
fn random_history(seed: u64, messages: usize) -> Vec<(i64, Vec<&'static str>)> {
    random_history_of(seed, messages, &WORDS)
}

/// `random_history` over `words`.
fn random_history_of(
    seed: u64,
    messages: usize,
    words: &[&'static str],
) -> Vec<(i64, Vec<&'static str>)> {
    let mut rng = Rng(seed | 1);
    let mut time = 1_700_000_000_000i64;
    let mut odds = vec![0u64; words.len()];
    let mut out = Vec::with_capacity(messages);
    for n in 0..messages {
        if n % 400 == 0 {
            // Per mille, per word, for the next stretch: absent to nearly everywhere.
            for o in &mut odds {
                *o = [0, 5, 20, 80, 300, 900][rng.below(6) as usize];
            }
        }
        time += match rng.below(4) {
            0 => 0,
            1 => 1,
            2 => rng.below(1_000) as i64,
            _ => rng.below(5_000_000) as i64,
        };
        let words = (0..words.len())
            .filter(|w| rng.below(1_000) < odds[*w])
            .map(|w| words[w])
            .collect();
        out.push((time, words));
    }
    out
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 48, ..Default::default() })]

    /// Whatever the densities, paging every page of a query finds exactly the messages
    /// holding all its words, newest first: the plan sizes reads, never what is found.
    #[test]
    fn pages_find_what_a_scan_finds(
        seed in proptest::prelude::any::<u64>(),
        messages in 1usize..4_000,
        terms in 2usize..=3,
        limit in proptest::sample::select(vec![1usize, 7, 20, 60]),
    ) {
        let history = random_history(seed, messages);
        let query: Vec<&str> = WORDS[..terms].to_vec();
        let mut scan: Vec<(String, String)> = history
            .iter()
            .enumerate()
            .filter(|(_, (_, words))| query.iter().all(|q| words.contains(q)))
            .map(|(n, (time, _))| (place(*time, 0, &id(n)), id(n).to_string()))
            .collect();
        scan.sort();
        let expected: Vec<String> = scan.into_iter().map(|(_, m)| m).collect();
        let (dict, mut store) = store_at(history);
        for q in [query.join(" "), query.iter().rev().copied().collect::<Vec<_>>().join(" ")] {
            let (found, _) = store.all(&dict, &q, limit);
            proptest::prop_assert_eq!(&found, &expected, "{}, limit {}", q, limit);
        }
    }
}

/// What a scan of `history` finds for `query` (its last term a prefix) among the messages
/// `keep` passes: those holding every term whole first, then those holding the last only as
/// a prefix, each newest first.
fn scan_matches(
    history: &[(i64, Vec<&'static str>)],
    query: &str,
    keep: impl Fn(usize) -> bool,
) -> Vec<String> {
    let terms: Vec<&str> = query.split(' ').collect();
    let (last, rest) = terms.split_last().unwrap();
    let mut scan: Vec<(bool, String, String)> = history
        .iter()
        .enumerate()
        .filter(|(n, (_, words))| keep(*n) && rest.iter().all(|r| words.contains(r)))
        .filter_map(|(n, (time, words))| {
            let prefix_only = if words.contains(last) {
                false
            } else if words.iter().any(|w| w.starts_with(last)) {
                true
            } else {
                return None;
            };
            Some((prefix_only, place(*time, 0, &id(n)), id(n).to_string()))
        })
        .collect();
    scan.sort();
    scan.into_iter().map(|(_, _, m)| m).collect()
}

/// Words of which several start with the same letters: a query's last term as a prefix.
const PREFIXED: [&str; 6] = ["lolo", "jomi", "jomika", "jomilo", "jomine", "kalo"];

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 48, ..Default::default() })]

    /// With its last term a prefix, paging every page finds what a scan finds: messages
    /// holding every term whole first, then those holding the last only as a prefix,
    /// each newest first (however rare those are, however many pages the walk reads).
    #[test]
    fn prefix_pages_find_what_a_scan_finds(
        seed in proptest::prelude::any::<u64>(),
        messages in 1usize..4_000,
        limit in proptest::sample::select(vec![1usize, 7, 20, 60]),
        query in proptest::sample::select(vec!["lolo jomi", "kalo lolo jomi", "lolo jom"]),
    ) {
        let history = random_history_of(seed, messages, &PREFIXED);
        let expected = scan_matches(&history, query, |_| true);
        let (dict, mut store) = store_at(history.clone());
        store.add_dictionary(&history);
        let (found, _) = store.all(&dict, query, limit);
        proptest::prop_assert_eq!(&found, &expected, "{}, limit {}", query, limit);
    }
}

/// Message `n`'s kind and author in the filtered histories: authors and media that come and
/// go along the history.
fn mixed_posting(n: usize) -> Posting {
    let author = if n.is_multiple_of(3) { "bob" } else { "ann" };
    let kind = if n % 7 < 2 {
        MessageKind::Image
    } else {
        MessageKind::Text
    };
    Posting(kind, AccountId::new(author).unwrap())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 32, ..Default::default() })]

    /// With filters that read the postings' values (author, kind, attachments), paging
    /// finds exactly the messages a scan finds: the walk reads values where a filter needs
    /// them, and keys alone elsewhere (the store answers those with empty values).
    #[test]
    fn filtered_pages_find_what_a_scan_finds(
        seed in proptest::prelude::any::<u64>(),
        messages in 1usize..3_000,
        limit in proptest::sample::select(vec![1usize, 7, 20]),
        query in proptest::sample::select(vec!["lolo jomi", "jomi", "lolo jom"]),
        filter in 0usize..3,
    ) {
        let history = random_history_of(seed, messages, &PREFIXED);
        let options = SearchOptions {
            limit: Some(limit),
            author: (filter == 0).then(|| AccountId::new("bob").unwrap()),
            kind: (filter == 1).then_some(MessageKind::Text),
            has_attachment: filter == 2,
            ..SearchOptions::default()
        };
        let expected = scan_matches(&history, query, |n| {
            let Posting(kind, author) = mixed_posting(n);
            options.author.as_ref().is_none_or(|a| *a == author)
                && options.kind.is_none_or(|k| k == kind)
                && (!options.has_attachment || kind.is_media())
        });
        let (dict, mut store) = store_with(history.clone(), mixed_posting);
        store.add_dictionary(&history);
        let (found, _) = store.all_of(&dict, query, options);
        proptest::prop_assert_eq!(&found, &expected, "{}, limit {}, filter {}", query, limit, filter);
    }
}
