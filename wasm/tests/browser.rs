//! In headless Chromium with real IndexedDB: the stores pass the conformance suite, and
//! history and the outbox survive a reload (a new client on the same database).
#![cfg(target_family = "wasm")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use confab_core::client::store::conformance;
use confab_core::client::{LocalStore, MemoryStore, StoreOp};
use confab_wasm::store::{IdbStore, JsStore};
use confab_wasm::types::{IntentResult, OutboxItem};
use support::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// Nothing listens there: the reload tests stay offline.
const NOWHERE: &str = "ws://127.0.0.1:9/ws";

#[wasm_bindgen(inline_js = r#"
export function mapAdapter() {
  const m = new Map();
  return {
    async get(key) { return m.get(key); },
    async scan(prefix) {
      return [...m.keys()].filter((k) => k.startsWith(prefix)).sort()
        .map((k) => [k, m.get(k)]);
    },
    async write(ops) {
      const next = new Map(m);
      for (const op of ops) {
        if (op.op === "put") next.set(op.key, op.value);
        else if (op.op === "delete") next.delete(op.key);
        else if (op.op === "deletePrefix") {
          for (const k of [...next.keys()]) if (k.startsWith(op.prefix)) next.delete(k);
        } else throw new Error("unknown op " + op.op);
      }
      m.clear();
      for (const [k, v] of next) m.set(k, v);
    },
  };
}
// `mapAdapter` whose writes throw while `failing` (and count every try).
export function flakyAdapter() {
  const inner = mapAdapter();
  const a = {
    failing: false,
    tries: 0,
    get: (key) => inner.get(key),
    scan: (prefix) => inner.scan(prefix),
    async write(ops) {
      a.tries++;
      if (a.failing) throw new Error("disk full");
      return inner.write(ops);
    },
  };
  return a;
}
export function brokenAdapter() {
  return {
    async get() { return undefined; },
    async scan() { return []; },
    async write() { throw new Error("disk full"); },
  };
}
"#)]
extern "C" {
    fn mapAdapter() -> JsValue;
    fn brokenAdapter() -> JsValue;
    fn flakyAdapter() -> JsValue;
}

#[wasm_bindgen_test]
async fn indexeddb_store_passes_the_conformance_suite() {
    let name = unique("conformance");
    let store = IdbStore::open(&name).await.unwrap();
    conformance(&store).await.unwrap();
    // And what it stored is there for the next connection.
    store.close();
    let again = IdbStore::open(&name).await.unwrap();
    assert_eq!(again.get("doc0").await.unwrap(), Some(vec![9]));
    again.close();
    IdbStore::delete_database(&name).await.unwrap();
}

#[wasm_bindgen_test]
async fn memory_and_adapter_stores_pass_the_conformance_suite() {
    conformance(&MemoryStore::new()).await.unwrap();
    let adapter = JsStore::new(mapAdapter()).unwrap();
    conformance(&adapter).await.unwrap();
    // The exported checker a host runs on its own adapter.
    confab_wasm::store::check_storage_adapter(mapAdapter().unchecked_into())
        .await
        .unwrap();
}

#[wasm_bindgen_test]
async fn an_adapter_failure_is_a_store_error() {
    let adapter = JsStore::new(brokenAdapter()).unwrap();
    let err = adapter
        .write(vec![StoreOp::Put("k".into(), vec![1])])
        .await
        .unwrap_err();
    assert!(err.0.contains("disk full"), "{err}");
    assert!(JsStore::new(JsValue::from_str("nope")).is_err());
}

/// An adapter's failed write is tried again until it is stored, and `dispose()` still ends
/// while the adapter keeps failing (it gives up instead of waiting for the store forever).
#[wasm_bindgen_test]
async fn an_adapters_failed_write_is_tried_again_and_dispose_still_ends() {
    let adapter = flakyAdapter();
    let alice = client(NOWHERE, "t", "demo", "alice", adapter.clone(), None);
    done(alice.ready()).await.unwrap();
    let set = |name: &str, value: JsValue| {
        js_sys::Reflect::set(&adapter, &name.into(), &value).unwrap();
    };
    let tries = || {
        js_sys::Reflect::get(&adapter, &"tries".into())
            .unwrap()
            .as_f64()
            .unwrap()
    };
    let outbox_keys = || async {
        let store = JsStore::new(adapter.clone()).unwrap();
        store.scan("out/").await.unwrap().len()
    };
    set("failing", JsValue::TRUE);
    let before = tries();
    let group: IntentResult = ok(alice.create_group(None)).await;
    wait_for("three tries of the write", 15_000.0, || {
        tries() >= before + 3.0
    })
    .await;
    assert_eq!(outbox_keys().await, 0, "nothing stored while it fails");

    set("failing", JsValue::FALSE);
    done(alice.flush()).await.unwrap();
    assert_eq!(
        outbox_keys().await,
        1,
        "the creation is stored once it works"
    );

    set("failing", JsValue::TRUE);
    send(&alice, group.conv.as_deref().unwrap(), "lost with the page").await;
    done(alice.dispose()).await.unwrap();
}

#[wasm_bindgen_test]
async fn history_and_outbox_survive_a_reload() {
    let db = unique("reload");
    let alice = client(
        NOWHERE,
        "t",
        "demo",
        "alice",
        "indexeddb".into(),
        Some(db.clone()),
    );
    done(alice.ready()).await.unwrap();
    let group: IntentResult = ok(alice.create_group(None)).await;
    let conv = group.conv.clone().unwrap();
    for body in ["one", "two", "three"] {
        send(&alice, &conv, body).await;
    }
    assert_eq!(bodies(&alice, &conv), ["one", "two", "three"]);
    let outbox: Vec<OutboxItem> = alice
        .outbox()
        .into_iter()
        .map(|o| o.to_rust().unwrap())
        .collect();
    assert_eq!(outbox.len(), 4, "create + 3 sends wait offline");
    // "Reload": drop the client, open a new one on the same database.
    done(alice.dispose()).await.unwrap();
    drop(alice);

    let again = client(
        NOWHERE,
        "t",
        "demo",
        "alice",
        "indexeddb".into(),
        Some(db.clone()),
    );
    done(again.ready()).await.unwrap();
    let summaries = again.conversations();
    assert_eq!(summaries.len(), 1, "the conversation list is restored");
    done(again.open_conversation(conv.clone(), None))
        .await
        .unwrap();
    let items = timeline(&again, &conv);
    assert_eq!(
        items
            .iter()
            .map(|i| i.message.body.as_str())
            .collect::<Vec<_>>(),
        ["one", "two", "three"]
    );
    assert!(
        items.iter().all(|i| i.pending),
        "not accepted yet: still pending"
    );
    let outbox: Vec<OutboxItem> = again
        .outbox()
        .into_iter()
        .map(|o| o.to_rust().unwrap())
        .collect();
    assert_eq!(outbox.len(), 4, "the outbox is restored");
    assert_eq!(
        outbox.iter().map(|o| o.id).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    // New intents continue the ids.
    let next = send(&again, &conv, "four").await;
    assert_eq!(next.id, 5);
    done(again.dispose()).await.unwrap();
    IdbStore::delete_database(&db).await.unwrap();
}

#[wasm_bindgen_test]
async fn a_store_belongs_to_one_account() {
    let db = unique("owner");
    let alice = client(
        NOWHERE,
        "t",
        "demo",
        "alice",
        "indexeddb".into(),
        Some(db.clone()),
    );
    done(alice.ready()).await.unwrap();
    done(alice.dispose()).await.unwrap();
    let bob = client(
        NOWHERE,
        "t",
        "demo",
        "bob",
        "indexeddb".into(),
        Some(db.clone()),
    );
    assert_eq!(code_of(bob.ready()).await, "store_mismatch");
    assert_eq!(
        code_of(bob.send("c1".into(), "hi".into())).await,
        "store_mismatch"
    );
    IdbStore::delete_database(&db).await.unwrap();
}

#[wasm_bindgen_test]
async fn errors_carry_stable_codes() {
    let alice = client(NOWHERE, "t", "demo", "alice", "memory".into(), None);
    done(alice.ready()).await.unwrap();
    // A model error: an invalid id.
    assert_eq!(
        code_of(alice.send("bad.id".into(), "x".into())).await,
        "invalid_format"
    );
    // A policy denial: sending to a conversation that does not exist (not a member).
    let code = code_of(alice.send("nowhere".into(), "x".into())).await;
    assert!(!code.is_empty() && code != "internal", "{code}");
    // Editing a message that is not loaded.
    assert_eq!(
        code_of(alice.edit("nowhere".into(), "m1".into(), "x".into())).await,
        "not_found"
    );
    // A bad option.
    let bad = serde_wasm_bindgen::to_value(&serde_json::json!({"url": "x"})).unwrap();
    let err = confab_wasm::ConfabClient::new(tsify::Ts::new_unchecked(bad)).unwrap_err();
    let code = js_sys::Reflect::get(&err, &"code".into()).unwrap();
    assert_eq!(code.as_string().as_deref(), Some("invalid_argument"));
    assert!(err.is_instance_of::<js_sys::Error>());
}

#[wasm_bindgen_test]
async fn events_reach_subscribers_until_they_unsubscribe() {
    use std::cell::RefCell;
    use std::rc::Rc;
    let alice = client(NOWHERE, "t", "demo", "alice", "memory".into(), None);
    done(alice.ready()).await.unwrap();
    let seen: Rc<RefCell<Vec<String>>> = Rc::default();
    let callback = {
        let seen = seen.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            let kind = js_sys::Reflect::get(&event, &"type".into()).unwrap();
            seen.borrow_mut().push(kind.as_string().unwrap());
        })
        .into_js_value()
        .unchecked_into::<js_sys::Function>()
    };
    let unsubscribe = alice
        .on(tsify::Ts::new_unchecked("*".into()), callback)
        .unwrap();
    let group: IntentResult = ok(alice.create_group(None)).await;
    let conv = group.conv.unwrap();
    send(&alice, &conv, "hello").await;
    {
        let seen = seen.borrow();
        for kind in ["intent", "conversation", "timeline", "conversations", "doc"] {
            assert!(seen.iter().any(|s| s == kind), "{kind} in {seen:?}");
        }
    }
    unsubscribe.call0(&JsValue::NULL).unwrap();
    let before = seen.borrow().len();
    send(&alice, &conv, "again").await;
    assert_eq!(seen.borrow().len(), before, "no event after unsubscribing");
}

#[wasm_bindgen_test]
async fn reconnects_with_backoff_and_a_fresh_token_each_time() {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;
    let calls = Rc::new(Cell::new(0u32));
    let provider = {
        let calls = calls.clone();
        Closure::<dyn FnMut() -> JsValue>::new(move || {
            calls.set(calls.get() + 1);
            // A promise, as a real provider would return.
            js_sys::Promise::resolve(&JsValue::from(format!("token-{}", calls.get()))).into()
        })
        .into_js_value()
        .unchecked_into::<js_sys::Function>()
    };
    let options = confab_wasm::types::ClientOptions {
        url: NOWHERE.into(),
        token_provider: provider,
        storage: "memory".into(),
        tenant: "demo".into(),
        account: "alice".into(),
        device_id: None,
        db_name: None,
        reconnect: Some(confab_wasm::types::ReconnectOptions {
            min_delay_ms: 100,
            max_delay_ms: 400,
        }),
        ping_interval_ms: None,
        ping_timeout_ms: None,
        http_url: None,
        trace: None,
        auto_delivered: None,
    };
    let alice = confab_wasm::ConfabClient::new(tsify::Ts::from_rust(&options).unwrap()).unwrap();
    let delays: Rc<RefCell<Vec<(u32, u32)>>> = Rc::default();
    let callback = {
        let delays = delays.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            let get = |k: &str| {
                js_sys::Reflect::get(&event, &k.into())
                    .unwrap()
                    .as_f64()
                    .unwrap()
            };
            delays
                .borrow_mut()
                .push((get("attempt") as u32, get("delayMs") as u32));
        })
        .into_js_value()
        .unchecked_into::<js_sys::Function>()
    };
    alice
        .on(tsify::Ts::new_unchecked("reconnecting".into()), callback)
        .unwrap();
    // Every `connection` event as "state/reason".
    let states: Rc<RefCell<Vec<String>>> = Rc::default();
    let on_state = {
        let states = states.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            let get = |k: &str| {
                js_sys::Reflect::get(&event, &k.into())
                    .ok()
                    .and_then(|v| v.as_string())
                    .unwrap_or_default()
            };
            states
                .borrow_mut()
                .push(format!("{}/{}", get("state"), get("reason")));
        })
        .into_js_value()
        .unchecked_into::<js_sys::Function>()
    };
    alice
        .on(tsify::Ts::new_unchecked("connection".into()), on_state)
        .unwrap();
    let state = |c: &confab_wasm::ConfabClient| c.connection_state().unwrap().as_string();
    assert_eq!(state(&alice).as_deref(), Some("offline"));
    let connecting = alice.connect();
    wait_for("five reconnect attempts", 10_000.0, || {
        delays.borrow().len() >= 5
    })
    .await;
    for (i, (attempt, delay)) in delays.borrow().iter().enumerate() {
        assert_eq!(*attempt as usize, i + 1);
        let cap = (100u32 << i).min(400);
        assert!(
            cap / 2 <= *delay && *delay <= cap,
            "attempt {attempt}: {delay} ms"
        );
    }
    assert!(calls.get() >= 5, "a token per attempt: {}", calls.get());
    {
        // Each failed attempt: connecting, then offline because the socket closed.
        let states = states.borrow();
        assert_eq!(
            states.first().map(String::as_str),
            Some("connecting/"),
            "{states:?}"
        );
        assert!(states.iter().any(|s| s == "offline/closed"), "{states:?}");
        assert!(
            states.windows(2).all(|w| w[0] != w[1]),
            "only changes: {states:?}"
        );
    }
    done(alice.disconnect()).await.unwrap();
    assert_eq!(
        states.borrow().last().map(String::as_str),
        Some("offline/disconnected")
    );
    assert_eq!(state(&alice).as_deref(), Some("offline"));
    let error = done(connecting).await.unwrap_err();
    let code = js_sys::Reflect::get(&error, &"code".into()).unwrap();
    assert_eq!(code.as_string().as_deref(), Some("disconnected"));
    let after = calls.get();
    sleep(600.0).await;
    assert_eq!(calls.get(), after, "no attempt after disconnect()");
    assert!(!alice.online());
}

#[wasm_bindgen_test]
async fn a_refusal_is_a_sentence_with_the_title_and_keeps_its_code_and_detail() {
    use confab_wasm::policy::{PolicyQuery, PolicyVerdict};
    use confab_wasm::types::{CreateConversationInput, MemberInput, Role};
    let alice = client(NOWHERE, "t", "demo", "alice", "memory".into(), None);
    done(alice.ready()).await.unwrap();
    let input = CreateConversationInput {
        id: None,
        title: Some("Weekend plans".into()),
        members: Some(vec![MemberInput::Account("bob".into())]),
        settings: None,
        encrypted: None,
    };
    let group: IntentResult =
        ok(alice.create_group(Some(tsify::Ts::from_rust(&input).unwrap()))).await;
    let conv = group.conv.unwrap();
    // The owner may not make anyone owner: roles are given below one's own.
    let query = PolicyQuery::SetRole {
        conv: conv.clone(),
        account: "bob".into(),
        role: Role::Owner,
        until: None,
    };
    let verdict: PolicyVerdict = alice
        .can(tsify::Ts::from_rust(&query).unwrap())
        .unwrap()
        .to_rust()
        .unwrap();
    let sentence = "You can only give roles below your own (owner) in Weekend plans";
    assert!(!verdict.allowed);
    assert_eq!(verdict.code.as_deref(), Some("role_too_high"));
    assert_eq!(verdict.reason.as_deref(), Some(sentence));
    assert!(verdict
        .detail
        .is_some_and(|d| !d.is_empty() && d != sentence));
    // The intent itself is refused with the same sentence as the error's message.
    let error = done(alice.set_role(
        conv,
        "bob".into(),
        tsify::Ts::from_rust(&Role::Owner).unwrap(),
        None,
    ))
    .await
    .expect_err("one owner");
    let code = js_sys::Reflect::get(&error, &"code".into()).unwrap();
    assert_eq!(code.as_string().as_deref(), Some("role_too_high"));
    let message = js_sys::Reflect::get(&error, &"message".into()).unwrap();
    assert_eq!(message.as_string().as_deref(), Some(sentence));
}

#[wasm_bindgen_test]
async fn a_lapsing_role_tells_the_app_that_shows_the_conversation_when_it_lapses() {
    use std::cell::RefCell;
    use std::rc::Rc;

    use confab_wasm::types::{Conversation, CreateConversationInput, MemberInput, Role};
    let alice = client(NOWHERE, "t", "demo", "alice", "memory".into(), None);
    done(alice.ready()).await.unwrap();
    let input = CreateConversationInput {
        members: Some(vec![MemberInput::Account("bob".into())]),
        ..Default::default()
    };
    let group: IntentResult =
        ok(alice.create_group(Some(tsify::Ts::from_rust(&input).unwrap()))).await;
    let conv = group.conv.unwrap();
    let until = now() + 1_500.0;
    let moderator = tsify::Ts::from_rust(&Role::Moderator).unwrap();
    let _: IntentResult =
        ok(alice.set_role(conv.clone(), "bob".into(), moderator, Some(until))).await;
    let role_of_bob = || {
        let view: Conversation =
            serde_wasm_bindgen::from_value(alice.conversation(&conv).unwrap()).unwrap();
        let bob = view
            .members
            .into_iter()
            .find(|m| m.account == "bob")
            .unwrap();
        serde_json::to_value(bob.role).unwrap()
    };
    assert_eq!(role_of_bob(), "moderator");

    // Nothing is written when the time comes; the `conversation` event comes then.
    let heard: Rc<RefCell<Vec<f64>>> = Rc::default();
    let callback = {
        let heard = heard.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |_: JsValue| heard.borrow_mut().push(now()))
            .into_js_value()
            .unchecked_into::<js_sys::Function>()
    };
    let _off = alice
        .on(tsify::Ts::new_unchecked("conversation".into()), callback)
        .unwrap();
    // (An event of the role's own write may come first: the one at the lapse is the one
    // after it, with nothing else happening on this offline client.)
    wait_for("the lapse's event", 5_000.0, || {
        heard.borrow().iter().any(|t| *t >= until)
    })
    .await;
    assert_eq!(role_of_bob(), "member");
    done(alice.dispose()).await.unwrap();
}
