//! A cluster of server nodes on one Postgres (issue 15), with real processes on 127.0.0.1:
//!
//! - `three_nodes_converge`: six native clients of one group, two per node, all write; every
//!   client ends with every message in one timeline, in the same server order.
//! - `membership_race`: an admin removes eve through one node while she sends through the
//!   other, 200 times; Postgres's commit timestamps (a private cluster with
//!   `track_commit_timestamp = on`) witness that nothing of hers committed after the removal,
//!   and each send ends acked (stored once) or rejected for her membership.
//! - `kill9_under_load`: kill -9 of one of three nodes under load; its writers move to
//!   another node and resubmit; every acked change is stored exactly once, and the other
//!   nodes ack throughout.
//! - `listener_cut`: a node's LISTEN backend terminated with `pg_terminate_backend`; it
//!   notices, resyncs, and its subscriber misses nothing written on the other nodes.
//!
//! The tests run one at a time (`SERIAL`): each starts two or three servers and the machine
//! has two cores, so two of them at once would measure each other.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "cluster/nodes.rs"]
mod cluster_nodes;
#[path = "cluster/race.rs"]
mod cluster_race;
#[path = "cluster/sender.rs"]
mod cluster_sender;
mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use cluster_nodes::{cluster_metric, metric, metrics, Nodes};
use cluster_race::{trial, witness, Conns, Tally};
use cluster_sender::{hash_of, try_connect, write_with_failover, WriteLog, Writer};
use common::*;
use confab_core::client::Intent;
use confab_core::ids::{ConvId, MessageId};
use confab_core::model::message::NewMessage;
use confab_core::protocol::{ClientFrame, ServerFrame};
use confab_e2e::native::NativeClient;
use confab_e2e::native_support::{accepted, client, fresh_dirs, group_of};
use confab_e2e::text::Rng;
use confab_e2e::{now_ms, Client, Device};
use sqlx::Row;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs `test` alone, within `bound` (a hung cluster fails the test instead of the CI job).
async fn bounded<F: std::future::Future<Output = Result<()>>>(bound: Duration, test: F) {
    let _alone = SERIAL.lock().await;
    let started = Instant::now();
    match tokio::time::timeout(bound, test).await {
        Ok(Ok(())) => println!("passed in {:?}", started.elapsed()),
        Ok(Err(e)) => panic!("{e:?}"),
        Err(_) => panic!("the test did not finish within {bound:?}"),
    }
}

/// The stored log of `doc` as the database has it: seq → hash, checked to run 1..=n with
/// no change twice.
async fn stored_log(nodes: &Nodes, doc: &str) -> Result<BTreeMap<u64, [u8; 32]>> {
    let mut db = nodes.db().await?;
    let rows = sqlx::query("SELECT seq, hash FROM changes WHERE doc_id = $1 ORDER BY seq")
        .bind(doc)
        .fetch_all(&mut db)
        .await?;
    let mut log = BTreeMap::new();
    let mut hashes = HashSet::new();
    for (i, row) in rows.iter().enumerate() {
        let seq: i64 = row.try_get("seq")?;
        let hash: Vec<u8> = row.try_get("hash")?;
        let hash: [u8; 32] = hash.as_slice().try_into().context("a 32-byte hash")?;
        ensure!(seq == i as i64 + 1, "{doc}: seq {seq} at position {i}");
        ensure!(hashes.insert(hash), "{doc}: a change is stored twice");
        log.insert(seq as u64, hash);
    }
    Ok(log)
}

// ---------------------------------------------------------------------------------------
// 1. Three nodes converge.

const PER_CLIENT: usize = 25;

/// What `c` shows of `conv`: (seq, message id) of each accepted message, in timeline order.
async fn accepted_timeline(c: &NativeClient, conv: &ConvId) -> Result<Vec<(u64, String)>> {
    let conv = conv.clone();
    c.query(move |e| {
        e.timeline(&conv)
            .into_iter()
            .filter(|i| !i.pending)
            .map(|i| (i.seq.unwrap_or(0), i.message.id.to_string()))
            .collect()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_converge() {
    bounded(Duration::from_secs(120), async {
        let nodes = Nodes::on_fresh_database(3).await?;
        let accounts = ["alice", "bob", "carol", "dave", "erin", "frank"];
        let dirs = fresh_dirs("cluster-converge", accounts.len());
        // Two clients per node: client i on node i % 3.
        let clients: Vec<NativeClient> = accounts
            .iter()
            .enumerate()
            .map(|(i, a)| client(&nodes.nodes[i % 3], a, 1, &dirs[i]))
            .collect();
        for c in &clients {
            c.set_online(true).await?;
        }
        let conv = ConvId::new("cluster-room")?;
        let created = clients[0].intent(group_of(&conv, &accounts[1..])).await?;
        accepted(&clients[0], created).await;
        let at = base_time(600_000);
        let bucket = bucket_doc(&conv, at);
        for c in &clients {
            c.open(conv_doc(&conv)).await?;
            c.open(bucket.clone()).await?;
        }
        // Everyone holds the conversation (read from the database by every node) first.
        let deadline = Instant::now() + Duration::from_secs(20);
        for (c, account) in clients.iter().zip(accounts) {
            loop {
                let conv = conv.clone();
                if c.query(move |e| e.conversation(&conv).is_some()).await? {
                    break;
                }
                ensure!(
                    Instant::now() < deadline,
                    "{account} never got the conversation"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }

        // Everyone writes at once, with small random pauses; created_at stays in one bucket.
        let started = Instant::now();
        let writers: Vec<_> = clients
            .iter()
            .zip(accounts)
            .enumerate()
            .map(|(n, (c, account))| {
                let (c, conv) = (c.clone(), conv.clone());
                tokio::spawn(async move {
                    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (n as u64 + 1));
                    let me = confab_testkit::ids::acc(account);
                    let mut ids = Vec::new();
                    for i in 0..PER_CLIENT {
                        let id = MessageId::new(format!("{account}-{i}"))?;
                        let body = format!("{account} says {i}");
                        let message = NewMessage::text(id, me.clone(), body, at + i as i64);
                        let intent = Intent::Send {
                            conv: conv.clone(),
                            message,
                        };
                        ids.push(c.intent(intent).await?);
                        tokio::time::sleep(Duration::from_millis(rng.next() % 40)).await;
                    }
                    anyhow::Ok(ids)
                })
            })
            .collect();
        for ((w, c), account) in writers.into_iter().zip(&clients).zip(accounts) {
            for id in w.await?? {
                let status = c.settle(id, Duration::from_secs(30)).await?;
                ensure!(status.is_none(), "{account}: intent {id} ended {status:?}");
            }
        }
        let all_acked = started.elapsed();

        // Every client sees every message, live (nobody reconnects), within a bound.
        let total = PER_CLIENT * accounts.len();
        let bound = Duration::from_secs(20);
        let waiting = Instant::now();
        let mut timelines = Vec::new();
        for (c, account) in clients.iter().zip(accounts) {
            loop {
                let t = accepted_timeline(c, &conv).await?;
                if t.len() >= total {
                    timelines.push(t);
                    break;
                }
                ensure!(
                    waiting.elapsed() < bound,
                    "{account} (node {}) shows {} of {total} messages {bound:?} after all \
                     were acked: changes accepted on other nodes do not reach it",
                    nodes.ids[timelines.len() % 3],
                    t.len()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let converged = waiting.elapsed();
        println!(
            "converge: {total} messages acked in {all_acked:?}, every client had all of them \
             {converged:?} later"
        );

        // One timeline: the same (seq, message) everywhere, seqs 1..=n, each message once.
        for (t, account) in timelines.iter().zip(accounts) {
            ensure!(
                *t == timelines[0],
                "{account}'s timeline differs from alice's:\n{t:?}\n{:?}",
                timelines[0]
            );
        }
        let seqs: Vec<u64> = timelines[0].iter().map(|(s, _)| *s).collect();
        ensure!(
            seqs == (1..=total as u64).collect::<Vec<_>>(),
            "the timeline's seqs are not 1..={total}: {seqs:?}"
        );
        let ids: HashSet<&String> = timelines[0].iter().map(|(_, id)| id).collect();
        ensure!(ids.len() == total, "a message shows twice");
        // And it is the database's: the bucket's log, and the projection's seq per message.
        let log = stored_log(&nodes, &bucket.to_string()).await?;
        ensure!(
            log.len() == total,
            "the bucket's log holds {} changes",
            log.len()
        );
        let mut db = nodes.db().await?;
        let projected: HashMap<String, i64> =
            sqlx::query("SELECT message, seq FROM messages WHERE doc_id = $1")
                .bind(bucket.to_string())
                .fetch_all(&mut db)
                .await?
                .iter()
                .map(|r| Ok((r.try_get("message")?, r.try_get("seq")?)))
                .collect::<Result<_>>()?;
        for (seq, id) in &timelines[0] {
            ensure!(
                projected.get(id) == Some(&(*seq as i64)),
                "message {id} at seq {seq} on the clients, {:?} in the database",
                projected.get(id)
            );
        }
        for d in &dirs {
            let _ = std::fs::remove_dir_all(d);
        }
        Ok(())
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// 2. The membership race.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn membership_race() {
    bounded(Duration::from_secs(240), async {
        let trials: usize = std::env::var("CONFAB_RACE_TRIALS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200);
        let seed: u64 = std::env::var("CONFAB_RACE_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| now_ms().unsigned_abs() | 1);
        println!("membership race: {trials} trials, seed {seed} (CONFAB_RACE_SEED repeats it)");
        let nodes = Nodes::on_private_cluster(2, &["track_commit_timestamp=on"]).await?;
        let mut db = nodes.db().await?;
        let tracking: String = sqlx::query_scalar("SHOW track_commit_timestamp")
            .fetch_one(&mut db)
            .await?;
        ensure!(tracking == "on", "track_commit_timestamp is {tracking}");

        let urls = nodes.ws_urls();
        let mut conns = Conns {
            admin: [
                connect_at(&urls[0], "alice").await,
                connect_at(&urls[1], "alice").await,
            ],
            eve: [
                connect_at(&urls[0], "eve").await,
                connect_at(&urls[1], "eve").await,
            ],
        };
        let mut admin = Device::new("alice", 1);
        let mut rng = Rng(seed);
        let started = Instant::now();
        let mut run = Vec::with_capacity(trials);
        for n in 0..trials {
            run.push(trial(n, &mut rng, &mut admin, &mut conns).await?);
        }
        let raced = started.elapsed();
        let mut tally = Tally::default();
        for t in &run {
            witness(&mut db, t, &mut tally).await?;
        }
        println!(
            "membership race: {trials} trials in {raced:?}; eve's racing sends: {} accepted \
             (all committed before the removal; closest {:?} µs before it), {} rejected; \
             {} trials split",
            tally.accepted, tally.closest_us, tally.rejected, tally.split
        );
        // A run where one side always wins did not race: the timings need a change.
        ensure!(
            tally.accepted > 0 && tally.rejected > 0,
            "the race was not exercised: {} accepted, {} rejected",
            tally.accepted,
            tally.rejected
        );
        Ok(())
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// 3. kill -9 of a node under load.

/// The longest time without an ack on a surviving node, around the kill.
const SURVIVOR_GAP: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_under_load() {
    bounded(Duration::from_secs(120), async {
        let mut nodes = Nodes::on_fresh_database(3).await?;
        let urls = nodes.ws_urls();
        let accounts = ["alice", "bob", "carol", "dave", "erin", "frank"];
        let mut owner = Device::new("alice", 9);
        let mut c = connect_at(&urls[0], "alice").await;
        let (conv_doc, create) = create_group(&mut owner, "kill9", &accounts[1..]);
        assert_acked(&c.submit(&conv_doc, &[create]).await?);
        c.close().await;
        let conv = ConvId::new("kill9")?;
        let base = base_time(600_000);
        let bucket = bucket_doc(&conv, base);

        // Six writers, two per node, ~100 messages/s together.
        let producing = Arc::new(AtomicBool::new(true));
        let writers: Vec<_> = accounts
            .iter()
            .enumerate()
            .map(|(i, account)| {
                let plan = Writer {
                    urls: urls.clone(),
                    first: i % 3,
                    conv: conv.clone(),
                    bucket: bucket.clone(),
                    base,
                    pace: Duration::from_millis(60),
                    producing: producing.clone(),
                    limit: Duration::from_secs(60),
                };
                tokio::spawn(write_with_failover(plan, Device::new(account, 1)))
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(3)).await;

        // The survivors' /readyz is polled throughout.
        let victim = 1;
        let polling = Arc::new(AtomicBool::new(true));
        let pollers: Vec<_> = [0, 2]
            .into_iter()
            .map(|i| {
                let url = format!("127.0.0.1:{}", nodes.nodes[i].port);
                let polling = polling.clone();
                tokio::spawn(async move {
                    let mut bad = Vec::new();
                    while polling.load(Ordering::SeqCst) {
                        match readyz_at(&url).await {
                            Some(200) => {}
                            other => bad.push(other),
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    (i, bad)
                })
            })
            .collect();
        let killed_at = Instant::now();
        nodes.nodes[victim].kill().await?;
        println!("kill9: node {} killed", nodes.ids[victim]);
        tokio::time::sleep(Duration::from_secs(4)).await;
        producing.store(false, Ordering::SeqCst);
        let mut logs: Vec<WriteLog> = Vec::new();
        for w in writers {
            logs.push(w.await?);
        }
        polling.store(false, Ordering::SeqCst);
        for p in pollers {
            let (i, bad) = p.await?;
            ensure!(
                bad.is_empty(),
                "node {} (a survivor) was not ready during the kill: {bad:?}",
                nodes.ids[i]
            );
        }

        // Every change sent ended acked, once, at one seq; no rejection.
        let mut acked: HashMap<[u8; 32], u64> = HashMap::new();
        for l in &logs {
            ensure!(l.ended == "done", "{}: ended {}", l.account, l.ended);
            ensure!(
                l.rejects.is_empty(),
                "{}: rejected {:?}",
                l.account,
                l.rejects
            );
            ensure!(
                l.ack_conflicts.is_empty(),
                "{}: {:?}",
                l.account,
                l.ack_conflicts
            );
            for change in &l.sent {
                let seq = l.acks.get(&hash_of(change)).with_context(|| {
                    format!("{}: a change never acked (ended {})", l.account, l.ended)
                })?;
                acked.insert(hash_of(change), *seq);
            }
        }
        for (i, l) in logs.iter().enumerate() {
            if i % 3 == victim {
                ensure!(
                    !l.moves.is_empty(),
                    "{} never left the killed node",
                    l.account
                );
            }
        }
        let log = stored_log(&nodes, &bucket.to_string()).await?;
        ensure!(
            log.len() == acked.len(),
            "the bucket's log holds {} changes, {} were sent and acked",
            log.len(),
            acked.len()
        );
        for (hash, seq) in &acked {
            ensure!(
                log.get(seq) == Some(hash),
                "the change acked at seq {seq} is not stored there"
            );
        }

        // The survivors acked throughout: no long gap between acks around the kill.
        let mut times: Vec<Instant> = logs
            .iter()
            .flat_map(|l| &l.ack_times)
            .filter(|(_, node)| *node != victim)
            .map(|(t, _)| *t)
            .filter(|t| *t + Duration::from_secs(1) >= killed_at)
            .filter(|t| *t <= killed_at + Duration::from_secs(4))
            .collect();
        times.sort();
        ensure!(
            !times.is_empty(),
            "no ack on a surviving node around the kill"
        );
        let mut edges = vec![killed_at - Duration::from_secs(1)];
        edges.extend(&times);
        edges.push(killed_at + Duration::from_secs(4));
        let gap = edges
            .windows(2)
            .map(|w| w[1].saturating_duration_since(w[0]))
            .max()
            .unwrap_or_default();
        let moved: Vec<String> = logs
            .iter()
            .filter(|l| !l.moves.is_empty())
            .map(|l| {
                let took = l.moves[0].0.saturating_duration_since(killed_at);
                format!(
                    "{} to {} after {took:?}",
                    l.account, nodes.ids[l.moves[0].1]
                )
            })
            .collect();
        println!(
            "kill9: {} changes acked exactly once; {} acks on survivors within 1 s before to \
             4 s after the kill, longest gap {gap:?}; moved: {moved:?}",
            acked.len(),
            times.len()
        );
        ensure!(
            gap <= SURVIVOR_GAP,
            "the surviving nodes stopped acking for {gap:?} around the kill"
        );
        Ok(())
    })
    .await;
}

/// `GET /readyz` at `addr`: the status, `None` without an answer within 1 s.
async fn readyz_at(addr: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        stream
            .write_all(b"GET /readyz HTTP/1.0\r\n\r\n")
            .await
            .ok()?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await.ok()?;
        let head = String::from_utf8_lossy(&buf[..buf.len().min(16)]).into_owned();
        head.split(' ').nth(1)?.parse::<u16>().ok()
    };
    tokio::time::timeout(Duration::from_secs(1), ask)
        .await
        .ok()
        .flatten()
}

// ---------------------------------------------------------------------------------------
// 4. A node's listening connection is cut.

/// Pushes of one document a subscriber received: seq → hash; a seq pushed twice with a
/// different change is recorded in `conflicts`.
#[derive(Debug, Default)]
struct Received {
    seqs: BTreeMap<u64, [u8; 32]>,
    conflicts: Vec<u64>,
    duplicates: usize,
}

impl Received {
    fn take(&mut self, frame: &ServerFrame, doc: &str) {
        let ServerFrame::Changes { doc: d, changes } = frame else {
            return;
        };
        if d != doc {
            return;
        }
        for c in changes {
            let Ok(change) = confab_core::automerge::Change::try_from(&c.change[..]) else {
                self.conflicts.push(c.seq);
                continue;
            };
            match self.seqs.insert(c.seq, change.hash().0) {
                Some(before) if before != change.hash().0 => self.conflicts.push(c.seq),
                Some(_) => self.duplicates += 1,
                None => {}
            }
        }
    }

    /// Whether it holds every seq 1..=last.
    fn complete_to(&self, last: u64) -> bool {
        (1..=last).all(|s| self.seqs.contains_key(&s))
    }
}

/// Reads `sub`'s pushes of `doc` into `got` until it holds 1..=`last` or `bound` passes.
async fn receive_until(
    sub: &mut Client,
    doc: &str,
    got: &mut Received,
    last: u64,
    bound: Duration,
) -> Result<Duration> {
    let start = Instant::now();
    while !got.complete_to(last) {
        let left = bound.saturating_sub(start.elapsed());
        ensure!(
            !left.is_zero(),
            "the subscriber on the cut node lacks seqs {:?} of 1..={last} after {bound:?}",
            (1..=last)
                .filter(|s| !got.seqs.contains_key(s))
                .collect::<Vec<_>>()
        );
        match sub.recv(left.min(Duration::from_millis(200))).await {
            Ok(frame) => got.take(&frame, doc),
            Err(e) if e.to_string().starts_with("no frame within") => {}
            Err(e) => return Err(e.context("the subscriber's connection ended")),
        }
    }
    Ok(start.elapsed())
}

/// Cuts node `i`'s LISTEN backend and waits until it resynced and listens again (a new
/// backend, `confab_cluster_resyncs_total` one up, `/readyz` 200); whether `/readyz`
/// answered 503 meanwhile.
async fn cut_and_recover(nodes: &Nodes, i: usize) -> Result<bool> {
    let node = &nodes.nodes[i];
    let mut db = nodes.db().await?;
    let resyncs = cluster_metric(node, "confab_cluster_resyncs_total").await;
    let old = nodes.cut_listener(&mut db, i).await?;
    let cut_at = Instant::now();
    let mut saw_503 = false;
    loop {
        ensure!(
            cut_at.elapsed() < Duration::from_secs(15),
            "node {} did not listen again and resync within 15 s of the cut",
            nodes.ids[i]
        );
        let ready = node.readyz(Duration::from_secs(1)).await;
        saw_503 |= ready == Some(503);
        let text = metrics(node).await;
        let now_resyncs = metric(&text, "confab_cluster_resyncs_total").unwrap_or(0.0);
        let listening = metric(&text, "confab_cluster_listening").unwrap_or(0.0);
        let pid = nodes.listener_pid(&mut db, i).await?;
        if now_resyncs > resyncs
            && listening == 1.0
            && ready == Some(200)
            && pid.is_some_and(|p| p != old)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "listener_cut: node {} listening and resynced {:?} after the cut (503 seen: {saw_503})",
        nodes.ids[i],
        cut_at.elapsed()
    );
    Ok(saw_503)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listener_cut() {
    bounded(Duration::from_secs(120), async {
        let nodes = Nodes::on_fresh_database(3).await?;
        let urls = nodes.ws_urls();
        let cut = 1;
        let mut owner = Device::new("alice", 9);
        let mut c = connect_at(&urls[0], "alice").await;
        let (conv_doc, create) = create_group(&mut owner, "cut", &["bob", "carol", "dave"]);
        assert_acked(&c.submit(&conv_doc, &[create]).await?);
        let conv = ConvId::new("cut")?;
        let base = base_time(600_000);
        let bucket = bucket_doc(&conv, base);
        let doc = bucket.to_string();

        // Dave subscribes on the node that will be cut; bob and carol write on the others.
        let mut sub = try_connect(&urls[cut], "dave")
            .await
            .context("dave's connection")?;
        let catch_up = sub.subscribe(&bucket, 0).await?;
        ensure!(catch_up.synced == 0, "a fresh bucket, synced at {}", catch_up.synced);
        let mut got = Received::default();
        let producing = Arc::new(AtomicBool::new(true));
        let writers: Vec<_> = [("bob", 0), ("carol", 2)]
            .into_iter()
            .map(|(account, node)| {
                let plan = Writer {
                    urls: urls.clone(),
                    first: node,
                    conv: conv.clone(),
                    bucket: bucket.clone(),
                    base,
                    pace: Duration::from_millis(40),
                    producing: producing.clone(),
                    limit: Duration::from_secs(60),
                };
                tokio::spawn(write_with_failover(plan, Device::new(account, 1)))
            })
            .collect();
        // Live delivery across nodes works before anything is cut.
        receive_until(&mut sub, &doc, &mut got, 5, Duration::from_secs(10))
            .await
            .context("before the cut")?;

        // Cut 1, under traffic: the subscriber reads pushes meanwhile (an unread socket
        // would make it lag), then everything written during and after arrives.
        let (recovered, _) = tokio::join!(cut_and_recover(&nodes, cut), async {
            let until = Instant::now() + Duration::from_secs(3);
            while Instant::now() < until {
                if let Ok(frame) = sub.recv(Duration::from_millis(50)).await {
                    got.take(&frame, &doc);
                }
            }
        });
        let saw_503 = recovered?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        producing.store(false, Ordering::SeqCst);
        let mut written = 0;
        for w in writers {
            let l = w.await?;
            ensure!(l.ended == "done", "{}: ended {}", l.account, l.ended);
            ensure!(l.rejects.is_empty(), "{}: rejected {:?}", l.account, l.rejects);
            written += l.sent.len();
        }
        let last = stored_log(&nodes, &doc).await?.len() as u64;
        ensure!(last == written as u64, "{written} written, {last} stored");
        let took = receive_until(&mut sub, &doc, &mut got, last, Duration::from_secs(10))
            .await
            .context("after cut 1 (under traffic)")?;
        println!("listener_cut: cut 1 under traffic: all {last} seqs on the cut node {took:?} after the writers stopped");

        // Cut 2, then a burst and silence: no later notification can bring the burst, only
        // the resync (or the burst's own notifications, if the node listened again first).
        let mut db = nodes.db().await?;
        let resyncs = cluster_metric(&nodes.nodes[cut], "confab_cluster_resyncs_total").await;
        nodes.cut_listener(&mut db, cut).await?;
        for i in 0..20 {
            let (_, change) = message(&mut owner, &conv, &format!("burst-{i}"), "burst", base + 10_000 + i);
            assert_acked(&c.submit(&bucket, &[change]).await?);
        }
        let last = last + 20;
        let took = receive_until(&mut sub, &doc, &mut got, last, Duration::from_secs(15))
            .await
            .context("after cut 2 (a burst, then silence)")?;
        let after = cluster_metric(&nodes.nodes[cut], "confab_cluster_resyncs_total").await;
        println!(
            "listener_cut: cut 2: the burst reached the cut node {took:?} after it was acked; \
             resyncs {resyncs} -> {after}; {} pushes repeated",
            got.duplicates
        );
        ensure!(after > resyncs, "no resync counted after cut 2");
        ensure!(got.conflicts.is_empty(), "seqs pushed with two different changes: {:?}", got.conflicts);
        let log = stored_log(&nodes, &doc).await?;
        ensure!(log == got.seqs, "the subscriber's seqs differ from the stored log");
        println!("listener_cut: /readyz answered 503 during cut 1: {saw_503}");
        c.close().await;
        sub.send(&ClientFrame::Unsubscribe { doc: doc.clone() }).await?;
        sub.close().await;
        Ok(())
    })
    .await;
}
