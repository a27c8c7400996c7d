//! Looks into a test server's store from outside (docs/STORAGE.md, "Cutting a part's
//! history", "What a delete removes"): whether any byte of it holds a marker, a part's
//! generation, the cuts still noted. They panic on failure: they only run inside tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use confab_core::ids::DocId;
use sqlx::{Connection, Row};

use crate::TestServer;

/// Whether `bytes` contain `marker`.
pub fn holds(bytes: &[u8], marker: &str) -> bool {
    bytes.windows(marker.len()).any(|w| w == marker.as_bytes())
}

/// A connection of the test's own to the server's SQLite file.
pub async fn sqlite(server: &TestServer) -> sqlx::SqliteConnection {
    let path = server.data_dir.join("confab.db");
    sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap()
}

/// Whether the server's store holds `marker`: SQLite's file and WAL after a checkpoint, or
/// everything `pg_dump` writes.
pub async fn store_holds(server: &TestServer, marker: &str) -> bool {
    match &server.database_url {
        None => {
            let path = server.data_dir.join("confab.db");
            let mut conn = sqlite(server).await;
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
            let wal = server.data_dir.join("confab.db-wal");
            [path, wal]
                .iter()
                .any(|p| holds(&std::fs::read(p).unwrap_or_default(), marker))
        }
        Some(url) => {
            let out = tokio::process::Command::new("pg_dump")
                .arg("--data-only")
                .arg(url)
                .output()
                .await
                .expect("pg_dump runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            // bytea is dumped as hex.
            let hex: String = marker.bytes().map(|b| format!("{b:02x}")).collect();
            holds(&out.stdout, marker) || holds(&out.stdout, &hex)
        }
    }
}

/// Whether SQLite's file or WAL holds `marker` as the server left them (no checkpoint of
/// the test's own): what a copy of the data folder would show.
pub fn sqlite_files_hold(server: &TestServer, marker: &str) -> bool {
    ["confab.db", "confab.db-wal"].iter().any(|f| {
        let bytes = std::fs::read(server.data_dir.join(f)).unwrap_or_default();
        holds(&bytes, marker)
    })
}

/// Whether a `VACUUM` (not autovacuum) ran on Postgres table `table` of the server's
/// database. The statistics reach the view a moment after the vacuum ends.
pub async fn pg_vacuumed(server: &TestServer, table: &str) -> bool {
    let sql = "SELECT count(*) FROM pg_stat_user_tables WHERE relname = $1 \
               AND last_vacuum IS NOT NULL";
    scalar(server, sql, Some(table.to_owned())).await > 0
}

/// One integer `sql` answers (its first column), with `bind` as `$1` when given.
pub async fn scalar(server: &TestServer, sql: &str, bind: Option<String>) -> i64 {
    match &server.database_url {
        None => {
            let mut conn = sqlite(server).await;
            let mut q = sqlx::query(sql);
            if let Some(b) = bind {
                q = q.bind(b);
            }
            let row = q.fetch_one(&mut conn).await.unwrap();
            let n: i64 = row.get(0);
            conn.close().await.unwrap();
            n
        }
        Some(url) => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            let mut q = sqlx::query(sql);
            if let Some(b) = bind {
                q = q.bind(b);
            }
            let row = q.fetch_one(&mut conn).await.unwrap();
            let n: i64 = row.get(0);
            conn.close().await.unwrap();
            n
        }
    }
}

/// The stored generation of `doc`.
pub async fn generation_of(server: &TestServer, doc: &DocId) -> i64 {
    let sql = "SELECT generation FROM docs WHERE doc_id = $1";
    scalar(server, sql, Some(doc.to_string())).await
}

/// Parts noted for a history cut, due or not yet (`cut_due`).
pub async fn cuts_noted(server: &TestServer) -> i64 {
    scalar(server, "SELECT count(*) FROM cut_due", None).await
}
