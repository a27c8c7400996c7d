//! What a plaintext commit's search terms cost on Postgres does not grow with the
//! conversation's history: the index function (`confab_search_index`, migration 0040) finds
//! each message row by one probe of its id index. A conversation of 1,990 messages written
//! through the engine, then the function the commit calls for a batch of 200 of them, as
//! the burst leaves the table and again once analyzed, each time in a transaction of the
//! test's own whose table counters (`pg_stat_xact_user_tables`, before and after) say how
//! many message rows it read. Before 0040 it read the conversation's every row per message
//! of the batch until the table was analyzed.
//!
//! The common batch (new messages of one conversation) writes its entries itself, from the
//! rows its insert returns (`confab_commit_message_batch`, migration 0042), without that
//! lookup: a burst whose batches mix messages with terms and without gets each entry on its
//! own row, with the index function gone from the database.
//!
//! Postgres: a fresh database on 127.0.0.1:5432 (user `postgres`, trust auth), dropped
//! afterwards; the test FAILS if Postgres is unreachable, it never skips.

use sqlx::{Connection, Executor, PgConnection, Row};

mod support;

use support::{engine_posts, group_with_first_message, on_fresh_postgres, Server, TENANT};

const HISTORY: usize = 1_990;
/// Messages whose terms one call indexes, as a commit's batch does.
const BATCH: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commits_search_terms_read_their_rows_whatever_the_history() {
    on_fresh_postgres("search_commit", |url| async move {
        let s = Server::start_on(Some(&url)).await;
        let (bucket, author) = group_with_first_message(&s).await;
        // The history, in the first message's bucket.
        let history = (1..HISTORY).map(|i| (format!("m{i}"), format!("gamma delta {i}")));
        engine_posts(&s, &bucket, &author, history).await;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_batch_writes_its_entries_on_their_own_rows() {
    on_fresh_postgres("search_batch", |url| async move {
        let s = Server::start_on(Some(&url)).await;
        let (bucket, author) = group_with_first_message(&s).await;
        // Any batch that still called the index function would now fail its commit.
        let mut db = PgConnection::connect(&url).await.expect("postgres");
        db.execute("DROP FUNCTION confab_search_index(text[], text[], text[], text[])")
            .await
            .expect("drop the index function");

        // Written at once, so the engine commits them in batches of many; every other body
        // has no terms, so a batch's entries are not its first n messages.
        const BURST: usize = 120;
        let posts = (0..BURST).map(|i| {
            let body = match i.is_multiple_of(2) {
                true => format!("word{i} common"),
                false => "...".to_owned(),
            };
            (format!("b{i}"), body)
        });
        engine_posts(&s, &bucket, &author, posts).await;

        let rows = sqlx::query(
            "SELECT m.message, s.terms::text AS terms FROM messages m \
             LEFT JOIN message_search s \
               ON s.created_at = m.created_at AND s.cid = m.cid AND s.pos = m.pos \
             WHERE m.message LIKE 'b%'",
        )
        .fetch_all(&mut db)
        .await
        .expect("entries");
        assert_eq!(rows.len(), BURST, "every message stored");
        for row in rows {
            let id: String = row.get("message");
            let terms: Option<String> = row.get("terms");
            let i: usize = id[1..].parse().expect("number");
            if i.is_multiple_of(2) {
                assert_eq!(
                    terms.as_deref(),
                    Some(format!("'common' 'word{i}'").as_str()),
                    "{id}'s entry holds its own terms"
                );
            } else {
                assert_eq!(terms, None, "{id} has no terms, so no entry");
            }
        }
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
