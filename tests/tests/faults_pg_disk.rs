//! Postgres on a full disk: a private cluster (the machine's stays up) with its data folder
//! on a small tmpfs, filled to the last byte while a client writes, then freed. Asserts
//! what the server does (docs/STORAGE.md, "Storage health"): writes are answered
//! `unavailable` with a `retry_after_ms` at once (Postgres keeps running: "could not extend
//! file", 53100), `/readyz` 503 after the first and for as long as the disk is full (every
//! poll, with and without traffic); once space is back (and, if
//! Postgres stopped itself, the cluster is started again, as for "Postgres down") it is
//! ready again without a restart of the server and every change ends acked exactly once.
//! Needs root (mount -t tmpfs, su postgres): without it the test fails saying so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use confab_core::automerge::Change;
use confab_core::ids::ConvId;
use confab_e2e::pg_cluster::PgCluster;
use confab_e2e::{Device, TestServer};

/// A `/readyz` must answer within this (it never waits on the database).
const READYZ_ANSWER: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_disk_full_answers_unavailable_and_recovers_when_space_is_back() {
    let tmpfs = Tmpfs::mount("160m", "the Postgres disk-full fault test");
    let cluster = PgCluster::start_in(tmpfs.path()).unwrap();
    let data_dir = cluster.server_dir("faults-pgfull");
    let server = TestServer::start_on(Some(cluster.url()), data_dir, &[])
        .await
        .unwrap();
    let mut alice = Device::new("alice", 1);
    let mut client = connect(&server, "alice").await;
    let (conv_doc, create) = create_group(&mut alice, "pgfull", &["bob"]);
    assert_acked(&client.submit(&conv_doc, &[create]).await.unwrap());
    let conv = ConvId::new("pgfull").unwrap();
    let base = base_time(120_000);
    let bucket = bucket_doc(&conv, base);
    let mut sent: Vec<Change> = Vec::new();
    let write = |alice: &mut Device, sent: &mut Vec<Change>| {
        let i = sent.len();
        let (_, change) = message(
            alice,
            &conv,
            &format!("m{i}"),
            &format!("message {i} {}", "x".repeat(2000)),
            base + i as i64,
        );
        sent.push(change.clone());
        change
    };
    for _ in 0..10 {
        let change = write(&mut alice, &mut sent);
        assert_eq!(submit_one(&mut client, &bucket, &change).await.0, "ack");
    }

    tmpfs.fill();
    // Writes go on until one cannot be stored: answered `unavailable`, retryable.
    let mut unacked: Vec<Change> = Vec::new();
    let started = Instant::now();
    while unacked.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "Postgres kept storing on a full disk for 20 s"
        );
        let change = write(&mut alice, &mut sent);
        let (code, retry, took) = submit_one(&mut client, &bucket, &change).await;
        match code.as_str() {
            "ack" => {}
            "unavailable" => {
                assert!(retry.is_some(), "unavailable names a retry_after_ms");
                println!("pg full: first unavailable after {took:?}");
                unacked.push(change);
            }
            other => panic!("a write on a full Postgres disk answered {other}"),
        }
    }
    let to_503 = readyz_until(&server, READYZ_ANSWER, 503, Duration::from_secs(3)).await;
    println!("pg full: /readyz 503 {to_503:?} after the first unavailable");
    let mut seen = Vec::new();
    for _ in 0..10 {
        let change = write(&mut alice, &mut sent);
        let (code, _, took) = submit_one(&mut client, &bucket, &change).await;
        let ready = server.readyz(READYZ_ANSWER).await;
        seen.push((code.clone(), took, ready));
        if code != "ack" {
            unacked.push(change);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    println!("pg full: while full {seen:?}");
    // Nothing is stored while full: each write is answered at once, `unavailable`, or
    // `missing_dependency` behind one of its own unstored changes (resubmitted in order
    // later); and the node stays not ready: the prober's write needs new pages, as a
    // commit does, so it fails too (a write that fits in its page would succeed and make
    // /readyz alternate).
    for (code, took, ready) in &seen {
        assert_eq!(
            *ready,
            Some(503),
            "/readyz while the disk is full: {seen:?}"
        );
        assert!(
            code == "unavailable" || code == "missing_dependency",
            "a write on a full Postgres disk answered {code}"
        );
        assert!(*took < Duration::from_secs(1), "answered at once: {took:?}");
    }
    assert!(seen.iter().any(|(code, _, _)| code == "unavailable"));
    // Without traffic too: only the prober speaks to the database now.
    let quiet = Instant::now();
    while quiet.elapsed() < Duration::from_secs(3) {
        let ready = server.readyz(READYZ_ANSWER).await;
        assert_eq!(
            ready,
            Some(503),
            "/readyz {:?} into a quiet full disk",
            quiet.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let died = !cluster.is_running();
    println!(
        "pg full: postmaster {}",
        if died {
            "stopped itself"
        } else {
            "still running"
        }
    );

    tmpfs.free();
    if died {
        cluster.start_again().unwrap();
    }
    let to_200 = readyz_until(&server, READYZ_ANSWER, 200, Duration::from_secs(20)).await;
    println!("pg full: /readyz 200 {to_200:?} after space was back");
    let deadline = Instant::now() + Duration::from_secs(30);
    for change in &unacked {
        loop {
            let (code, _, _) = submit_one(&mut client, &bucket, change).await;
            if code == "ack" {
                break;
            }
            assert!(
                code == "unavailable" || code == "missing_dependency",
                "a resubmission once space is back answered {code}"
            );
            assert!(
                Instant::now() < deadline,
                "still unavailable 30 s after space was back"
            );
            tokio::time::sleep(Duration::from_millis(1000)).await;
        }
    }
    client.close().await;
    let log = log_of(&server, "alice", &bucket).await;
    assert_clean_log(&log);
    let stored: HashSet<[u8; 32]> = log.iter().map(|(_, h)| *h).collect();
    assert!(
        sent.iter().all(|c| stored.contains(&c.hash().0)),
        "every change sent is stored once space is back"
    );
    assert_eq!(log.len(), sent.len(), "nothing stored twice");
    drop(server);
    drop(cluster);
    drop(tmpfs);
}
