//! The change log on SQLite: loads in one read transaction, the group commit on the writer's
//! handle (`commit.rs`), compaction under `BEGIN IMMEDIATE`, the audit log's batches as
//! multi-row `VALUES`.

use async_trait::async_trait;
use confab_core::ids::{AccountId, DocId, TenantId};
use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection, Row};

use super::commit::{commit_on, insert_values};
use super::SqliteStore;
use crate::store::changelog::{lite as shared, COMPACT_DELETE, COMPACT_SNAPSHOT};
use crate::store::columns::{self, i64_of, limit_of, seq_changes, u64_of};
use crate::store::plan::check_compact;
use crate::store::{
    ChangeLog, LogTail, NewChange, NewGeneration, PartFence, RejectionRecord, Result, StoreError,
    StoredDoc,
};

/// Loads a document (see [`ChangeLog::load_doc`]).
async fn load_on(conn: &mut SqliteConnection, doc: &DocId) -> Result<StoredDoc> {
    let id = doc.to_string();
    // One read transaction: the docs row and the changes come from the same snapshot, a
    // compaction cannot fall between them.
    let mut tx = conn.begin().await?;
    let Some(row) = sqlx::query(
        "SELECT last_seq, snapshot, snapshot_seq, policy_seq, generation FROM docs WHERE doc_id = $1",
    )
    .bind(&id)
    .fetch_optional(&mut *tx)
    .await?
    else {
        tx.commit().await?;
        return Ok(StoredDoc::default());
    };
    let last_seq = u64_of(row.try_get("last_seq")?, "last_seq")?;
    let policy_seq = u64_of(row.try_get("policy_seq")?, "policy_seq")?;
    let generation = u64_of(row.try_get("generation")?, "generation")?;
    let snapshot: Option<Vec<u8>> = row.try_get("snapshot")?;
    let snapshot_seq_raw: i64 = row.try_get("snapshot_seq")?;
    let snapshot_seq = u64_of(snapshot_seq_raw, "snapshot_seq")?;
    let rows =
        sqlx::query("SELECT seq, bytes FROM changes WHERE doc_id = $1 AND seq > $2 ORDER BY seq")
            .bind(&id)
            .bind(snapshot_seq_raw)
            .fetch_all(&mut *tx)
            .await?;
    tx.commit().await?;
    let changes = seq_changes(&rows)?;
    Ok(StoredDoc {
        snapshot,
        snapshot_seq,
        changes,
        last_seq,
        policy_seq,
        generation,
    })
}

/// Compacts a document (see [`ChangeLog::compact`]).
async fn compact_on(
    conn: &mut SqliteConnection,
    doc: &DocId,
    snapshot: &[u8],
    seq: u64,
) -> Result<()> {
    let id = doc.to_string();
    let seq_i = i64_of(seq, "seq")?;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let row = sqlx::query("SELECT last_seq, snapshot_seq FROM docs WHERE doc_id = $1")
        .bind(&id)
        .fetch_optional(&mut *tx)
        .await?;
    let (last, snap): (i64, i64) = match row {
        Some(r) => (r.try_get("last_seq")?, r.try_get("snapshot_seq")?),
        None if seq == 0 => return Ok(()),
        None => (0, 0),
    };
    check_compact(&id, seq_i, last, snap)?;
    sqlx::query(COMPACT_DELETE)
        .bind(&id)
        .bind(seq_i)
        .execute(&mut *tx)
        .await?;
    sqlx::query(COMPACT_SNAPSHOT)
        .bind(snapshot)
        .bind(seq_i)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Installs a generation (see [`ChangeLog::install_generation`]) under `BEGIN IMMEDIATE`.
async fn install_on(conn: &mut SqliteConnection, doc: &DocId, next: &NewGeneration) -> Result<()> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    shared::install_generation(&mut tx, doc, next).await?;
    tx.commit().await?;
    Ok(())
}

/// One node's fence (`ChangeLog::fence_part`): nothing to hold, the install is fenced as
/// always.
struct SqlitePartFence {
    store: SqliteStore,
    doc: DocId,
}

#[async_trait]
impl PartFence for SqlitePartFence {
    async fn install(self: Box<Self>, next: &NewGeneration) -> Result<()> {
        self.store.install_generation(&self.doc, next).await
    }
}

#[async_trait]
impl ChangeLog for SqliteStore {
    async fn load_doc(&self, doc: &DocId) -> Result<StoredDoc> {
        let mut conn = self.reader.acquire().await?;
        let result = load_on(&mut conn, doc).await;
        self.after_write(&mut conn, &result);
        result
    }

    async fn commit(&self, changes: &[NewChange]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        on_writer!(self, |conn| commit_on(conn, changes))
    }

    async fn log_tail(&self, doc: &DocId, after: u64, limit: usize) -> Result<LogTail> {
        // One statement, one snapshot: the row's seqs and the changes agree.
        let rows = sqlx::query(
            "SELECT d.last_seq, d.policy_seq, d.snapshot_seq, c.seq, c.bytes FROM docs d \
             LEFT JOIN (SELECT doc_id, seq, bytes FROM changes \
               WHERE doc_id = $1 AND seq > $2 ORDER BY seq LIMIT $3) c ON c.doc_id = d.doc_id \
             WHERE d.doc_id = $1 ORDER BY c.seq",
        )
        .bind(doc.to_string())
        .bind(i64_of(after, "after")?)
        .bind(limit_of(limit))
        .fetch_all(&self.reader)
        .await?;
        columns::log_tail(&rows)
    }

    async fn changes_after(
        &self,
        doc: &DocId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>> {
        on_reader!(self, |conn| shared::changes_after(conn, doc, after, limit))
    }

    async fn seq_of(&self, doc: &DocId, hash: &[u8; 32]) -> Result<Option<u64>> {
        on_reader!(self, |conn| shared::seq_of(conn, doc, hash))
    }

    async fn actor_account(&self, tenant: &TenantId, actor: &[u8]) -> Result<Option<AccountId>> {
        on_reader!(self, |conn| shared::actor_account(conn, tenant, actor))
    }

    async fn compact(&self, doc: &DocId, snapshot: &[u8], seq: u64) -> Result<()> {
        on_writer!(self, |conn| compact_on(conn, doc, snapshot, seq))
    }

    async fn install_generation(&self, doc: &DocId, next: &NewGeneration) -> Result<()> {
        on_writer!(self, |conn| install_on(conn, doc, next))
    }

    async fn fence_part(&self, doc: &DocId) -> Result<Box<dyn PartFence>> {
        Ok(Box::new(SqlitePartFence {
            store: self.clone(),
            doc: doc.clone(),
        }))
    }

    async fn doc_ids(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT doc_id FROM docs ORDER BY doc_id")
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| r.try_get("doc_id").map_err(StoreError::from))
            .collect()
    }

    async fn stored_bytes(&self, doc: &DocId) -> Result<u64> {
        let row = sqlx::query(
            "SELECT COALESCE((SELECT SUM(length(bytes)) FROM changes WHERE doc_id = $1), 0) \
             + COALESCE((SELECT length(snapshot) FROM docs WHERE doc_id = $1), 0) AS n",
        )
        .bind(doc.to_string())
        .fetch_one(&self.reader)
        .await?;
        u64_of(row.try_get("n")?, "stored bytes")
    }

    async fn record_rejection(&self, record: &RejectionRecord) -> Result<()> {
        let mut conn = self.writer.acquire().await?;
        shared::record_rejection(&mut conn, record).await
    }

    async fn record_rejections(&self, records: &[RejectionRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        insert_values(
            &mut tx,
            "INSERT INTO rejections (tenant, doc_id, account, hash, code, reason, at) ",
            "",
            records,
            |b, r| {
                b.push_bind(r.tenant.as_str())
                    .push_bind(&r.doc)
                    .push_bind(r.account.as_str())
                    .push_bind(r.hash.as_ref().map(|h| &h[..]))
                    .push_bind(r.code.as_str())
                    .push_bind(&r.reason)
                    .push_bind(r.at);
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn rejection_count(&self, tenant: &TenantId) -> Result<i64> {
        on_reader!(self, |conn| shared::rejection_count(conn, tenant))
    }
}
