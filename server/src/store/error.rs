//! The storage layer's error, and which errors mean "the database cannot be used right now"
//! (the class that turns the health state down).

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// SQLite called on the writer's own handle (the group commit, `sqlite/commit.rs`).
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Another writer took the next seq of this document first (several server processes).
    #[error("seq conflict on {0}: another node committed first")]
    SeqConflict(String),
    /// The conversation's policy (members, roles, settings, lifecycle) moved on another node
    /// after the batch was validated against it.
    #[error("policy of {0} moved: another node changed the conversation first")]
    PolicyMoved(String),
    /// The storage is known to be down (unreachable, full): failed at once, not tried
    /// (by the health state's guard).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// The database cannot be used right now (see [`is_unavailable`]): retryable.
    pub fn is_unavailable(&self) -> bool {
        is_unavailable(self)
    }

    /// Another node committed first (a seq taken, or the policy moved): the batch was
    /// validated on state that is no longer the latest. Catch up and validate again.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            StoreError::SeqConflict(_) | StoreError::PolicyMoved(_)
        )
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Whether a storage error means "the database cannot be used right now" (connection lost
/// or refused, pool exhausted or closed, server shutting down, disk full, file unwritable)
/// rather than something about the request. Those are retryable for the client
/// (`unavailable`) and turn the health state down.
pub fn is_unavailable(e: &StoreError) -> bool {
    match e {
        StoreError::Unavailable(_) => true,
        StoreError::Database(e) => sqlx_unavailable(e),
        StoreError::Sqlite(e) => e
            .sqlite_error()
            .is_some_and(|f| sqlite_unavailable(f.extended_code & 0xff)),
        StoreError::Migrate(_)
        | StoreError::Corrupt(_)
        | StoreError::SeqConflict(_)
        | StoreError::PolicyMoved(_) => false,
    }
}

/// The typed classification of a sqlx error (see [`is_unavailable`]).
pub fn sqlx_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                pg_unavailable(pg.code())
            } else if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // The code is SQLite's extended result code (as text); its low byte is
                // the primary code.
                db.code()
                    .and_then(|c| c.parse::<i32>().ok())
                    .is_some_and(|c| sqlite_unavailable(c & 0xff))
            } else {
                false
            }
        }
        _ => false,
    }
}

/// Postgres SQLSTATEs of the unavailable class: 08 connection exception, 53 insufficient
/// resources (53100 disk full, 53300 too many connections, ...), 57P operator
/// intervention (admin or crash shutdown, cannot connect now), 58030 I/O error.
fn pg_unavailable(sqlstate: &str) -> bool {
    sqlstate.starts_with("08")
        || sqlstate.starts_with("53")
        || sqlstate.starts_with("57P")
        || sqlstate == "58030"
}

/// SQLite primary result codes of the unavailable class.
fn sqlite_unavailable(primary: i32) -> bool {
    const SQLITE_BUSY: i32 = 5;
    const SQLITE_READONLY: i32 = 8;
    const SQLITE_IOERR: i32 = 10;
    const SQLITE_FULL: i32 = 13;
    const SQLITE_CANTOPEN: i32 = 14;
    matches!(
        primary,
        SQLITE_BUSY | SQLITE_READONLY | SQLITE_IOERR | SQLITE_FULL | SQLITE_CANTOPEN
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_and_disk_errors_are_unavailable_others_are_not() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(sqlx_unavailable(&io));
        assert!(sqlx_unavailable(&sqlx::Error::PoolTimedOut));
        assert!(sqlx_unavailable(&sqlx::Error::PoolClosed));
        assert!(!sqlx_unavailable(&sqlx::Error::RowNotFound));
        for code in [
            "08006", "08001", "57P01", "57P03", "53100", "53300", "58030",
        ] {
            assert!(pg_unavailable(code), "{code}");
        }
        for code in ["23505", "40001", "57014", "42P01", "CF001"] {
            assert!(!pg_unavailable(code), "{code}");
        }
        // SQLITE_FULL, SQLITE_IOERR_WRITE (10 | 3 << 8), SQLITE_CANTOPEN.
        for code in [13, (10 | (3 << 8)) & 0xff, 14] {
            assert!(sqlite_unavailable(code), "{code}");
        }
        // SQLITE_CONSTRAINT, SQLITE_CORRUPT, SQLITE_ERROR.
        for code in [19, 11, 1] {
            assert!(!sqlite_unavailable(code), "{code}");
        }
        let full = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(13), None);
        assert!(is_unavailable(&StoreError::Sqlite(full)));
        let constraint = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(2067), None);
        assert!(!is_unavailable(&StoreError::Sqlite(constraint)));
        assert!(is_unavailable(&StoreError::Unavailable("down".into())));
        assert!(!is_unavailable(&StoreError::SeqConflict("d".into())));
        assert!(!is_unavailable(&StoreError::Corrupt("x".into())));
    }
}
