//! Retention that deletes, through the real engine on both backends: buckets whose period
//! ended more than `retention_days` ago are deleted with every row they left (documents and
//! snapshots, change log, projected messages, the `buckets` index), each drop leaves one
//! `bucket_drops` audit row, memory lets them go, and what is inside the retention stays.
//! The clock is injected: `Engine::expire_buckets(now)` takes the time, and the buckets are
//! written dated in the past before the retention is set (the policy then refuses posts
//! older than it).
//!
//! Postgres: a fresh database on 127.0.0.1:5432 (user `postgres`, trust auth), dropped
//! afterwards; the test FAILS if Postgres is unreachable, it never skips.

use std::sync::Arc;

use confab_core::automerge::{ActorId, Automerge};
use confab_core::doc::schema::keys::RETENTION_DAYS;
use confab_core::doc::{self, write, IntentTag};
use confab_core::ids::{AccountId, Bucket, ConvId, DocId, MessageId, TenantId};
use confab_core::model::conversation::DEFAULT_BUCKET_MS;
use confab_core::model::message::NewMessage;
use confab_core::policy::{Author, DenyCode};
use confab_core::validate::RejectCode;
use confab_server::engine::{now_ms, Engine, EngineConfig, SubmitOutcome};
use confab_server::maintenance;
use confab_server::metrics::Metrics;
use confab_server::store::Store;
use confab_testkit::fixture::ConvFixture;
use confab_testkit::pg::{self, Template};

const DAY: i64 = DEFAULT_BUCKET_MS;

/// Raw SQL on the test's database (counts only; the values are the test's own ids).
enum Db {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Db {
    async fn count(&self, sql: &str) -> i64 {
        let result = match self {
            Db::Sqlite(pool) => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await,
            Db::Postgres(pool) => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await,
        };
        result.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

fn is_ack(outcomes: &[SubmitOutcome]) -> bool {
    !outcomes.is_empty()
        && outcomes
            .iter()
            .all(|o| matches!(o, SubmitOutcome::Ack { .. }))
}

struct World {
    engine: Engine,
    store: Arc<dyn Store>,
    db: Db,
    tenant: TenantId,
    conv: ConvId,
    author: Author,
    conv_doc: DocId,
    conv_replica: Automerge,
}

impl World {
    async fn submit(&self, doc: &DocId, replica: &Automerge) {
        let change = replica.get_last_local_change().expect("a change");
        let outcome = self
            .engine
            .submit(
                doc.clone(),
                self.author.clone(),
                vec![change.raw_bytes().to_vec()],
            )
            .await;
        assert!(is_ack(&outcome), "{doc}: {outcome:?}");
    }

    /// Posts `n` messages created at `at` into part 0 of `at`'s period, from its own actor.
    async fn post(&self, at: i64, n: usize, actor: u8) -> (DocId, Automerge) {
        let bucket = DocId::msgs(&self.tenant, &self.conv, at.div_euclid(DAY));
        let mut replica = doc::genesis(&bucket)
            .expect("genesis")
            .with_actor(ActorId::from(&[actor; 16][..]));
        for i in 0..n {
            let id = MessageId::new(format!("m{actor}x{i}")).expect("id");
            let m = NewMessage::text(id, self.author.account.clone(), "hello", at);
            write::post_message(
                &mut replica,
                &IntentTag::new(format!("{actor}.{i}"), "send"),
                &m,
            )
            .expect("post");
            self.submit(&bucket, &replica).await;
        }
        (bucket, replica)
    }

    async fn set_retention(&mut self, days: i64, at: i64) {
        let tag = IntentTag::new("retention", "settings");
        write::set_setting(
            &mut self.conv_replica,
            &tag,
            at,
            RETENTION_DAYS,
            days.into(),
        )
        .expect("setting");
        let (doc, replica) = (self.conv_doc.clone(), self.conv_replica.clone());
        self.submit(&doc, &replica).await;
    }

    /// Rows any table holds of the bucket part `doc` (period `period`, part 0).
    async fn rows_of(&self, doc: &DocId, period: i64) -> Vec<(&'static str, i64)> {
        let (t, c) = (self.tenant.as_str(), self.conv.as_str());
        let cid = format!("(SELECT id FROM conversations WHERE tenant = '{t}' AND conv = '{c}')");
        vec![
            (
                "docs",
                self.db
                    .count(&format!("SELECT COUNT(*) FROM docs WHERE doc_id = '{doc}'"))
                    .await,
            ),
            (
                "changes",
                self.db
                    .count(&format!(
                        "SELECT COUNT(*) FROM changes WHERE doc_id = '{doc}'"
                    ))
                    .await,
            ),
            (
                "buckets",
                self.db
                    .count(&format!(
                        "SELECT COUNT(*) FROM buckets WHERE tenant = '{t}' AND conv = '{c}' \
                         AND period = {period}"
                    ))
                    .await,
            ),
            (
                "messages",
                self.db
                    .count(&format!(
                        "SELECT COUNT(*) FROM messages WHERE cid = {cid} AND period = {period}"
                    ))
                    .await,
            ),
        ]
    }

    async fn drops_of(&self, period: i64) -> i64 {
        let (t, c) = (self.tenant.as_str(), self.conv.as_str());
        self.db
            .count(&format!(
                "SELECT COUNT(*) FROM bucket_drops WHERE tenant = '{t}' AND conv = '{c}' \
                 AND period = {period} AND part = 0"
            ))
            .await
    }
}

async fn world(store: Arc<dyn Store>, db: Db, now: i64) -> World {
    let engine = Engine::new(
        store.clone(),
        Arc::new(Metrics::new()),
        EngineConfig::default(),
    );
    let tenant = TenantId::new("acme").expect("tenant");
    let alice = AccountId::new("alice").expect("account");
    let conv = ConvId::new("kept").expect("conv");
    let conv_doc = DocId::conv(&tenant, &conv);
    let mut conv_replica = doc::genesis(&conv_doc)
        .expect("genesis")
        .with_actor(ActorId::from(&[7u8; 16][..]));
    let spec = ConvFixture::group(alice.clone(), now - 30 * DAY).build();
    write::create_conversation(&mut conv_replica, &IntentTag::new("c", "create"), &spec)
        .expect("create");
    let w = World {
        engine,
        store,
        db,
        tenant,
        conv,
        author: Author::user(alice),
        conv_doc,
        conv_replica,
    };
    let (doc, replica) = (w.conv_doc.clone(), w.conv_replica.clone());
    w.submit(&doc, &replica).await;
    w
}

/// The scenario, on whichever backend `store` is.
async fn drops_expired_buckets_and_keeps_the_rest(store: Arc<dyn Store>, db: Db) {
    let now = now_ms();
    let mut w = world(store, db, now).await;
    // Two buckets dated 10 and 9 days back, one today; written before any retention.
    let (old, mut old_replica) = w.post(now - 10 * DAY, 3, 21).await;
    let older_period = (now - 10 * DAY).div_euclid(DAY);
    // A snapshot for the oldest, and a change after it: both kinds of row must go.
    maintenance::compact_all(w.store.as_ref())
        .await
        .expect("compact");
    let stored = w.store.load_doc(&old).await.expect("load");
    assert!(stored.snapshot.is_some(), "compaction left a snapshot");
    let m = NewMessage::text(
        MessageId::new("late").expect("id"),
        w.author.account.clone(),
        "x",
        now - 10 * DAY,
    );
    write::post_message(&mut old_replica, &IntentTag::new("late", "send"), &m).expect("post");
    w.submit(&old, &old_replica).await;
    let (mid, _) = w.post(now - 9 * DAY, 2, 23).await;
    let mid_period = (now - 9 * DAY).div_euclid(DAY);
    let (today, _) = w.post(now, 2, 24).await;
    let today_period = now.div_euclid(DAY);
    for (doc, period) in [
        (&old, older_period),
        (&mid, mid_period),
        (&today, today_period),
    ] {
        for (table, n) in w.rows_of(doc, period).await {
            assert!(n > 0, "{table} holds {doc} before the drop");
        }
    }

    // The retention: 5 days. Nothing goes before a sweep runs.
    w.set_retention(5, now).await;
    let report = w.engine.expire_buckets(now).await.expect("sweep");
    assert_eq!(report.buckets, 2, "{report:?}");
    assert_eq!(report.messages, 4 + 2, "{report:?}");
    assert_eq!(report.failed, 0, "{report:?}");
    for (doc, period) in [(&old, older_period), (&mid, mid_period)] {
        for (table, n) in w.rows_of(doc, period).await {
            assert_eq!(n, 0, "{table} still holds {doc}");
        }
        assert_eq!(w.drops_of(period).await, 1, "audit row of {doc}");
    }
    for (table, n) in w.rows_of(&today, today_period).await {
        assert!(n > 0, "{table} lost today's bucket {today}");
    }
    assert_eq!(w.drops_of(today_period).await, 0);
    // What REST and the listing serve: today's only.
    let page = w
        .store
        .messages(&w.tenant, &w.conv, None, 100)
        .await
        .expect("messages");
    assert_eq!(page.len(), 2, "{page:?}");
    let listed = w
        .store
        .buckets(&w.tenant, &w.conv, None, 10)
        .await
        .expect("buckets");
    assert_eq!(listed.buckets, vec![Bucket::first(today_period)]);
    // Memory: the unit holds the conversation and today's bucket only.
    assert_eq!(w.engine.metrics().docs_in_memory.get(), 2);
    // A late write to a dropped bucket (a device that still holds it) is refused, and
    // brings none of it back.
    let late = NewMessage::text(
        MessageId::new("later").expect("id"),
        w.author.account.clone(),
        "y",
        now - 10 * DAY,
    );
    write::post_message(&mut old_replica, &IntentTag::new("later", "send"), &late).expect("post");
    let change = old_replica.get_last_local_change().expect("change");
    let outcome = w
        .engine
        .submit(
            old.clone(),
            w.author.clone(),
            vec![change.raw_bytes().to_vec()],
        )
        .await;
    assert!(
        matches!(
            outcome.as_slice(),
            [SubmitOutcome::Reject {
                code: RejectCode::Policy(DenyCode::RetentionExpired),
                ..
            }]
        ),
        "{outcome:?}"
    );
    for (table, n) in w.rows_of(&old, older_period).await {
        assert_eq!(n, 0, "{table} holds {old} again");
    }
    // A second sweep finds nothing more.
    let again = w.engine.expire_buckets(now).await.expect("sweep");
    assert_eq!(again.buckets, 0, "{again:?}");

    // The injected clock, six days on: today's bucket expires too.
    let later = w.engine.expire_buckets(now + 6 * DAY).await.expect("sweep");
    assert_eq!(later.buckets, 1, "{later:?}");
    for (table, n) in w.rows_of(&today, today_period).await {
        assert_eq!(n, 0, "{table} still holds {today}");
    }
    assert_eq!(w.drops_of(today_period).await, 1);
    // The conversation itself stays, and takes new messages.
    let row = w
        .store
        .conversation(&w.tenant, &w.conv)
        .await
        .expect("conv");
    assert!(row.is_some());
    assert_eq!(
        w.db.count("SELECT COUNT(*) FROM docs WHERE doc_id = 'acme/conv/kept'")
            .await,
        1
    );
}

#[tokio::test]
async fn sqlite_drops_expired_buckets_and_keeps_the_rest() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = maintenance::open_store(None, dir.path())
        .await
        .expect("store");
    let url = format!("sqlite://{}", dir.path().join("confab.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("raw pool");
    drops_expired_buckets_and_keeps_the_rest(store, Db::Sqlite(pool)).await;
}

#[tokio::test]
async fn postgres_drops_expired_buckets_and_keeps_the_rest() {
    pg::on_fresh_database("confab_retention", Template::Default, |url| async move {
        let store = maintenance::open_store(Some(&url), std::path::Path::new("."))
            .await
            .expect("store");
        let pool = sqlx::PgPool::connect(&url).await.expect("raw pool");
        drops_expired_buckets_and_keeps_the_rest(store, Db::Postgres(pool.clone())).await;
        pool.close().await;
    })
    .await;
}
