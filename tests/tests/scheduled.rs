//! Scheduled messages through the real server binary, on SQLite and on Postgres, with its
//! scheduler running every 100 ms (`--schedule-poll-ms`): messages scheduled over REST are
//! held, survive a kill -9 and restart of the server, and appear in the conversation at
//! their time as their author, with an edit honoured and a cancelled one never posted; one
//! whose author was removed meanwhile is refused with `member_inactive`, which its author
//! reads in the list. The rules at each step (bounds, codes, exactly once across nodes) are
//! tested in `server/tests/scheduled.rs` and `server/tests/rest_scheduled.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use confab_core::model::time::format_rfc3339;
use confab_e2e::{now_ms, Backend, Device, TestServer};

/// Polls `path` as `account` until `done` holds for its body, or fails after 20 s.
async fn until(
    server: &TestServer,
    path: &str,
    account: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let start = Instant::now();
    loop {
        let answer = http(server, "GET", path, account, None).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        if done(&answer.body) {
            return answer.body;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{path} as {account} never got there: {}",
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn schedule(server: &TestServer, account: &str, id: &str, body: &str, at: i64) {
    let json = format!(
        r#"{{"id":"{id}","conv":"sched","body":"{body}","at":"{}"}}"#,
        format_rfc3339(at)
    );
    let answer = http(server, "POST", "/v1/scheduled", account, Some(&json)).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
}

async fn scheduled_messages_are_posted_at_their_time(backend: Backend) {
    let mut server = TestServer::start_with(backend, &["--schedule-poll-ms", "100"])
        .await
        .unwrap();
    let mut alice = Device::new("alice", 1);
    let mut ca = connect(&server, "alice").await;
    let (conv_doc, create) = create_group(&mut alice, "sched", &["bob"]);
    assert_acked(&ca.submit(&conv_doc, &[create]).await.unwrap());
    ca.close().await;

    let at = now_ms() + 6_000;
    schedule(&server, "alice", "m-a", "draft", at).await;
    schedule(&server, "alice", "m-c", "cancelled", at).await;
    schedule(&server, "bob", "m-b", "from bob", at).await;
    let edit = http(
        &server,
        "PATCH",
        "/v1/scheduled/m-a",
        "alice",
        Some(r#"{"body":"edited"}"#),
    )
    .await;
    assert_eq!(edit.status, 200, "{}", edit.body);
    let cancel = http(&server, "DELETE", "/v1/scheduled/m-c", "alice", None).await;
    assert_eq!(cancel.status, 204, "{}", cancel.body);
    let removed = http(
        &server,
        "DELETE",
        "/v1/conversations/sched/members/bob",
        "alice",
        None,
    )
    .await;
    assert_eq!(removed.status, 200, "{}", removed.body);

    // Held: nothing in the conversation yet. Then the server dies and comes back.
    let page = http(
        &server,
        "GET",
        "/v1/conversations/sched/messages",
        "alice",
        None,
    )
    .await;
    assert!(
        !page.body.contains("m-a"),
        "posted before its time: {}",
        page.body
    );
    server.restart().await.unwrap();

    let page = until(&server, "/v1/conversations/sched/messages", "alice", |b| {
        b.contains("\"m-a\"")
    })
    .await;
    assert!(now_ms() >= at, "posted before its time");
    assert!(page.contains("edited"), "{page}");
    assert!(
        !page.contains("m-c"),
        "a cancelled message was posted: {page}"
    );
    assert!(
        !page.contains("m-b"),
        "a removed member's message was posted: {page}"
    );
    let bobs = until(&server, "/v1/scheduled", "bob", |b| b.contains("refused")).await;
    assert!(bobs.contains(r#""refused":"member_inactive""#), "{bobs}");
    let alices = http(&server, "GET", "/v1/scheduled", "alice", None).await;
    assert_eq!(alices.body, r#"{"scheduled":[]}"#);
    server.terminate().await.unwrap();
}

#[tokio::test]
async fn scheduled_messages_are_posted_at_their_time_on_sqlite() {
    scheduled_messages_are_posted_at_their_time(Backend::Sqlite).await;
}

#[tokio::test]
async fn scheduled_messages_are_posted_at_their_time_on_postgres() {
    scheduled_messages_are_posted_at_their_time(Backend::Postgres).await;
}
