//! A subscriber that stops reading its pushes: the server keeps at most
//! `--push-backlog-bytes` of them, then tells it `lagging` and closes with 1008. Everyone
//! else is unaffected, and the slow client catches up from its cursor when it reconnects.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use confab_core::ids::ConvId;
use confab_core::protocol::ServerFrame;
use confab_e2e::client::WAIT;
use confab_e2e::{now_ms, Backend, Device, TestServer};

/// Message changes with bodies of this many characters (~4 KB each on the wire).
const BODY: usize = 3_900;
/// Messages per submit frame.
const PER_FRAME: usize = 40;

async fn a_reader_that_stops_reading_is_told_lagging_and_catches_up(backend: Backend) {
    // 64 KiB of unread pushes at most: the kernel's socket buffers (a few MB on loopback)
    // fill first, so 12 MB of pushes are well past the limit.
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

    // Bob reads nothing from here on, while alice sends 3,000 messages of ~4 KB.
    let body = "x".repeat(BODY);
    let mut acked = 0;
    for frame in 0..75 {
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
        acked, 3_000,
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
        last_seq < 3_000,
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
    assert_eq!(catch_up.synced, 3_001);
    if catch_up.snapshot.is_none() {
        let seqs: Vec<u64> = catch_up.changes.iter().map(|c| c.seq).collect();
        let expected: Vec<u64> = (last_seq + 1..=3_001).collect();
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
