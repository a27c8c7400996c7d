//! `timeline()` keeps the object of an unchanged item: a page finds what a push
//! changed by identity instead of comparing every item, and only changed items are
//! converted again.
#![cfg(target_family = "wasm")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use confab_wasm::types::{IntentResult, TimelineOptions};
use support::*;
use tsify::Ts;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// Nothing listens there: the client stays offline.
const NOWHERE: &str = "ws://127.0.0.1:9/ws";

fn objects(client: &confab_wasm::ConfabClient, conv: &str, limit: Option<usize>) -> Vec<JsValue> {
    let options =
        limit.map(|limit| Ts::from_rust(&TimelineOptions { limit: Some(limit) }).unwrap());
    client
        .timeline(conv, options)
        .unwrap()
        .into_iter()
        .map(JsValue::from)
        .collect()
}

fn same(a: &JsValue, b: &JsValue) -> bool {
    js_sys::Object::is(a, b)
}

#[wasm_bindgen_test]
async fn an_unchanged_item_is_the_same_object_and_a_changed_one_is_new() {
    let alice = client(NOWHERE, "t", "demo", "alice", "memory".into(), None);
    done(alice.ready()).await.unwrap();
    let group: IntentResult = ok(alice.create_group(None)).await;
    let conv = group.conv.clone().unwrap();
    send(&alice, &conv, "one").await;
    send(&alice, &conv, "two").await;

    let first = objects(&alice, &conv, None);
    assert_eq!(first.len(), 2);
    let again = objects(&alice, &conv, None);
    assert!(first.iter().zip(&again).all(|(a, b)| same(a, b)));

    send(&alice, &conv, "three").await;
    let third = objects(&alice, &conv, None);
    assert_eq!(third.len(), 3);
    assert!(same(&first[0], &third[0]) && same(&first[1], &third[1]));
    assert_eq!(bodies(&alice, &conv), ["one", "two", "three"]);

    // Editing "two" makes a new object for it alone.
    let two = timeline(&alice, &conv)[1].message.id.clone();
    done(alice.edit(conv.clone(), two, "two, edited".into()))
        .await
        .unwrap();
    let edited = objects(&alice, &conv, None);
    assert!(same(&third[0], &edited[0]));
    assert!(!same(&third[1], &edited[1]), "the edited item is new");
    assert!(same(&third[2], &edited[2]));
    assert_eq!(timeline(&alice, &conv)[1].message.body, "two, edited");

    // A window of the newest items hands out the same objects.
    let newest = objects(&alice, &conv, Some(2));
    assert_eq!(newest.len(), 2);
    assert!(same(&newest[0], &edited[1]) && same(&newest[1], &edited[2]));
    done(alice.dispose()).await.unwrap();
}

#[wasm_bindgen_test]
async fn a_window_converts_its_items_and_the_rest_later() {
    let alice = client(NOWHERE, "t", "demo", "alice", "memory".into(), None);
    done(alice.ready()).await.unwrap();
    let group: IntentResult = ok(alice.create_group(None)).await;
    let conv = group.conv.clone().unwrap();
    for body in ["a", "b", "c", "d"] {
        send(&alice, &conv, body).await;
    }
    let newest = objects(&alice, &conv, Some(1));
    assert_eq!(newest.len(), 1);
    let all = objects(&alice, &conv, None);
    assert_eq!(all.len(), 4);
    assert!(same(&newest[0], &all[3]));
    assert_eq!(bodies(&alice, &conv), ["a", "b", "c", "d"]);
    done(alice.dispose()).await.unwrap();
}

/// `conversation()` hands out the same object until the conversation's document changes:
/// a page asking on every redraw converts a 1,000-member group once per change of it.
#[wasm_bindgen_test]
async fn an_unchanged_conversation_is_the_same_object_and_a_changed_one_is_new() {
    let alice = client(NOWHERE, "t", "demo", "alice", "memory".into(), None);
    done(alice.ready()).await.unwrap();
    let group: IntentResult = ok(alice.create_group(None)).await;
    let conv = group.conv.clone().unwrap();
    let first = alice.conversation(&conv).unwrap();
    assert!(same(&first, &alice.conversation(&conv).unwrap()));
    // A message changes a bucket, not the conversation's document.
    send(&alice, &conv, "one").await;
    assert!(same(&first, &alice.conversation(&conv).unwrap()));
    done(alice.add_member(conv.clone(), "bob".into(), None))
        .await
        .unwrap();
    let added = alice.conversation(&conv).unwrap();
    assert!(!same(&first, &added), "a new member makes a new object");
    let members = js_sys::Reflect::get(&added, &"members".into()).unwrap();
    assert_eq!(js_sys::Array::from(&members).length(), 2);
    assert!(same(&added, &alice.conversation(&conv).unwrap()));
    done(alice.dispose()).await.unwrap();
}
