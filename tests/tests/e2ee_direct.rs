//! End-to-end encrypted direct conversations between `confab-client` devices against the
//! real server binary, on both stores (docs/E2EE.md, "Direct conversations and support
//! threads"): the encrypted one is apart from the plaintext one of the same pair, its
//! creation carries the group and the peer's devices, opening it again makes no second group; and two devices that open it
//! offline converge on one conversation and one group, both intents accepted, every message
//! of both readable by both.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use confab_client::Client as NativeClient;
use confab_core::client::{apply::direct_id, Intent, IntentStatus, KEY_PACKAGES_TARGET};
use confab_core::ids::{ConvId, TenantId};
use confab_e2e::native_support::*;
use confab_e2e::{Backend, TestServer};
use confab_testkit::ids::acc;

fn tenant() -> TenantId {
    TenantId::new("acme").unwrap()
}

fn open_direct(peer: &str, encrypted: bool) -> Intent {
    Intent::OpenDirect {
        peer: acc(peer),
        encrypted,
    }
}

async fn online(c: &NativeClient) {
    c.set_online(true).await.unwrap();
    eventually(c, "key packages topped up", |e| {
        e.key_packages_held() == Some(KEY_PACKAGES_TARGET)
    })
    .await;
}

async fn encrypted(c: &NativeClient, conv: &ConvId) -> bool {
    let conv = conv.clone();
    c.query(move |e| e.conversation(&conv).is_some_and(|c| c.encrypted()))
        .await
        .unwrap()
}

async fn encrypted_direct(backend: Backend) {
    let server = TestServer::start(backend).await.unwrap();
    let dirs = fresh_dirs(&format!("e2ee-direct-{backend:?}"), 2);
    let alice = device_client(&server, "alice", "phone", &dirs[0]);
    let bob = device_client(&server, "bob", "phone", &dirs[1]);
    online(&alice).await;
    online(&bob).await;

    // The plaintext and the encrypted direct conversation of one pair are two.
    let plain = direct_id(&tenant(), &acc("alice"), &acc("bob"), false);
    let sealed = direct_id(&tenant(), &acc("bob"), &acc("alice"), true);
    assert_ne!(plain, sealed);
    let id = alice.intent(open_direct("bob", false)).await.unwrap();
    accepted(&alice, id).await;
    let id = alice.intent(open_direct("bob", true)).await.unwrap();
    accepted(&alice, id).await;
    follow_conv(&alice, &plain).await;
    follow_conv(&alice, &sealed).await;
    assert!(!encrypted(&alice, &plain).await);
    assert!(encrypted(&alice, &sealed).await);
    // The creation carried the group and the commit adding bob's device.
    at_epoch(&alice, &sealed, 1).await;
    follow_conv(&bob, &sealed).await;
    at_epoch(&bob, &sealed, 1).await;

    let m1 = send(&alice, &sealed, "m1", "only for bob").await;
    accepted(&alice, m1).await;
    let m2 = send(&bob, &sealed, "m2", "only for alice").await;
    accepted(&bob, m2).await;
    for c in [&alice, &bob] {
        reads(c, &sealed, "m1", "only for bob").await;
        reads(c, &sealed, "m2", "only for alice").await;
    }
    let m3 = send(&bob, &plain, "m3", "in the clear").await;
    accepted(&bob, m3).await;

    // Bob opening it finds it: nothing to write (accepted at once), no second group.
    let id = bob.intent(open_direct("alice", true)).await.unwrap();
    let status = bob.query(move |e| e.status(id)).await.unwrap();
    assert!(
        matches!(status, None | Some(IntentStatus::Accepted)),
        "{status:?}"
    );
    assert_eq!(
        bob.query({
            let s = sealed.clone();
            move |e| e.group_epoch(&s)
        })
        .await
        .unwrap(),
        Some(1)
    );
}

#[tokio::test]
async fn encrypted_direct_sqlite() {
    encrypted_direct(Backend::Sqlite).await;
}

#[tokio::test]
async fn encrypted_direct_postgres() {
    encrypted_direct(Backend::Postgres).await;
}

/// Carol and dave open their encrypted direct conversation while both are offline, each
/// with a message, and come back at once: one group, both intents accepted, both messages
/// readable on both devices (`native_support::offline_creations_converge`).
async fn offline_race(backend: Backend) {
    let server = TestServer::start(backend).await.unwrap();
    let dirs = fresh_dirs(&format!("e2ee-direct-race-{backend:?}"), 2);
    let carol = device_client(&server, "carol", "phone", &dirs[0]);
    let dave = device_client(&server, "dave", "phone", &dirs[1]);
    let conv = direct_id(&tenant(), &acc("carol"), &acc("dave"), true);
    offline_creations_converge(
        &conv,
        [
            (&carol, open_direct("dave", true), "c1", "carol, offline"),
            (&dave, open_direct("carol", true), "d1", "dave, offline"),
        ],
    )
    .await;
}

#[tokio::test]
async fn offline_creations_converge_sqlite() {
    offline_race(Backend::Sqlite).await;
}

#[tokio::test]
async fn offline_creations_converge_postgres() {
    offline_race(Backend::Postgres).await;
}
