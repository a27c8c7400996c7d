//! Storage faults with real processes: the server fails fast while its database is gone or
//! full and recovers by itself when it is back (docs/STORAGE.md, "Storage health").
//!
//! - Postgres: a private cluster (its own port; the machine's cluster stays up) stopped with
//!   `pg_ctl stop -m fast`, and killed with `kill -9` of the postmaster, under load from
//!   three clients that resubmit what is not acked.
//! - SQLite on a small tmpfs filled to the last byte, then freed.
//!
//! Each asserts: submits answered at once with `unavailable` and a `retry_after_ms` while
//! the storage is down, `/readyz` 503 soon after the fault and 200 again after it without a
//! restart of the server, every change finally acked, no acked change lost, none twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use confab_core::automerge::Change;
use confab_core::ids::{ConvId, DocId};
use confab_core::protocol::{ClientFrame, ServerFrame};
use confab_e2e::pg_cluster::PgCluster;
use confab_e2e::store_probe::scalar;
use confab_e2e::{Device, TestServer};
use serde_bytes::ByteBuf;

/// A `/readyz` must answer within this (it never waits on the database).
const READYZ_ANSWER: Duration = Duration::from_secs(1);
/// Generous bound (a loaded CI VM) on the time from the fault to `/readyz` 503; the
/// health prober's own bound is about 1 s, the old behaviour was 11 s.
const TO_NOT_READY: Duration = Duration::from_secs(3);
/// Generous bound on the answer to a submit sent while the storage is known down.
const FAST_ANSWER: Duration = Duration::from_secs(1);
/// How long a commit that was already waiting for a connection when the database went away
/// waits (the Postgres pool's acquire timeout). A connection's answers keep its order, so a
/// submit's refusal can follow such an earlier submit's answer until then.
const POOL_WAIT: Duration = Duration::from_secs(2);
/// Bound on a subscription's answer while down: at once, unless its unit has a commit that
/// was already waiting for a connection when the database went away; the unit answers once
/// that commit gives up (the Postgres pool's 2 s), plus slack for a loaded CI VM.
const SUBSCRIBE_ANSWER: Duration = Duration::from_secs(3);

fn hash_of(change: &Change) -> [u8; 32] {
    change.hash().0
}

/// One answer a sender got.
#[derive(Debug, Clone)]
struct Answered {
    sent: Instant,
    took: Duration,
    code: String,
    retry_after_ms: Option<u64>,
}

/// What one sender did.
#[derive(Debug, Default)]
struct SendLog {
    account: String,
    sent: Vec<Change>,
    acks: HashMap<[u8; 32], u64>,
    answers: Vec<Answered>,
    /// Rejections other than a `missing_dependency` behind one of its own failed changes.
    rejects: Vec<(String, String)>,
    ended: String,
}

/// Writes one message every `pace` while `producing`; resubmits, in order, whatever is
/// answered with a retryable error (after its `retry_after_ms`) or `missing_dependency`;
/// ends once production stopped and everything is acked (or at `limit`).
async fn send_and_resubmit(
    url: String,
    mut device: Device,
    conv: ConvId,
    bucket: DocId,
    base: i64,
    producing: Arc<AtomicBool>,
    limit: Duration,
) -> SendLog {
    const WINDOW: usize = 4;
    let pace = Duration::from_millis(40);
    let account = device.account.clone();
    let mut log = SendLog {
        account: account.clone(),
        ..SendLog::default()
    };
    let mut client = connect_at(&url, &account).await;
    let deadline = Instant::now() + limit;
    let mut queue: VecDeque<usize> = VecDeque::new();
    let mut in_flight: HashMap<[u8; 32], (usize, Instant)> = HashMap::new();
    let mut paused_until = Instant::now();
    let mut last_new = Instant::now() - pace;
    loop {
        let now = Instant::now();
        if now > deadline {
            log.ended = "limit".into();
            break;
        }
        let producing_now = producing.load(Ordering::SeqCst);
        if !producing_now
            && queue.is_empty()
            && in_flight.is_empty()
            && log.acks.len() == log.sent.len()
        {
            log.ended = "done".into();
            break;
        }
        // Resubmissions wait for every answer of the round before them, so they go out
        // in order.
        while in_flight.len() < WINDOW && now >= paused_until {
            let i = if !queue.is_empty() {
                if !in_flight.is_empty() {
                    break;
                }
                match queue.pop_front() {
                    Some(i) => i,
                    None => break,
                }
            } else if producing_now && last_new.elapsed() >= pace {
                let i = log.sent.len();
                let (_, change) = message(
                    &mut device,
                    &conv,
                    &format!("{account}-{i}"),
                    &format!("{account} says {i}"),
                    base + i as i64,
                );
                log.sent.push(change);
                last_new = Instant::now();
                i
            } else {
                break;
            };
            let change = &log.sent[i];
            let frame = ClientFrame::Submit {
                doc: bucket.to_string(),
                changes: vec![ByteBuf::from(change.raw_bytes().to_vec())],
            };
            client.send(&frame).await.unwrap();
            in_flight.insert(hash_of(change), (i, Instant::now()));
        }
        let frame = match client.recv(Duration::from_millis(20)).await {
            Ok(frame) => frame,
            Err(e) if e.to_string().starts_with("no frame within") => continue,
            Err(e) => {
                log.ended = format!("connection: {e}");
                break;
            }
        };
        let (hash, code, retry_after_ms) = match frame {
            ServerFrame::Ack { hash, seq, .. } => {
                let hash: [u8; 32] = hash.as_slice().try_into().unwrap();
                log.acks.insert(hash, seq);
                (hash, "ack".to_owned(), None)
            }
            ServerFrame::Reject {
                hash: Some(hash),
                code,
                reason,
                ..
            } => {
                let hash: [u8; 32] = hash.as_slice().try_into().unwrap();
                if code != "missing_dependency" {
                    log.rejects.push((code.clone(), reason));
                }
                (hash, code, None)
            }
            ServerFrame::Error {
                hash: Some(hash),
                code,
                retry_after_ms,
                ..
            } => (hash.as_slice().try_into().unwrap(), code, retry_after_ms),
            other => panic!("{account}: unexpected frame {other:?}"),
        };
        let Some((i, sent)) = in_flight.remove(&hash) else {
            continue;
        };
        log.answers.push(Answered {
            sent,
            took: sent.elapsed(),
            code: code.clone(),
            retry_after_ms,
        });
        match code.as_str() {
            "ack" => {}
            "unavailable" | "internal" | "shutting_down" | "missing_dependency" => {
                // Resubmit it and everything after it that is not acked, in order.
                if !queue.contains(&i) {
                    queue.push_back(i);
                    queue.make_contiguous().sort_unstable();
                }
                let wait = Duration::from_millis(retry_after_ms.unwrap_or(200));
                paused_until = paused_until.max(Instant::now() + wait);
            }
            _ => {}
        }
    }
    client.close().await;
    log
}

/// The `confab_storage_up` gauge as `/metrics` shows it.
async fn storage_up(server: &TestServer) -> i64 {
    let HttpAnswer { status, body, .. } = http(server, "GET", "/metrics", "alice", None).await;
    assert_eq!(status, 200, "/metrics: {body}");
    body.lines()
        .find_map(|l| l.strip_prefix("confab_storage_up "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no confab_storage_up in /metrics:\n{body}"))
}

/// Every sender's changes ended acked; the stored log holds each acked change once, at the
/// seq it was acked with.
async fn assert_outcome(server: &TestServer, bucket: &DocId, logs: &[SendLog]) {
    let stored = log_of(server, "alice", bucket).await;
    assert_clean_log(&stored);
    let stored: HashMap<[u8; 32], u64> = stored.into_iter().map(|(s, h)| (h, s)).collect();
    for l in logs {
        assert!(
            l.rejects.is_empty(),
            "{}: rejected {:?}",
            l.account,
            l.rejects
        );
        assert_eq!(
            l.acks.len(),
            l.sent.len(),
            "{}: every change ends acked ({} of {}; ended: {})",
            l.account,
            l.acks.len(),
            l.sent.len(),
            l.ended
        );
        for (hash, seq) in &l.acks {
            assert_eq!(
                stored.get(hash),
                Some(seq),
                "{}: an acked change is missing or moved",
                l.account
            );
        }
    }
    let sent: usize = logs.iter().map(|l| l.sent.len()).sum();
    assert_eq!(stored.len(), sent, "the log holds exactly the changes sent");
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outage {
    StopFast,
    Kill9,
}

async fn postgres_outage(kind: Outage) {
    let cluster = Arc::new(PgCluster::start().unwrap());
    let data_dir = cluster.server_dir("faults");
    let server = TestServer::start_on(Some(cluster.url()), data_dir, &[])
        .await
        .unwrap();

    let mut owner = Device::new("alice", 1);
    let mut ca = connect(&server, "alice").await;
    let (conv_doc, create) = create_group(&mut owner, "outage", &["bob", "carol"]);
    assert_acked(&ca.submit(&conv_doc, &[create]).await.unwrap());
    ca.close().await;
    let conv = ConvId::new("outage").unwrap();
    let base = base_time(120_000);
    let bucket = bucket_doc(&conv, base);

    let producing = Arc::new(AtomicBool::new(true));
    let senders: Vec<_> = [("alice", 2), ("bob", 1), ("carol", 1)]
        .into_iter()
        .map(|(account, device)| {
            tokio::spawn(send_and_resubmit(
                server.ws_url(),
                Device::new(account, device),
                conv.clone(),
                bucket.clone(),
                base,
                producing.clone(),
                Duration::from_secs(45),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let c = cluster.clone();
    tokio::task::spawn_blocking(move || match kind {
        Outage::StopFast => c.stop_fast(),
        Outage::Kill9 => c.kill_postmaster(),
    })
    .await
    .unwrap()
    .unwrap();
    let to_503 = readyz_until(&server, READYZ_ANSWER, 503, TO_NOT_READY).await;
    let down_from = Instant::now();
    println!("{kind:?}: /readyz 503 after {to_503:?}");
    assert_eq!(
        storage_up(&server).await,
        0,
        "the gauge says down with /readyz"
    );
    // REST answers 503 `unavailable` with a Retry-After at once.
    let asked = Instant::now();
    let HttpAnswer {
        status,
        retry_after_s: retry_after,
        body,
    } = http(&server, "GET", "/v1/conversations", "alice", None).await;
    assert_eq!(status, 503, "REST while down: {body}");
    assert!(retry_after.is_some(), "503 carries Retry-After");
    assert!(body.contains("\"unavailable\""), "REST while down: {body}");
    assert!(asked.elapsed() < FAST_ANSWER, "REST answered at once");
    // A subscription is answered at once too: from memory, or `unavailable`.
    let mut reader = connect(&server, "bob").await;
    let asked = Instant::now();
    reader
        .send(&ClientFrame::Subscribe {
            doc: conv_doc.to_string(),
            after: 1,
        })
        .await
        .unwrap();
    match reader.recv(Duration::from_secs(5)).await.unwrap() {
        ServerFrame::Synced { seq, .. } => assert_eq!(seq, 1),
        ServerFrame::Error { code, .. } => assert_eq!(code, "unavailable"),
        other => panic!("subscribe while down: {other:?}"),
    }
    let took = asked.elapsed();
    assert!(
        took < SUBSCRIBE_ANSWER,
        "subscribe answered at once: {took:?}"
    );
    reader.close().await;
    // Down for at least two paused rounds of the senders after the pool's wait.
    tokio::time::sleep(POOL_WAIT + Duration::from_secs(2)).await;
    let down_until = Instant::now();
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.start_again())
        .await
        .unwrap()
        .unwrap();
    let to_200 = readyz_until(&server, READYZ_ANSWER, 200, Duration::from_secs(15)).await;
    println!("{kind:?}: /readyz 200 {to_200:?} after the cluster was back");
    assert_eq!(storage_up(&server).await, 1, "the gauge says up again");
    tokio::time::sleep(Duration::from_secs(2)).await;
    producing.store(false, Ordering::SeqCst);
    let mut logs = Vec::new();
    for s in senders {
        logs.push(s.await.unwrap());
    }

    // While down: answered at once, `unavailable` with a retry_after_ms.
    let during: Vec<&Answered> = logs
        .iter()
        .flat_map(|l| &l.answers)
        .filter(|a| a.sent >= down_from && a.sent + a.took <= down_until)
        .collect();
    assert!(
        !during.is_empty(),
        "the clients sent nothing while the database was down"
    );
    let slowest = during.iter().map(|a| a.took).max().unwrap_or_default();
    println!(
        "{kind:?}: {} answers while down, slowest {slowest:?}",
        during.len()
    );
    for a in &during {
        assert_eq!(a.code, "unavailable", "while down: {a:?}");
        assert!(
            a.retry_after_ms.is_some(),
            "unavailable names a retry_after_ms"
        );
        assert!(
            a.took < SUBSCRIBE_ANSWER,
            "answered within the pool's wait while down: {a:?}"
        );
    }
    // Once every commit that was waiting has given up, each answer comes at once.
    let settled: Vec<&&Answered> = during
        .iter()
        .filter(|a| a.sent >= down_from + POOL_WAIT)
        .collect();
    assert!(
        !settled.is_empty(),
        "the clients sent nothing once the pool's wait was over"
    );
    for a in settled {
        assert!(a.took < FAST_ANSWER, "answered at once while down: {a:?}");
    }
    for l in &logs {
        for a in &l.answers {
            assert!(
                ["ack", "unavailable", "internal", "missing_dependency"].contains(&a.code.as_str()),
                "{}: unexpected answer {a:?}",
                l.account
            );
        }
    }
    assert_outcome(&server, &bucket, &logs).await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopped_under_load_fails_fast_and_recovers() {
    postgres_outage(Outage::StopFast).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_postmaster_killed_under_load_fails_fast_and_recovers() {
    postgres_outage(Outage::Kill9).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_disk_full_fails_fast_and_recovers_when_space_is_back() {
    let tmpfs = Tmpfs::mount("30m", "the SQLite disk-full fault test");
    let mut server = TestServer::start_on(None, tmpfs.path().join("data"), &[])
        .await
        .unwrap();
    let mut alice = Device::new("alice", 1);
    let mut client = connect(&server, "alice").await;
    let (conv_doc, create) = create_group(&mut alice, "full", &["bob"]);
    assert_acked(&client.submit(&conv_doc, &[create]).await.unwrap());
    let conv = ConvId::new("full").unwrap();
    let base = base_time(120_000);
    let bucket = bucket_doc(&conv, base);
    let mut sent: Vec<Change> = Vec::new();
    let mut acks: HashMap<[u8; 32], u64> = HashMap::new();
    let write = |alice: &mut Device, sent: &mut Vec<Change>| {
        let i = sent.len();
        let (_, change) = message(
            alice,
            &conv,
            &format!("m{i}"),
            &format!("message {i} {}", "x".repeat(200)),
            base + i as i64,
        );
        sent.push(change.clone());
        change
    };
    for _ in 0..10 {
        let change = write(&mut alice, &mut sent);
        let (code, _, _) = submit_one(&mut client, &bucket, &change).await;
        assert_eq!(code, "ack");
    }

    // Fill the disk to the last byte.
    let filler = tmpfs.path().join("filler");
    let _ = std::process::Command::new("dd")
        .args(["if=/dev/zero", "bs=1M"])
        .arg(format!("of={}", filler.display()))
        .stderr(std::process::Stdio::null())
        .status();
    // Small files may still fit in the last blocks: fill those too.
    for n in 0..64 {
        let _ = std::fs::write(tmpfs.path().join(format!("crumb{n}")), [0u8; 4096]);
    }

    // Submits fail with `unavailable` once a commit cannot be written.
    let mut unacked: Vec<Change> = Vec::new();
    let mut first_failure = None;
    for _ in 0..200 {
        let change = write(&mut alice, &mut sent);
        let (code, retry, _) = submit_one(&mut client, &bucket, &change).await;
        match code.as_str() {
            "ack" => continue,
            "unavailable" => {
                assert!(retry.is_some(), "unavailable names a retry_after_ms");
                unacked.push(change);
                first_failure = Some(Instant::now());
                break;
            }
            other => panic!("a commit on a full disk answered {other}"),
        }
    }
    assert!(first_failure.is_some(), "the disk never filled up");
    let to_503 = readyz_until(&server, READYZ_ANSWER, 503, TO_NOT_READY).await;
    println!("disk full: /readyz 503 {to_503:?} after the first failed commit");

    // What the search indexer could not move while full stays in the backlog for later.
    let backlog_while_full = scalar(&server, "SELECT COUNT(*) FROM search_backlog", None).await;
    println!("disk full: {backlog_while_full} search entries waiting for the indexer");

    // While full: answered at once, and not ready for as long as it cannot write.
    for _ in 0..5 {
        let change = write(&mut alice, &mut sent);
        let (code, retry, took) = submit_one(&mut client, &bucket, &change).await;
        assert_eq!(code, "unavailable");
        assert!(retry.is_some());
        assert!(took < FAST_ANSWER, "answered at once while full: {took:?}");
        unacked.push(change);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            server.readyz(READYZ_ANSWER).await,
            Some(503),
            "not ready while it cannot write"
        );
    }

    // Space is back: ready again and commits succeed, without a restart.
    std::fs::remove_file(&filler).unwrap();
    for n in 0..64 {
        let _ = std::fs::remove_file(tmpfs.path().join(format!("crumb{n}")));
    }
    let to_200 = readyz_until(&server, READYZ_ANSWER, 200, Duration::from_secs(10)).await;
    println!("disk freed: /readyz 200 after {to_200:?}");
    for change in &unacked {
        let (code, _, _) = submit_one(&mut client, &bucket, change).await;
        assert_eq!(
            code, "ack",
            "a resubmitted change is acked once space is back"
        );
    }
    for _ in 0..5 {
        let change = write(&mut alice, &mut sent);
        let (code, _, _) = submit_one(&mut client, &bucket, &change).await;
        assert_eq!(code, "ack");
    }
    // Collect the acked seqs from a fresh log and compare with every change sent.
    client.close().await;
    let log = log_of(&server, "alice", &bucket).await;
    assert_clean_log(&log);
    for (seq, hash) in &log {
        acks.insert(*hash, *seq);
    }
    for change in &sent {
        assert!(
            acks.contains_key(&hash_of(change)),
            "every change sent is stored once space is back"
        );
    }
    assert_eq!(log.len(), sent.len(), "nothing stored twice or unasked");
    // The search indexer resumed by itself: every message is in FTS5 once, none waits.
    let deadline = Instant::now() + Duration::from_secs(10);
    while scalar(&server, "SELECT COUNT(*) FROM search_backlog", None).await > 0 {
        assert!(
            Instant::now() < deadline,
            "the search backlog stays after the fault"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let indexed = "SELECT COUNT(*) FROM message_search WHERE message_search MATCH 'message'";
    assert_eq!(
        scalar(&server, indexed, None).await,
        i64::try_from(sent.len()).unwrap(),
        "every message indexed once"
    );

    // The file is intact: a restarted server serves the same log.
    server.restart().await.unwrap();
    let again = log_of(&server, "alice", &bucket).await;
    assert_eq!(again, log, "the log survives a restart unchanged");
    drop(server);
    drop(tmpfs);
}

/// Without traffic the prober notices the outage (`/readyz` 503 with no failed commit to
/// tell it), and after the restart the first submit is acked at once: the committer's idle
/// connection, dead since the outage, is replaced before it is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_without_traffic_is_noticed_and_the_first_commit_after_succeeds() {
    let cluster = Arc::new(PgCluster::start().unwrap());
    let data_dir = cluster.server_dir("faults");
    let server = TestServer::start_on(Some(cluster.url()), data_dir, &[])
        .await
        .unwrap();
    let mut owner = Device::new("alice", 1);
    let mut client = connect(&server, "alice").await;
    let (conv_doc, create) = create_group(&mut owner, "idle", &["bob"]);
    assert_acked(&client.submit(&conv_doc, &[create]).await.unwrap());
    let conv = ConvId::new("idle").unwrap();
    let base = base_time(60_000);
    let bucket = bucket_doc(&conv, base);

    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.stop_fast())
        .await
        .unwrap()
        .unwrap();
    let to_503 = readyz_until(&server, READYZ_ANSWER, 503, TO_NOT_READY).await;
    println!("idle: /readyz 503 after {to_503:?}");
    let (_, change) = message(&mut owner, &conv, "m0", "hello", base);
    let (code, retry, took) = submit_one(&mut client, &bucket, &change).await;
    assert_eq!(code, "unavailable");
    assert!(retry.is_some() && took < FAST_ANSWER, "{retry:?} {took:?}");

    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.start_again())
        .await
        .unwrap()
        .unwrap();
    let to_200 = readyz_until(&server, READYZ_ANSWER, 200, Duration::from_secs(15)).await;
    println!("idle: /readyz 200 {to_200:?} after the cluster was back");
    let (code, _, _) = submit_one(&mut client, &bucket, &change).await;
    assert_eq!(code, "ack", "the first submit after the outage is acked");
    assert_eq!(
        server.readyz(READYZ_ANSWER).await,
        Some(200),
        "and the storage stays up"
    );
    client.close().await;
    let log = log_of(&server, "alice", &bucket).await;
    assert_eq!(log, vec![(1, hash_of(&change))]);
}
