//! Support threads, through the real server binary on SQLite and
//! Postgres (docs/POLICY.md, "Support threads"): opened over REST with the resource title
//! and the client's and owner's names, messages stamped with the sender's role and name
//! (by REST and by a device) and a forged stamp refused, and the lead closed won with a
//! reason, shown in `GET /v1/conversations/{id}`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use confab_core::doc::write;
use confab_core::ids::{support_conv_id, DocId, LeadId, MessageId, ResourceId};
use confab_core::model::message::NewMessage;
use confab_core::model::support::{LeadOutcome, SenderRole, Stamp};
use confab_e2e::{now_ms, Backend, Device, TestServer};
use serde_json::{json, Value};

fn parse(a: &HttpAnswer, status: u16) -> Value {
    assert_eq!(a.status, status, "{}", a.body);
    serde_json::from_str(&a.body).expect("JSON")
}

async fn support(backend: Backend) {
    let server = TestServer::start(backend).await.unwrap();
    // Carol (the client) opens the thread with what the platform gives.
    let open = json!({"client": "carol", "resource": "flat-9", "owner": "alice",
        "resource_title": "Flat 9, Calle Sol", "client_name": "Carol C.", "owner_name": "Alice A."});
    let opened = parse(
        &http(
            &server,
            "POST",
            "/v1/conversations/support",
            "carol",
            Some(&open.to_string()),
        )
        .await,
        201,
    );
    assert_eq!(opened["title"], "Flat 9, Calle Sol");
    assert_eq!(opened["resource"]["client_name"], "Carol C.");
    assert_eq!(opened["resource"]["owner_name"], "Alice A.");
    let id = opened["id"].as_str().unwrap().to_owned();
    // Opening again with other names changes nothing (they are set).
    let again = json!({"client": "carol", "resource": "flat-9", "owner": "alice",
        "owner_name": "Mallory"});
    let again = parse(
        &http(
            &server,
            "POST",
            "/v1/conversations/support",
            "alice",
            Some(&again.to_string()),
        )
        .await,
        200,
    );
    assert_eq!(again["resource"]["owner_name"], "Alice A.");

    // REST posts are stamped with what the thread says about the caller.
    let path = format!("/v1/conversations/{id}/messages");
    for (who, body) in [("carol", "is it free?"), ("alice", "yes")] {
        let post = json!({"body": body});
        parse(
            &http(&server, "POST", &path, who, Some(&post.to_string())).await,
            201,
        );
    }

    // A device: the owner names the lead, and carol cannot post as the owner.
    let conv = support_conv_id(
        &tenant(),
        &acc("carol"),
        &ResourceId::new("flat-9").unwrap(),
    );
    let cd = DocId::conv(&tenant(), &conv);
    let mut alice = Device::new("alice", 1);
    let mut ca = connect(&server, "alice").await;
    let caught = ca.subscribe(&cd, 0).await.unwrap();
    alice.apply(&cd, &caught.changes).unwrap();
    let lead = alice
        .write(&cd, |d, t| {
            write::set_lead(d, t, now_ms(), &LeadId::new("lead-9").unwrap())
        })
        .unwrap();
    assert_acked(&ca.submit(&cd, &[lead]).await.unwrap());

    let mut carol = Device::new("carol", 1);
    let mut cc = connect(&server, "carol").await;
    let now = now_ms();
    let bucket = bucket_doc(&conv, now);
    let mut forged = NewMessage::text(
        MessageId::new("f1").unwrap(),
        acc("carol"),
        "the owner says ok",
        now,
    );
    forged.stamp = Stamp {
        sender_role: Some(SenderRole::Owner),
        sender_name: Some("Alice A.".into()),
        related_lead: None,
    };
    let forged = carol
        .write(&bucket, |d, t| write::post_message(d, t, &forged))
        .unwrap();
    match cc.submit(&bucket, &[forged]).await.unwrap().as_slice() {
        [confab_e2e::client::Answer::Reject { code, .. }] => assert_eq!(code, "sender_mismatch"),
        other => panic!("{other:?}"),
    }

    // The owner closes the lead won, with a reason.
    let close = alice
        .write(&cd, |d, t| {
            write::close_lead(
                d,
                t,
                now_ms(),
                &acc("alice"),
                LeadOutcome::ClosedWon,
                Some("lease signed"),
            )
        })
        .unwrap();
    assert_acked(&ca.submit(&cd, &[close]).await.unwrap());

    let view = parse(
        &http(
            &server,
            "GET",
            &format!("/v1/conversations/{id}"),
            "carol",
            None,
        )
        .await,
        200,
    );
    assert_eq!(view["lifecycle"], "closed");
    assert_eq!(view["resource"]["lead"], "lead-9");
    assert_eq!(view["resource"]["outcome"], "closed_won");
    assert_eq!(view["resource"]["closure_reason"], "lease signed");

    let page = parse(&http(&server, "GET", &path, "alice", None).await, 200);
    let stamps: Vec<(String, Value, Value)> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["body"].as_str().unwrap().to_owned(),
                m["sender_role"].clone(),
                m["sender_name"].clone(),
            )
        })
        .collect();
    assert_eq!(
        stamps,
        vec![
            ("yes".to_owned(), json!("owner"), json!("Alice A.")),
            ("is it free?".to_owned(), json!("client"), json!("Carol C.")),
        ]
    );
    for c in [ca, cc] {
        c.close().await;
    }
}

#[tokio::test]
async fn support_threads_are_named_stamped_and_closed_on_sqlite() {
    support(Backend::Sqlite).await;
}

#[tokio::test]
async fn support_threads_are_named_stamped_and_closed_on_postgres() {
    support(Backend::Postgres).await;
}
