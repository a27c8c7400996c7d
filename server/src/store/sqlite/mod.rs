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
//!
//! Each concern's trait is implemented in a file of its own (`changelog.rs`,
//! `projections.rs`, `retention.rs`, `outboxes.rs`, `directory.rs`, `devices.rs`); statements both
//! backends write alike come from the concern's module (`crate::store::invites`, ...).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Connection, Sqlite};

use super::clients::Key;
use super::{Cluster, Result, Store, StoreError};

/// Runs `$call` on a connection of the reader pool, bound to `$conn`.
macro_rules! on_reader {
    ($store:expr, |$conn:ident| $call:expr) => {{
        let mut held = $store.reader.acquire().await?;
        let $conn: &mut sqlx::SqliteConnection = &mut held;
        $call.await
    }};
}

/// Runs `$call` on the writer connection, bound to `$conn`, replacing the connection if the
/// transaction failed inside SQLite (`SqliteStore::after_write`).
macro_rules! on_writer {
    ($store:expr, |$conn:ident| $call:expr) => {{
        let mut held = $store.writer.acquire().await?;
        let result = {
            let $conn: &mut sqlx::SqliteConnection = &mut held;
            $call.await
        };
        $store.after_write(&mut held, &result);
        result
    }};
}

mod changelog;
mod commit;
mod devices;
mod directory;
mod forget;
mod outboxes;
mod projections;
mod retention;
mod search_backlog;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a writer waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a caller waits for a connection of this process's pools (the one writer is
/// shared by the committer, compaction, the audit log and the health probe).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// The blob the write probe stores (see migration 0002): a probe needs room like a commit.
const PROBE_BYTES: i64 = 64 * 1024;

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
    /// `synchronous=FULL` (durable commits), `secure_delete`, foreign keys on, a busy timeout. Does not
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
            // Deleted rows are overwritten with zeros, in the file and in the WAL, so a
            // deleted message's stored rows do not linger in free pages (docs/STORAGE.md,
            // "What a delete removes").
            .pragma("secure_delete", "ON")
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
        on_writer!(self, |conn| probe_on(conn))
    }
}

/// One node: nobody to tell, nothing to share, no other node to know of.
#[async_trait]
impl Cluster for SqliteStore {
    fn cluster_options(&self) -> Option<sqlx::postgres::PgConnectOptions> {
        None
    }

    async fn notify(&self, _channel: &'static str, _payloads: &[String]) -> Result<()> {
        Ok(())
    }

    async fn sync_clients(
        &self,
        _node: &str,
        _came: &[Key],
        _went: &[Key],
        _reset: bool,
    ) -> Result<()> {
        Ok(())
    }

    async fn clients_elsewhere(
        &self,
        _node: &str,
        _accounts: &[Key],
        _alive_ms: i64,
    ) -> Result<Vec<Key>> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Row;

    use super::*;

    /// The statements both backends share are written with `$n` placeholders: sqlx binds
    /// SQLite's `$NNN` parameters by their number, not by where they first appear, as it
    /// binds `?NNN`.
    #[tokio::test]
    async fn dollar_parameters_bind_by_number() {
        let store = SqliteStore::memory().await.expect("memory");
        let row = sqlx::query("SELECT $3 || $1 || $2 || $1 AS s, $2 AS again")
            .bind("a")
            .bind("b")
            .bind("c")
            .fetch_one(&store.reader)
            .await
            .expect("query");
        assert_eq!(row.get::<String, _>("s"), "caba");
        assert_eq!(row.get::<String, _>("again"), "b");
    }
}
