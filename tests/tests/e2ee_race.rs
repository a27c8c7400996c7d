//! Two admins add different members to an encrypted group while both are offline, then come
//! back in a random order (docs/E2EE.md, "Adding and removing"): both adds end accepted, one
//! of them made again on the other's epoch, and both new members join and read. Randomized
//! trials against the real server binary, on one node (SQLite) and through two nodes of a
//! cluster (Postgres), where the Delivery Service's one commit per epoch must hold across
//! nodes. Each trial is a new conversation; the seed is printed, and `E2EE_RACE_SEED`
//! replays it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "cluster/nodes.rs"]
#[allow(dead_code)] // the cluster suite uses the rest
mod cluster_nodes;
mod common;

use std::time::Duration;

use cluster_nodes::Nodes;
use confab_client::Client as NativeClient;
use confab_core::client::{Intent, KEY_PACKAGES_TARGET};
use confab_core::ids::ConvId;
use confab_core::model::conversation::Role;
use confab_e2e::native_support::*;
use confab_e2e::{Backend, TestServer};
use confab_testkit::ids::acc;

/// Accounts the trials add, two at a time.
const POOL: [&str; 6] = ["carol", "dave", "erin", "frank", "grace", "heidi"];

/// A xorshift generator: the trials' choices, replayable from the seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn seed() -> u64 {
    std::env::var("E2EE_RACE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| confab_e2e::now_ms().unsigned_abs() | 1)
}

fn add(conv: &ConvId, account: &str) -> Intent {
    Intent::AddMember {
        conv: conv.clone(),
        account: acc(account),
        role: Role::Member,
    }
}

/// The devices of one run: alice and bob (the admins) and the pool, each on the node
/// `node_of` picks.
fn devices(nodes: &[&TestServer], tag: &str) -> (NativeClient, NativeClient, Vec<NativeClient>) {
    let names: Vec<&str> = ["alice", "bob"].into_iter().chain(POOL).collect();
    let dirs = fresh_dirs(tag, names.len());
    let mut clients: Vec<NativeClient> = names
        .iter()
        .zip(&dirs)
        .enumerate()
        .map(|(i, (n, d))| device_client(nodes[i % nodes.len()], n, "phone", d))
        .collect();
    let pool = clients.split_off(2);
    let bob = clients.pop().unwrap();
    let alice = clients.pop().unwrap();
    (alice, bob, pool)
}

async fn trial(
    rng: &mut Rng,
    t: usize,
    alice: &NativeClient,
    bob: &NativeClient,
    pool: &[NativeClient],
) {
    let conv = ConvId::new(format!("race-{t}")).unwrap();
    let mut create = group_of(&conv, &[]);
    if let Intent::CreateConversation {
        encrypted, members, ..
    } = &mut create
    {
        *encrypted = true;
        members.push((acc("bob"), Role::Admin));
    }
    let id = alice.intent(create).await.unwrap();
    accepted(alice, id).await;
    follow_conv(alice, &conv).await;
    follow_conv(bob, &conv).await;
    at_epoch(bob, &conv, 1).await;

    let x = rng.below(POOL.len() as u64) as usize;
    let y = (x + 1 + rng.below(POOL.len() as u64 - 1) as usize) % POOL.len();
    alice.set_online(false).await.unwrap();
    bob.set_online(false).await.unwrap();
    let by_alice = alice.intent(add(&conv, POOL[x])).await.unwrap();
    let by_bob = bob.intent(add(&conv, POOL[y])).await.unwrap();
    let (first, second) = if rng.below(2) == 0 {
        (alice, bob)
    } else {
        (bob, alice)
    };
    tokio::time::sleep(Duration::from_millis(rng.below(40))).await;
    first.set_online(true).await.unwrap();
    tokio::time::sleep(Duration::from_millis(rng.below(40))).await;
    second.set_online(true).await.unwrap();
    accepted(alice, by_alice).await;
    accepted(bob, by_bob).await;

    let (cx, cy) = (&pool[x], &pool[y]);
    follow_conv(cx, &conv).await;
    follow_conv(cy, &conv).await;
    for c in [alice, bob, cx, cy] {
        at_epoch(c, &conv, 3).await;
    }
    let body = format!("{} reads this in trial {t}", POOL[y]);
    let sent = send(cx, &conv, "hello", &body).await;
    accepted(cx, sent).await;
    for c in [alice, bob, cy] {
        reads(c, &conv, "hello", &body).await;
    }
}

async fn trials(nodes: &[&TestServer], tag: &str, n: usize) {
    let seed = seed();
    eprintln!("{tag}: E2EE_RACE_SEED={seed}");
    let mut rng = Rng(seed);
    let (alice, bob, pool) = devices(nodes, tag);
    for c in [&alice, &bob].into_iter().chain(&pool) {
        c.set_online(true).await.unwrap();
        eventually(c, "key packages topped up", |e| {
            e.key_packages_held() == Some(KEY_PACKAGES_TARGET)
        })
        .await;
    }
    let n = std::env::var("E2EE_RACE_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(n);
    for t in 0..n {
        let started = std::time::Instant::now();
        trial(&mut rng, t, &alice, &bob, &pool).await;
        eprintln!("{tag}: trial {t} in {:?}", started.elapsed());
    }
}

#[tokio::test]
async fn offline_adds_race_and_both_join_in_100_trials() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    tokio::time::timeout(Duration::from_secs(900), trials(&[&server], "race1", 100))
        .await
        .expect("bounded");
}

#[tokio::test]
async fn offline_adds_race_through_two_nodes() {
    let nodes = Nodes::on_fresh_database(2).await.unwrap();
    let servers: Vec<&TestServer> = nodes.nodes.iter().collect();
    tokio::time::timeout(Duration::from_secs(900), trials(&servers, "race2", 30))
        .await
        .expect("bounded");
}
