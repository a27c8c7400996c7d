//! The scheduler's tables (migrations `0012_scheduled.sql` / sqlite `0007_scheduled.sql`):
//! `schedule_hints`, which private documents may hold a due message and from when (marked
//! by a trigger in the commit that changed the document), and `schedule_posts`, the bucket
//! each due message is posted to, written before the post so a retry posts to the same one.
//! The statements are written once here but for the claim (`sqlite/outboxes.rs`,
//! `postgres/outboxes.rs`); each backend opens the transactions its own way.

use sqlx::Row;

use super::Result;

/// A leased hint: the private document and its `gen` when claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub doc: String,
    pub gen: i64,
}

pub(super) fn claims<R: Row>(rows: Vec<R>) -> Result<Vec<Claim>>
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
        .collect()
}

macro_rules! queries {
    ($conn:ty) => {
        use sqlx::Row;

        use crate::store::Result;

        /// Inside the caller's transaction: the hint's next due time, or its end; if `gen`
        /// moved meanwhile only the lease ends.
        pub(in crate::store) async fn finish_in(
            tx: &mut $conn,
            doc: &str,
            gen: i64,
            next_at: Option<i64>,
        ) -> Result<()> {
            let done = match next_at {
                Some(at) => sqlx::query(
                    "UPDATE schedule_hints SET next_at = $3, claimed_until = 0, \
                     claimed_by = NULL WHERE doc_id = $1 AND gen = $2",
                )
                .bind(doc)
                .bind(gen)
                .bind(at),
                None => sqlx::query("DELETE FROM schedule_hints WHERE doc_id = $1 AND gen = $2")
                    .bind(doc)
                    .bind(gen),
            }
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                sqlx::query(
                    "UPDATE schedule_hints SET claimed_until = 0, claimed_by = NULL \
                     WHERE doc_id = $1",
                )
                .bind(doc)
                .execute(&mut *tx)
                .await?;
            }
            Ok(())
        }

        pub(in crate::store) async fn hint(conn: &mut $conn, doc: &str, at: i64) -> Result<()> {
            sqlx::query(
                "INSERT INTO schedule_hints (doc_id, next_at) VALUES ($1, $2) \
                 ON CONFLICT (doc_id) DO UPDATE SET gen = schedule_hints.gen + 1, \
                 next_at = CASE WHEN schedule_hints.next_at < excluded.next_at \
                 THEN schedule_hints.next_at ELSE excluded.next_at END",
            )
            .bind(doc)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        pub(in crate::store) async fn retry(conn: &mut $conn, doc: &str, at: i64) -> Result<()> {
            sqlx::query(
                "UPDATE schedule_hints SET claimed_until = $2, claimed_by = NULL \
                 WHERE doc_id = $1",
            )
            .bind(doc)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        /// Inside the caller's transaction: the stored bucket, or `bucket` stored now.
        pub(in crate::store) async fn post_bucket_in(
            tx: &mut $conn,
            doc: &str,
            message: &str,
            bucket: &str,
        ) -> Result<String> {
            sqlx::query(
                "INSERT INTO schedule_posts (doc_id, message, bucket) VALUES ($1, $2, $3) \
                 ON CONFLICT (doc_id, message) DO NOTHING",
            )
            .bind(doc)
            .bind(message)
            .bind(bucket)
            .execute(&mut *tx)
            .await?;
            let row =
                sqlx::query("SELECT bucket FROM schedule_posts WHERE doc_id = $1 AND message = $2")
                    .bind(doc)
                    .bind(message)
                    .fetch_one(&mut *tx)
                    .await?;
            Ok(row.try_get("bucket")?)
        }

        pub(in crate::store) async fn move_post(
            conn: &mut $conn,
            doc: &str,
            message: &str,
            to: &str,
        ) -> Result<()> {
            sqlx::query("UPDATE schedule_posts SET bucket = $3 WHERE doc_id = $1 AND message = $2")
                .bind(doc)
                .bind(message)
                .bind(to)
                .execute(&mut *conn)
                .await?;
            Ok(())
        }

        pub(in crate::store) async fn post_done(
            conn: &mut $conn,
            doc: &str,
            message: &str,
        ) -> Result<()> {
            sqlx::query("DELETE FROM schedule_posts WHERE doc_id = $1 AND message = $2")
                .bind(doc)
                .bind(message)
                .execute(&mut *conn)
                .await?;
            Ok(())
        }
    };
}

pub(super) mod pg {
    queries!(sqlx::PgConnection);
}

pub(super) mod lite {
    queries!(sqlx::SqliteConnection);
}
