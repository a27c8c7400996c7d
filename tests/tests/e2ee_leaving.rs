//! Nobody's leaving stops anyone's sending (docs/E2EE.md, "Leaving"), against the real
//! server binary on both stores: bob leaves an encrypted group, the group's committer (all
//! are online) commits his removal at once, and every send after it is accepted and
//! unreadable to bob's device; then, with alice away, carol (a plain member) leaves and
//! dave's next send pays her removal itself, ahead of the message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use confab_client::Client as NativeClient;
use confab_core::client::Intent;
use confab_core::ids::{AccountId, ConvId};
use confab_core::model::conversation::Role;
use confab_e2e::native_support::*;
use confab_e2e::{Backend, TestServer};

fn conv() -> ConvId {
    ConvId::new("leavers").unwrap()
}

fn leave() -> Intent {
    Intent::Leave { conv: conv() }
}

fn add(account: &str) -> Intent {
    Intent::AddMember {
        conv: conv(),
        account: AccountId::new(account).unwrap(),
        role: Role::Member,
    }
}

async fn run(c: &NativeClient, intent: Intent) {
    let id = c.intent(intent).await.unwrap();
    accepted(c, id).await;
}

async fn epoch(c: &NativeClient) -> Option<u64> {
    c.query(|e| e.group_epoch(&conv())).await.unwrap()
}

/// What `c` shows of message `id`: `Ok(body)` opened, `Err(reason)` not.
async fn shown(c: &NativeClient, id: &'static str) -> Option<Result<String, String>> {
    shown_in(c, &conv(), id).await
}

async fn leaving(backend: Backend) {
    let server = TestServer::start(backend).await.unwrap();
    let names = ["alice", "bob", "carol", "dave"];
    let dirs = fresh_dirs(&format!("e2ee-leaving-{backend:?}"), names.len());
    let clients: Vec<NativeClient> = names
        .iter()
        .zip(&dirs)
        .map(|(n, d)| device_client(&server, n, "phone", d))
        .collect();
    let [alice, bob, carol, dave] = &clients[..] else {
        unreachable!()
    };
    online_with_packages(&[alice, bob, carol, dave]).await;
    let mut create = group_of(&conv(), &["bob"]);
    if let Intent::CreateConversation { encrypted, .. } = &mut create {
        *encrypted = true;
    }
    run(alice, create).await;
    run(alice, add("carol")).await;
    run(alice, add("dave")).await;
    for c in &clients {
        follow_conv(c, &conv()).await;
        at_epoch(c, &conv(), 3).await;
    }

    // bob leaves: the group's committer commits his removal, once.
    run(bob, leave()).await;
    for c in [alice, carol, dave] {
        at_epoch(c, &conv(), 4).await;
    }
    accepted(alice, send(alice, &conv(), "m1", "bob has gone").await).await;
    accepted(carol, send(carol, &conv(), "m2", "so he has").await).await;
    for c in [alice, carol, dave] {
        reads(c, &conv(), "m1", "bob has gone").await;
        reads(c, &conv(), "m2", "so he has").await;
    }
    assert_eq!(epoch(alice).await, Some(4), "one commit for the departure");
    assert!(
        !matches!(shown(bob, "m1").await, Some(Ok(_))),
        "bob's device reads nothing sent after he left"
    );

    // alice away: carol leaves; dave's send commits her removal first, then is sealed.
    alice.set_online(false).await.unwrap();
    run(carol, leave()).await;
    accepted(dave, send(dave, &conv(), "m3", "carol left too").await).await;
    assert_eq!(
        epoch(dave).await,
        Some(5),
        "dave's send paid carol's removal"
    );
    assert!(!matches!(shown(carol, "m3").await, Some(Ok(_))));
    alice.set_online(true).await.unwrap();
    reads(alice, &conv(), "m3", "carol left too").await;
    at_epoch(alice, &conv(), 5).await;
}

#[tokio::test]
async fn leaving_does_not_stop_sending_sqlite() {
    leaving(Backend::Sqlite).await;
}

#[tokio::test]
async fn leaving_does_not_stop_sending_postgres() {
    leaving(Backend::Postgres).await;
}
