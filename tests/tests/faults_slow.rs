//! A slow database: Postgres up, but every round trip takes seconds (a delay proxy between
//! the server and a private cluster; the machine's cluster stays up). Asserts that clients
//! are not left hanging — a submit is answered within the commit bound with `unavailable`
//! (retryable) or an ack, `/readyz` answers 503 at once — and that once the delay is gone
//! everything recovers by itself: every intent of the native clients ends accepted, no
//! acked change lost, none stored twice (docs/STORAGE.md, "Storage health").
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use confab_client::Client as NativeClient;
use confab_core::automerge::Change;
use confab_core::client::{Event, IntentStatus};
use confab_core::ids::{ConvId, DocId, TenantId};
use confab_core::protocol::{ClientFrame, ServerFrame};
use confab_e2e::delay_proxy::DelayProxy;
use confab_e2e::native_support::{accepted, client, fresh_dirs, group_of, send, today, wait_for};
use confab_e2e::pg_cluster::PgCluster;
use confab_e2e::{Client, Device, TestServer};
use serde_bytes::ByteBuf;
use tokio::sync::broadcast::error::RecvError;

/// The server's bound on one commit (`COMMIT_TIMEOUT` in server/src/store/health.rs).
const COMMIT_TIMEOUT: Duration = Duration::from_secs(6);
/// The delays added to each direction: a round trip takes 12 s, well beyond the commit
/// bound, the pool timeout (2 s) and the probe bound (500 ms). The answer's delay alone is
/// beyond [`ANSWER_BOUND`], so even a commit already in flight when the database turns slow
/// would leave its submits waiting past the bound without the server's commit timeout.
const DELAY_UP: Duration = Duration::from_secs(2);
const DELAY_DOWN: Duration = Duration::from_secs(10);
/// How long the database stays slow.
const SLOW_FOR: Duration = Duration::from_secs(10);
/// The longest any submit may wait for its answer while the database is slow: the commit
/// bound plus generous slack for a loaded CI VM.
const ANSWER_BOUND: Duration = COMMIT_TIMEOUT.saturating_add(Duration::from_secs(3));
/// A `/readyz` must answer within this (it never waits on the database).
const READYZ_ANSWER: Duration = Duration::from_secs(1);
/// How long every intent may take to settle once the delay is gone.
const SETTLE: Duration = Duration::from_secs(60);

/// Sends `count` messages from `c`, one every `pace`, named `<tag>-<n>`.
async fn write_for(c: NativeClient, conv: ConvId, tag: &'static str, count: usize) -> Vec<u64> {
    let pace = Duration::from_millis(40);
    let mut ids = Vec::with_capacity(count);
    for n in 0..count {
        let started = Instant::now();
        ids.push(send(&c, &conv, &format!("{tag}-{n}"), &format!("{tag} says {n}")).await);
        tokio::time::sleep(pace.saturating_sub(started.elapsed())).await;
    }
    ids
}

/// Sends one change and waits for its answer: (code, time taken). Panics if no answer
/// comes within `bound`.
async fn submit_one(
    client: &mut Client,
    doc: &DocId,
    change: &Change,
    bound: Duration,
) -> (String, Duration) {
    let started = Instant::now();
    client
        .send(&ClientFrame::Submit {
            doc: doc.to_string(),
            changes: vec![ByteBuf::from(change.raw_bytes().to_vec())],
        })
        .await
        .unwrap();
    let want = change.hash().0.to_vec();
    loop {
        let left = bound.saturating_sub(started.elapsed());
        let frame = match client.recv(left).await {
            Ok(frame) => frame,
            Err(e) => panic!("a submit was left hanging: no answer within {bound:?} ({e})"),
        };
        let (hash, code) = match frame {
            ServerFrame::Ack { hash, .. } => (hash.to_vec(), "ack".to_owned()),
            ServerFrame::Reject {
                hash: Some(hash),
                code,
                ..
            } => (hash.to_vec(), code),
            ServerFrame::Error {
                hash: Some(hash),
                code,
                retry_after_ms,
                ..
            } => {
                assert!(retry_after_ms.is_some(), "{code} names a retry_after_ms");
                (hash.to_vec(), code)
            }
            other => panic!("unexpected frame {other:?}"),
        };
        if hash == want {
            return (code, started.elapsed());
        }
    }
}

/// Sends `changes` 100 ms apart without waiting, then reads their answers: (code, time
/// from its send) each, in order. Panics if one is not answered within `bound` of its send.
async fn submit_burst(
    client: &mut Client,
    doc: &DocId,
    changes: &[Change],
    bound: Duration,
) -> Vec<(String, Duration)> {
    let mut sent = Vec::new();
    for change in changes {
        client
            .send(&ClientFrame::Submit {
                doc: doc.to_string(),
                changes: vec![ByteBuf::from(change.raw_bytes().to_vec())],
            })
            .await
            .unwrap();
        sent.push((change.hash().0.to_vec(), Instant::now()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut answers: Vec<Option<(String, Duration)>> = vec![None; changes.len()];
    while answers.iter().any(Option::is_none) {
        let oldest = sent
            .iter()
            .zip(&answers)
            .filter(|(_, a)| a.is_none())
            .map(|((_, at), _)| *at)
            .min()
            .unwrap();
        let left = bound.saturating_sub(oldest.elapsed());
        let frame = match client.recv(left).await {
            Ok(frame) => frame,
            Err(e) => panic!("a submit was left hanging: no answer within {bound:?} ({e})"),
        };
        let (hash, code) = match frame {
            ServerFrame::Ack { hash, .. } => (hash.to_vec(), "ack".to_owned()),
            ServerFrame::Reject {
                hash: Some(hash),
                code,
                ..
            } => (hash.to_vec(), code),
            ServerFrame::Error {
                hash: Some(hash),
                code,
                ..
            } => (hash.to_vec(), code),
            other => panic!("unexpected frame {other:?}"),
        };
        if let Some(i) = sent.iter().position(|(h, _)| *h == hash) {
            answers[i] = Some((code, sent[i].1.elapsed()));
        }
    }
    answers.into_iter().flatten().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_postgres_answers_within_a_bound_and_recovers_with_every_intent_accepted() {
    let cluster = PgCluster::start().unwrap();
    let proxy = DelayProxy::start(cluster.port).await.unwrap();
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", proxy.port);
    let data_dir = cluster.server_dir("faults-slow");
    let server = TestServer::start_on(Some(url), data_dir, &[])
        .await
        .unwrap();

    // A raw client times single submits on a conversation of its own.
    let mut owner = Device::new("alice", 2);
    let mut raw = connect(&server, "alice").await;
    let (probe_doc, create) = create_group(&mut owner, "slow-probe", &["bob"]);
    assert_acked(&raw.submit(&probe_doc, &[create]).await.unwrap());
    let probe_conv = ConvId::new("slow-probe").unwrap();
    let base = base_time(120_000);
    let probe_bucket = bucket_doc(&probe_conv, base);
    let mut raw_sent: Vec<Change> = Vec::new();
    let next_raw = |owner: &mut Device, sent: &mut Vec<Change>| {
        let i = sent.len();
        let (_, change) = message(
            owner,
            &probe_conv,
            &format!("p{i}"),
            "probe",
            base + i as i64,
        );
        sent.push(change.clone());
        change
    };
    let change = next_raw(&mut owner, &mut raw_sent);
    let (code, _) = submit_one(&mut raw, &probe_bucket, &change, ANSWER_BOUND).await;
    assert_eq!(code, "ack");

    // Native clients write throughout.
    let dirs = fresh_dirs("faults-slow", 2);
    let alice = client(&server, "alice", 1, &dirs[0]);
    let bob = client(&server, "bob", 1, &dirs[1]);
    alice.set_online(true).await.unwrap();
    bob.set_online(true).await.unwrap();
    let conv = ConvId::new("slow-room").unwrap();
    let created = alice.intent(group_of(&conv, &["bob"])).await.unwrap();
    accepted(&alice, created).await;
    bob.open(DocId::conv(&TenantId::new("acme").unwrap(), &conv))
        .await
        .unwrap();
    // Bob writes only once his copy of the conversation exists.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let c = conv.clone();
        if bob
            .query(move |e| e.conversation(&c).is_some())
            .await
            .unwrap()
        {
            break;
        }
        assert!(Instant::now() < deadline, "bob never got the conversation");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bucket = today(&alice, &conv).await;
    alice.open(bucket.clone()).await.unwrap();
    bob.open(bucket).await.unwrap();
    let retried = Arc::new(Mutex::new(HashSet::new()));
    let mut events = alice.events();
    let seen = retried.clone();
    let watcher = tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(Event::Intent {
                    id,
                    status: IntentStatus::Retrying,
                }) => {
                    seen.lock().unwrap().insert(id);
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            }
        }
    });
    // ~25 msg/s each for ~14 s: before, during and after the slow spell.
    let per_client = 350;
    let writers = [
        tokio::spawn(write_for(alice.clone(), conv.clone(), "alice", per_client)),
        tokio::spawn(write_for(bob.clone(), conv.clone(), "bob", per_client)),
    ];
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Slow: every byte waits DELAY_UP to Postgres, DELAY_DOWN back.
    proxy.set_delay(DELAY_UP, DELAY_DOWN);
    let slow_from = Instant::now();
    // Submits sent at once meet a commit in flight (the state is not down yet): they are
    // answered by the commit bound, not after the 12 s round trip; /readyz turns 503
    // meanwhile, answering every poll at once.
    let burst: Vec<Change> = (0..5)
        .map(|_| next_raw(&mut owner, &mut raw_sent))
        .collect();
    let (burst_answers, to_503) = tokio::join!(
        submit_burst(&mut raw, &probe_bucket, &burst, ANSWER_BOUND),
        readyz_until(&server, READYZ_ANSWER, 503, Duration::from_secs(3)),
    );
    println!("slow: /readyz 503 after {to_503:?}; burst answered {burst_answers:?}");
    let mut answers: Vec<(String, Duration)> = Vec::new();
    let mut unacked: Vec<Change> = Vec::new();
    for (change, (code, took)) in burst.into_iter().zip(burst_answers) {
        assert!(
            code == "ack" || code == "unavailable",
            "a submit to a slow database answered {code} (must be retryable)"
        );
        if code != "ack" {
            unacked.push(change);
        }
        answers.push((code, took));
    }
    while slow_from.elapsed() < SLOW_FOR {
        let change = next_raw(&mut owner, &mut raw_sent);
        let (code, took) = submit_one(&mut raw, &probe_bucket, &change, ANSWER_BOUND).await;
        assert!(
            code == "ack" || code == "unavailable",
            "a submit to a slow database answered {code} (must be retryable)"
        );
        if code != "ack" {
            unacked.push(change);
        }
        answers.push((code, took));
        assert_eq!(
            server.readyz(READYZ_ANSWER).await,
            Some(503),
            "not ready while the database is slow"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let slowest = answers.iter().map(|a| a.1).max().unwrap_or_default();
    println!(
        "slow: {} raw submits answered {:?}, slowest {slowest:?}",
        answers.len(),
        answers
            .iter()
            .map(|a| (a.0.as_str(), a.1))
            .collect::<Vec<_>>()
    );
    assert!(
        answers.iter().any(|a| a.0 == "unavailable"),
        "no submit was answered unavailable while the database was slow"
    );
    // Once the state is down, answers come at once, not after the commit bound.
    assert!(
        answers.last().unwrap().1 < Duration::from_secs(1),
        "answered at once while known slow: {:?}",
        answers.last()
    );

    // The delay is gone: ready again without a restart, resubmissions acked.
    proxy.set_delay(Duration::ZERO, Duration::ZERO);
    let to_200 = readyz_until(&server, READYZ_ANSWER, 200, Duration::from_secs(25)).await;
    println!("slow: /readyz 200 {to_200:?} after the delay was removed");
    // As a client does: resubmit in order, after the retry delay while still unavailable
    // (the connections drain the answers delayed before; a commit on one may time out once
    // more and turn the state down for a moment).
    let deadline = Instant::now() + Duration::from_secs(30);
    for change in &unacked {
        loop {
            let (code, _) = submit_one(&mut raw, &probe_bucket, change, ANSWER_BOUND).await;
            if code == "ack" {
                break;
            }
            assert_eq!(code, "unavailable", "a resubmission after the slow spell");
            assert!(
                Instant::now() < deadline,
                "a resubmitted change still unavailable 30 s after the delay was removed"
            );
            tokio::time::sleep(Duration::from_millis(1000)).await;
        }
    }
    raw.close().await;
    let log = log_of(&server, "alice", &probe_bucket).await;
    assert_clean_log(&log);
    assert_eq!(log.len(), raw_sent.len(), "each probe change stored once");
    let stored: HashSet<[u8; 32]> = log.iter().map(|(_, h)| *h).collect();
    assert!(raw_sent.iter().all(|c| stored.contains(&c.hash().0)));

    let [a, b] = writers;
    let (alice_ids, bob_ids) = (a.await.unwrap(), b.await.unwrap());
    for (c, ids) in [(&alice, &alice_ids), (&bob, &bob_ids)] {
        for &id in ids.iter() {
            match c.settle(id, SETTLE).await {
                Ok(None) => {}
                Ok(Some(status)) => panic!("intent {id} ended {status:?}, not accepted"),
                Err(e) => panic!("intent {id} never settled: {e}"),
            }
        }
    }
    watcher.abort();
    let retried = retried.lock().unwrap().len();
    assert!(
        retried > 0,
        "the slow spell sent none of alice's intents into retrying"
    );
    println!("slow: {retried} of alice's intents retried, all accepted");
    let total = 2 * per_client;
    let on_alice = wait_for(&alice, &conv, total).await;
    let on_bob = wait_for(&bob, &conv, total).await;
    assert_eq!(on_alice.len(), total, "no message twice");
    assert_eq!(on_alice, on_bob, "both clients hold one timeline");
    let unique: HashSet<&String> = on_alice.iter().collect();
    assert_eq!(unique.len(), total, "every message once");
    drop(server);
    drop(proxy);
}
