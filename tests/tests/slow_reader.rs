//! A subscriber that stops reading its pushes: the server lets at most
//! `--push-backlog-bytes` of them go unread, then tells it `lagging` and closes with 1008.
//! Everyone else is unaffected, and the slow client catches up from its cursor when it
//! reconnects.
//!
//! Unread means not read by the client's application, wherever the bytes wait: the
//! server's backlog or either kernel's socket buffers (the server pings and the client's
//! pongs confirm what it read). The first test pushes 7 MB past a 64 KiB limit, more than
//! the kernels hold; the second pushes only 3 MiB past a 1 MiB limit to a client whose
//! kernel alone could hold all of it (a large SO_RCVBUF), the case a 44 s stall at 300
//! msg/s once hid.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use confab_core::ids::ConvId;
use confab_core::protocol::ServerFrame;
use confab_e2e::client::WAIT;
use confab_e2e::{now_ms, token, Backend, Client, Device, TestServer};

/// Message changes with bodies of this many characters (~4 KB each on the wire).
const BODY: usize = 3_900;
/// Messages per submit frame.
const PER_FRAME: usize = 40;

async fn a_reader_that_stops_reading_is_told_lagging_and_catches_up(backend: Backend) {
    // 64 KiB of unread pushes at most: the kernel's socket buffers (a few MB on loopback)
    // fill first, so 7 MB of pushes are well past the limit.
    let server = TestServer::start_with(backend, &["--push-backlog-bytes", "65536"])
        .await
        .unwrap();
    let (mut alice, mut bob) = (Device::new("alice", 1), Device::new("bob", 1));
    let mut ca = connect(&server, "alice").await;
    let mut cb = connect(&server, "bob").await;
    let (conv_doc, create) = create_group(&mut alice, "slow", &["bob"]);
    assert_acked(&ca.submit(&conv_doc, &[create]).await.unwrap());
    let conv = ConvId::new("slow").unwrap();
    let at = now_ms();
    let bucket = bucket_doc(&conv, at);
    alice.sync(&mut ca, &bucket).await.unwrap();
    bob.sync(&mut cb, &bucket).await.unwrap();

    // Bob reads nothing from here on, while alice sends 1,800 messages of ~4 KB (7 MB; one bucket part holds at most 2,000).
    let body = "x".repeat(BODY);
    let mut acked = 0;
    for frame in 0..45 {
        let changes: Vec<_> = (0..PER_FRAME)
            .map(|i| {
                let n = frame * PER_FRAME + i;
                message(&mut alice, &conv, &format!("m{n:05}"), &body, at + n as i64).1
            })
            .collect();
        let answers = ca.submit(&bucket, &changes).await.unwrap();
        assert_acked(&answers);
        acked += answers.len();
        // Alice reads her own pushes as a well-behaved client does.
        let _ = ca.pushes_until(&bucket, acked as u64).await.unwrap();
    }
    assert_eq!(
        acked, 1_800,
        "the writer is never slowed down by the slow reader"
    );

    // Bob now reads what was queued for him: pushes, then `lagging`, then the close.
    let mut last_seq = 0;
    let lagging = loop {
        match cb.recv(WAIT).await.unwrap() {
            ServerFrame::Changes { changes, .. } => {
                last_seq = changes.last().map_or(last_seq, |c| c.seq);
            }
            ServerFrame::Error {
                code, fatal, doc, ..
            } => break (code, fatal, doc),
            _ => {}
        }
    };
    assert_eq!(lagging.0, "lagging");
    assert!(lagging.1, "lagging is fatal");
    assert_eq!(lagging.2.as_deref(), Some(bucket.to_string().as_str()));
    assert!(
        last_seq < 1_800,
        "bob was cut off before the end (saw up to {last_seq})"
    );
    let after = cb
        .recv(Duration::from_secs(5))
        .await
        .map(|f| format!("{f:?}").chars().take(200).collect::<String>());
    assert!(
        after.is_err(),
        "the connection ends after lagging: {after:?}"
    );
    assert_eq!(cb.closed.as_ref().map(|c| c.0), Some(1008));

    // Alice's connection is untouched.
    let (_, more) = message(&mut alice, &conv, "after", "still here", at + 10_000);
    assert_acked(&ca.submit(&bucket, &[more]).await.unwrap());

    // Bob reconnects and catches up from his cursor: every message, none twice.
    let mut cb = connect(&server, "bob").await;
    let catch_up = cb.subscribe(&bucket, last_seq).await.unwrap();
    assert_eq!(catch_up.synced, 1_801);
    if catch_up.snapshot.is_none() {
        let seqs: Vec<u64> = catch_up.changes.iter().map(|c| c.seq).collect();
        let expected: Vec<u64> = (last_seq + 1..=1_801).collect();
        assert_eq!(seqs, expected);
    }
    assert_clean_log(&log_of(&server, "alice", &bucket).await);
}

#[tokio::test]
async fn a_reader_that_stops_reading_is_told_lagging_and_catches_up_on_sqlite() {
    a_reader_that_stops_reading_is_told_lagging_and_catches_up(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_reader_that_stops_reading_is_told_lagging_and_catches_up_on_postgres() {
    a_reader_that_stops_reading_is_told_lagging_and_catches_up(Backend::Postgres).await;
}

/// A 1 MiB limit, for a client whose kernel could hold several times that.
const LIMIT: usize = 1 << 20;

async fn a_reader_with_big_kernel_buffers_is_told_lagging_at_the_limit(backend: Backend) {
    let server = TestServer::start_with(backend, &["--push-backlog-bytes", &LIMIT.to_string()])
        .await
        .unwrap();
    let (mut alice, mut bob, mut carol) = (
        Device::new("alice", 1),
        Device::new("bob", 1),
        Device::new("carol", 1),
    );
    let mut ca = connect(&server, "alice").await;
    let mut cc = connect(&server, "carol").await;
    // 16 MiB asked; Linux grants up to twice net.core.rmem_max (8 MiB on a 4 MiB max).
    let (mut cb, granted) = Client::connect_with_recv_buffer(
        &server.ws_url(),
        &token(TENANT, "bob", false, 3600),
        16 << 20,
    )
    .await
    .unwrap();
    eprintln!("bob's receive buffer: {granted} bytes");
    let (conv_doc, create) = create_group(&mut alice, "slowbig", &["bob", "carol"]);
    assert_acked(&ca.submit(&conv_doc, &[create]).await.unwrap());
    let conv = ConvId::new("slowbig").unwrap();
    let at = now_ms();
    let bucket = bucket_doc(&conv, at);
    alice.sync(&mut ca, &bucket).await.unwrap();
    bob.sync(&mut cb, &bucket).await.unwrap();
    carol.sync(&mut cc, &bucket).await.unwrap();

    // Bob reads nothing from here on; alice sends 800 messages of ~4 KB (3.2 MB), which
    // bob's kernel buffers alone could take. Carol reads as a client should.
    let body = "y".repeat(BODY);
    let mut acked = 0u64;
    let mut carol_got = 0;
    // Small frames: a push is refused once the limit is passed, so the last one taken may
    // carry the unread bytes past it by its size (8 changes, ~32 KB).
    for frame in 0..100 {
        let changes: Vec<_> = (0..8)
            .map(|i| {
                let n = frame * 8 + i;
                message(&mut alice, &conv, &format!("b{n:05}"), &body, at + n as i64).1
            })
            .collect();
        let answers = ca.submit(&bucket, &changes).await.unwrap();
        assert_acked(&answers);
        acked += answers.len() as u64;
        let _ = ca.pushes_until(&bucket, acked).await.unwrap();
        carol_got += cc.pushes_until(&bucket, acked).await.unwrap().len();
    }
    assert_eq!(acked, 800);
    assert_eq!(carol_got, 800, "carol received every push while bob lagged");

    // Bob reads again: what was sent before the limit, then `lagging`, then the close.
    let reading = Instant::now();
    let (mut last_seq, mut bytes) = (0, 0);
    let lagging = loop {
        match cb.recv(WAIT).await.unwrap() {
            ServerFrame::Changes { changes, .. } => {
                last_seq = changes.last().map_or(last_seq, |c| c.seq);
                bytes += changes.iter().map(|c| c.change.len()).sum::<usize>();
            }
            ServerFrame::Error {
                code, fatal, doc, ..
            } => break (code, fatal, doc),
            _ => {}
        }
    };
    assert_eq!(lagging.0, "lagging");
    assert!(lagging.1, "lagging is fatal");
    assert_eq!(lagging.2.as_deref(), Some(bucket.to_string().as_str()));
    // The pushes bob was sent before `lagging`: up to the limit (the hello, catch-up and
    // frame headers count too), never what his kernel could have held on top.
    assert!(
        (LIMIT - (128 << 10)..=LIMIT + (64 << 10)).contains(&bytes),
        "bob was sent {bytes} bytes of changes (up to seq {last_seq}) for a {LIMIT}-byte limit"
    );
    let after = cb.recv(Duration::from_secs(5)).await;
    assert!(after.is_err(), "the connection ends after lagging");
    assert_eq!(cb.closed.as_ref().map(|c| c.0), Some(1008));
    assert!(
        reading.elapsed() < Duration::from_secs(10),
        "lagging and the close came within {:?} of reading again",
        reading.elapsed()
    );

    // Alice and carol are untouched.
    let (_, more) = message(&mut alice, &conv, "after", "still here", at + 10_000);
    assert_acked(&ca.submit(&bucket, &[more]).await.unwrap());
    assert_eq!(cc.pushes_until(&bucket, 801).await.unwrap().len(), 1);

    // Bob catches up from his cursor.
    let mut cb = connect(&server, "bob").await;
    let catch_up = cb.subscribe(&bucket, last_seq).await.unwrap();
    assert_eq!(catch_up.synced, 801);
}

#[tokio::test]
async fn a_reader_with_big_kernel_buffers_is_told_lagging_at_the_limit_on_sqlite() {
    a_reader_with_big_kernel_buffers_is_told_lagging_at_the_limit(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_reader_with_big_kernel_buffers_is_told_lagging_at_the_limit_on_postgres() {
    a_reader_with_big_kernel_buffers_is_told_lagging_at_the_limit(Backend::Postgres).await;
}
