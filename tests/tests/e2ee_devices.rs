//! The account's device list as a `confab-client` device reads it (`Client::devices`,
//! `ClientEngine::devices`; docs/E2EE.md, "The account's devices"), against the real server
//! binary on both stores: every registered device of the account, this one marked, each
//! with when it registered and last connected and the key packages it holds; another
//! account's devices are not in it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use confab_client::Client as NativeClient;
use confab_core::client::{DeviceInfo, KEY_PACKAGES_TARGET};
use confab_e2e::native_support::*;
use confab_e2e::{Backend, TestServer};

async fn online(c: &NativeClient) {
    c.set_online(true).await.unwrap();
    eventually(c, "key packages topped up", |e| {
        e.key_packages_held() == Some(KEY_PACKAGES_TARGET)
    })
    .await;
}

fn named<'a>(list: &'a [DeviceInfo], device: &str) -> &'a DeviceInfo {
    list.iter()
        .find(|d| d.device == device)
        .unwrap_or_else(|| panic!("{device} not in {list:?}"))
}

async fn device_list(backend: Backend) {
    let server = TestServer::start(backend).await.unwrap();
    let dirs = fresh_dirs(&format!("e2ee-devices-{backend:?}"), 3);
    let phone = device_client(&server, "alice", "phone", &dirs[0]);
    let laptop = device_client(&server, "alice", "laptop", &dirs[1]);
    let bob = device_client(&server, "bob", "phone", &dirs[2]);

    // Offline, nothing is asked.
    let offline = phone.devices(Duration::from_secs(5)).await;
    assert!(
        matches!(&offline, Err(confab_client::Error::Failed { code, .. }) if code == "offline"),
        "{offline:?}"
    );
    for c in [&phone, &laptop, &bob] {
        online(c).await;
    }

    let from_phone = phone.devices(Duration::from_secs(20)).await.unwrap();
    let names: Vec<&str> = from_phone.iter().map(|d| d.device.as_str()).collect();
    assert_eq!(names, ["laptop", "phone"], "device order, alice's only");
    let (me, other) = (named(&from_phone, "phone"), named(&from_phone, "laptop"));
    assert!(me.this_device && !other.this_device);
    for d in [me, other] {
        assert_eq!(d.key_packages, Some(KEY_PACKAGES_TARGET), "{d:?}");
        let (registered, seen) = (d.registered_at.unwrap(), d.last_seen_at.unwrap());
        assert!(registered > 0 && seen >= registered, "{d:?}");
    }
    // The laptop sees the same devices, itself marked; the engine keeps the list.
    let from_laptop = laptop.devices(Duration::from_secs(20)).await.unwrap();
    assert!(named(&from_laptop, "laptop").this_device);
    assert!(!named(&from_laptop, "phone").this_device);
    let kept = laptop.query(|e| e.devices()).await.unwrap().unwrap();
    assert_eq!(kept, from_laptop);

    // The laptop connects again later: its last-seen time moves, the phone's does not.
    laptop.set_online(false).await.unwrap();
    eventually(&laptop, "offline", |e| !e.is_online()).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    laptop.set_online(true).await.unwrap();
    eventually(&laptop, "online", |e| e.is_online()).await;
    // Its list is asked after its count on the same connection: answered, it was seen.
    laptop.devices(Duration::from_secs(20)).await.unwrap();
    let again = phone.devices(Duration::from_secs(20)).await.unwrap();
    let (before, after) = (named(&from_phone, "laptop"), named(&again, "laptop"));
    assert!(
        after.last_seen_at > before.last_seen_at,
        "{before:?} {after:?}"
    );
    assert_eq!(after.registered_at, before.registered_at);
    assert_eq!(
        named(&again, "phone").last_seen_at,
        named(&from_phone, "phone").last_seen_at
    );
}

#[tokio::test]
async fn device_list_sqlite() {
    device_list(Backend::Sqlite).await;
}

#[tokio::test]
async fn device_list_postgres() {
    device_list(Backend::Postgres).await;
}
