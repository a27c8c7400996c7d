//! A device away while its group passes 100 commits (docs/E2EE.md, "Epochs a device keeps",
//! "Sealed again"), against the real server binary on both stores: bob's only device is
//! offline while alice removes and adds carol back 50 times, saying something after each
//! commit, and bob writes three messages offline. Back online, bob reads all 100 of alice's
//! messages, and his three end accepted, sealed again on the current epoch, and read by alice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use confab_core::client::Intent;
use confab_core::ids::{AccountId, ConvId};
use confab_core::model::conversation::Role;
use confab_e2e::native_support::*;
use confab_e2e::{Backend, TestServer};

/// Commits the group passes while bob is away (half removals, half adds).
const COMMITS: usize = 100;

fn conv() -> ConvId {
    ConvId::new("away").unwrap()
}

fn carol(add: bool) -> Intent {
    let (conv, account) = (conv(), AccountId::new("carol").unwrap());
    if add {
        Intent::AddMember {
            conv,
            account,
            role: Role::Member,
        }
    } else {
        Intent::RemoveMember {
            conv,
            account,
            ban: false,
        }
    }
}

async fn away(backend: Backend) {
    let server = TestServer::start(backend).await.unwrap();
    let dirs = fresh_dirs(&format!("e2ee-away-{backend:?}"), 3);
    let alice = device_client(&server, "alice", "phone", &dirs[0]);
    let bob = device_client(&server, "bob", "phone", &dirs[1]);
    let carol_phone = device_client(&server, "carol", "phone", &dirs[2]);
    online_with_packages(&[&alice, &bob, &carol_phone]).await;
    let mut create = group_of(&conv(), &["bob", "carol"]);
    if let Intent::CreateConversation { encrypted, .. } = &mut create {
        *encrypted = true;
    }
    accepted(&alice, alice.intent(create).await.unwrap()).await;
    follow_conv(&alice, &conv()).await;
    follow_conv(&bob, &conv()).await;
    at_epoch(&bob, &conv(), 1).await;
    carol_phone.set_online(false).await.unwrap();

    bob.set_online(false).await.unwrap();
    let mut mine = Vec::new();
    for k in 0..3 {
        mine.push(send(&bob, &conv(), &format!("b{k}"), &format!("from bob {k}")).await);
    }
    for k in 0..COMMITS {
        let id = alice.intent(carol(k % 2 == 1)).await.unwrap();
        accepted(&alice, id).await;
        accepted(
            &alice,
            send(&alice, &conv(), &format!("a{k}"), &format!("alice {k}")).await,
        )
        .await;
    }
    at_epoch(&alice, &conv(), 1 + COMMITS as u64).await;

    bob.set_online(true).await.unwrap();
    for id in mine {
        assert_eq!(
            bob.settle(id, Duration::from_secs(60)).await.unwrap(),
            None,
            "bob's offline message ends accepted"
        );
    }
    for k in 0..COMMITS {
        reads(&bob, &conv(), &format!("a{k}"), &format!("alice {k}")).await;
    }
    for k in 0..3 {
        reads(&alice, &conv(), &format!("b{k}"), &format!("from bob {k}")).await;
    }
}

#[tokio::test]
async fn a_device_away_for_100_commits_reads_all_and_its_writes_land_sqlite() {
    away(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_device_away_for_100_commits_reads_all_and_its_writes_land_postgres() {
    away(Backend::Postgres).await;
}
