//! The scheduler's tables (migrations `0012_scheduled.sql` / sqlite `0007_scheduled.sql`):
//! `schedule_hints`, which private documents may hold a due message and from when (marked
//! by a trigger in the commit that changed the document), and `schedule_posts`, the bucket
//! each due message is posted to, written before the post so a retry posts to the same one.
//! One `Store` method (`schedule`) takes a `ScheduleOp`, so wrappers forward one call.

use sqlx::{PgPool, Row, SqlitePool};

use super::{Result, StoreError};

/// One call of the scheduler on its tables.
#[derive(Debug, Clone, Copy)]
pub enum ScheduleOp<'a> {
    /// Leases up to `limit` hints due at `now` (`next_at <= now`, no live lease) until
    /// `lease_until` for `node`. On Postgres with `FOR UPDATE SKIP LOCKED`: two nodes never
    /// claim one hint.
    Claim {
        now: i64,
        lease_until: i64,
        node: &'a str,
        limit: usize,
    },
    /// The document was looked at as of `gen`: its next due time (`None`: nothing waits,
    /// the hint goes). If `gen` moved meanwhile (the document changed), only the lease ends
    /// and the hint stays due now.
    Finish {
        doc: &'a str,
        gen: i64,
        next_at: Option<i64>,
    },
    /// Something transient failed: look again from `at`.
    Retry { doc: &'a str, at: i64 },
    /// The bucket of a due message's post: the stored one, or `bucket` stored now.
    PostBucket {
        doc: &'a str,
        message: &'a str,
        bucket: &'a str,
    },
    /// The post was refused by `bucket` for a reason about the bucket (full, not open): the
    /// next attempt goes to `to`.
    MovePost {
        doc: &'a str,
        message: &'a str,
        to: &'a str,
    },
    /// The message is settled in the private document: its post row goes.
    PostDone { doc: &'a str, message: &'a str },
}

/// A leased hint: the private document and its `gen` when claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub doc: String,
    pub gen: i64,
}

/// What a `ScheduleOp` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleAnswer {
    Claimed(Vec<Claim>),
    Bucket(String),
    Done,
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

const FINISH_NEXT: &str =
    "UPDATE schedule_hints SET next_at = $3, claimed_until = 0, claimed_by = NULL \
     WHERE doc_id = $1 AND gen = $2";
const FINISH_DELETE: &str = "DELETE FROM schedule_hints WHERE doc_id = $1 AND gen = $2";
const RELEASE: &str =
    "UPDATE schedule_hints SET claimed_until = 0, claimed_by = NULL WHERE doc_id = $1";
const RETRY: &str =
    "UPDATE schedule_hints SET claimed_until = $2, claimed_by = NULL WHERE doc_id = $1";
const POST_INSERT: &str = "INSERT INTO schedule_posts (doc_id, message, bucket) \
     VALUES ($1, $2, $3) ON CONFLICT (doc_id, message) DO NOTHING";
const POST_BUCKET: &str = "SELECT bucket FROM schedule_posts WHERE doc_id = $1 AND message = $2";
const POST_MOVE: &str = "UPDATE schedule_posts SET bucket = $3 WHERE doc_id = $1 AND message = $2";
const POST_DONE: &str = "DELETE FROM schedule_posts WHERE doc_id = $1 AND message = $2";

fn claims<R: Row>(rows: Vec<R>) -> Result<ScheduleAnswer>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
{
    rows.iter()
        .map(|r| {
            Ok(Claim {
                doc: r.try_get("doc_id")?,
                gen: r.try_get("gen")?,
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(ScheduleAnswer::Claimed)
}

pub(super) async fn run_pg(pool: &PgPool, op: ScheduleOp<'_>) -> Result<ScheduleAnswer> {
    match op {
        ScheduleOp::Claim {
            now,
            lease_until,
            node,
            limit: n,
        } => {
            let rows = sqlx::query(
                "UPDATE schedule_hints h SET claimed_until = $2, claimed_by = $3 \
                 FROM (SELECT doc_id FROM schedule_hints \
                   WHERE next_at <= $1 AND claimed_until < $1 \
                   ORDER BY next_at LIMIT $4 FOR UPDATE SKIP LOCKED) due \
                 WHERE h.doc_id = due.doc_id RETURNING h.doc_id, h.gen",
            )
            .bind(now)
            .bind(lease_until)
            .bind(node)
            .bind(limit(n))
            .fetch_all(pool)
            .await?;
            claims(rows)
        }
        ScheduleOp::Finish { doc, gen, next_at } => {
            let mut tx = pool.begin().await?;
            let done = match next_at {
                Some(at) => sqlx::query(FINISH_NEXT).bind(doc).bind(gen).bind(at),
                None => sqlx::query(FINISH_DELETE).bind(doc).bind(gen),
            }
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                sqlx::query(RELEASE).bind(doc).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(ScheduleAnswer::Done)
        }
        ScheduleOp::Retry { doc, at } => {
            sqlx::query(RETRY).bind(doc).bind(at).execute(pool).await?;
            Ok(ScheduleAnswer::Done)
        }
        ScheduleOp::PostBucket {
            doc,
            message,
            bucket,
        } => {
            let mut tx = pool.begin().await?;
            sqlx::query(POST_INSERT)
                .bind(doc)
                .bind(message)
                .bind(bucket)
                .execute(&mut *tx)
                .await?;
            let row = sqlx::query(POST_BUCKET)
                .bind(doc)
                .bind(message)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(ScheduleAnswer::Bucket(row.try_get("bucket")?))
        }
        ScheduleOp::MovePost { doc, message, to } => {
            sqlx::query(POST_MOVE)
                .bind(doc)
                .bind(message)
                .bind(to)
                .execute(pool)
                .await?;
            Ok(ScheduleAnswer::Done)
        }
        ScheduleOp::PostDone { doc, message } => {
            sqlx::query(POST_DONE)
                .bind(doc)
                .bind(message)
                .execute(pool)
                .await?;
            Ok(ScheduleAnswer::Done)
        }
    }
}

/// SQLite takes `?N` where Postgres takes `$N`.
fn lite(sql: &str) -> String {
    sql.replace('$', "?")
}

pub(super) async fn run_sqlite(pool: &SqlitePool, op: ScheduleOp<'_>) -> Result<ScheduleAnswer> {
    match op {
        ScheduleOp::Claim {
            now,
            lease_until,
            node,
            limit: n,
        } => {
            // One node per SQLite file: the conditional update is the whole claim.
            let rows = sqlx::query(
                "UPDATE schedule_hints SET claimed_until = ?2, claimed_by = ?3 \
                 WHERE doc_id IN (SELECT doc_id FROM schedule_hints \
                   WHERE next_at <= ?1 AND claimed_until < ?1 ORDER BY next_at LIMIT ?4) \
                 RETURNING doc_id, gen",
            )
            .bind(now)
            .bind(lease_until)
            .bind(node)
            .bind(limit(n))
            .fetch_all(pool)
            .await?;
            claims(rows)
        }
        ScheduleOp::Finish { doc, gen, next_at } => {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            let (finish, release) = (
                lite(if next_at.is_some() {
                    FINISH_NEXT
                } else {
                    FINISH_DELETE
                }),
                lite(RELEASE),
            );
            let mut query = sqlx::query(&finish).bind(doc).bind(gen);
            if let Some(at) = next_at {
                query = query.bind(at);
            }
            let done = query.execute(&mut *tx).await?;
            if done.rows_affected() == 0 {
                sqlx::query(&release).bind(doc).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(ScheduleAnswer::Done)
        }
        ScheduleOp::Retry { doc, at } => {
            sqlx::query(&lite(RETRY))
                .bind(doc)
                .bind(at)
                .execute(pool)
                .await?;
            Ok(ScheduleAnswer::Done)
        }
        ScheduleOp::PostBucket {
            doc,
            message,
            bucket,
        } => {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            sqlx::query(&lite(POST_INSERT))
                .bind(doc)
                .bind(message)
                .bind(bucket)
                .execute(&mut *tx)
                .await?;
            let row = sqlx::query(&lite(POST_BUCKET))
                .bind(doc)
                .bind(message)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(ScheduleAnswer::Bucket(row.try_get("bucket")?))
        }
        ScheduleOp::MovePost { doc, message, to } => {
            sqlx::query(&lite(POST_MOVE))
                .bind(doc)
                .bind(message)
                .bind(to)
                .execute(pool)
                .await?;
            Ok(ScheduleAnswer::Done)
        }
        ScheduleOp::PostDone { doc, message } => {
            sqlx::query(&lite(POST_DONE))
                .bind(doc)
                .bind(message)
                .execute(pool)
                .await?;
            Ok(ScheduleAnswer::Done)
        }
    }
}

/// An answer of the wrong shape (a wrapper mixed two calls up): a bug, not bad data.
pub fn unexpected(answer: ScheduleAnswer) -> StoreError {
    StoreError::Corrupt(format!("unexpected schedule answer {answer:?}"))
}
