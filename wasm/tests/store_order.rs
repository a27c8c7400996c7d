//! The store queue's ordering on IndexedDB: a write begins at once, while the
//! transaction before it is still in flight, and a frame still leaves only after the
//! transaction holding its change committed. Watched from the page: the test wraps
//! `IDBDatabase.transaction`, `IDBObjectStore.put` and `WebSocket.send` and logs, in one
//! sequence, when each `readwrite` transaction was made and ended and when each frame left.
//! Needs the test server (`cargo xtask wasm test`).
#![cfg(target_family = "wasm")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use confab_core::protocol::{decode_client, ClientFrame};
use confab_wasm::store::IdbStore;
use confab_wasm::types::{ClientOptions, CreateConversationInput, IntentResult, MemberInput};
use confab_wasm::ConfabClient;
use js_sys::Promise;
use serde::Deserialize;
use std::cell::Cell;
use std::rc::Rc;
use support::*;
use tsify::Ts;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const WAIT: f64 = 15_000.0;

#[wasm_bindgen(inline_js = r#"
export function watchStore(dbName) {
  const log = { events: 0, txs: [], sends: [] };
  let resolveFirst;
  log.firstOut = new Promise((resolve) => (resolveFirst = resolve));
  const txs = new WeakMap();
  const orig = {
    tx: IDBDatabase.prototype.transaction,
    put: IDBObjectStore.prototype.put,
    send: WebSocket.prototype.send,
  };
  log.restore = () => {
    IDBDatabase.prototype.transaction = orig.tx;
    IDBObjectStore.prototype.put = orig.put;
    WebSocket.prototype.send = orig.send;
  };
  IDBDatabase.prototype.transaction = function (...args) {
    const tx = orig.tx.apply(this, args);
    if (this.name === dbName && tx.mode === "readwrite") {
      const rec = { created: log.events++, ended: null, committed: false, outs: [] };
      log.txs.push(rec);
      txs.set(tx, rec);
      // Added before the client sets its handlers: runs first at the same event.
      tx.addEventListener("complete", () => { rec.ended = log.events++; rec.committed = true; });
      tx.addEventListener("abort", () => { rec.ended = log.events++; });
    }
    return tx;
  };
  IDBObjectStore.prototype.put = function (value, key) {
    const rec = txs.get(this.transaction);
    if (rec && typeof key === "string" && key.startsWith("out/")) {
      rec.outs.push({ key, value: new Uint8Array(value).slice() });
      resolveFirst(key);
    }
    return orig.put.call(this, value, key);
  };
  WebSocket.prototype.send = function (data) {
    if (ArrayBuffer.isView(data) || data instanceof ArrayBuffer) {
      const bytes = ArrayBuffer.isView(data)
        ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
        : new Uint8Array(data);
      log.sends.push({ at: log.events++, bytes: bytes.slice() });
    }
    return orig.send.call(this, data);
  };
  return log;
}
// While `on`, a `readwrite` transaction of database `dbName` is aborted where the client
// commits it: its writes are rolled back and it ends with `abort`, as a full disk or the
// quota ends one.
export function failCommits(dbName) {
  const orig = IDBTransaction.prototype.commit;
  const ctl = { on: true, failed: 0 };
  ctl.restore = () => { IDBTransaction.prototype.commit = orig; };
  IDBTransaction.prototype.commit = function () {
    if (ctl.on && this.db.name === dbName && this.mode === "readwrite") {
      ctl.failed++;
      return this.abort();
    }
    return orig.call(this);
  };
  return ctl;
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = watchStore)]
    fn watch_store(db: &str) -> JsValue;
    #[wasm_bindgen(js_name = failCommits)]
    fn fail_commits(db: &str) -> JsValue;
}

#[derive(Debug, Deserialize)]
struct Tx {
    created: u32,
    ended: Option<u32>,
    committed: bool,
    outs: Vec<Out>,
}

#[derive(Deserialize)]
struct Out {
    key: String,
    #[serde(with = "serde_bytes")]
    value: Vec<u8>,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({} bytes)", self.key, self.value.len())
    }
}

#[derive(Debug, Deserialize)]
struct Sent {
    at: u32,
    #[serde(with = "serde_bytes")]
    bytes: Vec<u8>,
}

fn field<T: serde::de::DeserializeOwned>(log: &JsValue, name: &str) -> T {
    serde_wasm_bindgen::from_value(js_sys::Reflect::get(log, &name.into()).unwrap()).unwrap()
}

fn outbox_key(id: u64) -> String {
    format!("out/{id:020}")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Checks that every change that left in a `submit` was in an outbox entry of a transaction
/// that had committed before the frame left; returns how many changes left.
fn stored_before_sent(txs: &[Tx], sends: &[Sent]) -> usize {
    let mut submitted = 0;
    for sent in sends {
        let Ok(ClientFrame::Submit { changes, .. }) = decode_client(&sent.bytes, usize::MAX) else {
            continue;
        };
        for change in changes {
            let stored_before = txs.iter().any(|t| {
                t.committed
                    && t.ended.is_some_and(|ended| ended < sent.at)
                    && t.outs.iter().any(|o| contains(&o.value, &change))
            });
            assert!(
                stored_before,
                "a change left (event {}) before a transaction holding it committed: {txs:?}",
                sent.at
            );
            submitted += 1;
        }
    }
    submitted
}

fn call(object: &JsValue, method: &str) {
    let f: js_sys::Function = js_sys::Reflect::get(object, &method.into())
        .unwrap()
        .unchecked_into();
    f.call0(object).unwrap();
}

/// Alice on the IndexedDB database `db`, started and connected.
async fn connected_alice(s: &Server, db: &str) -> ConfabClient {
    let alice = alice_in(s, db);
    done(alice.ready()).await.unwrap();
    done(alice.connect()).await.unwrap();
    alice
}

/// What a new client on `db` (a reload) shows of `conv`.
async fn bodies_after_reload(s: &Server, db: &str, conv: &str) -> Vec<String> {
    let again = alice_in(s, db);
    done(again.ready()).await.unwrap();
    done(again.open_conversation(conv.to_owned(), None))
        .await
        .unwrap();
    let shown = bodies(&again, conv);
    done(again.dispose()).await.unwrap();
    shown
}

async fn accepted(client: &ConfabClient, id: u64) {
    wait_for("the message accepted", WAIT, || {
        state_of(client, id).as_deref() == Some("accepted")
    })
    .await;
}

#[wasm_bindgen_test]
async fn a_write_begins_at_once_and_a_frame_waits_for_its_commit() {
    let s = server();
    let db = unique("store-order");
    let alice = connected_alice(&s, &db).await;
    let group: IntentResult = ok(alice.create_group(None)).await;
    let conv = group.conv.clone().unwrap();
    // A first message, so the conversation's documents are loaded and nothing is in flight.
    let warm = send(&alice, &conv, "warm").await;
    accepted(&alice, warm.id).await;
    wait_for("the outbox empty", WAIT, || alice.outbox().is_empty()).await;
    done(alice.flush()).await.unwrap();

    let log = watch_store(&db);
    let first_out: Promise = js_sys::Reflect::get(&log, &"firstOut".into())
        .unwrap()
        .unchecked_into();
    let one = alice.send(conv.clone(), "one".into());
    // The first message's outbox write is in a transaction now; send the second before that
    // transaction can end (its `complete` is a task; this continues in a microtask).
    let first_key = JsFuture::from(first_out)
        .await
        .unwrap()
        .as_string()
        .unwrap();
    let two = alice.send(conv.clone(), "two".into());
    let one: IntentResult = ok(one).await;
    let two: IntentResult = ok(two).await;
    accepted(&alice, one.id).await;
    accepted(&alice, two.id).await;
    done(alice.flush()).await.unwrap();
    call(&log, "restore");
    assert_eq!(first_key, outbox_key(one.id));

    let txs: Vec<Tx> = field(&log, "txs");
    let sends: Vec<Sent> = field(&log, "sends");
    let holding = |id: u64| {
        txs.iter()
            .find(|t| t.outs.iter().any(|o| o.key == outbox_key(id)))
            .unwrap_or_else(|| panic!("no transaction wrote intent {id}'s outbox entry: {txs:?}"))
    };
    let (tx_one, tx_two) = (holding(one.id), holding(two.id));
    // Begun at once: the second write's transaction was made while the first was in flight
    // (before, it was made only after the first one's `complete` reached the page).
    let one_ended = tx_one.ended.expect("the first write ended");
    assert!(
        tx_two.created < one_ended,
        "the second write began only after the first ended: {tx_one:?} {tx_two:?}"
    );
    assert!(tx_one.committed && tx_two.committed);

    // Every change that left in a `submit` was in an outbox entry of a transaction that had
    // committed before the frame left: a crash at any point loses no change that was sent.
    let submitted = stored_before_sent(&txs, &sends);
    assert!(
        submitted >= 2,
        "both messages were submitted ({submitted} changes)"
    );

    // And both are there after a reload.
    done(alice.dispose()).await.unwrap();
    drop(alice);
    assert_eq!(
        bodies_after_reload(&s, &db, &conv).await,
        ["warm", "one", "two"]
    );
    IdbStore::delete_database(&db).await.unwrap();
}

/// A write that fails (IndexedDB aborts it, as a full disk does) is written again with
/// backoff, and the frame behind it waits: nothing reaches the server before it is stored,
/// the app is told once, and once the store works again the message is stored, sent and
/// accepted, and there after a reload.
#[wasm_bindgen_test]
async fn a_failed_write_is_written_again_and_its_frame_waits_for_it() {
    let s = server();
    let db = unique("store-fails");
    let alice = connected_alice(&s, &db).await;
    // Bob writes nothing (no delivery markers): every `submit` the page sends is alice's.
    let bob = client_with(&ClientOptions {
        auto_delivered: Some(false),
        ..options(s.ws, s.bob, s.tenant, "bob", "memory".into(), None)
    });
    done(bob.connect()).await.unwrap();
    let input = CreateConversationInput {
        members: Some(vec![MemberInput::Account("bob".into())]),
        ..Default::default()
    };
    let group: IntentResult = ok(alice.create_group(Some(Ts::from_rust(&input).unwrap()))).await;
    let conv = group.conv.clone().unwrap();
    let warm = send(&alice, &conv, "warm").await;
    accepted(&alice, warm.id).await;
    done(bob.open_conversation(conv.clone(), None))
        .await
        .unwrap();
    wait_for("bob has the first message", WAIT, || {
        bodies(&bob, &conv) == ["warm"]
    })
    .await;
    done(alice.flush()).await.unwrap();

    let storage_errors = Rc::new(Cell::new(0));
    let on_error = {
        let count = storage_errors.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            let code = js_sys::Reflect::get(&event, &"code".into()).unwrap();
            if code.as_string().as_deref() == Some("storage") {
                count.set(count.get() + 1);
            }
        })
        .into_js_value()
        .unchecked_into::<js_sys::Function>()
    };
    let unsubscribe = alice
        .on(Ts::new_unchecked("error".into()), on_error)
        .unwrap();
    let log = watch_store(&db);
    let failing = fail_commits(&db);
    let failed = || {
        js_sys::Reflect::get(&failing, &"failed".into())
            .unwrap()
            .as_f64()
            .unwrap()
    };

    let held = send(&alice, &conv, "held").await;
    // Tries at ~0, 0.2, 0.6 s (the backoff doubles from 200 ms, with jitter).
    wait_for("three failed tries", WAIT, || failed() >= 3.0).await;
    assert_eq!(
        bodies(&bob, &conv),
        ["warm"],
        "the message left before it was stored"
    );
    assert_eq!(
        storage_errors.get(),
        1,
        "the app is told once per run of failures"
    );

    js_sys::Reflect::set(&failing, &"on".into(), &JsValue::FALSE).unwrap();
    accepted(&alice, held.id).await;
    wait_for("bob has the held message", WAIT, || {
        bodies(&bob, &conv) == ["warm", "held"]
    })
    .await;
    done(alice.flush()).await.unwrap();
    call(&failing, "restore");
    call(&log, "restore");
    unsubscribe.call0(&JsValue::NULL).unwrap();
    let txs: Vec<Tx> = field(&log, "txs");
    let sends: Vec<Sent> = field(&log, "sends");
    assert!(
        txs.iter().filter(|t| !t.committed).count() >= 3,
        "the failed tries were real aborted transactions: {txs:?}"
    );
    assert!(
        stored_before_sent(&txs, &sends) >= 1,
        "the message was submitted"
    );

    done(alice.dispose()).await.unwrap();
    done(bob.dispose()).await.unwrap();
    drop(alice);
    assert_eq!(bodies_after_reload(&s, &db, &conv).await, ["warm", "held"]);
    IdbStore::delete_database(&db).await.unwrap();
}
