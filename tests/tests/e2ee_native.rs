//! `confab-client` devices with end-to-end encryption against the real server binary: an
//! encrypted group made, members added and removed with their commits, messages sealed and
//! opened both ways, a removed member locked out, a device offline across several epochs
//! catching up, and two adds racing for one epoch both accepted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use confab_client::Client as NativeClient;
use confab_core::client::{Intent, KEY_PACKAGES_TARGET};
use confab_core::ids::{AccountId, ConvId, DocId, TenantId};
use confab_core::model::conversation::Role;
use confab_e2e::native_support::*;
use confab_e2e::{Backend, TestServer};

fn conv() -> ConvId {
    ConvId::new("vault").unwrap()
}

fn add(account: &str) -> Intent {
    Intent::AddMember {
        conv: conv(),
        account: AccountId::new(account).unwrap(),
        role: Role::Member,
    }
}

fn remove(account: &str) -> Intent {
    Intent::RemoveMember {
        conv: conv(),
        account: AccountId::new(account).unwrap(),
        ban: false,
    }
}

async fn epoch(c: &NativeClient) -> Option<u64> {
    c.query(|e| e.group_epoch(&conv())).await.unwrap()
}

async fn at_epoch(c: &NativeClient, want: u64) {
    eventually(c, &format!("epoch {want}"), move |e| {
        e.group_epoch(&conv()) == Some(want)
    })
    .await;
}

/// Waits until `c` shows message `id` with `body`, opened.
async fn reads(c: &NativeClient, id: &'static str, body: &'static str) {
    eventually(c, &format!("{id} reads {body}"), move |e| {
        e.timeline(&conv()).iter().any(|i| {
            i.message.id.as_str() == id && i.undecryptable.is_none() && i.message.body == body
        })
    })
    .await;
}

async fn follow(c: &NativeClient) {
    let tenant = TenantId::new("acme").unwrap();
    c.open(DocId::conv(&tenant, &conv())).await.unwrap();
    let bucket = today(c, &conv()).await;
    c.open(bucket).await.unwrap();
}

async fn run(c: &NativeClient, intent: Intent) {
    let id = c.intent(intent).await.unwrap();
    accepted(c, id).await;
}

#[tokio::test]
async fn encrypted_groups_between_native_devices() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let names = ["alice", "bob", "carol", "dave", "erin", "frank"];
    let dirs = fresh_dirs("e2ee-native", names.len());
    let clients: Vec<NativeClient> = names
        .iter()
        .zip(&dirs)
        .map(|(n, d)| device_client(&server, n, "phone", d))
        .collect();
    let [alice, bob, carol, dave, erin, frank] = &clients[..] else {
        unreachable!()
    };
    for c in &clients {
        c.set_online(true).await.unwrap();
        eventually(c, "key packages topped up", |e| {
            e.key_packages_held() == Some(KEY_PACKAGES_TARGET)
        })
        .await;
    }

    // Alice makes the group with bob: bob's device joins from its Welcome.
    let mut create = group_of(&conv(), &["bob"]);
    if let Intent::CreateConversation { encrypted, .. } = &mut create {
        *encrypted = true;
    }
    run(alice, create).await;
    follow(alice).await;
    follow(bob).await;
    at_epoch(bob, 1).await;

    // Both ways.
    let m1 = send(alice, &conv(), "m1", "hello bob").await;
    accepted(alice, m1).await;
    let m2 = send(bob, &conv(), "m2", "hello alice").await;
    accepted(bob, m2).await;
    for c in [alice, bob] {
        reads(c, "m1", "hello bob").await;
        reads(c, "m2", "hello alice").await;
    }

    // Carol is added and reads what follows.
    run(alice, add("carol")).await;
    follow(carol).await;
    at_epoch(carol, 2).await;
    let m3 = send(bob, &conv(), "m3", "welcome carol").await;
    accepted(bob, m3).await;
    reads(carol, "m3", "welcome carol").await;

    // Bob is away while the group moves three epochs; carol is removed among them.
    at_epoch(bob, 2).await;
    bob.set_online(false).await.unwrap();
    run(alice, add("dave")).await;
    run(alice, remove("dave")).await;
    run(alice, remove("carol")).await;
    assert_eq!(epoch(alice).await, Some(5));
    let m4 = send(alice, &conv(), "m4", "carol is gone").await;
    accepted(alice, m4).await;
    bob.set_online(true).await.unwrap();
    at_epoch(bob, 5).await;
    reads(bob, "m4", "carol is gone").await;
    // Carol, kept running with her saved state, never reads it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let carol_reads = carol
        .query(|e| {
            e.timeline(&conv())
                .iter()
                .any(|i| i.message.id.as_str() == "m4" && i.undecryptable.is_none())
        })
        .await
        .unwrap();
    assert!(!carol_reads, "a removed member cannot read what follows");
    let _ = dave;

    // Two admins add at once: both end accepted, one made again on the other's epoch.
    run(
        alice,
        Intent::SetRole {
            conv: conv(),
            account: AccountId::new("bob").unwrap(),
            role: Role::Admin,
            until: None,
        },
    )
    .await;
    let (by_alice, by_bob) = tokio::join!(alice.intent(add("erin")), bob.intent(add("frank")));
    let (by_alice, by_bob) = (by_alice.unwrap(), by_bob.unwrap());
    accepted(alice, by_alice).await;
    accepted(bob, by_bob).await;
    follow(erin).await;
    follow(frank).await;
    for c in [alice, bob, erin, frank] {
        at_epoch(c, 7).await;
    }
    let m5 = send(frank, &conv(), "m5", "frank is in").await;
    accepted(frank, m5).await;
    for c in [alice, bob, erin] {
        reads(c, "m5", "frank is in").await;
    }
}
