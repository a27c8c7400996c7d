//! The webhook outbox (migrations: Postgres 0017, 0023 and 0039, SQLite 0011, 0016 and 0032):
//! deliveries of notifications to the operator's push receiver, kept until it answers 2xx
//! (`crate::notify::webhook`, docs/OPERATIONS.md "Push webhooks"). The statements are the
//! same on both backends but for Postgres' row locks on a claim. A delivery that carries a
//! message's text loses it in the commit that deletes the message.

use confab_core::ids::{ConvId, MessageId};

use super::columns::Cols;
use super::Result;

/// A delivery to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub tenant: String,
    pub account: String,
    /// The JSON body to post (signed when sent).
    pub payload: String,
    pub at: i64,
    /// Open to merging later deliveries under this key until claimed (the coalesced
    /// deliveries of new messages, `crate::notify::webhook`); none for the others.
    pub coalesce: Option<String>,
    /// The conversation and message whose text the body carries, if it carries any: queued
    /// only while that message's row is not deleted, as a notification row is
    /// (`super::notifications::live_pg`).
    pub about: Option<(ConvId, MessageId)>,
}

/// A delivery claimed for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: i64,
}

pub(super) fn claimed<R: Cols>(rows: &[R]) -> Result<Vec<Delivery>> {
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
    Ok(out)
}

macro_rules! queries {
    ($conn:ty, skip_locked = $skip_locked:literal) => {
        use crate::store::columns::{limit_of, Cols};
        use crate::store::webhooks::{claimed, Delivery, NewDelivery};
        use crate::store::Result;

        /// Queues `r` unless the message its body carries is gone (`live`, the backend's
        /// condition over `$1` the tenant, `$6` the conversation and `$7` the message).
        pub(in crate::store) async fn enqueue_one(
            conn: &mut $conn,
            r: &NewDelivery,
            live: &str,
        ) -> Result<()> {
            // The message it names (`about_*`) lets the commit that deletes the message
            // empty its text (Postgres migration 0039, SQLite 0032).
            sqlx::query(&format!(
                "INSERT INTO webhook_outbox (tenant, account, payload, next_at, \
                 created_at, coalesce_key, about_cid, about_message) \
                 SELECT $1, $2, $3, $4, $4, $5, \
                 (SELECT id FROM conversations WHERE tenant = $1 AND conv = $6), $7 \
                 WHERE {live}"
            ))
            .bind(&r.tenant)
            .bind(&r.account)
            .bind(&r.payload)
            .bind(r.at)
            .bind(r.coalesce.as_deref())
            .bind(r.about.as_ref().map(|(c, _)| c.as_str()))
            .bind(r.about.as_ref().map(|(_, m)| m.as_str()))
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        pub(in crate::store) async fn claim(
            conn: &mut $conn,
            now: i64,
            lease_until: i64,
            limit: usize,
        ) -> Result<Vec<Delivery>> {
            let rows = sqlx::query(concat!(
                "UPDATE webhook_outbox SET next_at = $2, coalesce_key = NULL ",
                "WHERE id IN (SELECT id ",
                "FROM webhook_outbox WHERE dead_at IS NULL AND next_at <= $1 ",
                "ORDER BY next_at LIMIT $3",
                $skip_locked,
                ") RETURNING id, payload, attempts"
            ))
            .bind(now)
            .bind(lease_until)
            .bind(limit_of(limit))
            .fetch_all(&mut *conn)
            .await?;
            claimed(&rows)
        }

        pub(in crate::store) async fn waiting(
            conn: &mut $conn,
            key: &str,
        ) -> Result<Option<(i64, String)>> {
            let row = sqlx::query(
                "SELECT id, payload FROM webhook_outbox WHERE coalesce_key = $1 \
                 ORDER BY id DESC LIMIT 1",
            )
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?;
            row.map(|r| Ok((r.int("id")?, r.text("payload")?)))
                .transpose()
        }

        /// Compare and set: a claim (which clears the key) or another node's merge in
        /// between leaves the row as it is, and the caller queues a new delivery.
        pub(in crate::store) async fn merge(
            conn: &mut $conn,
            id: i64,
            key: &str,
            old: &str,
            new: &str,
        ) -> Result<bool> {
            let done = sqlx::query(
                "UPDATE webhook_outbox SET payload = $4 WHERE id = $1 AND coalesce_key = $2 \
                 AND payload = $3",
            )
            .bind(id)
            .bind(key)
            .bind(old)
            .bind(new)
            .execute(&mut *conn)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        pub(in crate::store) async fn delivered(conn: &mut $conn, id: i64) -> Result<()> {
            sqlx::query("DELETE FROM webhook_outbox WHERE id = $1")
                .bind(id)
                .execute(&mut *conn)
                .await?;
            Ok(())
        }

        pub(in crate::store) async fn failed(
            conn: &mut $conn,
            id: i64,
            attempts: i64,
            next_at: i64,
            dead_at: Option<i64>,
            error: &str,
        ) -> Result<()> {
            sqlx::query(
                "UPDATE webhook_outbox SET attempts = $2, next_at = $3, dead_at = $4, \
                 last_error = $5 WHERE id = $1",
            )
            .bind(id)
            .bind(attempts)
            .bind(next_at)
            .bind(dead_at)
            .bind(error)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        /// Dead letters with `dead`, deliveries waiting without.
        pub(in crate::store) async fn count(conn: &mut $conn, dead: bool) -> Result<i64> {
            let sql = if dead {
                "SELECT COUNT(*) AS n FROM webhook_outbox WHERE dead_at IS NOT NULL"
            } else {
                "SELECT COUNT(*) AS n FROM webhook_outbox WHERE dead_at IS NULL"
            };
            let row = sqlx::query(sql).fetch_one(&mut *conn).await?;
            row.int("n")
        }
    };
}

pub(super) mod pg {
    queries!(sqlx::PgConnection, skip_locked = " FOR UPDATE SKIP LOCKED");
}

pub(super) mod lite {
    queries!(sqlx::SqliteConnection, skip_locked = "");
}
