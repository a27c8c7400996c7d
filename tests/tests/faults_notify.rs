//! The notification feed through a database outage (docs/NOTIFICATIONS.md, "When and at
//! what cost"): a mention committed just before Postgres goes down is stored in the feed
//! and pushed to the webhook once, after the database is back, without a restart of the
//! server. Real processes: the server binary, a private Postgres cluster the test stops
//! (`pg_ctl stop -m immediate`) and starts again, a webhook receiver on 127.0.0.1.
//!
//! To stop Postgres at the moment that matters (after the message's commit, during the
//! notifier's write), the test holds an exclusive lock on `notifications`: the notifier's
//! insert waits on it, and the stop ends that insert's backend. (An immediate stop: a fast
//! one ends the lock's holder first, and the waiting insert may commit before its own
//! backend is told to quit.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use confab_e2e::pg_cluster::PgCluster;
use confab_e2e::push_receiver::Receiver;
use confab_e2e::TestServer;
use sqlx::{Connection, PgConnection};

/// Longer than the 5 × 1 s the notifier used to retry a write before it gave up.
const OUTAGE: Duration = Duration::from_secs(8);

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_mention_committed_before_an_outage_notifies_after_it() {
    let cluster = Arc::new(
        tokio::task::spawn_blocking(PgCluster::start)
            .await
            .unwrap()
            .expect(
                "a private Postgres cluster (initdb on its own port) is needed: run as root \
                 with the PostgreSQL server installed (apt-get install postgresql)",
            ),
    );
    let receiver = Receiver::start().await.unwrap();
    let data = std::env::temp_dir().join(format!("confab-faults-notify-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let hook = [
        "--webhook-url",
        receiver.url.as_str(),
        "--webhook-secret",
        "outage-secret",
        "--webhook-backoff-ms",
        "100",
    ];
    let server = TestServer::start_on(Some(cluster.url()), data, &hook)
        .await
        .unwrap();
    let created = http(
        &server,
        "POST",
        "/v1/conversations",
        "alice",
        Some(r#"{"kind":"group","id":"outage","title":"outage","members":[{"account":"bob"}]}"#),
    )
    .await;
    assert!(matches!(created.status, 200 | 201), "{created:?}");

    // The notifier's write will wait on this lock.
    let mut locker = PgConnection::connect(&cluster.url()).await.unwrap();
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query("LOCK TABLE notifications IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap();
    let posted = http(
        &server,
        "POST",
        "/v1/conversations/outage/messages",
        "alice",
        Some(r#"{"id":"m-before-outage","body":"hi @bob","mentions":["bob"]}"#),
    )
    .await;
    assert!(matches!(posted.status, 200 | 201), "{posted:?}");
    let mut watcher = PgConnection::connect(&cluster.url()).await.unwrap();
    let waiting = Instant::now();
    loop {
        let blocked: Option<(i32,)> = sqlx::query_as(
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
             AND query ILIKE 'INSERT INTO notifications%'",
        )
        .fetch_optional(&mut watcher)
        .await
        .unwrap();
        if blocked.is_some() {
            break;
        }
        assert!(
            waiting.elapsed() < Duration::from_secs(10),
            "the notifier's insert never waited on the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(watcher);

    // Postgres goes down with the notifier's write in flight, and stays down.
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.stop_immediate())
        .await
        .unwrap()
        .unwrap();
    drop(locker);
    tokio::time::sleep(OUTAGE).await;
    assert!(
        receiver.pushed().is_empty(),
        "pushed while the database was down: {:?}",
        receiver.pushed()
    );
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.start_again())
        .await
        .unwrap()
        .unwrap();

    // Back: the notification is stored once and pushed, by the same server process.
    receiver
        .wait_for("bob", "m-before-outage", Duration::from_secs(30))
        .await
        .unwrap();
    let feed = http(&server, "GET", "/v1/notifications", "bob", None).await;
    assert_eq!(feed.status, 200, "{feed:?}");
    let feed: serde_json::Value = serde_json::from_str(&feed.body).unwrap();
    let items = feed["notifications"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let of_message: Vec<_> = items
        .iter()
        .filter(|n| n["message"] == "m-before-outage")
        .collect();
    assert_eq!(of_message.len(), 1, "bob's feed: {feed}");
    assert_eq!(of_message[0]["kind"], "mention");
    let metrics = http(&server, "GET", "/metrics", "alice", None).await.body;
    assert!(
        metric(&metrics, "confab_notifications_deferred_total") >= 1.0,
        "the batch was put off at least once:\n{metrics}"
    );
    assert_eq!(
        metric(&metrics, "confab_notifications_failed_total"),
        0.0,
        "nothing was given up"
    );
    // Pushed once (the receiver answered 200 the first time).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pushes = receiver
        .pushed()
        .into_iter()
        .filter(|(a, m)| a == "bob" && m == "m-before-outage")
        .count();
    assert_eq!(pushes, 1);
    drop(server);
}
