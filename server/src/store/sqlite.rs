//! SQLite backend: the embedded default, one file in a data folder.
//!
//! - WAL journal with `synchronous=FULL`: a commit is on disk when `commit` returns, so an
//!   ack sent after it survives a crash or power loss.
//! - Writes go through one connection and start with `BEGIN IMMEDIATE`: writers of this
//!   process queue in the pool, writers of another process (`confab-server compact` next to
//!   a running server) wait on the busy timeout instead of failing a lock upgrade.
//! - Reads use a separate small pool; WAL lets them run next to the writer.
//!
//! A group commit is planned once ([`shared::Plan`], shared with the Postgres backend) and
//! written with a handful of multi-row statements whatever the batch size, so the cost per
//! accepted change is a few rows, not a few round trips to the SQLite worker thread.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use confab_core::ids::{AccountId, ConvId, DocId, TenantId};
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::query_builder::Separated;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Connection, QueryBuilder, Row, Sqlite};

use self::shared::{conv_list_item, conv_row, i64_of, limit_of, message_row, u64_of, Plan};
use super::{
    ConvListItem, ConvRow, MessageRow, NewChange, RejectionRecord, Result, Store, StoreError,
    StoredDoc,
};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a writer waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a caller waits for a connection of this process's pools (the one writer is
/// shared by the committer, compaction, the audit log and the health probe).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// The blob the write probe stores (see migration 0002): a probe needs room like a commit.
const PROBE_BYTES: i64 = 64 * 1024;
/// Rows per multi-row statement (a power of two, see [`chunks`]).
const CHUNK: usize = 128;

/// Unread counts and last messages of an account's active conversations (SQLite).
const CONVERSATIONS_OF: &str = "\
    SELECT c.tenant, c.conv, c.kind, c.title, c.lifecycle, c.parent, c.created_at, m.role, \
      (SELECT COUNT(*) FROM messages x \
        WHERE x.tenant = c.tenant AND x.conv = c.conv AND NOT x.deleted \
          AND x.author <> m.account \
          AND x.pos > COALESCE((SELECT rm.pos FROM read_markers r JOIN messages rm \
                ON rm.tenant = r.tenant AND rm.conv = r.conv AND rm.message = r.message \
              WHERE r.tenant = c.tenant AND r.conv = c.conv AND r.account = m.account), 0) \
      ) AS unread, \
      l.message AS l_message, l.pos AS l_pos, l.doc_id AS l_doc_id, l.seq AS l_seq, \
      l.author AS l_author, l.kind AS l_kind, l.created_at AS l_created_at, \
      l.preview AS l_preview, l.deleted AS l_deleted \
    FROM memberships m \
    JOIN conversations c ON c.tenant = m.tenant AND c.conv = m.conv \
    LEFT JOIN messages l ON l.tenant = c.tenant AND l.conv = c.conv \
      AND l.pos = (SELECT MAX(y.pos) FROM messages y WHERE y.tenant = c.tenant AND y.conv = c.conv) \
    WHERE m.tenant = ? AND m.account = ? AND m.status = 'active' \
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
        if let Err(StoreError::Database(e)) = result {
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

/// Splits `items` into slices of `CHUNK` rows, then the rest in descending powers of two, so
/// the multi-row statements come in at most a handful of shapes (the statement cache keeps
/// them prepared).
fn chunks<T>(mut items: &[T]) -> Vec<&[T]> {
    let mut out = Vec::new();
    let mut size = CHUNK;
    while !items.is_empty() {
        while size > items.len() {
            size /= 2;
        }
        let (head, tail) = items.split_at(size);
        out.push(head);
        items = tail;
    }
    out
}

/// Runs `head VALUES (...), (...) tail` over `items`, chunked.
async fn insert_values<'a, T, F>(
    conn: &mut SqliteConnection,
    head: &str,
    tail: &str,
    items: &'a [T],
    mut push: F,
) -> Result<()>
where
    F: FnMut(&mut Separated<'_, 'a, Sqlite, &'static str>, &'a T),
{
    for chunk in chunks(items) {
        let mut qb = QueryBuilder::<Sqlite>::new(head);
        qb.push_values(chunk, |mut b, item| push(&mut b, item));
        qb.push(tail);
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Loads a document (see [`Store::load_doc`]).
async fn load_on(conn: &mut SqliteConnection, doc: &DocId) -> Result<StoredDoc> {
    let id = doc.to_string();
    // One read transaction: the docs row and the changes come from the same snapshot, a
    // compaction cannot fall between them.
    let mut tx = conn.begin().await?;
    let Some(row) =
        sqlx::query("SELECT last_seq, snapshot, snapshot_seq FROM docs WHERE doc_id = ?")
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await?
    else {
        tx.commit().await?;
        return Ok(StoredDoc::default());
    };
    let last_seq = u64_of(row.try_get("last_seq")?, "last_seq")?;
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
    let mut changes = Vec::with_capacity(rows.len());
    for row in rows {
        changes.push((u64_of(row.try_get("seq")?, "seq")?, row.try_get("bytes")?));
    }
    Ok(StoredDoc {
        snapshot,
        snapshot_seq,
        changes,
        last_seq,
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
    shared::check_compact(&id, seq_i, last, snap)?;
    sqlx::query(
        "INSERT INTO compacted_hashes (doc_id, hash, seq) \
         SELECT doc_id, hash, seq FROM changes WHERE doc_id = ? AND seq <= ? \
         ON CONFLICT (doc_id, hash) DO NOTHING",
    )
    .bind(&id)
    .bind(seq_i)
    .execute(&mut *tx)
    .await?;
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
        .bind(crate::engine::now_ms())
        .bind(PROBE_BYTES)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// One group commit on the writer connection (see [`Store::commit`]).
async fn commit_on(conn: &mut SqliteConnection, changes: &[NewChange]) -> Result<()> {
    let mut plan = Plan::build(changes)?;
    // BEGIN IMMEDIATE takes the write lock now: the seq check below and the writes that
    // follow see no other writer in between. Dropping `tx` on an error rolls back.
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;

    // 1. Seq compare-and-set for every document of the batch.
    let mut current: HashMap<String, i64> = HashMap::with_capacity(plan.docs.len());
    for chunk in chunks(&plan.docs) {
        let mut qb =
            QueryBuilder::<Sqlite>::new("SELECT doc_id, last_seq FROM docs WHERE doc_id IN (");
        let mut list = qb.separated(", ");
        for d in chunk {
            list.push_bind(d.doc.as_str());
        }
        qb.push(")");
        for row in qb.build().fetch_all(&mut *tx).await? {
            current.insert(row.try_get("doc_id")?, row.try_get("last_seq")?);
        }
    }
    plan.check_seqs(&current)?;
    insert_values(
        &mut tx,
        "INSERT INTO docs (doc_id, tenant, last_seq) ",
        " ON CONFLICT (doc_id) DO UPDATE SET last_seq = excluded.last_seq",
        &plan.docs,
        |b, d| {
            b.push_bind(d.doc.as_str())
                .push_bind(d.tenant)
                .push_bind(d.last);
        },
    )
    .await?;

    // 2. The change log.
    insert_values(
        &mut tx,
        "INSERT INTO changes (doc_id, seq, hash, bytes, account, accepted_at) ",
        "",
        &plan.changes,
        |b, c| {
            b.push_bind(c.doc.as_str())
                .push_bind(c.seq)
                .push_bind(c.hash)
                .push_bind(c.bytes)
                .push_bind(c.account)
                .push_bind(c.accepted_at);
        },
    )
    .await?;

    // 3. Actor bindings: insert the new ones, then every actor of the batch must be bound
    //    to the account the batch binds it to.
    if !plan.bindings.is_empty() {
        insert_values(
            &mut tx,
            "INSERT INTO actors (tenant, actor, account, bound_at) ",
            " ON CONFLICT (tenant, actor) DO NOTHING",
            &plan.bindings,
            |b, x| {
                b.push_bind(x.tenant)
                    .push_bind(x.actor)
                    .push_bind(x.account)
                    .push_bind(x.bound_at);
            },
        )
        .await?;
        let mut bound = Vec::with_capacity(plan.bindings.len());
        for chunk in chunks(&plan.bindings) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "SELECT tenant, actor, account FROM actors WHERE (tenant, actor) IN (",
            );
            qb.push_values(chunk, |mut b, x| {
                b.push_bind(x.tenant).push_bind(x.actor);
            });
            qb.push(")");
            for row in qb.build().fetch_all(&mut *tx).await? {
                bound.push((
                    row.try_get::<String, _>("tenant")?,
                    row.try_get::<Vec<u8>, _>("actor")?,
                    row.try_get::<String, _>("account")?,
                ));
            }
        }
        plan.check_bindings(&bound)?;
    }

    // 4. Projection: conversations, members, read markers.
    if !plan.conversations.is_empty() {
        insert_values(
            &mut tx,
            "INSERT INTO conversations \
             (tenant, conv, kind, title, lifecycle, parent, created_at, last_pos, last_activity) ",
            " ON CONFLICT (tenant, conv) DO UPDATE SET kind = excluded.kind, \
             title = excluded.title, lifecycle = excluded.lifecycle, \
             parent = excluded.parent, created_at = excluded.created_at",
            &plan.conversations,
            |b, c| {
                b.push_bind(c.tenant.as_str())
                    .push_bind(c.conv.as_str())
                    .push_bind(c.kind.as_str())
                    .push_bind(c.title.as_deref())
                    .push_bind(c.lifecycle.as_str())
                    .push_bind(c.parent.as_ref().map(ConvId::as_str))
                    .push_bind(c.created_at)
                    .push_bind(0_i64)
                    .push_bind(c.created_at);
            },
        )
        .await?;
    }
    if !plan.members.is_empty() {
        insert_values(
            &mut tx,
            "INSERT INTO memberships (tenant, conv, account, role, status) ",
            " ON CONFLICT (tenant, conv, account) DO UPDATE SET role = excluded.role, \
             status = excluded.status",
            &plan.members,
            |b, m| {
                b.push_bind(m.tenant)
                    .push_bind(m.conv)
                    .push_bind(m.account)
                    .push_bind(m.role)
                    .push_bind(m.status);
            },
        )
        .await?;
    }
    if !plan.markers.is_empty() {
        insert_values(
            &mut tx,
            "INSERT INTO read_markers (tenant, conv, account, message) ",
            " ON CONFLICT (tenant, conv, account) DO UPDATE SET message = excluded.message",
            &plan.markers,
            |b, m| {
                b.push_bind(m.tenant)
                    .push_bind(m.conv)
                    .push_bind(m.account)
                    .push_bind(m.message);
            },
        )
        .await?;
    }

    // 5. Messages: take each conversation's next positions inside the database, then
    //    insert the rows with them.
    if !plan.messages.is_empty() {
        insert_values(
            &mut tx,
            "INSERT INTO conversations \
             (tenant, conv, kind, title, lifecycle, parent, created_at, last_pos, last_activity) ",
            " ON CONFLICT (tenant, conv) DO NOTHING",
            &plan.allocs,
            |b, a| {
                b.push_bind(a.tenant)
                    .push_bind(a.conv)
                    .push_bind("unknown")
                    .push_bind(None::<&str>)
                    .push_bind("active")
                    .push_bind(None::<&str>)
                    .push_bind(a.first_created)
                    .push_bind(0_i64)
                    .push_bind(0_i64);
            },
        )
        .await?;
        let mut ends: HashMap<(String, String), i64> = HashMap::new();
        for chunk in chunks(&plan.allocs) {
            let mut qb = QueryBuilder::<Sqlite>::new("WITH v (tenant, conv, n, mx) AS (");
            qb.push_values(chunk, |mut b, a| {
                b.push_bind(a.tenant)
                    .push_bind(a.conv)
                    .push_bind(a.count)
                    .push_bind(a.max_created);
            });
            qb.push(
                ") UPDATE conversations SET last_pos = last_pos + v.n, \
                 last_activity = MAX(last_activity, v.mx) FROM v \
                 WHERE conversations.tenant = v.tenant AND conversations.conv = v.conv \
                 RETURNING tenant, conv, last_pos",
            );
            for row in qb.build().fetch_all(&mut *tx).await? {
                ends.insert(
                    (row.try_get("tenant")?, row.try_get("conv")?),
                    row.try_get("last_pos")?,
                );
            }
        }
        plan.assign_positions(&ends)?;
        insert_values(
            &mut tx,
            "INSERT INTO messages (tenant, conv, message, pos, doc_id, seq, author, kind, \
             created_at, preview, deleted) ",
            " ON CONFLICT (tenant, conv, message) DO NOTHING",
            &plan.messages,
            |b, m| {
                b.push_bind(m.row.tenant.as_str())
                    .push_bind(m.row.conv.as_str())
                    .push_bind(m.row.message.as_str())
                    .push_bind(m.pos)
                    .push_bind(m.row.doc.as_str())
                    .push_bind(m.seq)
                    .push_bind(m.row.author.as_str())
                    .push_bind(m.row.kind.as_str())
                    .push_bind(m.row.created_at)
                    .push_bind(m.preview)
                    .push_bind(m.deleted);
            },
        )
        .await?;
    }

    // 6. Edits and deletions of messages committed before this batch.
    for chunk in chunks(&plan.updates) {
        let mut qb =
            QueryBuilder::<Sqlite>::new("WITH v (tenant, conv, message, preview, deleted) AS (");
        qb.push_values(chunk, |mut b, u| {
            b.push_bind(u.tenant)
                .push_bind(u.conv)
                .push_bind(u.message)
                .push_bind(u.preview)
                .push_bind(u.deleted);
        });
        qb.push(
            ") UPDATE messages SET preview = v.preview, deleted = v.deleted FROM v \
             WHERE messages.tenant = v.tenant AND messages.conv = v.conv \
             AND messages.message = v.message",
        );
        qb.build().execute(&mut *tx).await?;
    }

    tx.commit().await?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
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
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push((u64_of(row.try_get("seq")?, "seq")?, row.try_get("bytes")?));
        }
        Ok(out)
    }

    async fn seq_of(&self, doc: &DocId, hash: &[u8; 32]) -> Result<Option<u64>> {
        let id = doc.to_string();
        let row = sqlx::query(
            "SELECT seq FROM changes WHERE doc_id = ? AND hash = ? \
             UNION ALL SELECT seq FROM compacted_hashes WHERE doc_id = ? AND hash = ? LIMIT 1",
        )
        .bind(&id)
        .bind(&hash[..])
        .bind(&id)
        .bind(&hash[..])
        .fetch_optional(&self.reader)
        .await?;
        row.map(|r| u64_of(r.try_get("seq")?, "seq")).transpose()
    }

    async fn actor_account(&self, tenant: &TenantId, actor: &[u8]) -> Result<Option<AccountId>> {
        let row = sqlx::query("SELECT account FROM actors WHERE tenant = ? AND actor = ?")
            .bind(tenant.as_str())
            .bind(actor)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| shared::account(r.try_get("account")?))
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
            "SELECT tenant, conv, kind, title, lifecycle, parent, created_at FROM conversations \
             WHERE tenant = ? AND conv = ?",
        )
        .bind(tenant.as_str())
        .bind(conv.as_str())
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(conv_row).transpose()
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
            "SELECT message, pos, doc_id, seq, author, kind, created_at, preview, deleted \
             FROM messages WHERE tenant = ? AND conv = ? AND pos < ? ORDER BY pos DESC LIMIT ?",
        )
        .bind(tenant.as_str())
        .bind(conv.as_str())
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit_of(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| message_row(r, "", tenant, conv))
            .collect()
    }

    async fn rejection_count(&self, tenant: &TenantId) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM rejections WHERE tenant = ?")
            .bind(tenant.as_str())
            .fetch_one(&self.reader)
            .await?;
        Ok(row.try_get("n")?)
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

/// Planning and row decoding shared by both backends (kept here because the store module's
/// file layout is fixed; a `store/common.rs` would be its natural home).
pub(super) mod shared {
    use std::collections::{BTreeMap, HashMap};

    use confab_core::ids::{AccountId, ConvId, MessageId, TenantId};
    use sqlx::{ColumnIndex, Decode, Row, Type};

    use crate::store::{
        ConvListItem, ConvRow, MessageRow, NewChange, Projection, Result, StoreError,
    };

    /// A document's seq advance within one batch: its last seq must be `prev` before.
    #[derive(Debug)]
    pub(crate) struct DocStep<'a> {
        pub doc: String,
        pub tenant: &'a str,
        pub prev: i64,
        pub last: i64,
    }

    #[derive(Debug)]
    pub(crate) struct ChangeStep<'a> {
        pub doc: String,
        pub seq: i64,
        pub hash: &'a [u8],
        pub bytes: &'a [u8],
        pub account: &'a str,
        pub accepted_at: i64,
    }

    #[derive(Debug)]
    pub(crate) struct Binding<'a> {
        pub tenant: &'a str,
        pub actor: &'a [u8],
        pub account: &'a str,
        pub bound_at: i64,
    }

    #[derive(Debug)]
    pub(crate) struct MemberStep<'a> {
        pub tenant: &'a str,
        pub conv: &'a str,
        pub account: &'a str,
        pub role: &'a str,
        pub status: &'a str,
    }

    #[derive(Debug)]
    pub(crate) struct MarkerStep<'a> {
        pub tenant: &'a str,
        pub conv: &'a str,
        pub account: &'a str,
        pub message: &'a str,
    }

    /// A new message; `pos` is filled in from the database by [`Plan::assign_positions`].
    #[derive(Debug)]
    pub(crate) struct MessageStep<'a> {
        pub row: &'a MessageRow,
        pub seq: i64,
        pub preview: &'a str,
        pub deleted: bool,
        pub pos: i64,
    }

    /// How many positions a conversation takes in this batch.
    #[derive(Debug)]
    pub(crate) struct ConvAlloc<'a> {
        pub tenant: &'a str,
        pub conv: &'a str,
        pub count: i64,
        pub max_created: i64,
        pub first_created: i64,
    }

    #[derive(Debug)]
    pub(crate) struct UpdateStep<'a> {
        pub tenant: &'a str,
        pub conv: &'a str,
        pub message: &'a str,
        pub preview: &'a str,
        pub deleted: bool,
    }

    /// A group commit, planned before it touches the database.
    ///
    /// Upserts are deduplicated (the last one of a key wins, as if applied in order) and
    /// sorted by key, so concurrent writers lock rows in the same order. The batch order
    /// only matters where rows depend on each other: positions of new messages follow the
    /// batch order, and an edit of a message created in the same batch is folded into the
    /// new row. Conversation upserts never touch `last_pos`/`last_activity`, so applying
    /// them before the messages gives the same result as applying them in order.
    #[derive(Debug)]
    pub(crate) struct Plan<'a> {
        /// Sorted by doc id.
        pub docs: Vec<DocStep<'a>>,
        /// Batch order.
        pub changes: Vec<ChangeStep<'a>>,
        /// Sorted by (tenant, actor), one per actor.
        pub bindings: Vec<Binding<'a>>,
        pub conversations: Vec<&'a ConvRow>,
        pub members: Vec<MemberStep<'a>>,
        pub markers: Vec<MarkerStep<'a>>,
        /// Batch order, one per message id (the first wins, as the table's
        /// `ON CONFLICT DO NOTHING` does for messages committed earlier).
        pub messages: Vec<MessageStep<'a>>,
        /// Sorted by (tenant, conversation).
        pub allocs: Vec<ConvAlloc<'a>>,
        /// Edits of messages not created in this batch.
        pub updates: Vec<UpdateStep<'a>>,
    }

    impl<'a> Plan<'a> {
        /// Plans a batch. A document whose changes in the batch do not follow each other is
        /// a `SeqConflict`; an actor bound to two accounts in the batch is `Corrupt`.
        pub fn build(changes: &'a [NewChange]) -> Result<Self> {
            let mut docs: BTreeMap<String, DocStep<'a>> = BTreeMap::new();
            let mut steps = Vec::with_capacity(changes.len());
            let mut bindings: BTreeMap<(&'a str, &'a [u8]), Binding<'a>> = BTreeMap::new();
            let mut conversations: BTreeMap<(&'a str, &'a str), &'a ConvRow> = BTreeMap::new();
            let mut members: BTreeMap<(&'a str, &'a str, &'a str), MemberStep<'a>> =
                BTreeMap::new();
            let mut markers: BTreeMap<(&'a str, &'a str, &'a str), MarkerStep<'a>> =
                BTreeMap::new();
            let mut messages: Vec<MessageStep<'a>> = Vec::new();
            let mut message_index: HashMap<(&'a str, &'a str, &'a str), usize> = HashMap::new();
            let mut allocs: BTreeMap<(&'a str, &'a str), ConvAlloc<'a>> = BTreeMap::new();
            let mut updates: BTreeMap<(&'a str, &'a str, &'a str), UpdateStep<'a>> =
                BTreeMap::new();

            for change in changes {
                let doc = change.doc.to_string();
                let seq = i64_of(change.seq, "seq")?;
                match docs.get_mut(&doc) {
                    Some(step) => {
                        if seq != step.last + 1 {
                            return Err(StoreError::SeqConflict(doc));
                        }
                        step.last = seq;
                    }
                    None => {
                        docs.insert(
                            doc.clone(),
                            DocStep {
                                doc: doc.clone(),
                                tenant: change.doc.tenant().as_str(),
                                prev: seq - 1,
                                last: seq,
                            },
                        );
                    }
                }
                if let Some(actor) = &change.bind_actor {
                    let tenant = change.doc.tenant().as_str();
                    let account = change.account.as_str();
                    match bindings.get(&(tenant, actor.as_slice())) {
                        Some(b) if b.account != account => {
                            return Err(StoreError::Corrupt(format!(
                                "actor {} bound to both {} and {} in one batch",
                                hex::encode(actor),
                                b.account,
                                account
                            )));
                        }
                        Some(_) => {}
                        None => {
                            bindings.insert(
                                (tenant, actor.as_slice()),
                                Binding {
                                    tenant,
                                    actor,
                                    account,
                                    bound_at: change.accepted_at,
                                },
                            );
                        }
                    }
                }
                for p in &change.projection {
                    match p {
                        Projection::Conversation(row) => {
                            conversations.insert((row.tenant.as_str(), row.conv.as_str()), row);
                        }
                        Projection::Member {
                            tenant,
                            conv,
                            account,
                            role,
                            status,
                        } => {
                            members.insert(
                                (tenant.as_str(), conv.as_str(), account.as_str()),
                                MemberStep {
                                    tenant: tenant.as_str(),
                                    conv: conv.as_str(),
                                    account: account.as_str(),
                                    role,
                                    status,
                                },
                            );
                        }
                        Projection::ReadMarker {
                            tenant,
                            conv,
                            account,
                            message,
                        } => {
                            markers.insert(
                                (tenant.as_str(), conv.as_str(), account.as_str()),
                                MarkerStep {
                                    tenant: tenant.as_str(),
                                    conv: conv.as_str(),
                                    account: account.as_str(),
                                    message: message.as_str(),
                                },
                            );
                        }
                        Projection::Message(row) => {
                            let key =
                                (row.tenant.as_str(), row.conv.as_str(), row.message.as_str());
                            if message_index.contains_key(&key) {
                                continue;
                            }
                            message_index.insert(key, messages.len());
                            messages.push(MessageStep {
                                row,
                                seq: i64_of(row.seq, "message seq")?,
                                preview: &row.preview,
                                deleted: row.deleted,
                                pos: 0,
                            });
                            let alloc = allocs.entry((key.0, key.1)).or_insert(ConvAlloc {
                                tenant: key.0,
                                conv: key.1,
                                count: 0,
                                max_created: row.created_at,
                                first_created: row.created_at,
                            });
                            alloc.count += 1;
                            alloc.max_created = alloc.max_created.max(row.created_at);
                        }
                        Projection::MessageUpdated {
                            tenant,
                            conv,
                            message,
                            preview,
                            deleted,
                        } => {
                            let key = (tenant.as_str(), conv.as_str(), message.as_str());
                            if let Some(&i) = message_index.get(&key) {
                                if let Some(m) = messages.get_mut(i) {
                                    m.preview = preview;
                                    m.deleted = *deleted;
                                }
                            } else {
                                updates.insert(
                                    key,
                                    UpdateStep {
                                        tenant: key.0,
                                        conv: key.1,
                                        message: key.2,
                                        preview,
                                        deleted: *deleted,
                                    },
                                );
                            }
                        }
                    }
                }
                steps.push(ChangeStep {
                    doc,
                    seq,
                    hash: &change.hash,
                    bytes: &change.bytes,
                    account: change.account.as_str(),
                    accepted_at: change.accepted_at,
                });
            }
            Ok(Self {
                docs: docs.into_values().collect(),
                changes: steps,
                bindings: bindings.into_values().collect(),
                conversations: conversations.into_values().collect(),
                members: members.into_values().collect(),
                markers: markers.into_values().collect(),
                messages,
                allocs: allocs.into_values().collect(),
                updates: updates.into_values().collect(),
            })
        }

        /// Compares each document's stored last seq (absent: 0) with the one the batch
        /// continues.
        pub fn check_seqs(&self, current: &HashMap<String, i64>) -> Result<()> {
            for d in &self.docs {
                if current.get(&d.doc).copied().unwrap_or(0) != d.prev {
                    return Err(StoreError::SeqConflict(d.doc.clone()));
                }
            }
            Ok(())
        }

        /// Every actor of the batch must now be bound to the batch's account.
        pub fn check_bindings(&self, bound: &[(String, Vec<u8>, String)]) -> Result<()> {
            let bound: HashMap<(&str, &[u8]), &str> = bound
                .iter()
                .map(|(t, a, acc)| ((t.as_str(), a.as_slice()), acc.as_str()))
                .collect();
            for b in &self.bindings {
                match bound.get(&(b.tenant, b.actor)) {
                    Some(&acc) if acc == b.account => {}
                    Some(&acc) => {
                        return Err(StoreError::Corrupt(format!(
                            "actor {} of tenant {} is bound to {acc}, not {}",
                            hex::encode(b.actor),
                            b.tenant,
                            b.account
                        )))
                    }
                    None => {
                        return Err(StoreError::Corrupt(format!(
                            "actor {} of tenant {} was not bound",
                            hex::encode(b.actor),
                            b.tenant
                        )))
                    }
                }
            }
            Ok(())
        }

        /// Fills in message positions from each conversation's new `last_pos`: the batch's
        /// messages of a conversation take the `count` positions ending there, in order.
        pub fn assign_positions(&mut self, ends: &HashMap<(String, String), i64>) -> Result<()> {
            let mut next: HashMap<(&str, &str), i64> = HashMap::with_capacity(self.allocs.len());
            for a in &self.allocs {
                let end = ends
                    .get(&(a.tenant.to_owned(), a.conv.to_owned()))
                    .copied()
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!(
                            "conversation {}/{} vanished while taking positions",
                            a.tenant, a.conv
                        ))
                    })?;
                next.insert((a.tenant, a.conv), end - a.count + 1);
            }
            for m in &mut self.messages {
                let key = (m.row.tenant.as_str(), m.row.conv.as_str());
                let slot = next.get_mut(&key).ok_or_else(|| {
                    StoreError::Corrupt(format!("no position for a message of {}/{}", key.0, key.1))
                })?;
                m.pos = *slot;
                *slot += 1;
            }
            Ok(())
        }
    }

    /// The checks of `compact` once the document's row is locked.
    pub(crate) fn check_compact(doc: &str, seq: i64, last: i64, snapshot_seq: i64) -> Result<()> {
        if seq > last {
            return Err(StoreError::Corrupt(format!(
                "cannot compact {doc} at seq {seq}: its last seq is {last}"
            )));
        }
        if seq < snapshot_seq {
            return Err(StoreError::SeqConflict(doc.to_owned()));
        }
        Ok(())
    }

    pub(crate) fn i64_of(v: u64, what: &str) -> Result<i64> {
        i64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} {v} is out of range")))
    }

    pub(crate) fn u64_of(v: i64, what: &str) -> Result<u64> {
        u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("stored {what} {v} is negative")))
    }

    pub(crate) fn limit_of(limit: usize) -> i64 {
        i64::try_from(limit).unwrap_or(i64::MAX)
    }

    pub(crate) fn tenant_corrupt(s: String) -> Result<TenantId> {
        TenantId::new(s.clone()).map_err(|e| StoreError::Corrupt(format!("tenant {s:?}: {e}")))
    }

    pub(crate) fn account(s: String) -> Result<AccountId> {
        AccountId::new(s.clone()).map_err(|e| StoreError::Corrupt(format!("account {s:?}: {e}")))
    }

    pub(crate) fn conv_id(s: String) -> Result<ConvId> {
        ConvId::new(s.clone()).map_err(|e| StoreError::Corrupt(format!("conversation {s:?}: {e}")))
    }

    pub(crate) fn message_id(s: String) -> Result<MessageId> {
        MessageId::new(s.clone()).map_err(|e| StoreError::Corrupt(format!("message {s:?}: {e}")))
    }

    /// Typed column access for the rows of either backend.
    pub(crate) trait Cols {
        fn text(&self, col: &str) -> Result<String>;
        fn opt_text(&self, col: &str) -> Result<Option<String>>;
        fn int(&self, col: &str) -> Result<i64>;
        fn flag(&self, col: &str) -> Result<bool>;
    }

    impl<R> Cols for R
    where
        R: Row,
        for<'c> &'c str: ColumnIndex<R>,
        for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
        for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
        for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    {
        fn text(&self, col: &str) -> Result<String> {
            Ok(self.try_get(col)?)
        }
        fn opt_text(&self, col: &str) -> Result<Option<String>> {
            Ok(self.try_get(col)?)
        }
        fn int(&self, col: &str) -> Result<i64> {
            Ok(self.try_get(col)?)
        }
        fn flag(&self, col: &str) -> Result<bool> {
            Ok(self.try_get(col)?)
        }
    }

    /// A `ConvRow` from the columns tenant, conv, kind, title, lifecycle, parent, created_at.
    pub(crate) fn conv_row<R: Cols>(row: &R) -> Result<ConvRow> {
        Ok(ConvRow {
            tenant: tenant_corrupt(row.text("tenant")?)?,
            conv: conv_id(row.text("conv")?)?,
            kind: row.text("kind")?,
            title: row.opt_text("title")?,
            lifecycle: row.text("lifecycle")?,
            parent: row.opt_text("parent")?.map(conv_id).transpose()?,
            created_at: row.int("created_at")?,
        })
    }

    /// A `MessageRow` from the columns `{prefix}message`, `{prefix}pos`, ... of a row.
    pub(crate) fn message_row<R: Cols>(
        row: &R,
        prefix: &str,
        tenant: &TenantId,
        conv: &ConvId,
    ) -> Result<MessageRow> {
        let col = |name: &str| format!("{prefix}{name}");
        Ok(MessageRow {
            tenant: tenant.clone(),
            conv: conv.clone(),
            message: message_id(row.text(&col("message"))?)?,
            doc: row.text(&col("doc_id"))?,
            seq: u64_of(row.int(&col("seq"))?, "message seq")?,
            author: account(row.text(&col("author"))?)?,
            kind: row.text(&col("kind"))?,
            created_at: row.int(&col("created_at"))?,
            preview: row.text(&col("preview"))?,
            deleted: row.flag(&col("deleted"))?,
            pos: row.int(&col("pos"))?,
        })
    }

    /// One row of the `conversations_of` query.
    pub(crate) fn conv_list_item<R: Cols>(row: &R) -> Result<ConvListItem> {
        let conv = conv_row(row)?;
        let last_message = match row.opt_text("l_message")? {
            Some(_) => Some(message_row(row, "l_", &conv.tenant, &conv.conv)?),
            None => None,
        };
        Ok(ConvListItem {
            role: row.text("role")?,
            unread: row.int("unread")?,
            last_message,
            conv,
        })
    }
}
