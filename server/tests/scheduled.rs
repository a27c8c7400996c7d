//! Scheduled messages through the real engine on both backends, with an injected clock
//! (`Engine::post_due(now)` takes the time): a message scheduled in its author's private
//! document is posted at its time, in acceptance order, as its author, exactly once; an
//! edit and a cancel before the time are honoured; an author removed meanwhile finds it
//! refused with the reject code in the private document; and what is pending survives a
//! restart of the engine (a new one on the same database). Two engines on one database
//! (a cluster) post a due message once, and a node that dies holding a claim delays a post
//! by at most the lease.
//!
//! Postgres: a fresh database on 127.0.0.1:5432 (user `postgres`, trust auth), dropped
//! afterwards; the test FAILS if Postgres is unreachable, it never skips.

use std::sync::Arc;
use std::time::Duration;

use confab_core::automerge::{ActorId, Automerge};
use confab_core::doc::{self, read, schedule, write, IntentTag};
use confab_core::ids::{AccountId, ConvId, DocId, MessageId, TenantId};
use confab_core::model::conversation::{MemberStatus, Role};
use confab_core::model::schedule::NewSchedule;
use confab_core::policy::Author;
use confab_server::engine::schedule::LEASE_MS;
use confab_server::engine::{now_ms, Engine, EngineConfig, SubmitOutcome};
use confab_server::maintenance;
use confab_server::metrics::Metrics;
use confab_server::store::Store;
use confab_testkit::fixture::ConvFixture;
use confab_testkit::pg::{self, Template};

const MIN: i64 = 60_000;

fn engine(store: &Arc<dyn Store>, node: &str) -> Engine {
    Engine::new(
        store.clone(),
        Arc::new(Metrics::new()),
        EngineConfig {
            node: node.into(),
            ..EngineConfig::default()
        },
    )
}

fn id(s: &str) -> MessageId {
    MessageId::new(s).expect("id")
}

/// A device of one account: its replicas of the conversation and of its private document.
struct Device {
    author: Author,
    private_doc: DocId,
    private: Automerge,
    n: u32,
}

struct World {
    store: Arc<dyn Store>,
    engine: Engine,
    tenant: TenantId,
    conv: ConvId,
    conv_doc: DocId,
    conv_replica: Automerge,
    alice: Device,
    bob: Device,
    now: i64,
}

async fn submit(engine: &Engine, doc: &DocId, author: &Author, replica: &Automerge) {
    let change = replica.get_last_local_change().expect("a change");
    let outcome = engine
        .submit(
            doc.clone(),
            author.clone(),
            vec![change.raw_bytes().to_vec()],
        )
        .await;
    assert!(
        matches!(outcome.as_slice(), [SubmitOutcome::Ack { .. }]),
        "{doc}: {outcome:?}"
    );
}

impl World {
    async fn new(store: Arc<dyn Store>) -> World {
        let now = now_ms();
        let engine = engine(&store, "node-a");
        let tenant = TenantId::new("acme").expect("tenant");
        let alice = AccountId::new("alice").expect("account");
        let bob = AccountId::new("bob").expect("account");
        let conv = ConvId::new("plans").expect("conv");
        let conv_doc = DocId::conv(&tenant, &conv);
        let mut conv_replica = doc::genesis(&conv_doc)
            .expect("genesis")
            .with_actor(ActorId::from(&[7u8; 16][..]));
        let spec = ConvFixture::group(alice.clone(), now - MIN)
            .member(bob.clone(), Role::Member)
            .build();
        write::create_conversation(&mut conv_replica, &IntentTag::new("c", "create"), &spec)
            .expect("create");
        let device = |account: &AccountId, actor: u8| {
            let private_doc = DocId::private(&tenant, account);
            Device {
                author: Author::user(account.clone()),
                private: doc::genesis(&private_doc)
                    .expect("genesis")
                    .with_actor(ActorId::from(&[actor; 16][..])),
                private_doc,
                n: 0,
            }
        };
        let w = World {
            alice: device(&alice, 11),
            bob: device(&bob, 12),
            store,
            engine,
            tenant,
            conv,
            conv_doc,
            conv_replica,
            now,
        };
        submit(&w.engine, &w.conv_doc, &w.alice.author, &w.conv_replica).await;
        w
    }

    /// The device schedules `message` for `at` (a change to its private document, as the
    /// client engine makes it), submitted like any change.
    async fn schedule(&mut self, who: Who, message: &str, body: &str, at: i64) {
        let (now, conv) = (self.now, self.conv.clone());
        let d = self.device(who);
        d.n += 1;
        let tag = IntentTag::new(format!("s{}", d.n), "schedule");
        let new = NewSchedule {
            conv,
            body: body.into(),
            at,
        };
        schedule::schedule(&mut d.private, &tag, now, &id(message), &new).expect("schedule");
        let (doc, author, replica) = (d.private_doc.clone(), d.author.clone(), d.private.clone());
        submit(&self.engine, &doc, &author, &replica).await;
    }

    async fn edit(&mut self, who: Who, message: &str, body: &str, at: i64) {
        let now = self.now;
        let d = self.device(who);
        d.n += 1;
        let tag = IntentTag::new(format!("e{}", d.n), "edit_scheduled");
        schedule::edit(
            &mut d.private,
            &tag,
            now,
            &id(message),
            Some(body),
            Some(at),
        )
        .expect("edit");
        let (doc, author, replica) = (d.private_doc.clone(), d.author.clone(), d.private.clone());
        submit(&self.engine, &doc, &author, &replica).await;
    }

    async fn cancel(&mut self, who: Who, message: &str) {
        let now = self.now;
        let d = self.device(who);
        d.n += 1;
        let tag = IntentTag::new(format!("x{}", d.n), "cancel_scheduled");
        schedule::cancel(&mut d.private, &tag, now, &id(message)).expect("cancel");
        let (doc, author, replica) = (d.private_doc.clone(), d.author.clone(), d.private.clone());
        submit(&self.engine, &doc, &author, &replica).await;
    }

    fn device(&mut self, who: Who) -> &mut Device {
        match who {
            Who::Alice => &mut self.alice,
            Who::Bob => &mut self.bob,
        }
    }

    async fn remove_bob(&mut self) {
        let bob = self.bob.author.account.clone();
        write::set_member_status(
            &mut self.conv_replica,
            &IntentTag::new("rm", "remove_member"),
            self.now,
            &bob,
            MemberStatus::Removed,
        )
        .expect("remove");
        submit(
            &self.engine,
            &self.conv_doc,
            &self.alice.author,
            &self.conv_replica,
        )
        .await;
    }

    /// The conversation's messages in acceptance order: (id, author).
    async fn timeline(&self) -> Vec<(String, String)> {
        let mut rows = self
            .store
            .messages(&self.tenant, &self.conv, None, 100)
            .await
            .expect("messages");
        rows.sort_by_key(|r| r.pos);
        rows.into_iter()
            .map(|r| (r.message.to_string(), r.author.to_string()))
            .collect()
    }

    async fn scheduled_of(&self, who: Who) -> read::PrivateData {
        let doc = match who {
            Who::Alice => &self.alice.private_doc,
            Who::Bob => &self.bob.private_doc,
        };
        read::read_private(&self.engine.committed(doc).await.expect("private"))
    }

    /// The body of a posted message, read from its committed bucket.
    async fn body_of(&self, message: &str) -> String {
        let rows = self
            .store
            .messages(&self.tenant, &self.conv, None, 100)
            .await
            .expect("messages");
        let row = rows
            .iter()
            .find(|r| r.message.as_str() == message)
            .expect("posted");
        let bucket = DocId::parse(&row.doc).expect("doc id");
        let doc = self.engine.committed(&bucket).await.expect("bucket");
        let m = read::read_message_fields(&doc, &id(message)).expect("in its bucket");
        assert!(
            m.scheduled_at.is_some(),
            "scheduled_at is kept on the message"
        );
        m.body
    }
}

#[derive(Clone, Copy)]
enum Who {
    Alice,
    Bob,
}

async fn scheduled_messages(store: Arc<dyn Store>) {
    let mut w = World::new(store).await;
    let now = w.now;
    w.schedule(Who::Alice, "m-first", "at ten", now + 10 * MIN)
        .await;
    w.schedule(Who::Alice, "m-moved", "draft", now + 30 * MIN)
        .await;
    w.schedule(Who::Alice, "m-cancelled", "never", now + 11 * MIN)
        .await;
    w.schedule(Who::Bob, "m-bob", "from bob", now + 10 * MIN)
        .await;
    w.schedule(Who::Alice, "m-later", "at forty", now + 40 * MIN)
        .await;

    // Before its time nothing is posted, and others cannot read it: it is not in the
    // conversation's documents at all.
    let early = w.engine.post_due(now + 5 * MIN).await.expect("pass");
    assert_eq!((early.posted, early.refused), (0, 0), "{early:?}");
    assert!(w.timeline().await.is_empty());

    // The author edits one (sooner, new body) and cancels another; bob is removed.
    w.edit(Who::Alice, "m-moved", "edited", now + 12 * MIN)
        .await;
    w.cancel(Who::Alice, "m-cancelled").await;
    w.remove_bob().await;

    // A restart: a new engine on the same database finds what is pending.
    w.engine.begin_shutdown();
    w.engine.drain(Duration::from_secs(5)).await;
    w.engine = engine(&w.store, "node-a");

    let report = w.engine.post_due(now + 13 * MIN).await.expect("pass");
    assert_eq!((report.posted, report.refused), (2, 1), "{report:?}");
    assert_eq!(
        w.timeline().await,
        [
            ("m-first".to_string(), "alice".to_string()),
            ("m-moved".to_string(), "alice".to_string()),
        ],
        "posted in time order, as the author; the cancelled one never"
    );
    assert_eq!(w.body_of("m-moved").await, "edited");
    // Settled: alice's posted ones left her document, the later one waits.
    let alice = w.scheduled_of(Who::Alice).await.scheduled;
    assert_eq!(
        alice.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
        ["m-later"]
    );
    // Bob was removed: his stays, refused with the policy's code.
    let bob = w.scheduled_of(Who::Bob).await.scheduled;
    let refused = bob.get(&id("m-bob")).expect("kept for bob");
    assert_eq!(refused.refused.as_deref(), Some("member_inactive"));

    // Operators see it: two posted, bob's refused by its code, none late by more than
    // the pass's distance from their times.
    let metrics = w.engine.metrics().render();
    for line in [
        "confab_scheduled_posted_total 2\n",
        "confab_scheduled_refused_total{reason=\"member_inactive\"} 1\n",
        "confab_scheduled_lateness_seconds_count 2\n",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }

    // Exactly once: passes after it post nothing more.
    for _ in 0..2 {
        let again = w.engine.post_due(now + 14 * MIN).await.expect("pass");
        assert_eq!((again.posted, again.refused), (0, 0), "{again:?}");
    }
    assert_eq!(w.timeline().await.len(), 2);

    // Two nodes on one database, both passing at the due time: posted once.
    let other = engine(&w.store, "node-b");
    let (a, b) = tokio::join!(
        w.engine.post_due(now + 41 * MIN),
        other.post_due(now + 41 * MIN)
    );
    let (a, b) = (a.expect("pass a"), b.expect("pass b"));
    assert_eq!(a.posted + b.posted, 1, "{a:?} {b:?}");
    let timeline = w.timeline().await;
    assert_eq!(timeline.len(), 3, "{timeline:?}");
    assert_eq!(timeline[2].0, "m-later");
    assert!(w.scheduled_of(Who::Alice).await.scheduled.is_empty());
    // Nothing is left to look at for alice: her hint is gone.
    let again = w.engine.post_due(now + 60 * MIN).await.expect("pass");
    assert_eq!(again.posted + again.refused, 0, "{again:?}");

    // A node that dies holding a claim (kill -9 mid-pass) delays the post by at most the
    // lease: until it runs out nobody else takes the document, then a live node posts it.
    w.schedule(Who::Alice, "m-orphan", "after a crash", now + 45 * MIN)
        .await;
    let due = now + 45 * MIN;
    let dead = w
        .store
        .claim_scheduled(due, due + LEASE_MS, "node-dead", 16)
        .await
        .expect("claim");
    assert!(matches!(&dead, c if c.len() == 1), "{dead:?}");
    let held = w.engine.post_due(due + LEASE_MS - 1).await.expect("pass");
    assert_eq!((held.documents, held.posted), (0, 0), "{held:?}");
    let taken = w.engine.post_due(due + LEASE_MS + 1).await.expect("pass");
    assert_eq!(
        taken.posted,
        1,
        "{taken:?} {:?}",
        w.scheduled_of(Who::Alice).await
    );
    assert_eq!(w.timeline().await.len(), 4);
}

#[tokio::test]
async fn sqlite_scheduled_messages() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = maintenance::open_store(None, dir.path())
        .await
        .expect("store");
    scheduled_messages(store).await;
}

#[tokio::test]
async fn postgres_scheduled_messages() {
    pg::on_fresh_database("confab_scheduled", Template::Default, |url| async move {
        let store = maintenance::open_store(Some(&url), std::path::Path::new("."))
            .await
            .expect("store");
        scheduled_messages(store).await;
    })
    .await;
}
