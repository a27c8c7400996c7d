//! The native client (core engine + tokio WebSocket + file store) against the real server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use confab_core::automerge::ActorId;
use confab_core::client::{ClientConfig, Intent, IntentStatus};
use confab_core::ids::{AccountId, ConvId, DocId, MessageId, TenantId};
use confab_core::model::conversation::{ConvKind, Role};
use confab_core::model::message::NewMessage;
use confab_e2e::native::NativeClient;
use confab_e2e::{now_ms, token, Backend, TestServer};

fn client(server: &TestServer, account: &str, device: u8, dir: &std::path::Path) -> NativeClient {
    let mut actor = [device; 16];
    actor[..account.len().min(8)].copy_from_slice(&account.as_bytes()[..account.len().min(8)]);
    let config = ClientConfig {
        tenant: TenantId::new("acme").unwrap(),
        account: AccountId::new(account).unwrap(),
        actor: ActorId::from(&actor[..]),
    };
    NativeClient::start(
        config,
        server.ws_url(),
        token("acme", account, false, 3600),
        dir,
    )
    .unwrap()
}

async fn send(c: &NativeClient, conv: &ConvId, id: &str, body: &str) -> u64 {
    let me = c.query(|e| e.config().account.clone()).await.unwrap();
    let message = NewMessage::text(MessageId::new(id).unwrap(), me, body, now_ms());
    c.intent(Intent::Send {
        conv: conv.clone(),
        message,
    })
    .await
    .unwrap()
}

async fn bodies(c: &NativeClient, conv: &ConvId) -> Vec<String> {
    let conv = conv.clone();
    c.query(move |e| {
        e.timeline(&conv)
            .into_iter()
            .map(|i| i.message.body)
            .collect()
    })
    .await
    .unwrap()
}

async fn wait_for(c: &NativeClient, conv: &ConvId, n: usize) -> Vec<String> {
    for _ in 0..500 {
        let b = bodies(c, conv).await;
        if b.len() >= n {
            return b;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timeline never reached {n}: {:?}", bodies(c, conv).await);
}

#[tokio::test]
async fn native_clients_sync_offline_work_and_restart_from_their_file_store() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let dirs = (0..3)
        .map(|i| std::env::temp_dir().join(format!("confab-native-{}-{i}", std::process::id())))
        .collect::<Vec<_>>();
    for d in &dirs {
        let _ = std::fs::remove_dir_all(d);
    }
    let alice = client(&server, "alice", 1, &dirs[0]);
    let bob = client(&server, "bob", 1, &dirs[1]);
    alice.set_online(true).await.unwrap();
    bob.set_online(true).await.unwrap();

    let conv = ConvId::new("native-room").unwrap();
    let create = Intent::CreateConversation {
        conv: conv.clone(),
        kind: ConvKind::Group,
        title: Some("native".into()),
        members: vec![(AccountId::new("bob").unwrap(), Role::Member)],
        settings: None,
        parent: None,
    };
    let id = alice.intent(create).await.unwrap();
    assert_eq!(
        alice.settle(id, Duration::from_secs(20)).await.unwrap(),
        None
    );
    let conv_doc = DocId::conv(&TenantId::new("acme").unwrap(), &conv);
    bob.open(conv_doc).await.unwrap();
    let bucket = alice
        .query({
            let c = conv.clone();
            move |e| e.bucket_doc(&c, now_ms())
        })
        .await
        .unwrap();
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
        assert_eq!(
            alice.settle(id, Duration::from_secs(20)).await.unwrap(),
            None
        );
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

#[test]
fn the_file_store_passes_the_store_conformance_suite_and_survives_a_torn_write() {
    use confab_core::client::store::{block_on_ready, conformance};
    use confab_core::client::{LocalStore, StoreOp};
    use confab_e2e::file_store::FileStore;
    let dir = std::env::temp_dir().join(format!("confab-filestore-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = FileStore::open(&dir).unwrap();
    assert_eq!(block_on_ready(conformance(&store)), Some(Ok(())));
    block_on_ready(store.write(vec![StoreOp::Put("keep".into(), vec![1, 2, 3])]))
        .unwrap()
        .unwrap();
    drop(store);
    // A crash in the middle of appending a batch leaves a torn tail: it is dropped whole.
    let log = dir.join("store.log");
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend([0, 0, 0, 40, 1, 2, 3, 4, 9, 9]);
    std::fs::write(&log, &bytes).unwrap();
    let reopened = FileStore::open(&dir).unwrap();
    assert_eq!(
        block_on_ready(reopened.get("keep")).unwrap().unwrap(),
        Some(vec![1, 2, 3])
    );
    assert_eq!(
        block_on_ready(reopened.get("doc0")).unwrap().unwrap(),
        Some(vec![9])
    );
    block_on_ready(reopened.write(vec![StoreOp::Put("after".into(), vec![7])]))
        .unwrap()
        .unwrap();
    drop(reopened);
    let again = FileStore::open(&dir).unwrap();
    assert_eq!(
        block_on_ready(again.get("after")).unwrap().unwrap(),
        Some(vec![7])
    );
    let _ = std::fs::remove_dir_all(&dir);
}
