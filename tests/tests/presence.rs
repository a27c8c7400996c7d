//! Presence through the real server over WebSockets (docs/PROTOCOL.md, Presence): a relayed
//! presence names the authenticated sender whatever the frame holds, and a person's last
//! connection closing yields an `offline` presence to the conversation's other subscribers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use confab_core::protocol::{ClientFrame, ServerFrame, SignalKind};
use confab_e2e::client::WAIT;
use confab_e2e::{Backend, Client, Device, TestServer};

/// The next presence signal `c` receives on `doc`: (from, data).
async fn next_presence(
    c: &mut Client,
    doc: &str,
    wait: Duration,
) -> anyhow::Result<(String, String)> {
    c.wait_for(wait, |f| match f {
        ServerFrame::Signal {
            doc: d,
            from,
            kind: SignalKind::Presence,
            data,
        } if d == doc => Some((from.clone(), data.clone().unwrap_or_default())),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_names_the_sender_and_a_last_closed_connection_goes_offline() {
    let server = TestServer::start_with(Backend::Sqlite, &[]).await.unwrap();
    let mut alice = Device::new("alice", 1);
    let mut ca = connect(&server, "alice").await;
    let (conv, create) = create_group(&mut alice, "presence", &["bob", "eve"]);
    assert_acked(&ca.submit(&conv, &[create]).await.unwrap());
    let doc = conv.to_string();
    ca.subscribe(&conv, 0).await.unwrap();
    let mut bob1 = connect(&server, "bob").await;
    bob1.subscribe(&conv, 0).await.unwrap();
    let mut bob2 = connect(&server, "bob").await;
    bob2.subscribe(&conv, 0).await.unwrap();
    let mut eve = connect(&server, "eve").await;
    eve.subscribe(&conv, 0).await.unwrap();

    // A frame that claims to come from someone else: relayed as eve's.
    let forged = serde_json::json!({
        "t": "signal", "doc": doc, "kind": "presence", "data": "online", "from": "mallory",
    });
    let mut bytes = Vec::new();
    ciborium::ser::into_writer(&forged, &mut bytes).unwrap();
    eve.send_bytes(bytes).await.unwrap();
    assert_eq!(
        next_presence(&mut ca, &doc, WAIT).await.unwrap(),
        ("eve".into(), "online".into())
    );

    // One of bob's two connections closes: bob is still here, nobody hears otherwise.
    bob1.close().await;
    let heard = next_presence(&mut ca, &doc, Duration::from_millis(1500)).await;
    assert!(heard.is_err(), "bob has another connection: {heard:?}");

    // Eve's only connection closes: offline, from eve, to the others.
    eve.close().await;
    assert_eq!(
        next_presence(&mut ca, &doc, WAIT).await.unwrap(),
        ("eve".into(), "offline".into())
    );
    assert_eq!(
        next_presence(&mut bob2, &doc, WAIT).await.unwrap(),
        ("eve".into(), "online".into())
    );
    assert_eq!(
        next_presence(&mut bob2, &doc, WAIT).await.unwrap(),
        ("eve".into(), "offline".into())
    );

    // Bob's last connection closes.
    bob2.close().await;
    assert_eq!(
        next_presence(&mut ca, &doc, WAIT).await.unwrap(),
        ("bob".into(), "offline".into())
    );
}

/// A client that subscribes after the others said they are here hears their last state at
/// once (not after their next refresh, a minute or more later), never its own, and nothing
/// of someone who has gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_subscriber_hears_who_is_already_here() {
    let server = TestServer::start_with(Backend::Sqlite, &[]).await.unwrap();
    let mut alice = Device::new("alice", 1);
    let mut ca = connect(&server, "alice").await;
    let (conv, create) = create_group(&mut alice, "late", &["bob", "eve"]);
    assert_acked(&ca.submit(&conv, &[create]).await.unwrap());
    let doc = conv.to_string();
    ca.subscribe(&conv, 0).await.unwrap();
    let mut eve = connect(&server, "eve").await;
    eve.subscribe(&conv, 0).await.unwrap();
    ca.send(&ClientFrame::Signal {
        doc: doc.clone(),
        kind: SignalKind::Presence,
        data: Some("away".into()),
    })
    .await
    .unwrap();
    eve.send(&ClientFrame::Signal {
        doc: doc.clone(),
        kind: SignalKind::Presence,
        data: Some("online".into()),
    })
    .await
    .unwrap();
    assert_eq!(
        next_presence(&mut eve, &doc, WAIT).await.unwrap(),
        ("alice".into(), "away".into())
    );
    assert_eq!(
        next_presence(&mut ca, &doc, WAIT).await.unwrap(),
        ("eve".into(), "online".into())
    );
    // Eve leaves: her offline goes out and she is not in the next snapshot.
    eve.close().await;
    assert_eq!(
        next_presence(&mut ca, &doc, WAIT).await.unwrap(),
        ("eve".into(), "offline".into())
    );

    let mut bob = connect(&server, "bob").await;
    bob.subscribe(&conv, 0).await.unwrap();
    assert_eq!(
        next_presence(&mut bob, &doc, WAIT).await.unwrap(),
        ("alice".into(), "away".into())
    );
    let more = next_presence(&mut bob, &doc, Duration::from_millis(1000)).await;
    assert!(more.is_err(), "only alice is here: {more:?}");
}
