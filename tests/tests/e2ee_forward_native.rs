//! `confab-client` devices against the real server binary, both stores: a forward out of an
//! encrypted conversation into a plaintext one is refused on the device and never reaches
//! the server; encrypted to encrypted and plaintext to encrypted are sealed and read.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use confab_client::Client as NativeClient;
use confab_core::client::Intent;
use confab_core::ids::ConvId;
use confab_e2e::native_support::*;
use confab_e2e::{now_ms, Backend, TestServer};

fn conv(id: &str) -> ConvId {
    ConvId::new(id).unwrap()
}

/// A group `id` of alice with bob, encrypted or not, followed by both.
async fn make(alice: &NativeClient, bob: &NativeClient, id: &str, encrypted: bool) {
    let mut create = group_of(&conv(id), &["bob"]);
    if let Intent::CreateConversation { encrypted: e, .. } = &mut create {
        *e = encrypted;
    }
    let made = alice.intent(create).await.unwrap();
    accepted(alice, made).await;
    follow_conv(alice, &conv(id)).await;
    follow_conv(bob, &conv(id)).await;
    if encrypted {
        at_epoch(bob, &conv(id), 1).await;
    }
}

/// Alice's forward of `message` of `from` into `to` as message `id`, with its body.
fn forward(from: &str, message: &str, to: &str, id: &str, body: &str) -> Intent {
    let at = now_ms();
    confab_testkit::forward::forward((&conv(from), message), &conv(to), (id, "alice"), body, at)
}

async fn forwards(backend: Backend) {
    let server = TestServer::start(backend).await.unwrap();
    let dirs = fresh_dirs(&format!("e2ee-forward-{backend:?}"), 2);
    let alice = device_client(&server, "alice", "phone", &dirs[0]);
    let bob = device_client(&server, "bob", "phone", &dirs[1]);
    online_with_packages(&[&alice, &bob]).await;
    make(&alice, &bob, "secret", true).await;
    make(&alice, &bob, "open", false).await;
    make(&alice, &bob, "vault", true).await;
    let m1 = send(&alice, &conv("secret"), "m1", "the launch code").await;
    accepted(&alice, m1).await;
    reads(&bob, &conv("secret"), "m1", "the launch code").await;

    // Into the clear: refused on the device with its code.
    let refused = alice
        .intent(forward("secret", "m1", "open", "f1", "the launch code"))
        .await;
    let code = match &refused {
        Err(confab_client::Error::Engine(e)) => e.code().to_owned(),
        other => panic!("the forward went through: {other:?}"),
    };
    assert_eq!(code, "forward_out_of_encrypted");

    // Nothing reached the server: bob reads alice's next message there, and no forward.
    let p1 = send(&alice, &conv("open"), "p1", "plain hello").await;
    accepted(&alice, p1).await;
    reads(&bob, &conv("open"), "p1", "plain hello").await;
    let held = bodies(&bob, &conv("open")).await;
    assert_eq!(held, vec!["plain hello".to_owned()], "{held:?}");

    // Encrypted to encrypted, and plaintext to encrypted: sealed, and read by bob.
    for (from, message, to, id, body) in [
        ("secret", "m1", "vault", "f2", "the launch code"),
        ("open", "p1", "secret", "f3", "plain hello"),
    ] {
        let sent = alice.intent(forward(from, message, to, id, body)).await;
        accepted(&alice, sent.unwrap()).await;
        reads(&bob, &conv(to), id, body).await;
    }
}

#[tokio::test]
async fn forwards_out_of_encryption_are_refused_sqlite() {
    forwards(Backend::Sqlite).await;
}

#[tokio::test]
async fn forwards_out_of_encryption_are_refused_postgres() {
    forwards(Backend::Postgres).await;
}
