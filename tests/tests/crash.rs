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
use confab_core::ids::ConvId;
use confab_e2e::client::Answer;
use confab_e2e::{Backend, Device, TestServer};

fn heads(doc: &Automerge) -> Vec<ChangeHash> {
    let mut h = doc.get_heads();
    h.sort();
    h
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
    let reference = observer.doc(&bucket).clone();
    for ((device, l), c) in clients.iter_mut().zip(conns.iter_mut()) {
        device.sync(c, &bucket).await.unwrap();
        let replica = device.doc(&bucket);
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
