//! Kept saves of closed bucket parts (docs/SERVER.md, "Catch-up of closed parts"), through
//! the real server on SQLite and on Postgres: a client that missed a closed part is sent
//! the kept save (counted in `confab_catch_up_kept_snapshots_total`), the same bytes to
//! every client, with the full server order; a change to a closed part after its save was
//! kept is never hidden by it, whether the part is in memory or not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use confab_core::automerge::{Automerge, ReadDoc, ROOT};
use confab_core::doc::write;
use confab_core::ids::{Bucket, ConvId, DocId, MessageId};
use confab_core::limits::BUCKET_OPENS_NEXT_AT;
use confab_core::model::conversation::DEFAULT_BUCKET_MS;
use confab_core::model::message::NewMessage;
use confab_e2e::client::CatchUp;
use confab_e2e::{Backend, Client, Device, TestServer};

/// Parts written: with at most 4 parts of a conversation in memory, the first two leave.
const PARTS: u32 = 6;

async fn kept_snapshots(server: &TestServer) -> u64 {
    let answer = http(server, "GET", "/metrics", "alice", None).await;
    answer
        .body
        .lines()
        .find_map(|l| l.strip_prefix("confab_catch_up_kept_snapshots_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no kept snapshot count in /metrics:\n{}", answer.body))
}

/// A fresh connection of `account` subscribing to `doc` from 0.
async fn catch_up(server: &TestServer, account: &str, doc: &DocId) -> CatchUp {
    let mut client = connect(server, account).await;
    let got = client.subscribe(doc, 0).await.unwrap();
    client.close().await;
    got
}

/// The snapshot of a catch-up: its seq and bytes, after checking its order is complete.
fn snapshot_of(got: &CatchUp) -> (u64, Vec<u8>) {
    let (seq, data) = got.snapshot.clone().expect("a snapshot");
    let order = got.order.as_ref().expect("a snapshot with its order");
    let seqs: Vec<u64> = order.entries().iter().map(|(s, _, _)| *s).collect();
    assert_eq!(
        seqs,
        (1..=seq).collect::<Vec<_>>(),
        "the order of every change"
    );
    assert_eq!(got.synced, seq);
    (seq, data)
}

fn reactions_in(data: &[u8]) -> usize {
    let doc = Automerge::load(data).unwrap();
    match doc.get(ROOT, "reactions").unwrap() {
        Some((_, obj)) => doc.keys(&obj).count(),
        None => 0,
    }
}

async fn post(client: &mut Client, dev: &mut Device, doc: &DocId, ids: &[String], at: i64) {
    let changes: Vec<_> = ids
        .iter()
        .map(|id| {
            let m = NewMessage::text(MessageId::new(id).unwrap(), dev.account_id(), "x", at);
            dev.write(doc, |d, t| write::post_message(d, t, &m))
                .unwrap()
        })
        .collect();
    assert_acked(&client.submit(doc, &changes).await.unwrap());
}

async fn closed_parts_are_sent_from_kept_saves(backend: Backend) {
    let server = TestServer::start(backend).await.unwrap();
    let mut alice = Device::new("alice", 1);
    let mut ca = connect(&server, "alice").await;
    let (conv_doc, create) = create_group(&mut alice, "kept", &["bob", "carol"]);
    assert_acked(&ca.submit(&conv_doc, &[create]).await.unwrap());
    let conv = ConvId::new("kept").unwrap();
    let at = base_time(60_000);
    let period = at.div_euclid(DEFAULT_BUCKET_MS);
    let part = |n| DocId::msgs(&tenant(), &conv, Bucket::new(period, n));
    for p in 0..PARTS {
        let ids: Vec<String> = (0..BUCKET_OPENS_NEXT_AT)
            .map(|i| format!("p{p}m{i}"))
            .collect();
        post(&mut ca, &mut alice, &part(p), &ids, at).await;
    }
    // The saves are made off the unit: let the last one land.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    // Parts 0 and 1 left memory; their saves were kept when they closed.
    let before = kept_snapshots(&server).await;
    let to_bob = catch_up(&server, "bob", &part(0)).await;
    let (seq, bytes) = snapshot_of(&to_bob);
    assert_eq!(seq, BUCKET_OPENS_NEXT_AT as u64);
    let to_carol = catch_up(&server, "carol", &part(0)).await;
    assert_eq!(
        snapshot_of(&to_carol),
        (seq, bytes.clone()),
        "the same bytes"
    );
    snapshot_of(&catch_up(&server, "bob", &part(1)).await);
    assert_eq!(kept_snapshots(&server).await, before + 3);

    // Not to a stranger, kept or not.
    let mut mallory = connect(&server, "mallory").await;
    assert!(mallory.subscribe(&part(0), 0).await.is_err());
    mallory.close().await;

    // A reaction to a message of the closed part 0, then the part leaves memory again.
    let reacted = MessageId::new("p0m7").unwrap();
    let reaction = alice
        .write(&part(0), |d, t| {
            write::react(d, t, at, &reacted, &acc("alice"), "👍", true)
        })
        .unwrap();
    assert_acked(&ca.submit(&part(0), &[reaction]).await.unwrap());
    for p in 2..PARTS {
        post(&mut ca, &mut alice, &part(p), &[format!("later{p}")], at).await;
    }
    // The kept save (of seq 500) is not sent: the part's log goes on.
    let before = kept_snapshots(&server).await;
    let (seq, after_reaction) = snapshot_of(&catch_up(&server, "carol", &part(0)).await);
    assert_eq!(seq, BUCKET_OPENS_NEXT_AT as u64 + 1);
    assert_eq!(
        (reactions_in(&bytes), reactions_in(&after_reaction)),
        (0, 1)
    );
    assert_eq!(kept_snapshots(&server).await, before, "saved again");
    // That save is kept in turn.
    let again = catch_up(&server, "bob", &part(0)).await;
    assert_eq!(snapshot_of(&again), (seq, after_reaction));
    assert_eq!(kept_snapshots(&server).await, before + 1);
    ca.close().await;
}

#[tokio::test]
async fn closed_parts_are_sent_from_kept_saves_on_sqlite() {
    closed_parts_are_sent_from_kept_saves(Backend::Sqlite).await;
}

#[tokio::test]
async fn closed_parts_are_sent_from_kept_saves_on_postgres() {
    closed_parts_are_sent_from_kept_saves(Backend::Postgres).await;
}
