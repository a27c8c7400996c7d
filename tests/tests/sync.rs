//! Two clients converge through the real server, on SQLite and on Postgres.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use confab_core::doc::read;
use confab_core::ids::ConvId;
use confab_e2e::{now_ms, Backend, Device, TestServer};

async fn two_clients_converge(backend: Backend) {
    let server = TestServer::start(backend).await.unwrap();
    let (mut alice, mut bob) = (Device::new("alice", 1), Device::new("bob", 1));
    let mut ca = connect(&server, "alice").await;
    let mut cb = connect(&server, "bob").await;

    let (conv_id, create) = create_group(&mut alice, "room", &["bob"]);
    assert_acked(&ca.submit(&conv_id, &[create]).await.unwrap());
    bob.sync(&mut cb, &conv_id).await.unwrap();
    let conv = ConvId::new("room").unwrap();
    let at = now_ms();
    let bucket = bucket_doc(&conv, at);
    alice.sync(&mut ca, &bucket).await.unwrap();
    bob.sync(&mut cb, &bucket).await.unwrap();

    let (_, m1) = message(&mut alice, &conv, "a1", "hi bob", at);
    let acks = ca.submit(&bucket, &[m1]).await.unwrap();
    assert_acked(&acks);
    let pushed = cb.pushes_until(&bucket, 1).await.unwrap();
    bob.apply(&bucket, &pushed).unwrap();
    let (_, m2) = message(&mut bob, &conv, "b1", "hi alice", at + 1);
    assert_acked(&cb.submit(&bucket, &[m2]).await.unwrap());
    let pushed = ca.pushes_until(&bucket, 2).await.unwrap();
    alice.apply(&bucket, &pushed).unwrap();

    let a = alice.doc(&bucket).clone();
    let b = bob.doc(&bucket).clone();
    let mut ha = a.get_heads();
    let mut hb = b.get_heads();
    ha.sort();
    hb.sort();
    assert_eq!(ha, hb);
    let bodies: Vec<String> = read::read_messages(&a)
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(bodies, vec!["hi bob".to_owned(), "hi alice".to_owned()]);
    assert_eq!(read::read_messages(&a), read::read_messages(&b));
}

#[tokio::test]
async fn two_clients_converge_on_sqlite() {
    two_clients_converge(Backend::Sqlite).await;
}

#[tokio::test]
async fn two_clients_converge_on_postgres() {
    two_clients_converge(Backend::Postgres).await;
}
