//! The change log's statements that both backends write alike (`$n` placeholders, bound by
//! number on both). What differs stays in `sqlite/changelog.rs` and
//! `postgres/changelog.rs`: loading a document and a log's tail in one snapshot, the group
//! commit, compaction's lock, the audit log's batches, text order and byte counts.

/// Compaction, once the document's row is held: the folded changes go, the snapshot takes
/// their place.
pub(super) const COMPACT_DELETE: &str = "DELETE FROM changes WHERE doc_id = $1 AND seq <= $2";
pub(super) const COMPACT_SNAPSHOT: &str =
    "UPDATE docs SET snapshot = $1, snapshot_seq = $2 WHERE doc_id = $3";

/// A cut, once the row is fenced: the whole log of the earlier generation goes.
pub(super) const CUT_DELETE: &str = "DELETE FROM changes WHERE doc_id = $1";
/// A cut's fence and install in one statement: it touches the row only if neither a commit
/// nor another cut moved it since the state the generation was built from.
pub(super) const CUT_INSTALL: &str = "UPDATE docs SET snapshot = $1, snapshot_seq = $2, \
     last_seq = $2, generation = $3 WHERE doc_id = $4 AND last_seq = $5 AND generation = $6";

macro_rules! queries {
    ($conn:ty) => {
        use confab_core::ids::{AccountId, DocId, TenantId};
        use sqlx::Row;

        use crate::store::columns::{self, i64_of, limit_of, seq_changes, u64_of};
        use crate::store::{NewGeneration, RejectionRecord, Result, StoreError};

        pub(in crate::store) async fn changes_after(
            conn: &mut $conn,
            doc: &DocId,
            after: u64,
            limit: usize,
        ) -> Result<Vec<(u64, Vec<u8>)>> {
            let rows = sqlx::query(
                "SELECT seq, bytes FROM changes WHERE doc_id = $1 AND seq > $2 \
                 ORDER BY seq LIMIT $3",
            )
            .bind(doc.to_string())
            .bind(i64_of(after, "after")?)
            .bind(limit_of(limit))
            .fetch_all(&mut *conn)
            .await?;
            seq_changes(&rows)
        }

        pub(in crate::store) async fn seq_of(
            conn: &mut $conn,
            doc: &DocId,
            hash: &[u8; 32],
        ) -> Result<Option<u64>> {
            let row = sqlx::query(
                "SELECT COALESCE((SELECT seq FROM changes WHERE doc_id = $1 AND hash = $2), \
                 (SELECT NULLIF(snapshot_seq, 0) FROM docs WHERE doc_id = $1)) AS seq",
            )
            .bind(doc.to_string())
            .bind(&hash[..])
            .fetch_one(&mut *conn)
            .await?;
            let seq: Option<i64> = row.try_get("seq")?;
            seq.map(|s| u64_of(s, "seq")).transpose()
        }

        /// Fences and installs a generation (see `ChangeLog::install_generation`) on a
        /// connection whose transaction the caller opened and commits.
        pub(in crate::store) async fn install_generation(
            conn: &mut $conn,
            doc: &DocId,
            next: &NewGeneration,
        ) -> Result<()> {
            let id = doc.to_string();
            let seq = i64_of(next.base_seq + 1, "seq")?;
            let installed = sqlx::query(super::CUT_INSTALL)
                .bind(&next.snapshot)
                .bind(seq)
                .bind(i64_of(next.generation, "generation")?)
                .bind(&id)
                .bind(i64_of(next.base_seq, "base_seq")?)
                .bind(i64_of(next.generation.saturating_sub(1), "generation")?)
                .execute(&mut *conn)
                .await?;
            if installed.rows_affected() != 1 {
                return Err(StoreError::SeqConflict(id));
            }
            sqlx::query(super::CUT_DELETE)
                .bind(&id)
                .execute(&mut *conn)
                .await?;
            Ok(())
        }

        pub(in crate::store) async fn actor_account(
            conn: &mut $conn,
            tenant: &TenantId,
            actor: &[u8],
        ) -> Result<Option<AccountId>> {
            let row = sqlx::query("SELECT account FROM actors WHERE tenant = $1 AND actor = $2")
                .bind(tenant.as_str())
                .bind(actor)
                .fetch_optional(&mut *conn)
                .await?;
            row.map(|r| columns::account(r.try_get("account")?))
                .transpose()
        }

        pub(in crate::store) async fn record_rejection(
            conn: &mut $conn,
            record: &RejectionRecord,
        ) -> Result<()> {
            sqlx::query(
                "INSERT INTO rejections (tenant, doc_id, account, hash, code, reason, at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(record.tenant.as_str())
            .bind(&record.doc)
            .bind(record.account.as_str())
            .bind(record.hash.as_ref().map(|h| &h[..]))
            .bind(record.code.as_str())
            .bind(&record.reason)
            .bind(record.at)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        pub(in crate::store) async fn rejection_count(
            conn: &mut $conn,
            tenant: &TenantId,
        ) -> Result<i64> {
            let row = sqlx::query("SELECT COUNT(*) AS n FROM rejections WHERE tenant = $1")
                .bind(tenant.as_str())
                .fetch_one(&mut *conn)
                .await?;
            Ok(row.try_get("n")?)
        }
    };
}

pub(super) mod pg {
    queries!(sqlx::PgConnection);
}

pub(super) mod lite {
    queries!(sqlx::SqliteConnection);
}
