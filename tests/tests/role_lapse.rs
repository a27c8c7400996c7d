//! A temporary role lapses by itself everywhere (docs/POLICY.md, "Temporary roles and
//! overrides"), through the real server binary on SQLite and Postgres: at the lapse the
//! server writes it down once, so the member's membership feed is told, REST shows it, and
//! the timer survives a kill -9 between the grant and its lapse; on two nodes of a cluster
//! it is written once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "cluster/nodes.rs"]
#[allow(dead_code)] // the cluster suite uses the rest
mod cluster_nodes;
mod common;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use cluster_nodes::Nodes;
use common::*;
use confab_core::doc::write;
use confab_core::model::conversation::{MemberStatus, Role};
use confab_core::protocol::Membership;
use confab_e2e::{now_ms, Backend, Client, Device, TestServer};
use confab_testkit::ids::conv_id;
use serde_json::Value;

/// How long after the grant the role lapses: long enough for a kill and a restart before.
const FOR_MS: i64 = 2_500;

async fn follow(client: &mut Client) -> Result<Vec<Membership>> {
    follow_memberships(client).await
}

async fn told(client: &mut Client, conv: &str, within: Duration) -> Result<Membership> {
    membership_push(client, conv, within).await
}

/// Bob is told of his role until it is `role`; the entry that says so.
async fn told_until(client: &mut Client, conv: &str, role: Role) -> Result<Membership> {
    loop {
        let m = told(client, conv, Duration::from_secs(15))
            .await
            .with_context(|| format!("bob is never told he is {}", role.as_str()))?;
        if m.role == role {
            return Ok(m);
        }
    }
}

/// Alice makes a group with bob and gives him moderator for `FOR_MS`; bob, following his
/// memberships on `bob_url`, is told. Returns alice's device and the grant's entry.
async fn grant(alice_url: &str, bob: &mut Client, conv: &str) -> Result<(Device, Membership)> {
    let mut alice = Device::new("alice", 1);
    let mut ca = connect_at(alice_url, "alice").await;
    ensure!(follow(bob).await?.is_empty());
    let (conv_doc, create) = create_group(&mut alice, conv, &["bob"]);
    assert_acked(&ca.submit(&conv_doc, &[create]).await?);
    told_until(bob, conv, Role::Member).await?;
    let until = now_ms() + FOR_MS;
    let grant = alice.write(&conv_doc, |d, t| {
        write::set_role(d, t, now_ms(), &acc("bob"), Role::Moderator, Some(until))
    })?;
    assert_acked(&ca.submit(&conv_doc, &[grant]).await?);
    let granted = told_until(bob, conv, Role::Moderator).await?;
    ca.close().await;
    Ok((alice, granted))
}

/// Bob's entry as REST lists it.
async fn rest_entry(server: &TestServer, conv: &str) -> Value {
    let path = format!("/v1/conversations/{conv}");
    let answer = http(server, "GET", &path, "alice", None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let list: Value = serde_json::from_str(&answer.body).unwrap();
    list["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == "bob")
        .cloned()
        .unwrap()
}

async fn lapses_after_a_kill(backend: Backend) -> Result<()> {
    let mut server = TestServer::start(backend).await?;
    let mut bob = connect(&server, "bob").await;
    let (_, granted) = grant(&server.ws_url(), &mut bob, "lapse").await?;
    bob.close().await;
    // Killed before the lapse: what remembers it is stored, not held in memory.
    server.restart().await?;
    let mut bob = connect(&server, "bob").await;
    let listed = follow(&mut bob).await?;
    let entry = listed.iter().find(|m| m.conv.as_str() == "lapse").unwrap();
    let lapsed = if entry.role == Role::Member {
        entry.clone()
    } else {
        ensure!(entry.role == Role::Moderator, "{entry:?}");
        told_until(&mut bob, "lapse", Role::Member).await?
    };
    ensure!(
        lapsed.seq > granted.seq && lapsed.status == MemberStatus::Active,
        "{lapsed:?} after {granted:?}"
    );
    // Written once: no second entry follows.
    let again = told(&mut bob, "lapse", Duration::from_millis(2_500)).await;
    ensure!(again.is_err(), "told again: {again:?}");
    let entry = rest_entry(&server, "lapse").await;
    ensure!(
        entry["base_role"] == "member" && entry["role_expires_at"].is_null(),
        "REST shows {entry}"
    );
    let log = log_of(&server, "alice", &conv_doc(&conv_id("lapse"))).await;
    ensure!(
        log.last().map(|(seq, _)| *seq) == Some(lapsed.seq),
        "the lapse is the conversation's last change: {log:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_temporary_role_lapses_by_itself_after_a_kill_on_sqlite() {
    lapses_after_a_kill(Backend::Sqlite).await.unwrap();
}

#[tokio::test]
async fn a_temporary_role_lapses_by_itself_after_a_kill_on_postgres() {
    lapses_after_a_kill(Backend::Postgres).await.unwrap();
}

#[tokio::test]
async fn two_nodes_write_a_lapse_once() {
    async fn run() -> Result<()> {
        let nodes = Nodes::on_fresh_database(2).await?;
        let urls = nodes.ws_urls();
        // Bob follows through the other node than the grant's.
        let mut bob = connect_at(&urls[1], "bob").await;
        let (_, granted) = grant(&urls[0], &mut bob, "lapse2").await?;
        let lapsed = told_until(&mut bob, "lapse2", Role::Member).await?;
        ensure!(
            lapsed.seq == granted.seq + 1,
            "{lapsed:?} after {granted:?}"
        );
        let again = told(&mut bob, "lapse2", Duration::from_millis(3_000)).await;
        ensure!(again.is_err(), "told again: {again:?}");
        let log = log_of(&nodes.nodes[1], "alice", &conv_doc(&conv_id("lapse2"))).await;
        ensure!(log.len() as u64 == lapsed.seq, "{log:?}");
        Ok(())
    }
    tokio::time::timeout(Duration::from_secs(120), run())
        .await
        .expect("bounded")
        .unwrap();
}
