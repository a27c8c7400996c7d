//! The commit pipeline under a failing store: a batch validated on top of a batch whose
//! commit fails must never be stored or acked, and both are accepted when resubmitted. And
//! the actor bindings the units share: asked of storage once per device, never kept from a
//! commit that failed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use confab_core::automerge::{ActorId, Automerge};
use confab_core::doc::{self, write, IntentTag};
use confab_core::ids::{AccountId, ConvId, DocId, MessageId, TenantId};
use confab_core::model::conversation::*;
use confab_core::model::message::NewMessage;
use confab_core::policy::Author;
use confab_server::engine::{now_ms, Engine, EngineConfig, SubmitOutcome};
use confab_server::maintenance;
use confab_server::metrics::Metrics;
use confab_server::store::*;
use confab_testkit::fixture::ConvFixture;
use tokio::sync::Notify;

/// SQLite underneath; while `hold` is set, the next commit waits for `release`, then fails
/// (or, with `succeed_held`, commits).
struct GatedStore {
    inner: Arc<dyn Store>,
    hold: AtomicBool,
    succeed_held: AtomicBool,
    entered: Notify,
    release: Notify,
    /// Calls of `actor_account`.
    actor_lookups: AtomicUsize,
}

impl GatedStore {
    async fn commit_unless_held(&self, changes: &[NewChange]) -> Result<()> {
        if self.hold.swap(false, Ordering::SeqCst) {
            self.entered.notify_one();
            self.release.notified().await;
            if !self.succeed_held.load(Ordering::SeqCst) {
                return Err(StoreError::Corrupt("injected commit failure".into()));
            }
        }
        self.inner.commit(changes).await
    }
}

/// What `GatedStore` does around each store call, for `forward_store!`: the last arm passes
/// it on; the commit is gated and actor lookups are counted.
macro_rules! gate {
    // The gate holds commits on the runtime the test drives, and reads see the gate's store.
    ($gated:ident, for_commit_thread()) => {
        None
    };
    ($gated:ident, for_read_thread()) => {
        None
    };
    ($gated:ident, cluster_options()) => {
        $gated.inner.cluster_options()
    };
    ($gated:ident, commit($changes:ident)) => {
        $gated.commit_unless_held($changes).await
    };
    ($gated:ident, actor_account($tenant:ident, $actor:ident)) => {{
        $gated.actor_lookups.fetch_add(1, Ordering::SeqCst);
        $gated.inner.actor_account($tenant, $actor).await
    }};
    ($gated:ident, $method:ident($($argument:ident),*)) => {
        $gated.inner.$method($($argument),*).await
    };
}

confab_server::forward_store!(GatedStore, gate);

fn is_ack(outcomes: &[SubmitOutcome]) -> bool {
    outcomes
        .iter()
        .all(|o| matches!(o, SubmitOutcome::Ack { .. }))
}

/// A gated SQLite store, an engine on it, and alice's group conversation `conv`, created
/// (and committed normally) from her replica `conv_replica`.
struct Group {
    store: Arc<GatedStore>,
    engine: Engine,
    tenant: TenantId,
    alice: AccountId,
    author: Author,
    conv: ConvId,
    conv_doc: DocId,
    conv_replica: Automerge,
    now: i64,
}

async fn gated_group(dir: &std::path::Path, conv: &str) -> Group {
    let sqlite = maintenance::open_store(None, dir).await.expect("store");
    let store = Arc::new(GatedStore {
        inner: sqlite,
        hold: AtomicBool::new(false),
        succeed_held: AtomicBool::new(false),
        entered: Notify::new(),
        release: Notify::new(),
        actor_lookups: AtomicUsize::new(0),
    });
    let engine = Engine::new(
        store.clone(),
        Arc::new(Metrics::new()),
        EngineConfig::default(),
    );
    let tenant = TenantId::new("acme").expect("tenant");
    let alice = AccountId::new("alice").expect("account");
    let author = Author::user(alice.clone());
    let conv = ConvId::new(conv).expect("conv");
    let conv_doc = DocId::conv(&tenant, &conv);
    let now = now_ms();
    let mut conv_replica = doc::genesis(&conv_doc)
        .expect("genesis")
        .with_actor(ActorId::from(&[7u8; 16][..]));
    let spec = ConvFixture::group(alice.clone(), now).build();
    write::create_conversation(&mut conv_replica, &IntentTag::new("c", "create"), &spec)
        .expect("create");
    let creation = conv_replica.get_last_local_change().expect("change");
    let outcome = engine
        .submit(
            conv_doc.clone(),
            author.clone(),
            vec![creation.raw_bytes().to_vec()],
        )
        .await;
    assert!(is_ack(&outcome), "{outcome:?}");
    Group {
        store,
        engine,
        tenant,
        alice,
        author,
        conv,
        conv_doc,
        conv_replica,
        now,
    }
}

#[tokio::test]
async fn a_batch_built_on_a_failed_commit_is_never_stored() {
    let dir = tempfile::tempdir().expect("temp dir");
    let Group {
        store,
        engine,
        tenant,
        alice,
        author,
        conv,
        conv_doc,
        mut conv_replica,
        now,
    } = gated_group(dir.path(), "pipeline").await;

    // Alice adds Bob (a conversation change); Bob posts in a bucket. Each batch's own
    // document would pass the seq check: only the epoch stops Bob's message.
    let bob = AccountId::new("bob").expect("account");
    let mut added = Member::new(bob.clone(), Role::Member);
    added.invited_by = Some(alice.clone());
    write::add_member(&mut conv_replica, &IntentTag::new("a", "add"), now, &added).expect("add");
    let first = conv_replica
        .get_last_local_change()
        .expect("change")
        .raw_bytes()
        .to_vec();
    let bucket = DocId::msgs(&tenant, &conv, now.div_euclid(DEFAULT_BUCKET_MS));
    let bob_actor = ActorId::from(&[8u8; 16][..]);
    let mut replica: Automerge = doc::genesis(&bucket)
        .expect("genesis")
        .with_actor(bob_actor);
    let m = NewMessage::text(MessageId::new("m1").expect("id"), bob.clone(), "hi", now);
    write::post_message(&mut replica, &IntentTag::new("m1", "send"), &m).expect("post");
    let second = replica
        .get_last_local_change()
        .expect("change")
        .raw_bytes()
        .to_vec();
    let bob_author = Author::user(bob);

    // The first commit blocks and will fail; the second is validated on top of it meanwhile.
    store.hold.store(true, Ordering::SeqCst);
    let first_answer = engine
        .enqueue_submit(conv_doc.clone(), author.clone(), vec![first.clone()])
        .await;
    store.entered.notified().await;
    let second_answer = engine
        .enqueue_submit(bucket.clone(), bob_author.clone(), vec![second.clone()])
        .await;
    // Give the unit time to validate the second batch and hand it to the committer.
    tokio::time::sleep(Duration::from_millis(200)).await;
    store.release.notify_one();

    let first_outcome = first_answer.await.expect("answered");
    let second_outcome = second_answer.await.expect("answered");
    assert!(
        matches!(first_outcome[0], SubmitOutcome::Failed { .. }),
        "{first_outcome:?}"
    );
    assert!(
        matches!(second_outcome[0], SubmitOutcome::Failed { .. }),
        "the batch built on a lost one must fail: {second_outcome:?}"
    );
    assert!(store
        .load_doc(&bucket)
        .await
        .expect("load")
        .changes
        .is_empty());
    assert_eq!(
        store.load_doc(&conv_doc).await.expect("load").changes.len(),
        1
    );

    // Resubmitted, both are accepted.
    let again = engine.submit(conv_doc.clone(), author, vec![first]).await;
    assert!(is_ack(&again), "{again:?}");
    let again = engine
        .submit(bucket.clone(), bob_author, vec![second])
        .await;
    assert!(is_ack(&again), "{again:?}");
    assert_eq!(
        store.load_doc(&bucket).await.expect("load").changes.len(),
        1
    );
}

/// An engine on a gated SQLite store with alice's group conversation committed, and a
/// message of hers for its current bucket.
async fn alice_and_a_message(
    dir: &std::path::Path,
) -> (Arc<GatedStore>, Engine, Author, DocId, Vec<u8>) {
    let Group {
        store,
        engine,
        tenant,
        alice,
        author,
        conv,
        now,
        ..
    } = gated_group(dir, "resubmit").await;
    let bucket = DocId::msgs(&tenant, &conv, now.div_euclid(DEFAULT_BUCKET_MS));
    let mut replica: Automerge = doc::genesis(&bucket)
        .expect("genesis")
        .with_actor(ActorId::from(&[9u8; 16][..]));
    let m = NewMessage::text(MessageId::new("m1").expect("id"), alice, "hi", now);
    write::post_message(&mut replica, &IntentTag::new("m1", "send"), &m).expect("post");
    let message = replica
        .get_last_local_change()
        .expect("change")
        .raw_bytes()
        .to_vec();
    (store, engine, author, bucket, message)
}

/// A change resubmitted while the batch that accepted it is being committed is answered
/// with that commit: acked once it is durable, failed when it is lost, never before.
#[tokio::test]
async fn a_resubmission_waits_for_the_commit_under_way() {
    for commit_succeeds in [false, true] {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, engine, author, bucket, message) = alice_and_a_message(dir.path()).await;
        store.succeed_held.store(commit_succeeds, Ordering::SeqCst);
        store.hold.store(true, Ordering::SeqCst);
        let first = engine
            .enqueue_submit(bucket.clone(), author.clone(), vec![message.clone()])
            .await;
        store.entered.notified().await;
        let mut again = engine
            .enqueue_submit(bucket.clone(), author.clone(), vec![message.clone()])
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            again.try_recv().is_err(),
            "answered before the commit it depends on"
        );
        store.release.notify_one();
        let first = first.await.expect("answered");
        let again = again.await.expect("answered");
        if commit_succeeds {
            assert!(is_ack(&first) && is_ack(&again), "{first:?} {again:?}");
            assert_eq!(first, again, "the same seq");
        } else {
            assert!(
                matches!(first[0], SubmitOutcome::Failed { .. })
                    && matches!(again[0], SubmitOutcome::Failed { .. }),
                "{first:?} {again:?}"
            );
            assert!(store
                .load_doc(&bucket)
                .await
                .expect("load")
                .changes
                .is_empty());
        }
        // Resubmitted once more, it is acked (stored now if it was lost).
        let last = engine.submit(bucket.clone(), author, vec![message]).await;
        assert!(is_ack(&last), "{last:?}");
        assert_eq!(
            store.load_doc(&bucket).await.expect("load").changes.len(),
            1
        );
    }
}

/// `owner`'s creation change of group `conv`, written by `actor`.
fn creation(tenant: &TenantId, conv: &str, owner: &AccountId, actor: u8) -> (DocId, Vec<u8>) {
    let conv_doc = DocId::conv(tenant, &ConvId::new(conv).expect("conv"));
    let mut replica = doc::genesis(&conv_doc)
        .expect("genesis")
        .with_actor(ActorId::from(&[actor; 16][..]));
    let spec = ConvFixture::group(owner.clone(), now_ms()).build();
    write::create_conversation(&mut replica, &IntentTag::new("c", "create"), &spec)
        .expect("create");
    let change = replica.get_last_local_change().expect("change");
    (conv_doc, change.raw_bytes().to_vec())
}

/// A device writing in a second conversation (another unit) is not looked up again: its
/// binding, committed with its first change, is shared.
#[tokio::test]
async fn a_device_is_looked_up_once_for_every_conversation() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Alice's first conversation, written by actor 7: looked up (unbound), then bound.
    let Group {
        store,
        engine,
        tenant,
        alice,
        author,
        ..
    } = gated_group(dir.path(), "first").await;
    let after_first = store.actor_lookups.load(Ordering::SeqCst);
    assert!(
        after_first >= 1,
        "the first change of an actor is looked up"
    );
    for conv in ["second", "third"] {
        let (doc, change) = creation(&tenant, conv, &alice, 7);
        let outcome = engine.submit(doc, author.clone(), vec![change]).await;
        assert!(is_ack(&outcome), "{outcome:?}");
    }
    assert_eq!(
        store.actor_lookups.load(Ordering::SeqCst),
        after_first,
        "a committed binding is not asked of storage again"
    );
    // Someone else's change by the same actor is still refused: the shared binding counts.
    let mallory = AccountId::new("mallory").expect("account");
    let (doc, change) = creation(&tenant, "fourth", &mallory, 7);
    let outcome = engine
        .submit(doc, Author::user(mallory), vec![change])
        .await;
    assert!(
        matches!(outcome[0], SubmitOutcome::Reject { .. }),
        "another account's change by alice's actor: {outcome:?}"
    );
}

/// A binding made by a change whose commit failed is not kept: the actor is still free,
/// for another account too.
#[tokio::test]
async fn a_binding_of_a_failed_commit_is_not_shared() {
    let dir = tempfile::tempdir().expect("temp dir");
    let Group {
        store,
        engine,
        tenant,
        alice,
        author,
        ..
    } = gated_group(dir.path(), "first").await;
    let (doc, change) = creation(&tenant, "lost", &alice, 5);
    store.hold.store(true, Ordering::SeqCst);
    let lost = engine.enqueue_submit(doc, author, vec![change]).await;
    store.entered.notified().await;
    store.release.notify_one();
    let lost = lost.await.expect("answered");
    assert!(matches!(lost[0], SubmitOutcome::Failed { .. }), "{lost:?}");
    let bob = AccountId::new("bob").expect("account");
    let (doc, change) = creation(&tenant, "bobs", &bob, 5);
    let outcome = engine.submit(doc, Author::user(bob), vec![change]).await;
    assert!(is_ack(&outcome), "actor 5 was never bound: {outcome:?}");
}
