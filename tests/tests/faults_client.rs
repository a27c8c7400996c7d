//! The real client engine through a real database outage: native clients (core's
//! `ClientEngine`, a WebSocket, a file store) keep writing while the server's Postgres (a
//! private cluster; the machine's stays up) is stopped and started again. Every intent must
//! end accepted — none rejected, none stuck — and both clients must hold one timeline in
//! the same order (docs/PROTOCOL.md, "Retryable codes").
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use confab_client::Client as NativeClient;
use confab_core::client::{Event, IntentStatus};
use confab_core::ids::{ConvId, DocId, TenantId};
use confab_e2e::native_support::*;
use confab_e2e::pg_cluster::PgCluster;
use confab_e2e::TestServer;
use tokio::sync::broadcast::error::RecvError;

/// How long every intent may take to settle once the database is back (generous: a loaded
/// CI VM; the engine retries after the server's `retry_after_ms`, 1 s).
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

/// Waits until every intent of `c` in `ids` is settled; returns the rejected ones.
async fn rejected(c: &NativeClient, ids: &[u64]) -> Vec<(u64, IntentStatus)> {
    let mut out = Vec::new();
    for &id in ids {
        match c.settle(id, SETTLE).await {
            Ok(None) => {}
            Ok(Some(status)) => out.push((id, status)),
            Err(e) => panic!("intent {id} never settled: {e}"),
        }
    }
    out
}

#[tokio::test]
async fn native_clients_writing_through_a_postgres_outage_end_with_every_intent_accepted() {
    let cluster = Arc::new(PgCluster::start().unwrap());
    let data_dir = cluster.server_dir("faults-client");
    let server = TestServer::start_on(Some(cluster.url()), data_dir, &[])
        .await
        .unwrap();
    let dirs = fresh_dirs("faults-client", 2);
    let alice = client(&server, "alice", 1, &dirs[0]);
    let bob = client(&server, "bob", 1, &dirs[1]);
    alice.set_online(true).await.unwrap();
    bob.set_online(true).await.unwrap();

    let conv = ConvId::new("outage-room").unwrap();
    let created = alice.intent(group_of(&conv, &["bob"])).await.unwrap();
    accepted(&alice, created).await;
    bob.open(DocId::conv(&TenantId::new("acme").unwrap(), &conv))
        .await
        .unwrap();
    let bucket = today(&alice, &conv).await;
    alice.open(bucket.clone()).await.unwrap();
    bob.open(bucket).await.unwrap();

    // Counts the intents the outage sent into `retrying` (the fault must really hit them).
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

    // ~25 msg/s from each for ~8 s; the database is gone for ~3 s in the middle.
    let per_client = 200;
    let writers = [
        tokio::spawn(write_for(alice.clone(), conv.clone(), "alice", per_client)),
        tokio::spawn(write_for(bob.clone(), conv.clone(), "bob", per_client)),
    ];
    tokio::time::sleep(Duration::from_secs(2)).await;
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.stop_fast())
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.start_again())
        .await
        .unwrap()
        .unwrap();
    let [a, b] = writers;
    let (alice_ids, bob_ids) = (a.await.unwrap(), b.await.unwrap());

    let alice_rejected = rejected(&alice, &alice_ids).await;
    let bob_rejected = rejected(&bob, &bob_ids).await;
    assert!(
        alice_rejected.is_empty() && bob_rejected.is_empty(),
        "a transient outage rejected valid intents: alice {alice_rejected:?}, bob {bob_rejected:?}"
    );

    watcher.abort();
    let retried = retried.lock().unwrap().len();
    assert!(
        retried > 0,
        "the outage sent none of alice's intents into retrying"
    );
    println!("alice: {retried} intents retried through the outage, all accepted");

    // One timeline, same order on both, every message once, each writer's in its order.
    let total = 2 * per_client;
    let on_alice = wait_for(&alice, &conv, total).await;
    let on_bob = wait_for(&bob, &conv, total).await;
    assert_eq!(on_alice.len(), total, "no message twice");
    assert_eq!(on_alice, on_bob, "both clients hold one timeline");
    for tag in ["alice", "bob"] {
        let own: Vec<&String> = on_alice
            .iter()
            .filter(|b| b.starts_with(&format!("{tag} says")))
            .collect();
        let expected: Vec<String> = (0..per_client).map(|n| format!("{tag} says {n}")).collect();
        assert_eq!(
            own.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            expected.iter().map(String::as_str).collect::<Vec<_>>(),
            "{tag}'s messages keep their order"
        );
    }
}
