//! Catch-up of the package in headless Chromium, against the release server `cargo xtask
//! wasm test --bench` starts (docs/BENCHMARKS.md, "Catch-up in the wasm client"; the native
//! client's numbers come from `cargo xtask bench catchup`). Heavy, so it runs only when
//! built with CONFAB_WASM_BENCH=1.
//!
//! Readers (alice, carol, dave) each saw the first 20 messages of some groups and closed
//! their page; bob then posted more through REST; each reader comes back, one after the
//! other, with a new client on its IndexedDB store. Measured: from `new ConfabClient` until
//! every group's timeline ends with its newest message (what a reopened app's sidebar
//! previews), with `ready` (the store read) and `online` (the server's welcome) on the way,
//! and the engine's share (`trace` events).
//!
//! - 10k: 1 group, 10,000 missed (target ≤ 100 ms, the native client's).
//! - week: 50 groups, 500 missed in each (target ≤ 1 s).
//!
//! The first reader to come back finds the server's kept saves of closed parts cold; the
//! others find them made. The scenarios share the server and the demo's accounts: the 10k
//! one runs first, so its readers hold that one group only.
#![cfg(target_family = "wasm")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::cell::RefCell;
use std::rc::Rc;

use confab_wasm::types::{
    CreateConversationInput, EventName, IntentResult, MemberInput, TimelineItem, TimelineOptions,
};
use confab_wasm::ConfabClient;
use js_sys::{Array, Function, Promise};
use support::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const READERS: [&str; 3] = ["alice", "carol", "dave"];
const SEEN: usize = 20;
/// Concurrent REST posts while populating.
const POSTERS: usize = 16;
const WAIT: f64 = 120_000.0;

/// The body of message `i` (40 characters, as the server benchmarks write).
fn body(i: usize) -> String {
    format!("{:-<40}", format!("message {i:05} "))
}

/// Posts messages `from..to` of each of `convs` as `token` through `POST
/// /v1/conversations/{id}/messages`, `POSTERS` at a time, waiting out `429`/`503`; the last
/// message of each conversation after its others.
const POST_JS: &str = r#"
return (async () => {
  // Each conversation's last message goes after all of its others (concurrent posts land in
  // any order), so it is the newest one a reader shows.
  let jobs = [];
  for (const conv of convs) for (let i = from; i < to - 1; i++) jobs.push([conv, i]);
  const bodyOf = (i) => `message ${String(i).padStart(5, "0")} `.padEnd(40, "-");
  let next = 0;
  async function poster() {
    while (next < jobs.length) {
      const [conv, i] = jobs[next++];
      for (;;) {
        const res = await fetch(`${base}/v1/conversations/${conv}/messages`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: JSON.stringify({ id: `m${i}`, body: bodyOf(i) }),
        });
        if (res.status === 201) break;
        if (res.status === 429 || res.status === 503) {
          const after = Number(res.headers.get("retry-after") ?? "1");
          await new Promise((r) => setTimeout(r, Math.max(50, after * 1000)));
          continue;
        }
        throw new Error(`POST ${conv} message ${i}: ${res.status} ${await res.text()}`);
      }
    }
  }
  await Promise.all(Array.from({ length: posters }, poster));
  jobs = convs.map((conv) => [conv, to - 1]);
  next = 0;
  await Promise.all(Array.from({ length: posters }, poster));
})();
"#;

fn http_base() -> String {
    server()
        .ws
        .replacen("ws://", "http://", 1)
        .trim_end_matches("/ws")
        .to_owned()
}

async fn post(token: &str, convs: &[String], from: usize, to: usize) {
    let post = Function::new_with_args("base, token, convs, from, to, posters", POST_JS);
    let convs: Array = convs.iter().map(|c| JsValue::from_str(c)).collect();
    let args = Array::of3(&JsValue::from(http_base()), &JsValue::from(token), &convs);
    for n in [from, to, POSTERS] {
        args.push(&JsValue::from(n as f64));
    }
    let promise: Promise = post.apply(&JsValue::NULL, &args).unwrap().unchecked_into();
    done(promise)
        .await
        .unwrap_or_else(|e| panic!("posting failed: {e:?}"));
}

/// The demo token of each reader (`cargo xtask wasm test --bench` passes them: the server's
/// `/demo/token` is for its own origin only).
fn tokens() -> [&'static str; 3] {
    let (Some(carol), Some(dave)) = (
        option_env!("CONFAB_TEST_TOKEN_CAROL"),
        option_env!("CONFAB_TEST_TOKEN_DAVE"),
    ) else {
        panic!("no CONFAB_TEST_TOKEN_CAROL/DAVE: run this with `cargo xtask wasm test --bench`");
    };
    [server().alice, carol, dave]
}

/// A returning reader, with the client's `trace` events summed by stage (ms) from its start.
fn traced_reader(token: &str, account: &str, db: &str) -> (ConfabClient, Rc<RefCell<Stages>>) {
    let mut options = indexeddb_options(token, account, db);
    options.trace = Some(true);
    let client = client_with(&options);
    let stages = Rc::new(RefCell::new(Stages::default()));
    let sums = stages.clone();
    let on_trace = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
        let field = |name: &str| js_sys::Reflect::get(&event, &name.into()).unwrap();
        let (Some(stage), Some(us)) = (field("stage").as_string(), field("us").as_f64()) else {
            return;
        };
        sums.borrow_mut().add(&stage, us / 1000.0);
    });
    let name = tsify::Ts::from_rust(&EventName::Trace).unwrap();
    client
        .on(name, on_trace.as_ref().unchecked_ref::<Function>().clone())
        .unwrap();
    on_trace.forget();
    (client, stages)
}

/// The client's steps while catching up (`trace` events): the engine's handling of server
/// frames (summed ms, frames), and its store transactions (the longest, from its begin to
/// its commit, and how many: begun at once, they overlap, so their sum says nothing).
#[derive(Default, Debug)]
struct Stages {
    engine_ms: f64,
    frames: u32,
    longest_store_ms: f64,
    transactions: u32,
}

impl Stages {
    fn add(&mut self, stage: &str, ms: f64) {
        match stage {
            "engine" => {
                self.engine_ms += ms;
                self.frames += 1;
            }
            "store" => {
                self.longest_store_ms = self.longest_store_ms.max(ms);
                self.transactions += 1;
            }
            _ => {}
        }
    }
}

/// Keeps in `waiting` the conversations whose newest message on `client` is not `last` yet.
/// (Each look reads one item of each waiting timeline: `conversations()` would rebuild every
/// conversation's summary after each change, and slow what it measures.)
fn still_waiting(client: &ConfabClient, waiting: &mut Vec<String>, last: &str) {
    let newest = tsify::Ts::from_rust(&TimelineOptions { limit: Some(1) }).unwrap();
    waiting.retain(|conv| {
        let items = client.timeline(conv, Some(newest.clone())).unwrap();
        items
            .first()
            .map(|t| t.to_rust().unwrap())
            .is_none_or(|t: TimelineItem| t.message.body != last)
    });
}

/// Bob's `groups` groups with the readers; each reader sees their first `SEEN` messages,
/// closes, and comes back after `missed` more in each.
async fn scenario(name: &str, groups: usize, missed: usize) {
    if option_env!("CONFAB_WASM_BENCH").is_none() {
        log("bench skipped (build with CONFAB_WASM_BENCH=1)");
        return;
    }
    let s = server();
    let tokens = tokens();
    let dbs: Vec<String> = READERS
        .iter()
        .map(|r| unique(&format!("{name}-{r}")))
        .collect();
    let readers: Vec<ConfabClient> = READERS
        .iter()
        .zip(tokens)
        .zip(&dbs)
        .map(|((account, token), db)| on_indexeddb(token, account, db))
        .collect();
    for r in &readers {
        done(r.connect()).await.unwrap();
    }

    let bob = client(s.ws, s.bob, s.tenant, "bob", "memory".into(), None);
    done(bob.connect()).await.unwrap();
    let (mut convs, mut made_ids) = (Vec::new(), Vec::new());
    for g in 0..groups {
        let input = CreateConversationInput {
            title: Some(format!("{name} {g}")),
            members: Some(
                READERS
                    .iter()
                    .map(|r| MemberInput::Account((*r).into()))
                    .collect(),
            ),
            ..Default::default()
        };
        let made: IntentResult =
            ok(bob.create_group(Some(tsify::Ts::from_rust(&input).unwrap()))).await;
        convs.push(made.conv.unwrap());
        made_ids.push(made.id);
    }
    wait_for("bob's groups accepted", WAIT, || {
        made_ids
            .iter()
            .all(|id| state_of(&bob, *id).as_deref() == Some("accepted"))
    })
    .await;
    done(bob.dispose()).await.unwrap();
    // Each reader follows every group (as an app that shows them does; kept across restarts).
    for r in &readers {
        for conv in &convs {
            done(r.open_conversation(conv.clone(), None)).await.unwrap();
        }
    }

    post(s.bob, &convs, 0, SEEN).await;
    let seen = body(SEEN - 1);
    for (r, account) in readers.iter().zip(READERS) {
        wait_for(&format!("{account} sees the first {SEEN}"), WAIT, || {
            let mut waiting = convs.clone();
            still_waiting(r, &mut waiting, &seen);
            waiting.is_empty()
        })
        .await;
        done(r.flush()).await.unwrap();
        done(r.dispose()).await.unwrap();
    }

    let posting = precise_now();
    post(s.bob, &convs, SEEN, SEEN + missed).await;
    log(&format!(
        "bench: {name}: posted {} messages through REST in {:.1} s",
        groups * missed,
        (precise_now() - posting) / 1000.0
    ));

    let last = body(SEEN + missed - 1);
    for ((account, token), db) in READERS.iter().zip(tokens).zip(&dbs) {
        let t0 = precise_now();
        let (client, stages) = traced_reader(token, account, db);
        done(client.ready()).await.unwrap();
        let ready = precise_now() - t0;
        done(client.connect()).await.unwrap();
        let online = precise_now() - t0;
        let start = now();
        let mut waiting = convs.clone();
        loop {
            still_waiting(&client, &mut waiting, &last);
            if waiting.is_empty() {
                break;
            }
            assert!(
                now() - start < WAIT,
                "{account} did not catch up in {WAIT} ms"
            );
            sleep(5.0).await;
        }
        let total = precise_now() - t0;
        log(&format!(
            "bench: {name} ({groups} groups × {missed} missed): {account} ready {ready:.0} ms, \
             online {online:.0} ms, current {total:.0} ms; engine {:.0} ms in {} frames, \
             {} store transactions (longest {:.0} ms)",
            stages.borrow().engine_ms,
            stages.borrow().frames,
            stages.borrow().transactions,
            stages.borrow().longest_store_ms,
        ));
        done(client.dispose()).await.unwrap();
    }
}

/// One test, so the order holds (the runner does not keep the file's): the 10k readers hold
/// that one group only; the week's hold it too, beside their 50.
#[wasm_bindgen_test]
async fn back_after_10k_in_one_conversation_then_after_a_week() {
    scenario("10k", 1, 10_000).await;
    scenario("week", 50, 500).await;
}
