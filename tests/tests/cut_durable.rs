//! History cuts that survive the process, through the real server binary on SQLite and
//! Postgres (docs/STORAGE.md, "Cutting a part's history"):
//! - a delete acked just before a kill -9 is cut after the restart, once its delay is over:
//!   the due list is in the store, written by the commit that stored the delete;
//! - a kill -9 while a part of 400 messages is being cut, a few times over, with two
//!   devices writing messages and reactions throughout: afterwards the part is at one
//!   generation, every acked message and reaction is there, and the devices converge;
//! - the same with two nodes on one Postgres, writers on both, no kill: one node cuts each
//!   due part, one generation wins, nothing acked is lost;
//! - two nodes again, the node that starts each cut killed inside it: the same holds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "cluster/nodes.rs"]
#[allow(dead_code)]
mod cluster_nodes;
mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{assert_acked, connect, create_group, message};
use confab_client::Client as NativeClient;
use confab_core::client::Intent;
use confab_core::ids::{ConvId, DocId, DocTarget, MessageId, TenantId};
use confab_e2e::native_support::*;
use confab_e2e::store_probe::{cuts_noted, generation_of, scalar, store_holds};
use confab_e2e::{now_ms, Backend, Device, TestServer};

const MARKER: &str = "durable-cut-marker-5e17";
/// What the kill test's server logs: the cut's start at debug, the rest at warn.
const CUT_LOG: &str = "warn,confab_server::engine::cut=debug";

fn bucket_of(doc: &DocId) -> confab_core::ids::Bucket {
    let DocTarget::Msgs(_, b) = doc.target() else {
        unreachable!("a message part")
    };
    *b
}

async fn due_cut_survives_a_kill(backend: Backend) {
    const DELAY_S: u64 = 4;
    let delay = DELAY_S.to_string();
    let mut server = TestServer::start_with(backend, &["--cut-after-delete-secs", &delay])
        .await
        .unwrap();
    let dirs = fresh_dirs(&format!("durable-{backend:?}"), 1);
    let alice = client(&server, "alice", 1, &dirs[0]);
    alice.set_online(true).await.unwrap();
    let conv = ConvId::new("durable-room").unwrap();
    let (part, _) = part_with_a_deleted_message(&alice, &conv, MARKER).await;
    let deleted = Instant::now();
    server.kill().await.unwrap();
    assert!(
        deleted.elapsed() < Duration::from_secs(DELAY_S),
        "the kill came before the cut was due"
    );
    assert_eq!(generation_of(&server, &part).await, 0, "not cut yet");
    assert_eq!(cuts_noted(&server).await, 1, "the due cut is stored");
    assert!(store_holds(&server, MARKER).await, "the history holds it");

    server.restart().await.unwrap();
    assert!(
        until(Duration::from_secs(30), || async {
            generation_of(&server, &part).await >= 1
        })
        .await,
        "the restarted server cut the part"
    );
    assert!(
        deleted.elapsed() >= Duration::from_secs(DELAY_S) - Duration::from_millis(500),
        "cut before its delay: {:?}",
        deleted.elapsed()
    );
    assert_eq!(generation_of(&server, &part).await, 1, "cut once");
    assert!(
        until(Duration::from_secs(5), || async {
            cuts_noted(&server).await == 0
        })
        .await,
        "the due row goes once the cut is done"
    );
    assert!(
        !store_holds(&server, MARKER).await,
        "the deleted body is gone"
    );
    // The device comes back to the new generation and keeps the rest.
    assert!(
        until(Duration::from_secs(20), || async {
            generation_on(&alice, &part).await == Some(1)
        })
        .await
    );
    let (seen, _) = content(&alice, &conv).await;
    assert_eq!(seen, BTreeSet::from(["kept body".to_string()]), "{seen:?}");
    alice.set_online(false).await.unwrap();
    drop(alice);
    let _ = std::fs::remove_dir_all(&dirs[0]);
}

#[tokio::test]
async fn a_due_cut_survives_a_kill_on_sqlite() {
    due_cut_survives_a_kill(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_due_cut_survives_a_kill_on_postgres() {
    due_cut_survives_a_kill(Backend::Postgres).await;
}

/// Messages of carol's part before the trials (raw submits: fast), below
/// `BUCKET_OPENS_NEXT_AT` with what the trials add, so every write goes to this part.
const FILL: usize = 400;
const TRIALS: usize = 3;

/// How often the server logged a cut's start.
fn cuts_started(server: &TestServer) -> usize {
    server.log().matches("history cut started").count()
}

/// A device that writes until `stop`: a message every round and a reaction every third,
/// never waiting for answers (they are settled at the end). Returns what it asked for.
async fn write_until(
    c: NativeClient,
    who: &'static str,
    conv: ConvId,
    bucket: confab_core::ids::Bucket,
    stop: Arc<AtomicBool>,
) -> (NativeClient, Vec<(u64, String)>) {
    let mut asked = Vec::new();
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        let id = format!("{who}-{i}");
        asked.push((send(&c, &conv, &id, &id).await, id));
        if i % 3 == 0 {
            let target = format!("f{}", i % FILL);
            let react = Intent::React {
                conv: conv.clone(),
                message: MessageId::new(&target).unwrap(),
                bucket,
                emoji: "👍".into(),
                on: true,
            };
            asked.push((c.intent(react).await.unwrap(), format!("react:{target}")));
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    (c, asked)
}

/// Bodies and `(message, reactor)` pairs of the live messages a device's timeline holds.
async fn content(
    c: &NativeClient,
    conv: &ConvId,
) -> (BTreeSet<String>, BTreeSet<(String, String)>) {
    let conv = conv.clone();
    c.query(move |e| {
        let mut bodies = BTreeSet::new();
        let mut reactions = BTreeSet::new();
        for item in e.timeline(&conv) {
            if item.message.deleted_at.is_some() {
                continue;
            }
            bodies.insert(item.message.body.clone());
            for who in item.message.reactions.values().flat_map(|r| r.keys()) {
                reactions.insert((item.message.id.to_string(), who.to_string()));
            }
        }
        (bodies, reactions)
    })
    .await
    .unwrap()
}

/// Carol's group `busy-room` with alice and bob, and `FILL` messages of hers in one part:
/// that part.
async fn fill(server: &TestServer) -> DocId {
    let conv = ConvId::new("busy-room").unwrap();
    let mut carol = Device::new("carol", 9);
    let mut raw = connect(server, "carol").await;
    let (g, create) = create_group(&mut carol, "busy-room", &["alice", "bob"]);
    assert_acked(&raw.submit(&g, &[create]).await.unwrap());
    let at = now_ms();
    let mut part = None;
    let mut batch = Vec::new();
    for i in 0..FILL {
        let (doc, change) = message(
            &mut carol,
            &conv,
            &format!("f{i}"),
            &format!("fill {i}"),
            at,
        );
        part = Some(doc);
        batch.push(change);
        if batch.len() == 100 {
            let doc = part.as_ref().unwrap();
            assert_acked(&raw.submit(doc, &std::mem::take(&mut batch)).await.unwrap());
        }
    }
    raw.close().await;
    part.unwrap()
}

async fn kill_during_cuts(backend: Backend) {
    let mut server =
        TestServer::start_with_log(backend, &["--cut-after-delete-secs", "0"], CUT_LOG)
            .await
            .unwrap();
    let tenant = TenantId::new("acme").unwrap();
    let conv = ConvId::new("busy-room").unwrap();
    let part = fill(&server).await;
    let bucket = bucket_of(&part);

    let dirs = fresh_dirs(&format!("busy-{backend:?}"), 3);
    let alice = client(&server, "alice", 1, &dirs[0]);
    let bob = client(&server, "bob", 1, &dirs[1]);
    for c in [&alice, &bob] {
        c.set_online(true).await.unwrap();
        c.open(DocId::conv(&tenant, &conv)).await.unwrap();
        c.open(part.clone()).await.unwrap();
    }
    wait_for(&alice, &conv, FILL).await;
    wait_for(&bob, &conv, FILL).await;
    let stop = Arc::new(AtomicBool::new(false));
    let bob_writes = tokio::spawn(write_until(bob, "bob", conv.clone(), bucket, stop.clone()));

    let mut killed_mid_cut = 0;
    for trial in 0..TRIALS {
        // Alice deletes a message of hers: the part is due at the next pass of the runner.
        let id = format!("victim-{trial}");
        accepted(
            &alice,
            send(&alice, &conv, &id, &format!("{MARKER}-{trial}")).await,
        )
        .await;
        let started = cuts_started(&server);
        let generation = generation_of(&server, &part).await;
        let delete = Intent::Delete {
            conv: conv.clone(),
            message: MessageId::new(&id).unwrap(),
            bucket,
        };
        accepted(&alice, alice.intent(delete).await.unwrap()).await;
        // Watched closely: the kill should land inside the cut. After a kill the part
        // waits for the dead process's lease (10 s).
        let end = Instant::now() + Duration::from_secs(25);
        while cuts_started(&server) == started {
            assert!(
                Instant::now() < end,
                "the cut started: {}",
                server.log_tail(20)
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        server.kill().await.unwrap();
        // Killed before the install committed, or after: either way one generation.
        let after = generation_of(&server, &part).await;
        if after == generation {
            killed_mid_cut += 1;
        }
        server.restart().await.unwrap();
    }
    // The last restart finishes what is due.
    assert!(
        until(Duration::from_secs(40), || async {
            cuts_noted(&server).await == 0 && !store_holds(&server, MARKER).await
        })
        .await,
        "every due cut ran after the restarts"
    );
    stop.store(true, Ordering::SeqCst);
    let (bob, bob_asked) = bob_writes.await.unwrap();
    println!("{backend:?}: {killed_mid_cut} of {TRIALS} kills came before the install");

    let carol = lose_nothing(&server, &part, &bob, &bob_asked, &alice, &dirs[2], 0).await;
    for c in [&alice, &bob, &carol] {
        c.set_online(false).await.unwrap();
    }
    drop((alice, bob, carol));
    for dir in &dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// After the cuts: every intent of `writer` (`asked`) ends accepted, the part is at one
/// generation (no change at or below its snapshot), and a device that starts now (carol,
/// in `dir`), `writer` and `other` hold the same content with every acked message and
/// reaction (`others_wrote`: live messages others added). Returns the new device.
async fn lose_nothing(
    server: &TestServer,
    part: &DocId,
    bob: &NativeClient,
    bob_asked: &[(u64, String)],
    alice: &NativeClient,
    dir: &std::path::Path,
    others_wrote: usize,
) -> NativeClient {
    let tenant = TenantId::new("acme").unwrap();
    let conv = ConvId::new("busy-room").unwrap();
    // Every intent ends accepted (each device resends across the restarts).
    for (id, what) in bob_asked {
        assert_eq!(
            bob.settle(*id, Duration::from_secs(30)).await.unwrap(),
            None,
            "bob's {what} ends accepted"
        );
    }
    let generation = generation_of(server, part).await;
    assert!(generation >= 1, "the part was cut");
    // One generation: the stored log holds nothing at or below the snapshot.
    let below = scalar(
        server,
        "SELECT count(*) FROM changes c JOIN docs d ON d.doc_id = c.doc_id \
         WHERE c.doc_id = $1 AND c.seq <= d.snapshot_seq",
        Some(part.to_string()),
    )
    .await;
    assert_eq!(below, 0, "changes of an earlier generation stayed");

    // A device that starts now, alice and bob: the same content, every acked write there.
    let carol = client(server, "carol", 2, dir);
    carol.set_online(true).await.unwrap();
    carol.open(DocId::conv(&tenant, &conv)).await.unwrap();
    carol.open(part.clone()).await.unwrap();
    let mut expected_bodies = BTreeSet::new();
    let mut expected_reactions = BTreeSet::new();
    for (_, what) in bob_asked {
        match what.strip_prefix("react:") {
            Some(target) => expected_reactions.insert((target.to_string(), "bob".to_string())),
            None => expected_bodies.insert(what.clone()),
        };
    }
    let total = FILL + expected_bodies.len() + others_wrote;
    let converged = until(Duration::from_secs(30), || async {
        let c = content(&carol, &conv).await;
        let a = content(alice, &conv).await;
        let b = content(bob, &conv).await;
        c.0.len() == total && c == a && c == b
    })
    .await;
    let (bodies_seen, reactions_seen) = content(&carol, &conv).await;
    assert!(
        converged,
        "devices converge: carol holds {} of {total}",
        bodies_seen.len()
    );
    assert!(
        expected_bodies.is_subset(&bodies_seen),
        "an acked message is lost"
    );
    assert!(
        expected_reactions.is_subset(&reactions_seen),
        "an acked reaction is lost"
    );
    assert!(!bodies_seen.iter().any(|b| b.contains(MARKER)));
    carol
}

#[tokio::test]
async fn kills_during_cuts_lose_nothing_on_sqlite() {
    kill_during_cuts(Backend::Sqlite).await;
}

#[tokio::test]
async fn kills_during_cuts_lose_nothing_on_postgres() {
    kill_during_cuts(Backend::Postgres).await;
}

/// The two-node tests run one at a time: each runs two server nodes and three writing
/// devices, and beside each other on two cores a cut could wait past its bound (seen on a
/// fresh 2-core machine).
static TWO_NODES: std::sync::LazyLock<tokio::sync::Mutex<()>> =
    std::sync::LazyLock::new(|| tokio::sync::Mutex::new(()));

/// Two nodes on one Postgres, both running the cut runner: carol writes through node 0, bob
/// through node 1, alice deletes through node 1 while both write. Each due part is claimed
/// by one node (the other skips the locked row); whichever cuts, one generation wins and
/// nothing acked is lost.
#[tokio::test]
async fn two_nodes_cut_once_and_lose_nothing() {
    let _alone = TWO_NODES.lock().await;
    let nodes = cluster_nodes::Nodes::on_fresh_database_with(2, &["--cut-after-delete-secs", "0"])
        .await
        .unwrap();
    let (one, two) = (&nodes.nodes[0], &nodes.nodes[1]);
    let tenant = TenantId::new("acme").unwrap();
    let conv = ConvId::new("busy-room").unwrap();
    let part = fill(one).await;
    let bucket = bucket_of(&part);
    let dirs = fresh_dirs("busy-two-nodes", 4);
    let alice = client(two, "alice", 1, &dirs[0]);
    let bob = client(two, "bob", 1, &dirs[1]);
    let carol = client(one, "carol", 3, &dirs[3]);
    for c in [&alice, &bob, &carol] {
        c.set_online(true).await.unwrap();
        c.open(DocId::conv(&tenant, &conv)).await.unwrap();
        c.open(part.clone()).await.unwrap();
        wait_for(c, &conv, FILL).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let bob_writes = tokio::spawn(write_until(bob, "bob", conv.clone(), bucket, stop.clone()));
    let carol_writes = tokio::spawn(write_until(
        carol,
        "carol",
        conv.clone(),
        bucket,
        stop.clone(),
    ));
    for trial in 0..TRIALS {
        let id = format!("victim-{trial}");
        let body = format!("{MARKER}-{trial}");
        accepted(&alice, send(&alice, &conv, &id, &body).await).await;
        let before = generation_of(one, &part).await;
        let delete = Intent::Delete {
            conv: conv.clone(),
            message: MessageId::new(&id).unwrap(),
            bucket,
        };
        accepted(&alice, alice.intent(delete).await.unwrap()).await;
        assert!(
            until(Duration::from_secs(20), || async {
                generation_of(one, &part).await > before
            })
            .await,
            "a node cut the part"
        );
    }
    assert!(
        until(Duration::from_secs(20), || async {
            cuts_noted(one).await == 0 && !store_holds(one, MARKER).await
        })
        .await,
        "every due cut ran"
    );
    stop.store(true, Ordering::SeqCst);
    let (bob, bob_asked) = bob_writes.await.unwrap();
    let (carol, carol_asked) = carol_writes.await.unwrap();
    for (id, what) in &carol_asked {
        assert_eq!(
            carol.settle(*id, Duration::from_secs(30)).await.unwrap(),
            None,
            "carol's {what} ends accepted"
        );
    }
    let carol_wrote = carol_asked
        .iter()
        .filter(|(_, what)| !what.starts_with("react:"))
        .count();
    let fresh = lose_nothing(one, &part, &bob, &bob_asked, &alice, &dirs[2], carol_wrote).await;
    let (bodies_seen, _) = content(&fresh, &conv).await;
    for (_, what) in &carol_asked {
        if !what.starts_with("react:") {
            assert!(bodies_seen.contains(what), "carol's acked {what} is lost");
        }
    }
    for c in [&alice, &bob, &carol, &fresh] {
        c.set_online(false).await.unwrap();
    }
    drop((alice, bob, carol, fresh));
    for dir in &dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Two nodes on one Postgres, both running the cut runner: alice deletes through node 0,
/// bob writes through node 1 throughout, and whichever node starts the cut is killed (-9)
/// inside it and started again, a few times over. The part that node held is cut by the
/// other node once the dead node's lease runs out, or by the restarted one: one generation
/// wins, nothing acked is lost, the devices converge.
#[tokio::test]
async fn a_node_killed_inside_a_cut_loses_nothing() {
    let _alone = TWO_NODES.lock().await;
    let mut nodes = cluster_nodes::Nodes::on_fresh_database_logged(
        2,
        &["--cut-after-delete-secs", "0"],
        CUT_LOG,
    )
    .await
    .unwrap();
    let tenant = TenantId::new("acme").unwrap();
    let conv = ConvId::new("busy-room").unwrap();
    let part = fill(&nodes.nodes[0]).await;
    let bucket = bucket_of(&part);
    let dirs = fresh_dirs("busy-two-nodes-kill", 3);
    let alice = client(&nodes.nodes[0], "alice", 1, &dirs[0]);
    let bob = client(&nodes.nodes[1], "bob", 1, &dirs[1]);
    for c in [&alice, &bob] {
        c.set_online(true).await.unwrap();
        c.open(DocId::conv(&tenant, &conv)).await.unwrap();
        c.open(part.clone()).await.unwrap();
        wait_for(c, &conv, FILL).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let bob_writes = tokio::spawn(write_until(bob, "bob", conv.clone(), bucket, stop.clone()));

    let mut killed = [0; 2];
    for trial in 0..TRIALS {
        let id = format!("victim-{trial}");
        let body = format!("{MARKER}-{trial}");
        accepted(&alice, send(&alice, &conv, &id, &body).await).await;
        let started: Vec<usize> = nodes.nodes.iter().map(cuts_started).collect();
        let delete = Intent::Delete {
            conv: conv.clone(),
            message: MessageId::new(&id).unwrap(),
            bucket,
        };
        accepted(&alice, alice.intent(delete).await.unwrap()).await;
        // The first node to start the cut is killed inside it.
        let end = Instant::now() + Duration::from_secs(25);
        let cutter = loop {
            if let Some(i) = (0..2).find(|i| cuts_started(&nodes.nodes[*i]) > started[*i]) {
                break i;
            }
            assert!(Instant::now() < end, "no node started the cut");
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        nodes.nodes[cutter].kill().await.unwrap();
        killed[cutter] += 1;
        nodes.nodes[cutter].restart().await.unwrap();
    }
    println!("kills inside a cut, by node: {killed:?}");
    let one = &nodes.nodes[0];
    assert!(
        until(Duration::from_secs(60), || async {
            cuts_noted(one).await == 0 && !store_holds(one, MARKER).await
        })
        .await,
        "every due cut ran after the kills"
    );
    stop.store(true, Ordering::SeqCst);
    let (bob, bob_asked) = bob_writes.await.unwrap();
    let carol = lose_nothing(one, &part, &bob, &bob_asked, &alice, &dirs[2], 0).await;
    for c in [&alice, &bob, &carol] {
        c.set_online(false).await.unwrap();
    }
    drop((alice, bob, carol));
    for dir in &dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}
