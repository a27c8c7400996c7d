//! kill -9 while clients send: nothing acked is lost, resubmits are idempotent, everyone
//! converges on a log without gaps or duplicates. On SQLite and on Postgres.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use confab_core::automerge::{Automerge, Change, ChangeHash};
use confab_core::doc::read;
use confab_core::ids::{ConvId, DocId};
use confab_core::protocol::{ClientFrame, ServerFrame};
use confab_e2e::client::{Answer, WAIT};
use confab_e2e::{token, Backend, Client, Device, TestServer};
use serde_bytes::ByteBuf;

fn heads(doc: &Automerge) -> Vec<ChangeHash> {
    let mut h = doc.get_heads();
    h.sort();
    h
}

/// Where and how a continuously sending client sends.
#[derive(Clone)]
struct Plan {
    url: String,
    conv: ConvId,
    bucket: DocId,
    /// `created_at` of the first message (each next one 1 ms later).
    base: i64,
    /// Submits in flight at most.
    window: usize,
    /// Stop sending after this long (the tests end the connection well before).
    limit: Duration,
    /// Acks received by all senders together.
    acked: Arc<AtomicUsize>,
}

/// What one continuously sending client saw.
#[derive(Debug, Default)]
struct SendLog {
    account: String,
    /// Every change written, in order (each depends on the one before).
    sent: Vec<Change>,
    acks: HashMap<[u8; 32], u64>,
    rejects: Vec<(String, String)>,
    errors: Vec<(String, String, bool)>,
    ended: String,
    hit_limit: bool,
}

/// Sends one message per submit with up to `window` submits in flight, until the connection
/// fails (or `limit` passes: then it drains its answers and stops).
async fn send_continuously(plan: Plan, mut device: Device) -> (Device, SendLog) {
    let Plan {
        url,
        conv,
        bucket,
        base,
        window,
        limit,
        acked,
    } = plan;
    let account = device.account.clone();
    let mut log = SendLog {
        account: account.clone(),
        ..SendLog::default()
    };
    let mut client = Client::connect(&url, &token(TENANT, &account, false, 3600))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + limit;
    let mut outstanding = 0usize;
    let mut sending = true;
    'run: loop {
        while sending && outstanding < window {
            if tokio::time::Instant::now() >= deadline {
                sending = false;
                log.hit_limit = true;
                break;
            }
            let i = log.sent.len() as i64;
            let (_, change) = message(
                &mut device,
                &conv,
                &format!("{account}-{i}"),
                &format!("{account} says {i}"),
                base + i,
            );
            log.sent.push(change.clone());
            let frame = ClientFrame::Submit {
                doc: bucket.to_string(),
                changes: vec![ByteBuf::from(change.raw_bytes().to_vec())],
            };
            if let Err(e) = client.send(&frame).await {
                log.ended = format!("send: {e}");
                break 'run;
            }
            outstanding += 1;
        }
        if !sending && outstanding == 0 {
            log.ended = "stopped".into();
            break;
        }
        // A connection error (the server was killed) ends the run: whatever is not acked
        // by then counts as unacked.
        match client.recv(WAIT).await {
            Ok(ServerFrame::Ack { hash, seq, .. }) => {
                log.acks.insert(hash.as_slice().try_into().unwrap(), seq);
                acked.fetch_add(1, Ordering::SeqCst);
                outstanding -= 1;
            }
            Ok(ServerFrame::Reject { code, reason, .. }) => {
                log.rejects.push((code, reason));
                outstanding -= 1;
            }
            Ok(ServerFrame::Error {
                code,
                message,
                fatal,
                ..
            }) => {
                outstanding = outstanding.saturating_sub(usize::from(code == "internal"));
                log.errors.push((code, message, fatal));
                sending = false;
            }
            Ok(_) => {}
            Err(e) => {
                log.ended = e.to_string();
                break;
            }
        }
    }
    (device, log)
}

async fn kill_9_while_clients_send(backend: Backend) {
    let mut server = TestServer::start(backend).await.unwrap();
    let mut owner = Device::new("alice", 1);
    let mut ca = connect(&server, "alice").await;
    let (conv_doc, create) = create_group(&mut owner, "crash", &["bob", "carol"]);
    assert_acked(&ca.submit(&conv_doc, &[create]).await.unwrap());
    ca.close().await;
    let conv = ConvId::new("crash").unwrap();
    let base = base_time(120_000);
    let bucket = bucket_doc(&conv, base);

    // Three clients, each with its own connection and task, send until the server dies.
    let acked = Arc::new(AtomicUsize::new(0));
    let plan = Plan {
        url: server.ws_url(),
        conv: conv.clone(),
        bucket: bucket.clone(),
        base,
        window: 4,
        limit: Duration::from_secs(20),
        acked: acked.clone(),
    };
    let senders: Vec<_> = [("alice", 2), ("bob", 1), ("carol", 1)]
        .into_iter()
        .map(|(account, device)| {
            tokio::spawn(send_continuously(
                plan.clone(),
                Device::new(account, device),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // On a slow machine, give them the time to get some acks before pulling the plug.
    for _ in 0..200 {
        if acked.load(Ordering::SeqCst) >= 30 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill().await.unwrap();
    let mut clients: Vec<(Device, SendLog)> = Vec::new();
    for s in senders {
        clients.push(s.await.unwrap());
    }
    for (_, l) in &clients {
        assert!(
            !l.hit_limit,
            "{} was still sending when it should have lost its connection",
            l.account
        );
        assert!(
            l.errors.iter().all(|(code, _, _)| code == "internal"),
            "{}: unexpected error frames {:?} (ended: {})",
            l.account,
            l.errors,
            l.ended
        );
        assert!(!l.acks.is_empty(), "{} got no ack within 1 s", l.account);
        assert!(l.rejects.is_empty(), "{}: {:?}", l.account, l.rejects);
    }

    // Restarted on the same store: every acked change is there with the seq it was acked with.
    server.restart().await.unwrap();
    let log = log_of(&server, "alice", &bucket).await;
    assert_clean_log(&log);
    let stored: HashMap<[u8; 32], u64> = log.iter().map(|(s, h)| (*h, *s)).collect();
    for (_, l) in &clients {
        for (hash, seq) in &l.acks {
            assert_eq!(
                stored.get(hash),
                Some(seq),
                "{}: acked change {} lost or moved by the crash",
                l.account,
                hex::encode(hash)
            );
        }
    }
    let last_before = log.last().map_or(0, |l| l.0);

    // The clients reconnect: acked changes sent again are acked again with their seq, and
    // everything unacked is resubmitted in order and accepted (or found already stored).
    let mut conns = Vec::new();
    for (_, l) in &clients {
        let mut c = connect(&server, &l.account).await;
        let acked: Vec<&Change> = l
            .sent
            .iter()
            .filter(|c| l.acks.contains_key(&c.hash().0))
            .collect();
        let sample: Vec<Change> = [0, acked.len() / 2, acked.len() - 1]
            .into_iter()
            .map(|i| acked[i].clone())
            .collect();
        let answers = c.submit(&bucket, &sample).await.unwrap();
        for (a, ch) in answers.iter().zip(&sample) {
            let expected = Answer::Ack {
                hash: ch.hash().0.to_vec(),
                seq: l.acks[&ch.hash().0],
            };
            assert_eq!(a, &expected, "{}: a resent acked change", l.account);
        }
        let unacked: Vec<Change> = l
            .sent
            .iter()
            .filter(|c| !l.acks.contains_key(&c.hash().0))
            .cloned()
            .collect();
        if !unacked.is_empty() {
            let answers = c.submit(&bucket, &unacked).await.unwrap();
            for (a, ch) in answers.iter().zip(&unacked) {
                let Answer::Ack { hash, seq } = a else {
                    panic!("{}: resubmitted change refused: {a:?}", l.account);
                };
                assert_eq!(hash.as_slice(), &ch.hash().0[..]);
                match stored.get(&ch.hash().0) {
                    // Stored before the crash, its ack lost on the way: the same seq again.
                    Some(before) => assert_eq!(seq, before),
                    None => assert!(*seq > last_before, "a new seq after the restart"),
                }
            }
        }
        conns.push(c);
    }

    // Everyone converges on one history; the log has each change once, seqs 1..=n.
    let total: usize = clients.iter().map(|(_, l)| l.sent.len()).sum();
    let mut observer = Device::new("alice", 9);
    let mut co = connect(&server, "alice").await;
    assert_eq!(
        observer.sync(&mut co, &bucket).await.unwrap(),
        total as u64,
        "every change written is stored once"
    );
    let reference = observer.doc(&bucket).unwrap().clone();
    for ((device, l), c) in clients.iter_mut().zip(conns.iter_mut()) {
        device.sync(c, &bucket).await.unwrap();
        let replica = device.doc(&bucket).unwrap();
        assert_eq!(heads(replica), heads(&reference), "{} diverged", l.account);
        assert_eq!(
            read::read_messages(replica),
            read::read_messages(&reference)
        );
    }
    assert_eq!(read::read_messages(&reference).len(), total);
    let log = log_of(&server, "bob", &bucket).await;
    assert_clean_log(&log);
    assert_eq!(log.len(), total);
    let logged: HashSet<[u8; 32]> = log.iter().map(|l| l.1).collect();
    for (_, l) in &clients {
        assert!(l.sent.iter().all(|c| logged.contains(&c.hash().0)));
    }
    // Seqs acked before the crash did not move.
    let after: HashMap<[u8; 32], u64> = log.iter().map(|(s, h)| (*h, *s)).collect();
    for (_, l) in &clients {
        for (hash, seq) in &l.acks {
            assert_eq!(after.get(hash), Some(seq));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_clients_send_loses_no_acked_change_on_sqlite() {
    kill_9_while_clients_send(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_clients_send_loses_no_acked_change_on_postgres() {
    kill_9_while_clients_send(Backend::Postgres).await;
}
