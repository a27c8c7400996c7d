//! The commit pipeline under a failing store: a batch validated on top of a batch whose
//! commit fails must never be stored or acked, and both are accepted when resubmitted. And
//! the actor bindings the units share: asked of storage once per device, never kept from a
//! commit that failed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
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

#[async_trait]
impl Store for GatedStore {
    fn for_commit_thread(&self) -> Option<Arc<dyn Store>> {
        None // the gate holds commits on the runtime the test drives
    }
    fn for_read_thread(&self) -> Option<Arc<dyn Store>> {
        None // reads see the gate's store
    }
    async fn probe(&self, write: bool) -> Result<()> {
        self.inner.probe(write).await
    }
    async fn migrate(&self) -> Result<()> {
        self.inner.migrate().await
    }
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
}

#[async_trait]
impl ChangeLog for GatedStore {
    async fn record_rejections(
        &self,
        records: &[confab_server::store::RejectionRecord],
    ) -> Result<()> {
        self.inner.record_rejections(records).await
    }
    async fn load_doc(&self, doc: &DocId) -> Result<StoredDoc> {
        self.inner.load_doc(doc).await
    }
    async fn commit(&self, changes: &[NewChange]) -> Result<()> {
        if self.hold.swap(false, Ordering::SeqCst) {
            self.entered.notify_one();
            self.release.notified().await;
            if !self.succeed_held.load(Ordering::SeqCst) {
                return Err(StoreError::Corrupt("injected commit failure".into()));
            }
        }
        self.inner.commit(changes).await
    }
    async fn log_tail(&self, doc: &DocId, after: u64, limit: usize) -> Result<LogTail> {
        self.inner.log_tail(doc, after, limit).await
    }
    async fn changes_after(
        &self,
        doc: &DocId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>> {
        self.inner.changes_after(doc, after, limit).await
    }
    async fn seq_of(&self, doc: &DocId, hash: &[u8; 32]) -> Result<Option<u64>> {
        self.inner.seq_of(doc, hash).await
    }
    async fn actor_account(&self, tenant: &TenantId, actor: &[u8]) -> Result<Option<AccountId>> {
        self.actor_lookups.fetch_add(1, Ordering::SeqCst);
        self.inner.actor_account(tenant, actor).await
    }
    async fn record_rejection(&self, record: &RejectionRecord) -> Result<()> {
        self.inner.record_rejection(record).await
    }
    async fn compact(&self, doc: &DocId, snapshot: &[u8], seq: u64) -> Result<()> {
        self.inner.compact(doc, snapshot, seq).await
    }
    async fn install_generation(&self, doc: &DocId, next: &NewGeneration) -> Result<()> {
        self.inner.install_generation(doc, next).await
    }
    async fn fence_part(&self, doc: &DocId) -> Result<Box<dyn PartFence>> {
        self.inner.fence_part(doc).await
    }
    async fn doc_ids(&self) -> Result<Vec<String>> {
        self.inner.doc_ids().await
    }
    async fn rejection_count(&self, tenant: &TenantId) -> Result<i64> {
        self.inner.rejection_count(tenant).await
    }
    async fn stored_bytes(&self, doc: &DocId) -> Result<u64> {
        self.inner.stored_bytes(doc).await
    }
}

#[async_trait]
impl Retention for GatedStore {
    async fn conversations_with_buckets(
        &self,
        after: Option<&confab_server::store::retention::ConvKey>,
        limit: usize,
    ) -> Result<Vec<confab_server::store::retention::ConvKey>> {
        self.inner.conversations_with_buckets(after, limit).await
    }
    async fn drop_buckets(
        &self,
        req: confab_server::store::retention::DropRequest<'_>,
    ) -> Result<confab_server::store::retention::Dropped> {
        self.inner.drop_buckets(req).await
    }
}

#[async_trait]
impl Forgetting for GatedStore {
    async fn release_blobs(
        &self,
        rows: &[confab_server::store::forget::BlobRelease],
    ) -> Result<()> {
        self.inner.release_blobs(rows).await
    }
    async fn due_blob_releases(
        &self,
        deleted_before: i64,
        limit: usize,
    ) -> Result<Vec<confab_server::store::forget::BlobRelease>> {
        self.inner.due_blob_releases(deleted_before, limit).await
    }
    async fn settle_blob_release(
        &self,
        row: &confab_server::store::forget::BlobRelease,
    ) -> Result<()> {
        self.inner.settle_blob_release(row).await
    }
    async fn request_erasure(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        by: &AccountId,
        now: i64,
    ) -> Result<confab_server::store::forget::Erasure> {
        self.inner.request_erasure(tenant, account, by, now).await
    }
    async fn erasure(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Option<confab_server::store::forget::Erasure>> {
        self.inner.erasure(tenant, account).await
    }
    async fn claim_erasure(
        &self,
        now: i64,
        until: i64,
    ) -> Result<Option<confab_server::store::forget::Erasure>> {
        self.inner.claim_erasure(now, until).await
    }
    async fn save_erasure(
        &self,
        erasure: &confab_server::store::forget::Erasure,
        until: i64,
    ) -> Result<()> {
        self.inner.save_erasure(erasure, until).await
    }
    async fn authored_messages(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        after: (i64, i64),
        limit: usize,
    ) -> Result<Vec<confab_server::store::forget::Authored>> {
        self.inner
            .authored_messages(tenant, account, after, limit)
            .await
    }
    async fn vacuum_forgotten(&self, full: bool) -> Result<bool> {
        self.inner.vacuum_forgotten(full).await
    }
    async fn forget_search_entries(&self, limit: usize) -> Result<usize> {
        self.inner.forget_search_entries(limit).await
    }
    async fn claim_cuts(
        &self,
        timing: confab_server::store::cuts::CutTiming,
        node: &str,
        limit: usize,
    ) -> Result<Vec<confab_server::store::cuts::DueCut>> {
        self.inner.claim_cuts(timing, node, limit).await
    }
    async fn finish_cut(&self, due: &confab_server::store::cuts::DueCut) -> Result<()> {
        self.inner.finish_cut(due).await
    }
    async fn retry_cut(
        &self,
        due: &confab_server::store::cuts::DueCut,
        after_ms: i64,
    ) -> Result<()> {
        self.inner.retry_cut(due, after_ms).await
    }
    async fn pending_cuts(&self) -> Result<i64> {
        self.inner.pending_cuts().await
    }
}

#[async_trait]
impl Projections for GatedStore {
    async fn search(
        &self,
        query: &confab_server::store::search::SearchQuery<'_>,
    ) -> Result<Vec<confab_server::store::search::SearchHit>> {
        self.inner.search(query).await
    }
    async fn search_backfill_page(
        &self,
        limit: usize,
    ) -> Result<Option<confab_server::store::search::backfill::Page>> {
        self.inner.search_backfill_page(limit).await
    }
    async fn search_backfill_write(
        &self,
        page: &confab_server::store::search::backfill::Page,
        entries: &[confab_server::store::search::backfill::Entry],
    ) -> Result<()> {
        self.inner.search_backfill_write(page, entries).await
    }
    async fn index_search_backlog(&self, limit: usize) -> Result<usize> {
        self.inner.index_search_backlog(limit).await
    }
    async fn membership(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        account: &AccountId,
    ) -> Result<Option<(String, String)>> {
        self.inner.membership(tenant, conv, account).await
    }
    async fn conversation(&self, tenant: &TenantId, conv: &ConvId) -> Result<Option<ConvRow>> {
        self.inner.conversation(tenant, conv).await
    }
    async fn conv_stats(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
    ) -> Result<Option<confab_server::store::stats::ConvStats>> {
        self.inner.conv_stats(tenant, conv).await
    }
    async fn read_times(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
    ) -> Result<std::collections::BTreeMap<AccountId, i64>> {
        self.inner.read_times(tenant, conv).await
    }
    async fn conversations_of(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Vec<ConvListItem>> {
        self.inner.conversations_of(tenant, account).await
    }
    async fn discover(
        &self,
        query: &confab_server::store::discovery::DiscoverQuery<'_>,
    ) -> Result<Vec<confab_server::store::discovery::DiscoverItem>> {
        self.inner.discover(query).await
    }
    async fn discovery_stale(
        &self,
        after: Option<(&TenantId, &ConvId)>,
        limit: usize,
    ) -> Result<Vec<(TenantId, ConvId)>> {
        self.inner.discovery_stale(after, limit).await
    }
    async fn discovery_write(&self, rows: &[ConvRow]) -> Result<u64> {
        self.inner.discovery_write(rows).await
    }
    async fn messages(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<MessageRow>> {
        self.inner.messages(tenant, conv, before, limit).await
    }
    async fn buckets(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        before: Option<confab_core::ids::Bucket>,
        limit: usize,
    ) -> Result<confab_server::store::buckets::BucketPage> {
        self.inner.buckets(tenant, conv, before, limit).await
    }
    async fn memberships_of(
        &self,
        tenant: &TenantId,
        account: &confab_core::ids::AccountId,
    ) -> Result<Vec<confab_core::protocol::Membership>> {
        self.inner.memberships_of(tenant, account).await
    }
    async fn active_members(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        admins_only: bool,
        limit: usize,
    ) -> Result<Vec<AccountId>> {
        self.inner
            .active_members(tenant, conv, admins_only, limit)
            .await
    }
    async fn fanout_members(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        after: Option<&AccountId>,
        limit: usize,
    ) -> Result<Vec<(AccountId, u64)>> {
        self.inner.fanout_members(tenant, conv, after, limit).await
    }
    async fn author_of(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        message: &MessageId,
    ) -> Result<Option<AccountId>> {
        self.inner.author_of(tenant, conv, message).await
    }
    async fn message_deleted(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        message: &MessageId,
    ) -> Result<Option<bool>> {
        self.inner.message_deleted(tenant, conv, message).await
    }
    async fn message_bucket(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        message: &MessageId,
    ) -> Result<Option<confab_core::ids::Bucket>> {
        self.inner.message_bucket(tenant, conv, message).await
    }
}

#[async_trait]
impl Outboxes for GatedStore {
    async fn insert_notifications(
        &self,
        rows: &[confab_server::store::notifications::NewNotification],
    ) -> Result<Vec<(i64, usize)>> {
        self.inner.insert_notifications(rows).await
    }
    async fn advance_stream(
        &self,
        post: &confab_server::store::notifications::StreamPost,
    ) -> Result<confab_server::store::notifications::StreamRow> {
        self.inner.advance_stream(post).await
    }
    async fn join_streams(
        &self,
        joined: &[confab_server::store::notifications::Joined],
    ) -> Result<()> {
        self.inner.join_streams(joined).await
    }
    async fn quiet_marks(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Vec<(ConvId, Option<i64>)>> {
        self.inner.quiet_marks(tenant, account).await
    }
    async fn set_quiet(
        &self,
        changes: &[confab_server::store::notifications::Quiet],
    ) -> Result<()> {
        self.inner.set_quiet(changes).await
    }
    async fn stream_marks(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        first: &AccountId,
        last: &AccountId,
    ) -> Result<Vec<(AccountId, confab_server::store::notifications::Mark)>> {
        self.inner.stream_marks(tenant, conv, first, last).await
    }
    async fn waiting_delivery(&self, key: &str) -> Result<Option<(i64, String)>> {
        self.inner.waiting_delivery(key).await
    }
    async fn merge_delivery(&self, id: i64, key: &str, old: &str, new: &str) -> Result<bool> {
        self.inner.merge_delivery(id, key, old, new).await
    }
    async fn notification_page(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        before: Option<i64>,
        unread_only: bool,
        limit: usize,
        quiet: &[ConvId],
    ) -> Result<Vec<confab_server::store::notifications::Notification>> {
        self.inner
            .notification_page(tenant, account, before, unread_only, limit, quiet)
            .await
    }
    async fn unread_notifications(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        quiet: &[ConvId],
    ) -> Result<i64> {
        self.inner
            .unread_notifications(tenant, account, quiet)
            .await
    }
    async fn mark_notifications_read(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        up_to: Option<i64>,
        at: i64,
        quiet: &[ConvId],
    ) -> Result<i64> {
        self.inner
            .mark_notifications_read(tenant, account, up_to, at, quiet)
            .await
    }
    async fn forget_notified(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        message: &MessageId,
    ) -> Result<i64> {
        self.inner.forget_notified(tenant, conv, message).await
    }
    async fn enqueue_deliveries(
        &self,
        rows: &[confab_server::store::webhooks::NewDelivery],
    ) -> Result<()> {
        self.inner.enqueue_deliveries(rows).await
    }
    async fn claim_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> Result<Vec<confab_server::store::webhooks::Delivery>> {
        self.inner.claim_deliveries(now, lease_until, limit).await
    }
    async fn delivered(&self, id: i64) -> Result<()> {
        self.inner.delivered(id).await
    }
    async fn delivery_failed(
        &self,
        id: i64,
        attempts: i64,
        next_at: i64,
        dead_at: Option<i64>,
        error: &str,
    ) -> Result<()> {
        self.inner
            .delivery_failed(id, attempts, next_at, dead_at, error)
            .await
    }
    async fn dead_deliveries(&self) -> Result<i64> {
        self.inner.dead_deliveries().await
    }
    async fn pending_deliveries(&self) -> Result<i64> {
        self.inner.pending_deliveries().await
    }
    async fn claim_scheduled(
        &self,
        now: i64,
        lease_until: i64,
        node: &str,
        limit: usize,
    ) -> Result<Vec<confab_server::store::schedule::Claim>> {
        self.inner
            .claim_scheduled(now, lease_until, node, limit)
            .await
    }
    async fn finish_scheduled(&self, doc: &str, gen: i64, next_at: Option<i64>) -> Result<()> {
        self.inner.finish_scheduled(doc, gen, next_at).await
    }
    async fn retry_scheduled(&self, doc: &str, at: i64) -> Result<()> {
        self.inner.retry_scheduled(doc, at).await
    }
    async fn hint_scheduled(&self, doc: &str, at: i64) -> Result<()> {
        self.inner.hint_scheduled(doc, at).await
    }
    async fn post_bucket(&self, doc: &str, message: &str, bucket: &str) -> Result<String> {
        self.inner.post_bucket(doc, message, bucket).await
    }
    async fn move_post(&self, doc: &str, message: &str, to: &str) -> Result<()> {
        self.inner.move_post(doc, message, to).await
    }
    async fn post_done(&self, doc: &str, message: &str) -> Result<()> {
        self.inner.post_done(doc, message).await
    }
}

#[async_trait]
impl Directory for GatedStore {
    async fn create_invite(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        token_hash: &[u8; 32],
        invite: &confab_core::model::joining::Invite,
    ) -> Result<()> {
        self.inner
            .create_invite(tenant, conv, token_hash, invite)
            .await
    }
    async fn invite_by_token(
        &self,
        tenant: &TenantId,
        token_hash: &[u8; 32],
    ) -> Result<Option<(ConvId, confab_core::model::joining::Invite)>> {
        self.inner.invite_by_token(tenant, token_hash).await
    }
    async fn invites(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        limit: usize,
    ) -> Result<Vec<confab_core::model::joining::Invite>> {
        self.inner.invites(tenant, conv, limit).await
    }
    async fn live_invites(&self, tenant: &TenantId, conv: &ConvId, now_ms: i64) -> Result<u64> {
        self.inner.live_invites(tenant, conv, now_ms).await
    }
    async fn revoke_invite(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        id: &str,
        now_ms: i64,
    ) -> Result<bool> {
        self.inner.revoke_invite(tenant, conv, id, now_ms).await
    }
    async fn use_invite(&self, tenant: &TenantId, id: &str, now_ms: i64) -> Result<bool> {
        self.inner.use_invite(tenant, id, now_ms).await
    }
    async fn unuse_invite(&self, tenant: &TenantId, id: &str) -> Result<()> {
        self.inner.unuse_invite(tenant, id).await
    }
    async fn register_identifiers(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        hashes: &[String],
    ) -> Result<()> {
        self.inner
            .register_identifiers(tenant, account, hashes)
            .await
    }
    async fn match_identifiers(
        &self,
        tenant: &TenantId,
        hashes: &[String],
    ) -> Result<Vec<(String, AccountId)>> {
        self.inner.match_identifiers(tenant, hashes).await
    }
}

#[async_trait]
impl Devices for GatedStore {
    async fn upload_key_packages(
        &self,
        upload: &confab_server::store::devices::Upload<'_>,
    ) -> Result<std::result::Result<u64, confab_server::store::devices::UploadRefused>> {
        self.inner.upload_key_packages(upload).await
    }
    async fn claim_key_packages(
        &self,
        tenant: &TenantId,
        accounts: &[AccountId],
        ordinary: &dyn confab_server::store::devices::Ordinary,
        at: i64,
    ) -> Result<Vec<confab_server::store::devices::Claimed>> {
        self.inner
            .claim_key_packages(tenant, accounts, ordinary, at)
            .await
    }
    async fn co_members(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        others: &[AccountId],
    ) -> Result<Vec<AccountId>> {
        self.inner.co_members(tenant, account, others).await
    }
    async fn devices_of(
        &self,
        tenant: &TenantId,
        accounts: &[AccountId],
    ) -> Result<Vec<confab_server::store::devices::DeviceRow>> {
        self.inner.devices_of(tenant, accounts).await
    }
    async fn directory_of(
        &self,
        tenant: &TenantId,
        ask: &confab_core::e2ee::DirectoryAsk,
    ) -> Result<confab_core::e2ee::DirectoryAnswer> {
        self.inner.directory_of(tenant, ask).await
    }
    async fn removed_devices_of(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Vec<confab_core::ids::DeviceId>> {
        self.inner.removed_devices_of(tenant, account).await
    }
    async fn remove_device(
        &self,
        device: &confab_core::e2ee::DeviceIdentity,
        at: i64,
    ) -> Result<bool> {
        self.inner.remove_device(device, at).await
    }
    async fn key_packages_held(
        &self,
        device: &confab_core::e2ee::DeviceIdentity,
        at: i64,
    ) -> Result<u64> {
        self.inner.key_packages_held(device, at).await
    }
}

#[async_trait]
impl Cluster for GatedStore {
    fn cluster_options(&self) -> Option<sqlx::postgres::PgConnectOptions> {
        self.inner.cluster_options()
    }
    async fn notify(&self, channel: &'static str, payloads: &[String]) -> Result<()> {
        self.inner.notify(channel, payloads).await
    }
    async fn sync_clients(
        &self,
        node: &str,
        came: &[confab_server::store::clients::Key],
        went: &[confab_server::store::clients::Key],
        reset: bool,
    ) -> Result<()> {
        self.inner.sync_clients(node, came, went, reset).await
    }
    async fn clients_elsewhere(
        &self,
        node: &str,
        accounts: &[confab_server::store::clients::Key],
        alive_ms: i64,
    ) -> Result<Vec<confab_server::store::clients::Key>> {
        self.inner.clients_elsewhere(node, accounts, alive_ms).await
    }
}

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
