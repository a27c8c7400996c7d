//! Postgres backend: production, and several server processes sharing one database.
//!
//! Acceptance stays serialized per document across nodes: `commit` locks the rows of the
//! batch's documents (`SELECT ... ORDER BY doc_id FOR UPDATE`, a fixed order so two nodes
//! never deadlock on them), compares each document's `last_seq` with the seq the batch
//! continues and refuses the whole batch with `SeqConflict` if another node got there
//! first. Message positions are taken with `UPDATE conversations SET last_pos = last_pos + n
//! ... RETURNING last_pos` under the row lock, so they are unique and gap-free across nodes.
//!
//! A batch is written by one call of the `confab_commit` function (migration 0002), so one
//! round trip whatever its size: the rows travel as arrays and are expanded with `UNNEST`.
//! (The current text of every SQL function the migrations define: `migrations/FUNCTIONS.md`.)
//!
//! Each concern's trait is implemented in a file of its own (`changelog.rs`,
//! `projections.rs`, `retention.rs`, `outboxes.rs`, `directory.rs`, `devices.rs`, `cluster.rs`);
//! statements both backends write alike come from the concern's module
//! (`crate::store::invites`, ...).
//!
//! Text ordering (`doc_ids`, the tie-break of `conversations_of`, lock order) is bytewise
//! (`COLLATE "C"`), as in SQLite, whatever the database's default collation.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::{Result, Store};

/// Runs `$call` on a connection of the pool, bound to `$conn`.
macro_rules! on_pool {
    ($store:expr, |$conn:ident| $call:expr) => {{
        let mut held = $store.pool.acquire().await?;
        let $conn: &mut sqlx::PgConnection = &mut held;
        $call.await
    }};
}

mod changelog;
mod cluster;
mod devices;
mod directory;
mod forget;
mod outboxes;
mod projections;
mod retention;
mod rows;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections in the pool.
const POOL_SIZE: u32 = 8;

/// Connections of the units' reader thread (`engine::reader`): its reads give their
/// connection back as soon as the answer arrives, so a few serve every unit.
const READ_POOL_SIZE: u32 = 4;

/// Connections of the committer's own pool: it runs one transaction at a time, and one
/// backend serving every commit keeps its caches warm (measured: 13% less database CPU
/// than two taking turns). A broken connection is replaced on the next commit.
const COMMIT_POOL_SIZE: u32 = 1;

/// What the write probe stores: 16 KiB, never compressed (migration 0007), so it needs
/// new pages.
static PROBE_PAD: [u8; 16 << 10] = [0xa5; 16 << 10];

/// How long a caller waits for a connection: short, so an outage is reported (and the
/// health state turns down) in about this time instead of stalling submits.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// The Postgres store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// One connection of its own for the health prober: a pool exhausted by stuck queries
    /// does not stop it from noticing that the database is back.
    probe: PgPool,
}

impl PgStore {
    /// Connects a pool of 8 connections to `url` (`postgres://user@host:port/db`). Does not
    /// migrate: call [`Store::migrate`].
    pub async fn connect(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await?;
        // The probe's own timeout (`StorageTimeouts::probe`) bounds its acquire too.
        let probe = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with((*pool.connect_options()).clone());
        Ok(Self { pool, probe })
    }

    /// Closes the pool (waits for checked-out connections).
    pub async fn close(&self) {
        self.pool.close().await;
        self.probe.close().await;
    }
}

#[async_trait]
impl Store for PgStore {
    fn for_commit_thread(&self) -> Option<std::sync::Arc<dyn Store>> {
        // Lazy: the connections are opened by their first user, the committer's runtime,
        // so their I/O is driven there and not behind the connection tasks.
        let options = (*self.pool.connect_options()).clone();
        // No ping before each commit (sqlx's default): it is a second round trip on every
        // commit's critical path. A dead connection fails that one commit, whose clients
        // resubmit (an accepted change resubmitted is an ack), and is replaced.
        let pool = PgPoolOptions::new()
            .max_connections(COMMIT_POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
            .connect_lazy_with(options);
        Some(std::sync::Arc::new(PgStore {
            pool,
            probe: self.probe.clone(),
        }))
    }

    fn for_read_thread(&self) -> Option<std::sync::Arc<dyn Store>> {
        // Lazy, as the committer's: made and driven by the reader thread's runtime.
        let pool = PgPoolOptions::new()
            .max_connections(READ_POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with((*self.pool.connect_options()).clone());
        Some(std::sync::Arc::new(PgStore {
            pool,
            probe: self.probe.clone(),
        }))
    }

    async fn migrate(&self) -> Result<()> {
        // sqlx takes an advisory lock: nodes starting together migrate once.
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn probe(&self, write: bool) -> Result<()> {
        if write {
            // Proves the database takes writes that need new disk space, as commits do
            // (migration 0007): an update in place would succeed on a full disk.
            let mut tx = self.probe.begin().await?;
            sqlx::query("TRUNCATE storage_probe_space")
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO storage_probe_space (id, pad) VALUES (1, $1)")
                .bind(&PROBE_PAD[..])
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE storage_probe SET at = $1 WHERE id = 1")
                .bind(crate::clock::now_ms())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        } else {
            sqlx::query("SELECT 1").execute(&self.probe).await?;
        }
        Ok(())
    }
}
