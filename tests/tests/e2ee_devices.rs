//! The account's device list as a `confab-client` device reads it (`Client::devices`,
//! `ClientEngine::devices`; docs/E2EE.md, "The account's devices"), against the real server
//! binary on both stores: every registered device of the account, this one marked, each
//! with when it registered and last connected and the key packages it holds; another
//! account's devices are not in it. And the account's encrypted conversations follow the
//! list: a new device is added, a removed one taken out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use confab_client::Client as NativeClient;
use confab_core::client::{DeviceInfo, Intent, KEY_PACKAGES_TARGET};
use confab_core::ids::{AccountId, ConvId, MessageId};
use confab_core::model::message::NewMessage;
use confab_e2e::native_support::*;
use confab_e2e::{now_ms, Backend, TestServer};

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

/// The account's devices in its encrypted conversations follow the directory (docs/E2EE.md,
/// "The account's devices"): a laptop registered after the group was made is added by the
/// phone once the phone lists it, and reads what is sent from then on (not before); once the
/// phone removes it, the phone takes it out of the group, and the laptop, kept running with
/// its saved state, reads nothing sent after and can no longer post.
async fn devices_follow_the_directory(backend: Backend) {
    let server = TestServer::start(backend).await.unwrap();
    let dirs = fresh_dirs(&format!("e2ee-devices-follow-{backend:?}"), 3);
    let phone = device_client(&server, "alice", "phone", &dirs[0]);
    let bob = device_client(&server, "bob", "phone", &dirs[1]);
    online_with_packages(&[&phone, &bob]).await;
    let conv = ConvId::new("devices-follow").unwrap();
    let mut create = group_of(&conv, &["bob"]);
    if let Intent::CreateConversation { encrypted, .. } = &mut create {
        *encrypted = true;
    }
    accepted(&phone, phone.intent(create).await.unwrap()).await;
    follow_conv(&phone, &conv).await;
    follow_conv(&bob, &conv).await;
    at_epoch(&bob, &conv, 1).await;
    accepted(&phone, send(&phone, &conv, "m1", "before the laptop").await).await;
    reads(&bob, &conv, "m1", "before the laptop").await;

    // The laptop registers; the phone's next list adds it.
    let laptop = device_client(&server, "alice", "laptop", &dirs[2]);
    online_with_packages(&[&laptop]).await;
    follow_conv(&laptop, &conv).await;
    let listed = phone.devices(Duration::from_secs(20)).await.unwrap();
    assert!(listed.iter().any(|d| d.device == "laptop"), "{listed:?}");
    for c in [&phone, &bob, &laptop] {
        at_epoch(c, &conv, 2).await;
    }
    accepted(&bob, send(&bob, &conv, "m2", "laptop welcome").await).await;
    reads(&laptop, &conv, "m2", "laptop welcome").await;
    let before_it_joined = timeline_entry(&laptop, &conv, "m1").await;
    assert!(
        before_it_joined.is_some_and(|u| u.is_some()),
        "m1 shows undecryptable"
    );
    // Listing again changes nothing: the group holds every listed device.
    phone.devices(Duration::from_secs(20)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        phone
            .query({
                let conv = conv.clone();
                move |e| e.group_epoch(&conv)
            })
            .await
            .unwrap(),
        Some(2)
    );

    // Refused removals change nothing.
    for (name, code) in [("phone", "not_applicable"), ("tablet", "unknown_device")] {
        match phone.remove_device(name, Duration::from_secs(20)).await {
            Err(confab_client::Error::Failed { code: got, .. }) => assert_eq!(got, code, "{name}"),
            other => panic!("removing {name}: {other:?}"),
        }
    }

    // The phone removes the laptop: the directory stops listing it, the group loses it.
    phone
        .remove_device("laptop", Duration::from_secs(20))
        .await
        .unwrap();
    for c in [&phone, &bob] {
        at_epoch(c, &conv, 3).await;
    }
    let listed = phone.devices(Duration::from_secs(20)).await.unwrap();
    assert!(!listed.iter().any(|d| d.device == "laptop"), "{listed:?}");
    accepted(&bob, send(&bob, &conv, "m3", "after the laptop left").await).await;
    reads(&phone, &conv, "m3", "after the laptop left").await;
    assert!(
        until(Duration::from_secs(10), || async {
            timeline_entry(&laptop, &conv, "m3").await.is_some()
        })
        .await,
        "m3 reaches the laptop's store"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let on_laptop = timeline_entry(&laptop, &conv, "m3").await;
    assert!(
        on_laptop.as_ref().is_some_and(|u| u.is_some()),
        "the removed laptop cannot read m3: {on_laptop:?}"
    );
    // Out of the group, the laptop cannot seal: its send is refused on the device.
    let message = NewMessage::text(
        MessageId::new("m4").unwrap(),
        AccountId::new("alice").unwrap(),
        "from the removed laptop",
        now_ms(),
    );
    let refused = laptop
        .intent(Intent::Send {
            conv: conv.clone(),
            message,
        })
        .await;
    assert!(refused.is_err(), "{refused:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(timeline_entry(&bob, &conv, "m4").await.is_none());
}

/// `id` in `c`'s timeline of `conv`: `Some(None)` opened, `Some(Some(reason))` not.
async fn timeline_entry(c: &NativeClient, conv: &ConvId, id: &str) -> Option<Option<String>> {
    let (conv, id) = (conv.clone(), id.to_owned());
    c.query(move |e| {
        e.timeline(&conv)
            .into_iter()
            .find(|i| i.message.id.as_str() == id)
            .map(|i| i.undecryptable)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn devices_follow_the_directory_sqlite() {
    devices_follow_the_directory(Backend::Sqlite).await;
}

#[tokio::test]
async fn devices_follow_the_directory_postgres() {
    devices_follow_the_directory(Backend::Postgres).await;
}
