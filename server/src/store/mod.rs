//! Storage behind one trait, two backends: SQLite (embedded default) and Postgres.
//!
//! What is stored: an append-only change log with a per-document `seq` taken inside the
//! database, snapshots with compaction, actor bindings, a projection of memberships,
//! conversation summaries, messages and read markers (read checks and REST queries without
//! loading documents), and an audit log of rejections.
//!
//! Both backends plan a group commit the same way (`plan`) and decode rows the same way
//! (`columns`); `sqlite` and `postgres` each hold one backend's SQL only.

pub mod buckets;
pub mod clients;
mod columns;
pub mod contacts;
pub mod discovery;
mod error;
pub mod health;
pub mod invites;
pub mod memberships;
pub mod notifications;
mod plan;
pub mod postgres;
pub mod retention;
pub mod schedule;
pub mod sqlite;
pub mod stats;
pub mod webhooks;

use async_trait::async_trait;
use confab_core::ids::{AccountId, ConvId, DocId, MessageId, TenantId};

pub use self::error::{Result, StoreError};

/// One accepted change to commit.
#[derive(Debug, Clone)]
pub struct NewChange {
    pub doc: DocId,
    pub hash: [u8; 32],
    pub bytes: Vec<u8>,
    pub account: AccountId,
    pub accepted_at: i64,
    /// The seq this change gets: the engine knows the document's last seq; the database
    /// refuses the commit if someone else took it (`StoreError::SeqConflict`).
    pub seq: u64,
    /// The actor this change binds to `account` (its first change).
    pub bind_actor: Option<Vec<u8>>,
    pub projection: Vec<Projection>,
    /// A change to a `conv` document that moves its policy (members, roles, settings,
    /// lifecycle): the document's stored policy version becomes this change's seq.
    pub moves_policy: bool,
    /// The conversation policy this change was validated against (message buckets): the
    /// commit is refused (`PolicyMoved`) if another node moved it since.
    pub fence: Option<Fence>,
}

/// The policy version of a conversation a change was validated against: its `conv`
/// document and the seq of that document's last change that moved the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub conv_doc: DocId,
    pub policy_seq: u64,
}

/// Projection rows that follow from an accepted change.
#[derive(Debug, Clone, PartialEq)]
pub enum Projection {
    /// Upsert the conversation summary.
    Conversation(ConvRow),
    /// Upsert one member.
    Member {
        tenant: TenantId,
        conv: ConvId,
        account: AccountId,
        role: String,
        status: String,
    },
    /// A new message; its conversation position is taken inside the database.
    Message(MessageRow),
    /// The message's preview changed (edit) or it was deleted.
    MessageUpdated {
        tenant: TenantId,
        conv: ConvId,
        message: MessageId,
        preview: String,
        deleted: bool,
    },
    ReadMarker {
        tenant: TenantId,
        conv: ConvId,
        account: AccountId,
        message: MessageId,
    },
}

/// A conversation summary.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConvRow {
    pub tenant: TenantId,
    pub conv: ConvId,
    pub kind: String,
    pub title: Option<String>,
    pub lifecycle: String,
    pub parent: Option<ConvId>,
    pub created_at: i64,
    /// `settings/scope` (`private | organization | public`): who finds it by discovery.
    pub scope: String,
    pub description: Option<String>,
    /// Members whose status is `active` (the discovery listing's member count).
    pub active_members: i64,
    /// How a non-member gets in (`open | request | invite`, `JoinRoute`).
    pub join_route: String,
}

/// A message in the projection (REST paging, previews, unread counts).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MessageRow {
    pub tenant: TenantId,
    pub conv: ConvId,
    pub message: MessageId,
    pub doc: String,
    pub seq: u64,
    pub author: AccountId,
    pub kind: String,
    pub created_at: i64,
    pub preview: String,
    pub deleted: bool,
    /// Position in the conversation's acceptance order (set by the database).
    pub pos: i64,
    /// The accounts whose read marker has reached it, stored on the row (read by
    /// `messages`; 0 elsewhere, and ignored on input).
    pub views: i64,
}

/// An account's view of one conversation (REST list).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConvListItem {
    pub conv: ConvRow,
    pub role: String,
    pub unread: i64,
    pub last_message: Option<MessageRow>,
}

/// A document as stored: its snapshot (if compacted) and the changes after it.
#[derive(Debug, Clone, Default)]
pub struct StoredDoc {
    pub snapshot: Option<Vec<u8>>,
    pub snapshot_seq: u64,
    pub changes: Vec<(u64, Vec<u8>)>,
    pub last_seq: u64,
    /// The seq of the last change that moved a `conv` document's policy (0: none or not a
    /// conversation).
    pub policy_seq: u64,
}

/// What a document's log holds after a seq, read in one snapshot with its row (a node
/// catching up on what other nodes committed).
#[derive(Debug, Clone, Default)]
pub struct LogTail {
    /// Changes with seq greater than the one asked for, in seq order (at most the limit
    /// asked for: fewer than `last_seq` minus that seq when the log holds more).
    pub changes: Vec<(u64, Vec<u8>)>,
    pub last_seq: u64,
    pub policy_seq: u64,
    /// When greater than the seq asked for, the changes between were folded into a
    /// snapshot: load the document again instead.
    pub snapshot_seq: u64,
}

/// A rejected change, for the audit log.
#[derive(Debug, Clone)]
pub struct RejectionRecord {
    pub tenant: TenantId,
    pub doc: String,
    pub account: AccountId,
    pub hash: Option<[u8; 32]>,
    /// Stored as `code.as_str()`.
    pub code: confab_core::validate::RejectCode,
    pub reason: String,
    pub at: i64,
}

/// The storage trait. Every method is one transaction.
///
/// No method has a default body: a wrapper (the health guard, a test's gate) must forward
/// each one, or it does not compile. A default once hid that the guard did not forward the
/// batched audit write, which then ran as one transaction per rejection.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A handle for the group committer's own thread, whose connections are made (lazily)
    /// and driven by that thread's runtime; `None`: the committer shares this one.
    fn for_commit_thread(&self) -> Option<std::sync::Arc<dyn Store>>;
    /// A handle for the units' reader thread (`engine::reader`), whose connections are
    /// made (lazily) and driven by that thread's runtime; `None`: the units read through
    /// this one.
    fn for_read_thread(&self) -> Option<std::sync::Arc<dyn Store>>;
    /// Where to listen for the commits of other nodes on the same database (Postgres); `None`:
    /// this store has one node (SQLite).
    fn cluster_options(&self) -> Option<sqlx::postgres::PgConnectOptions>;
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<()>;
    /// Cheap liveness query.
    async fn ping(&self) -> Result<()>;
    /// The health prober's check ([`health`]): with `write`, a tiny write transaction (the
    /// storage may answer reads but be unable to write: disk full); without, a read.
    async fn probe(&self, write: bool) -> Result<()>;
    /// Loads a document: snapshot plus later changes. Empty if never written.
    async fn load_doc(&self, doc: &DocId) -> Result<StoredDoc>;
    /// Commits many changes (of many documents) in one transaction: group commit. Seqs must
    /// continue each document's log exactly, or nothing is written (`SeqConflict`).
    async fn commit(&self, changes: &[NewChange]) -> Result<()>;
    /// `doc`'s log after `after` (at most `limit` changes, the oldest), with its row's seqs,
    /// in one snapshot (empty for a document never written).
    async fn log_tail(&self, doc: &DocId, after: u64, limit: usize) -> Result<LogTail>;
    /// Changes of `doc` with seq > `after`, at most `limit`, in seq order.
    async fn changes_after(
        &self,
        doc: &DocId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>>;
    /// The seq of a change the acceptor found accepted (its hash is in the document): the
    /// seq it was stored with while it is in the log; once compaction folded it into the
    /// snapshot (no row keeps its hash or seq), the snapshot's seq, which is at or after its
    /// own. `None` for a document never compacted whose log does not hold the hash.
    async fn seq_of(&self, doc: &DocId, hash: &[u8; 32]) -> Result<Option<u64>>;
    /// The account an actor is bound to.
    async fn actor_account(&self, tenant: &TenantId, actor: &[u8]) -> Result<Option<AccountId>>;
    /// Appends to the audit log of rejections.
    async fn record_rejection(&self, record: &RejectionRecord) -> Result<()>;
    /// Appends many rejections to the audit log in one transaction (the engine's audit
    /// writer batches them, so a flood of rejections is not one write each).
    async fn record_rejections(&self, records: &[RejectionRecord]) -> Result<()>;
    /// Replaces the changes of `doc` up to `seq` by a snapshot of the document at `seq`:
    /// their rows are deleted, nothing of them is kept beside the snapshot.
    async fn compact(&self, doc: &DocId, snapshot: &[u8], seq: u64) -> Result<()>;
    /// Every stored document id (for `compact` over all).
    async fn doc_ids(&self) -> Result<Vec<String>>;
    /// A member's role and status, from the projection.
    async fn membership(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        account: &AccountId,
    ) -> Result<Option<(String, String)>>;
    /// A conversation summary.
    async fn conversation(&self, tenant: &TenantId, conv: &ConvId) -> Result<Option<ConvRow>>;

    /// The conversation's stats (one row), `None` if it is not stored.
    async fn conv_stats(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
    ) -> Result<Option<stats::ConvStats>>;

    /// The conversations an account is an active member of, with unread counts and the last
    /// message, most recent activity first.
    async fn conversations_of(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Vec<ConvListItem>>;
    /// A page of the conversations of a tenant the caller may find by discovery
    /// ([`discovery`]).
    async fn discover(
        &self,
        query: &discovery::DiscoverQuery<'_>,
    ) -> Result<Vec<discovery::DiscoverItem>>;
    /// Projects the discovery columns of rows written before they existed
    /// ([`discovery::ProjectOp`]).
    async fn project_discovery(
        &self,
        op: discovery::ProjectOp<'_>,
    ) -> Result<discovery::ProjectAnswer>;
    /// Messages of a conversation in acceptance order, before position `before` (newest
    /// first), at most `limit`.
    async fn messages(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<MessageRow>>;
    /// Bucket parts of a conversation, newest first: those before `before` (all without
    /// it), at most `limit`.
    async fn buckets(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        before: Option<confab_core::ids::Bucket>,
        limit: usize,
    ) -> Result<buckets::BucketPage>;
    /// Conversations holding message buckets, after `after` in key order, at most `limit`
    /// (the retention sweep's pages).
    async fn conversations_with_buckets(
        &self,
        after: Option<&retention::ConvKey>,
        limit: usize,
    ) -> Result<Vec<retention::ConvKey>>;
    /// Deletes every bucket part of a conversation before `first_kept` with all its rows,
    /// and records each in the `bucket_drops` audit table, in one transaction.
    async fn drop_buckets(&self, req: retention::DropRequest<'_>) -> Result<retention::Dropped>;
    /// Every membership of `account` (any status), each as of its conversation document's
    /// last seq (`memberships`).
    async fn memberships_of(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Vec<confab_core::protocol::Membership>>;
    /// The scheduler's tables (`schedule`: hints of private documents, posts of due
    /// messages).
    async fn schedule(&self, op: schedule::ScheduleOp<'_>) -> Result<schedule::ScheduleAnswer>;
    /// One operation on the invite links (`invites`).
    async fn invites(&self, op: invites::InviteOp<'_>) -> Result<invites::InviteAnswer>;
    /// One operation on the accounts' hashed identifiers (`contacts`).
    async fn contacts(&self, op: contacts::ContactOp<'_>) -> Result<contacts::ContactAnswer>;
    /// Publishes `payloads` on `channel` to every node listening (Postgres `NOTIFY`, in
    /// order, in one statement); a store of one node has no one to tell.
    async fn notify(&self, channel: &'static str, payloads: &[String]) -> Result<()>;
    /// Which accounts have a client on which node of a cluster (`connected_accounts`).
    async fn clients(&self, op: clients::ClientsOp<'_>) -> Result<clients::ClientsAnswer>;
    /// One operation on the webhook outbox (`webhooks`).
    async fn webhooks(&self, op: webhooks::OutboxOp<'_>) -> Result<webhooks::OutboxAnswer>;
    /// One operation on the notification feed (`notifications`).
    async fn notifications(
        &self,
        op: notifications::NotifyOp<'_>,
    ) -> Result<notifications::NotifyAnswer>;
    /// Number of rejections in the audit log (tests and metrics).
    async fn rejection_count(&self, tenant: &TenantId) -> Result<i64>;
    /// Bytes the change log and snapshots take for a document (benchmark of storage cost).
    async fn stored_bytes(&self, doc: &DocId) -> Result<u64>;
}
