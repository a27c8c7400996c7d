//! Forgetting through the real server binary, on SQLite and Postgres (docs/STORAGE.md,
//! "What a delete removes"; docs/OPERATIONS.md, "Account erasure"):
//! - a message deleted for everyone loses the blobs only it named (404, gone from disk)
//!   after the configured delay; a blob another message names stays;
//! - an account's erasure, interrupted by a kill -9 while its progress shows it partway
//!   and resumed by the restarted server, tombstones everything it wrote in 50
//!   conversations and nothing else (another tenant's account of the same name and its
//!   conversation of the same id included); only the tenant's services may ask for it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use confab_core::doc::write;
use confab_core::ids::{ConvId, DocId, MessageId, TenantId};
use confab_core::model::conversation::DEFAULT_BUCKET_MS;
use confab_core::model::message::{MessageKind, NewMessage};
use confab_e2e::client::WAIT;
use confab_e2e::{now_ms, token, Backend, Client, Device, TestServer};
use confab_testkit::fixture::ConvFixture;
use confab_testkit::http::request;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Fast passes for the tests: a pass every second, blobs released a second after a delete.
const PURGE: &[&str] = &["--purge-sweep-secs", "1", "--blob-release-delay-secs", "1"];

/// One raw HTTP/1.0 call with `bearer` and an optional body of `content_type`.
async fn call(
    server: &TestServer,
    method: &str,
    path: &str,
    bearer: &str,
    body: Option<(&str, &[u8])>,
) -> (u16, Value) {
    let answer = request(server.port, method, path, bearer, body, WAIT)
        .await
        .expect("an HTTP answer");
    (
        answer.status,
        serde_json::from_str(&answer.body).unwrap_or(Value::Null),
    )
}

fn user(account: &str) -> String {
    token(TENANT, account, false, 3600)
}

async fn upload(server: &TestServer, conv: &str, bytes: &[u8]) -> String {
    let hash = hex::encode(Sha256::digest(bytes));
    let path = format!("/v1/conversations/{conv}/attachments/{hash}");
    let (status, body) = call(
        server,
        "PUT",
        &path,
        &user("alice"),
        Some(("text/plain", bytes)),
    )
    .await;
    assert!(status == 201 || status == 200, "{status} {body}");
    hash
}

fn with_blob(dev: &Device, id: &str, conv: &str, hash: &str) -> NewMessage {
    let mut m = NewMessage::text(MessageId::new(id).unwrap(), dev.account_id(), "", now_ms());
    m.kind = MessageKind::File;
    m.attachments = Some(format!(
        r#"[{{"id":"a","kind":"file","name":"f.txt","mime":"text/plain","url":"https://chat.example/v1/conversations/{conv}/attachments/{hash}"}}]"#
    ));
    m
}

async fn blob_status(server: &TestServer, conv: &str, hash: &str) -> u16 {
    let path = format!("/v1/conversations/{conv}/attachments/{hash}");
    call(server, "GET", &path, &user("bob"), None).await.0
}

async fn blobs_deleted_with_their_message(backend: Backend) {
    let server = TestServer::start_with(backend, PURGE).await.unwrap();
    let mut alice = Device::new("alice", 1);
    let mut ca = connect(&server, "alice").await;
    let (g, create) = create_group(&mut alice, "files", &["bob"]);
    assert_acked(&ca.submit(&g, &[create]).await.unwrap());
    let conv = ConvId::new("files").unwrap();
    let only = upload(&server, "files", b"named by one message only").await;
    let shared = upload(&server, "files", b"named by two messages").await;
    let bucket = bucket_doc(&conv, now_ms());
    let mut posted = Vec::new();
    for (id, hash) in [("m1", &only), ("m2", &shared), ("m3", &shared)] {
        let m = with_blob(&alice, id, "files", hash);
        posted.push(
            alice
                .write(&bucket, |d, t| write::post_message(d, t, &m))
                .unwrap(),
        );
    }
    assert_acked(&ca.submit(&bucket, &posted).await.unwrap());
    let mut deletes = Vec::new();
    for id in ["m1", "m2"] {
        let id = MessageId::new(id).unwrap();
        deletes.push(
            alice
                .write(&bucket, |d, t| {
                    write::delete_message(d, t, now_ms(), &id, &acc("alice"))
                })
                .unwrap(),
        );
    }
    assert_acked(&ca.submit(&bucket, &deletes).await.unwrap());

    let on_disk = |hash: &str| {
        server
            .data_dir
            .join(format!("blobs/t/{TENANT}/c/files/blobs/{hash}"))
            .exists()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while blob_status(&server, "files", &only).await != 404 {
        assert!(
            Instant::now() < deadline,
            "the deleted message's blob is still served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!on_disk(&only), "the blob's bytes are still on disk");
    // m3 still names the shared blob: it stays, after passes that saw its candidate.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(blob_status(&server, "files", &shared).await, 200);
    assert!(on_disk(&shared));
    ca.close().await;
}

#[tokio::test]
async fn a_deleted_messages_blob_is_swept_on_sqlite() {
    blobs_deleted_with_their_message(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_deleted_messages_blob_is_swept_on_postgres() {
    blobs_deleted_with_their_message(Backend::Postgres).await;
}

const CONVS: usize = 50;
const PER_CONV: usize = 6;

async fn page(server: &TestServer, conv: &str) -> Vec<Value> {
    let (status, body) = call(
        server,
        "GET",
        &format!("/v1/conversations/{conv}/messages?limit=100"),
        &user("bob"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["messages"].as_array().expect("messages").clone()
}

async fn erasure_resumes_after_a_kill(backend: Backend) {
    let mut server = TestServer::start_with(backend, PURGE).await.unwrap();
    let service = token(TENANT, "privacy-desk", true, 3600);
    let mut carol = Device::new("carol", 1);
    let mut alice = Device::new("alice", 1);
    let mut bob = Device::new("bob", 1);
    let mut cc = connect(&server, "carol").await;
    let mut ca = connect(&server, "alice").await;
    let mut cb = connect(&server, "bob").await;
    let at = now_ms();
    for c in 0..CONVS {
        let id = format!("g{c}");
        let (g, create) = create_group(&mut carol, &id, &["alice", "bob"]);
        assert_acked(&cc.submit(&g, &[create]).await.unwrap());
        let conv = ConvId::new(&id).unwrap();
        let mut changes = Vec::new();
        let mut doc = None;
        for k in 0..PER_CONV {
            let (d, change) = message(&mut alice, &conv, &format!("a{k}"), "alice wrote", at);
            doc = Some(d);
            changes.push(change);
        }
        assert_acked(&ca.submit(doc.as_ref().unwrap(), &changes).await.unwrap());
        let (d, change) = message(&mut bob, &conv, "b0", "bob wrote", at);
        assert_acked(&cb.submit(&d, &[change]).await.unwrap());
    }
    // A group alice owns alone: the policy keeps its owner.
    let (g, create) = create_group(&mut alice, "mine", &["bob"]);
    assert_acked(&ca.submit(&g, &[create]).await.unwrap());
    for c in [cc, ca, cb] {
        c.close().await;
    }

    // Only a service of the tenant erases, and only an account the tenant knows.
    let path = "/v1/accounts/alice/erasure";
    let (status, body) = call(&server, "POST", path, &user("bob"), None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("service_only")),
        "{body}"
    );
    let (status, _) = call(&server, "POST", path, &user("alice"), None).await;
    assert_eq!(status, 403);
    let elsewhere = token("globex", "privacy-desk", true, 3600);
    let (status, body) = call(&server, "POST", path, &elsewhere, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let (status, _) = call(
        &server,
        "POST",
        "/v1/accounts/nobody/erasure",
        &service,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(&server, "GET", path, &service, None).await;
    assert_eq!(status, 404, "no erasure asked for yet");
    // Another tenant's alice, in a conversation of the same id: not the account erased here.
    let globex = TenantId::new("globex").unwrap();
    let globex_alice = token("globex", "alice", false, 3600);
    let globex_page = "/v1/conversations/g0/messages?limit=100";
    {
        let mut dev = Device::new("alice", 1);
        let mut conn = Client::connect(&server.ws_url(), &globex_alice)
            .await
            .unwrap();
        let g0 = ConvId::new("g0").unwrap();
        let cd = DocId::conv(&globex, &g0);
        let spec = ConvFixture::group(acc("alice"), at)
            .title("globex g0")
            .build();
        let create = dev
            .write(&cd, |d, t| write::create_conversation(d, t, &spec))
            .unwrap();
        assert_acked(&conn.submit(&cd, &[create]).await.unwrap());
        let bucket = DocId::msgs(&globex, &g0, at.div_euclid(DEFAULT_BUCKET_MS));
        let m = NewMessage::text(MessageId::new("a0").unwrap(), acc("alice"), "globex", at);
        let post = dev
            .write(&bucket, |d, t| write::post_message(d, t, &m))
            .unwrap();
        assert_acked(&conn.submit(&bucket, &[post]).await.unwrap());
        conn.close().await;
    }
    let (status, globex_before) = call(&server, "GET", globex_page, &globex_alice, None).await;
    assert_eq!(status, 200, "{globex_before}");
    assert_eq!(
        globex_before["messages"][0]["body"], "globex",
        "{globex_before}"
    );
    let before: Vec<Vec<Value>> = {
        let mut all = Vec::new();
        for c in 0..CONVS {
            all.push(page(&server, &format!("g{c}")).await);
        }
        all
    };

    let (status, body) = call(&server, "POST", path, &service, None).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["state"], "running", "{body}");
    // Killed while the progress shows it partway: some of alice's messages redacted, not
    // all (it saves after each page of 100).
    let total = (CONVS * PER_CONV) as i64;
    let deadline = Instant::now() + Duration::from_secs(60);
    let partway = loop {
        let (_, body) = call(&server, "GET", path, &service, None).await;
        let done = body["messages_redacted"].as_i64().unwrap_or(0);
        if body["step"] == "messages" && done > 0 && done < total {
            break body;
        }
        assert!(
            body["step"] == "messages" && Instant::now() < deadline,
            "never seen partway: {body}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    server.kill().await.unwrap();
    println!("{backend:?}: killed at {partway}");
    server.restart().await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(90);
    let done = loop {
        let (status, body) = call(&server, "GET", path, &service, None).await;
        assert_eq!(status, 200, "{body}");
        if body["state"] == "done" {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "the erasure did not finish: {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(done["step"], "done", "{done}");
    assert_eq!(done["conversations_left"], CONVS, "{done}");
    assert_eq!(done["conversations_kept_as_owner"], 1, "{done}");
    assert_eq!(done["messages_skipped"], 0, "{done}");
    // Asked again: the same erasure, done.
    let (status, again) = call(&server, "POST", path, &service, None).await;
    assert_eq!(
        (status, &again["done_at"]),
        (200, &done["done_at"]),
        "{again}"
    );

    for (c, before) in before.iter().enumerate() {
        let after = page(&server, &format!("g{c}")).await;
        assert_eq!(after.len(), before.len());
        for (was, now) in before.iter().zip(&after) {
            assert_eq!(was["id"], now["id"]);
            if was["author"] == "alice" || was["user_id"] == "alice" {
                assert_eq!(now["deleted"], true, "{now}");
                assert_eq!(now["deleted_by"], "privacy-desk", "{now}");
                assert_eq!(now["body"], "", "{now}");
            } else {
                assert_eq!(now, was, "a message alice did not write changed");
            }
        }
    }
    let (_, globex_after) = call(&server, "GET", globex_page, &globex_alice, None).await;
    assert_eq!(
        globex_after, globex_before,
        "another tenant's alice was erased too"
    );
}

#[tokio::test]
async fn an_erasure_killed_midway_finishes_after_restart_on_sqlite() {
    erasure_resumes_after_a_kill(Backend::Sqlite).await;
}

#[tokio::test]
async fn an_erasure_killed_midway_finishes_after_restart_on_postgres() {
    erasure_resumes_after_a_kill(Backend::Postgres).await;
}
