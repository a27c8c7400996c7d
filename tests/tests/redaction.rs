//! Delete for everyone through the real server binary, on SQLite and Postgres (docs/SCHEMA.md,
//! "Tombstones"): a message with a body, caption, payload, attachments and mentions is
//! deleted by its author; the REST page, the conversation list and a fresh device's catch-up
//! then show its tombstone only, and a forged or incomplete delete is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use confab_core::doc::{read, schema, write};
use confab_core::ids::{ConvId, MessageId};
use confab_core::model::message::{MessageKind, NewMessage};
use confab_e2e::client::Answer;
use confab_e2e::{now_ms, Backend, Device, TestServer};
use serde_json::Value;

const MARKER: &str = "redact-e2e-3b9d";

fn ok(a: &HttpAnswer) -> Value {
    assert_eq!(a.status, 200, "{}", a.body);
    serde_json::from_str(&a.body).expect("JSON")
}

async fn redaction(backend: Backend) {
    let server = TestServer::start(backend).await.unwrap();
    let mut alice = Device::new("alice", 1);
    let mut ca = connect(&server, "alice").await;
    let (g, create) = create_group(&mut alice, "red1", &["bob"]);
    assert_acked(&ca.submit(&g, &[create]).await.unwrap());
    let conv = ConvId::new("red1").unwrap();
    let at = now_ms();
    let id = MessageId::new("m1").unwrap();
    let mut m = NewMessage::text(id.clone(), acc("alice"), format!("body {MARKER}"), at);
    m.kind = MessageKind::File;
    m.caption = Some(format!("caption {MARKER}"));
    m.payload = Some(format!(r#"{{"note":"payload {MARKER}"}}"#));
    m.attachments = Some(format!(
        r#"[{{"id":"a","kind":"file","name":"{MARKER}.pdf","url":"https://files.example/{MARKER}.pdf"}}]"#
    ));
    m.mentions = Some(r#"["bob"]"#.into());
    let bucket = bucket_doc(&conv, at);
    let post = alice
        .write(&bucket, |d, t| write::post_message(d, t, &m))
        .unwrap();
    assert_acked(&ca.submit(&bucket, &[post]).await.unwrap());
    let page = |who: &'static str| {
        let server = &server;
        async move {
            let p = ok(&http(server, "GET", "/v1/conversations/red1/messages", who, None).await);
            p["messages"][0].clone()
        }
    };
    let before = page("bob").await;
    assert!(
        before["caption"].as_str().unwrap().contains(MARKER),
        "{before}"
    );

    // A delete in someone else's name, and one that keeps the caption: refused.
    let forged = alice.doc(&bucket).clone();
    let mut forger = Device::new("alice", 2);
    forger.docs.insert(
        bucket.clone(),
        write::with_actor(forged, forger.actor.clone()),
    );
    let change = forger
        .write(&bucket, |d, t| {
            write::delete_message(d, t, now_ms(), &id, &acc("bob"))
        })
        .unwrap();
    match ca.submit(&bucket, &[change]).await.unwrap().as_slice() {
        [Answer::Reject { code, .. }] => assert_eq!(code, "forged_tombstone"),
        other => panic!("{other:?}"),
    }

    let delete = alice
        .write(&bucket, |d, t| {
            write::delete_message(d, t, now_ms(), &id, &acc("alice"))
        })
        .unwrap();
    assert_acked(&ca.submit(&bucket, &[delete]).await.unwrap());

    // REST: the tombstone only.
    let after = page("bob").await;
    assert_eq!(after["deleted"], true, "{after}");
    assert_eq!(after["deleted_by"], "alice", "{after}");
    assert!(after["deleted_at"].is_string(), "{after}");
    assert_eq!(after["body"], "", "{after}");
    for field in ["caption", "payload", "reply_to", "edited_at", "status"] {
        assert!(after[field].is_null(), "{field}: {after}");
    }
    assert!(!after.to_string().contains(MARKER), "{after}");
    let list = ok(&http(&server, "GET", "/v1/conversations", "bob", None).await);
    assert!(!list.to_string().contains(MARKER), "{list}");

    // A fresh device of bob's catches up: the live document holds the tombstone only.
    let mut bob = Device::new("bob", 1);
    let mut cb = connect(&server, "bob").await;
    bob.sync(&mut cb, &bucket).await.unwrap();
    let mut keys = read::message_keys(bob.doc(&bucket), &id).expect("m1");
    keys.sort();
    let mut tombstone: Vec<String> = schema::TOMBSTONE_FIELDS
        .iter()
        .map(|k| k.to_string())
        .collect();
    tombstone.sort();
    assert_eq!(keys, tombstone);
    for c in [ca, cb] {
        c.close().await;
    }
}

#[tokio::test]
async fn a_deleted_message_is_its_tombstone_everywhere_on_sqlite() {
    redaction(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_deleted_message_is_its_tombstone_everywhere_on_postgres() {
    redaction(Backend::Postgres).await;
}
