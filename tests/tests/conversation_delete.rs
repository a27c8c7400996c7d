//! Conversation deletion by its owner removes its content, through the real server binary on
//! SQLite and Postgres (docs/POLICY.md, "Delete"; docs/STORAGE.md, "Cutting a part's
//! history"): after the owner deletes a group, no message body, caption or reaction of it is
//! in the store (SQLite's file and WAL, `pg_dump`), its parts are at a new generation that
//! holds tombstones only, both members' devices replace their copies, and another
//! conversation's content stays.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use confab_client::Client as NativeClient;
use confab_core::client::Intent;
use confab_core::ids::{ConvId, DocId, DocTarget, MessageId, TenantId};
use confab_core::model::conversation::Lifecycle;
use confab_core::model::message::NewMessage;
use confab_e2e::native_support::*;
use confab_e2e::store_probe::{cuts_noted, generation_of, store_holds};
use confab_e2e::{now_ms, Backend, TestServer};

const MARKER: &str = "deleted-conv-marker-3b9d";
const OTHER: &str = "other-conv-marker-77e1";

/// The messages `c` holds of `conv`: `(id, body, deleted)`.
async fn messages(c: &NativeClient, conv: &ConvId) -> Vec<(String, String, bool)> {
    let conv = conv.clone();
    c.query(move |e| {
        e.timeline(&conv)
            .into_iter()
            .map(|i| {
                let m = i.message;
                (m.id.to_string(), m.body, m.deleted_at.is_some())
            })
            .collect()
    })
    .await
    .unwrap()
}

async fn owner_deletes(backend: Backend) {
    let server = TestServer::start_with(backend, &["--cut-after-delete-secs", "0"])
        .await
        .unwrap();
    let dirs = fresh_dirs(&format!("convdel-{backend:?}"), 2);
    let alice = client(&server, "alice", 1, &dirs[0]);
    let bob = client(&server, "bob", 1, &dirs[1]);
    let tenant = TenantId::new("acme").unwrap();
    let conv = ConvId::new("doomed").unwrap();
    let other = ConvId::new("lasting").unwrap();
    for c in [&alice, &bob] {
        c.set_online(true).await.unwrap();
    }
    accepted(
        &alice,
        alice.intent(group_of(&conv, &["bob"])).await.unwrap(),
    )
    .await;
    accepted(
        &alice,
        alice.intent(group_of(&other, &["bob"])).await.unwrap(),
    )
    .await;
    let part = today(&alice, &conv).await;
    let DocTarget::Msgs(_, bucket) = part.target() else {
        unreachable!()
    };
    let bucket = *bucket;
    for c in [&alice, &bob] {
        c.open(DocId::conv(&tenant, &conv)).await.unwrap();
        c.open(part.clone()).await.unwrap();
    }
    let mut m = NewMessage::text(
        MessageId::new("a1").unwrap(),
        "alice".parse().unwrap(),
        format!("{MARKER}-alice"),
        now_ms(),
    );
    m.caption = Some(format!("{MARKER}-caption"));
    let sent = alice
        .intent(Intent::Send {
            conv: conv.clone(),
            message: m,
        })
        .await
        .unwrap();
    accepted(&alice, sent).await;
    wait_for(&bob, &conv, 1).await;
    accepted(
        &bob,
        send(&bob, &conv, "b1", &format!("{MARKER}-bob")).await,
    )
    .await;
    let react = Intent::React {
        conv: conv.clone(),
        message: MessageId::new("a1").unwrap(),
        bucket,
        emoji: format!("{MARKER}-emoji"),
        on: true,
    };
    accepted(&bob, bob.intent(react).await.unwrap()).await;
    accepted(&bob, send(&bob, &other, "o1", OTHER).await).await;
    wait_for(&alice, &conv, 2).await;
    assert!(
        store_holds(&server, MARKER).await,
        "the checks below can see it"
    );

    let delete = Intent::SetLifecycle {
        conv: conv.clone(),
        state: Lifecycle::Deleted,
    };
    accepted(&alice, alice.intent(delete).await.unwrap()).await;
    assert!(
        until(Duration::from_secs(30), || async {
            generation_of(&server, &part).await >= 1 && cuts_noted(&server).await == 0
        })
        .await,
        "the deleted conversation's part was cut"
    );
    assert!(
        !store_holds(&server, MARKER).await,
        "the store keeps content of the deleted conversation"
    );
    assert!(
        store_holds(&server, OTHER).await,
        "another conversation keeps its content"
    );

    // Both devices replace their copy: the messages stay as tombstones, without content.
    for (name, c) in [("alice", &alice), ("bob", &bob)] {
        let converged = until(Duration::from_secs(20), || async {
            generation_on(c, &part).await >= Some(1)
        })
        .await;
        assert!(converged, "{name} holds the new generation");
        let held = messages(c, &conv).await;
        assert!(
            held.iter()
                .all(|(_, body, deleted)| body.is_empty() && *deleted),
            "{name}: {held:?}"
        );
    }
    for c in [&alice, &bob] {
        c.set_online(false).await.unwrap();
    }
    drop((alice, bob));
    for dir in &dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[tokio::test]
async fn an_owner_deleting_a_conversation_removes_its_content_on_sqlite() {
    owner_deletes(Backend::Sqlite).await;
}

#[tokio::test]
async fn an_owner_deleting_a_conversation_removes_its_content_on_postgres() {
    owner_deletes(Backend::Postgres).await;
}
