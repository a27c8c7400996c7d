//! Ownership and hiding through the real server binary, on SQLite and Postgres, driven by
//! `confab-client` (the Rust host of the client engine): the owner hands ownership on with
//! one intent and only then may leave; a hidden direct conversation leaves the account's own
//! lists (the engine's and REST's) until a newer message arrives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::http;
use confab_client::{Client as NativeClient, Error};
use confab_core::client::{ClientError, Intent};
use confab_core::ids::{direct_conv_id, ConvId, DocId, TenantId};
use confab_core::model::conversation::Role;
use confab_e2e::native_support::*;
use confab_e2e::{Backend, TestServer};
use confab_testkit::ids::acc;
use serde_json::Value;

fn tenant() -> TenantId {
    TenantId::new("acme").unwrap()
}

/// The local refusal's code, or a panic.
fn refused(result: Result<u64, Error>) -> String {
    match result {
        Err(Error::Engine(ClientError::Denied { code, .. })) => code,
        other => panic!("expected a local refusal, got {other:?}"),
    }
}

/// Waits until `c` sees `account` with `role` in `conv`.
async fn sees_role(c: &NativeClient, conv: &ConvId, account: &str, role: Role) {
    for _ in 0..500 {
        let (conv, account) = (conv.clone(), acc(account));
        let now = c
            .query(move |e| {
                e.conversation(&conv)
                    .and_then(|c| c.member(&account).map(|m| m.role))
            })
            .await
            .unwrap();
        if now == Some(role) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{account} never became {} in {conv}", role.as_str());
}

async fn listed_by_engine(c: &NativeClient, conv: &ConvId) -> bool {
    let conv = conv.clone();
    c.query(move |e| {
        e.conversations(confab_client::now_ms())
            .iter()
            .any(|s| s.conv == conv)
    })
    .await
    .unwrap()
}

async fn listed_by_rest(server: &TestServer, account: &str, conv: &ConvId) -> bool {
    let answer = http(server, "GET", "/v1/conversations", account, None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let list: Value = serde_json::from_str(&answer.body).unwrap();
    list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == conv.as_str())
}

async fn ownership_and_hiding(backend: Backend, tag: &str) {
    let server = TestServer::start(backend).await.unwrap();
    let dirs = fresh_dirs(tag, 2);
    let alice = client(&server, "alice", 1, &dirs[0]);
    let bob = client(&server, "bob", 1, &dirs[1]);
    alice.set_online(true).await.unwrap();
    bob.set_online(true).await.unwrap();

    // Ownership: the only owner stays until it hands ownership on in one intent.
    let room = ConvId::new("own-room").unwrap();
    let id = alice.intent(group_of(&room, &["bob"])).await.unwrap();
    accepted(&alice, id).await;
    bob.open(DocId::conv(&tenant(), &room)).await.unwrap();
    sees_role(&bob, &room, "alice", Role::Owner).await;
    let leave = Intent::Leave { conv: room.clone() };
    let transfer = |to: &str| Intent::TransferOwnership {
        conv: room.clone(),
        account: acc(to),
    };
    assert_eq!(
        refused(alice.intent(leave.clone()).await),
        "owner_must_transfer"
    );
    assert_eq!(refused(bob.intent(transfer("bob")).await), "owner_only");
    assert_eq!(
        refused(alice.intent(transfer("carol")).await),
        "target_not_member"
    );
    let id = alice.intent(transfer("bob")).await.unwrap();
    accepted(&alice, id).await;
    sees_role(&bob, &room, "bob", Role::Owner).await;
    sees_role(&bob, &room, "alice", Role::Admin).await;
    let view = http(&server, "GET", "/v1/conversations/own-room", "bob", None).await;
    let view: Value = serde_json::from_str(&view.body).unwrap();
    let role = |who: &str| {
        view["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["user_id"] == who)
            .map(|m| m["base_role"].clone())
    };
    assert_eq!(role("bob"), Some("owner".into()), "{view}");
    assert_eq!(role("alice"), Some("admin".into()), "{view}");
    let id = alice.intent(leave.clone()).await.unwrap();
    accepted(&alice, id).await;
    assert_eq!(refused(bob.intent(leave).await), "owner_must_transfer");

    // Hiding: alice hides her direct conversation with bob; a newer message brings it back.
    let dm = direct_conv_id(&tenant(), &acc("alice"), &acc("bob"));
    let id = alice
        .intent(Intent::OpenDirect {
            peer: acc("bob"),
            encrypted: false,
        })
        .await
        .unwrap();
    accepted(&alice, id).await;
    accepted(&alice, send(&alice, &dm, "m1", "hi bob").await).await;
    bob.open(DocId::conv(&tenant(), &dm)).await.unwrap();
    let bucket = today(&bob, &dm).await;
    bob.open(bucket.clone()).await.unwrap();
    alice.open(bucket).await.unwrap();
    wait_for(&bob, &dm, 1).await;
    assert!(listed_by_rest(&server, "alice", &dm).await);
    let hide = |on: bool| Intent::Hide {
        conv: dm.clone(),
        on,
    };
    let id = alice.intent(hide(true)).await.unwrap();
    accepted(&alice, id).await;
    assert!(!listed_by_engine(&alice, &dm).await, "off alice's own list");
    assert!(
        !listed_by_rest(&server, "alice", &dm).await,
        "and off REST's"
    );
    assert!(
        listed_by_rest(&server, "bob", &dm).await,
        "bob's list is his"
    );
    assert!(listed_by_engine(&bob, &dm).await);
    assert_eq!(
        refused(
            alice
                .intent(Intent::Hide {
                    conv: room,
                    on: true
                })
                .await
        ),
        "direct_only"
    );

    // A message created after the hide (the clock moves on first).
    tokio::time::sleep(Duration::from_millis(5)).await;
    accepted(&bob, send(&bob, &dm, "m2", "still there?").await).await;
    wait_for(&alice, &dm, 2).await;
    assert!(listed_by_engine(&alice, &dm).await, "back on alice's list");
    assert!(listed_by_rest(&server, "alice", &dm).await, "and on REST's");
}

#[tokio::test]
async fn ownership_and_hiding_on_sqlite() {
    ownership_and_hiding(Backend::Sqlite, "ownership-sqlite").await;
}

#[tokio::test]
async fn ownership_and_hiding_on_postgres() {
    ownership_and_hiding(Backend::Postgres, "ownership-pg").await;
}
