//! SQLite backend: the embedded default, one file in a data folder.
//!
//! - WAL journal with `synchronous=FULL`: a commit is on disk when `commit` returns, so an
//!   ack sent after it survives a crash or power loss.
//! - Writes go through one connection and start with `BEGIN IMMEDIATE`: writers of this
//!   process queue in the pool, writers of another process (`confab-server compact` next to
//!   a running server) wait on the busy timeout instead of failing a lock upgrade.
//! - Reads use a separate small pool; WAL lets them run next to the writer.
//!
//! A group commit is planned once (the plan is shared with the Postgres backend) and written
//! in one call on the writer connection's handle, on the committer's thread (`commit`).

mod commit;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use confab_core::ids::{AccountId, ConvId, DocId, TenantId};
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Connection, Row, Sqlite};

use self::commit::{commit_on, insert_values};
use super::columns::{
    self, conv_list_item, conv_row, i64_of, limit_of, message_row, seq_changes, u64_of,
};
use super::plan::check_compact;
use super::{
    ConvListItem, ConvRow, LogTail, MessageRow, NewChange, RejectionRecord, Result, Store,
    StoreError, StoredDoc,
};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a writer waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a caller waits for a connection of this process's pools (the one writer is
/// shared by the committer, compaction, the audit log and the health probe).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// The blob the write probe stores (see migration 0002): a probe needs room like a commit.
const PROBE_BYTES: i64 = 64 * 1024;

/// Unread counts and last messages of an account's active conversations (SQLite).
const CONVERSATIONS_OF: &str = "\
    SELECT c.tenant, c.conv, c.kind, c.title, c.lifecycle, c.parent, c.created_at, c.scope, \
      c.description, c.active_members, c.join_route, m.role, \
      (SELECT COUNT(*) FROM messages x \
        WHERE x.cid = c.id AND NOT x.deleted AND x.author <> m.account \
          AND x.pos > COALESCE((SELECT rm.pos FROM read_markers r JOIN messages rm \
                ON rm.cid = c.id AND rm.message = r.message \
              WHERE r.tenant = c.tenant AND r.conv = c.conv AND r.account = m.account), 0) \
      ) AS unread, \
      l.message AS l_message, l.pos AS l_pos, l.period AS l_period, l.part AS l_part, \
      l.seq AS l_seq, l.author AS l_author, l.kind AS l_kind, l.created_at AS l_created_at, \
      l.preview AS l_preview, l.deleted AS l_deleted \
    FROM memberships m \
    JOIN conversations c ON c.tenant = m.tenant AND c.conv = m.conv \
    LEFT JOIN messages l ON l.cid = c.id \
      AND l.pos = (SELECT MAX(y.pos) FROM messages y WHERE y.cid = c.id) \
    WHERE m.tenant = ? AND m.account = ? AND m.status = 'active' AND c.lifecycle <> 'deleted' \
    ORDER BY c.last_activity DESC, c.conv";

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// One connection: every write transaction of this process goes through it.
    writer: SqlitePool,
    /// Read-only work (for an in-memory database: the same pool as `writer`).
    reader: SqlitePool,
    /// A private in-memory database: its one connection is the database, never closed.
    memory: bool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and its parent folder: WAL journal,
    /// `synchronous=FULL` (durable commits), foreign keys on, a busy timeout. Does not
    /// migrate: call [`Store::migrate`].
    pub async fn open(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
            }
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .statement_cache_capacity(256);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // No ping before each use: it is one more hop to the connection's thread per
            // commit, and an in-process connection does not drop; a dead worker fails the
            // write (`WorkerCrashed`, unavailable) and `after_write` replaces it.
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        Ok(Self {
            writer,
            reader,
            memory: false,
        })
    }

    /// A private in-memory database (tests): one connection that never closes.
    pub async fn memory() -> Result<Self> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?
            .foreign_keys(true)
            .statement_cache_capacity(256);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        Ok(Self {
            writer: pool.clone(),
            reader: pool,
            memory: true,
        })
    }

    /// After a transaction on `conn`: a database error may have ended the transaction
    /// inside SQLite (SQLITE_FULL and I/O errors roll it back on their own) while sqlx
    /// still counts it open, and every later `BEGIN` on that connection would fail ("non-zero
    /// transaction depth") until a restart. So the connection is closed instead of going
    /// back to the pool, which opens a fresh one.
    fn after_write<T>(&self, conn: &mut PoolConnection<Sqlite>, result: &Result<T>) {
        if let Err(e @ (StoreError::Database(_) | StoreError::Sqlite(_))) = result {
            if !self.memory {
                tracing::debug!(error = %e, "SQLite transaction failed; replacing its connection");
                conn.close_on_drop();
            }
        }
    }

    /// Closes both pools (waits for checked-out connections).
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// Loads a document (see [`Store::load_doc`]).
async fn load_on(conn: &mut SqliteConnection, doc: &DocId) -> Result<StoredDoc> {
    let id = doc.to_string();
    // One read transaction: the docs row and the changes come from the same snapshot, a
    // compaction cannot fall between them.
    let mut tx = conn.begin().await?;
    let Some(row) = sqlx::query(
        "SELECT last_seq, snapshot, snapshot_seq, policy_seq FROM docs WHERE doc_id = ?",
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
    let snapshot: Option<Vec<u8>> = row.try_get("snapshot")?;
    let snapshot_seq_raw: i64 = row.try_get("snapshot_seq")?;
    let snapshot_seq = u64_of(snapshot_seq_raw, "snapshot_seq")?;
    let rows =
        sqlx::query("SELECT seq, bytes FROM changes WHERE doc_id = ? AND seq > ? ORDER BY seq")
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
    })
}

/// Compacts a document (see [`Store::compact`]).
async fn compact_on(
    conn: &mut SqliteConnection,
    doc: &DocId,
    snapshot: &[u8],
    seq: u64,
) -> Result<()> {
    let id = doc.to_string();
    let seq_i = i64_of(seq, "seq")?;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let row = sqlx::query("SELECT last_seq, snapshot_seq FROM docs WHERE doc_id = ?")
        .bind(&id)
        .fetch_optional(&mut *tx)
        .await?;
    let (last, snap): (i64, i64) = match row {
        Some(r) => (r.try_get("last_seq")?, r.try_get("snapshot_seq")?),
        None if seq == 0 => return Ok(()),
        None => (0, 0),
    };
    check_compact(&id, seq_i, last, snap)?;
    sqlx::query("DELETE FROM changes WHERE doc_id = ? AND seq <= ?")
        .bind(&id)
        .bind(seq_i)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE docs SET snapshot = ?, snapshot_seq = ? WHERE doc_id = ?")
        .bind(snapshot)
        .bind(seq_i)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The health prober's write: the transaction a commit makes, in small.
async fn probe_on(conn: &mut SqliteConnection) -> Result<()> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::query("UPDATE storage_probe SET at = ?, pad = randomblob(?) WHERE id = 1")
        .bind(crate::clock::now_ms())
        .bind(PROBE_BYTES)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    fn for_commit_thread(&self) -> Option<std::sync::Arc<dyn Store>> {
        None // one writer connection, shared: the committer needs no thread of its own
    }

    fn for_read_thread(&self) -> Option<std::sync::Arc<dyn Store>> {
        None // reads go to SQLite's own connection threads already
    }

    fn cluster_options(&self) -> Option<sqlx::postgres::PgConnectOptions> {
        None // one node
    }

    async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.writer).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn probe(&self, write: bool) -> Result<()> {
        if !write {
            return self.ping().await;
        }
        let mut conn = self.writer.acquire().await?;
        let result = probe_on(&mut conn).await;
        self.after_write(&mut conn, &result);
        result
    }

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
        let mut conn = self.writer.acquire().await?;
        let result = commit_on(&mut conn, changes).await;
        self.after_write(&mut conn, &result);
        result
    }

    /// After a compaction the changes up to the snapshot are gone: with `after` older than
    /// the snapshot this returns only the changes after it, and the caller sends the
    /// snapshot (from [`Store::load_doc`]) first.
    async fn log_tail(&self, doc: &DocId, after: u64, limit: usize) -> Result<LogTail> {
        // One statement, one snapshot: the row's seqs and the changes agree.
        let rows = sqlx::query(
            "SELECT d.last_seq, d.policy_seq, d.snapshot_seq, c.seq, c.bytes FROM docs d \
             LEFT JOIN (SELECT doc_id, seq, bytes FROM changes \
               WHERE doc_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3) c ON c.doc_id = d.doc_id \
             WHERE d.doc_id = ?1 ORDER BY c.seq",
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
        let rows = sqlx::query(
            "SELECT seq, bytes FROM changes WHERE doc_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(doc.to_string())
        .bind(i64_of(after, "after")?)
        .bind(limit_of(limit))
        .fetch_all(&self.reader)
        .await?;
        seq_changes(&rows)
    }

    async fn seq_of(&self, doc: &DocId, hash: &[u8; 32]) -> Result<Option<u64>> {
        let id = doc.to_string();
        let row = sqlx::query(
            "SELECT COALESCE((SELECT seq FROM changes WHERE doc_id = ?1 AND hash = ?2), \
             (SELECT NULLIF(snapshot_seq, 0) FROM docs WHERE doc_id = ?1)) AS seq",
        )
        .bind(&id)
        .bind(&hash[..])
        .fetch_one(&self.reader)
        .await?;
        let seq: Option<i64> = row.try_get("seq")?;
        seq.map(|s| u64_of(s, "seq")).transpose()
    }

    async fn actor_account(&self, tenant: &TenantId, actor: &[u8]) -> Result<Option<AccountId>> {
        let row = sqlx::query("SELECT account FROM actors WHERE tenant = ? AND actor = ?")
            .bind(tenant.as_str())
            .bind(actor)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| columns::account(r.try_get("account")?))
            .transpose()
    }

    async fn record_rejection(&self, record: &RejectionRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO rejections (tenant, doc_id, account, hash, code, reason, at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(record.tenant.as_str())
        .bind(&record.doc)
        .bind(record.account.as_str())
        .bind(record.hash.as_ref().map(|h| &h[..]))
        .bind(record.code.as_str())
        .bind(&record.reason)
        .bind(record.at)
        .execute(&self.writer)
        .await?;
        Ok(())
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

    /// Refuses (`Corrupt`) a seq beyond the document's last seq and (`SeqConflict`) a seq
    /// older than the current snapshot (another compaction got further first).
    async fn compact(&self, doc: &DocId, snapshot: &[u8], seq: u64) -> Result<()> {
        let mut conn = self.writer.acquire().await?;
        let result = compact_on(&mut conn, doc, snapshot, seq).await;
        self.after_write(&mut conn, &result);
        result
    }

    async fn doc_ids(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT doc_id FROM docs ORDER BY doc_id")
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| r.try_get("doc_id").map_err(StoreError::from))
            .collect()
    }

    async fn membership(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        account: &AccountId,
    ) -> Result<Option<(String, String)>> {
        let row = sqlx::query(
            "SELECT role, status FROM memberships WHERE tenant = ? AND conv = ? AND account = ?",
        )
        .bind(tenant.as_str())
        .bind(conv.as_str())
        .bind(account.as_str())
        .fetch_optional(&self.reader)
        .await?;
        row.map(|r| Ok((r.try_get("role")?, r.try_get("status")?)))
            .transpose()
    }

    async fn conversation(&self, tenant: &TenantId, conv: &ConvId) -> Result<Option<ConvRow>> {
        let row = sqlx::query(
            "SELECT tenant, conv, kind, title, lifecycle, parent, created_at, scope, description, \
             active_members, join_route FROM conversations \
             WHERE tenant = ? AND conv = ?",
        )
        .bind(tenant.as_str())
        .bind(conv.as_str())
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(conv_row).transpose()
    }

    async fn conv_stats(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
    ) -> Result<Option<super::stats::ConvStats>> {
        super::stats::stats_sqlite(&self.reader, tenant, conv).await
    }

    async fn conversations_of(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Vec<ConvListItem>> {
        let rows = sqlx::query(CONVERSATIONS_OF)
            .bind(tenant.as_str())
            .bind(account.as_str())
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(conv_list_item).collect()
    }

    async fn messages(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<MessageRow>> {
        let rows = sqlx::query(
            "SELECT m.message, m.pos, m.period, m.part, m.seq, m.author, m.kind, m.created_at, \
             m.preview, m.deleted, coalesce(v.views, 0) AS views \
             FROM conversations c JOIN messages m ON m.cid = c.id \
             LEFT JOIN message_views v ON v.cid = m.cid AND v.pos = m.pos \
             WHERE c.tenant = ? AND c.conv = ? AND m.pos < ? ORDER BY m.pos DESC LIMIT ?",
        )
        .bind(tenant.as_str())
        .bind(conv.as_str())
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit_of(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(MessageRow {
                    views: r.try_get("views")?,
                    ..message_row(r, "", tenant, conv)?
                })
            })
            .collect()
    }

    async fn buckets(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        before: Option<confab_core::ids::Bucket>,
        limit: usize,
    ) -> Result<super::buckets::BucketPage> {
        super::buckets::list_sqlite(&self.reader, tenant, conv, before, limit).await
    }

    async fn conversations_with_buckets(
        &self,
        after: Option<&super::retention::ConvKey>,
        limit: usize,
    ) -> Result<Vec<super::retention::ConvKey>> {
        let mut conn = self.reader.acquire().await?;
        super::retention::conversations_sqlite(&mut conn, after, limit).await
    }

    async fn invites(
        &self,
        op: super::invites::InviteOp<'_>,
    ) -> Result<super::invites::InviteAnswer> {
        let read = matches!(
            op,
            super::invites::InviteOp::ByToken { .. }
                | super::invites::InviteOp::List { .. }
                | super::invites::InviteOp::CountLive { .. }
        );
        if read {
            let mut conn = self.reader.acquire().await?;
            return super::invites::run_sqlite(&mut conn, op).await;
        }
        let mut conn = self.writer.acquire().await?;
        let result = super::invites::run_sqlite(&mut conn, op).await;
        self.after_write(&mut conn, &result);
        result
    }

    async fn notifications(
        &self,
        op: super::notifications::NotifyOp<'_>,
    ) -> Result<super::notifications::NotifyAnswer> {
        if op.reads() {
            let mut conn = self.reader.acquire().await?;
            return super::notifications::run_sqlite(&mut conn, op).await;
        }
        let mut conn = self.writer.acquire().await?;
        let result = super::notifications::run_sqlite(&mut conn, op).await;
        self.after_write(&mut conn, &result);
        result
    }

    async fn notify(&self, _channel: &'static str, _payloads: &[String]) -> Result<()> {
        Ok(())
    }

    async fn clients(
        &self,
        op: super::clients::ClientsOp<'_>,
    ) -> Result<super::clients::ClientsAnswer> {
        Ok(super::clients::run_sqlite(op))
    }

    async fn contacts(
        &self,
        op: super::contacts::ContactOp<'_>,
    ) -> Result<super::contacts::ContactAnswer> {
        if op.reads() {
            let mut conn = self.reader.acquire().await?;
            return super::contacts::run_sqlite(&mut conn, op).await;
        }
        let mut conn = self.writer.acquire().await?;
        let result = super::contacts::run_sqlite(&mut conn, op).await;
        self.after_write(&mut conn, &result);
        result
    }

    async fn webhooks(
        &self,
        op: super::webhooks::OutboxOp<'_>,
    ) -> Result<super::webhooks::OutboxAnswer> {
        if op.reads() {
            let mut conn = self.reader.acquire().await?;
            return super::webhooks::run_sqlite(&mut conn, op).await;
        }
        let mut conn = self.writer.acquire().await?;
        let result = super::webhooks::run_sqlite(&mut conn, op).await;
        self.after_write(&mut conn, &result);
        result
    }

    async fn drop_buckets(
        &self,
        req: super::retention::DropRequest<'_>,
    ) -> Result<super::retention::Dropped> {
        let mut conn = self.writer.acquire().await?;
        let result = super::retention::drop_sqlite(&mut conn, req).await;
        self.after_write(&mut conn, &result);
        result
    }

    async fn discover(
        &self,
        query: &super::discovery::DiscoverQuery<'_>,
    ) -> Result<Vec<super::discovery::DiscoverItem>> {
        super::discovery::list_sqlite(&self.reader, query).await
    }

    async fn project_discovery(
        &self,
        op: super::discovery::ProjectOp<'_>,
    ) -> Result<super::discovery::ProjectAnswer> {
        if matches!(op, super::discovery::ProjectOp::Stale { .. }) {
            let mut conn = self.reader.acquire().await?;
            return super::discovery::project_sqlite(&mut conn, op).await;
        }
        let mut conn = self.writer.acquire().await?;
        let result = super::discovery::project_sqlite(&mut conn, op).await;
        self.after_write(&mut conn, &result);
        result
    }

    async fn memberships_of(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Vec<confab_core::protocol::Membership>> {
        super::memberships::list_sqlite(&self.reader, tenant, account).await
    }

    async fn rejection_count(&self, tenant: &TenantId) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM rejections WHERE tenant = ?")
            .bind(tenant.as_str())
            .fetch_one(&self.reader)
            .await?;
        Ok(row.try_get("n")?)
    }

    async fn schedule(
        &self,
        op: super::schedule::ScheduleOp<'_>,
    ) -> Result<super::schedule::ScheduleAnswer> {
        super::schedule::run_sqlite(&self.writer, op).await
    }
    async fn stored_bytes(&self, doc: &DocId) -> Result<u64> {
        let id = doc.to_string();
        let row = sqlx::query(
            "SELECT COALESCE((SELECT SUM(length(bytes)) FROM changes WHERE doc_id = ?), 0) \
             + COALESCE((SELECT length(snapshot) FROM docs WHERE doc_id = ?), 0) AS n",
        )
        .bind(&id)
        .bind(&id)
        .fetch_one(&self.reader)
        .await?;
        u64_of(row.try_get("n")?, "stored bytes")
    }
}
