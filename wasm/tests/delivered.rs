//! Delivery markers the client writes by itself (docs/SCHEMA.md, "Delivery markers"),
//! against a real `confab-server` (started by `cargo xtask wasm test`): the sender sees its
//! messages delivered to the other device without that device's app calling
//! `markDelivered`; with `autoDelivered: false` nothing is written. Read markers' times
//! (`readTimes`) are the server's, the ones REST shows.
#![cfg(target_family = "wasm")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use confab_wasm::types::{
    ClientOptions, Conversation, CreateConversationInput, IntentResult, MemberInput, ReadTime,
};
use confab_wasm::ConfabClient;
use support::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const WAIT: f64 = 15_000.0;

/// Bob's client, with `autoDelivered` as given.
fn bob(s: &Server, auto_delivered: bool) -> ConfabClient {
    let options = ClientOptions {
        url: s.ws.to_owned(),
        token_provider: token_provider(s.bob),
        storage: "memory".into(),
        tenant: s.tenant.to_owned(),
        account: "bob".into(),
        device_id: Some("test".into()),
        db_name: None,
        reconnect: None,
        ping_interval_ms: None,
        ping_timeout_ms: None,
        http_url: None,
        trace: None,
        auto_delivered: Some(auto_delivered),
    };
    ConfabClient::new(tsify::Ts::from_rust(&options).unwrap()).unwrap()
}

fn delivered_to_bob(client: &ConfabClient, conv: &str) -> Option<String> {
    let value = client.conversation(conv).ok()?;
    let view: Conversation = serde_wasm_bindgen::from_value(value).ok()?;
    view.delivered.get("bob").cloned()
}

/// Alice's group with bob and five messages of hers; bob's client follows it.
async fn five_to_bob(s: &Server, bob: &ConfabClient) -> (ConfabClient, String, String) {
    let alice = client(s.ws, s.alice, s.tenant, "alice", "memory".into(), None);
    done(alice.connect()).await.unwrap();
    done(bob.connect()).await.unwrap();
    let input = CreateConversationInput {
        title: Some(unique("acks")),
        members: Some(vec![MemberInput::Account("bob".into())]),
        ..Default::default()
    };
    let group: IntentResult =
        ok(alice.create_group(Some(tsify::Ts::from_rust(&input).unwrap()))).await;
    let conv = group.conv.unwrap();
    done(bob.open_conversation(conv.clone(), None))
        .await
        .unwrap();
    for n in 1..=5 {
        send(&alice, &conv, &format!("hi {n}")).await;
    }
    wait_for("bob holds the five", WAIT, || bodies(bob, &conv).len() == 5).await;
    let newest = timeline(&alice, &conv).pop().unwrap().message.id;
    (alice, conv, newest)
}

#[wasm_bindgen_test]
async fn the_sender_sees_its_messages_delivered_without_the_receiver_asking() {
    let s = server();
    let bob = bob(&s, true);
    let (alice, conv, newest) = five_to_bob(&s, &bob).await;
    wait_for("alice sees the five delivered to bob", WAIT, || {
        delivered_to_bob(&alice, &conv).as_ref() == Some(&newest)
    })
    .await;
    done(alice.dispose()).await.unwrap();
    done(bob.dispose()).await.unwrap();
}

#[wasm_bindgen_test]
async fn auto_delivered_off_writes_nothing_until_the_app_marks() {
    let s = server();
    let bob = bob(&s, false);
    let (alice, conv, newest) = five_to_bob(&s, &bob).await;
    // Longer than the engine's delay and interval (0.3 s, 2 s).
    sleep(3_000.0).await;
    assert_eq!(delivered_to_bob(&alice, &conv), None);
    ok::<IntentResult>(bob.mark_delivered(conv.clone(), None)).await;
    wait_for("alice sees bob's marker", WAIT, || {
        delivered_to_bob(&alice, &conv).as_ref() == Some(&newest)
    })
    .await;
    done(alice.dispose()).await.unwrap();
    done(bob.dispose()).await.unwrap();
}

/// `GET /v1/conversations/{conv}` as `token`: member `who`'s `last_read_at`, in ms.
async fn rest_read_at(s: &Server, conv: &str, token: &str, who: &str) -> Option<f64> {
    let get = js_sys::Function::new_with_args(
        "url, token, who",
        "return fetch(url, { headers: { Authorization: `Bearer ${token}` } }).then((r) => \
         r.json()).then((c) => { const at = c.members.find((m) => m.user_id === who)\
         ?.last_read_at; return at ? Date.parse(at) : null; })",
    );
    let base = s.ws.replacen("ws://", "http://", 1);
    let url = format!("{}/v1/conversations/{conv}", base.trim_end_matches("/ws"));
    let args = js_sys::Array::of3(&url.into(), &token.into(), &who.into());
    let promise: js_sys::Promise = get
        .apply(&wasm_bindgen::JsValue::NULL, &args)
        .unwrap()
        .into();
    done(promise).await.unwrap().as_f64()
}

#[wasm_bindgen_test]
async fn read_times_are_the_servers_and_rest_shows_the_same() {
    let s = server();
    let bob = bob(&s, false);
    let offline = client(s.ws, s.alice, s.tenant, "alice", "memory".into(), None);
    assert_eq!(code_of(offline.read_times("any".into())).await, "offline");
    done(offline.dispose()).await.unwrap();

    let (alice, conv, newest) = five_to_bob(&s, &bob).await;
    let before = now();
    let read: IntentResult = ok(bob.mark_read(conv.clone(), None)).await;
    wait_for("bob's read marker accepted", WAIT, || {
        state_of(&bob, read.id).as_deref() == Some("accepted")
    })
    .await;
    let reads: Vec<ReadTime> = ok(alice.read_times(conv.clone())).await;
    assert_eq!(reads.len(), 1, "{reads:?}");
    assert_eq!(
        (reads[0].account.as_str(), &reads[0].message),
        ("bob", &newest)
    );
    let at = reads[0].at.expect("a stored time") as f64;
    // The server's clock, on this machine: within a few seconds of the page's.
    assert!((before - 5_000.0..=now() + 5_000.0).contains(&at), "{at}");
    assert_eq!(rest_read_at(&s, &conv, s.alice, "bob").await, Some(at));
    let bobs: Vec<ReadTime> = ok(bob.read_times(conv.clone())).await;
    assert_eq!(bobs, reads, "one time, whoever asks");
    done(alice.dispose()).await.unwrap();
    done(bob.dispose()).await.unwrap();
}
