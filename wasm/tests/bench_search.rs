//! The device's search index in headless Chromium, built as the package ships (opt-level
//! z), on IndexedDB (docs/BENCHMARKS.md, "Search", "Device"). Heavy, so it runs only when
//! built with CONFAB_WASM_BENCH=1 (`cargo xtask wasm test --bench`); it prints its numbers.
//!
//! A conversation of N messages (10,000, then 100,000; `CONFAB_SEARCH_BENCH_MESSAGES` picks
//! one) of 6–12 words from a 5,000-word vocabulary drawn with a skew (the most common word is
//! in about one message of ten), accepted through the engine, which indexes them as it goes:
//! - index bytes per message (keys and values under `sx/`: records, postings, dictionary);
//! - upkeep per arriving message: 200 messages pushed one per frame into the held newest
//!   bucket of 1,000, the index's work in `drain` (target ≤ 0.2 ms), and its store write;
//! - `search()` through the package, on a fresh client from that IndexedDB, offline and
//!   `localOnly`: a common, a mid and a rare word, two words, a 3-letter prefix, and a word
//!   found nowhere, 30 of each interleaved (targets p50 ≤ 20 ms, p99 ≤ 50 ms).
#![cfg(target_family = "wasm")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use confab_core::automerge::ActorId;
use confab_core::client::{ClientConfig, ClientEngine, LocalStore, Output, StoreOp};
use confab_core::doc::genesis;
use confab_core::ids::{AccountId, ConvId, DocId, TenantId};
use confab_core::model::conversation::DEFAULT_BUCKET_MS;
use confab_core::protocol::{SeqChange, ServerFrame};
use confab_wasm::store::IdbStore;
use confab_wasm::types::{SearchOptions, SearchPage};
use serde_bytes::ByteBuf;
use support::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const PER_BUCKET: usize = 1_000;
const VOCABULARY: usize = 5_000;
const ARRIVALS: usize = 200;
const ROUNDS: usize = 30;

/// A deterministic word list: word `i` spells `i + 16` in base 16 with two-letter
/// syllables (so every word is distinct).
fn word(i: usize) -> String {
    const SYLLABLES: [&str; 16] = [
        "ka", "lo", "mi", "ne", "ru", "so", "ta", "vi", "ze", "po", "da", "fe", "gu", "hi", "jo",
        "ba",
    ];
    let mut n = i + 16;
    let mut out = Vec::new();
    while n > 0 {
        out.push(SYLLABLES[n % 16]);
        n /= 16;
    }
    out.concat()
}

/// xorshift64*: the same text on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A message's text: 6–12 words, word `i` drawn with probability falling like 1/√i.
    fn text(&mut self) -> String {
        let n = 6 + (self.next() * 7.0) as usize;
        (0..n)
            .map(|_| word(((self.next().powi(2)) * VOCABULARY as f64) as usize))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn persist_ops(outputs: Vec<Output>) -> Vec<StoreOp> {
    outputs
        .into_iter()
        .filter_map(|o| match o {
            Output::Persist(ops) => Some(ops),
            _ => None,
        })
        .flatten()
        .collect()
}

#[wasm_bindgen_test]
async fn search_the_device_index() {
    if option_env!("CONFAB_WASM_BENCH").is_none() {
        log("bench skipped (build with CONFAB_WASM_BENCH=1)");
        return;
    }
    let sizes = match option_env!("CONFAB_SEARCH_BENCH_MESSAGES") {
        Some(n) => vec![n.parse().unwrap()],
        None => vec![10_000, 100_000],
    };
    for messages in sizes {
        bench(messages).await;
    }
}

async fn bench(messages: usize) {
    let tenant = TenantId::new("demo").unwrap();
    let me = AccountId::new("alice").unwrap();
    let conv = ConvId::new(format!("search-{messages}")).unwrap();
    let actor = ActorId::from(&[7u8; 16][..]);
    let db = unique("bench-search");
    let store = IdbStore::open(&db).await.unwrap();
    let mut engine = ClientEngine::new(ClientConfig {
        tenant: tenant.clone(),
        account: me.clone(),
        actor: actor.clone(),
    });
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);

    // History: buckets of 1,000 messages ending today, indexed by the engine as accepted.
    let started = now();
    let day = DEFAULT_BUCKET_MS;
    let buckets = messages / PER_BUCKET;
    let today = (now() as i64).div_euclid(day);
    let first_bucket = today - buckets as i64 + 1;
    accept_group(&mut engine, &store, &conv, "search", first_bucket * day).await;
    let config = engine.config().clone();
    // Today's bucket leaves room for the arrivals after its history.
    let step = day / (PER_BUCKET + ARRIVALS + 1) as i64;
    let mut n = 0usize;
    let mut newest = None;
    for b in 0..buckets as i64 {
        let bucket = first_bucket + b;
        let id = DocId::msgs(&tenant, &conv, bucket);
        let mut doc = genesis(&id).unwrap().with_actor(actor.clone());
        for i in 0..PER_BUCKET {
            n += 1;
            write_text(
                &config,
                &mut doc,
                &id,
                &conv,
                n,
                bucket * day + i as i64 * step,
                rng.text(),
            );
        }
        accept(&mut engine, &store, &id, changes_of(&mut doc)).await;
        newest = Some((id, doc));
    }
    store_identity(&store).await;
    let built_s = (now() - started) / 1000.0;
    let index = store.scan("sx/").await.unwrap();
    let index_bytes: usize = index.iter().map(|(k, v)| k.len() + v.len()).sum();
    let postings = index.iter().filter(|(k, _)| k.starts_with("sx/p/")).count();
    log(&format!(
        "bench search {messages}: built and indexed in {built_s:.1} s; index {:.1} MB, {:.0} bytes and {:.1} postings per message",
        index_bytes as f64 / 1e6,
        index_bytes as f64 / messages as f64,
        postings as f64 / messages as f64,
    ));
    drop(index);

    // Upkeep: messages arriving one per frame into the held newest bucket.
    let (id, mut doc) = newest.unwrap();
    let history = doc.get_changes(&[]).len() as u64;
    let mut upkeep = Vec::new();
    let mut writes = Vec::new();
    for k in 0..ARRIVALS {
        n += 1;
        let at = today * day + (PER_BUCKET + k) as i64 * step;
        write_text(&config, &mut doc, &id, &conv, n, at, rng.text());
        let change = doc.get_last_local_change().unwrap().raw_bytes().to_vec();
        let frame = ServerFrame::Changes {
            doc: id.to_string(),
            changes: vec![SeqChange {
                seq: history + k as u64 + 1,
                change: ByteBuf::from(change),
            }],
        };
        engine.receive(frame, 0);
        store.write(persist_ops(engine.drain())).await.unwrap();
        // The tick the runtime runs at once after the frame brings the index up to the new
        // heads (`keep_index_up`).
        let t0 = precise_now();
        engine.tick(0);
        let outputs = engine.drain();
        upkeep.push(precise_now() - t0);
        let index_ops = persist_ops(outputs);
        let t0 = precise_now();
        store.write(index_ops).await.unwrap();
        writes.push(precise_now() - t0);
    }
    let mean = |t: &[f64]| t.iter().sum::<f64>() / t.len() as f64;
    let (p50, p99) = summary(upkeep.clone());
    let (w50, w99) = summary(writes.clone());
    log(&format!(
        "bench search {messages}: upkeep per arriving message: index work mean {:.3} ms (p50 {p50:.2}, p99 {p99:.2}); its IndexedDB write mean {:.2} ms (p50 {w50:.2}, p99 {w99:.2})",
        mean(&upkeep),
        mean(&writes),
    ));
    store.close();
    drop(engine);

    // Queries through the package on a fresh client from the same store.
    let client = offline_alice(&db);
    done(client.ready()).await.unwrap();
    let queries = [
        ("common word", word(0)),
        ("mid word", word(50)),
        ("rare word", word(2_000)),
        ("two words", format!("{} {}", word(1), word(30))),
        ("prefix", word(300)[..3].to_owned()),
        ("no match", "zzzz".to_owned()),
    ];
    let options = tsify::Ts::from_rust(&SearchOptions {
        local_only: Some(true),
        limit: Some(20),
        ..Default::default()
    })
    .unwrap();
    let mut all = Vec::new();
    let mut shown = vec![0; queries.len()];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); queries.len()];
    for round in 0..=ROUNDS {
        for (i, (_, q)) in queries.iter().enumerate() {
            sleep(0.0).await;
            let t0 = precise_now();
            let page: SearchPage = ok(client.search(q.clone(), Some(options.clone()))).await;
            let took = precise_now() - t0;
            // The first round warms up (and counts the matches).
            if round == 0 {
                shown[i] = page.results.len();
                continue;
            }
            all.push(took);
            times[i].push(took);
        }
    }
    for (i, (name, q)) in queries.iter().enumerate() {
        let (p50, p99) = summary(times[i].clone());
        log(&format!(
            "bench search {messages}: {name:<11} {q:<16} p50 {p50:.1} ms, p99 {p99:.1} ms ({} shown)",
            shown[i]
        ));
    }
    let (p50, p99) = summary(all);
    log(&format!(
        "bench search {messages}: all queries p50 {p50:.1} ms, p99 {p99:.1} ms"
    ));
    done(client.dispose()).await.unwrap();
    IdbStore::delete_database(&db).await.unwrap();
}
