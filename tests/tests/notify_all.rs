//! The notification level `all` against the real server binary, on SQLite and Postgres,
//! with a push webhook receiver on 127.0.0.1 (docs/NOTIFICATIONS.md): every message of a
//! group notifies every active member except its author, unless muted (`muted_until` in
//! the future; a past one is no mute) or at a lower level (`mentions`, `none`); ten
//! messages make one coalesced entry with count 10 per member, and one webhook call
//! carries every recipient of a message and none of its text; with a queue of one event
//! and a slow receiver, concurrent senders get their answers at once and every member's
//! count still comes out whole.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use confab_core::automerge::ScalarValue;
use confab_core::doc::write;
use confab_core::ids::{ConvId, DocId};
use confab_e2e::push_receiver::Receiver;
use confab_e2e::{now_ms, Backend, Device, TestServer};
use serde_json::{json, Value};

const TEXT: &str = "the quarterly numbers";

/// Writes one per-conversation setting into `account`'s private document, as its device
/// does (one setting per account: each call is a fresh device).
async fn set_pref(
    server: &TestServer,
    account: &str,
    conv: &str,
    key: &'static str,
    v: ScalarValue,
) {
    let mut client = connect(server, account).await;
    let mut device = Device::new(account, 1);
    let doc = DocId::private(&tenant(), &acc(account));
    let conv = ConvId::new(conv).unwrap();
    let change = device
        .write(&doc, |d, tag| {
            write::set_conv_pref(d, tag, now_ms(), &conv, key, v)
        })
        .unwrap();
    let (code, _, _) = submit_one(&mut client, &doc, &change).await;
    assert_eq!(code, "ack", "{account}'s {key}");
}

async fn create(server: &TestServer, owner: &str, conv: &str, members: &[String]) {
    let members: Vec<Value> = members.iter().map(|m| json!({"account": m})).collect();
    let body = json!({"kind": "group", "id": conv, "title": conv, "members": members});
    let a = http(
        server,
        "POST",
        "/v1/conversations",
        owner,
        Some(&body.to_string()),
    )
    .await;
    assert!(matches!(a.status, 200 | 201), "{a:?}");
}

async fn post(server: &TestServer, author: &str, conv: &str, body: Value) -> Duration {
    let started = Instant::now();
    let path = format!("/v1/conversations/{conv}/messages");
    let a = http(server, "POST", &path, author, Some(&body.to_string())).await;
    assert!(matches!(a.status, 200 | 201), "{a:?}");
    started.elapsed()
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn hook_args(receiver: &Receiver) -> Vec<String> {
    [
        "--webhook-url",
        receiver.url.as_str(),
        "--webhook-secret",
        "all-secret",
        "--webhook-backoff-ms",
        "100",
    ]
    .map(String::from)
    .to_vec()
}

/// The count of the newest push (by notification id) each account got for `conv`
/// (bodies of type `messages`).
fn pushed_counts(receiver: &Receiver, conv: &str) -> BTreeMap<String, i64> {
    let mut newest: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for body in receiver.bodies() {
        if body["type"] != "messages" || body["conversation"] != conv {
            continue;
        }
        for r in body["recipients"].as_array().unwrap() {
            let id = r["notification"].as_i64().unwrap();
            let n = newest
                .entry(r["account"].as_str().unwrap().to_owned())
                .or_insert((0, 0));
            if id > n.0 {
                *n = (id, r["count"].as_i64().unwrap());
            }
        }
    }
    newest.into_iter().map(|(a, (_, n))| (a, n)).collect()
}

async fn levels_and_coalescing(backend: Backend) {
    let receiver = Receiver::start().await.unwrap();
    let args = hook_args(&receiver);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = TestServer::start_with(backend, &args).await.unwrap();
    let plain: Vec<String> = (0..20).map(|i| format!("m{i:02}")).collect();
    let quiet = ["mutedlater", "mentionsonly", "nonelevel"];
    let mut members = plain.clone();
    members.push("mutedbefore".into());
    members.extend(quiet.iter().map(|s| s.to_string()));
    members.push("gone".into());
    create(&server, "alice", "crowd", &members).await;
    let hour = 3_600_000;
    set_pref(
        &server,
        "mutedlater",
        "crowd",
        "muted_until",
        ScalarValue::Int(now_ms() + hour),
    )
    .await;
    set_pref(
        &server,
        "mutedbefore",
        "crowd",
        "muted_until",
        ScalarValue::Int(now_ms() - hour),
    )
    .await;
    set_pref(
        &server,
        "mentionsonly",
        "crowd",
        "notifications",
        ScalarValue::Str("mentions".into()),
    )
    .await;
    set_pref(
        &server,
        "nonelevel",
        "crowd",
        "notifications",
        ScalarValue::Str("none".into()),
    )
    .await;
    // A member who left is no longer told.
    let left = http(
        &server,
        "DELETE",
        "/v1/conversations/crowd/members/gone",
        "gone",
        None,
    )
    .await;
    assert!(matches!(left.status, 200 | 204), "{left:?}");

    for i in 0..10 {
        post(
            &server,
            "alice",
            "crowd",
            json!({"id": format!("c{i}"), "body": TEXT}),
        )
        .await;
    }
    let told: Vec<&str> = plain
        .iter()
        .map(String::as_str)
        .chain(["mutedbefore"])
        .collect();
    for account in &told {
        until_count(&server, account, "crowd", 10).await;
        assert_eq!(
            entries(&server, account, "crowd").await,
            [("c9".to_owned(), 10, false)],
            "{account}: one coalesced entry"
        );
    }
    for account in quiet.iter().chain(&["alice", "gone"]) {
        assert_eq!(
            feed(&server, account).await["notifications"],
            json!([]),
            "{account} is not told"
        );
    }
    // A lower level still hears what addresses it.
    post(
        &server,
        "alice",
        "crowd",
        json!({"id": "ask", "body": "?", "mentions": ["mentionsonly"]}),
    )
    .await;
    until_count(&server, "m00", "crowd", 11).await;
    let page = feed(&server, "mentionsonly").await;
    assert_eq!(page["notifications"][0]["kind"], "mention", "{page}");
    assert_eq!(page["notifications"].as_array().unwrap().len(), 1, "{page}");

    // Read, then new messages: the entry starts again from them.
    let marked = http(&server, "POST", "/v1/notifications/read", "m00", Some("{}")).await;
    assert_eq!(marked.status, 200, "{marked:?}");
    post(&server, "m01", "crowd", json!({"id": "r1", "body": TEXT})).await;
    post(&server, "m01", "crowd", json!({"id": "r2", "body": TEXT})).await;
    until_count(&server, "m00", "crowd", 2).await;
    assert_eq!(
        entries(&server, "m00", "crowd").await,
        [("r2".to_owned(), 2, false)]
    );
    until_count(&server, "m02", "crowd", 13).await;
    // Its own messages do not count for their author.
    assert_eq!(
        entries(&server, "m01", "crowd").await,
        [("ask".to_owned(), 11, false)]
    );

    // The webhook: every call of new messages carries many recipients and no text; each
    // recipient's newest push says how many.
    let deadline = Instant::now() + Duration::from_secs(30);
    while pushed_counts(&receiver, "crowd").get("m02") != Some(&13) {
        assert!(
            Instant::now() < deadline,
            "pushes: {:?}",
            pushed_counts(&receiver, "crowd")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bodies: Vec<Value> = receiver
        .bodies()
        .into_iter()
        .filter(|b| b["type"] == "messages")
        .collect();
    assert!(!bodies.is_empty());
    for body in &bodies {
        let text = body.to_string();
        assert!(!text.contains(TEXT), "no message text: {text}");
        for key in [
            "tenant",
            "conversation",
            "message",
            "from",
            "created_at",
            "since",
        ] {
            assert!(body[key].is_string(), "{key}: {text}");
        }
        let recipients: Vec<&str> = body["recipients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["account"].as_str().unwrap())
            .collect();
        assert!(recipients.len() >= 20, "one call, many recipients: {text}");
        for never in quiet.iter().chain(&["gone"]) {
            assert!(!recipients.contains(never), "{never}: {text}");
        }
    }
    // Fewer calls than messages times recipients: 13 messages to 21 members.
    assert!(bodies.len() <= 13, "{} calls", bodies.len());
    let counts = pushed_counts(&receiver, "crowd");
    assert_eq!(counts.get("mutedbefore"), Some(&13));
    assert_eq!(counts.get("m00"), Some(&2));
    drop(server);
}

#[tokio::test]
async fn level_all_on_sqlite() {
    levels_and_coalescing(Backend::Sqlite).await;
}

#[tokio::test]
async fn level_all_on_postgres() {
    levels_and_coalescing(Backend::Postgres).await;
}

/// A queue of one event and a receiver that takes a second per call: 16 senders post 10
/// messages each at once into a group of 40. Every post is answered promptly (a commit
/// never waits for the notifier), the messages that found the queue full are folded into
/// counts, not lost: every member ends up counting all 160 but its own, and the pushes
/// say so once the receiver caught up.
async fn a_full_queue_holds_no_sender(backend: Backend) {
    let receiver = Receiver::start().await.unwrap();
    receiver.slow_down(Duration::from_millis(1_000));
    let mut args = hook_args(&receiver);
    args.extend(["--notify-queue", "1"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = TestServer::start_with(backend, &args).await.unwrap();
    let members: Vec<String> = (0..40).map(|i| format!("p{i:02}")).collect();
    create(&server, "owner", "busy", &members).await;
    let senders: Vec<String> = members.iter().take(16).cloned().collect();
    let started = Instant::now();
    let tasks: Vec<_> = senders
        .iter()
        .map(|author| {
            let server = &server;
            let author = author.clone();
            async move {
                let mut slowest = Duration::ZERO;
                for i in 0..10 {
                    let body = json!({"id": format!("{author}-{i}"), "body": TEXT});
                    slowest = slowest.max(post(server, &author, "busy", body).await);
                }
                slowest
            }
        })
        .collect();
    let slowest = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .max()
        .unwrap();
    let all_sent = started.elapsed();
    assert!(
        slowest < Duration::from_secs(2),
        "a sender waited {slowest:?} for an answer"
    );
    // Everyone counts every message but its own: the 16 senders 150, the others 160.
    for (i, account) in members.iter().enumerate() {
        let want = if i < 16 { 150 } else { 160 };
        until_count(&server, account, "busy", want).await;
        let got = entries(&server, account, "busy").await;
        assert_eq!(got.len(), 1, "{account}: {got:?}");
        assert_eq!(got[0].1, want, "{account}");
    }
    let metrics = http(&server, "GET", "/metrics", "owner", None).await.body;
    let folded = metric(&metrics, "confab_notifications_folded_total");
    let dropped = metric(&metrics, "confab_notifications_dropped_total");
    eprintln!(
        "{backend:?}: 160 posts in {all_sent:?}, slowest answer {slowest:?}, folded {folded}"
    );
    assert_eq!(dropped, 0.0, "plain messages are folded, never dropped");
    assert!(folded > 0.0, "a queue of one overflowed under 16 senders");
    // The slow receiver gets fewer, fuller calls, and in the end every count.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let counts = pushed_counts(&receiver, "busy");
        if counts.get("p39") == Some(&160) && counts.get("p00") == Some(&150) {
            break;
        }
        assert!(Instant::now() < deadline, "pushed so far: {counts:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let calls = receiver.bodies().len();
    assert!(calls < 160, "{calls} calls for 160 messages");
    drop(server);
}

#[tokio::test]
async fn a_full_queue_holds_no_sender_on_sqlite() {
    a_full_queue_holds_no_sender(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_full_queue_holds_no_sender_on_postgres() {
    a_full_queue_holds_no_sender(Backend::Postgres).await;
}
