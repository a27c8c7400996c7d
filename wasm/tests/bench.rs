//! Benchmarks of the package in headless Chromium, built as it ships (opt-level z). Heavy,
//! so they run only when built with CONFAB_WASM_BENCH=1 (`cargo xtask wasm test --bench`);
//! they print their numbers to the console (run with `-- --nocapture` to see them).
//!
//! - `open_a_conversation_of_100k_messages`: from IndexedDB until the newest 50 are ready.
//! - `act_in_groups_of_10_100_1000`: `send`, `react`, `edit` and `can()` of a member of a
//!   group of 10, 100 and 1,000 (targets: ≤ 2 ms per send, ≤ 0.1 ms per `can()` at 1,000;
//!   docs/BENCHMARKS.md, "Client operations").
#![cfg(target_family = "wasm")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use confab_core::automerge::ActorId;
use confab_core::client::{ClientConfig, ClientEngine, LocalStore};
use confab_core::doc::genesis;
use confab_core::ids::{AccountId, ConvId, DocId, TenantId};
use confab_core::model::conversation::DEFAULT_BUCKET_MS;
use confab_testkit::group::Group;
use confab_wasm::policy::PolicyQuery;
use confab_wasm::store::IdbStore;
use confab_wasm::types::TimelineOptions;
use support::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const MESSAGES: usize = 100_000;
const PER_BUCKET: usize = 1_000;

#[wasm_bindgen_test]
async fn open_a_conversation_of_100k_messages() {
    if option_env!("CONFAB_WASM_BENCH").is_none() {
        log("bench skipped (build with CONFAB_WASM_BENCH=1)");
        return;
    }
    let tenant = TenantId::new("demo").unwrap();
    let me = AccountId::new("alice").unwrap();
    let conv = ConvId::new("bench").unwrap();
    let actor = ActorId::from(&[7u8; 16][..]);
    let db = unique("bench");
    let store = IdbStore::open(&db).await.unwrap();
    let mut engine = ClientEngine::new(ClientConfig {
        tenant: tenant.clone(),
        account: me.clone(),
        actor: actor.clone(),
    });

    // History: the conversation, then 100 day buckets of 1000 messages ending today.
    let started = now();
    let day = DEFAULT_BUCKET_MS;
    let today = (now() as i64).div_euclid(day);
    let first_bucket = today - (MESSAGES / PER_BUCKET) as i64 + 1;
    accept_group(&mut engine, &store, &conv, "100k", first_bucket * day).await;
    let config = engine.config().clone();
    let mut n = 0usize;
    for b in 0..(MESSAGES / PER_BUCKET) as i64 {
        let bucket = first_bucket + b;
        let id = DocId::msgs(&tenant, &conv, bucket);
        let mut doc = genesis(&id).unwrap().with_actor(actor.clone());
        for i in 0..PER_BUCKET {
            n += 1;
            let at = bucket * day + (i as i64) * (day / PER_BUCKET as i64);
            write_text(
                &config,
                &mut doc,
                &id,
                &conv,
                n,
                at,
                format!("message number {n}"),
            );
        }
        accept(&mut engine, &store, &id, changes_of(&mut doc)).await;
    }
    store_identity(&store).await;
    let stored = store.scan("").await.unwrap();
    let bytes: usize = stored.iter().map(|(k, v)| k.len() + v.len()).sum();
    log(&format!(
        "bench: wrote {MESSAGES} messages in {} buckets: {} entries, {:.1} MB, in {:.1} s",
        MESSAGES / PER_BUCKET,
        stored.len(),
        bytes as f64 / 1e6,
        (now() - started) / 1000.0
    ));
    store.close();
    drop(engine);

    // The measurement: a fresh client on that database, until the newest 50 are ready.
    let mut runs = Vec::new();
    for _ in 0..3 {
        let t0 = now();
        let client = offline_alice(&db);
        done(client.ready()).await.unwrap();
        let t_ready = now();
        let options = tsify::Ts::from_rust(&TimelineOptions { limit: Some(50) }).unwrap();
        done(client.open_conversation(conv.to_string(), Some(options.clone())))
            .await
            .unwrap();
        let newest = client.timeline(conv.as_str(), Some(options)).unwrap();
        let t_open = now();
        assert_eq!(newest.len(), 50);
        let last = newest.last().unwrap().to_rust().unwrap();
        assert_eq!(last.message.body, format!("message number {MESSAGES}"));
        assert!(!last.pending && last.seq.is_some());
        runs.push((t_ready - t0, t_open - t0));
        done(client.dispose()).await.unwrap();
    }
    for (ready, total) in &runs {
        log(&format!(
            "bench: open 100k-message conversation from IndexedDB: ready {ready:.0} ms, newest 50 ready {total:.0} ms"
        ));
    }
    IdbStore::delete_database(&db).await.unwrap();
}

#[wasm_bindgen_test]
async fn act_in_groups_of_10_100_1000() {
    if option_env!("CONFAB_WASM_BENCH").is_none() {
        log("bench skipped (build with CONFAB_WASM_BENCH=1)");
        return;
    }
    const OPS: usize = 200;
    // Each action (and each batch of `can()`) starts after a task boundary (`sleep(0)`), as
    // between a user's clicks: the store's writes run there, and the page stays responsive
    // to the test driver. `performance.now()` is coarse in a page that is not cross-origin
    // isolated (100 µs): `can()` is timed in batches and reported per call.
    const BATCH: usize = 100;
    let today = (now() as i64).div_euclid(DEFAULT_BUCKET_MS);
    for members in [10, 100, 1000] {
        let group = Group::build(members, 200, today).unwrap();
        let db = unique("bench-group");
        let store = IdbStore::open(&db).await.unwrap();
        store_group(&store, &group).await;
        store.close();
        let client = client(
            "ws://127.0.0.1:9/ws",
            "t",
            confab_testkit::ids::TENANT,
            confab_testkit::group::ME,
            "indexeddb".into(),
            Some(db.clone()),
        );
        done(client.ready()).await.unwrap();
        let conv = group.conv.to_string();
        done(client.open_conversation(conv.clone(), None))
            .await
            .unwrap();
        // One of each first: loads what they touch (nothing here: the bucket is open).
        send(&client, &conv, "warm-up").await;
        let mine = group.mine.to_string();
        let theirs = group.theirs.to_string();
        let mut times: Vec<(&str, Vec<f64>)> = Vec::new();
        let mut t = Vec::new();
        for k in 0..OPS {
            let body = JsValue::from_str(&format!("message {k} of the benchmark, forty chars"));
            sleep(0.0).await;
            let t0 = precise_now();
            done(client.send(conv.clone(), body)).await.unwrap();
            t.push(precise_now() - t0);
        }
        times.push(("send", std::mem::take(&mut t)));
        for k in 0..OPS {
            sleep(0.0).await;
            let t0 = precise_now();
            done(client.react(conv.clone(), theirs.clone(), "🎉".into(), Some(k % 2 == 0)))
                .await
                .unwrap();
            t.push(precise_now() - t0);
        }
        times.push(("react", std::mem::take(&mut t)));
        for k in 0..OPS {
            sleep(0.0).await;
            let t0 = precise_now();
            done(client.edit(conv.clone(), mine.clone(), format!("edited {k}")))
                .await
                .unwrap();
            t.push(precise_now() - t0);
        }
        times.push(("edit", std::mem::take(&mut t)));
        for (action, message) in [("send", None), ("react", Some(theirs.clone()))] {
            let mut query = serde_json::json!({ "action": action, "conv": conv });
            if let Some(m) = message {
                query["message"] = m.into();
            }
            let query: PolicyQuery = serde_json::from_value(query).unwrap();
            for _ in 0..OPS / 10 {
                // The queries as JavaScript passes them, made outside the timing.
                let queries: Vec<_> = (0..BATCH)
                    .map(|_| tsify::Ts::from_rust(&query).unwrap())
                    .collect();
                sleep(0.0).await;
                let t0 = precise_now();
                for q in queries {
                    let verdict = client.can(q).unwrap().to_rust().unwrap();
                    assert!(verdict.allowed, "{verdict:?}");
                }
                t.push((precise_now() - t0) / BATCH as f64);
            }
            let name = if action == "send" {
                "can(send)"
            } else {
                "can(react)"
            };
            times.push((name, std::mem::take(&mut t)));
        }
        for (name, t) in times {
            let (median, p99) = summary(t);
            log(&format!(
                "bench: {name:<10} {members:>5} members: median {median:.3} ms, p99 {p99:.3} ms"
            ));
        }
        done(client.dispose()).await.unwrap();
        IdbStore::delete_database(&db).await.unwrap();
    }
}
