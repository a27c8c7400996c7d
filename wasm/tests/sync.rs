//! Against a real `confab-server` on 127.0.0.1 (started by `cargo xtask wasm test`, which
//! passes its URL and demo tokens in CONFAB_TEST_* at build time). Without them these tests
//! say so and pass.
#![cfg(target_family = "wasm")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::cell::RefCell;
use std::rc::Rc;

use confab_wasm::store::IdbStore;
use confab_wasm::types::{IntentResult, MemberInput};
use confab_wasm::ConfabClient;
use support::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const WAIT: f64 = 15_000.0;

struct Server {
    ws: &'static str,
    tenant: &'static str,
    alice: &'static str,
    bob: &'static str,
}

fn server() -> Option<Server> {
    Some(Server {
        ws: option_env!("CONFAB_TEST_WS")?,
        tenant: option_env!("CONFAB_TEST_TENANT").unwrap_or("demo"),
        alice: option_env!("CONFAB_TEST_TOKEN_ALICE")?,
        bob: option_env!("CONFAB_TEST_TOKEN_BOB")?,
    })
}

macro_rules! server_or_skip {
    () => {
        match server() {
            Some(s) => s,
            None => {
                web_sys_log(
                    "no CONFAB_TEST_WS: server tests skipped (run `cargo xtask wasm test`)",
                );
                return;
            }
        }
    };
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = log)]
    fn web_sys_log(s: &str);
}

/// Records the `type` of every event a client emits.
fn record(client: &ConfabClient) -> Rc<RefCell<Vec<JsValue>>> {
    let seen: Rc<RefCell<Vec<JsValue>>> = Rc::default();
    let callback = {
        let seen = seen.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| seen.borrow_mut().push(event))
            .into_js_value()
            .unchecked_into::<js_sys::Function>()
    };
    let _ = client
        .on(tsify::Ts::new_unchecked("*".into()), callback)
        .unwrap();
    seen
}

fn has_event(seen: &RefCell<Vec<JsValue>>, kind: &str) -> bool {
    seen.borrow().iter().any(|e| {
        js_sys::Reflect::get(e, &"type".into())
            .unwrap()
            .as_string()
            .as_deref()
            == Some(kind)
    })
}

#[wasm_bindgen_test]
async fn two_clients_talk_through_the_server() {
    let s = server_or_skip!();
    let alice = client(s.ws, s.alice, s.tenant, "alice", "memory".into(), None);
    let bob = client(s.ws, s.bob, s.tenant, "bob", "memory".into(), None);
    let alice_events = record(&alice);
    done(alice.connect()).await.unwrap();
    done(bob.connect()).await.unwrap();
    assert!(alice.online() && bob.online());
    assert!(has_event(&alice_events, "online"));

    let input = confab_wasm::types::CreateConversationInput {
        title: Some("lunch".into()),
        members: Some(vec![MemberInput::Account("bob".into())]),
        ..Default::default()
    };
    let group: IntentResult =
        ok(alice.create_group(Some(tsify::Ts::from_rust(&input).unwrap()))).await;
    let conv = group.conv.clone().unwrap();
    let hi = send(&alice, &conv, "hi bob").await;
    wait_for("alice's message accepted", WAIT, || {
        state_of(&alice, hi.id).as_deref() == Some("accepted")
    })
    .await;

    done(bob.open_conversation(conv.clone(), None))
        .await
        .unwrap();
    wait_for("bob sees alice's message", WAIT, || {
        bodies(&bob, &conv) == ["hi bob"]
    })
    .await;
    let conversation = bob.conversation(&conv).unwrap();
    let title = js_sys::Reflect::get(
        &js_sys::Reflect::get(&conversation, &"info".into()).unwrap(),
        &"title".into(),
    )
    .unwrap();
    assert_eq!(title.as_string().as_deref(), Some("lunch"));
    assert_eq!(bob.members(&conv).unwrap().len(), 2);

    let reply = send(&bob, &conv, "hi alice").await;
    wait_for("alice sees bob's reply", WAIT, || {
        bodies(&alice, &conv) == ["hi bob", "hi alice"]
    })
    .await;
    wait_for("bob's reply accepted", WAIT, || {
        state_of(&bob, reply.id).as_deref() == Some("accepted")
    })
    .await;
    wait_for("the same order on both sides, all accepted", WAIT, || {
        let a = timeline(&alice, &conv);
        let b = timeline(&bob, &conv);
        a.iter().all(|i| !i.pending && i.seq.is_some())
            && a.iter()
                .map(|i| (&i.message.id, i.seq))
                .eq(b.iter().map(|i| (&i.message.id, i.seq)))
    })
    .await;

    // Typing is relayed (ephemeral).
    alice.set_typing(&conv, true).unwrap();
    wait_for("bob sees alice typing", WAIT, || {
        bob.typing(&conv).unwrap() == ["alice"]
    })
    .await;

    // A read marker and a reaction travel too.
    let item = timeline(&bob, &conv).remove(0);
    ok::<IntentResult>(bob.react(conv.clone(), item.message.id.clone(), "👍".into(), None)).await;
    wait_for("alice sees bob's reaction", WAIT, || {
        timeline(&alice, &conv)[0]
            .message
            .reactions
            .get("👍")
            .is_some_and(|by| by.contains_key("bob"))
    })
    .await;

    done(alice.disconnect()).await.unwrap();
    assert!(!alice.online());
    assert!(has_event(&alice_events, "offline"));
    done(bob.dispose()).await.unwrap();
}

#[wasm_bindgen_test]
async fn offline_work_is_sent_on_connect_and_survives_a_reload() {
    let s = server_or_skip!();
    let db = unique("sync-reload");
    let alice = client(
        s.ws,
        s.alice,
        s.tenant,
        "alice",
        "indexeddb".into(),
        Some(db.clone()),
    );
    done(alice.ready()).await.unwrap();
    // Offline: the intents wait in the outbox.
    let group: IntentResult = ok(alice.create_group(None)).await;
    let conv = group.conv.clone().unwrap();
    let first = send(&alice, &conv, "written offline").await;
    assert_eq!(state_of(&alice, first.id).as_deref(), Some("pending"));
    done(alice.connect()).await.unwrap();
    wait_for("the offline message accepted", WAIT, || {
        state_of(&alice, first.id).as_deref() == Some("accepted")
    })
    .await;
    let events = record(&alice);
    let second = send(&alice, &conv, "written online").await;
    wait_for("the online message accepted", WAIT, || {
        state_of(&alice, second.id).as_deref() == Some("accepted")
    })
    .await;
    // The server pushes accepted changes back to every subscriber, the writer too; that push
    // is what stores them (until then the store keeps the outbox entry).
    // The server pushes accepted changes back to every subscriber, the writer too (before or
    // after the ack); that push is what stores them (until then the store keeps the outbox
    // entry): one `doc` event for the local write, one for the push.
    let bucket_doc = format!("{}/msgs/{}.{}", s.tenant, conv, second.bucket.unwrap());
    wait_for("the push of the accepted message", WAIT, || {
        events
            .borrow()
            .iter()
            .filter(|e| {
                js_sys::Reflect::get(e, &"doc".into())
                    .unwrap()
                    .as_string()
                    .as_deref()
                    == Some(bucket_doc.as_str())
            })
            .count()
            >= 2
    })
    .await;
    wait_for("accepted changes come back with their seq", WAIT, || {
        timeline(&alice, &conv).iter().all(|i| i.seq.is_some())
    })
    .await;
    assert!(alice.outbox().is_empty());
    done(alice.dispose()).await.unwrap();
    drop(alice);

    // Reload, offline: the accepted history is there, in server order, nothing pending.
    let again = client(
        s.ws,
        s.alice,
        s.tenant,
        "alice",
        "indexeddb".into(),
        Some(db.clone()),
    );
    done(again.ready()).await.unwrap();
    done(again.open_conversation(conv.clone(), None))
        .await
        .unwrap();
    let items = timeline(&again, &conv);
    assert_eq!(
        items
            .iter()
            .map(|i| i.message.body.as_str())
            .collect::<Vec<_>>(),
        ["written offline", "written online"]
    );
    assert!(
        items.iter().all(|i| !i.pending && i.seq.is_some()),
        "{items:?}"
    );
    assert!(again.outbox().is_empty());
    // Online again: catch-up from the stored cursors brings nothing twice.
    done(again.connect()).await.unwrap();
    let third = send(&again, &conv, "after reload").await;
    wait_for("the message after the reload accepted", WAIT, || {
        state_of(&again, third.id).as_deref() == Some("accepted")
    })
    .await;
    assert_eq!(
        bodies(&again, &conv),
        ["written offline", "written online", "after reload"]
    );
    done(again.dispose()).await.unwrap();
    IdbStore::delete_database(&db).await.unwrap();
}

#[wasm_bindgen_test]
async fn a_refused_token_rejects_connect() {
    let s = server_or_skip!();
    let mallory = client(s.ws, "not-a-jwt", s.tenant, "alice", "memory".into(), None);
    let code = code_of(mallory.connect()).await;
    assert!(
        ["auth_failed", "token_expired"].contains(&code.as_str()),
        "{code}"
    );
    done(mallory.dispose()).await.unwrap();
}
