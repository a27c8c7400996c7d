//! What a plaintext commit's search terms cost on Postgres does not grow with the
//! conversation's history: the index function (`confab_search_index`, migration 0040) finds
//! each message row by one probe of its id index. A conversation of 1,990 messages written
//! through the engine, then the function the commit calls for a batch of 200 of them, as
//! the burst leaves the table and again once analyzed, each time in a transaction of the
//! test's own whose table counters (`pg_stat_xact_user_tables`, before and after) say how
//! many message rows it read. Before 0040 it read the conversation's every row per message
//! of the batch until the table was analyzed.
//!
//! Postgres: a fresh database on 127.0.0.1:5432 (user `postgres`, trust auth), dropped
//! afterwards; the test FAILS if Postgres is unreachable, it never skips.

use confab_core::doc::write;
use confab_core::ids::{AccountId, DocId, MessageId};
use confab_core::model::message::NewMessage;
use confab_core::policy::Author;
use confab_server::engine::{now_ms, SubmitOutcome};
use futures_util::future::join_all;
use reqwest::Method;
use serde_json::json;
use sqlx::{Connection, Executor, PgConnection, Row};

mod support;

use support::{on_fresh_postgres, Server, TENANT};

const HISTORY: usize = 1_990;
/// Messages whose terms one call indexes, as a commit's batch does.
const BATCH: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commits_search_terms_read_their_rows_whatever_the_history() {
    on_fresh_postgres("search_commit", |url| async move {
        let s = Server::start_on(Some(&url)).await;
        let owner = s.tenant_token(TENANT, "ann", "user");
        let made = s
            .request(
                Method::POST,
                "/v1/conversations",
                &owner,
                Some(json!({"kind": "group", "id": "g", "members": []})),
            )
            .await;
        assert_eq!(made.status, 201, "create: {}", made.body);
        let first = s
            .request(
                Method::POST,
                "/v1/conversations/g/messages",
                &owner,
                Some(json!({"id": "m0", "body": "alpha beta"})),
            )
            .await;
        assert_eq!(first.status, 201, "post: {}", first.body);
        let bucket = DocId::parse(first.body["doc"].as_str().expect("doc")).expect("doc id");

        // The history, in the first message's bucket (the engine batches the commits).
        let author = Author {
            account: AccountId::new("ann").expect("account"),
            service: false,
            device: None,
        };
        let at = now_ms();
        let writes = (1..HISTORY).map(|i| {
            let message = NewMessage::text(
                MessageId::new(format!("m{i}")).expect("id"),
                author.account.clone(),
                format!("gamma delta {i}"),
                at + i as i64,
            );
            s.engine.write(
                bucket.clone(),
                author.clone(),
                Box::new(move |d, tag| write::post_message(d, tag, &message)),
            )
        });
        for outcome in join_all(writes).await {
            assert!(matches!(outcome, SubmitOutcome::Ack { .. }), "{outcome:?}");
        }

        let mut db = PgConnection::connect(&url).await.expect("postgres");
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
            .fetch_one(&mut db)
            .await
            .expect("count");
        assert_eq!(stored, HISTORY as i64);
        // As a burst leaves the table (autovacuum has not analyzed it yet), then analyzed.
        reindex_reads_the_batch_only(&mut db, "before analyze").await;
        db.execute("ANALYZE messages").await.expect("analyze");
        reindex_reads_the_batch_only(&mut db, "after analyze").await;
    })
    .await;
}

/// Message rows this connection read so far (by scans and by index fetches), not yet
/// flushed to the shared counters.
async fn rows_read(db: &mut PgConnection) -> i64 {
    sqlx::query(
        "SELECT COALESCE(seq_tup_read, 0) + COALESCE(idx_tup_fetch, 0) AS n \
         FROM pg_stat_xact_user_tables WHERE relname = 'messages'",
    )
    .fetch_one(db)
    .await
    .expect("counters")
    .get::<i64, _>("n")
}

/// Indexes the terms of `BATCH` messages of the history (an edit batch's entries replace the
/// post's) inside a transaction that is rolled back, and checks the rows it read.
async fn reindex_reads_the_batch_only(db: &mut PgConnection, when: &str) {
    // Counters read inside one transaction: they also hold the backend's earlier
    // statements until its next flush, which never happens within a transaction.
    db.execute("BEGIN").await.expect("begin");
    let before = rows_read(db).await;
    let ids: Vec<String> = (700..700 + BATCH).map(|i| format!("m{i}")).collect();
    sqlx::query("SELECT confab_search_index($1, $2, $3, $4)")
        .bind(vec![TENANT; BATCH])
        .bind(vec!["g"; BATCH])
        .bind(&ids)
        .bind(vec!["epsilon zeta"; BATCH])
        .execute(&mut *db)
        .await
        .expect("index");
    let read = rows_read(db).await - before;
    let replaced: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM message_search WHERE terms = 'epsilon zeta'")
            .fetch_one(&mut *db)
            .await
            .expect("entries");
    db.execute("ROLLBACK").await.expect("rollback");
    assert_eq!(
        replaced, BATCH as i64,
        "{when}: the entries hold the new terms"
    );
    assert!(
        read <= 2 * BATCH as i64,
        "{when}: indexing {BATCH} messages read {read} message rows of a history of {HISTORY}"
    );
}
