//! Bounded buckets through the real server, on SQLite and on Postgres: a part holds at most
//! `BUCKET_MAX_MESSAGES`, the next part opens only once the previous holds enough, new parts
//! are announced to the conversation's subscribers and listed (paged, newest first) for its
//! readers only, and a REST post moves on to the next part by itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use confab_core::doc::write;
use confab_core::ids::{Bucket, ConvId, DocId, MessageId};
use confab_core::limits::BUCKET_MAX_MESSAGES;
use confab_core::model::conversation::DEFAULT_BUCKET_MS;
use confab_core::model::message::NewMessage;
use confab_core::protocol::{ClientFrame, ServerFrame};
use confab_e2e::client::Answer;
use confab_e2e::{Backend, Client, Device, TestServer};

/// Lists parts through `client` and returns the answer.
async fn list(
    client: &mut Client,
    conv: &DocId,
    before: Option<Bucket>,
    limit: u32,
) -> ServerFrame {
    client
        .send(&ClientFrame::Buckets {
            doc: conv.to_string(),
            before,
            limit,
        })
        .await
        .unwrap();
    let wanted = conv.to_string();
    client
        .wait_for(Duration::from_secs(10), |f| match f {
            ServerFrame::Buckets { doc, .. } | ServerFrame::Error { doc: Some(doc), .. }
                if *doc == wanted =>
            {
                Some(f.clone())
            }
            _ => None,
        })
        .await
        .unwrap()
}

/// A text message written by `dev` into the bucket part `doc`.
fn message_in(dev: &mut Device, doc: &DocId, id: &str, at: i64) -> confab_core::automerge::Change {
    let m = NewMessage::text(MessageId::new(id).unwrap(), dev.account_id(), "moved", at);
    dev.write(doc, |d, t| write::post_message(d, t, &m))
        .unwrap()
}

fn code_of(answer: &Answer) -> &str {
    match answer {
        Answer::Ack { .. } => "ack",
        Answer::Reject { code, .. } | Answer::Error { code, .. } => code,
    }
}

async fn parts_of_a_busy_period(backend: Backend) {
    let mut server = TestServer::start(backend).await.unwrap();
    let (mut alice, mut early_device) = (Device::new("alice", 1), Device::new("alice", 3));
    let mut ca = connect(&server, "alice").await;
    let mut cb = connect(&server, "bob").await;
    let (conv_doc, create) = create_group(&mut alice, "busy", &["bob"]);
    assert_acked(&ca.submit(&conv_doc, &[create]).await.unwrap());
    let conv = ConvId::new("busy").unwrap();
    // Bob follows the conversation: he is told of new parts.
    cb.subscribe(&conv_doc, 0).await.unwrap();

    let at = base_time(60_000);
    let period = at.div_euclid(DEFAULT_BUCKET_MS);
    let part = |n| DocId::msgs(&tenant(), &conv, Bucket::new(period, n));

    // A post may not open part 1 while part 0 holds fewer than BUCKET_OPENS_NEXT_AT.
    let early = message_in(&mut early_device, &part(1), "early", at);
    let answers = ca.submit(&part(1), &[early]).await.unwrap();
    assert_eq!(code_of(&answers[0]), "bucket_not_open", "{answers:?}");

    // Part 0 fills up to BUCKET_MAX_MESSAGES; one more is refused bucket_full.
    let mut n = 0;
    while n < BUCKET_MAX_MESSAGES {
        let batch: Vec<_> = (n..(n + 500).min(BUCKET_MAX_MESSAGES))
            .map(|i| message(&mut alice, &conv, &format!("a{i}"), "x", at + i as i64).1)
            .collect();
        n += batch.len();
        assert_acked(&ca.submit(&part(0), &batch).await.unwrap());
    }
    let (_, over) = message(&mut alice, &conv, "over", "one too many", at);
    let answers = ca.submit(&part(0), &[over]).await.unwrap();
    assert_eq!(code_of(&answers[0]), "bucket_full", "{answers:?}");

    // The refused message goes to part 1 (a fresh replica: the refused change is gone).
    let mut moved = Device::new("alice", 2);
    let again = message_in(&mut moved, &part(1), "over", at);
    assert_acked(&ca.submit(&part(1), &[again]).await.unwrap());

    // Bob was told of each part as it got its first message, on the conversation document.
    let wanted = conv_doc.to_string();
    for expected in [Bucket::new(period, 0), Bucket::new(period, 1)] {
        let told = cb
            .wait_for(Duration::from_secs(10), |f| match f {
                ServerFrame::Bucket { doc, bucket } if *doc == wanted => Some(*bucket),
                _ => None,
            })
            .await
            .unwrap();
        assert_eq!(told, expected);
    }

    // Listed newest first, paged.
    let all = list(&mut cb, &conv_doc, None, 10).await;
    assert_eq!(
        all,
        ServerFrame::Buckets {
            doc: conv_doc.to_string(),
            buckets: vec![Bucket::new(period, 1), Bucket::new(period, 0)],
            more: false,
        }
    );
    let first_page = list(&mut cb, &conv_doc, None, 1).await;
    assert!(
        matches!(&first_page, ServerFrame::Buckets { buckets, more: true, .. } if buckets == &[Bucket::new(period, 1)]),
        "{first_page:?}"
    );
    let next_page = list(&mut cb, &conv_doc, Some(Bucket::new(period, 1)), 1).await;
    assert!(
        matches!(&next_page, ServerFrame::Buckets { buckets, more: false, .. } if buckets == &[Bucket::new(period, 0)]),
        "{next_page:?}"
    );

    // Only readers list: carol is no member.
    let mut cc = connect(&server, "carol").await;
    let refused = list(&mut cc, &conv_doc, None, 10).await;
    assert!(
        matches!(&refused, ServerFrame::Error { code, .. } if code == "forbidden"),
        "{refused:?}"
    );

    // A REST post lands in the newest part of the period, not in the full one.
    let posted = http(
        &server,
        "POST",
        "/v1/conversations/busy/messages",
        "alice",
        Some(r#"{"body":"through REST"}"#),
    )
    .await;
    assert_eq!(posted.status, 201, "{}", posted.body);
    let body: serde_json::Value = serde_json::from_str(&posted.body).unwrap();
    let doc = body["doc"].as_str().unwrap_or_default().to_owned();
    let today = now_period();
    if today == period {
        assert_eq!(doc, part(1).to_string(), "{body}");
    }

    // The index survives a restart (it is stored, not kept in memory).
    server.restart().await.unwrap();
    let mut cb = connect(&server, "bob").await;
    let after_restart = list(&mut cb, &conv_doc, None, 10).await;
    assert!(
        matches!(&after_restart, ServerFrame::Buckets { buckets, .. } if buckets.contains(&Bucket::new(period, 1)) && buckets.contains(&Bucket::new(period, 0))),
        "{after_restart:?}"
    );
}

fn now_period() -> i64 {
    confab_e2e::now_ms().div_euclid(DEFAULT_BUCKET_MS)
}

#[tokio::test]
async fn parts_of_a_busy_period_on_sqlite() {
    parts_of_a_busy_period(Backend::Sqlite).await;
}

#[tokio::test]
async fn parts_of_a_busy_period_on_postgres() {
    parts_of_a_busy_period(Backend::Postgres).await;
}
