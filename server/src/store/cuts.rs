//! Due history cuts (migrations: Postgres 0032, SQLite 0025; docs/STORAGE.md, "Cutting a
//! part's history"): `cut_due` holds the parts whose history keeps a delete's or an edit's
//! earlier content, written by a trigger in the commit that stored it. The cut runner claims
//! due parts under a lease, cuts them, and finishes or retries each. Times are the
//! database's clock (one clock for every node), delays are the caller's.
//!
//! The statements are written once here; `queries!` makes each backend's copy with its
//! clock expression and its claim.

use confab_core::ids::{Bucket, DocId};

use super::columns::{conv_id, tenant_corrupt, Cols};
use super::{Result, StoreError};

/// A claimed part: cut it, then `finish_cut` with its `gen`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueCut {
    /// The conversation's row id, the key of `cut_due` with the bucket.
    pub cid: i64,
    pub bucket: Bucket,
    /// The part's document id.
    pub doc: DocId,
    /// The row's version when claimed: a delete or edit since moves it.
    pub gen: i64,
}

/// When a part is due and how long a claim holds it, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutTiming {
    pub after_delete: i64,
    pub after_edit: i64,
    pub lease: i64,
}

fn part_of(r: &impl Cols) -> Result<(i64, Bucket, i64)> {
    let part = u32::try_from(r.int("part")?)
        .map_err(|_| StoreError::Corrupt("bucket part out of range".into()))?;
    Ok((
        r.int("cid")?,
        Bucket::new(r.int("period")?, part),
        r.int("gen")?,
    ))
}

macro_rules! queries {
    ($conn:ty, $now:literal, $claim:literal) => {
        use confab_core::ids::DocId;

        use super::{conv_id, part_of, tenant_corrupt, Cols, CutTiming, DueCut};
        use crate::store::columns::limit_of;
        use crate::store::Result;

        /// Leases up to `limit` due parts for `node`.
        pub(in crate::store) async fn claim(
            conn: &mut $conn,
            timing: CutTiming,
            node: &str,
            limit: usize,
        ) -> Result<Vec<DueCut>> {
            let rows = sqlx::query($claim)
                .bind(timing.after_delete)
                .bind(timing.after_edit)
                .bind(timing.lease)
                .bind(node)
                .bind(limit_of(limit))
                .fetch_all(&mut *conn)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let (cid, bucket, gen) = part_of(row)?;
                let names = sqlx::query("SELECT tenant, conv FROM conversations WHERE id = $1")
                    .bind(cid)
                    .fetch_optional(&mut *conn)
                    .await?;
                let Some(names) = names else {
                    // The conversation's row is gone: nothing left to cut.
                    finish(conn, cid, bucket, gen).await?;
                    continue;
                };
                let tenant = tenant_corrupt(names.text("tenant")?)?;
                let conv = conv_id(names.text("conv")?)?;
                out.push(DueCut {
                    cid,
                    bucket,
                    doc: DocId::msgs(&tenant, &conv, bucket),
                    gen,
                });
            }
            Ok(out)
        }

        /// The part was cut as of `gen`: the row goes, unless a delete or edit moved `gen`
        /// meanwhile; then only the lease ends and the part stays due.
        pub(in crate::store) async fn finish(
            conn: &mut $conn,
            cid: i64,
            bucket: confab_core::ids::Bucket,
            gen: i64,
        ) -> Result<()> {
            let done = sqlx::query(
                "DELETE FROM cut_due WHERE cid = $1 AND period = $2 AND part = $3 AND gen = $4",
            )
            .bind(cid)
            .bind(bucket.period)
            .bind(i64::from(bucket.part))
            .bind(gen)
            .execute(&mut *conn)
            .await?;
            if done.rows_affected() == 0 {
                sqlx::query(
                    "UPDATE cut_due SET claimed_until = 0, claimed_by = NULL \
                     WHERE cid = $1 AND period = $2 AND part = $3",
                )
                .bind(cid)
                .bind(bucket.period)
                .bind(i64::from(bucket.part))
                .execute(&mut *conn)
                .await?;
            }
            Ok(())
        }

        /// The cut did not happen: the part is claimable again `after` ms from now.
        pub(in crate::store) async fn retry(
            conn: &mut $conn,
            cid: i64,
            bucket: confab_core::ids::Bucket,
            after: i64,
        ) -> Result<()> {
            sqlx::query(concat!(
                "UPDATE cut_due SET claimed_until = ",
                $now,
                " + $4, claimed_by = NULL WHERE cid = $1 AND period = $2 AND part = $3"
            ))
            .bind(cid)
            .bind(bucket.period)
            .bind(i64::from(bucket.part))
            .bind(after)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        /// Parts due or waiting for their delay (operators' view, tests).
        pub(in crate::store) async fn pending(conn: &mut $conn) -> Result<i64> {
            let row = sqlx::query("SELECT count(*) AS n FROM cut_due")
                .fetch_one(&mut *conn)
                .await?;
            row.int("n")
        }
    };
}

pub(super) mod pg {
    queries!(
        sqlx::PgConnection,
        "confab_now_ms()",
        "UPDATE cut_due d SET claimed_until = confab_now_ms() + $3, claimed_by = $4 \
         FROM (SELECT cid, period, part FROM cut_due \
           WHERE claimed_until < confab_now_ms() \
             AND (deleted_at + $1 <= confab_now_ms() OR edited_at + $2 <= confab_now_ms()) \
           LIMIT $5 FOR UPDATE SKIP LOCKED) due \
         WHERE d.cid = due.cid AND d.period = due.period AND d.part = due.part \
         RETURNING d.cid, d.period, d.part, d.gen"
    );
}

pub(super) mod lite {
    queries!(
        sqlx::SqliteConnection,
        "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
        "UPDATE cut_due SET claimed_by = $4, \
           claimed_until = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) + $3 \
         WHERE rowid IN (SELECT rowid FROM cut_due \
           WHERE claimed_until < CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) \
             AND (deleted_at + $1 <= CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) \
               OR edited_at + $2 <= CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)) \
           LIMIT $5) \
         RETURNING cid, period, part, gen"
    );
}
