//! Faults while an account's encrypted groups follow its device list (docs/E2EE.md, "The
//! groups follow the list"), against the real server binary on both stores:
//!
//! - the server is killed while a device sync (the phone lists a new laptop and adds it) or
//!   a device removal is in flight, at several points of it, and started again: every
//!   intent ends and none rejected, the removal is answered, and every group holds exactly
//!   the listed devices;
//! - two devices of one account list a new laptop at once: one commit adds it, the other
//!   sync finds nothing left to do, the laptop is in the group once, everyone reads everyone;
//! - the server's database (a private Postgres cluster) is down while a member is added (its
//!   key packages claimed) and while a device sync lists the account's devices: both are
//!   refused `unavailable` and asked again on the same connection once it is back; the add
//!   ends accepted, the laptop joins, nothing is rejected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use confab_client::Client as NativeClient;
use confab_core::client::{Intent, IntentStatus};
use confab_core::ids::{AccountId, ConvId};
use confab_core::model::conversation::Role;
use confab_e2e::native_support::*;
use confab_e2e::pg_cluster::PgCluster;
use confab_e2e::{Backend, TestServer};

/// Where in a sync or removal the server is killed: milliseconds after it starts.
const KILL_AFTER_MS: [u64; 3] = [0, 15, 60];
const WAIT: Duration = Duration::from_secs(30);

/// `conv`'s group as `c` holds it: `account/device`, sorted.
async fn group(c: &NativeClient, conv: &ConvId) -> Vec<String> {
    let conv = conv.clone();
    let mut list: Vec<String> = c
        .query(move |e| e.group_devices(&conv).unwrap_or_default())
        .await
        .unwrap()
        .into_iter()
        .map(|d| format!("{}/{}", d.account, d.device))
        .collect();
    list.sort();
    list
}

/// Waits until every one of `clients` holds `conv`'s group as exactly `want` (each once).
async fn group_is(clients: &[&NativeClient], conv: &ConvId, want: &[&str]) {
    let mut want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    for c in clients {
        let ok = until(WAIT, || async { group(c, conv).await == want }).await;
        let outbox = c.query(|e| e.outbox()).await.unwrap();
        assert!(
            ok,
            "the group: {:?}, want {want:?}; outbox {outbox:?}",
            group(c, conv).await
        );
    }
}

/// Waits until `c` has no device sync left in its outbox; none of them rejected.
async fn syncs_settled(c: &NativeClient) {
    let open = || async {
        c.query(|e| {
            e.outbox()
                .into_iter()
                .filter(|(_, i, _)| matches!(i, Intent::SyncDevices { .. }))
                .map(|(_, _, s)| s)
                .collect::<Vec<IntentStatus>>()
        })
        .await
        .unwrap()
    };
    let ok = until(WAIT, || async { open().await.is_empty() }).await;
    assert!(ok, "device syncs left: {:?}", open().await);
}

/// No intent of `c` ended rejected: a kill is not a reason about any of them (a marker that
/// raced another device's, a commit behind a refused change, are made again).
async fn nothing_rejected(c: &NativeClient) {
    let rejected: Vec<(u64, Intent, IntentStatus)> = c
        .query(|e| e.outbox())
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, _, s)| matches!(s, IntentStatus::Rejected { .. }))
        .collect();
    assert!(rejected.is_empty(), "rejected: {rejected:?}");
}

/// An encrypted group of alice's phone and bob, both following it at epoch 1.
async fn encrypted_group(phone: &NativeClient, bob: &NativeClient, conv: &ConvId) {
    let mut create = group_of(conv, &["bob"]);
    if let Intent::CreateConversation { encrypted, .. } = &mut create {
        *encrypted = true;
    }
    accepted(phone, phone.intent(create).await.unwrap()).await;
    for c in [phone, bob] {
        follow_conv(c, conv).await;
        at_epoch(c, conv, 1).await;
    }
}

/// Kills the server `after_ms` into whatever runs meanwhile, and starts it again.
async fn kill_and_restart(server: &mut TestServer, after_ms: u64) {
    tokio::time::sleep(Duration::from_millis(after_ms)).await;
    server.kill().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.restart().await.unwrap();
}

/// Each trial registers a laptop, has the phone list (and so add) it with the server killed
/// `KILL_AFTER_MS[i]` later, then removes it the same way: the group ends with the laptop
/// in, then out, on every device of it; a message sent next is read by the right devices.
async fn killed_mid_sync(backend: Backend) {
    let mut server = TestServer::start(backend).await.unwrap();
    let n = KILL_AFTER_MS.len();
    let dirs = fresh_dirs(&format!("e2ee-device-kill-{backend:?}"), 2 + n);
    let phone = device_client(&server, "alice", "phone", &dirs[0]);
    let bob = device_client(&server, "bob", "phone", &dirs[1]);
    online_with_packages(&[&phone, &bob]).await;
    let conv = ConvId::new("device-kill").unwrap();
    encrypted_group(&phone, &bob, &conv).await;
    let base = ["alice/phone", "bob/phone"];

    for (trial, after_ms) in KILL_AFTER_MS.into_iter().enumerate() {
        let name = format!("laptop{trial}");
        let entry = format!("alice/{name}");
        let dir: &PathBuf = &dirs[2 + trial];
        let laptop = device_client(&server, "alice", &name, dir);
        online_with_packages(&[&laptop]).await;
        follow_conv(&laptop, &conv).await;

        // The sync: the list, the claim, the commit and its ack race the kill.
        phone.query(|e| e.refresh_devices()).await.unwrap();
        kill_and_restart(&mut server, after_ms).await;
        group_is(&[&phone, &bob, &laptop], &conv, &[base[0], base[1], &entry]).await;
        syncs_settled(&phone).await;
        nothing_rejected(&phone).await;
        let id = format!("in{trial}");
        accepted(&bob, send(&bob, &conv, &id, "laptop in").await).await;
        reads(&laptop, &conv, &id, "laptop in").await;

        // The removal: its request and answer, the list after it and the commit race the kill.
        let removing = {
            let name = name.clone();
            let phone = phone.clone();
            tokio::spawn(async move { phone.remove_device(&name, WAIT).await })
        };
        kill_and_restart(&mut server, after_ms).await;
        match removing.await.unwrap() {
            Ok(()) => {}
            // Asked after the client saw the connection go: refused at once, typed; asked
            // again once it is back.
            Err(confab_client::Error::Failed { code, .. }) if code == "not_applicable" => {
                eventually(&phone, "online", |e| e.is_online()).await;
                phone.remove_device(&name, WAIT).await.unwrap();
            }
            Err(e) => panic!("trial {trial}: removing {name}: {e:?}"),
        }
        group_is(&[&phone, &bob], &conv, &base).await;
        syncs_settled(&phone).await;
        nothing_rejected(&phone).await;
        let id = format!("out{trial}");
        accepted(&bob, send(&bob, &conv, &id, "laptop out").await).await;
        reads(&phone, &conv, &id, "laptop out").await;
        let listed = phone.devices(WAIT).await.unwrap();
        assert!(!listed.iter().any(|d| d.device == name), "{listed:?}");
    }
}

#[tokio::test]
async fn killed_mid_sync_sqlite() {
    killed_mid_sync(Backend::Sqlite).await;
}

#[tokio::test]
async fn killed_mid_sync_postgres() {
    killed_mid_sync(Backend::Postgres).await;
}

/// Alice's phone and tablet are in the group; a laptop registers and both list it at once.
/// Both syncs are made on epoch 1; the server takes one commit for it, the other is made
/// again on epoch 2 and finds nothing to add: the group is at epoch 2 on every device, holds
/// the laptop once, and every device reads the others (their sends may heal paths after).
async fn two_devices_sync_at_once(backend: Backend) {
    let server = TestServer::start(backend).await.unwrap();
    let dirs = fresh_dirs(&format!("e2ee-device-race-{backend:?}"), 4);
    let phone = device_client(&server, "alice", "phone", &dirs[0]);
    let tablet = device_client(&server, "alice", "tablet", &dirs[1]);
    let bob = device_client(&server, "bob", "phone", &dirs[2]);
    online_with_packages(&[&phone, &tablet, &bob]).await;
    let conv = ConvId::new("device-race").unwrap();
    encrypted_group(&phone, &bob, &conv).await;
    follow_conv(&tablet, &conv).await;
    at_epoch(&tablet, &conv, 1).await;

    let laptop = device_client(&server, "alice", "laptop", &dirs[3]);
    online_with_packages(&[&laptop]).await;
    follow_conv(&laptop, &conv).await;
    let (a, b) = tokio::join!(phone.devices(WAIT), tablet.devices(WAIT));
    for listed in [a.unwrap(), b.unwrap()] {
        assert!(listed.iter().any(|d| d.device == "laptop"), "{listed:?}");
    }
    let all = [&phone, &tablet, &bob, &laptop];
    group_is(
        &all,
        &conv,
        &["alice/laptop", "alice/phone", "alice/tablet", "bob/phone"],
    )
    .await;
    for c in [&phone, &tablet] {
        syncs_settled(c).await;
    }
    // One commit added the laptop.
    for c in all {
        at_epoch(c, &conv, 2).await;
    }
    let senders = [("p", &phone), ("t", &tablet), ("b", &bob), ("l", &laptop)];
    for (id, c) in senders {
        accepted(c, send(c, &conv, id, &format!("from {id}")).await).await;
    }
    for c in all {
        for (id, _) in senders {
            reads(c, &conv, id, &format!("from {id}")).await;
        }
    }
    let seen: BTreeSet<u64> = {
        let mut out = BTreeSet::new();
        for c in all {
            let conv = conv.clone();
            out.insert(
                c.query(move |e| e.group_epoch(&conv))
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        out
    };
    // The sends may have healed paths (docs/E2EE.md, "Trees that stay cheap"): every device
    // follows the same epoch.
    assert_eq!(seen.len(), 1, "every device at one epoch: {seen:?}");
}

#[tokio::test]
async fn two_devices_sync_at_once_sqlite() {
    two_devices_sync_at_once(Backend::Sqlite).await;
}

#[tokio::test]
async fn two_devices_sync_at_once_postgres() {
    two_devices_sync_at_once(Backend::Postgres).await;
}

/// Stops (`false`) or starts again (`true`) the server's private database.
async fn database(cluster: &Arc<PgCluster>, up: bool) {
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || if up { c.start_again() } else { c.stop_fast() })
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn database_down_mid_claim_and_list_postgres() {
    let cluster = Arc::new(PgCluster::start().unwrap());
    let data_dir = cluster.server_dir("e2ee-device-db");
    let server = TestServer::start_on(Some(cluster.url()), data_dir, &[])
        .await
        .unwrap();
    let dirs = fresh_dirs("e2ee-device-db", 4);
    let phone = device_client(&server, "alice", "phone", &dirs[0]);
    let bob = device_client(&server, "bob", "phone", &dirs[1]);
    let carol = device_client(&server, "carol", "phone", &dirs[2]);
    online_with_packages(&[&phone, &bob, &carol]).await;
    let conv = ConvId::new("device-db").unwrap();
    encrypted_group(&phone, &bob, &conv).await;

    // An add: its claim of carol's packages goes out first, into the outage.
    database(&cluster, false).await;
    let add = Intent::AddMember {
        conv: conv.clone(),
        account: AccountId::new("carol").unwrap(),
        role: Role::Member,
    };
    let add = phone.intent(add).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    database(&cluster, true).await;
    accepted(&phone, add).await;
    follow_conv(&carol, &conv).await;
    group_is(
        &[&phone, &bob, &carol],
        &conv,
        &["alice/phone", "bob/phone", "carol/phone"],
    )
    .await;

    // A device sync: the list of alice's devices goes out into the outage.
    let laptop = device_client(&server, "alice", "laptop", &dirs[3]);
    online_with_packages(&[&laptop]).await;
    follow_conv(&laptop, &conv).await;
    database(&cluster, false).await;
    phone.query(|e| e.refresh_devices()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    database(&cluster, true).await;
    let all = ["alice/laptop", "alice/phone", "bob/phone", "carol/phone"];
    group_is(&[&phone, &bob, &carol, &laptop], &conv, &all).await;
    syncs_settled(&phone).await;
    nothing_rejected(&phone).await;
    accepted(&bob, send(&bob, &conv, "after", "all back").await).await;
    for c in [&laptop, &carol] {
        reads(c, &conv, "after", "all back").await;
    }
}
