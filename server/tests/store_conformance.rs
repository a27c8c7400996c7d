//! The store's conformance suite (`confab_server::store::conformance`), run against both
//! backends:
//!
//! - SQLite: a fresh file in a fresh temporary folder per test;
//! - Postgres: a fresh database per test on 127.0.0.1:5432 (user `postgres`, trust auth),
//!   with an ICU en-US default collation, dropped afterwards. If Postgres is not reachable
//!   the Postgres tests FAIL, saying how to start it: they never skip silently.
//!
//! `store_conformance!` makes every case a test here, `sqlite::<name>` and
//! `postgres::<name>`; the backend specifics follow.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use confab_server::store::conformance::*;
use confab_server::store::postgres::PgStore;
use confab_server::store::sqlite::SqliteStore;
use confab_server::store::{ChangeLog, NewGeneration, Projections, Store};
use confab_testkit::pg::{self, Template};
use sqlx::{Connection, Executor, PgConnection};

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique_name() -> String {
    format!(
        "confab_t_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `case` on a fresh SQLite file in a folder that does not exist yet (`open` creates
/// it), then removes the folder, also when the case panics (the panic is passed on).
async fn run_sqlite<F, Fut>(case: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = std::env::temp_dir().join(unique_name());
    let path = dir.join("data").join("confab.db");
    let store = SqliteStore::open(&path).await.expect("open SQLite store");
    store.migrate().await.expect("migrate");
    let second = move || {
        let path = path.clone();
        async move {
            let store = SqliteStore::open(&path)
                .await
                .expect("open a second SQLite store");
            Arc::new(store) as Arc<dyn Store>
        }
    };
    let outcome = tokio::spawn(case(Env::new(Arc::new(store), "sqlite", second))).await;
    let _ = std::fs::remove_dir_all(dir);
    pass_on(outcome);
}

/// Runs `case` on a fresh Postgres database, then drops it, also when the case panics.
async fn run_postgres<F, Fut>(case: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    // ICU: text ordering that relies on the collation shows up, as on production databases.
    let url = pg::fresh_database("confab_t", Template::Icu)
        .await
        .expect("a fresh Postgres database (the Postgres half of the conformance suite)");
    let store = PgStore::connect(&url)
        .await
        .expect("connect Postgres store");
    store.migrate().await.expect("migrate");
    let second_url = url.clone();
    let second = move || {
        let url = second_url.clone();
        async move {
            let store = PgStore::connect(&url)
                .await
                .expect("connect a second Postgres store");
            Arc::new(store) as Arc<dyn Store>
        }
    };
    let outcome = tokio::spawn(case(Env::new(Arc::new(store), "postgres", second))).await;
    pg::drop_database(&url).await.expect("drop test database");
    pass_on(outcome);
}

fn pass_on(outcome: Result<(), tokio::task::JoinError>) {
    if let Err(e) = outcome {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
        panic!("test task failed: {e}");
    }
}

mod sqlite {
    confab_server::store_conformance!(super::run_sqlite);
}

mod postgres {
    confab_server::store_conformance!(super::run_postgres);
}

// ---------------------------------------------------------------------------------------
// Backend specifics
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn sqlite_open_creates_folders_uses_wal_and_persists() {
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::SqliteConnection;

    let dir = std::env::temp_dir().join(unique_name());
    let path = dir.join("a").join("b").join("confab.db");
    let doc = conv_doc("acme", "kept");
    {
        let store = SqliteStore::open(&path).await.expect("open");
        store.migrate().await.expect("migrate");
        store
            .commit(&[change(&doc, 1, "alice"), change(&doc, 2, "alice")])
            .await
            .expect("commit");
        store.close().await;
    }
    assert!(path.exists());
    let mut conn = SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&path))
        .await
        .expect("plain connection");
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .expect("pragma");
    assert_eq!(mode, "wal");
    conn.close().await.expect("close");

    let reopened = SqliteStore::open(&path).await.expect("reopen");
    reopened.migrate().await.expect("migrate again");
    let loaded = reopened.load_doc(&doc).await.expect("load");
    assert_eq!(loaded.last_seq, 2);
    assert_eq!(seqs_of(&loaded.changes), vec![1, 2]);
    reopened.close().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn sqlite_memory_store() {
    let store = SqliteStore::memory().await.expect("memory");
    store.migrate().await.expect("migrate");
    let mut seqs = Seqs::default();
    store
        .commit(&[
            with(
                change(&conv_doc("acme", "m"), 1, "alice"),
                vec![
                    p_conv(conv_row("acme", "m", "group", None, 1)),
                    p_member("acme", "m", "alice", "owner", "active"),
                ],
            ),
            message_change(&mut seqs, "acme", "m", "x", "bob", 2, "hi"),
        ])
        .await
        .expect("commit");
    let list = store
        .conversations_of(&tenant("acme"), &account("alice"))
        .await
        .expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].unread, 1);
    assert_eq!(
        store
            .load_doc(&msgs_doc("acme", "m", 0))
            .await
            .expect("load")
            .last_seq,
        1
    );
}

// ---------------------------------------------------------------------------------------
// Postgres: the notifier's writes and a concurrent deletion (migration 0035)
// ---------------------------------------------------------------------------------------

/// A plain connection to the case's database.
async fn pg_raw(env: &Env) -> PgConnection {
    let options = env.store.cluster_options().expect("a Postgres store");
    PgConnection::connect_with(&options)
        .await
        .expect("plain connection")
}

/// `acme/room` (alice its owner, bob a member) and alice's message `racy`.
async fn racing_room(s: &dyn Store, seqs: &mut Seqs) {
    room(
        s,
        seqs,
        vec![p_member("acme", "room", "bob", "member", "active")],
    )
    .await;
    s.commit(&[message_change(
        seqs,
        "acme",
        "room",
        "racy",
        "alice",
        1001,
        "racy words",
    )])
    .await
    .expect("post");
}

/// Waits until a backend of this database waits for a lock of `locktype` (`advisory`, or
/// `transactionid` for a row another transaction holds). It only orders the steps: the
/// outcome is decided by the lock, whichever way the wait ends.
async fn until_waiting(conn: &mut PgConnection, locktype: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_locks WHERE locktype = $1 AND NOT granted \
             AND (database IS NULL \
               OR database = (SELECT oid FROM pg_database WHERE datname = current_database()))",
        )
        .bind(locktype)
        .fetch_one(&mut *conn)
        .await
        .expect("locks");
        if waiting > 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nobody waits for the lock"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

fn racy_mention() -> confab_server::store::notifications::NewNotification {
    use confab_server::store::notifications::{NewNotification, NotificationKind};
    NewNotification {
        tenant: tenant("acme"),
        account: account("bob"),
        kind: NotificationKind::Mention,
        conv: conv("room"),
        source: "racy".into(),
        message: Some(msg_id("racy")),
        actor: account("alice"),
        preview: "racy words".into(),
        created_at: 1001,
    }
}

/// The conversation's deletion is under way (its transaction marked the messages deleted
/// and holds the lock) when the notifier writes: the write waits, then stores nothing, nor
/// does a webhook delivery of the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_deletion_under_way_leaves_the_notifier_nothing_to_write() {
    run_postgres(|env| async move {
        let s = env.store.clone();
        racing_room(s.as_ref(), &mut Seqs::default()).await;
        let mut deleting = pg_raw(&env).await;
        let mut watch = pg_raw(&env).await;
        deleting.execute("BEGIN").await.expect("begin");
        deleting
            .execute("UPDATE conversations SET lifecycle = 'deleted' WHERE conv = 'room'")
            .await
            .expect("delete the conversation");
        let writer = tokio::spawn({
            let s = s.clone();
            async move { s.insert_notifications(&[racy_mention()]).await }
        });
        until_waiting(&mut watch, "advisory").await;
        deleting.execute("COMMIT").await.expect("commit");
        let new = writer.await.expect("writer").expect("insert");
        assert!(new.is_empty(), "{new:?}");
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM notifications")
            .fetch_one(&mut watch)
            .await
            .expect("count");
        assert_eq!(rows, 0);

        // The same for a delivery of its text.
        use confab_server::store::webhooks::NewDelivery;
        s.enqueue_deliveries(&[NewDelivery {
            tenant: "acme".into(),
            account: "bob".into(),
            payload: "racy words".into(),
            at: 10,
            coalesce: None,
            about: Some((conv("room"), msg_id("racy"))),
        }])
        .await
        .expect("enqueue");
        assert_eq!(s.pending_deliveries().await.expect("pending"), 0);
    })
    .await;
}

/// The notifier's write is under way (its transaction holds the lock shared and inserted
/// the row, as `insert_notifications` does) when the conversation's deletion commits: the
/// deletion waits for it, then clears the row's preview.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_deletion_waits_for_the_notifier_and_clears_its_row() {
    run_postgres(|env| async move {
        let s = env.store.clone();
        let mut seqs = Seqs::default();
        racing_room(s.as_ref(), &mut seqs).await;
        let mut notifier = pg_raw(&env).await;
        let mut watch = pg_raw(&env).await;
        notifier.execute("BEGIN").await.expect("begin");
        notifier
            .execute(
                "SELECT pg_advisory_xact_lock_shared(hashtext('confab.notify'), \
                 (id % 2147483647)::int4) FROM conversations WHERE conv = 'room'",
            )
            .await
            .expect("lock");
        notifier
            .execute(
                "INSERT INTO notifications (tenant, account, kind, conv, source, message, \
                 actor, preview, created_at) VALUES ('acme', 'bob', 'mention', 'room', \
                 'racy', 'racy', 'alice', 'racy words', 1001)",
            )
            .await
            .expect("insert");
        let cd = conv_doc("acme", "room");
        let seq = seqs.next(&cd);
        let mut row = conv_row("acme", "room", "group", None, 100);
        row.lifecycle = "deleted".into();
        let deletion = with(change(&cd, seq, "alice"), vec![p_conv(row)]);
        let committer = tokio::spawn({
            let s = s.clone();
            async move { s.commit(&[deletion]).await }
        });
        until_waiting(&mut watch, "advisory").await;
        notifier.execute("COMMIT").await.expect("commit");
        committer.await.expect("committer").expect("deletion");
        let previews: Vec<String> = sqlx::query_scalar("SELECT preview FROM notifications")
            .fetch_all(&mut watch)
            .await
            .expect("previews");
        assert_eq!(previews, [""]);
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Postgres: a cut behind the part's row (`ChangeLog::fence_part`)
// ---------------------------------------------------------------------------------------

/// While a node holds a part's fence, another node's commit of the part waits; the fenced
/// install then wins and the commit conflicts (its node catches up and writes again). A
/// fence dropped without an install changes nothing and lets the next commit through; one
/// left idle (its node frozen) is ended by Postgres after 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_fenced_part_holds_other_nodes_commits_until_the_cut() {
    run_postgres(|env| async move {
        let s = env.store.clone();
        let other = env.second().await;
        let doc = msgs_doc("acme", "room", 0);
        let first: Vec<_> = (1..=3).map(|q| change(&doc, q, "alice")).collect();
        s.commit(&first).await.expect("3 changes");
        let mut watch = pg_raw(&env).await;

        let fence = s.fence_part(&doc).await.expect("fence");
        let writer = tokio::spawn({
            let (other, doc) = (other.clone(), doc.clone());
            async move { other.commit(&[change(&doc, 4, "bob")]).await }
        });
        until_waiting(&mut watch, "transactionid").await;
        let next = NewGeneration {
            generation: 1,
            base_seq: 3,
            snapshot: b"g1".to_vec(),
        };
        fence.install(&next).await.expect("the fenced cut wins");
        assert_seq_conflict(writer.await.expect("writer"), &doc);
        let loaded = s.load_doc(&doc).await.expect("load");
        assert_eq!((loaded.last_seq, loaded.generation), (4, 1));
        assert_eq!(loaded.snapshot.as_deref(), Some(&b"g1"[..]));

        // Dropped: the row is let go as it was.
        drop(s.fence_part(&doc).await.expect("fence"));
        let fifth = [change(&doc, 5, "bob")];
        tokio::time::timeout(std::time::Duration::from_secs(10), other.commit(&fifth))
            .await
            .expect("a dropped fence holds nothing")
            .expect("seq 5 after the cut");
        let loaded = s.load_doc(&doc).await.expect("load");
        assert_eq!((loaded.last_seq, loaded.generation), (5, 1));

        // Held by a node that stops (frozen, its connection open): Postgres ends the fence
        // after 10 s idle, and the commit that waited goes through.
        let _frozen = s.fence_part(&doc).await.expect("fence");
        let started = std::time::Instant::now();
        let sixth = [change(&doc, 6, "bob")];
        tokio::time::timeout(std::time::Duration::from_secs(30), other.commit(&sixth))
            .await
            .expect("a frozen fence is ended")
            .expect("seq 6 once the fence is gone");
        assert!(started.elapsed() >= std::time::Duration::from_secs(9));
    })
    .await;
}
