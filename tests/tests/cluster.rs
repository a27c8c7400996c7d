//! A cluster of server nodes on one Postgres (docs/OPERATIONS.md, "Running a cluster"), with
//! real processes on 127.0.0.1:
//!
//! - `three_nodes_converge`: six native clients of one group, two per node, all write; every
//!   client ends with every message in one timeline, in the same server order.
//! - `membership_race`: an admin removes eve through one node while she sends through the
//!   other, 200 times; Postgres's commit timestamps (a private cluster with
//!   `track_commit_timestamp = on`) witness that nothing of hers committed after the removal,
//!   and each send ends acked (stored once) or rejected for her membership.
//! - `kill9_under_load`: kill -9 of one of three nodes under load; its writers move to
//!   another node and resubmit, its reader resubscribes there from her cursor; every acked
//!   change is stored exactly once, the reader ends with the whole log, and the other nodes
//!   ack throughout.
//! - `listener_cut`: a node's LISTEN backend terminated with `pg_terminate_backend` under
//!   traffic, then again while the node is kept out of the database (its role NOLOGIN on a
//!   private cluster) and others commit; it notices, resyncs, and its subscriber misses
//!   nothing written on the other nodes.
//! - `a_new_bucket_part_is_announced_on_every_node`: a part opened through one node is
//!   announced once to a subscriber of the conversation on the other node.
//! - `a_membership_change_is_told_on_every_node`: an account following its memberships
//!   through one node is told when another node commits its addition and removal, and an
//!   account not concerned is told nothing; after its node's listening connection is cut
//!   it is listed again and learns of the re-add committed meanwhile.
//! - `signals_reach_subscribers_on_every_node`: typing and presence sent through one node
//!   reach a subscriber of the conversation on the other, with `from` the sender's account;
//!   the sender's last connection closing tells the other node's subscriber `offline`.
//! - `a_push_waits_for_a_client_on_any_node`: a mention of an account whose client is
//!   connected to the other node is not pushed to the webhook; once that client is gone, or
//!   its node is killed, the next mention is.
//! - `a_support_rename_on_one_node_fences_old_stamps_on_the_other`: a support thread's
//!   client renamed through one node; a post stamped with the old name through the other,
//!   sent after the rename's ack, is refused `sender_mismatch` (20 trials; before renames
//!   moved the policy version one was accepted within the first ten).
//!
//! - `a_waiting_device_is_added_through_another_node`: a device that says it waits to join
//!   an encrypted group through one node, while no member is online, is added by a member's
//!   device that comes back through the other node after it restarted (the waiting device
//!   says it again; `cluster/joining.rs`).
//!
//! - `forwarded_attachments_on_two_nodes`: two nodes sharing one blob store; a forward
//!   with an attachment written through one node is read through the other by the target
//!   conversation's members, and by nobody else (`forwarding/scenario.rs`).
//!
//! The tests run one at a time (`SERIAL`): each starts two or three servers and the machine
//! has two cores, so two of them at once would measure each other.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "cluster/converge.rs"]
mod cluster_converge;
#[path = "cluster/joining.rs"]
mod cluster_joining;
#[path = "cluster/listen.rs"]
mod cluster_listen;
#[path = "cluster/nodes.rs"]
mod cluster_nodes;
#[path = "cluster/race.rs"]
mod cluster_race;
#[path = "cluster/sender.rs"]
mod cluster_sender;
mod common;
#[path = "forwarding/scenario.rs"]
mod forwarding_scenario;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use cluster_converge::{
    everyone_knows, everyone_writes, one_timeline, timelines_reach, Dirs, Member,
};
use cluster_listen::{
    burst, cut_and_recover, cut_while_kept_out, follow_with_failover, Follow, Subscriber,
};
use cluster_nodes::{cluster_metric, watch_ready, Nodes};
use cluster_race::{trial, witness, Conns, Tally};
use cluster_sender::{all_acked, finished, longest_gap, spawn_writers, Writer};
use common::*;
use confab_core::automerge::Change;
use confab_core::ids::ConvId;
use confab_e2e::native_support::{accepted, client, fresh_dirs, group_of};
use confab_e2e::text::Rng;
use confab_e2e::{now_ms, Device};

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

// ---------------------------------------------------------------------------------------
// 1. Three nodes converge.

const PER_CLIENT: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_converge() {
    bounded(Duration::from_secs(120), async {
        let nodes = Nodes::on_fresh_database(3).await?;
        let accounts = ["alice", "bob", "carol", "dave", "erin", "frank"];
        let dirs = Dirs(fresh_dirs("cluster-converge", accounts.len()));
        // Two clients per node: client i on node i % 3.
        let members: Vec<Member> = accounts
            .iter()
            .enumerate()
            .map(|(i, a)| (client(&nodes.nodes[i % 3], a, 1, &dirs.0[i]), *a))
            .collect();
        for (c, _) in &members {
            c.set_online(true).await?;
        }
        let conv = ConvId::new("cluster-room")?;
        let alice = &members[0].0;
        let created = alice.intent(group_of(&conv, &accounts[1..])).await?;
        accepted(alice, created).await;
        let at = base_time(600_000);
        let bucket = bucket_doc(&conv, at);
        for (c, _) in &members {
            c.open(conv_doc(&conv)).await?;
            c.open(bucket.clone()).await?;
        }
        everyone_knows(&members, &conv, Duration::from_secs(20)).await?;

        let started = Instant::now();
        let written = everyone_writes(&members, &conv, at, PER_CLIENT).await?;
        let all_acked = started.elapsed();
        // Every client sees every message, live (nobody reconnects), within a bound.
        let waiting = Instant::now();
        let node_of = |i: usize| nodes.ids[i % 3].clone();
        let timelines = timelines_reach(
            &members,
            &conv,
            written.len(),
            Duration::from_secs(20),
            node_of,
        )
        .await?;
        println!(
            "converge: {} messages acked in {all_acked:?}, every client had all of them {:?} later",
            written.len(),
            waiting.elapsed()
        );
        one_timeline(&nodes, &bucket, &members, &timelines, &written).await?;
        Ok(())
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// 2. The membership race.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn membership_race() {
    bounded(Duration::from_secs(180), async {
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
             (all committed before the removal; closest {:?} µs before it), {} rejected \
             {:?}; {} trials split",
            tally.accepted, tally.closest_us, tally.rejected, tally.codes, tally.split
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

/// The longest time without an ack on a surviving node, around the kill. Gaps of 50-300 ms
/// are usual; 1.2 s was seen with the two cores of the machine loaded by others' builds. A
/// node that waited for a dead peer (a lease, a lock held by its session) would stop for
/// longer.
const SURVIVOR_GAP: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_under_load() {
    bounded(Duration::from_secs(120), async {
        let mut nodes = Nodes::on_fresh_database(3).await?;
        let urls = nodes.ws_urls();
        let accounts = ["alice", "bob", "carol", "dave", "erin", "frank"];
        let mut owner = Device::new("alice", 9);
        let mut c = connect_at(&urls[0], "alice").await;
        let members = ["bob", "carol", "dave", "erin", "frank", "grace"];
        let (conv_doc, create) = create_group(&mut owner, "kill9", &members);
        assert_acked(&c.submit(&conv_doc, &[create]).await?);
        c.close().await;
        let conv = ConvId::new("kill9")?;
        let base = base_time(600_000);
        let bucket = bucket_doc(&conv, base);

        // Six writers, two per node, ~240 messages/s together.
        let producing = Arc::new(AtomicBool::new(true));
        let plan = Writer {
            urls: urls.clone(),
            first: 0,
            conv: conv.clone(),
            bucket: bucket.clone(),
            base,
            pace: Duration::from_millis(25),
            producing: producing.clone(),
            limit: Duration::from_secs(60),
            in_flight: Default::default(),
        };
        let who: Vec<(&str, usize)> = accounts
            .iter()
            .enumerate()
            .map(|(i, a)| (*a, i % 3))
            .collect();
        let victim = 1;
        // Grace reads on the node that will die: she moves on and resyncs from her cursor.
        let until = Arc::new(AtomicU64::new(0));
        let follower = tokio::spawn(follow_with_failover(Follow {
            urls: urls.clone(),
            first: victim,
            account: "grace",
            doc: bucket.clone(),
            until: until.clone(),
            limit: Duration::from_secs(60),
        }));
        let writers = spawn_writers(&plan, &who);
        tokio::time::sleep(Duration::from_secs(3)).await;

        let stop_watching = Arc::new(AtomicBool::new(false));
        let survivors = vec![nodes.nodes[0].port, nodes.nodes[2].port];
        let watcher = watch_ready(survivors, stop_watching.clone());
        // Killed while some of its writers' submits are unanswered (within 5 s), so that
        // the kill may fall between a commit and its ack.
        let waiting = Instant::now();
        while waiting.elapsed() < Duration::from_secs(5)
            && (0..writers.len())
                .filter(|i| i % 3 == victim)
                .all(|i| writers[i].in_flight.load(Ordering::SeqCst) == 0)
        {
            tokio::task::yield_now().await;
        }
        let killed_at = Instant::now();
        nodes.nodes[victim].kill().await?;
        println!("kill9: node {} killed", nodes.ids[victim]);
        tokio::time::sleep(Duration::from_secs(4)).await;
        producing.store(false, Ordering::SeqCst);
        let logs = finished(writers).await?;
        stop_watching.store(true, Ordering::SeqCst);
        let not_ready = watcher.await?;
        ensure!(
            not_ready.is_empty(),
            "the surviving nodes were not ready during the kill (port, /readyz): {not_ready:?}"
        );

        // Every change sent ended acked, once, at one seq, and is stored there.
        let acked = all_acked(&logs)?;
        for (i, l) in logs.iter().enumerate() {
            if i % 3 == victim {
                ensure!(
                    !l.moves.is_empty(),
                    "{} never left the killed node",
                    l.account
                );
            }
        }
        let log = nodes.stored_log(&bucket.to_string()).await?;
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

        // Grace, who read on the killed node, ends with the whole log.
        until.store(log.len() as u64, Ordering::SeqCst);
        let (got, grace_moved) = follower.await?;
        ensure!(
            got.complete_to(log.len() as u64) && got.seqs == log,
            "grace (who read on the killed node) lacks seqs {:?} of the log, or holds other \
             changes at them (moved to {grace_moved:?}; other frames: {:?})",
            (1..=log.len() as u64)
                .filter(|s| !got.seqs.contains_key(s))
                .collect::<Vec<_>>(),
            got.other
        );
        ensure!(
            got.conflicts.is_empty(),
            "grace got seqs with two changes: {:?}",
            got.conflicts
        );
        ensure!(!grace_moved.is_empty(), "grace never left the killed node");

        // The survivors acked throughout: no long gap between acks around the kill.
        let (gap, began, count) = longest_gap(
            logs.iter()
                .flat_map(|l| &l.ack_times)
                .filter(|(_, node)| *node != victim)
                .map(|(t, _)| *t),
            killed_at - Duration::from_secs(1),
            killed_at + Duration::from_secs(4),
        );
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
        let resubmitted: usize = logs.iter().map(|l| l.in_flight_at_loss).sum();
        println!(
            "kill9: {} changes acked exactly once ({resubmitted} were in flight at the kill and \
             resubmitted); {} acks on survivors within 1 s before to 4 s after the kill, \
             longest gap {gap:?} from {} after the kill; moved: {moved:?}; grace read all {} \
             seqs, moved to {:?}",
            acked.len(),
            count,
            began
                .checked_duration_since(killed_at)
                .map_or_else(|| format!("-{:?}", killed_at - began), |d| format!("{d:?}")),
            log.len(),
            grace_moved
                .iter()
                .map(|n| &nodes.ids[*n])
                .collect::<Vec<_>>()
        );
        ensure!(
            gap <= SURVIVOR_GAP,
            "the surviving nodes stopped acking for {gap:?} around the kill"
        );
        Ok(())
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// 4. A node's listening connection is cut.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listener_cut() {
    bounded(Duration::from_secs(120), async {
        let nodes = Nodes::on_private_cluster_with_roles(3).await?;
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
        let mut sub = Subscriber::on(&urls[cut], "dave", &bucket).await?;
        ensure!(sub.got.seqs.is_empty(), "a fresh bucket holds changes");
        let producing = Arc::new(AtomicBool::new(true));
        let plan = Writer {
            urls: urls.clone(),
            first: 0,
            conv: conv.clone(),
            bucket: bucket.clone(),
            base,
            pace: Duration::from_millis(40),
            producing: producing.clone(),
            limit: Duration::from_secs(60),
            in_flight: Default::default(),
        };
        let writers = spawn_writers(&plan, &[("bob", 0), ("carol", 2)]);
        // Live delivery across nodes works before anything is cut.
        sub.until(5, Duration::from_secs(10))
            .await
            .context("before the cut")?;

        // Cut 1, under traffic: the subscriber reads pushes meanwhile, then everything
        // written during and after arrives.
        let (saw_503, _) = tokio::join!(
            cut_and_recover(&nodes, cut),
            sub.read_for(Duration::from_secs(3))
        );
        let saw_503 = saw_503?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        producing.store(false, Ordering::SeqCst);
        let written = all_acked(&finished(writers).await?)?.len() as u64;
        let last = nodes.stored_log(&doc).await?.len() as u64;
        ensure!(last == written, "{written} written, {last} stored");
        let took = sub
            .until(last, Duration::from_secs(10))
            .await
            .context("after cut 1 (under traffic)")?;
        println!(
            "listener_cut: cut 1 under traffic: all {last} seqs on the cut node {took:?} after \
             the writers stopped; /readyz answered 503 meanwhile: {saw_503}"
        );

        // Cut 2: the node is also kept out of the database for a while, so that changes
        // are certainly committed while it does not listen (it listens again within
        // milliseconds otherwise).
        let changes: Vec<Change> = (0..20)
            .map(|i| {
                let id = format!("burst-{i}");
                message(&mut owner, &conv, &id, "burst", base + 10_000 + i).1
            })
            .collect();
        cut_while_kept_out(&nodes, cut, &mut sub, burst(&mut c, &bucket, &changes)).await?;

        let got = &sub.got;
        ensure!(
            got.conflicts.is_empty(),
            "seqs pushed with two different changes: {:?}",
            got.conflicts
        );
        ensure!(got.other.is_empty(), "the subscriber got {:?}", got.other);
        let log = nodes.stored_log(&doc).await?;
        ensure!(
            log == got.seqs,
            "the subscriber's seqs differ from the stored log"
        );
        println!("listener_cut: {} pushes repeated", got.duplicates);
        c.close().await;
        sub.close().await?;
        Ok(())
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// 5. A bucket part opened through one node is announced on the others.

#[tokio::test]
async fn a_new_bucket_part_is_announced_on_every_node() {
    use confab_core::ids::Bucket;
    use confab_core::model::conversation::DEFAULT_BUCKET_MS;
    use confab_core::protocol::ServerFrame;
    bounded(Duration::from_secs(120), async {
        let nodes = Nodes::on_fresh_database(2).await?;
        let urls = nodes.ws_urls();
        let mut alice = Device::new("alice", 1);
        let mut ca = connect_at(&urls[0], "alice").await;
        let mut cb = connect_at(&urls[1], "bob").await;
        let (conv_doc, create) = create_group(&mut alice, "parts", &["bob"]);
        assert_acked(&ca.submit(&conv_doc, &[create]).await?);
        // Bob follows the conversation through the other node.
        cb.subscribe(&conv_doc, 0).await?;
        let conv = ConvId::new("parts")?;
        let at = base_time(60_000);
        let (doc, first) = message(&mut alice, &conv, "m1", "the first of the day", at);
        assert_acked(&ca.submit(&doc, &[first]).await?);
        let wanted = conv_doc.to_string();
        let told = cb
            .wait_for(Duration::from_secs(10), |f| match f {
                ServerFrame::Bucket { doc, bucket } if *doc == wanted => Some(*bucket),
                _ => None,
            })
            .await
            .context("bob, on the other node, is told of the new part")?;
        ensure!(
            told == Bucket::first(at.div_euclid(DEFAULT_BUCKET_MS)),
            "told of {told:?}"
        );
        // Once only: a second message of the same part is not announced again.
        let (doc, second) = message(&mut alice, &conv, "m2", "and another", at + 1);
        assert_acked(&ca.submit(&doc, &[second]).await?);
        let again = cb
            .wait_for(Duration::from_millis(1_500), |f| match f {
                ServerFrame::Bucket { doc, .. } if *doc == wanted => Some(()),
                _ => None,
            })
            .await;
        ensure!(again.is_err(), "the part was announced twice");
        ca.close().await;
        cb.close().await;
        Ok(())
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// 6. A membership committed through one node is told on the others.

#[tokio::test]
async fn a_membership_change_is_told_on_every_node() {
    use confab_core::doc::write;
    use confab_core::model::conversation::MemberStatus;
    use confab_core::protocol::{Membership, ServerFrame};
    async fn told(client: &mut confab_e2e::Client, conv: &str) -> Result<Membership> {
        membership_push(client, conv, Duration::from_secs(10)).await
    }
    bounded(Duration::from_secs(120), async {
        let nodes = Nodes::on_fresh_database(2).await?;
        let urls = nodes.ws_urls();
        let mut alice = Device::new("alice", 1);
        let mut ca = connect_at(&urls[0], "alice").await;
        // Bob and carol follow their memberships through the other node.
        let mut cb = connect_at(&urls[1], "bob").await;
        let mut cc = connect_at(&urls[1], "carol").await;
        ensure!(follow_memberships(&mut cb).await?.is_empty());
        ensure!(follow_memberships(&mut cc).await?.is_empty());
        let (conv_doc, create) = create_group(&mut alice, "members", &["bob"]);
        assert_acked(&ca.submit(&conv_doc, &[create]).await?);
        let added = told(&mut cb, "members")
            .await
            .context("bob, on the other node, is told he was added")?;
        ensure!(
            added.status == MemberStatus::Active && added.seq == 1,
            "{added:?}"
        );
        let removal = alice.write(&conv_doc, |d, t| {
            write::set_member_status(d, t, now_ms(), &acc("bob"), MemberStatus::Removed)
        })?;
        assert_acked(&ca.submit(&conv_doc, &[removal]).await?);
        let removed = told(&mut cb, "members")
            .await
            .context("bob is told he was removed")?;
        ensure!(
            removed.status == MemberStatus::Removed && removed.seq > added.seq,
            "{removed:?}"
        );
        let carol = cc
            .wait_for(Duration::from_millis(1_000), |f| match f {
                ServerFrame::Membership { conv, .. } => Some(conv.clone()),
                _ => None,
            })
            .await;
        ensure!(carol.is_err(), "carol was told of {carol:?}");

        // Bob's node loses its listening connection while alice adds him back through the
        // other node: it listens again, lists bob's memberships anew (whatever it missed is
        // in that list), and bob ends knowing he is a member again.
        let mut db = nodes.db().await?;
        let old = nodes.cut_listener(&mut db, 1).await?;
        let member = confab_core::model::conversation::Member {
            invited_by: Some(acc("alice")),
            joined_at: Some(now_ms()),
            ..confab_core::model::conversation::Member::new(
                acc("bob"),
                confab_core::model::conversation::Role::Member,
            )
        };
        let back = alice.write(&conv_doc, |d, t| write::add_member(d, t, now_ms(), &member))?;
        assert_acked(&ca.submit(&conv_doc, &[back]).await?);
        nodes
            .relistened(&mut db, 1, old, Duration::from_secs(10))
            .await?;
        let relisted = cb
            .wait_for(Duration::from_secs(10), |f| match f {
                ServerFrame::Memberships { memberships, .. } => Some(memberships.clone()),
                _ => None,
            })
            .await
            .context("bob's node lists his memberships again once it listens again")?;
        let listed = relisted.iter().find(|m| m.conv.as_str() == "members");
        let active = match listed {
            Some(m) if m.status == MemberStatus::Active => m.clone(),
            _ => told(&mut cb, "members")
                .await
                .context("the re-add reaches bob")?,
        };
        ensure!(
            active.status == MemberStatus::Active && active.seq > removed.seq,
            "{active:?}"
        );
        ca.close().await;
        cb.close().await;
        cc.close().await;
        Ok(())
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// 7. A push webhook fires only for an account with no client on any node.

#[tokio::test]
async fn a_push_waits_for_a_client_on_any_node() {
    use confab_core::protocol::{ClientFrame, ServerFrame};
    use std::collections::HashSet;
    /// Whether the directory lists `account` as connected to some node.
    async fn listed(db: &mut sqlx::PgConnection, account: &str) -> Result<bool> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT node FROM connected_accounts WHERE account = $1")
                .bind(account)
                .fetch_optional(&mut *db)
                .await?;
        Ok(row.is_some())
    }
    async fn until_listed(db: &mut sqlx::PgConnection, account: &str, want: bool) -> Result<()> {
        let started = Instant::now();
        while listed(db, account).await? != want {
            ensure!(
                started.elapsed() < Duration::from_secs(5),
                "{account} listed: {} after 5 s",
                !want
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
    /// Alice mentions `who` in a message `id`, through `node`'s REST.
    async fn post(node: &confab_e2e::TestServer, id: &str, who: &str) -> Result<()> {
        let body = format!(r#"{{"id":"{id}","body":"hi @{who}","mentions":["{who}"]}}"#);
        let a = http(
            node,
            "POST",
            "/v1/conversations/pushed/messages",
            "alice",
            Some(&body),
        )
        .await;
        ensure!(matches!(a.status, 200 | 201), "post {id}: {a:?}");
        Ok(())
    }
    bounded(Duration::from_secs(120), async {
        let receiver = confab_e2e::push_receiver::Receiver::start().await?;
        let hook = [
            "--webhook-url",
            receiver.url.as_str(),
            "--webhook-secret",
            "cluster-secret",
            "--webhook-backoff-ms",
            "100",
        ];
        let mut nodes = Nodes::on_fresh_database_with(2, &hook).await?;
        let urls = nodes.ws_urls();
        let mut db = nodes.db().await?;
        let created = http(
            &nodes.nodes[0],
            "POST",
            "/v1/conversations",
            "alice",
            Some(r#"{"kind":"group","id":"pushed","title":"pushed","members":[{"account":"bob"},{"account":"carol"}]}"#),
        )
        .await;
        ensure!(matches!(created.status, 200 | 201), "create: {created:?}");
        // Bob's client follows his memberships through node 1; alice posts through node 0.
        let mut cb = connect_at(&urls[1], "bob").await;
        cb.send(&ClientFrame::Memberships {}).await?;
        cb.wait_for(Duration::from_secs(10), |f| {
            matches!(f, ServerFrame::Memberships { more: false, .. }).then_some(())
        })
        .await?;
        until_listed(&mut db, "bob", true).await?;
        post(&nodes.nodes[0], "m-online", "bob").await?;
        // Carol has no client anywhere: her mention is pushed, and bob's, posted before it,
        // would have been by then (one sender, deliveries in order).
        post(&nodes.nodes[0], "m-carol", "carol").await?;
        receiver
            .wait_for("carol", "m-carol", Duration::from_secs(10))
            .await?;

        // Bob's client goes: the next mention is pushed.
        cb.close().await;
        until_listed(&mut db, "bob", false).await?;
        post(&nodes.nodes[0], "m-offline", "bob").await?;
        receiver
            .wait_for("bob", "m-offline", Duration::from_secs(10))
            .await?;

        // Bob's client comes back on node 1, and node 1 dies with it listed: once its
        // heartbeat is older than the directory trusts (5 s), bob is pushed to again.
        let mut cb = connect_at(&urls[1], "bob").await;
        cb.send(&ClientFrame::Memberships {}).await?;
        until_listed(&mut db, "bob", true).await?;
        nodes.nodes[1].kill().await?;
        tokio::time::sleep(Duration::from_secs(6)).await;
        ensure!(listed(&mut db, "bob").await?, "the dead node's row stays until swept");
        post(&nodes.nodes[0], "m-dead-node", "bob").await?;
        receiver
            .wait_for("bob", "m-dead-node", Duration::from_secs(10))
            .await?;

        let pushed: HashSet<(String, String)> = receiver.pushed().into_iter().collect();
        ensure!(
            !pushed.contains(&("bob".to_owned(), "m-online".to_owned())),
            "bob was pushed about a mention while his client was on the other node: {pushed:?}"
        );
        // The level `all`'s batched pushes ask the same directory: bob, connected to node 1
        // when m-carol was fanned out on node 0 (and mentioned by the others), is in none;
        // carol, never connected, is told of the messages that did not mention her.
        let batched: Vec<serde_json::Value> = receiver
            .bodies()
            .into_iter()
            .filter(|b| b["type"] == "messages")
            .collect();
        let lists = |who: &str| {
            batched.iter().any(|b| {
                b["recipients"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|r| r["account"] == who))
            })
        };
        ensure!(!lists("bob"), "bob in a batched push: {batched:?}");
        ensure!(lists("carol"), "carol in no batched push: {batched:?}");
        Ok(())
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// 8. Signals reach the subscribers of every node.

#[tokio::test]
async fn signals_reach_subscribers_on_every_node() {
    use confab_core::ids::DocId;
    use confab_core::protocol::{ClientFrame, ServerFrame, SignalKind};
    async fn heard(
        client: &mut confab_e2e::Client,
        what: SignalKind,
    ) -> Result<(String, Option<String>)> {
        client
            .wait_for(Duration::from_secs(10), |f| match f {
                ServerFrame::Signal {
                    from, kind, data, ..
                } if *kind == what => Some((from.clone(), data.clone())),
                _ => None,
            })
            .await
    }
    bounded(Duration::from_secs(120), async {
        let nodes = Nodes::on_fresh_database(2).await?;
        let urls = nodes.ws_urls();
        let created = http(
            &nodes.nodes[0],
            "POST",
            "/v1/conversations",
            "alice",
            Some(r#"{"kind":"group","id":"talk","title":"talk","members":[{"account":"bob"}]}"#),
        )
        .await;
        ensure!(matches!(created.status, 200 | 201), "create: {created:?}");
        let doc = DocId::parse(&format!("{TENANT}/conv/talk"))?;
        let mut ca = connect_at(&urls[0], "alice").await;
        let mut cb = connect_at(&urls[1], "bob").await;
        ca.subscribe(&doc, 0).await?;
        cb.subscribe(&doc, 0).await?;
        let signal = |kind, data: Option<&str>| ClientFrame::Signal {
            doc: doc.to_string(),
            kind,
            data: data.map(str::to_owned),
        };

        ca.send(&signal(SignalKind::Typing, None)).await?;
        let (from, _) = heard(&mut cb, SignalKind::Typing)
            .await
            .context("bob, on the other node, hears alice typing")?;
        ensure!(from == "alice", "typing from {from}");
        ca.send(&signal(SignalKind::Presence, Some("online")))
            .await?;
        let (from, data) = heard(&mut cb, SignalKind::Presence).await?;
        ensure!(
            from == "alice" && data.as_deref() == Some("online"),
            "{from} {data:?}"
        );
        // Bob's own signal goes the other way.
        cb.send(&signal(SignalKind::StoppedTyping, None)).await?;
        let (from, _) = heard(&mut ca, SignalKind::StoppedTyping).await?;
        ensure!(from == "bob", "stopped typing from {from}");

        // Alice's only connection closes: bob hears she is offline.
        ca.close().await;
        let (from, data) = heard(&mut cb, SignalKind::Presence)
            .await
            .context("bob hears alice go offline")?;
        ensure!(
            from == "alice" && data.as_deref() == Some("offline"),
            "{from} {data:?}"
        );
        let relayed = cluster_metric(&nodes.nodes[1], "confab_cluster_signals_relayed_total").await;
        ensure!(relayed >= 3.0, "node 1 relayed {relayed} signals of node 0");
        cb.close().await;
        Ok(())
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// 9. A rename of a support thread's names through one node fences stamps on the other.

/// Alice renames the client of a support thread through node 0; once that is acked, carol
/// posts through node 1 (which holds the thread from her earlier post) stamped with the
/// name she had. Node 1 may not have heard of the rename yet: the rename moved the policy
/// version, so its commit is refused and the post is checked again against the new name
/// (`sender_mismatch`), never accepted. A post stamped with the new name is accepted.
/// Before the rename moved the policy version, node 1 accepted such posts whenever the
/// notification of the rename had not reached it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_support_rename_on_one_node_fences_old_stamps_on_the_other() {
    use confab_core::doc::schema::keys::{CLIENT_NAME, OWNER_NAME};
    use confab_core::doc::write;
    use confab_core::ids::ResourceId;
    use confab_core::model::conversation::ResourceLink;
    use confab_core::model::message::NewMessage;
    use confab_core::model::support::{SenderRole, Stamp};
    use confab_e2e::client::Answer;
    const TRIALS: usize = 20;
    bounded(Duration::from_secs(180), async {
        let nodes = Nodes::on_fresh_database(2).await?;
        let urls = nodes.ws_urls();
        let mut ca = connect_at(&urls[0], "alice").await;
        let mut cc = connect_at(&urls[1], "carol").await;
        let mut alice = Device::new("alice", 1);
        let mut devices = 0u8;
        // A post of carol's stamped `name`, from a device of its own (a refused change is
        // no dependency of the next).
        let mut post = |conv: &ConvId, id: &str, name: &str| {
            devices = devices.wrapping_add(1);
            let mut carol = Device::new("carol", devices);
            let t = now_ms();
            let mut m = NewMessage::text(
                confab_core::ids::MessageId::new(id).unwrap(),
                carol.account_id(),
                "hi",
                t,
            );
            m.stamp = Stamp {
                sender_role: Some(SenderRole::Client),
                sender_name: Some(name.into()),
                related_lead: None,
            };
            let bucket = bucket_doc(conv, t);
            let change = carol
                .write(&bucket, |d, tag| write::post_message(d, tag, &m))
                .unwrap();
            (bucket, change)
        };
        for n in 0..TRIALS {
            let link = ResourceLink {
                resource: ResourceId::new(format!("flat-{n}"))?,
                client: acc("carol"),
                owner: acc("alice"),
            };
            let (sd, create) = write::support_creation_change(&tenant(), &link)?;
            let conv = sd.conv_id().context("a conversation")?.clone();
            alice.doc(&sd).apply_changes([create.clone()])?;
            assert_acked(&ca.submit(&sd, &[create]).await?);
            let names = alice.write(&sd, |d, tag| {
                write::name_unset(
                    d,
                    tag,
                    now_ms(),
                    &[(CLIENT_NAME, "Carol"), (OWNER_NAME, "Alice")],
                )
            })?;
            assert_acked(&ca.submit(&sd, &[names]).await?);
            // Node 1 holds the thread, with the names, once carol's first post is accepted.
            let (bucket, warm) = post(&conv, &format!("w{n}"), "Carol");
            assert_acked(&cc.submit(&bucket, &[warm]).await?);

            let rename = alice.write(&sd, |d, tag| {
                write::set_info(d, tag, now_ms(), CLIENT_NAME, Some("Caroline"))
            })?;
            assert_acked(&ca.submit(&sd, &[rename]).await?);
            let (bucket, stale) = post(&conv, &format!("s{n}"), "Carol");
            match cc.submit(&bucket, &[stale]).await?.as_slice() {
                [Answer::Reject { code, .. }] => {
                    ensure!(code == "sender_mismatch", "trial {n}: refused {code}")
                }
                other => {
                    anyhow::bail!("trial {n}: a stamp of the old name after the rename: {other:?}")
                }
            }
            let (bucket, fresh) = post(&conv, &format!("f{n}"), "Caroline");
            assert_acked(&cc.submit(&bucket, &[fresh]).await?);
        }
        println!("support rename: {TRIALS} trials, every stale stamp refused");
        Ok(())
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Forwarded attachments: one blob store, two nodes.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_attachments_on_two_nodes() {
    bounded(Duration::from_secs(120), async {
        let shared = std::env::temp_dir().join(format!("confab-blobs-{}", std::process::id()));
        std::fs::create_dir_all(&shared)?;
        let url = format!("file://{}", shared.display());
        let nodes = Nodes::on_fresh_database_with(2, &["--blob-store-url", &url]).await?;
        forwarding_scenario::forwarded_attachments(&nodes.nodes[0], &nodes.nodes[1], "fwc").await;
        drop(nodes);
        let _ = std::fs::remove_dir_all(&shared);
        Ok(())
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Joining an encrypted group through another node.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_device_is_added_through_another_node() {
    bounded(
        Duration::from_secs(150),
        cluster_joining::a_waiting_device_is_added_through_another_node(),
    )
    .await;
}
