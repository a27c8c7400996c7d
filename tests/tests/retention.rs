//! Retention through the real server binary, on SQLite and on Postgres: once a conversation
//! has `retention_days`, the periodic sweep (`--retention-sweep-secs`) deletes its buckets
//! past it; a connection following one is told `revoked retention_expired`, a new
//! subscription is answered `bucket_expired`, and neither the listing nor REST pages serve
//! it, while today's bucket stays. The buckets are written dated in the past before the
//! retention is set (the policy refuses posts older than it). The rows themselves are counted
//! in `server/tests/retention.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use confab_core::doc::schema::keys::RETENTION_DAYS;
use confab_core::doc::write;
use confab_core::ids::{Bucket, ConvId};
use confab_core::model::conversation::DEFAULT_BUCKET_MS;
use confab_core::protocol::{ClientFrame, ServerFrame};
use confab_e2e::{now_ms, Backend, Device, TestServer};

const DAY: i64 = DEFAULT_BUCKET_MS;

async fn expired_buckets_leave_the_server(backend: Backend) {
    let mut server = TestServer::start_with(backend, &["--retention-sweep-secs", "1"])
        .await
        .unwrap();
    let mut alice = Device::new("alice", 1);
    let mut ca = connect(&server, "alice").await;
    let mut cb = connect(&server, "bob").await;
    let (conv_doc, create) = create_group(&mut alice, "ret", &["bob"]);
    assert_acked(&ca.submit(&conv_doc, &[create]).await.unwrap());
    let conv = ConvId::new("ret").unwrap();
    let now = now_ms();
    let (old, m_old) = message(&mut alice, &conv, "m-old", "ten days ago", now - 10 * DAY);
    let (today, m_today) = message(&mut alice, &conv, "m-today", "today", now);
    assert_acked(&ca.submit(&old, &[m_old]).await.unwrap());
    assert_acked(&ca.submit(&today, &[m_today]).await.unwrap());
    // Bob follows the old bucket.
    let caught = cb.subscribe(&old, 0).await.unwrap();
    assert_eq!(caught.synced, 1);

    let set = alice
        .write(&conv_doc, |d, t| {
            write::set_setting(d, t, now, RETENTION_DAYS, 5i64.into())
        })
        .unwrap();
    assert_acked(&ca.submit(&conv_doc, &[set]).await.unwrap());

    // The next sweep drops it: bob's subscription is revoked.
    let wanted = old.to_string();
    let code = cb
        .wait_for(Duration::from_secs(20), |f| match f {
            ServerFrame::Revoked { doc, code, .. } if *doc == wanted => Some(code.clone()),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(code, "retention_expired");

    // A new subscription is refused; today's bucket is served as before.
    let mut cc = connect(&server, "bob").await;
    let refused = cc.subscribe(&old, 0).await.unwrap_err().to_string();
    assert!(refused.starts_with("bucket_expired"), "{refused}");
    assert_eq!(cc.subscribe(&today, 0).await.unwrap().synced, 1);

    // Listed: today's bucket only.
    cc.send(&ClientFrame::Buckets {
        doc: conv_doc.to_string(),
        before: None,
        limit: 10,
    })
    .await
    .unwrap();
    let wanted = conv_doc.to_string();
    let listed = cc
        .wait_for(Duration::from_secs(10), |f| match f {
            ServerFrame::Buckets { doc, buckets, .. } if *doc == wanted => Some(buckets.clone()),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(listed, vec![Bucket::first(now.div_euclid(DAY))]);

    // REST pages: today's message only.
    let page = http(
        &server,
        "GET",
        "/v1/conversations/ret/messages",
        "bob",
        None,
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("m-today"), "{}", page.body);
    assert!(!page.body.contains("m-old"), "{}", page.body);
    server.terminate().await.unwrap();
}

#[tokio::test]
async fn expired_buckets_leave_the_server_on_sqlite() {
    expired_buckets_leave_the_server(Backend::Sqlite).await;
}

#[tokio::test]
async fn expired_buckets_leave_the_server_on_postgres() {
    expired_buckets_leave_the_server(Backend::Postgres).await;
}
