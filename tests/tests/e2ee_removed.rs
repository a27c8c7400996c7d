//! A device removed from the directory leaves every group it is in at that group's next
//! commit, whoever makes it (docs/E2EE.md, "Every leaf is a registered device"), against the
//! real server binary on both stores: bob's laptop is removed while bob's phone is away;
//! alice's device learns it from the directory when it connects and commits the removal
//! itself, and the laptop, kept running with its saved state, reads nothing sealed after.
//! A device that stays connected hears of the removal from the server (`devices_changed`)
//! and commits it without reconnecting, on one node and through two.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "cluster/nodes.rs"]
#[allow(dead_code)] // the cluster suite uses the rest
mod cluster_nodes;
mod common;

use std::time::Duration;

use cluster_nodes::Nodes;
use confab_client::Client as NativeClient;
use confab_core::client::Intent;
use confab_core::ids::ConvId;
use confab_core::protocol::{ClientFrame, ServerFrame, SignalKind};
use confab_e2e::native_support::*;
use confab_e2e::{token, Backend, Client, TestServer};

async fn group_devices(c: &NativeClient, conv: &ConvId) -> Vec<String> {
    let conv = conv.clone();
    c.query(move |e| e.group_devices(&conv))
        .await
        .unwrap()
        .unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// alice's device on `alices`, bob's phone and laptop on `bobs`, all three in an encrypted
/// `conv` alice created (epoch 1).
async fn alice_and_bobs_two(
    alices: &TestServer,
    bobs: &TestServer,
    tag: &str,
    conv: &ConvId,
) -> [NativeClient; 3] {
    let dirs = fresh_dirs(&format!("e2ee-removed-{tag}"), 3);
    let alice = device_client(alices, "alice", "phone", &dirs[0]);
    let phone = device_client(bobs, "bob", "phone", &dirs[1]);
    let laptop = device_client(bobs, "bob", "laptop", &dirs[2]);
    online_with_packages(&[&alice, &phone, &laptop]).await;
    let mut create = group_of(conv, &["bob"]);
    if let Intent::CreateConversation { encrypted, .. } = &mut create {
        *encrypted = true;
    }
    accepted(&alice, alice.intent(create).await.unwrap()).await;
    for c in [&alice, &phone, &laptop] {
        follow_conv(c, conv).await;
        at_epoch(c, conv, 1).await;
    }
    [alice, phone, laptop]
}

/// bob's account removes the laptop from the directory (as a stolen laptop's owner would,
/// from a web session) through `server`; the connection that asked.
async fn remove_laptop(server: &TestServer) -> Client {
    let mut bob = Client::connect(&server.ws_url(), &token("acme", "bob", false, 3600))
        .await
        .unwrap();
    let answer = bob
        .request(&ClientFrame::RemoveDevice {
            id: 1,
            device: "laptop".into(),
        })
        .await
        .unwrap();
    assert!(
        matches!(answer, ServerFrame::DeviceRemoved { .. }),
        "{answer:?}"
    );
    bob
}

async fn removed_device_leaves(backend: Backend) {
    let server = TestServer::start(backend).await.unwrap();
    let conv = ConvId::new("removed-leaves").unwrap();
    let [alice, phone, laptop] =
        alice_and_bobs_two(&server, &server, &format!("{backend:?}"), &conv).await;
    accepted(&alice, send(&alice, &conv, "m1", "all three").await).await;
    reads(&laptop, &conv, "m1", "all three").await;

    // bob's phone is away; the laptop is removed from the directory by a request of bob's
    // account (as a stolen laptop's owner would, from a web session): no device of bob's
    // commits anything.
    phone.set_online(false).await.unwrap();
    eventually(&phone, "offline", |e| !e.is_online()).await;
    remove_laptop(&server).await.close().await;

    // alice's device connects again: it lists bob's devices, sees the laptop removed and,
    // as the group's committer or a step after, commits its removal.
    alice.set_online(false).await.unwrap();
    eventually(&alice, "offline", |e| !e.is_online()).await;
    alice.set_online(true).await.unwrap();
    at_epoch(&alice, &conv, 2).await;
    let left = group_devices(&alice, &conv).await;
    assert!(
        left.iter().any(|d| d.ends_with("/bob/phone"))
            && !left.iter().any(|d| d.ends_with("/laptop")),
        "{left:?}"
    );
    accepted(
        &alice,
        send(&alice, &conv, "m2", "after the laptop left").await,
    )
    .await;

    // The laptop, online with its saved state, gets m2 and cannot open it.
    assert!(
        until(Duration::from_secs(10), || async {
            shown_in(&laptop, &conv, "m2").await.is_some()
        })
        .await,
        "m2 reaches the laptop's store"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let on_laptop = shown_in(&laptop, &conv, "m2").await;
    assert!(
        matches!(on_laptop, Some(Err(_))),
        "the removed laptop cannot read m2: {on_laptop:?}"
    );
    assert_eq!(
        shown_in(&laptop, &conv, "m1").await,
        Some(Ok("all three".into()))
    );

    // bob's phone comes back: it follows the commit and reads m2.
    phone.set_online(true).await.unwrap();
    at_epoch(&phone, &conv, 2).await;
    reads(&phone, &conv, "m2", "after the laptop left").await;
}

#[tokio::test]
async fn removed_device_leaves_sqlite() {
    removed_device_leaves(Backend::Sqlite).await;
}

#[tokio::test]
async fn removed_device_leaves_postgres() {
    removed_device_leaves(Backend::Postgres).await;
}

/// bob's laptop is removed through `removal` (a node of the cluster, or the one server)
/// while alice's device, connected to `alices` the whole time, never reconnects nor asks:
/// the `devices_changed` signal makes it list bob's devices and commit the removal.
async fn connected_device_hears_removal(alices: &TestServer, removal: &TestServer, tag: &str) {
    let conv = ConvId::new("removed-pushed").unwrap();
    let [alice, phone, laptop] =
        alice_and_bobs_two(alices, removal, &format!("push-{tag}"), &conv).await;
    // Neither of bob's devices takes the laptop out: both are away.
    for c in [&phone, &laptop] {
        c.set_online(false).await.unwrap();
        eventually(c, "offline", |e| !e.is_online()).await;
    }
    let mut bob = remove_laptop(removal).await;
    // Only the server says an account's devices changed: a member cannot make every device
    // of a conversation ask the directory.
    bob.send(&ClientFrame::Signal {
        doc: format!("acme/conv/{conv}"),
        kind: SignalKind::DevicesChanged,
        data: None,
    })
    .await
    .unwrap();
    let refused = bob
        .wait_for(Duration::from_secs(10), |f| match f {
            ServerFrame::Error { code, .. } => Some(code.clone()),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(refused, "forbidden");
    bob.close().await;

    at_epoch(&alice, &conv, 2).await;
    let left = group_devices(&alice, &conv).await;
    assert!(
        left.iter().any(|d| d.ends_with("/bob/phone"))
            && !left.iter().any(|d| d.ends_with("/laptop")),
        "{left:?}"
    );
    assert!(alice.query(|e| e.is_online()).await.unwrap());
}

#[tokio::test]
async fn connected_device_hears_removal_sqlite() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    connected_device_hears_removal(&server, &server, "sqlite").await;
}

#[tokio::test]
async fn connected_device_hears_removal_through_two_nodes() {
    let nodes = Nodes::on_fresh_database(2).await.unwrap();
    connected_device_hears_removal(&nodes.nodes[0], &nodes.nodes[1], "nodes").await;
}
