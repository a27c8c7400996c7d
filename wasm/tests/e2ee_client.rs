//! End-to-end encryption through the package's API, in headless Chromium against the real
//! server: three browser devices (each its own IndexedDB store and device name) make an
//! encrypted group, read each other both ways, a reloaded device reads old and new
//! messages from its restored MLS state, and a removed member's device reads nothing sent
//! after the removal.
#![cfg(target_family = "wasm")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use confab_wasm::types::{CreateConversationInput, Encryption, IntentResult, MemberInput};
use confab_wasm::ConfabClient;
use support::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// Generous: each device makes its key packages, and every step is a round trip.
const WAIT: f64 = 30_000.0;

/// `account`'s device named for this run, on its own IndexedDB database.
async fn device(token: &str, account: &str, run: &str) -> ConfabClient {
    let mut options = indexeddb_options(token, account, &format!("e2ee-{account}-{run}"));
    options.device_id = Some(format!("{account}-{run}"));
    let client = client_with(&options);
    done(client.ready()).await.unwrap();
    client
}

async fn online(client: &ConfabClient) {
    done(client.connect()).await.unwrap();
    wait_for("key packages uploaded", WAIT, || {
        client.key_packages_held() == Some(20.0)
    })
    .await;
}

fn encryption(client: &ConfabClient, conv: &str) -> Option<Encryption> {
    let view = client.conversation(conv).ok()?;
    if !view.is_object() {
        return None;
    }
    let block = js_sys::Reflect::get(&view, &"encryption".into()).ok()?;
    serde_wasm_bindgen::from_value(block).ok()
}

/// Whether `client` shows message `id` opened, reading `body`.
fn reads(client: &ConfabClient, conv: &str, id: &str, body: &str) -> bool {
    timeline(client, conv).iter().any(|i| {
        i.message.id == id && i.is_encrypted && i.undecryptable.is_none() && i.message.body == body
    })
}

async fn accepted(client: &ConfabClient, result: IntentResult, what: &str) {
    wait_for(what, WAIT, || {
        state_of(client, result.id).as_deref() == Some("accepted")
    })
    .await;
}

async fn sent(client: &ConfabClient, conv: &str, body: &str) -> String {
    let result = send(client, conv, body).await;
    let id = result.message.clone().unwrap();
    accepted(client, result, &format!("{body} accepted")).await;
    id
}

#[wasm_bindgen_test]
async fn an_encrypted_group_between_browser_devices() {
    let s = server();
    let run = unique("r");
    let alice = device(s.alice, "alice", &run).await;
    let bob = device(s.bob, "bob", &run).await;
    let carol = device(s.carol, "carol", &run).await;
    assert_eq!(alice.device_id(), format!("alice-{run}"));
    for c in [&alice, &bob, &carol] {
        online(c).await;
    }

    // A channel cannot be encrypted: a typed refusal, before anything is written.
    let channel = CreateConversationInput {
        encrypted: Some(true),
        ..Default::default()
    };
    let refused = code_of(alice.create_channel(Some(tsify::Ts::from_rust(&channel).unwrap())));
    assert_eq!(refused.await, "encryption_not_allowed");

    let input = CreateConversationInput {
        title: Some("vault".into()),
        members: Some(vec![
            MemberInput::Account("bob".into()),
            MemberInput::Account("carol".into()),
        ]),
        encrypted: Some(true),
        ..Default::default()
    };
    let created: IntentResult =
        ok(alice.create_group(Some(tsify::Ts::from_rust(&input).unwrap()))).await;
    let conv = created.conv.clone().unwrap();
    accepted(&alice, created, "the encrypted group accepted").await;
    for c in [&bob, &carol] {
        done(c.open_conversation(conv.clone(), None)).await.unwrap();
    }
    // The members' commit moved the group to epoch 1; everyone sees the same block.
    for c in [&alice, &bob, &carol] {
        wait_for("the group at key version 1", WAIT, || {
            encryption(c, &conv).is_some_and(|e| e.key_version == Some(1))
        })
        .await;
    }
    let block = encryption(&bob, &conv).unwrap();
    assert!(block.enabled);
    assert_eq!(block.protocol.as_deref(), Some("mls"));
    assert_eq!(block.group_id, Some(format!("{}/conv/{conv}", s.tenant)));
    assert!(block.last_key_rotation.is_some_and(|t| t > 0));

    // Both ways, read by all three.
    let m1 = sent(&alice, &conv, "sealed hello").await;
    let m2 = sent(&bob, &conv, "sealed reply").await;
    for c in [&alice, &bob, &carol] {
        wait_for("every device reads both", WAIT, || {
            reads(c, &conv, &m1, "sealed hello") && reads(c, &conv, &m2, "sealed reply")
        })
        .await;
    }

    // Bob reloads: his MLS state comes back from IndexedDB; he reads old and new.
    done(bob.dispose()).await.unwrap();
    drop(bob);
    let bob = device(s.bob, "bob", &run).await;
    done(bob.connect()).await.unwrap();
    done(bob.open_conversation(conv.clone(), None))
        .await
        .unwrap();
    let m3 = sent(&alice, &conv, "after bob's reload").await;
    wait_for("bob reads old and new after a reload", WAIT, || {
        reads(&bob, &conv, &m1, "sealed hello")
            && reads(&bob, &conv, &m2, "sealed reply")
            && reads(&bob, &conv, &m3, "after bob's reload")
    })
    .await;
    let m4 = sent(&bob, &conv, "bob still writes").await;
    wait_for("alice reads bob after his reload", WAIT, || {
        reads(&alice, &conv, &m4, "bob still writes")
    })
    .await;

    // Carol is removed (the removal carries the commit): she reads nothing sent after it.
    let removed: IntentResult = ok(alice.remove_member(conv.clone(), "carol".into(), None)).await;
    accepted(&alice, removed, "carol's removal accepted").await;
    wait_for("bob at key version 2", WAIT, || {
        encryption(&bob, &conv).is_some_and(|e| e.key_version == Some(2))
    })
    .await;
    let m5 = sent(&alice, &conv, "carol cannot read this").await;
    wait_for("bob reads what follows the removal", WAIT, || {
        reads(&bob, &conv, &m5, "carol cannot read this")
    })
    .await;
    sleep(1_000.0).await;
    for item in timeline(&carol, &conv) {
        if item.message.id == m5 {
            assert!(item.undecryptable.is_some(), "carol opened {item:?}");
        }
        assert_ne!(item.message.body, "carol cannot read this");
    }
    // What she read before stays read.
    assert!(reads(&carol, &conv, &m1, "sealed hello"));

    for c in [alice, bob, carol] {
        done(c.dispose()).await.unwrap();
    }
}
