//! Offline clients: queues replayed on reconnect, rejections with reasons after a removal,
//! idempotent resubmits, orphans refused, and a graceful shutdown that loses nothing acked.
//! Every test runs on SQLite and on Postgres.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use confab_core::automerge::{Automerge, Change, ChangeHash};
use confab_core::doc::{read, write};
use confab_core::ids::{ConvId, DocId, MessageId};
use confab_core::model::conversation::MemberStatus;
use confab_core::model::message::NewMessage;
use confab_core::protocol::{ClientFrame, SeqChange, ServerFrame};
use confab_e2e::client::{Answer, WAIT};
use confab_e2e::{now_ms, Backend, Client, Device, TestServer};

// ---------------------------------------------------------------------------------------
// helpers

fn heads(doc: &Automerge) -> Vec<ChangeHash> {
    let mut h = doc.get_heads();
    h.sort();
    h
}

fn hash_of(bytes: &[u8]) -> [u8; 32] {
    Change::try_from(bytes).unwrap().hash().0
}

fn ack_seq(answer: &Answer, change: &Change) -> u64 {
    match answer {
        Answer::Ack { hash, seq } => {
            assert_eq!(
                hash.as_slice(),
                &change.hash().0[..],
                "ack names another change"
            );
            *seq
        }
        other => panic!("expected ack of {}, got {other:?}", change.hash()),
    }
}

/// Submits one change and returns the seq it was acked with.
async fn submit_one(client: &mut Client, doc: &DocId, change: &Change) -> u64 {
    let answers = client
        .submit(doc, std::slice::from_ref(change))
        .await
        .unwrap();
    ack_seq(&answers[0], change)
}

/// Sends `changes` in frames of `per_frame` without waiting in between, then collects one
/// answer per change (matched by hash, returned in submit order).
async fn submit_pipelined(
    client: &mut Client,
    doc: &DocId,
    changes: &[Change],
    per_frame: usize,
) -> Vec<Answer> {
    for chunk in changes.chunks(per_frame) {
        client.send(&submit_frame(doc, chunk)).await.unwrap();
    }
    let index: HashMap<[u8; 32], usize> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.hash().0, i))
        .collect();
    let doc_text = doc.to_string();
    let mut answers: Vec<Option<Answer>> = vec![None; changes.len()];
    for _ in 0..changes.len() {
        let (hash, answer) = client
            .wait_for(WAIT, |frame| match frame {
                ServerFrame::Ack { doc, hash, seq } if *doc == doc_text => Some((
                    hash.to_vec(),
                    Answer::Ack {
                        hash: hash.to_vec(),
                        seq: *seq,
                    },
                )),
                ServerFrame::Reject {
                    doc,
                    hash: Some(hash),
                    code,
                    reason,
                } if *doc == doc_text => Some((
                    hash.to_vec(),
                    Answer::Reject {
                        hash: Some(hash.to_vec()),
                        code: code.clone(),
                        reason: reason.clone(),
                    },
                )),
                ServerFrame::Error { code, message, .. } => {
                    panic!("error frame while submitting: {code}: {message}")
                }
                _ => None,
            })
            .await
            .unwrap();
        let key: [u8; 32] = hash.as_slice().try_into().unwrap();
        let i = *index.get(&key).expect("an answer for a change never sent");
        assert!(answers[i].is_none(), "two answers for change {i}");
        answers[i] = Some(answer);
    }
    answers.into_iter().map(Option::unwrap).collect()
}

struct Room {
    conv: ConvId,
    conv_doc: DocId,
    bucket: DocId,
    base: i64,
}

/// `owner` creates a group with `members`; the returned bucket spans a minute from `base`.
async fn room(owner: &mut Device, client: &mut Client, name: &str, members: &[&str]) -> Room {
    let (conv_doc, create) = create_group(owner, name, members);
    assert_acked(&client.submit(&conv_doc, &[create]).await.unwrap());
    let conv = ConvId::new(name).unwrap();
    let base = base_time(60_000);
    Room {
        bucket: bucket_doc(&conv, base),
        conv,
        conv_doc,
        base,
    }
}

// ---------------------------------------------------------------------------------------
// 1. an offline queue of 500 messages

async fn offline_client_with_500_queued_messages(backend: Backend, per_frame: usize) {
    let server = TestServer::start(backend).await.unwrap();
    let (mut alice, mut bob) = (Device::new("alice", 1), Device::new("bob", 1));
    let mut ca = connect(&server, "alice").await;
    let mut cb = connect(&server, "bob").await;
    let r = room(&mut alice, &mut ca, "offline500", &["bob"]).await;
    for (dev, c) in [(&mut alice, &mut ca), (&mut bob, &mut cb)] {
        dev.sync(c, &r.conv_doc).await.unwrap();
        dev.sync(c, &r.bucket).await.unwrap();
    }
    let (_, a0) = message(&mut alice, &r.conv, "a0", "before you go", r.base);
    let s0 = submit_one(&mut ca, &r.bucket, &a0).await;
    alice
        .apply(&r.bucket, &ca.pushes_until(&r.bucket, s0).await.unwrap())
        .unwrap();
    bob.apply(&r.bucket, &cb.pushes_until(&r.bucket, s0).await.unwrap())
        .unwrap();

    // Bob goes offline and writes 500 messages, each its own change.
    cb.close().await;
    let queued: Vec<Change> = (0..500)
        .map(|i| {
            message(
                &mut bob,
                &r.conv,
                &format!("b{i:03}"),
                &format!("offline {i}"),
                r.base + 1 + i * 10,
            )
            .1
        })
        .collect();
    // Meanwhile alice keeps talking.
    let (_, a1) = message(&mut alice, &r.conv, "a1", "while you were away", r.base + 2);
    let s1 = submit_one(&mut ca, &r.bucket, &a1).await;
    alice
        .apply(&r.bucket, &ca.pushes_until(&r.bucket, s1).await.unwrap())
        .unwrap();

    // Bob reconnects, catches up, then replays his queue.
    let mut cb = connect(&server, "bob").await;
    bob.sync(&mut cb, &r.conv_doc).await.unwrap();
    assert_eq!(bob.sync(&mut cb, &r.bucket).await.unwrap(), s1);
    let answers = submit_pipelined(&mut cb, &r.bucket, &queued, per_frame).await;
    let seqs: Vec<u64> = answers
        .iter()
        .zip(&queued)
        .map(|(a, c)| ack_seq(a, c))
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seqs follow the submit order"
    );
    assert_eq!(seqs[0], s1 + 1);
    assert_eq!(*seqs.last().unwrap(), s1 + 500, "no seq skipped");

    // Alice, online and subscribed, gets all 500 in that order.
    let pushed: Vec<SeqChange> = ca
        .pushes_until(&r.bucket, *seqs.last().unwrap())
        .await
        .unwrap();
    assert_eq!(
        pushed.iter().map(|c| c.seq).collect::<Vec<_>>(),
        seqs,
        "pushes carry the acked seqs in order"
    );
    let pushed_hashes: Vec<[u8; 32]> = pushed.iter().map(|c| hash_of(&c.change)).collect();
    let queued_hashes: Vec<[u8; 32]> = queued.iter().map(|c| c.hash().0).collect();
    assert_eq!(pushed_hashes, queued_hashes, "pushes in bob's order");
    alice.apply(&r.bucket, &pushed).unwrap();

    let a = alice.doc(&r.bucket).clone();
    let b = bob.doc(&r.bucket).clone();
    assert_eq!(heads(&a), heads(&b));
    let messages = read::read_messages(&a);
    assert_eq!(messages.len(), 502);
    assert_eq!(messages, read::read_messages(&b));
    assert_clean_log(&log_of(&server, "alice", &r.bucket).await);
}

// Both ways of replaying a queue are covered, one per backend (500 changes take a few
// seconds to validate in a debug build; four such runs would not fit this file's budget):
// SQLite gets five frames of 100 sent back to back, Postgres one frame of 500.

#[tokio::test]
async fn offline_client_with_500_queued_messages_reconnects_and_all_are_accepted_in_order_on_sqlite(
) {
    offline_client_with_500_queued_messages(Backend::Sqlite, 100).await;
}

#[tokio::test]
async fn offline_client_with_500_queued_messages_reconnects_and_all_are_accepted_in_order_on_postgres(
) {
    offline_client_with_500_queued_messages(Backend::Postgres, 500).await;
}

// ---------------------------------------------------------------------------------------
// 2. a member removed while offline

#[derive(Clone)]
enum Intent {
    Post(Box<NewMessage>),
    React(MessageId, &'static str, i64),
}

fn perform(dev: &mut Device, bucket: &DocId, intent: &Intent) -> Change {
    let account = acc(&dev.account);
    match intent {
        Intent::Post(m) => dev
            .write(bucket, |d, t| write::post_message(d, t, m))
            .unwrap(),
        Intent::React(message, emoji, at) => dev
            .write(bucket, |d, t| {
                write::react(d, t, *at, message, &account, emoji, true)
            })
            .unwrap(),
    }
}

fn assert_rejected(answer: &Answer, change: &Change, codes: &[&str]) -> String {
    match answer {
        Answer::Reject { hash, code, reason } => {
            assert_eq!(
                hash.as_deref(),
                Some(&change.hash().0[..]),
                "reject names its change"
            );
            assert!(
                codes.contains(&code.as_str()),
                "code {code} not in {codes:?}"
            );
            assert!(!reason.is_empty(), "a rejection carries a reason");
            code.clone()
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

async fn revoked(client: &mut Client, doc: &DocId) -> (String, String) {
    let doc_text = doc.to_string();
    client
        .wait_for(WAIT, |f| match f {
            ServerFrame::Revoked { doc, code, reason } if *doc == doc_text => {
                Some((code.clone(), reason.clone()))
            }
            _ => None,
        })
        .await
        .unwrap()
}

async fn removed_member_offline(backend: Backend) {
    let server = TestServer::start(backend).await.unwrap();
    let mut alice = Device::new("alice", 1);
    let mut bob = Device::new("bob", 1);
    let mut carol = Device::new("carol", 1);
    let mut carol_phone = Device::new("carol", 2);
    let mut ca = connect(&server, "alice").await;
    let mut cb = connect(&server, "bob").await;
    let mut cc = connect(&server, "carol").await;
    let mut cp = connect(&server, "carol").await;
    let r = room(&mut alice, &mut ca, "removal", &["bob", "carol"]).await;
    let (_, a0) = message(&mut alice, &r.conv, "a0", "react to me", r.base);
    alice.sync(&mut ca, &r.bucket).await.unwrap();
    let s0 = submit_one(&mut ca, &r.bucket, &a0).await;
    for (dev, c) in [
        (&mut bob, &mut cb),
        (&mut carol, &mut cc),
        (&mut carol_phone, &mut cp),
    ] {
        dev.sync(c, &r.conv_doc).await.unwrap();
        assert_eq!(dev.sync(c, &r.bucket).await.unwrap(), s0);
    }

    // Carol's laptop goes offline and queues 5 messages and 2 reactions, one change each.
    cc.close().await;
    let before_offline = carol.doc(&r.bucket).clone();
    let a0_id = MessageId::new("a0").unwrap();
    let mut intents: Vec<Intent> = (0..5)
        .map(|i| {
            Intent::Post(Box::new(NewMessage::text(
                MessageId::new(format!("c{i}")).unwrap(),
                acc("carol"),
                format!("carol offline {i}"),
                r.base + 10 + i,
            )))
        })
        .collect();
    intents.push(Intent::React(a0_id.clone(), "👍", r.base + 20));
    intents.push(Intent::React(a0_id.clone(), "🎉", r.base + 21));
    let queued: Vec<Change> = intents
        .iter()
        .map(|i| perform(&mut carol, &r.bucket, i))
        .collect();

    // Meanwhile alice removes carol: carol's online phone loses both subscriptions.
    let removal = alice
        .write(&r.conv_doc, |d, t| {
            write::set_member_status(d, t, now_ms(), &acc("carol"), MemberStatus::Removed)
        })
        .unwrap();
    assert_acked(&ca.submit(&r.conv_doc, &[removal]).await.unwrap());
    for doc in [&r.conv_doc, &r.bucket] {
        let (code, reason) = revoked(&mut cp, doc).await;
        assert_eq!(code, "member_inactive", "revoked {doc}: {reason}");
        assert!(reason.contains("carol"), "{reason}");
    }
    // ... and bob keeps posting.
    let bob_msgs: Vec<Change> = (0..3)
        .map(|i| {
            message(
                &mut bob,
                &r.conv,
                &format!("b{i}"),
                &format!("bob {i}"),
                r.base + 30 + i,
            )
            .1
        })
        .collect();
    let bob_seqs: Vec<u64> = cb
        .submit(&r.bucket, &bob_msgs)
        .await
        .unwrap()
        .iter()
        .zip(&bob_msgs)
        .map(|(a, c)| ack_seq(a, c))
        .collect();
    assert_eq!(bob_seqs, vec![s0 + 1, s0 + 2, s0 + 3]);
    // The revoked phone gets no more pushes of the bucket.
    cp.send(&ClientFrame::Ping { nonce: 7 }).await.unwrap();
    cp.wait_for(WAIT, |f| {
        matches!(f, ServerFrame::Pong { nonce: 7, .. }).then_some(())
    })
    .await
    .unwrap();
    let bucket_text = r.bucket.to_string();
    let leaked: Vec<&ServerFrame> = cp
        .pending()
        .iter()
        .filter(|f| matches!(f, ServerFrame::Changes { doc, changes } if *doc == bucket_text && changes.iter().any(|c| c.seq > s0)))
        .collect();
    assert!(
        leaked.is_empty(),
        "a revoked subscriber still got pushes: {leaked:?}"
    );

    // Carol reconnects and replays her queue: nothing gets in, every change with a reason.
    let mut cc = connect(&server, "carol").await;
    let answers = cc.submit(&r.bucket, &queued).await.unwrap();
    assert_eq!(
        assert_rejected(&answers[0], &queued[0], &["member_inactive", "not_member"]),
        "member_inactive"
    );
    // The rest build on her first change, so they are orphans now (a change whose dependency
    // is not accepted is never queued: docs/POLICY.md, `missing_dependency`).
    for (a, c) in answers.iter().zip(&queued).skip(1) {
        assert_rejected(
            a,
            c,
            &["member_inactive", "not_member", "missing_dependency"],
        );
    }
    // The client rebases: it drops the rejected changes, rebuilds every
    // remaining intent on the server-accepted state and resubmits; each intent then ends
    // rejected for the removal itself.
    let rebuilt: Vec<Change> = intents
        .iter()
        .map(|i| {
            carol.docs.insert(r.bucket.clone(), before_offline.clone());
            perform(&mut carol, &r.bucket, i)
        })
        .collect();
    let answers = cc.submit(&r.bucket, &rebuilt).await.unwrap();
    for (a, c) in answers.iter().zip(&rebuilt) {
        assert_eq!(
            assert_rejected(a, c, &["member_inactive", "not_member"]),
            "member_inactive",
            "every queued intent is refused for the removal, got {a:?}"
        );
    }
    // Her subscriptions are refused now.
    for doc in [&r.conv_doc, &r.bucket] {
        let err = cc.subscribe(doc, 0).await.unwrap_err().to_string();
        assert!(
            err.starts_with("forbidden"),
            "subscribe {doc} after removal: {err}"
        );
    }

    // A fresh subscriber sees alice's and bob's messages and nothing of carol's.
    let mut fresh = Device::new("bob", 9);
    let mut cf = connect(&server, "bob").await;
    assert_eq!(fresh.sync(&mut cf, &r.bucket).await.unwrap(), s0 + 3);
    let messages = read::read_messages(fresh.doc(&r.bucket));
    let ids: Vec<&str> = messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, vec!["a0", "b0", "b1", "b2"]);
    assert!(messages.iter().all(|m| m.author.as_str() != "carol"));
    assert!(
        messages.iter().all(|m| m.reactions.is_empty()),
        "no reaction of carol"
    );
    let carol_hashes: HashSet<[u8; 32]> =
        queued.iter().chain(&rebuilt).map(|c| c.hash().0).collect();
    let log = log_of(&server, "bob", &r.bucket).await;
    assert_eq!(log.len() as u64, s0 + 3);
    assert!(log.iter().all(|(_, h)| !carol_hashes.contains(h)));
    assert_clean_log(&log);
}

#[tokio::test]
async fn removed_members_offline_messages_are_rejected_with_the_reason_while_others_go_through_on_sqlite(
) {
    removed_member_offline(Backend::Sqlite).await;
}

#[tokio::test]
async fn removed_members_offline_messages_are_rejected_with_the_reason_while_others_go_through_on_postgres(
) {
    removed_member_offline(Backend::Postgres).await;
}

// ---------------------------------------------------------------------------------------
// 3. resubmitting acked changes

async fn resubmit_acked(backend: Backend) {
    let mut server = TestServer::start(backend).await.unwrap();
    let (mut alice, mut bob) = (Device::new("alice", 1), Device::new("bob", 1));
    let mut ca = connect(&server, "alice").await;
    let mut cb = connect(&server, "bob").await;
    let (conv_doc, create) = create_group(&mut alice, "again", &["bob"]);
    let create_seq = submit_one(&mut ca, &conv_doc, &create).await;
    let conv = ConvId::new("again").unwrap();
    let base = base_time(60_000);
    let bucket = bucket_doc(&conv, base);
    alice.sync(&mut ca, &bucket).await.unwrap();
    bob.sync(&mut cb, &bucket).await.unwrap();
    let msgs: Vec<Change> = (0..3)
        .map(|i| message(&mut bob, &conv, &format!("m{i}"), "once", base + i).1)
        .collect();
    let seqs: Vec<u64> = cb
        .submit(&bucket, &msgs)
        .await
        .unwrap()
        .iter()
        .zip(&msgs)
        .map(|(a, c)| ack_seq(a, c))
        .collect();
    assert_eq!(seqs, vec![1, 2, 3]);

    let check = |answers: Vec<Answer>, changes: &[Change], expected: &[u64]| {
        let got: Vec<u64> = answers
            .iter()
            .zip(changes)
            .map(|(a, c)| ack_seq(a, c))
            .collect();
        assert_eq!(got, expected, "a resubmit is an ack with the original seq");
    };
    // The same connection, one and all of them.
    check(
        cb.submit(&bucket, &msgs[1..2]).await.unwrap(),
        &msgs[1..2],
        &seqs[1..2],
    );
    check(cb.submit(&bucket, &msgs).await.unwrap(), &msgs, &seqs);
    // Twice in one frame.
    let twice = [msgs[0].clone(), msgs[0].clone()];
    check(
        cb.submit(&bucket, &twice).await.unwrap(),
        &twice,
        &[seqs[0], seqs[0]],
    );
    // Another connection of the same account, and the conversation's creation.
    let mut cb2 = connect(&server, "bob").await;
    check(cb2.submit(&bucket, &msgs).await.unwrap(), &msgs, &seqs);
    check(
        ca.submit(&conv_doc, std::slice::from_ref(&create))
            .await
            .unwrap(),
        std::slice::from_ref(&create),
        &[create_seq],
    );

    // After a restart the answer comes from storage.
    server.restart().await.unwrap();
    let mut cb = connect(&server, "bob").await;
    let mut rev = msgs.clone();
    rev.reverse();
    let mut rev_seqs = seqs.clone();
    rev_seqs.reverse();
    check(cb.submit(&bucket, &rev).await.unwrap(), &rev, &rev_seqs);
    let mut ca = connect(&server, "alice").await;
    check(
        ca.submit(&conv_doc, std::slice::from_ref(&create))
            .await
            .unwrap(),
        &[create],
        &[create_seq],
    );

    // No seq was spent on duplicates: the next new change follows directly.
    let (_, m3) = message(&mut bob, &conv, "m3", "new", base + 3);
    let s3 = submit_one(&mut cb, &bucket, &m3).await;
    assert_eq!(s3, 4);
    let log = log_of(&server, "alice", &bucket).await;
    assert_clean_log(&log);
    let logged: Vec<[u8; 32]> = log.iter().map(|l| l.1).collect();
    let expected: Vec<[u8; 32]> = msgs.iter().chain([&m3]).map(|c| c.hash().0).collect();
    assert_eq!(logged, expected);
}

#[tokio::test]
async fn resubmitting_acked_changes_is_an_ack_with_the_same_seq_on_sqlite() {
    resubmit_acked(Backend::Sqlite).await;
}

#[tokio::test]
async fn resubmitting_acked_changes_is_an_ack_with_the_same_seq_on_postgres() {
    resubmit_acked(Backend::Postgres).await;
}

// ---------------------------------------------------------------------------------------
// 4. orphans are rejected, not queued

async fn orphan_rejected(backend: Backend) {
    let server = TestServer::start(backend).await.unwrap();
    let (mut alice, mut bob) = (Device::new("alice", 1), Device::new("bob", 1));
    let mut ca = connect(&server, "alice").await;
    let mut cb = connect(&server, "bob").await;
    let r = room(&mut alice, &mut ca, "orphans", &["bob"]).await;
    alice.sync(&mut ca, &r.bucket).await.unwrap();
    bob.sync(&mut cb, &r.bucket).await.unwrap();
    let m: Vec<Change> = (0..4)
        .map(|i| message(&mut bob, &r.conv, &format!("m{i}"), "chain", r.base + i).1)
        .collect();
    assert!(m[1].deps().contains(&m[0].hash()));
    assert!(m[3].deps().contains(&m[2].hash()));

    // m1 alone: its dependency m0 was never submitted.
    let answers = cb.submit(&r.bucket, &m[1..2]).await.unwrap();
    assert_rejected(&answers[0], &m[1], &["missing_dependency"]);
    let Answer::Reject { reason, .. } = &answers[0] else {
        unreachable!()
    };
    assert!(
        reason.contains(&m[0].hash().to_string()),
        "the reason names the dependency: {reason}"
    );
    // Its dependency arrives: only m0 is accepted, m1 was not kept waiting.
    let s0 = ack_seq(&cb.submit(&r.bucket, &m[0..1]).await.unwrap()[0], &m[0]);
    assert_eq!(s0, 1);
    let pushed = ca.pushes_until(&r.bucket, s0).await.unwrap();
    assert_eq!(pushed.len(), 1);
    alice.apply(&r.bucket, &pushed).unwrap();
    let log = log_of(&server, "alice", &r.bucket).await;
    assert_eq!(log, vec![(1, m[0].hash().0)], "the orphan was not queued");
    // Resubmitted after its dependency, it goes in.
    assert_eq!(
        ack_seq(&cb.submit(&r.bucket, &m[1..2]).await.unwrap()[0], &m[1]),
        2
    );

    // The same inside one frame: the orphan first, its dependency after it.
    let out_of_order = [m[3].clone(), m[2].clone()];
    let answers = cb.submit(&r.bucket, &out_of_order).await.unwrap();
    assert_rejected(&answers[0], &m[3], &["missing_dependency"]);
    assert_eq!(ack_seq(&answers[1], &m[2]), 3);
    assert_eq!(
        ack_seq(&cb.submit(&r.bucket, &m[3..4]).await.unwrap()[0], &m[3]),
        4
    );

    let pushed = ca.pushes_until(&r.bucket, 4).await.unwrap();
    assert_eq!(
        pushed.iter().map(|c| c.seq).collect::<Vec<_>>(),
        vec![2, 3, 4]
    );
    alice.apply(&r.bucket, &pushed).unwrap();
    assert_eq!(heads(alice.doc(&r.bucket)), heads(bob.doc(&r.bucket)));
    let log = log_of(&server, "alice", &r.bucket).await;
    assert_clean_log(&log);
    assert_eq!(
        log.iter().map(|l| l.1).collect::<Vec<_>>(),
        m.iter().map(|c| c.hash().0).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_change_whose_dependency_is_not_accepted_is_rejected_not_queued_on_sqlite() {
    orphan_rejected(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_change_whose_dependency_is_not_accepted_is_rejected_not_queued_on_postgres() {
    orphan_rejected(Backend::Postgres).await;
}

// ---------------------------------------------------------------------------------------
// 5. graceful shutdown

async fn graceful_shutdown(backend: Backend) {
    let mut server = TestServer::start(backend).await.unwrap();
    let mut alice = Device::new("alice", 1);
    let mut ca = connect(&server, "alice").await;
    let r = room(&mut alice, &mut ca, "shutdown", &["bob", "carol"]).await;
    ca.close().await;
    let acked = Arc::new(AtomicUsize::new(0));
    let plan = Plan {
        url: server.ws_url(),
        conv: r.conv.clone(),
        bucket: r.bucket.clone(),
        base: r.base,
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
    tokio::time::sleep(Duration::from_millis(800)).await;
    // On a slow machine, give them the time to get some acks before pulling the plug.
    for _ in 0..200 {
        if acked.load(Ordering::SeqCst) >= 30 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = server.terminate().await.unwrap();
    assert!(status.success(), "graceful exit, got {status}");
    let mut logs = Vec::new();
    for s in senders {
        logs.push(s.await.unwrap().1);
    }

    server.restart().await.unwrap();
    let log = log_of(&server, "alice", &r.bucket).await;
    assert_clean_log(&log);
    let stored: HashMap<[u8; 32], u64> = log.iter().map(|(s, h)| (*h, *s)).collect();
    for l in &logs {
        assert!(
            !l.acks.is_empty(),
            "{} got no ack before the shutdown: {l:?}",
            l.account
        );
        assert!(l.rejects.is_empty(), "{}: {:?}", l.account, l.rejects);
        for (hash, seq) in &l.acks {
            assert_eq!(
                stored.get(hash),
                Some(seq),
                "{}: acked change {} is not stored with its seq",
                l.account,
                hex::encode(hash)
            );
        }
    }
    // Every client was told why the connection ends, then closed with 1001 (going away).
    for l in &logs {
        assert!(
            l.errors
                .iter()
                .any(|(code, _, fatal)| code == "shutting_down" && *fatal),
            "{} got no shutting_down error: {:?} (ended: {})",
            l.account,
            l.errors,
            l.ended
        );
        assert_eq!(
            l.closed.as_ref().map(|c| c.0),
            Some(1001),
            "{} closed with {:?} (ended: {})",
            l.account,
            l.closed,
            l.ended
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_on_sigterm_loses_nothing_acked_on_sqlite() {
    graceful_shutdown(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_on_sigterm_loses_nothing_acked_on_postgres() {
    graceful_shutdown(Backend::Postgres).await;
}
