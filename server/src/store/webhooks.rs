//! The webhook outbox (migrations: Postgres 0017, SQLite 0011): deliveries of
//! notifications to the operator's push receiver, kept until it answers 2xx
//! (`crate::notify::webhook`, docs/OPERATIONS.md "Push webhooks").

use sqlx::{PgConnection, SqliteConnection};

use super::columns::{limit_of, Cols};
use super::Result;

/// A delivery to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub tenant: String,
    pub account: String,
    /// The JSON body to post (signed when sent).
    pub payload: String,
    pub at: i64,
}

/// A delivery claimed for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: i64,
}

#[derive(Debug, Clone)]
pub enum OutboxOp<'a> {
    Enqueue(&'a [NewDelivery]),
    /// Up to `limit` due deliveries (`next_at <= now`, not dead), oldest due first; each
    /// one's `next_at` moves to `lease_until`, so no other claim takes it meanwhile and a
    /// node that dies sending it leaves it due again.
    Claim {
        now: i64,
        lease_until: i64,
        limit: usize,
    },
    /// The receiver took it: the row goes.
    Delivered {
        id: i64,
    },
    /// The attempt failed: tried again at `next_at`, or dead from `dead_at` on.
    Failed {
        id: i64,
        attempts: i64,
        next_at: i64,
        dead_at: Option<i64>,
        error: &'a str,
    },
    /// Deliveries given up (dead letters).
    DeadCount,
    /// Deliveries waiting (not dead).
    PendingCount,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxAnswer {
    Done,
    Claimed(Vec<Delivery>),
    Count(i64),
}

fn claimed<R: Cols>(rows: &[R]) -> Result<OutboxAnswer> {
    let mut out = rows
        .iter()
        .map(|r| {
            Ok(Delivery {
                id: r.int("id")?,
                payload: r.text("payload")?,
                attempts: r.int("attempts")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    out.sort_by_key(|d| d.id);
    Ok(OutboxAnswer::Claimed(out))
}

/// The same statements on both backends but for placeholders and Postgres' row locks.
macro_rules! outbox_sql {
    ($p:literal, $skip_locked:literal) => {
        [
            concat!(
                "INSERT INTO webhook_outbox (tenant, account, payload, next_at, created_at) ",
                "VALUES (",
                $p,
                "1, ",
                $p,
                "2, ",
                $p,
                "3, ",
                $p,
                "4, ",
                $p,
                "4)"
            ),
            concat!(
                "UPDATE webhook_outbox SET next_at = ",
                $p,
                "2 WHERE id IN (SELECT id FROM webhook_outbox ",
                "WHERE dead_at IS NULL AND next_at <= ",
                $p,
                "1 ORDER BY next_at LIMIT ",
                $p,
                "3",
                $skip_locked,
                ") RETURNING id, payload, attempts"
            ),
            concat!("DELETE FROM webhook_outbox WHERE id = ", $p, "1"),
            concat!(
                "UPDATE webhook_outbox SET attempts = ",
                $p,
                "2, next_at = ",
                $p,
                "3, dead_at = ",
                $p,
                "4, last_error = ",
                $p,
                "5 WHERE id = ",
                $p,
                "1"
            ),
        ]
    };
}

const PG: [&str; 4] = outbox_sql!("$", " FOR UPDATE SKIP LOCKED");
const SQLITE: [&str; 4] = outbox_sql!("?", "");
const DEAD: &str = "SELECT COUNT(*) AS n FROM webhook_outbox WHERE dead_at IS NOT NULL";
const PENDING: &str = "SELECT COUNT(*) AS n FROM webhook_outbox WHERE dead_at IS NULL";

pub(super) async fn run_pg(conn: &mut PgConnection, op: OutboxOp<'_>) -> Result<OutboxAnswer> {
    match op {
        OutboxOp::Enqueue(rows) => {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            for r in rows {
                sqlx::query(PG[0])
                    .bind(&r.tenant)
                    .bind(&r.account)
                    .bind(&r.payload)
                    .bind(r.at)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(OutboxAnswer::Done)
        }
        OutboxOp::Claim {
            now,
            lease_until,
            limit,
        } => {
            let rows = sqlx::query(PG[1])
                .bind(now)
                .bind(lease_until)
                .bind(limit_of(limit))
                .fetch_all(&mut *conn)
                .await?;
            claimed(&rows)
        }
        OutboxOp::Delivered { id } => {
            sqlx::query(PG[2]).bind(id).execute(&mut *conn).await?;
            Ok(OutboxAnswer::Done)
        }
        OutboxOp::Failed {
            id,
            attempts,
            next_at,
            dead_at,
            error,
        } => {
            sqlx::query(PG[3])
                .bind(id)
                .bind(attempts)
                .bind(next_at)
                .bind(dead_at)
                .bind(error)
                .execute(&mut *conn)
                .await?;
            Ok(OutboxAnswer::Done)
        }
        OutboxOp::DeadCount | OutboxOp::PendingCount => {
            let sql = match op {
                OutboxOp::DeadCount => DEAD,
                _ => PENDING,
            };
            let row = sqlx::query(sql).fetch_one(&mut *conn).await?;
            Ok(OutboxAnswer::Count(row.int("n")?))
        }
    }
}

pub(super) async fn run_sqlite(
    conn: &mut SqliteConnection,
    op: OutboxOp<'_>,
) -> Result<OutboxAnswer> {
    match op {
        OutboxOp::Enqueue(rows) => {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            for r in rows {
                sqlx::query(SQLITE[0])
                    .bind(&r.tenant)
                    .bind(&r.account)
                    .bind(&r.payload)
                    .bind(r.at)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(OutboxAnswer::Done)
        }
        OutboxOp::Claim {
            now,
            lease_until,
            limit,
        } => {
            let rows = sqlx::query(SQLITE[1])
                .bind(now)
                .bind(lease_until)
                .bind(limit_of(limit))
                .fetch_all(&mut *conn)
                .await?;
            claimed(&rows)
        }
        OutboxOp::Delivered { id } => {
            sqlx::query(SQLITE[2]).bind(id).execute(&mut *conn).await?;
            Ok(OutboxAnswer::Done)
        }
        OutboxOp::Failed {
            id,
            attempts,
            next_at,
            dead_at,
            error,
        } => {
            sqlx::query(SQLITE[3])
                .bind(id)
                .bind(attempts)
                .bind(next_at)
                .bind(dead_at)
                .bind(error)
                .execute(&mut *conn)
                .await?;
            Ok(OutboxAnswer::Done)
        }
        OutboxOp::DeadCount | OutboxOp::PendingCount => {
            let sql = match op {
                OutboxOp::DeadCount => DEAD,
                _ => PENDING,
            };
            let row = sqlx::query(sql).fetch_one(&mut *conn).await?;
            Ok(OutboxAnswer::Count(row.int("n")?))
        }
    }
}

impl OutboxOp<'_> {
    pub fn reads(&self) -> bool {
        matches!(self, OutboxOp::DeadCount | OutboxOp::PendingCount)
    }
}
