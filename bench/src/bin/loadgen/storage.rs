//! What the whole database holds per message after compaction, table by table.
//!
//! Measured with the server stopped, after `confab-server compact` and a vacuum that gives
//! back what compaction freed: `VACUUM FULL` on Postgres (rewrites every table and index),
//! `VACUUM` plus a truncating WAL checkpoint on SQLite (rewrites the file). Both leave only
//! live rows, so the number is what the data costs, not what the run's churn left behind
//! (a plain Postgres `VACUUM` keeps the files' size and reuses the space for later writes).
//! Each table is reported with its indexes (Postgres: its TOAST too), so the breakdown adds
//! up to the total; SQLite's total also counts its free pages and schema.
//!
//! A database holds a fixed floor whatever it stores: the empty schema, a page or more for
//! every table and index after the vacuum (~0.5 MB on Postgres). `empty_schema_bytes` measures
//! it on a database of its own that only the migrations ran on, so a run reports what its
//! messages cost beside the total (at 10,000 messages the floor alone is ~50 B/msg).

use std::path::Path;

use confab_testkit::pg::{self, Template};

use anyhow::{Context, Result};
use serde::Serialize;
use sqlx::{Connection, Row};

/// One table's bytes after the vacuum.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableBytes {
    pub table: String,
    /// Rows (Postgres: heap and TOAST).
    pub data: u64,
    pub indexes: u64,
}

/// The database after compaction and vacuum.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DbBytes {
    /// Every byte of the database (Postgres: all user tables with TOAST and indexes;
    /// SQLite: the file, WAL truncated).
    pub total: u64,
    /// Largest first.
    pub tables: Vec<TableBytes>,
}

impl DbBytes {
    /// `table data+indexes` per message for the tables above 0.5 B/msg, largest first.
    pub fn line(&self, messages: usize) -> String {
        let per = |b: u64| b as f64 / messages.max(1) as f64;
        let parts: Vec<String> = self
            .tables
            .iter()
            .filter(|t| per(t.data + t.indexes) >= 0.5)
            .map(|t| format!("{} {:.0}+{:.0}", t.table, per(t.data), per(t.indexes)))
            .collect();
        format!(
            "{:.0} B/msg = {} (rows+indexes)",
            per(self.total),
            parts.join(", ")
        )
    }
}

/// Vacuums and measures the database at `url` (Postgres) or in `data_dir` (SQLite).
pub async fn measure(url: Option<&str>, data_dir: &Path) -> Result<DbBytes> {
    match url {
        Some(url) => postgres(url).await,
        None => sqlite(&data_dir.join("confab.db")).await,
    }
}

/// The same measure of an empty database of `backend`'s kind: `bin migrate` on a fresh
/// one, then vacuumed and measured like a run's, then dropped.
/// `empty_schema`'s total, measured once per binary and backend in a process (every run of a
/// matrix would measure the same schema again).
pub async fn empty_schema_bytes(bin: &Path, postgres: bool) -> Result<u64> {
    static MEASURED: std::sync::Mutex<Vec<(std::path::PathBuf, bool, u64)>> =
        std::sync::Mutex::new(Vec::new());
    let known = |m: &[(std::path::PathBuf, bool, u64)]| {
        m.iter()
            .find(|(b, p, _)| b == bin && *p == postgres)
            .map(|(_, _, total)| *total)
    };
    if let Some(total) = known(&MEASURED.lock().unwrap_or_else(|e| e.into_inner())) {
        return Ok(total);
    }
    let total = empty_schema(bin, postgres).await?.total;
    MEASURED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((bin.to_owned(), postgres, total));
    Ok(total)
}

async fn empty_schema(bin: &Path, postgres: bool) -> Result<DbBytes> {
    static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("confab-schema-{}-{run}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let url = if postgres {
        Some(pg::fresh_database("confab_e2e", Template::Default).await?)
    } else {
        None
    };
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("--data-dir").arg(&dir);
    if let Some(url) = &url {
        cmd.arg("--database-url").arg(url);
    }
    let out = cmd
        .arg("migrate")
        .env("RUST_LOG", "warn")
        .env_remove("CONFAB_DATABASE_URL")
        .kill_on_drop(true)
        .output()
        .await
        .context("running confab-server migrate")?;
    if !out.status.success() {
        anyhow::bail!(
            "confab-server migrate failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let measured = measure(url.as_deref(), &dir).await;
    if let Some(url) = &url {
        pg::drop_database(url).await?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    measured
}

async fn postgres(url: &str) -> Result<DbBytes> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    sqlx::query("VACUUM FULL")
        .execute(&mut conn)
        .await
        .context("VACUUM FULL")?;
    let rows = sqlx::query(
        "SELECT relname::text AS t, pg_table_size(relid)::int8 AS d, \
         pg_indexes_size(relid)::int8 AS i FROM pg_stat_user_tables",
    )
    .fetch_all(&mut conn)
    .await?;
    let mut tables = rows
        .iter()
        .map(|r| {
            Ok(TableBytes {
                table: r.try_get("t")?,
                data: u64::try_from(r.try_get::<i64, _>("d")?)?,
                indexes: u64::try_from(r.try_get::<i64, _>("i")?)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    tables.sort_by_key(|t| std::cmp::Reverse(t.data + t.indexes));
    let total = tables.iter().map(|t| t.data + t.indexes).sum();
    Ok(DbBytes { total, tables })
}

async fn sqlite(path: &Path) -> Result<DbBytes> {
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
    let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
    sqlx::query("VACUUM").execute(&mut conn).await?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await?;
    // dbstat: every page of the file, named by the table or index it belongs to.
    let rows = sqlx::query(
        "SELECT m.tbl_name AS t, m.type = 'index' AS is_index, SUM(s.pgsize) AS n \
         FROM dbstat s JOIN sqlite_master m ON m.name = s.name \
         GROUP BY m.tbl_name, m.type = 'index'",
    )
    .fetch_all(&mut conn)
    .await
    .context("reading dbstat")?;
    let mut tables: Vec<TableBytes> = Vec::new();
    for r in &rows {
        let name: String = r.try_get("t")?;
        let bytes = u64::try_from(r.try_get::<i64, _>("n")?)?;
        let at = match tables.iter().position(|t| t.table == name) {
            Some(at) => at,
            None => {
                tables.push(TableBytes {
                    table: name,
                    ..TableBytes::default()
                });
                tables.len() - 1
            }
        };
        if r.try_get::<bool, _>("is_index")? {
            tables[at].indexes += bytes;
        } else {
            tables[at].data += bytes;
        }
    }
    conn.close().await?;
    tables.sort_by_key(|t| std::cmp::Reverse(t.data + t.indexes));
    let total = ["confab.db", "confab.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(path.with_file_name(f)).ok())
        .map(|m| m.len())
        .sum();
    Ok(DbBytes { total, tables })
}
