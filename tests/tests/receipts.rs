//! Receipts and counts through the real server binary, on SQLite and Postgres (docs/SCHEMA.md,
//! "Projection: stats and views"): delivery markers written by their member only and shown in
//! `GET /v1/conversations/{id}`, view counts from read markers in the message page, and the
//! conversation's stats (messages, media, files, members) following posts and deletions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use confab_core::doc::write;
use confab_core::ids::{ConvId, MessageId};
use confab_core::model::conversation::{ConvKind, Role};
use confab_e2e::{now_ms, Backend, Device, TestServer};
use confab_testkit::fixture::ConvFixture;
use serde_json::{json, Value};

fn ok(a: &HttpAnswer) -> Value {
    assert_eq!(a.status, 200, "{}", a.body);
    serde_json::from_str(&a.body).expect("JSON")
}

/// `(id, views)` of a message page, newest first.
fn views_of(page: &Value) -> Vec<(String, Option<i64>)> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            let views = &x["views"];
            assert!(views.is_null() || views.is_i64(), "{views}");
            (x["id"].as_str().unwrap().to_owned(), views.as_i64())
        })
        .collect()
}

async fn receipts(backend: Backend) {
    let server = TestServer::start(backend).await.unwrap();
    let mut alice = Device::new("alice", 1);
    let mut bob = Device::new("bob", 1);
    let mut carol = Device::new("carol", 1);
    let mut ca = connect(&server, "alice").await;
    let mut cb = connect(&server, "bob").await;
    let mut cc = connect(&server, "carol").await;

    // Alice goes by a nickname in the group: the list names her by it.
    let (g, create) = ConvFixture::group(alice.account_id(), now_ms())
        .members([acc("bob"), acc("carol")], Role::Member)
        .title("rcpt1")
        .tweak(|s| s.members[0].nickname = Some("Al".into()))
        .write(&mut alice, &ConvId::new("rcpt1").unwrap())
        .unwrap();
    assert_acked(&ca.submit(&g, &[create]).await.unwrap());
    let conv = g.conv_id().unwrap().clone();
    let now = now_ms();
    let mut posts = Vec::new();
    for (i, id) in ["m1", "m2", "m3"].into_iter().enumerate() {
        let (bucket, change) = message(&mut alice, &conv, id, id, now + i as i64);
        assert_acked(&ca.submit(&bucket, &[change]).await.unwrap());
        posts.push(bucket);
    }
    // A file through REST: counted as a file.
    let file = json!({"id": "f1", "kind": "file", "attachments": [
        {"id": "a", "kind": "file", "url": "https://files.example/report.pdf"}]});
    let posted = http(
        &server,
        "POST",
        "/v1/conversations/rcpt1/messages",
        "alice",
        Some(&file.to_string()),
    )
    .await;
    assert_eq!(posted.status, 201, "{}", posted.body);

    // Bob and carol hold the conversation document (as given by the creation).
    for (dev, _) in [(&mut bob, ()), (&mut carol, ())] {
        dev.docs.insert(
            g.clone(),
            write::with_actor(alice.doc(&g).clone(), dev.actor.clone()),
        );
    }
    let m = |id: &str| MessageId::new(id).unwrap();
    // Bob's delivery marker: his own is accepted; carol's forgery of alice's is refused.
    let delivered = bob
        .write(&g, |d, t| {
            write::mark_delivered(d, t, now_ms(), &acc("bob"), &m("m3"))
        })
        .unwrap();
    assert_acked(&cb.submit(&g, &[delivered]).await.unwrap());
    let forged = carol
        .write(&g, |d, t| {
            write::mark_delivered(d, t, now_ms(), &acc("alice"), &m("m1"))
        })
        .unwrap();
    match cc.submit(&g, &[forged]).await.unwrap().as_slice() {
        [confab_e2e::client::Answer::Reject { code, .. }] => assert_eq!(code, "not_own_key"),
        other => panic!("{other:?}"),
    }
    // Read markers: bob up to m2, carol up to m3 (on a fresh replica: her refused change
    // is not in the document).
    let mut carol = Device::new("carol", 2);
    carol.docs.insert(
        g.clone(),
        write::with_actor(alice.doc(&g).clone(), carol.actor.clone()),
    );
    let before_reads = now_ms();
    let read_b = bob
        .write(&g, |d, t| {
            write::mark_read(d, t, now_ms(), &acc("bob"), &m("m2"))
        })
        .unwrap();
    assert_acked(&cb.submit(&g, &[read_b]).await.unwrap());
    let read_c = carol
        .write(&g, |d, t| {
            write::mark_read(d, t, now_ms(), &acc("carol"), &m("m3"))
        })
        .unwrap();
    let mut cc2 = connect(&server, "carol").await;
    assert_acked(&cc2.submit(&g, &[read_c]).await.unwrap());

    let view = ok(&http(&server, "GET", "/v1/conversations/rcpt1", "alice", None).await);
    let member = |who: &str| {
        view["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["user_id"] == who)
            .cloned()
            .unwrap()
    };
    assert_eq!(member("bob")["delivered_message_id"], "m3");
    assert_eq!(member("bob")["last_read_message_id"], "m2");
    assert_eq!(member("carol")["delivered_message_id"], Value::Null);
    assert_eq!(member("alice")["delivered_message_id"], Value::Null);
    assert_eq!(member("carol")["last_read_message_id"], "m3");
    // Each marker's time: when it moved, by the server's clock; none without a marker.
    let read_at = |m: &Value| {
        let at = m["last_read_at"].as_str().expect("a read time");
        confab_core::model::time::parse_rfc3339("last_read_at", at).unwrap()
    };
    let bob_read = read_at(&member("bob"));
    for at in [bob_read, read_at(&member("carol"))] {
        assert!(
            (before_reads - 1000..=now_ms() + 1000).contains(&at),
            "{at} is when the marker moved"
        );
    }
    assert_eq!(member("alice")["last_read_at"], Value::Null);
    // Bob reads on: his time moves with his marker.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let read_on = bob
        .write(&g, |d, t| {
            write::mark_read(d, t, now_ms(), &acc("bob"), &m("m3"))
        })
        .unwrap();
    assert_acked(&cb.submit(&g, &[read_on]).await.unwrap());
    let later = ok(&http(&server, "GET", "/v1/conversations/rcpt1", "bob", None).await);
    let bob_now = later["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["user_id"] == "bob")
        .unwrap();
    assert_eq!(bob_now["last_read_message_id"], "m3");
    assert!(
        read_at(bob_now) > bob_read,
        "the time moved with the marker"
    );

    let page = ok(&http(
        &server,
        "GET",
        "/v1/conversations/rcpt1/messages",
        "alice",
        None,
    )
    .await);
    assert_eq!(
        views_of(&page),
        // Views count channel posts only: a group's read markers write none, and its
        // messages answer `null` (not counted), not 0.
        [("f1", None), ("m3", None), ("m2", None), ("m1", None)]
            .map(|(id, n)| (id.to_owned(), n))
            .to_vec()
    );
    // The list's last message names its sender as the conversation does.
    let list = ok(&http(&server, "GET", "/v1/conversations", "bob", None).await);
    let last = &list["conversations"][0]["last_message"];
    assert_eq!(
        (&last["id"], &last["author"], &last["sender_name"]),
        (&json!("f1"), &json!("alice"), &json!("Al"))
    );

    // A channel counts views: bob's first marker counts the post it names.
    let (ch, create) = ConvFixture::new(ConvKind::Channel, alice.account_id(), now_ms())
        .member(acc("bob"), Role::Subscriber)
        .title("news")
        .write(&mut alice, &ConvId::new("rcpt-news").unwrap())
        .unwrap();
    assert_acked(&ca.submit(&ch, &[create]).await.unwrap());
    let news = ch.conv_id().unwrap().clone();
    for (i, id) in ["c1", "c2"].into_iter().enumerate() {
        let (bucket, change) = message(&mut alice, &news, id, id, now_ms() + i as i64);
        assert_acked(&ca.submit(&bucket, &[change]).await.unwrap());
    }
    bob.docs.insert(
        ch.clone(),
        write::with_actor(alice.doc(&ch).clone(), bob.actor.clone()),
    );
    let read = bob
        .write(&ch, |d, t| {
            write::mark_read(d, t, now_ms(), &acc("bob"), &m("c2"))
        })
        .unwrap();
    assert_acked(&cb.submit(&ch, &[read]).await.unwrap());
    let page = ok(&http(
        &server,
        "GET",
        "/v1/conversations/rcpt-news/messages",
        "bob",
        None,
    )
    .await);
    assert_eq!(
        views_of(&page),
        [("c2", Some(1)), ("c1", Some(0))]
            .map(|(id, n)| (id.to_owned(), n))
            .to_vec()
    );

    let stats = ok(&http(&server, "GET", "/v1/conversations/rcpt1/stats", "bob", None).await);
    assert_eq!(
        stats,
        json!({"message_count": 4, "media_count": 0, "file_count": 1, "participant_count": 3})
    );
    // A deletion leaves the counts; strangers read no stats.
    let del = alice
        .write(&posts[0], |d, t| {
            write::delete_message(
                d,
                t,
                now_ms(),
                &m("m1"),
                &confab_core::ids::AccountId::new("alice").expect("id"),
            )
        })
        .unwrap();
    assert_acked(&ca.submit(&posts[0], &[del]).await.unwrap());
    let stats = ok(&http(
        &server,
        "GET",
        "/v1/conversations/rcpt1/stats",
        "alice",
        None,
    )
    .await);
    assert_eq!(stats["message_count"], 3);
    let stranger = http(&server, "GET", "/v1/conversations/rcpt1/stats", "eve", None).await;
    assert_eq!(stranger.status, 403, "{}", stranger.body);
    for c in [ca, cb, cc, cc2] {
        c.close().await;
    }
}

#[tokio::test]
async fn receipts_views_and_stats_on_sqlite() {
    receipts(Backend::Sqlite).await;
}

#[tokio::test]
async fn receipts_views_and_stats_on_postgres() {
    receipts(Backend::Postgres).await;
}
