//! `confab-client` (core engine + tokio WebSocket + file store) against the real server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use confab_client::Client as NativeClient;
use confab_core::client::IntentStatus;
use confab_core::ids::{AccountId, ConvId, DocId, MessageId, TenantId};
use confab_core::model::message::NewMessage;
use confab_e2e::native_support::*;
use confab_e2e::{now_ms, token, Backend, TestServer};

mod common;

#[tokio::test]
async fn native_clients_sync_offline_work_and_restart_from_their_file_store() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let dirs = fresh_dirs("native", 3);
    let alice = client(&server, "alice", 1, &dirs[0]);
    let bob = client(&server, "bob", 1, &dirs[1]);
    alice.set_online(true).await.unwrap();
    bob.set_online(true).await.unwrap();

    let conv = ConvId::new("native-room").unwrap();
    let id = alice.intent(group_of(&conv, &["bob"])).await.unwrap();
    accepted(&alice, id).await;
    let conv_doc = DocId::conv(&TenantId::new("acme").unwrap(), &conv);
    bob.open(conv_doc).await.unwrap();
    let bucket = today(&alice, &conv).await;
    alice.open(bucket.clone()).await.unwrap();
    bob.open(bucket.clone()).await.unwrap();

    // Bob has the conversation (catch-up arrived) before he goes offline.
    for _ in 0..500 {
        let known = bob
            .query({
                let c = conv.clone();
                move |e| e.conversation(&c).is_some()
            })
            .await
            .unwrap();
        if known {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Bob goes offline and writes; alice writes meanwhile.
    bob.set_online(false).await.unwrap();
    let mut bob_ids = Vec::new();
    for n in 0..3 {
        bob_ids.push(send(&bob, &conv, &format!("b{n}"), &format!("bob offline {n}")).await);
    }
    for id in &bob_ids {
        assert_eq!(
            bob.query({
                let id = *id;
                move |e| e.status(id)
            })
            .await
            .unwrap(),
            Some(IntentStatus::Pending)
        );
    }
    for n in 0..2 {
        let id = send(&alice, &conv, &format!("a{n}"), &format!("alice {n}")).await;
        accepted(&alice, id).await;
    }
    bob.set_online(true).await.unwrap();
    for id in bob_ids {
        assert_eq!(
            bob.settle(id, Duration::from_secs(20)).await.unwrap(),
            None,
            "bob's offline message accepted"
        );
    }
    let seen_by_alice = wait_for(&alice, &conv, 5).await;
    let seen_by_bob = wait_for(&bob, &conv, 5).await;
    assert_eq!(
        seen_by_alice, seen_by_bob,
        "same messages in the same (server) order"
    );

    // Bob's device restarts from its file store, offline: history is there.
    bob.set_online(false).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(bob);
    let bob_again = client(&server, "bob", 1, &dirs[1]);
    assert_eq!(bodies(&bob_again, &conv).await, seen_by_bob);
    for d in &dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[tokio::test]
async fn a_conversation_created_offline_gets_live_pushes_once_accepted() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let dirs = fresh_dirs("native-off", 2);
    let alice = client(&server, "alice", 2, &dirs[0]);
    let bob = client(&server, "bob", 2, &dirs[1]);
    // Alice creates a group and writes in it before she ever connects.
    let conv = ConvId::new("made-offline").unwrap();
    let created = alice.intent(group_of(&conv, &["bob"])).await.unwrap();
    let first = send(&alice, &conv, "a1", "written offline").await;
    alice.set_online(true).await.unwrap();
    for id in [created, first] {
        accepted(&alice, id).await;
    }
    // Bob joins in and writes; alice gets it live, with no reconnect in between.
    bob.set_online(true).await.unwrap();
    bob.open(DocId::conv(&TenantId::new("acme").unwrap(), &conv))
        .await
        .unwrap();
    let bucket = today(&alice, &conv).await;
    bob.open(bucket).await.unwrap();
    assert_eq!(wait_for(&bob, &conv, 1).await, vec!["written offline"]);
    let reply = send(&bob, &conv, "b1", "live to alice").await;
    accepted(&bob, reply).await;
    assert_eq!(
        wait_for(&alice, &conv, 2).await,
        vec!["written offline", "live to alice"]
    );
    for d in &dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[tokio::test]
async fn a_client_that_missed_many_messages_catches_up_from_a_snapshot_in_server_order() {
    use confab_core::doc::write;
    use confab_e2e::client::Answer;
    use confab_e2e::{Client, Device};
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let dir = fresh_dirs("native-snap", 1).remove(0);
    let tenant = TenantId::new("acme").unwrap();
    let bob = client(&server, "bob", 3, &dir);
    bob.set_online(true).await.unwrap();
    let conv = ConvId::new("busy").unwrap();
    let created = bob
        .intent(group_of(&conv, &["alice", "carol"]))
        .await
        .unwrap();
    accepted(&bob, created).await;
    let now = now_ms();
    let bucket = DocId::msgs(&tenant, &conv, now.div_euclid(86_400_000));
    bob.open(bucket.clone()).await.unwrap();
    let first = send(&bob, &conv, "b0", "before").await;
    accepted(&bob, first).await;
    bob.set_online(false).await.unwrap();

    // 600 messages from two writers while bob is away, created_at running backwards: only
    // the seqs (the snapshot's order) give the server order.
    let mut acked: Vec<(u64, String)> = Vec::new();
    for (w, name) in ["alice", "carol"].into_iter().enumerate() {
        let mut c = Client::connect(&server.ws_url(), &token("acme", name, false, 3600))
            .await
            .unwrap();
        let mut device = Device::new(name, 1);
        let mut changes = Vec::new();
        let mut ids = Vec::new();
        for n in 0..300 {
            let id = format!("{name}{n:03}");
            let at = now - (w as i64 * 300 + n) - 1;
            let at = at.max(now.div_euclid(86_400_000) * 86_400_000);
            let m = NewMessage::text(
                MessageId::new(id.clone()).unwrap(),
                AccountId::new(name).unwrap(),
                format!("{name} {n}"),
                at,
            );
            changes.push(
                device
                    .write(&bucket, |d, t| write::post_message(d, t, &m))
                    .unwrap(),
            );
            ids.push(id);
        }
        for (answer, id) in c
            .submit(&bucket, &changes)
            .await
            .unwrap()
            .into_iter()
            .zip(ids)
        {
            match answer {
                Answer::Ack { seq, .. } => acked.push((seq, id)),
                other => panic!("{other:?}"),
            }
        }
        c.close().await;
    }
    acked.sort();
    // What bob's cursor (seq 1) gets: the saved document, with the seqs of all it missed.
    let mut probe = Client::connect(&server.ws_url(), &token("acme", "bob", false, 3600))
        .await
        .unwrap();
    let catch_up = probe.subscribe(&bucket, 1).await.unwrap();
    assert!(catch_up.snapshot.is_some() && catch_up.changes.is_empty());
    let order = catch_up.order.expect("a snapshot with its order");
    assert_eq!((order.from, order.entries().len()), (2, 600));
    probe.close().await;
    let mut expected = vec!["b0".to_owned()];
    expected.extend(acked.into_iter().map(|(_, id)| id));

    let ids = |c: &NativeClient, conv: &ConvId| {
        let conv = conv.clone();
        let c = c.clone();
        async move {
            c.query(move |e| {
                e.timeline(&conv)
                    .into_iter()
                    .map(|i| (i.message.id.to_string(), i.pending || i.seq.is_none()))
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap()
        }
    };
    bob.set_online(true).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..500 {
        got = ids(&bob, &conv).await;
        if got.len() == expected.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let order: Vec<String> = got.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(order, expected, "server order after the snapshot catch-up");
    assert!(
        got.iter().all(|(_, unsure)| !unsure),
        "every message accepted, with its seq"
    );

    // And it is what the file store holds.
    bob.set_online(false).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(bob);
    let again = client(&server, "bob", 3, &dir);
    assert_eq!(ids(&again, &conv).await, got);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_native_client_asks_the_read_times_rest_shows() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let dirs = fresh_dirs("native-reads", 3);
    let alice = client(&server, "alice", 3, &dirs[0]);
    let bob = client(&server, "bob", 3, &dirs[1]);
    let carol = client(&server, "carol", 3, &dirs[2]);
    let conv = ConvId::new("read-times").unwrap();

    // Offline: the server is not asked, and the request says why.
    let offline = alice.read_times(&conv).await.unwrap_err();
    assert!(
        matches!(&offline, confab_client::Error::Failed { code, .. } if code == "offline"),
        "{offline}"
    );

    for c in [&alice, &bob, &carol] {
        c.set_online(true).await.unwrap();
    }
    let created = alice.intent(group_of(&conv, &["bob"])).await.unwrap();
    let first = send(&alice, &conv, "r1", "read me").await;
    for id in [created, first] {
        accepted(&alice, id).await;
    }
    assert_eq!(alice.read_times(&conv).await.unwrap(), vec![]);
    let before = now_ms();
    let read = bob
        .intent(confab_core::client::Intent::MarkRead {
            conv: conv.clone(),
            message: MessageId::new("r1").unwrap(),
        })
        .await
        .unwrap();
    accepted(&bob, read).await;

    // Alice asks; the time is the stored one REST answers.
    let reads = alice.read_times(&conv).await.unwrap();
    assert_eq!(reads.len(), 1, "{reads:?}");
    assert_eq!(
        (reads[0].account.as_str(), reads[0].message.as_str()),
        ("bob", "r1")
    );
    let at = reads[0].at.expect("a stored time");
    assert!((before - 1000..=now_ms() + 1000).contains(&at), "{at}");
    let view = common::http(
        &server,
        "GET",
        "/v1/conversations/read-times",
        "alice",
        None,
    )
    .await;
    assert_eq!(view.status, 200, "{}", view.body);
    let view: serde_json::Value = serde_json::from_str(&view.body).unwrap();
    let bob_view = view["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == "bob")
        .unwrap();
    let rest_at = bob_view["last_read_at"].as_str().expect("REST's time");
    let rest_at = confab_core::model::time::parse_rfc3339("last_read_at", rest_at).unwrap();
    assert_eq!(rest_at, at, "one time, whoever asks");
    assert_eq!(bob.read_times(&conv).await.unwrap(), reads);

    // Someone who may not read the conversation gets its refusal, not its markers.
    let refused = carol.read_times(&conv).await.unwrap_err();
    assert!(
        matches!(&refused, confab_client::Error::Failed { code, .. } if code == "forbidden"),
        "{refused}"
    );
    for d in &dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}
