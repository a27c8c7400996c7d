//! A SQLite store: one table of keys and values in one database file, every batch one
//! transaction.

use std::path::{Path, PathBuf};

use confab_core::client::{LocalStore, StoreError, StoreOp};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::Error;

/// A durable key/value store in a SQLite database file: entries stay on disk (only what the
/// engine loads is in memory), so it suits stores of any size; each write is one
/// transaction, synced before it returns. Deleted values are zeroed (`secure_delete`), and
/// a write that deletes a prefix (a part's history) ends with a checkpoint that empties the
/// WAL, so no older page image of it stays there.
///
/// Keys compare as bytes (SQLite's `BINARY` collation on UTF-8), the order of Rust strings,
/// so a prefix scan is a range of the primary key.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
}

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
        Ok(SqliteStore { conn, path })
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

    fn write_now(&self, ops: Vec<StoreOp>) -> Result<(), rusqlite::Error> {
        // `&self` (the trait's): no transaction is open on this connection but this one.
        let tx = self.conn.unchecked_transaction()?;
        let drops_history = ops.iter().any(|op| matches!(op, StoreOp::DeletePrefix(_)));
        {
            let mut put =
                tx.prepare_cached("INSERT OR REPLACE INTO kv (key, value) VALUES (?1, ?2)")?;
            let mut delete = tx.prepare_cached("DELETE FROM kv WHERE key = ?1")?;
            for op in ops {
                match op {
                    StoreOp::Put(key, value) => {
                        put.execute(rusqlite::params![key, value])?;
                    }
                    StoreOp::Delete(key) => {
                        delete.execute([key])?;
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
                        for key in keys {
                            delete.execute([key])?;
                        }
                    }
                }
            }
        }
        tx.commit()?;
        if drops_history {
            // A part's history went (a fold, a new generation): the WAL still holds the
            // pages as they were; copy it into the database and empty it.
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        Ok(())
    }
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
        self.write_now(ops).map_err(err)
    }
}
