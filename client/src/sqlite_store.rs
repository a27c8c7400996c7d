//! A SQLite store: one table of keys and values in one database file, every batch one
//! transaction.

use std::path::{Path, PathBuf};

use confab_core::client::{LocalStore, StoreError, StoreOp};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior};

use crate::forgetter::Forgetter;
use crate::Error;
#[cfg(doc)]
use crate::FORGET_WITHIN;

/// A durable key/value store in a SQLite database file: entries stay on disk (only what the
/// engine loads is in memory), so it suits stores of any size; each write is one
/// transaction, synced before it returns. Deleted values are zeroed (`secure_delete`), and
/// after a write that deletes or replaces a value a thread of the store's own empties the
/// WAL (a `TRUNCATE` checkpoint) within [`FORGET_WITHIN`], so no older page image of it stays
/// there; so does opening the store, and dropping it.
///
/// Keys compare as bytes (SQLite's `BINARY` collation on UTF-8), the order of Rust strings,
/// so a prefix scan is a range of the primary key.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    forgetter: Forgetter,
}

/// How long a write may wait for the forgetting thread's checkpoint (milliseconds at most).
const BUSY_WAIT: Duration = Duration::from_secs(10);

fn err(e: rusqlite::Error) -> StoreError {
    StoreError(e.to_string())
}

/// SQLite's refusals as I/O errors, so `Error::OpenStore` says what kind of failure it was.
fn io_error(e: rusqlite::Error) -> std::io::Error {
    use rusqlite::ErrorCode;
    use std::io::ErrorKind;
    let kind = match e.sqlite_error_code() {
        Some(ErrorCode::CannotOpen) => ErrorKind::NotFound,
        Some(ErrorCode::PermissionDenied) => ErrorKind::PermissionDenied,
        Some(ErrorCode::ReadOnly) => ErrorKind::ReadOnlyFilesystem,
        Some(ErrorCode::NotADatabase) => ErrorKind::InvalidData,
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => ErrorKind::ResourceBusy,
        _ => ErrorKind::Other,
    };
    std::io::Error::new(kind, e)
}

impl SqliteStore {
    /// Opens the database file at `path`, creating it (and its table) if it does not exist.
    /// Its folder must exist: a missing or read-only folder, or a file that is not a SQLite
    /// database, is `Error::OpenStore`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        let failed = |e: rusqlite::Error| Error::OpenStore {
            path: path.clone(),
            source: io_error(e),
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).map_err(failed)?;
        // WAL: a write appends to the log instead of rewriting pages in place; FULL syncs the
        // log at every commit, so an acknowledged write survives a power loss (the outbox
        // depends on it). Both also fail here, at open, when the folder is read-only.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(failed)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(failed)?;
        // A deleted or replaced value's bytes are zeroed where they were, not left in free
        // space (docs/STORAGE.md, "What a delete removes").
        conn.pragma_update(None, "secure_delete", "ON")
            .map_err(failed)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL) WITHOUT ROWID",
        )
        .map_err(failed)?;
        conn.busy_timeout(BUSY_WAIT).map_err(failed)?;
        let wiper = Connection::open_with_flags(&path, flags).map_err(failed)?;
        wiper.busy_timeout(BUSY_WAIT).map_err(failed)?;
        let forgetter = Forgetter::start("confab-sqlite-forget", move || {
            empty_wal(&wiper).unwrap_or(false)
        })
        .map_err(|source| Error::OpenStore {
            path: path.clone(),
            source,
        })?;
        // What a crash may have left dead in the WAL goes too.
        forgetter.poke();
        Ok(SqliteStore {
            conn,
            path,
            forgetter,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn scan_now(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, rusqlite::Error> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT key, value FROM kv WHERE key >= ?1 ORDER BY key")?;
        let mut rows = stmt.query([prefix])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let key: String = row.get(0)?;
            if !key.starts_with(prefix) {
                break;
            }
            out.push((key, row.get(1)?));
        }
        Ok(out)
    }

    /// The first `limit` entries under `prefix` from `from` on; with `values` false, keys
    /// alone (their values left empty). A range read: its cost is the page's, not the
    /// prefix's.
    fn page_now(
        &self,
        prefix: &str,
        from: &str,
        limit: usize,
        values: bool,
    ) -> Result<Vec<(String, Vec<u8>)>, rusqlite::Error> {
        let start = if from > prefix { from } else { prefix };
        let sql = if values {
            "SELECT key, value FROM kv WHERE key >= ?1 ORDER BY key"
        } else {
            "SELECT key, x'' FROM kv WHERE key >= ?1 ORDER BY key"
        };
        let mut stmt = self.conn.prepare_cached(sql)?;
        let mut rows = stmt.query([start])?;
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(row) = rows.next()? else {
                break;
            };
            let key: String = row.get(0)?;
            if !key.starts_with(prefix) {
                break;
            }
            out.push((key, row.get(1)?));
        }
        Ok(out)
    }

    /// Applies `ops` in one transaction; whether a value was deleted or replaced.
    fn write_now(&self, ops: Vec<StoreOp>) -> Result<bool, rusqlite::Error> {
        // `&self` (the trait's): no transaction is open on this connection but this one.
        // Immediate: the write lock is taken (waiting out a wipe in progress) before
        // anything is read, so a WAL the wipe emptied meanwhile never makes it stale.
        let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
        let mut dropped = false;
        {
            let mut add =
                tx.prepare_cached("INSERT OR IGNORE INTO kv (key, value) VALUES (?1, ?2)")?;
            let mut replace =
                tx.prepare_cached("UPDATE kv SET value = ?2 WHERE key = ?1 AND value IS NOT ?2")?;
            let mut delete = tx.prepare_cached("DELETE FROM kv WHERE key = ?1")?;
            for op in ops {
                match op {
                    StoreOp::Put(key, value) => {
                        if add.execute(rusqlite::params![key, value])? == 0 {
                            dropped |= replace.execute(rusqlite::params![key, value])? > 0;
                        }
                    }
                    StoreOp::Delete(key) => {
                        dropped |= delete.execute([key])? > 0;
                    }
                    StoreOp::DeletePrefix(prefix) => {
                        // The keys first, then each one: exactly those that start with the
                        // prefix, by the same test the scan makes.
                        let keys: Vec<String> = {
                            let mut stmt = tx.prepare_cached(
                                "SELECT key FROM kv WHERE key >= ?1 ORDER BY key",
                            )?;
                            let mut rows = stmt.query([&prefix])?;
                            let mut keys = Vec::new();
                            while let Some(row) = rows.next()? {
                                let key: String = row.get(0)?;
                                if !key.starts_with(&prefix) {
                                    break;
                                }
                                keys.push(key);
                            }
                            keys
                        };
                        dropped |= !keys.is_empty();
                        for key in keys {
                            delete.execute([key])?;
                        }
                    }
                }
            }
        }
        tx.commit()?;
        Ok(dropped)
    }

    /// Empties the WAL now, so nothing deleted or replaced so far is left in the store's
    /// files (the store does it by itself within [`FORGET_WITHIN`]). `Ok(false)`: another
    /// connection kept it from finishing.
    pub fn forget_now(&self) -> Result<bool, StoreError> {
        empty_wal(&self.conn).map_err(err)
    }
}

/// Copies the WAL into the database and truncates it to nothing (the older page images a
/// delete or overwrite left there go with it). `Ok(false)`: a reader or writer of another
/// connection kept it from finishing.
fn empty_wal(conn: &Connection) -> Result<bool, rusqlite::Error> {
    let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))?;
    Ok(busy == 0)
}

impl LocalStore for SqliteStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn
            .prepare_cached("SELECT value FROM kv WHERE key = ?1")
            .and_then(|mut stmt| stmt.query_row([key], |row| row.get(0)).optional())
            .map_err(err)
    }

    async fn scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.scan_now(prefix).map_err(err)
    }

    async fn write(&self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        if self.write_now(ops).map_err(err)? {
            self.forgetter.poke();
        }
        Ok(())
    }

    async fn scan_page(
        &self,
        prefix: &str,
        from: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.page_now(prefix, from, limit, true).map_err(err)
    }

    async fn scan_page_keys(
        &self,
        prefix: &str,
        from: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let page = self.page_now(prefix, from, limit, false).map_err(err)?;
        Ok(page.into_iter().map(|(k, _)| k).collect())
    }
}
