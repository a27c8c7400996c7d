//! Lean storage (Postgres migration 0010, SQLite 0005; docs/BENCHMARKS.md, "Bytes on disk"),
//! on both backends through the real engine and acceptor:
//!
//! - a change folded into a snapshot is acked when resubmitted, found in the snapshot's
//!   document (no table keeps compacted hashes), by the engine that held it before the
//!   compaction and by a fresh one;
//! - a database at the schema before, holding data written the way the previous schema
//!   stored it (a compacted bucket with a live tail, its compacted hashes, projection rows),
//!   migrates forward and still serves catch-up, the REST listings and acks.
//!
//! Postgres must be reachable on 127.0.0.1:5432 (user postgres, trust auth): the Postgres
//! cases fail otherwise, they never skip.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use confab_core::automerge::Change;
use confab_core::doc;
use confab_core::ids::{DocId, TenantId};
use confab_server::engine::{now_ms, Engine, EngineConfig, SubmitOutcome};
use confab_server::maintenance;
use confab_server::metrics::Metrics;
use confab_server::store::postgres::PgStore;
use confab_server::store::sqlite::SqliteStore;
use confab_server::store::Store;
use confab_testkit::device::Device;
use confab_testkit::fixture::{text_message, ConvFixture};
use confab_testkit::ids::{acc, conv_id, tenant};
use confab_testkit::pg::{self, Template};
use sqlx::{Connection, Executor, PgConnection};

/// A schema before lean storage, per backend: its migrations up to this version.
const PG_PREVIOUS: i64 = 8;
const SQLITE_PREVIOUS: i64 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh database of one backend (Postgres: dropped by `finish`).
struct Db {
    backend: Backend,
    dir: tempfile::TempDir,
    /// The Postgres database's URL.
    pg_url: Option<String>,
}

impl Db {
    async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let pg_url = match backend {
            Backend::Postgres => Some(
                pg::fresh_database("confab_lean", Template::Default)
                    .await
                    .expect("a fresh Postgres database"),
            ),
            Backend::Sqlite => None,
        };
        Db {
            backend,
            dir,
            pg_url,
        }
    }

    fn url(&self) -> String {
        self.pg_url.clone().expect("a Postgres database")
    }

    fn sqlite_path(&self) -> PathBuf {
        self.dir.path().join("confab.db")
    }

    /// The store, not migrated.
    async fn open(&self) -> Arc<dyn Store> {
        match self.backend {
            Backend::Sqlite => Arc::new(
                SqliteStore::open(&self.sqlite_path())
                    .await
                    .expect("open SQLite"),
            ),
            Backend::Postgres => Arc::new(PgStore::connect(&self.url()).await.expect("connect")),
        }
    }

    /// Applies the migrations up to the one before lean storage, as a server of that
    /// version did.
    async fn migrate_to_previous(&self) {
        let (folder, last) = match self.backend {
            Backend::Sqlite => ("sqlite", SQLITE_PREVIOUS),
            Backend::Postgres => ("postgres", PG_PREVIOUS),
        };
        let from = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(folder);
        let to = self.dir.path().join("old-migrations");
        std::fs::create_dir_all(&to).expect("folder");
        for entry in std::fs::read_dir(&from).expect("migrations") {
            let path = entry.expect("entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).expect("name");
            let version: i64 = name[..4].parse().expect("version");
            if version <= last {
                std::fs::copy(&path, to.join(name)).expect("copy");
            }
        }
        let migrator = sqlx::migrate::Migrator::new(to.as_path())
            .await
            .expect("migrator");
        match self.backend {
            Backend::Sqlite => {
                let options = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(self.sqlite_path())
                    .create_if_missing(true)
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
                let pool = sqlx::SqlitePool::connect_with(options)
                    .await
                    .expect("sqlite");
                migrator.run(&pool).await.expect("old migrations");
                pool.close().await;
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&self.url()).await.expect("pg");
                migrator.run(&pool).await.expect("old migrations");
                pool.close().await;
            }
        }
    }

    /// Runs SQL statements (`;`-separated, literals only).
    async fn exec(&self, sql: &str) {
        match self.backend {
            Backend::Sqlite => {
                let options =
                    sqlx::sqlite::SqliteConnectOptions::new().filename(self.sqlite_path());
                let mut conn = sqlx::SqliteConnection::connect_with(&options)
                    .await
                    .expect("sqlite");
                conn.execute(sqlx::raw_sql(sql)).await.expect("sql");
                conn.close().await.expect("close");
            }
            Backend::Postgres => {
                let mut conn = PgConnection::connect(&self.url()).await.expect("pg");
                conn.execute(sqlx::raw_sql(sql)).await.expect("sql");
                conn.close().await.expect("close");
            }
        }
    }

    /// A blob literal.
    fn blob(&self, bytes: &[u8]) -> String {
        match self.backend {
            Backend::Sqlite => format!("X'{}'", hex::encode(bytes)),
            Backend::Postgres => format!("'\\x{}'::bytea", hex::encode(bytes)),
        }
    }

    async fn finish(self) {
        if let Some(url) = &self.pg_url {
            pg::drop_database(url).await.expect("drop database");
        }
    }
}

fn engine(store: &Arc<dyn Store>) -> Engine {
    Engine::new(
        store.clone(),
        Arc::new(Metrics::new()),
        EngineConfig::default(),
    )
}

/// The seq of the one ack `outcome` holds (panics on anything else).
fn acked(outcome: &[SubmitOutcome]) -> u64 {
    match outcome {
        [SubmitOutcome::Ack { seq, .. }] => *seq,
        other => panic!("expected one ack, got {other:?}"),
    }
}

async fn submit(engine: &Engine, dev: &Device, doc: &DocId, change: &Change) -> u64 {
    let outcome = engine
        .submit(
            doc.clone(),
            dev.author.clone(),
            vec![change.raw_bytes().to_vec()],
        )
        .await;
    acked(&outcome)
}

async fn compacted_changes_are_acked_from_the_snapshot(backend: Backend) {
    let db = Db::new(backend).await;
    let store = db.open().await;
    store.migrate().await.expect("migrate");
    let first = engine(&store);
    let mut alice = Device::new("alice", 1);
    let conv = conv_id("lean");
    let now = now_ms();
    let (conv_doc, creation) = ConvFixture::group(acc("alice"), now)
        .write(&mut alice, &conv)
        .expect("create");
    submit(&first, &alice, &conv_doc, &creation).await;
    let mut messages = Vec::new();
    let mut bucket = conv_doc.clone();
    for (i, body) in ["one", "two", "three"].iter().enumerate() {
        let (doc, change) =
            text_message(&mut alice, &conv, &format!("m{i}"), body, now).expect("message");
        assert_eq!(submit(&first, &alice, &doc, &change).await, i as u64 + 1);
        bucket = doc;
        messages.push(change);
    }

    let report = maintenance::compact_all(&*store).await.expect("compact");
    assert_eq!(report.changes_folded, 4);
    let stored = store.load_doc(&bucket).await.expect("load");
    assert_eq!((stored.snapshot_seq, stored.changes.len()), (3, 0));

    // The engine that held the bucket before the compaction (its memory knows nothing of
    // the snapshot) and a fresh one that loads it: both ack with the snapshot's seq.
    assert_eq!(submit(&first, &alice, &bucket, &messages[0]).await, 3);
    let fresh = engine(&store);
    for change in &messages {
        assert_eq!(submit(&fresh, &alice, &bucket, change).await, 3);
    }
    assert_eq!(submit(&fresh, &alice, &conv_doc, &creation).await, 1);
    // The log goes on after the snapshot, and nothing was stored twice.
    let (_, next) = text_message(&mut alice, &conv, "m3", "four", now).expect("message");
    assert_eq!(submit(&fresh, &alice, &bucket, &next).await, 4);
    let rows = store
        .messages(&tenant(), &conv, None, 10)
        .await
        .expect("messages");
    let ids: Vec<String> = rows.iter().map(|r| r.message.to_string()).collect();
    assert_eq!(ids, ["m3", "m2", "m1", "m0"]);
    db.finish().await;
}

/// Writes, with the previous schema's SQL, what a server of that version stored for one
/// group conversation of alice's with three messages in one bucket compacted at seq 2: a
/// snapshot, the third change live, the compacted hashes, the projection rows.
async fn store_the_previous_way(db: &Db, alice: &mut Device) -> (DocId, Vec<Change>, i64) {
    let conv = conv_id("legacy");
    let now = now_ms();
    let (conv_doc, creation) = ConvFixture::group(acc("alice"), now)
        .write(alice, &conv)
        .expect("create");
    let mut changes = Vec::new();
    let mut bucket = conv_doc.clone();
    for (i, body) in ["one", "two", "three"].iter().enumerate() {
        let (doc, change) =
            text_message(alice, &conv, &format!("m{i}"), body, now + i as i64).expect("message");
        bucket = doc;
        changes.push(change);
    }
    let mut snapshot = doc::genesis(&bucket).expect("genesis");
    snapshot
        .apply_changes(changes[..2].to_vec())
        .expect("apply");
    let snapshot = snapshot.save();
    let (t, c, b, cd) = (
        tenant(),
        conv.as_str(),
        bucket.to_string(),
        conv_doc.to_string(),
    );
    let hash = |ch: &Change| db.blob(&ch.hash().0);
    let mut sql = format!(
        "INSERT INTO docs (doc_id, tenant, last_seq, policy_seq) VALUES ('{cd}', '{t}', 1, 1);
         INSERT INTO docs (doc_id, tenant, last_seq, snapshot, snapshot_seq)
             VALUES ('{b}', '{t}', 3, {}, 2);
         INSERT INTO changes (doc_id, seq, hash, bytes, account, accepted_at)
             VALUES ('{cd}', 1, {}, {}, 'alice', {now});
         INSERT INTO changes (doc_id, seq, hash, bytes, account, accepted_at)
             VALUES ('{b}', 3, {}, {}, 'alice', {now});
         INSERT INTO compacted_hashes (doc_id, hash, seq) VALUES ('{b}', {}, 1), ('{b}', {}, 2);
         INSERT INTO actors (tenant, actor, account, bound_at)
             VALUES ('{t}', {}, 'alice', {now});
         INSERT INTO conversations (tenant, conv, kind, title, lifecycle, parent, created_at,
             last_pos, last_activity) VALUES ('{t}', '{c}', 'group', NULL, 'active', NULL, {now},
             3, {now});
         INSERT INTO memberships (tenant, conv, account, role, status)
             VALUES ('{t}', '{c}', 'alice', 'owner', 'active');
         INSERT INTO read_markers (tenant, conv, account, message)
             VALUES ('{t}', '{c}', 'alice', 'm1');",
        db.blob(&snapshot),
        hash(&creation),
        db.blob(creation.raw_bytes()),
        hash(&changes[2]),
        db.blob(changes[2].raw_bytes()),
        hash(&changes[0]),
        hash(&changes[1]),
        db.blob(alice.actor.to_bytes()),
    );
    for (i, body) in ["one", "two", "three"].iter().enumerate() {
        sql.push_str(&format!(
            "INSERT INTO messages (tenant, conv, message, pos, doc_id, seq, author, kind,
                 created_at, preview, deleted)
             VALUES ('{t}', '{c}', 'm{i}', {}, '{b}', {}, 'alice', 'text', {}, '{body}', {});",
            i + 1,
            i + 1,
            now + i as i64,
            if db.backend == Backend::Postgres {
                "FALSE"
            } else {
                "0"
            },
        ));
    }
    db.exec(&sql).await;
    (bucket, changes, now)
}

async fn a_previous_schema_migrates_forward_with_its_data(backend: Backend) {
    let db = Db::new(backend).await;
    db.migrate_to_previous().await;
    let mut alice = Device::new("alice", 1);
    let (bucket, changes, now) = store_the_previous_way(&db, &mut alice).await;
    let store = db.open().await;
    store.migrate().await.expect("migrate forward");
    let t: TenantId = tenant();
    let conv = conv_id("legacy");

    // Listings: the rows kept their positions, bucket and previews.
    let rows = store.messages(&t, &conv, None, 10).await.expect("messages");
    let got: Vec<(String, i64, String, u64, String)> = rows
        .iter()
        .map(|r| {
            (
                r.message.to_string(),
                r.pos,
                r.doc.clone(),
                r.seq,
                r.preview.clone(),
            )
        })
        .collect();
    let b = bucket.to_string();
    assert_eq!(
        got,
        [
            ("m2".into(), 3, b.clone(), 3, "three".into()),
            ("m1".into(), 2, b.clone(), 2, "two".into()),
            ("m0".into(), 1, b.clone(), 1, "one".into()),
        ]
    );
    let list = store
        .conversations_of(&t, &acc("alice"))
        .await
        .expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(
        list[0].last_message.as_ref().map(|m| m.message.to_string()),
        Some("m2".to_owned())
    );

    // Catch-up: after any seq, the snapshot covers what was folded and the log the rest.
    let tail = store.log_tail(&bucket, 0, 100).await.expect("tail");
    assert_eq!(tail.snapshot_seq, 2);
    assert_eq!(
        tail.changes.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        [3]
    );
    for after in [0, 1, 2] {
        let page = store
            .changes_after(&bucket, after, 10)
            .await
            .expect("after");
        assert_eq!(page.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [3]);
    }

    // Acks: compacted (the snapshot's seq) and live (its own), then the log goes on.
    let engine = engine(&store);
    assert_eq!(submit(&engine, &alice, &bucket, &changes[0]).await, 2);
    assert_eq!(submit(&engine, &alice, &bucket, &changes[1]).await, 2);
    assert_eq!(submit(&engine, &alice, &bucket, &changes[2]).await, 3);
    let (doc, next) = text_message(&mut alice, &conv, "m3", "four", now + 3).expect("message");
    assert_eq!(doc, bucket, "the same bucket");
    assert_eq!(submit(&engine, &alice, &bucket, &next).await, 4);
    let rows = store.messages(&t, &conv, None, 10).await.expect("messages");
    assert_eq!(rows.iter().map(|r| r.pos).collect::<Vec<_>>(), [4, 3, 2, 1]);
    assert_eq!(rows[0].doc, b);
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_compacted_changes_are_acked_from_the_snapshot() {
    compacted_changes_are_acked_from_the_snapshot(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_compacted_changes_are_acked_from_the_snapshot() {
    compacted_changes_are_acked_from_the_snapshot(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_previous_schema_migrates_forward_with_its_data() {
    a_previous_schema_migrates_forward_with_its_data(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_previous_schema_migrates_forward_with_its_data() {
    a_previous_schema_migrates_forward_with_its_data(Backend::Postgres).await;
}
