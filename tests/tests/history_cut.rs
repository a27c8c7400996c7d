//! Cutting a part's history through the real server binary, on SQLite and Postgres
//! (docs/STORAGE.md, "Cutting a part's history"): a message edited three times and then
//! deleted, with `--cut-after-delete-secs 0`. Once the cut ran, none of its bodies, its
//! caption, payload or attachment name is in the store (SQLite's file and WAL, `pg_dump`) or
//! in any file of either device's file store, an edited-away body of a message that stayed
//! is in neither while its newest body is in both, the online device
//! (alice) and the offline one (bob, with intents queued against the old generation) both end
//! on the new generation, and bob's queued message, reaction and edit end accepted. The
//! purge pass after the cut (`--purge-sweep-secs 1`) drops the old row versions by itself:
//! SQLite's file and WAL as the server left them hold none of the content, and on Postgres
//! the change log was vacuumed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use confab_client::{Client as NativeClient, FORGET_WITHIN};
use confab_core::client::Intent;
use confab_core::ids::{ConvId, DocId, DocTarget, MessageId, TenantId};
use confab_core::model::message::{MessageKind, NewMessage};
use confab_e2e::native_support::*;
use confab_e2e::store_probe::{generation_of, holds, pg_vacuumed, sqlite_files_hold, store_holds};
use confab_e2e::{now_ms, Backend, TestServer};

const MARKER: &str = "cut-e2e-marker-91c2";

/// A word of version `n` of the deleted message's body: one search term (letters and
/// digits), so the server's index holds it whole (docs/STORAGE.md, "Search index").
fn term(n: u32) -> String {
    format!("qzv{n}redacted")
}

/// Whether any file in `dir`, a device's file store, holds `marker`: the raw bytes, dead
/// records included.
fn device_holds(dir: &Path, marker: &str) -> bool {
    std::fs::read_dir(dir)
        .unwrap()
        .any(|f| holds(&std::fs::read(f.unwrap().path()).unwrap(), marker))
}

async fn intent(c: &NativeClient, intent: Intent) -> u64 {
    c.intent(intent).await.unwrap()
}

async fn cut_after_delete(backend: Backend) {
    let args = ["--cut-after-delete-secs", "0", "--purge-sweep-secs", "1"];
    let server = TestServer::start_with(backend, &args).await.unwrap();
    let dirs = fresh_dirs(&format!("cut-{backend:?}"), 2);
    let alice = client(&server, "alice", 1, &dirs[0]);
    let bob = client(&server, "bob", 1, &dirs[1]);
    alice.set_online(true).await.unwrap();
    bob.set_online(true).await.unwrap();
    let conv = ConvId::new("cut-room").unwrap();
    accepted(&alice, intent(&alice, group_of(&conv, &["bob"])).await).await;
    bob.open(DocId::conv(&TenantId::new("acme").unwrap(), &conv))
        .await
        .unwrap();
    let bucket = today(&alice, &conv).await;
    let DocTarget::Msgs(_, b) = bucket.target() else {
        unreachable!()
    };
    let b = *b;
    alice.open(bucket.clone()).await.unwrap();
    bob.open(bucket.clone()).await.unwrap();

    let gone = MessageId::new("gone").unwrap();
    let kept = MessageId::new("kept").unwrap();
    let mut m = NewMessage::text(
        gone.clone(),
        "alice".parse().unwrap(),
        format!("{MARKER}-0 {}", term(0)),
        now_ms(),
    );
    m.kind = MessageKind::File;
    m.caption = Some(format!("{MARKER}-caption"));
    m.payload = Some(format!(r#"{{"note":"{MARKER}-payload"}}"#));
    m.attachments = Some(format!(
        r#"[{{"id":"a","kind":"file","name":"{MARKER}-name.pdf","url":"https://files.example/a.pdf"}}]"#
    ));
    let sent = intent(
        &alice,
        Intent::Send {
            conv: conv.clone(),
            message: m,
        },
    )
    .await;
    accepted(&alice, sent).await;
    for n in 1..=3 {
        let edit = Intent::Edit {
            conv: conv.clone(),
            message: gone.clone(),
            bucket: b,
            body: format!("{MARKER}-{n} {}", term(n)),
        };
        accepted(&alice, intent(&alice, edit).await).await;
    }
    accepted(&alice, send(&alice, &conv, "kept", "kept-old-body").await).await;
    let edit = Intent::Edit {
        conv: conv.clone(),
        message: kept.clone(),
        bucket: b,
        body: "kept-newest-body".into(),
    };
    accepted(&alice, intent(&alice, edit).await).await;
    wait_for(&bob, &conv, 2).await;
    assert!(
        store_holds(&server, MARKER).await,
        "the history holds the marker before the cut: the checks below can find it"
    );
    assert!(
        store_holds(&server, &term(3)).await,
        "the store holds the last version's word before the cut"
    );
    for dir in &dirs {
        for marker in [MARKER, "kept-old-body", "kept-newest-body"] {
            assert!(
                device_holds(dir, marker),
                "the devices' files hold {marker}"
            );
        }
    }

    // Bob goes offline and queues a message and a reaction on the old generation.
    bob.set_online(false).await.unwrap();
    let queued = vec![
        send(&bob, &conv, "from-bob", "bob wrote offline").await,
        intent(
            &bob,
            Intent::React {
                conv: conv.clone(),
                message: kept.clone(),
                bucket: b,
                emoji: "👍".into(),
                on: true,
            },
        )
        .await,
    ];

    // Alice deletes: the cut follows within a pass of the schedule.
    let delete = Intent::Delete {
        conv: conv.clone(),
        message: gone.clone(),
        bucket: b,
    };
    accepted(&alice, intent(&alice, delete).await).await;
    for _ in 0..200 {
        if generation_of(&server, &bucket).await >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(generation_of(&server, &bucket).await, 1, "the part was cut");
    // The online device replaced its copy and writes on the new generation.
    for _ in 0..200 {
        if generation_on(&alice, &bucket).await == Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(generation_on(&alice, &bucket).await, Some(1));
    accepted(&alice, send(&alice, &conv, "after", "after the cut").await).await;

    // The offline device comes back: it loads the new generation and its queue is accepted.
    bob.set_online(true).await.unwrap();
    for id in queued {
        assert_eq!(
            bob.settle(id, Duration::from_secs(20)).await.unwrap(),
            None,
            "bob's queued intent ends accepted"
        );
    }
    assert_eq!(generation_on(&bob, &bucket).await, Some(1));
    let seen = wait_for(&bob, &conv, 4).await;
    assert!(seen.contains(&"kept-newest-body".to_string()), "{seen:?}");
    assert!(seen.contains(&"bob wrote offline".to_string()), "{seen:?}");
    assert!(!seen.iter().any(|s| s.contains(MARKER)), "{seen:?}");

    // The purge pass after the cut drops the old row versions by itself: SQLite's file
    // and WAL as the server left them (the search index's words of every version included:
    // the edits replaced them, the pass deletes the last one's), a VACUUM of the change log
    // on Postgres.
    let dropped = until(Duration::from_secs(10), || async {
        match backend {
            Backend::Sqlite => {
                !sqlite_files_hold(&server, MARKER)
                    && (0..=3).all(|n| !sqlite_files_hold(&server, &term(n)))
            }
            Backend::Postgres => pg_vacuumed(&server, "changes").await,
        }
    })
    .await;
    assert!(dropped, "no purge pass dropped the cut's old row versions");

    // Nothing of the deleted message is stored anywhere; the newest kept body is.
    assert!(
        !store_holds(&server, MARKER).await,
        "the store keeps the deleted content"
    );
    assert!(
        !store_holds(&server, "kept-old-body").await,
        "the store keeps an edited-away body"
    );
    for n in 0..=3 {
        assert!(
            !store_holds(&server, &term(n)).await,
            "the store keeps {} of the deleted message",
            term(n)
        );
    }
    bob.set_online(false).await.unwrap();
    alice.set_online(false).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop((alice, bob));
    for dir in &dirs {
        // Each store forgets within `FORGET_WITHIN` of the write, by itself.
        for marker in [MARKER, "kept-old-body"] {
            let gone = until(FORGET_WITHIN + Duration::from_secs(4), || async {
                !device_holds(dir, marker)
            })
            .await;
            assert!(gone, "a device's files keep {marker} in {}", dir.display());
        }
        assert!(
            device_holds(dir, "kept-newest-body"),
            "a device's files lost the newest body of a kept message"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[tokio::test]
async fn a_cut_removes_deleted_content_everywhere_on_sqlite() {
    cut_after_delete(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_cut_removes_deleted_content_everywhere_on_postgres() {
    cut_after_delete(Backend::Postgres).await;
}
