//! Rejected work cannot starve accepted work: a non-member floods a conversation with
//! well-formed changes (all rejected) and garbage, while a member keeps posting. Every member
//! message is acked, and before the flood's last answer (the unit takes turns between
//! connections, so the member's change does not wait behind 10,000 others); nothing of the
//! flood is acked; the flooder is told `rate_limited` with `retry_after_ms` once its budget
//! is spent; the server stays responsive. The timing target is a benchmark
//! (`cargo xtask bench flood`), not asserted here beyond hang bounds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use confab_core::ids::ConvId;
use confab_core::protocol::{
    decode_server, encode_client, ClientFrame, ServerFrame, PROTOCOL_VERSION,
};
use confab_e2e::client::WAIT;
use confab_e2e::{now_ms, token, Backend, Device, TestServer};
use futures_util::{SinkExt, StreamExt};
use serde_bytes::ByteBuf;
use tokio_tungstenite::tungstenite::Message;

const FLOOD_FRAMES: usize = 10;
const FLOOD_CHANGES: usize = 1000;
const GARBAGE_FRAMES: usize = 200;

/// What the flooder got back, and when its last answer came.
#[derive(Debug, Default)]
struct FloodAnswers {
    rejected: usize,
    /// Reject codes with their counts.
    codes: std::collections::BTreeMap<String, usize>,
    rate_limited: usize,
    acked: usize,
    other: Vec<String>,
    last: Option<Instant>,
}

async fn a_non_member_flood_does_not_hold_up_a_member(backend: Backend) {
    let server = TestServer::start(backend).await.unwrap();
    let (mut alice, mut eve) = (Device::new("alice", 1), Device::new("eve", 1));
    let mut ca = connect(&server, "alice").await;
    let (conv_doc, create) = create_group(&mut alice, "flooded", &["bob"]);
    assert_acked(&ca.submit(&conv_doc, &[create]).await.unwrap());
    let conv = ConvId::new("flooded").unwrap();
    let at = now_ms();
    let bucket = bucket_doc(&conv, at);

    // Eve's flood: 1,000 well-formed messages on the same bucket, sent ten times over, then
    // garbage. Written before the clock starts.
    let flood: Vec<ByteBuf> = (0..FLOOD_CHANGES)
        .map(|i| {
            ByteBuf::from(
                message(&mut eve, &conv, &format!("e{i:05}"), "flood", at)
                    .1
                    .raw_bytes()
                    .to_vec(),
            )
        })
        .collect();
    let (ws, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap();
    let (mut sink, mut stream) = ws.split();
    let hello = ClientFrame::Hello {
        v: PROTOCOL_VERSION,
        token: token(TENANT, "eve", false, 3600),
        device: "flood".into(),
    };
    sink.send(Message::Binary(encode_client(&hello).into()))
        .await
        .unwrap();
    match tokio::time::timeout(WAIT, stream.next()).await {
        Ok(Some(Ok(Message::Binary(b)))) => assert!(matches!(
            decode_server(&b, usize::MAX).unwrap(),
            ServerFrame::Welcome { .. }
        )),
        other => panic!("no welcome: {other:?}"),
    }

    let total = FLOOD_FRAMES * FLOOD_CHANGES + GARBAGE_FRAMES;
    let bucket_text = bucket.to_string();
    let reader = tokio::spawn(async move {
        let mut answers = FloodAnswers::default();
        let mut answered = 0;
        while answered < total {
            let frame = match tokio::time::timeout(WAIT, stream.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) => decode_server(&b, usize::MAX).unwrap(),
                Ok(Some(Ok(_))) => continue,
                other => panic!("the flooder's connection after {answered}: {other:?}"),
            };
            match frame {
                ServerFrame::Reject { code, .. } => {
                    *answers.codes.entry(code).or_default() += 1;
                    answers.rejected += 1;
                    answered += 1;
                }
                ServerFrame::Ack { .. } => {
                    answers.acked += 1;
                    answered += 1;
                }
                ServerFrame::Error {
                    code,
                    doc,
                    hash,
                    retry_after_ms,
                    fatal,
                    ..
                } if code == "rate_limited" => {
                    assert!(!fatal);
                    assert_eq!(doc.as_deref(), Some(bucket_text.as_str()));
                    assert!(retry_after_ms.is_some_and(|ms| ms > 0), "retry_after_ms");
                    // A frame refused before decoding answers for all its changes.
                    let n = if hash.is_some() {
                        1
                    } else if answered < FLOOD_FRAMES * FLOOD_CHANGES {
                        FLOOD_CHANGES
                    } else {
                        1
                    };
                    answers.rate_limited += n;
                    answered += n;
                }
                other => {
                    answers.other.push(format!("{other:?}"));
                    answered += 1;
                }
            }
            answers.last = Some(Instant::now());
        }
        (answers, stream)
    });
    for _ in 0..FLOOD_FRAMES {
        let frame = ClientFrame::Submit {
            doc: bucket.to_string(),
            changes: flood.clone(),
        };
        sink.send(Message::Binary(encode_client(&frame).into()))
            .await
            .unwrap();
    }
    for i in 0..GARBAGE_FRAMES {
        let frame = ClientFrame::Submit {
            doc: bucket.to_string(),
            changes: vec![ByteBuf::from(vec![
                0x85,
                0x6f,
                0x4a,
                (i % 256) as u8,
                7,
                7,
                7,
            ])],
        };
        sink.send(Message::Binary(encode_client(&frame).into()))
            .await
            .unwrap();
    }

    // Alice posts behind the whole flood, one message at a time: each is acked.
    let mut member_acked = Vec::new();
    for i in 0..5 {
        let (_, m) = message(&mut alice, &conv, &format!("a{i}"), "still here", at + i);
        let answers = tokio::time::timeout(Duration::from_secs(30), ca.submit(&bucket, &[m]))
            .await
            .expect("the member's ack within 30 s")
            .unwrap();
        assert_acked(&answers);
        member_acked.push(Instant::now());
    }
    // Another connection is served meanwhile.
    let mut bob = connect(&server, "bob").await;
    bob.send(&ClientFrame::Ping { nonce: 9 }).await.unwrap();
    assert!(matches!(
        bob.recv(Duration::from_secs(10)).await.unwrap(),
        ServerFrame::Pong { nonce: 9, .. }
    ));

    let (answers, mut stream) = tokio::time::timeout(Duration::from_secs(120), reader)
        .await
        .expect("every flood change answered within 120 s")
        .unwrap();
    eprintln!(
        "{backend:?}: flood of {total}: {} rejected, {} rate_limited, {} acked, {} other",
        answers.rejected,
        answers.rate_limited,
        answers.acked,
        answers.other.len()
    );
    assert_eq!(answers.acked, 0, "nothing of the flood is accepted");
    assert!(answers.other.is_empty(), "{:?}", answers.other);
    assert_eq!(answers.rejected + answers.rate_limited, total);
    // A non-member's changes to a bucket are refused for that, without validation (not
    // `missing_dependency` for the ones that depend on its refused changes); garbage does
    // not parse.
    assert!(
        answers
            .codes
            .keys()
            .all(|c| c == "not_member" || c == "malformed_change"),
        "{:?}",
        answers.codes
    );
    assert!(answers.codes.get("not_member").copied().unwrap_or(0) > 0);
    let last_flood = answers.last.unwrap();
    assert!(
        member_acked[0] < last_flood,
        "the member's first ack came after the flood's last answer"
    );

    // Once the flood is over, the member's log holds exactly its messages.
    let log = log_of(&server, "alice", &bucket).await;
    assert_eq!(log.len(), 5);
    assert_clean_log(&log);
    // The flood's rejections spent the flooder's budget (a rejection costs ten changes):
    // its next submit is refused before it is decoded, with when to come back.
    let frame = ClientFrame::Submit {
        doc: bucket.to_string(),
        changes: flood[..1].to_vec(),
    };
    sink.send(Message::Binary(encode_client(&frame).into()))
        .await
        .unwrap();
    match tokio::time::timeout(WAIT, stream.next()).await {
        Ok(Some(Ok(Message::Binary(b)))) => match decode_server(&b, usize::MAX).unwrap() {
            ServerFrame::Error {
                code,
                doc,
                retry_after_ms,
                fatal: false,
                hash: None,
                ..
            } => {
                assert_eq!(code, "rate_limited");
                assert_eq!(doc.as_deref(), Some(bucket.to_string().as_str()));
                assert!(retry_after_ms.is_some_and(|ms| ms > 0));
            }
            other => panic!("expected rate_limited, got {other:?}"),
        },
        other => panic!("the flooder's connection: {other:?}"),
    }
    // Everyone else is still served.
    bob.send(&ClientFrame::Ping { nonce: 10 }).await.unwrap();
    assert!(matches!(
        bob.recv(Duration::from_secs(10)).await.unwrap(),
        ServerFrame::Pong { nonce: 10, .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_member_flood_does_not_hold_up_a_member_on_sqlite() {
    a_non_member_flood_does_not_hold_up_a_member(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_member_flood_does_not_hold_up_a_member_on_postgres() {
    a_non_member_flood_does_not_hold_up_a_member(Backend::Postgres).await;
}
