//! Devices nobody added join by saying they wait (docs/E2EE.md, "Joining"), against the real
//! server binary on both stores: dan, added before his first sign-in, reads what alice sends
//! once he has signed in; his new tablet, with his phone away, is added by alice's device; and
//! a device that waited while no member was online is added when one subscribes later (the
//! server kept its signal).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use confab_client::Client as NativeClient;
use confab_core::client::Intent;
use confab_core::ids::ConvId;
use confab_e2e::native_support::*;
use confab_e2e::{Backend, TestServer};

fn conv() -> ConvId {
    ConvId::new("latecomers").unwrap()
}

async fn run(c: &NativeClient, intent: Intent) {
    let id = c.intent(intent).await.unwrap();
    accepted(c, id).await;
}

async fn joining(backend: Backend) {
    let server = TestServer::start(backend).await.unwrap();
    let dirs = fresh_dirs(&format!("e2ee-joining-{backend:?}"), 5);
    let alice = device_client(&server, "alice", "phone", &dirs[0]);
    let bob = device_client(&server, "bob", "phone", &dirs[1]);
    online_with_packages(&[&alice, &bob]).await;
    let mut create = group_of(&conv(), &["bob", "dan"]);
    if let Intent::CreateConversation { encrypted, .. } = &mut create {
        *encrypted = true;
    }
    run(&alice, create).await;
    follow_conv(&alice, &conv()).await;
    follow_conv(&bob, &conv()).await;
    at_epoch(&bob, &conv(), 1).await;
    accepted(&alice, send(&alice, &conv(), "m1", "before dan").await).await;

    // dan signs in for the first time: alice's device (the head) adds his.
    let dan = device_client(&server, "dan", "phone", &dirs[2]);
    online_with_packages(&[&dan]).await;
    follow_conv(&dan, &conv()).await;
    at_epoch(&dan, &conv(), 2).await;
    accepted(&alice, send(&alice, &conv(), "m2", "hello dan").await).await;
    reads(&dan, &conv(), "m2", "hello dan").await;

    // dan's phone is gone; his new tablet is added by alice's device.
    dan.set_online(false).await.unwrap();
    let tablet = device_client(&server, "dan", "tablet", &dirs[3]);
    online_with_packages(&[&tablet]).await;
    follow_conv(&tablet, &conv()).await;
    at_epoch(&tablet, &conv(), 3).await;
    accepted(&bob, send(&bob, &conv(), "m3", "hi tablet").await).await;
    reads(&tablet, &conv(), "m3", "hi tablet").await;

    // Nobody else online: dan's laptop says it waits (once for this connection); alice
    // subscribes later, hears the signal the server kept, and adds it.
    alice.set_online(false).await.unwrap();
    bob.set_online(false).await.unwrap();
    tablet.set_online(false).await.unwrap();
    let laptop = device_client(&server, "dan", "laptop", &dirs[4]);
    online_with_packages(&[&laptop]).await;
    follow_conv(&laptop, &conv()).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        laptop.query(|e| e.group_epoch(&conv())).await.unwrap(),
        None,
        "nobody online to add it"
    );
    alice.set_online(true).await.unwrap();
    at_epoch(&alice, &conv(), 4).await;
    at_epoch(&laptop, &conv(), 4).await;
}

#[tokio::test]
async fn devices_nobody_added_join_sqlite() {
    joining(Backend::Sqlite).await;
}

#[tokio::test]
async fn devices_nobody_added_join_postgres() {
    joining(Backend::Postgres).await;
}
