//! Reads served from memory while the database is down (docs/STORAGE.md, "Storage health"):
//! a subscription that misses only changes its conversation's unit still holds (the newest
//! `--recent-log-bytes` of each loaded document) is caught up without the database; one
//! that needs more is answered at once `unavailable` with `retry_after_ms`. With real
//! processes: a private Postgres cluster stopped under writes, and SQLite on a full tmpfs.
//! After the storage is back every change ends acked once and subscribers miss nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use confab_core::automerge::Change;
use confab_core::ids::{ConvId, DocId};
use confab_core::protocol::{ClientFrame, ServerFrame};
use confab_e2e::pg_cluster::PgCluster;
use confab_e2e::{Client, Device, TestServer};

const READYZ_ANSWER: Duration = Duration::from_secs(1);
const TO_NOT_READY: Duration = Duration::from_secs(3);
/// Generous bound (a loaded CI VM) on an answer that needs no database.
const FAST_ANSWER: Duration = Duration::from_secs(1);
/// The memory bound of the test server: about 30 of the test's 2 KB messages per document.
const RECENT_LOG_BYTES: &str = "65536";
/// Messages acked before the fault: more than the recent log holds.
const BEFORE: usize = 40;
/// The first message's words, as bob searches them.
const SEARCH_M0: &str = "/v1/search?q=message%200";

enum Fault {
    PostgresStopped(Arc<PgCluster>),
    SqliteFull(Tmpfs),
}

struct Writer {
    alice: Device,
    conv: ConvId,
    bucket: DocId,
    base: i64,
    sent: Vec<Change>,
    /// Acked seq of each change by its index in `sent`.
    acked: HashMap<usize, u64>,
}

impl Writer {
    fn next(&mut self) -> (usize, Change) {
        let i = self.sent.len();
        // 2 KB a message: the disk fills quickly and the recent log holds few.
        let body = format!("message {i} {}", "x".repeat(2_000));
        let (_, change) = message(
            &mut self.alice,
            &self.conv,
            &format!("m{i}"),
            &body,
            self.base + i as i64,
        );
        self.sent.push(change.clone());
        (i, change)
    }

    /// Writes until a submit is not acked (at most `max`); the index of that one.
    async fn until_refused(
        &mut self,
        client: &mut Client,
        max: usize,
        pace: Duration,
    ) -> Option<usize> {
        for _ in 0..max {
            let (i, change) = self.next();
            let (code, _, _) = submit_one(client, &self.bucket, &change).await;
            match code.as_str() {
                "ack" => {
                    // One writer, one change at a time: the next seq.
                    let seq = self.acked.len() as u64 + 1;
                    self.acked.insert(i, seq);
                }
                "unavailable" | "internal" => return Some(i),
                other => panic!("message {i} answered {other}"),
            }
            tokio::time::sleep(pace).await;
        }
        None
    }
}

async fn catch_up_from_memory(server: &TestServer) -> u64 {
    let HttpAnswer { body, .. } = http(server, "GET", "/metrics", "alice", None).await;
    body.lines()
        .find_map(|l| l.strip_prefix("confab_catch_up_from_memory_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no confab_catch_up_from_memory_total in /metrics:\n{body}"))
}

async fn reads_through_an_outage(fault: Fault) {
    let extra = ["--recent-log-bytes", RECENT_LOG_BYTES];
    let server = match &fault {
        Fault::PostgresStopped(cluster) => {
            let data = cluster.server_dir("faults-reads");
            TestServer::start_on(Some(cluster.url()), data, &extra)
                .await
                .unwrap()
        }
        Fault::SqliteFull(tmpfs) => TestServer::start_on(None, tmpfs.path().join("data"), &extra)
            .await
            .unwrap(),
    };
    let mut owner = Device::new("alice", 1);
    let mut alice = connect(&server, "alice").await;
    let (conv_doc, create) = create_group(&mut owner, "reads", &["bob", "carol"]);
    assert_acked(&alice.submit(&conv_doc, &[create]).await.unwrap());
    let conv = ConvId::new("reads").unwrap();
    let base = base_time(120_000);
    let bucket = bucket_doc(&conv, base);
    // Bob follows the conversation throughout.
    let mut bob = connect(&server, "bob").await;
    assert_eq!(bob.subscribe(&conv_doc, 0).await.unwrap().synced, 1);
    let mut w = Writer {
        alice: owner,
        conv,
        bucket: bucket.clone(),
        base,
        sent: Vec::new(),
        acked: HashMap::new(),
    };
    assert_eq!(
        w.until_refused(&mut alice, BEFORE, Duration::ZERO).await,
        None
    );

    // The fault, while alice writes: the commit that meets it fails (or the prober sees it
    // first and her submit is refused at once).
    let refused = match &fault {
        Fault::PostgresStopped(cluster) => {
            let c = cluster.clone();
            let stop = tokio::task::spawn_blocking(move || c.stop_fast());
            let refused = w
                .until_refused(&mut alice, 20, Duration::from_millis(20))
                .await;
            stop.await.unwrap().unwrap();
            match refused {
                Some(i) => i,
                None => w
                    .until_refused(&mut alice, 5, Duration::from_millis(200))
                    .await
                    .expect("refused once stopped"),
            }
        }
        Fault::SqliteFull(tmpfs) => {
            let _ = std::process::Command::new("dd")
                .args(["if=/dev/zero", "bs=1M"])
                .arg(format!("of={}", tmpfs.path().join("filler").display()))
                .stderr(std::process::Stdio::null())
                .status();
            for n in 0..64 {
                let _ = std::fs::write(tmpfs.path().join(format!("crumb{n}")), [0u8; 4096]);
            }
            // Free pages of the WAL and of the database file take some commits before one
            // needs the disk to grow.
            w.until_refused(&mut alice, 400, Duration::ZERO)
                .await
                .expect("the disk never filled up")
        }
    };
    let to_503 = readyz_until(&server, READYZ_ANSWER, 503, TO_NOT_READY).await;
    println!("/readyz 503 after {to_503:?}; message {refused} refused");
    let last = *w.acked.values().max().unwrap();
    assert!(last as usize >= BEFORE);
    let from_memory_before = catch_up_from_memory(&server).await;

    // A reader behind by five: caught up from memory, at once, with exactly what was acked.
    let mut reader = connect(&server, "bob").await;
    let asked = Instant::now();
    let catch_up = reader.subscribe(&bucket, last - 5).await.unwrap();
    assert!(
        asked.elapsed() < FAST_ANSWER,
        "answered at once: {:?}",
        asked.elapsed()
    );
    assert_eq!(catch_up.synced, last, "synced at the newest acked seq");
    let by_seq: HashMap<u64, [u8; 32]> = w
        .acked
        .iter()
        .map(|(i, seq)| (*seq, w.sent[*i].hash().0))
        .collect();
    let got: Vec<(u64, [u8; 32])> = catch_up
        .changes
        .iter()
        .map(|c| (c.seq, Change::try_from(&c.change[..]).unwrap().hash().0))
        .collect();
    let want: Vec<(u64, [u8; 32])> = (last - 4..=last).map(|s| (s, by_seq[&s])).collect();
    assert_eq!(got, want, "the five newest acked changes, in order");
    // The conversation document too (one change, well within the bound).
    let conv_catch_up = reader.subscribe(&conv_doc, 0).await.unwrap();
    assert_eq!((conv_catch_up.changes.len(), conv_catch_up.synced), (1, 1));
    assert!(
        catch_up_from_memory(&server).await >= from_memory_before + 2,
        "both catch-ups came from memory"
    );

    // A reader that needs more than memory holds: `unavailable` at once, with a wait.
    let mut carol = connect(&server, "carol").await;
    let asked = Instant::now();
    carol
        .send(&ClientFrame::Subscribe {
            doc: bucket.to_string(),
            after: 0,
        })
        .await
        .unwrap();
    let doc_text = bucket.to_string();
    let refusal = carol
        .wait_for(Duration::from_secs(5), |f| match f {
            ServerFrame::Error { doc, .. } if doc.as_deref() == Some(&doc_text) => Some(f.clone()),
            ServerFrame::Changes { doc, .. } | ServerFrame::Synced { doc, .. }
                if *doc == doc_text =>
            {
                Some(f.clone())
            }
            _ => None,
        })
        .await
        .unwrap();
    assert!(
        asked.elapsed() < FAST_ANSWER,
        "refused at once: {:?}",
        asked.elapsed()
    );
    match refusal {
        ServerFrame::Error {
            code,
            retry_after_ms,
            fatal,
            ..
        } => {
            assert_eq!(code, "unavailable");
            assert!(
                retry_after_ms.is_some(),
                "unavailable names a retry_after_ms"
            );
            assert!(!fatal);
        }
        other => panic!("a catch-up beyond memory while down: {other:?}"),
    }
    carol.close().await;

    // A search needs the database: refused at once, with a wait.
    let asked = Instant::now();
    let HttpAnswer {
        status,
        retry_after_s,
        body,
    } = http(&server, "GET", SEARCH_M0, "bob", None).await;
    assert!(asked.elapsed() < FAST_ANSWER, "search refused at once");
    assert_eq!(status, 503, "search while down: {body}");
    assert!(body.contains("\"unavailable\""), "{body}");
    assert!(retry_after_s.is_some(), "a search refusal names a wait");

    // The storage comes back: ready again without a restart.
    match &fault {
        Fault::PostgresStopped(cluster) => {
            let c = cluster.clone();
            tokio::task::spawn_blocking(move || c.start_again())
                .await
                .unwrap()
                .unwrap();
        }
        Fault::SqliteFull(tmpfs) => {
            std::fs::remove_file(tmpfs.path().join("filler")).unwrap();
            for n in 0..64 {
                let _ = std::fs::remove_file(tmpfs.path().join(format!("crumb{n}")));
            }
        }
    }
    let to_200 = readyz_until(&server, READYZ_ANSWER, 200, Duration::from_secs(15)).await;
    println!("/readyz 200 {to_200:?} after the storage was back");

    // What was refused is acked once resubmitted (a commit that met the fault may have been
    // stored anyway: then with the seq it got), and one more message after it.
    for i in refused..w.sent.len() {
        let change = w.sent[i].clone();
        let (code, _, _) = submit_one(&mut alice, &bucket, &change).await;
        assert_eq!(code, "ack", "message {i} resubmitted after the outage");
    }
    assert_eq!(w.until_refused(&mut alice, 1, Duration::ZERO).await, None);
    let stored = log_of(&server, "alice", &bucket).await;
    assert_clean_log(&stored);
    assert_eq!(stored.len(), w.sent.len(), "every message stored once");
    let stored_hashes: Vec<[u8; 32]> = stored.iter().map(|(_, h)| *h).collect();
    for (seq, hash) in &want {
        assert_eq!(
            stored_hashes[*seq as usize - 1],
            *hash,
            "an acked change moved"
        );
    }
    // The reader subscribed during the outage gets every later change pushed, in order.
    let pushed = reader
        .pushes_until(&bucket, stored.len() as u64)
        .await
        .unwrap();
    let pushed: Vec<u64> = pushed.iter().map(|c| c.seq).collect();
    let expected: Vec<u64> = (last + 1..=stored.len() as u64).collect();
    assert_eq!(
        pushed, expected,
        "pushes after the outage continue the catch-up"
    );
    // And a search finds what was acked before the fault ("0" is one letter: the word only).
    let HttpAnswer { status, body, .. } = http(&server, "GET", SEARCH_M0, "bob", None).await;
    assert_eq!(status, 200, "search after the outage: {body}");
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<&str> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["message"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["m0"], "{body}");
    reader.close().await;
    bob.close().await;
    alice.close().await;
    drop(server);
    drop(fault);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_catch_up_from_memory_and_unavailable_beyond_it() {
    let cluster = Arc::new(PgCluster::start().unwrap());
    reads_through_an_outage(Fault::PostgresStopped(cluster)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_disk_full_catch_up_from_memory_and_unavailable_beyond_it() {
    let tmpfs = Tmpfs::mount("30m", "the SQLite reads-from-memory fault test");
    reads_through_an_outage(Fault::SqliteFull(tmpfs)).await;
}
