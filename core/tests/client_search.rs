//! The device's search index against a model: after any run of sends, edits and deletes
//! (over several buckets, with restarts), a search finds exactly the live messages whose
//! current text holds every term (the last as a prefix), whatever the paging; expiry takes
//! a bucket's entries along; results carry ranks and snippets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod hub_device;

use std::collections::{BTreeMap, BTreeSet};

use confab_core::client::host::carry_out_stored;
use confab_core::client::search::PREFIX_MIN_CHARS;
use confab_core::client::store::block_on_ready;
use confab_core::client::{
    ClientEngine, Intent, LocalStore, SearchOptions, SearchPage, SearchSource, DUE_NOW,
};
use confab_core::ids::{Bucket, ConvId, DocId, MessageId};
use confab_core::model::conversation::ConvKind;
use confab_core::model::message::NewMessage;
use confab_core::search::terms;
use hub_device::{config, tenant, Device, DAY, T0};
use proptest::prelude::*;

impl Device {
    fn create(&mut self, conv: &ConvId) {
        let create = Intent::CreateConversation {
            encrypted: false,
            conv: conv.clone(),
            kind: ConvKind::Group,
            title: Some("g".into()),
            members: Vec::new(),
            settings: None,
            parent: None,
        };
        self.peer.engine.intent(create, self.net.now).unwrap();
        self.pump();
    }

    fn send_text(&mut self, conv: &ConvId, id: &str, body: &str, at: i64) {
        let message = NewMessage::text(
            MessageId::new(id).unwrap(),
            self.peer.engine.config().account.clone(),
            body,
            at,
        );
        let send = Intent::Send {
            conv: conv.clone(),
            message,
        };
        self.peer.engine.intent(send, at).expect("allowed");
        self.pump();
    }

    fn edit(&mut self, conv: &ConvId, id: &str, at: i64, body: &str) {
        // Each edit stamps a new `edited_at` (an edit that keeps it is refused).
        self.net.now += 1;
        let edit = Intent::Edit {
            conv: conv.clone(),
            message: MessageId::new(id).unwrap(),
            bucket: Bucket::first(at.div_euclid(DAY)),
            body: body.into(),
        };
        self.peer
            .engine
            .intent(edit, self.net.now)
            .expect("allowed");
        self.pump();
    }

    fn delete(&mut self, conv: &ConvId, id: &str, at: i64) {
        let delete = Intent::Delete {
            conv: conv.clone(),
            message: MessageId::new(id).unwrap(),
            bucket: Bucket::first(at.div_euclid(DAY)),
        };
        self.peer
            .engine
            .intent(delete, self.net.now)
            .expect("allowed");
        self.pump();
    }

    /// Every page of a search, in order.
    fn search_all(&mut self, query: &str, options: &SearchOptions) -> Vec<SearchPage> {
        let mut pages = Vec::new();
        let mut options = options.clone();
        loop {
            self.peer.engine.search(query, &options).expect("a query");
            self.pump();
            let page = self.pages.pop().expect("answered");
            options.cursor = page.next_cursor.clone();
            pages.push(page);
            if options.cursor.is_none() {
                return pages;
            }
        }
    }

    fn found(&mut self, query: &str, options: &SearchOptions) -> Vec<String> {
        self.search_all(query, options)
            .into_iter()
            .flat_map(|p| p.hits)
            .map(|h| h.message.to_string())
            .collect()
    }

    fn restart(&mut self) {
        let store = std::mem::take(&mut self.peer.store);
        let mut engine = ClientEngine::restoring(config());
        carry_out_stored(&mut engine, &store).unwrap();
        self.peer.engine = engine;
        self.peer.store = store;
        self.net.subs.clear();
        let online = self.peer.online;
        self.peer.online = false;
        self.pump();
        if online {
            self.connect();
        }
    }

    fn index_keys(&self) -> Vec<String> {
        block_on_ready(LocalStore::scan(&self.peer.store, "sx/"))
            .unwrap()
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }
}

const WORDS: [&str; 8] = [
    "Café", "cafe", "tea", "team", "Straße", "naïve", "kiwi", "kiwis",
];

/// What the model says a query finds among live `texts`.
fn model(texts: &BTreeMap<String, String>, query: &str) -> BTreeSet<String> {
    let q = terms(query);
    let (last, rest) = q.split_last().unwrap();
    texts
        .iter()
        .filter(|(_, text)| {
            let words = terms(text);
            // A last term shorter than the prefix minimum matches whole words only.
            let prefix = last.chars().count() >= PREFIX_MIN_CHARS;
            rest.iter().all(|t| words.contains(t))
                && words
                    .iter()
                    .any(|w| w == last || (prefix && w.starts_with(last.as_str())))
        })
        .map(|(id, _)| id.clone())
        .collect()
}

#[derive(Debug, Clone)]
enum Step {
    Send { day: i64, words: Vec<usize> },
    Edit { pick: usize, words: Vec<usize> },
    Delete { pick: usize },
    Restart,
}

fn step() -> impl Strategy<Value = Step> {
    let words = prop::collection::vec(0..WORDS.len(), 0..4);
    prop_oneof![
        4 => (0..3i64, words.clone()).prop_map(|(day, words)| Step::Send { day, words }),
        2 => (any::<usize>(), words).prop_map(|(pick, words)| Step::Edit { pick, words }),
        1 => any::<usize>().prop_map(|pick| Step::Delete { pick }),
        1 => Just(Step::Restart),
    ]
}

fn text_of(words: &[usize]) -> String {
    let mut t: Vec<&str> = words.iter().map(|w| WORDS[*w]).collect();
    t.push("x");
    t.join(" ")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_index_finds_what_the_model_finds(steps in prop::collection::vec(step(), 1..24)) {
        let mut dev = Device::new();
        dev.connect();
        let conv = ConvId::new("g").unwrap();
        dev.create(&conv);
        let mut live: BTreeMap<String, String> = BTreeMap::new();
        let mut at: BTreeMap<String, i64> = BTreeMap::new();
        for (n, step) in steps.into_iter().enumerate() {
            match step {
                Step::Send { day, words } => {
                    let id = format!("m{n}");
                    // Before the device's clock (T0 on), which stamps the edits.
                    let when = T0 - day * DAY - 100 + n as i64;
                    let text = text_of(&words);
                    dev.send_text(&conv, &id, &text, when);
                    live.insert(id.clone(), text);
                    at.insert(id, when);
                }
                Step::Edit { pick, words } if !live.is_empty() => {
                    let id = live.keys().nth(pick % live.len()).unwrap().clone();
                    let text = text_of(&words);
                    // An edit that changes nothing is refused, as it should be.
                    if live[&id] != text {
                        dev.edit(&conv, &id, at[&id], &text);
                        live.insert(id, text);
                    }
                }
                Step::Delete { pick } if !live.is_empty() => {
                    let id = live.keys().nth(pick % live.len()).unwrap().clone();
                    dev.delete(&conv, &id, at[&id]);
                    live.remove(&id);
                }
                Step::Restart => dev.restart(),
                _ => {}
            }
        }
        for query in ["cafe", "CAFÉ tea", "te", "kiwi", "strasse", "straße", "naive k", "x"] {
            for limit in [1, 3, 200] {
                let options = SearchOptions { limit: Some(limit), ..SearchOptions::default() };
                let found = dev.found(query, &options);
                let unique: BTreeSet<String> = found.iter().cloned().collect();
                prop_assert_eq!(unique.len(), found.len(), "a message once across pages");
                prop_assert_eq!(&unique, &model(&live, query), "{} (limit {})", query, limit);
                // Reading every posting (as when the server is asked too) finds the same,
                // in the same order.
                let all = SearchOptions { all_matches: true, ..options };
                prop_assert_eq!(dev.found(query, &all), found, "{} (all, limit {})", query, limit);
            }
        }
    }
}

#[test]
fn ranks_whole_words_first_then_newest_and_filters() {
    let mut dev = Device::new();
    dev.connect();
    let conv = ConvId::new("g").unwrap();
    let other = ConvId::new("h").unwrap();
    dev.create(&conv);
    dev.create(&other);
    dev.send_text(&conv, "old-tea", "a pot of tea", T0 - 2 * DAY);
    dev.send_text(&conv, "new-team", "the team meets", T0);
    dev.send_text(&conv, "new-tea", "Tea time at the café", T0 - DAY);
    dev.send_text(&other, "elsewhere", "tea elsewhere", T0);
    let everything = SearchOptions::default();
    assert_eq!(
        dev.found("tea", &everything),
        ["elsewhere", "new-tea", "old-tea", "new-team"],
        "whole words first, newest first"
    );
    let scoped = SearchOptions {
        conv: Some(conv.clone()),
        since: Some(T0 - DAY),
        ..SearchOptions::default()
    };
    assert_eq!(dev.found("tea", &scoped), ["new-tea", "new-team"]);
    let page = dev.search_all("cafe ti", &everything).remove(0);
    assert!(page.partial, "the engine alone never asked the server");
    let hit = &page.hits[0];
    assert_eq!(hit.source, SearchSource::Device);
    assert_eq!(hit.conv, conv);
    let highlighted: Vec<&str> = hit.snippets[0]
        .parts
        .iter()
        .filter(|p| p.hit)
        .map(|p| p.text.as_str())
        .collect();
    assert_eq!(highlighted, ["time", "café"]);
    assert!(dev.peer.engine.search("\" * :", &everything).is_err());
    let bad_cursor = SearchOptions {
        cursor: Some("nope".into()),
        ..SearchOptions::default()
    };
    assert_eq!(
        dev.peer
            .engine
            .search("tea", &bad_cursor)
            .unwrap_err()
            .code(),
        "invalid_value"
    );
}

/// Upkeep runs at the tick after an input, not in the input's drain (what arrived is shown
/// first): the wakeup is due at once meanwhile, and a search made before it brings the index
/// up first.
#[test]
fn upkeep_runs_at_the_next_tick_and_a_search_never_waits_for_it() {
    let mut dev = Device::new();
    dev.connect();
    let conv = ConvId::new("g").unwrap();
    dev.create(&conv);
    let indexed = |dev: &Device, term: &str| dev.index_keys().iter().any(|k| k.contains(term));
    let send = |dev: &mut Device, id: &str, body: &str| {
        let message = NewMessage::text(
            MessageId::new(id).unwrap(),
            dev.peer.engine.config().account.clone(),
            body,
            dev.net.now,
        );
        let send = Intent::Send {
            conv: conv.clone(),
            message,
        };
        dev.peer.engine.intent(send, dev.net.now).unwrap();
        dev.pump_outputs();
    };

    send(&mut dev, "a", "quokka");
    assert!(!indexed(&dev, "quokka"), "not in the send's drain");
    assert_eq!(dev.peer.engine.next_wakeup(), Some(DUE_NOW));
    dev.peer.engine.tick(dev.net.now);
    dev.pump_outputs();
    assert!(indexed(&dev, "quokka"), "at the tick");
    assert_ne!(dev.peer.engine.next_wakeup(), Some(DUE_NOW));

    dev.net.now += 1;
    send(&mut dev, "b", "wombat and quokka");
    assert!(!indexed(&dev, "wombat"));
    assert_eq!(
        dev.found("quokka", &SearchOptions::default()),
        ["b", "a"],
        "a search does not wait for the tick"
    );
    assert!(indexed(&dev, "wombat"));
}

/// A crash between the write that stored a message and the index's: before the tick, and
/// with the tick's write lost. The engine restarted from the store, online or offline, finds
/// the message all the same and indexes it.
#[test]
fn a_crash_before_the_index_write_loses_no_match() {
    for (lose_the_tick_write, back_online) in [(false, true), (true, true), (true, false)] {
        let mut dev = Device::new();
        dev.connect();
        let conv = ConvId::new("g").unwrap();
        dev.create(&conv);
        dev.send_text(&conv, "a", "quokka", dev.net.now);
        let message = NewMessage::text(
            MessageId::new("b").unwrap(),
            dev.peer.engine.config().account.clone(),
            "wombat",
            dev.net.now + 1,
        );
        let send = Intent::Send {
            conv: conv.clone(),
            message,
        };
        dev.peer.engine.intent(send, dev.net.now + 1).unwrap();
        dev.pump_outputs();
        assert_eq!(dev.peer.engine.next_wakeup(), Some(DUE_NOW));
        if lose_the_tick_write {
            dev.peer.engine.tick(dev.net.now);
            let writes = dev
                .peer
                .engine
                .drain()
                .into_iter()
                .filter(|o| matches!(o, confab_core::client::Output::Persist(_)))
                .count();
            assert!(writes > 0, "the tick wrote the index");
        }
        let indexed = |dev: &Device, term: &str| dev.index_keys().iter().any(|k| k.contains(term));
        assert!(!indexed(&dev, "wombat"), "the crash came first");

        if !back_online {
            dev.disconnect();
        }
        dev.restart();
        assert_eq!(
            dev.found("wombat", &SearchOptions::default()),
            ["b"],
            "lost tick write: {lose_the_tick_write}, online: {back_online}"
        );
        assert_eq!(dev.found("quokka", &SearchOptions::default()), ["a"]);
        assert!(indexed(&dev, "wombat"));
    }
}

#[test]
fn expiry_takes_the_index_entries_of_stored_buckets_along() {
    let mut dev = Device::new();
    dev.connect();
    let conv = ConvId::new("g").unwrap();
    dev.create(&conv);
    dev.send_text(&conv, "old", "ancient kiwi", T0 - 10 * DAY);
    dev.send_text(&conv, "today", "fresh kiwi", T0);
    assert_eq!(
        dev.found("kiwi", &SearchOptions::default()),
        ["today", "old"]
    );
    // A restart leaves the old bucket in the store only (not in memory).
    dev.restart();
    assert_eq!(
        dev.found("kiwi", &SearchOptions::default()),
        ["today", "old"]
    );
    dev.set_retention_days(&conv, 5);
    dev.disconnect();
    dev.connect();
    assert_eq!(dev.found("kiwi", &SearchOptions::default()), ["today"]);
    let old = DocId::msgs(&tenant(), &conv, (T0 - 10 * DAY).div_euclid(DAY));
    let left: Vec<String> = dev
        .index_keys()
        .into_iter()
        .filter(|k| k.contains(&old.to_string()))
        .collect();
    assert_eq!(
        left,
        Vec::<String>::new(),
        "no term of an expired message stays"
    );
}

/// More matches than a page of postings holds (128): pages of every size find each once,
/// newest first; a rare term beside a common one finds exactly its messages; a last term
/// of one letter matches whole words only, two letters as a prefix.
#[test]
fn pages_cross_posting_pages_and_terms_of_every_frequency() {
    let mut dev = Device::new();
    dev.connect();
    let conv = ConvId::new("g").unwrap();
    dev.create(&conv);
    let total = 300;
    let mut newest_first = Vec::new();
    for n in 0..total {
        let id = format!("m{n:03}");
        let rare = if n % 97 == 5 { " zebra" } else { "" };
        // Two days of messages: the pages cross buckets too.
        let at = T0 - 2 * DAY + n as i64 * (DAY / 200);
        dev.send_text(&conv, &id, &format!("kiwi k number{n}{rare}"), at);
        newest_first.push(id);
    }
    newest_first.reverse();
    for limit in [1, 7, 50, 200] {
        let options = SearchOptions {
            limit: Some(limit),
            ..SearchOptions::default()
        };
        let pages = dev.search_all("kiwi", &options);
        assert!(pages.iter().all(|p| p.hits.len() <= limit));
        let found: Vec<String> = pages
            .iter()
            .flat_map(|p| &p.hits)
            .map(|h| h.message.to_string())
            .collect();
        assert_eq!(found, newest_first, "limit {limit}");
    }
    let rare: Vec<String> = newest_first
        .iter()
        .filter(|id| id[1..].parse::<usize>().unwrap() % 97 == 5)
        .cloned()
        .collect();
    for query in ["kiwi zebra", "zebra kiwi", "zebra ki"] {
        assert_eq!(dev.found(query, &SearchOptions::default()), rare, "{query}");
    }
    // "k" is a whole word of every message and a prefix of "kiwi": whole words only.
    assert_eq!(dev.found("k", &SearchOptions::default()), newest_first);
    assert_eq!(
        dev.found("z", &SearchOptions::default()),
        Vec::<String>::new()
    );
    assert_eq!(dev.found("ze", &SearchOptions::default()), rare);
    // "number1" whole first (m001), then the prefix-only ones (number10.., number100..).
    let found = dev.found("number1", &SearchOptions::default());
    assert_eq!(found[0], "m001");
    assert_eq!(found.len(), 1 + 10 + 100);
    let since = SearchOptions {
        since: Some(T0 - DAY),
        until: Some(T0 - DAY / 2),
        limit: Some(3),
        ..SearchOptions::default()
    };
    let in_range: Vec<String> = (0..total)
        .filter(|n| {
            let at = T0 - 2 * DAY + *n as i64 * (DAY / 200);
            (T0 - DAY..T0 - DAY / 2).contains(&at)
        })
        .rev()
        .map(|n| format!("m{n:03}"))
        .collect();
    assert_eq!(dev.found("kiwi", &since), in_range);
}

/// A store whose index has the first layout (postings `sx/t/…`, no `sx/v`) is migrated at
/// start from its records: the old postings go, every message is found again.
#[test]
fn an_index_of_the_first_layout_is_migrated_at_start() {
    use confab_core::client::StoreOp;
    let mut dev = Device::new();
    dev.connect();
    let conv = ConvId::new("g").unwrap();
    dev.create(&conv);
    dev.send_text(&conv, "old", "ancient kiwi", T0 - 3 * DAY);
    dev.send_text(&conv, "new", "fresh kiwi tea", T0);
    // What the first layout left: records and heads, its postings, nothing of the new.
    let ops = vec![
        StoreOp::DeletePrefix("sx/p/".into()),
        StoreOp::DeletePrefix("sx/w/".into()),
        StoreOp::DeletePrefix("sx/b/".into()),
        StoreOp::Delete("sx/v".into()),
        StoreOp::Put("sx/t/kiwi/acme/msgs/g.1/old".into(), vec![0xa0]),
    ];
    block_on_ready(dev.peer.store.write(ops)).unwrap().unwrap();
    dev.restart();
    assert_eq!(dev.found("kiwi", &SearchOptions::default()), ["new", "old"]);
    assert_eq!(dev.found("te", &SearchOptions::default()), ["new"]);
    let keys = dev.index_keys();
    assert!(keys.iter().all(|k| !k.starts_with("sx/t/")), "{keys:?}");
    assert!(keys.iter().any(|k| k == "sx/v"));
    // Once migrated, a restart keeps it as it is.
    dev.restart();
    assert_eq!(dev.found("kiwi", &SearchOptions::default()), ["new", "old"]);
}

/// A word of a text that an edit, a delete or an expiry removed leaves the store with its
/// last posting: the dictionary keeps no term without postings, and keeps (or writes again)
/// every term a live message holds.
#[test]
fn words_of_removed_texts_leave_the_dictionary() {
    let mut dev = Device::new();
    dev.connect();
    let conv = ConvId::new("g").unwrap();
    dev.create(&conv);
    dev.send_text(&conv, "old", "ancient walrus kiwi", T0 - 10 * DAY);
    dev.send_text(&conv, "a", "zebra kiwi", T0);
    dev.send_text(&conv, "b", "quokka kiwi", T0 + 1);
    dev.send_text(&conv, "c", "zebra tapir", T0 + 2);
    let holds = |dev: &Device, word: &str| dev.index_keys().iter().any(|k| k.contains(word));
    assert!(holds(&dev, "zebra") && holds(&dev, "quokka") && holds(&dev, "walrus"));

    // "zebra" still has c's posting after a's edit; "quokka" has none after b's delete.
    dev.edit(&conv, "a", T0, "kiwi only");
    dev.delete(&conv, "b", T0 + 1);
    assert!(!holds(&dev, "quokka"), "a deleted message's word stays");
    assert!(holds(&dev, "zebra"), "a word a live message holds went");
    assert_eq!(dev.found("ze", &SearchOptions::default()), ["c"]);

    // Its last posting goes: the word goes; written again, it comes back.
    dev.edit(&conv, "c", T0 + 2, "tapir");
    assert!(!holds(&dev, "zebra"), "an edited-away word stays");
    assert!(dev.found("ze", &SearchOptions::default()).is_empty());
    dev.send_text(&conv, "d", "zebra again", T0 + 3);
    assert_eq!(dev.found("zeb", &SearchOptions::default()), ["d"]);
    dev.restart();
    assert_eq!(dev.found("zeb", &SearchOptions::default()), ["d"]);

    // Expiry of a bucket only stored (after the restart) takes its words too.
    dev.set_retention_days(&conv, 5);
    dev.disconnect();
    dev.connect();
    assert!(
        !holds(&dev, "walrus") && !holds(&dev, "ancient"),
        "an expired message's word stays"
    );
    assert!(holds(&dev, "kiwi") && holds(&dev, "tapir"));
    assert_eq!(dev.found("kiw", &SearchOptions::default()), ["a"]);
}

/// Two words each in many messages and seldom (or never) in the same one: the walk reads the
/// denser word's postings by pages from each candidate's place, and finds exactly the
/// messages holding both, newest first, whatever the page size and the order of the words;
/// two words never together end with no result and no next page.
#[test]
fn two_common_words_seldom_or_never_together() {
    let mut dev = Device::new();
    dev.connect();
    let conv = ConvId::new("g").unwrap();
    dev.create(&conv);
    let total = 400;
    let mut both = Vec::new();
    for n in 0..total {
        let id = format!("m{n:03}");
        // "alpha" in even messages, "beta" in odd ones, both in every 37th; "gamma" and
        // "delta" split the same way and never meet.
        let mut words = vec![if n % 2 == 0 {
            "alpha gamma"
        } else {
            "beta delta"
        }];
        if n % 37 == 3 {
            words.push(if n % 2 == 0 { "beta" } else { "alpha" });
            both.push(id.clone());
        }
        let at = T0 - 2 * DAY + n as i64 * (DAY / 250);
        dev.send_text(&conv, &id, &format!("{} n{n}", words.join(" ")), at);
    }
    both.reverse();
    for limit in [1, 3, 50] {
        let options = SearchOptions {
            limit: Some(limit),
            ..SearchOptions::default()
        };
        for query in ["alpha beta", "beta alpha", "beta al"] {
            let pages = dev.search_all(query, &options);
            assert!(pages.iter().all(|p| p.partial_reason.is_none()));
            let found: Vec<String> = pages
                .iter()
                .flat_map(|p| &p.hits)
                .map(|h| h.message.to_string())
                .collect();
            assert_eq!(found, both, "{query}, limit {limit}");
        }
        let pages = dev.search_all("gamma delta", &options);
        assert_eq!(pages.len(), 1, "a page, and no next one");
        assert!(pages[0].hits.is_empty() && pages[0].next_cursor.is_none());
    }
}

/// A store that fails the search's reads (keys alone or whole entries) ends the search as
/// failed with the store's code, changes nothing, and the next search finds as before.
#[test]
fn a_search_whose_store_reads_fail_ends_failed_and_the_next_one_finds() {
    use confab_core::client::{Event, Outcome, Output, StoreError};
    let mut dev = Device::new();
    dev.connect();
    let conv = ConvId::new("g").unwrap();
    dev.create(&conv);
    dev.send_text(&conv, "m1", "kiwi tea", T0);
    dev.send_text(&conv, "m2", "kiwi cafe", T0 - 1);
    let before = dev.index_keys();
    for options in [
        SearchOptions::default(),
        SearchOptions {
            author: Some(dev.peer.engine.config().account.clone()),
            ..SearchOptions::default()
        },
    ] {
        dev.peer.engine.search("kiwi", &options).expect("a query");
        let mut failed = None;
        for _ in 0..10 {
            for output in dev.peer.engine.drain() {
                match output {
                    Output::Load(load) => {
                        let refused = StoreError("the disk is gone".into());
                        dev.peer.engine.loaded(load.id, Err(refused)).unwrap();
                    }
                    Output::Event(Event::Done { outcome, .. }) => failed = Some(outcome),
                    _ => {}
                }
            }
        }
        match failed {
            Some(Outcome::Failed { code, message }) => {
                assert_eq!(code, "storage", "{message}");
                assert!(message.contains("the disk is gone"), "{message}");
            }
            other => panic!("the search ended {other:?}"),
        }
        assert_eq!(dev.index_keys(), before, "a failed search changes nothing");
        assert_eq!(dev.found("kiwi", &options), ["m1", "m2"]);
    }
}
