//! The support lead's life through the real server binary, on SQLite and Postgres
//! (docs/POLICY.md, "Lifecycle" and "Support threads"): a message into an archived support
//! thread reopens it on every write path — a REST post, a scheduled post, a raw change over
//! the WebSocket (a client that is not Confab's engine) and Confab's engine — and the
//! client's new request into its closed thread reopens it with a new lead, whether it comes
//! over REST or from the engine. The same rules against the acceptor alone: the attack
//! table's `cases_leads` (hub and wire) and `core/tests/support_rules.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use confab_core::doc::write;
use confab_core::ids::{ConvId, DocId};
use confab_core::model::conversation::Lifecycle;
use confab_core::model::time::format_rfc3339;
use confab_e2e::native_support::{accepted, client, fresh_dirs, send};
use confab_e2e::{now_ms, Backend, Device, TestServer};
use serde_json::{json, Value};

fn parse(a: &HttpAnswer, status: u16) -> Value {
    assert_eq!(a.status, status, "{}", a.body);
    serde_json::from_str(&a.body).expect("JSON")
}

/// The thread as REST shows it: (lifecycle, lead).
async fn state(server: &TestServer, id: &str) -> (String, Option<String>) {
    let view = parse(
        &http(
            server,
            "GET",
            &format!("/v1/conversations/{id}"),
            "alice",
            None,
        )
        .await,
        200,
    );
    let lead = view["resource"]["lead"].as_str().map(str::to_owned);
    (view["lifecycle"].as_str().unwrap().to_owned(), lead)
}

/// Polls the thread until its lifecycle is `want`, or fails after 20 s.
async fn until_state(server: &TestServer, id: &str, want: &str) -> Option<String> {
    let start = Instant::now();
    loop {
        let (lifecycle, lead) = state(server, id).await;
        if lifecycle == want {
            return lead;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{id} stays {lifecycle}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Alice (the owner) archives the thread from a fresh device.
async fn archive(server: &TestServer, cd: &DocId, device: u8) {
    let mut alice = Device::new("alice", device);
    let mut ca = connect(server, "alice").await;
    let caught = ca.subscribe(cd, 0).await.unwrap();
    alice.apply(cd, &caught.changes).unwrap();
    let change = alice
        .write(cd, |d, t| {
            write::set_lifecycle(d, t, now_ms(), Lifecycle::Archived, &acc("alice"))
        })
        .unwrap();
    assert_acked(&ca.submit(cd, &[change]).await.unwrap());
    ca.close().await;
    assert_eq!(
        state(server, cd.conv_id().unwrap().as_str()).await.0,
        "archived"
    );
}

/// Alice closes the thread's lead `lead` over REST.
async fn close(server: &TestServer, id: &str, lead: &str) {
    let body = json!({"lead": lead, "outcome": "closed_won"}).to_string();
    let path = format!("/v1/conversations/{id}/lead");
    parse(
        &http(server, "POST", &path, "alice", Some(&body)).await,
        200,
    );
    assert_eq!(
        state(server, id).await,
        ("closed".into(), Some(lead.into()))
    );
}

async fn lead_life(backend: Backend) {
    let mut server = TestServer::start_with(backend, &["--schedule-poll-ms", "100"])
        .await
        .unwrap();
    let open = json!({"client": "carol", "resource": "flat-3", "owner": "alice",
        "resource_title": "Flat 3", "client_name": "Carol", "owner_name": "Alice"});
    let path = "/v1/conversations/support";
    let opened = parse(
        &http(&server, "POST", path, "carol", Some(&open.to_string())).await,
        201,
    );
    let id = opened["id"].as_str().unwrap().to_owned();
    let conv = ConvId::new(&id).unwrap();
    let cd = DocId::conv(&tenant(), &conv);
    let messages = format!("/v1/conversations/{id}/messages");

    // A REST post reopens it.
    archive(&server, &cd, 1).await;
    let post = json!({"body": "still free?"}).to_string();
    parse(
        &http(&server, "POST", &messages, "carol", Some(&post)).await,
        201,
    );
    assert_eq!(state(&server, &id).await.0, "active", "REST post");

    // A scheduled post reopens it, at its time.
    archive(&server, &cd, 2).await;
    let at = format_rfc3339(now_ms() + 500);
    let scheduled = json!({"id": "m-later", "conv": id, "body": "later", "at": at});
    let scheduled = scheduled.to_string();
    let answer = http(&server, "POST", "/v1/scheduled", "carol", Some(&scheduled)).await;
    parse(&answer, 201);
    until_state(&server, &id, "active").await;

    // A raw change over the WebSocket reopens it (no reopen of its own).
    archive(&server, &cd, 3).await;
    let mut carol = Device::new("carol", 1);
    let mut cc = connect(&server, "carol").await;
    let (bucket, post) = message(&mut carol, &conv, "m-raw", "raw", now_ms());
    assert_acked(&cc.submit(&bucket, &[post]).await.unwrap());
    cc.close().await;
    assert_eq!(state(&server, &id).await.0, "active", "raw change");

    // Confab's engine (it writes the reopen itself; the server has nothing left to do).
    let dirs = fresh_dirs(&format!("lead-{backend:?}"), 1);
    let engine = client(&server, "carol", 2, &dirs[0]);
    engine.set_online(true).await.unwrap();
    engine.open(cd.clone()).await.unwrap();
    known(&engine, &conv).await;
    archive(&server, &cd, 4).await;
    lifecycle_in(&engine, &conv, Lifecycle::Archived).await;
    accepted(&engine, send(&engine, &conv, "m-engine", "engine").await).await;
    assert_eq!(state(&server, &id).await.0, "active", "engine");

    // Closed: the client's new request over REST reopens it with a new lead, stamped on it.
    close(&server, &id, "lead-1").await;
    let post = json!({"id": "m-new", "body": "another visit?"}).to_string();
    parse(
        &http(&server, "POST", &messages, "carol", Some(&post)).await,
        201,
    );
    let (lifecycle, new_lead) = state(&server, &id).await;
    assert_eq!(lifecycle, "active", "new request");
    let new_lead = new_lead.unwrap();
    assert_ne!(new_lead, "lead-1", "a new lead");
    let page = parse(&http(&server, "GET", &messages, "alice", None).await, 200);
    let request = &page["messages"][0];
    assert_eq!(request["id"], "m-new");
    assert_eq!(request["related_lead"], new_lead.as_str());

    // Closed again: from the engine, the same; the engine learns the lead from the server.
    close(&server, &id, "lead-2").await;
    lifecycle_in(&engine, &conv, Lifecycle::Closed).await;
    accepted(
        &engine,
        send(&engine, &conv, "m-engine-2", "and now?").await,
    )
    .await;
    let (lifecycle, lead) = state(&server, &id).await;
    assert_eq!(lifecycle, "active", "engine's new request");
    let lead = lead.unwrap();
    assert!(
        lead != "lead-2" && lead != new_lead,
        "another new lead: {lead}"
    );
    lifecycle_in(&engine, &conv, Lifecycle::Active).await;
    engine.set_online(false).await.unwrap();
    server.terminate().await.unwrap();
}

/// Waits until the engine holds the conversation.
async fn known(engine: &confab_client::Client, conv: &ConvId) {
    for _ in 0..500 {
        let c = conv.clone();
        if engine
            .query(move |e| e.conversation(&c).is_some())
            .await
            .unwrap()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the engine never got {conv}");
}

/// Waits until the engine's replica shows the thread `want`.
async fn lifecycle_in(engine: &confab_client::Client, conv: &ConvId, want: Lifecycle) {
    for _ in 0..500 {
        let c = conv.clone();
        let now = engine
            .query(move |e| e.conversation(&c).map(|c| c.lifecycle.state))
            .await
            .unwrap();
        if now == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the engine never saw {conv} {}", want.as_str());
}

#[tokio::test]
async fn every_path_reopens_and_a_new_request_opens_a_new_lead_on_sqlite() {
    lead_life(Backend::Sqlite).await;
}

#[tokio::test]
async fn every_path_reopens_and_a_new_request_opens_a_new_lead_on_postgres() {
    lead_life(Backend::Postgres).await;
}
