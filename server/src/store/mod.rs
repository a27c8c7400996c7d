//! Storage: one trait per concern, two backends: SQLite (embedded default) and Postgres.
//!
//! What is stored: an append-only change log with a per-document `seq` taken inside the
//! database, snapshots with compaction, actor bindings, a projection of memberships,
//! conversation summaries, messages and read markers (read checks and REST queries without
//! loading documents), and an audit log of rejections.
//!
//! The concerns, each a trait a caller names by what it needs:
//!
//! - [`ChangeLog`]: documents' logs, the group commit, compaction, actor bindings and the
//!   audit log of rejections (the units, the committer, maintenance);
//! - [`Projections`]: the read side (REST, read checks, the notifier's lookups, discovery);
//! - [`Retention`]: the sweep's pages and the drop of expired buckets;
//! - [`Outboxes`]: what waits to be read or sent later: the notification feed, the webhook
//!   outbox, the scheduler's tables;
//! - [`Directory`]: invite links and contact identifiers;
//! - [`Devices`]: the MLS directory: devices, their signature keys and key packages;
//! - [`Cluster`]: what the nodes on one database share (NOTIFY, connected accounts);
//! - [`Store`]: all of them, plus the handle itself (migrations, probes, per-thread pools).
//!
//! Where the two dialects differ only in spelling, a statement is written once (`$n`
//! placeholders, which sqlx binds by number on SQLite too) in the concern's module
//! (`changelog`, `projection`, `invites`, ...), whose `queries!` macro makes the functions
//! for each backend's connection type (`pg`, `lite`), with the dialect's words (`COLLATE
//! "C"`, `FOR UPDATE SKIP LOCKED`) as its arguments. `sqlite/` and `postgres/` implement
//! each trait in a file of its own and keep the statements that really differ (row locks,
//! arrays, `RETURNING`, the SQLite group commit). Both plan a group commit the same way
//! (`plan`) and decode rows the same way (`columns`).
//!
//! The traits are declared through `store_traits!`, which writes `forward_store!` from the
//! same signatures: wrappers (the health guard `health::Guarded`, a test's gate) implement
//! every trait with it, saying only what they do around a call (`forward`).
//! Every backend runs the same conformance suite (`conformance`, `testing` feature).

pub mod buckets;
mod changelog;
pub mod clients;
mod columns;
#[cfg(feature = "testing")]
pub mod conformance;
pub mod contacts;
pub mod cuts;
pub mod devices;
pub mod discovery;
mod error;
pub mod forget;
#[macro_use]
pub mod forward;
pub mod invites;
pub mod memberships;
pub mod notifications;
mod plan;
pub mod postgres;
mod projection;
pub mod retention;
pub mod schedule;
pub mod search;
pub mod sqlite;
pub mod stats;
pub mod webhooks;

use async_trait::async_trait;
use confab_core::ids::{AccountId, Bucket, ConvId, DocId, MessageId, TenantId};
use confab_core::model::joining::Invite;

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
    /// A thread's change: the parent's policy version its author's standing there was read
    /// at, fenced the same way.
    pub parent_fence: Option<Fence>,
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
    /// A message's search terms (`confab_core::search::index_text`) after a post or an
    /// edit, in a plaintext conversation only: they replace what the search index held for
    /// it, unless its projected row is deleted (docs/SEARCH.md).
    SearchTerms {
        tenant: TenantId,
        conv: ConvId,
        message: MessageId,
        terms: String,
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
    /// The document's generation: 0 until its history is first cut (docs/SCHEMA.md,
    /// "Generations").
    pub generation: u64,
}

/// A document's next generation, to install in place of its log and snapshot
/// ([`ChangeLog::install_generation`]).
#[derive(Debug, Clone)]
pub struct NewGeneration {
    /// The generation it becomes: one above the stored one.
    pub generation: u64,
    /// The last seq of the state it was built from; the cut takes the next one.
    pub base_seq: u64,
    /// The saved generation (`confab_core::doc::cut::rebuild`).
    pub snapshot: Vec<u8>,
}

/// A message part's row held against every node's commits and cuts, from
/// [`ChangeLog::fence_part`] until [`PartFence::install`]; dropped, it lets the row go
/// unchanged.
#[async_trait]
pub trait PartFence: Send {
    /// Installs `next` as [`ChangeLog::install_generation`] does, inside the fence, and lets
    /// the row go.
    async fn install(self: Box<Self>, next: &NewGeneration) -> Result<()>;
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

// Declared through the macro that also writes every wrapper's forwarding (`forward`).
store_traits! {
    /// The whole storage: every concern, and the handle itself. Every method is one
    /// transaction.
    ///
    /// A wrapper (the health guard, a test's gate) forwards every method of these traits
    /// through `forward_store!` ([`forward`]). None has a default body (`store_traits!`
    /// refuses one): a default once hid that the guard did not forward the batched audit
    /// write, which then ran as one transaction per rejection.
    pub trait Store:
        ChangeLog
        + Projections
        + Retention
        + Forgetting
        + Outboxes
        + Directory
        + Devices
        + Cluster
        + 'static
    {
        /// A handle for the group committer's own thread, whose connections are made (lazily)
        /// and driven by that thread's runtime; `None`: the committer shares this one.
        fn for_commit_thread(&self) -> Option<std::sync::Arc<dyn Store>>;
        /// A handle for the units' reader thread (`engine::reader`), whose connections are
        /// made (lazily) and driven by that thread's runtime; `None`: the units read through
        /// this one.
        fn for_read_thread(&self) -> Option<std::sync::Arc<dyn Store>>;
        /// Applies pending migrations.
        async fn migrate(&self) -> Result<()>;
        /// Cheap liveness query.
        async fn ping(&self) -> Result<()>;
        /// The health prober's check ([`health`]): with `write`, a tiny write transaction (the
        /// storage may answer reads but be unable to write: disk full); without, a read.
        async fn probe(&self, write: bool) -> Result<()>;
    }

    /// Documents' change logs: what the units load and commit, compaction, actor bindings, and
    /// the audit log of rejected changes.
    pub trait ChangeLog: Send + Sync {
        /// Loads a document: snapshot plus later changes. Empty if never written.
        async fn load_doc(&self, doc: &DocId) -> Result<StoredDoc>;
        /// Commits many changes (of many documents) in one transaction: group commit. Seqs must
        /// continue each document's log exactly, or nothing is written (`SeqConflict`).
        async fn commit(&self, changes: &[NewChange]) -> Result<()>;
        /// `doc`'s log after `after` (at most `limit` changes, the oldest), with its row's seqs,
        /// in one snapshot (empty for a document never written). After a compaction the
        /// changes up to the snapshot are gone: with `after` older than the snapshot this
        /// returns only the changes after it, and the caller sends the snapshot (from
        /// [`ChangeLog::load_doc`]) first.
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
        /// Replaces the changes of `doc` up to `seq` by a snapshot of the document at `seq`:
        /// their rows are deleted, nothing of them is kept beside the snapshot. Refuses
        /// (`Corrupt`) a seq beyond the document's last seq and (`SeqConflict`) a seq older than
        /// the current snapshot (another compaction got further first).
        async fn compact(&self, doc: &DocId, snapshot: &[u8], seq: u64) -> Result<()>;
        /// Replaces `doc`'s whole log and snapshot by its next generation, in one transaction:
        /// the snapshot is stored at seq `base_seq + 1`, which becomes the last seq, and no change
        /// of the earlier generation is kept. Fenced like a commit: refused (`SeqConflict`) unless
        /// the stored last seq is still `base_seq` and the stored generation the one before, so
        /// of two racing cuts, or a cut and a commit, exactly one wins. On Postgres it notifies
        /// the other nodes as a commit of that seq does.
        async fn install_generation(&self, doc: &DocId, next: &NewGeneration) -> Result<()>;
        /// Holds `doc`'s row so that no commit or cut of any node moves it until the fence is
        /// installed or dropped: a cut that read, rebuilt and installs behind it cannot be
        /// beaten by a writer on another node. Postgres: the row's lock in an open transaction,
        /// waited for at most a few seconds (then `SeqConflict`); other nodes' commits of the
        /// part wait for it. SQLite serves one node, whose unit already orders the part's
        /// writers: its fence holds nothing.
        async fn fence_part(&self, doc: &DocId) -> Result<Box<dyn PartFence>>;
        /// Every stored document id (for `compact` over all), in bytewise order.
        async fn doc_ids(&self) -> Result<Vec<String>>;
        /// Bytes the change log and snapshots take for a document (benchmark of storage cost).
        async fn stored_bytes(&self, doc: &DocId) -> Result<u64>;
        /// Appends to the audit log of rejections.
        async fn record_rejection(&self, record: &RejectionRecord) -> Result<()>;
        /// Appends many rejections to the audit log in one transaction (the engine's audit
        /// writer batches them, so a flood of rejections is not one write each).
        async fn record_rejections(&self, records: &[RejectionRecord]) -> Result<()>;
        /// Number of rejections in the audit log (tests and metrics).
        async fn rejection_count(&self, tenant: &TenantId) -> Result<i64>;
    }

    /// The projection's read side: memberships, summaries, messages, stats, bucket parts and
    /// the discovery listing, read without loading documents.
    pub trait Projections: Send + Sync {
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
        /// When each account's read marker in a conversation last moved (server time, ms; a
        /// member's `last_read_at`), by account; a marker without a time is left out.
        async fn read_times(
            &self,
            tenant: &TenantId,
            conv: &ConvId,
        ) -> Result<std::collections::BTreeMap<AccountId, i64>>;
        /// The conversations an account is an active member of, with unread counts and the last
        /// message, most recent activity first.
        async fn conversations_of(
            &self,
            tenant: &TenantId,
            account: &AccountId,
        ) -> Result<Vec<ConvListItem>>;
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
            before: Option<Bucket>,
            limit: usize,
        ) -> Result<buckets::BucketPage>;
        /// Every membership of `account` (any status), each as of its conversation document's
        /// last seq (`memberships`).
        async fn memberships_of(
            &self,
            tenant: &TenantId,
            account: &AccountId,
        ) -> Result<Vec<confab_core::protocol::Membership>>;
        /// Active members of a conversation in bytewise order, at most `limit`; only owners and
        /// admins with `admins_only` (the notifier's recipients).
        async fn active_members(
            &self,
            tenant: &TenantId,
            conv: &ConvId,
            admins_only: bool,
            limit: usize,
        ) -> Result<Vec<AccountId>>;
        /// Up to `limit` active members of a conversation after `after` in bytewise order, each
        /// with the last seq of its private document (0 when it has none): the notifier's
        /// fan-out of a message at the level `all`, a page per statement.
        async fn fanout_members(
            &self,
            tenant: &TenantId,
            conv: &ConvId,
            after: Option<&AccountId>,
            limit: usize,
        ) -> Result<Vec<(AccountId, u64)>>;
        /// A page of messages matching a search, among those its account may read, newest
        /// first (`search`, docs/SEARCH.md).
        async fn search(&self, query: &search::SearchQuery<'_>) -> Result<Vec<search::SearchHit>>;
        /// The search backfill's next page of up to `limit` message rows, `None` once it is
        /// done (`engine::search_backfill`).
        async fn search_backfill_page(
            &self,
            limit: usize,
        ) -> Result<Option<search::backfill::Page>>;
        /// Writes a page's entries (for rows still live and without one) and moves the marker
        /// past the page, unless another node moved it first; one transaction.
        async fn search_backfill_write(
            &self,
            page: &search::backfill::Page,
            entries: &[search::backfill::Entry],
        ) -> Result<()>;
        /// Moves up to `limit` entries of the search backlog into the inverted index, in one
        /// transaction; how many it took off the backlog. SQLite writes FTS5 behind the commit
        /// (migration 0044, `engine::search_indexer`); Postgres writes its index in the commit,
        /// so 0 there.
        async fn index_search_backlog(&self, limit: usize) -> Result<usize>;
        /// The author of a message, from the projection.
        async fn author_of(
            &self,
            tenant: &TenantId,
            conv: &ConvId,
            message: &MessageId,
        ) -> Result<Option<AccountId>>;
        /// Whether a message is deleted, from the projection (`None`: no such message): the
        /// message a new thread hangs on, found by its id without loading a bucket.
        async fn message_deleted(
            &self,
            tenant: &TenantId,
            conv: &ConvId,
            message: &MessageId,
        ) -> Result<Option<bool>>;
        /// The bucket part holding a message, from the projection (`None`: no such message):
        /// the proposal a response answers, found by its id without loading buckets.
        async fn message_bucket(
            &self,
            tenant: &TenantId,
            conv: &ConvId,
            message: &MessageId,
        ) -> Result<Option<Bucket>>;
        /// A page of the conversations of a tenant the caller may find by discovery
        /// ([`discovery`]).
        async fn discover(
            &self,
            query: &discovery::DiscoverQuery<'_>,
        ) -> Result<Vec<discovery::DiscoverItem>>;
        /// Up to `limit` summaries whose discovery columns were never projected (rows written
        /// before those columns existed), after `after` (tenant, conversation) in bytewise key
        /// order.
        async fn discovery_stale(
            &self,
            after: Option<(&TenantId, &ConvId)>,
            limit: usize,
        ) -> Result<Vec<(TenantId, ConvId)>>;
        /// Writes the discovery columns of these rows and marks them projected, each only if it
        /// still is not: a commit since wrote newer values, which are kept. Returns the rows
        /// written.
        async fn discovery_write(&self, rows: &[ConvRow]) -> Result<u64>;
    }

    /// Retention: the conversations the sweep walks, and the drop of their expired buckets
    /// ([`retention`]).
    pub trait Retention: Send + Sync {
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
    }

    /// Forgetting ([`forget`]): the blobs deleted messages named, account erasures, and the
    /// database's own clean-up of what they left behind.
    pub trait Forgetting: Send + Sync {
        /// Records blobs deleted messages named (candidates for the sweep).
        async fn release_blobs(&self, rows: &[forget::BlobRelease]) -> Result<()>;
        /// Candidates deleted at or before `deleted_before`, oldest first, at most `limit`.
        async fn due_blob_releases(
            &self,
            deleted_before: i64,
            limit: usize,
        ) -> Result<Vec<forget::BlobRelease>>;
        /// Removes a candidate the sweep handled (kept if a later delete moved its time).
        async fn settle_blob_release(&self, row: &forget::BlobRelease) -> Result<()>;
        /// Starts the erasure of `account` unless it exists: the stored erasure either way.
        async fn request_erasure(
            &self,
            tenant: &TenantId,
            account: &AccountId,
            by: &AccountId,
            now: i64,
        ) -> Result<forget::Erasure>;
        async fn erasure(
            &self,
            tenant: &TenantId,
            account: &AccountId,
        ) -> Result<Option<forget::Erasure>>;
        /// Leases one unfinished erasure no node holds (its lease is before `now`) until `until`.
        async fn claim_erasure(&self, now: i64, until: i64) -> Result<Option<forget::Erasure>>;
        /// Stores an erasure's progress, leased until `until`.
        async fn save_erasure(&self, erasure: &forget::Erasure, until: i64) -> Result<()>;
        /// The account's messages not deleted, after `after` (conversation key, position).
        async fn authored_messages(
            &self,
            tenant: &TenantId,
            account: &AccountId,
            after: (i64, i64),
            limit: usize,
        ) -> Result<Vec<forget::Authored>>;
        /// Makes the database drop the old versions of rows a purge rewrote or deleted
        /// (docs/STORAGE.md, "What a delete removes"): Postgres `VACUUM` of those tables
        /// (`full`: `VACUUM FULL`, which rewrites their files), SQLite a WAL checkpoint that
        /// truncates the WAL. `false` when another node is at it (Postgres).
        async fn vacuum_forgotten(&self, full: bool) -> Result<bool>;
        /// Deletes up to `limit` queued search entries of deleted or dropped messages from the
        /// index's pages, in one transaction; how many it deleted. SQLite only (FTS5's
        /// `secure-delete`, migration 0034, a few milliseconds an entry); Postgres' GIN loses
        /// them at `VACUUM`, so 0 there.
        async fn forget_search_entries(&self, limit: usize) -> Result<usize>;

        /// Leases up to `limit` parts due for a history cut ([`cuts`]) to `node`, as of the
        /// database's clock; on Postgres with `FOR UPDATE SKIP LOCKED`, so two nodes never
        /// claim one part.
        async fn claim_cuts(
            &self,
            timing: cuts::CutTiming,
            node: &str,
            limit: usize,
        ) -> Result<Vec<cuts::DueCut>>;
        /// The part was cut (or had nothing to cut) as of the claim: its row goes unless a
        /// delete or edit came since.
        async fn finish_cut(&self, due: &cuts::DueCut) -> Result<()>;
        /// The cut did not happen: the part is claimable again `after_ms` from now.
        async fn retry_cut(&self, due: &cuts::DueCut, after_ms: i64) -> Result<()>;
        /// Parts noted for a cut, due or not yet.
        async fn pending_cuts(&self) -> Result<i64>;
    }

    /// What waits to be read or sent later: the notification feed ([`notifications`]), the
    /// webhook outbox ([`webhooks`]) and the scheduler's tables ([`schedule`]).
    pub trait Outboxes: Send + Sync {
        /// Stores these notifications (those already stored are skipped, and those naming a
        /// message whose row is deleted or missing: no text outlives a deletion,
        /// docs/NOTIFICATIONS.md "Deleted messages") and answers the new ones'
        /// `(id, index in the slice)`.
        async fn insert_notifications(
            &self,
            rows: &[notifications::NewNotification],
        ) -> Result<Vec<(i64, usize)>>;
        /// Adds a batch's ordinary messages of one conversation to its stream (one row per
        /// conversation, created when missing, given a new feed id) and each of `skips` to its
        /// account's mark, in one transaction: O(1) in the size of the group.
        async fn advance_stream(
            &self,
            post: &notifications::StreamPost,
        ) -> Result<notifications::StreamRow>;
        /// Members became active: each one's mark starts where its stream stands.
        async fn join_streams(&self, joined: &[notifications::Joined]) -> Result<()>;
        /// The conversations whose entry is frozen for the account (its settings made them
        /// quiet), with when a timed mute ends.
        async fn quiet_marks(
            &self,
            tenant: &TenantId,
            account: &AccountId,
        ) -> Result<Vec<(ConvId, Option<i64>)>>;
        /// Freezes, re-times or thaws accounts' entries as their settings changed, in one
        /// transaction.
        async fn set_quiet(&self, changes: &[notifications::Quiet]) -> Result<()>;
        /// The marks of a conversation's members from `first` to `last` (by account id); a
        /// member without one has none yet (zeros).
        async fn stream_marks(
            &self,
            tenant: &TenantId,
            conv: &ConvId,
            first: &AccountId,
            last: &AccountId,
        ) -> Result<Vec<(AccountId, notifications::Mark)>>;
        /// A page of an account's feed, newest first, ids below `before`; only unread ones with
        /// `unread_only`: its rows and its derived `message` entries, but those of `quiet`
        /// conversations (its settings want no `message` entry of them now).
        async fn notification_page(
            &self,
            tenant: &TenantId,
            account: &AccountId,
            before: Option<i64>,
            unread_only: bool,
            limit: usize,
            quiet: &[ConvId],
        ) -> Result<Vec<notifications::Notification>>;
        /// The number of unread notifications of readable conversations (as `notification_page`
        /// lists them).
        async fn unread_notifications(
            &self,
            tenant: &TenantId,
            account: &AccountId,
            quiet: &[ConvId],
        ) -> Result<i64>;
        /// Marks the account's unread notifications with ids up to `up_to` (all without) read;
        /// returns how many.
        async fn mark_notifications_read(
            &self,
            tenant: &TenantId,
            account: &AccountId,
            up_to: Option<i64>,
            at: i64,
            quiet: &[ConvId],
        ) -> Result<i64>;
        /// A message was deleted: its text leaves every feed. Returns the rows changed.
        async fn forget_notified(
            &self,
            tenant: &TenantId,
            conv: &ConvId,
            message: &MessageId,
        ) -> Result<i64>;

        /// Queues webhook deliveries, but those `about` a message whose row is deleted or
        /// missing (as `insert_notifications`).
        async fn enqueue_deliveries(&self, rows: &[webhooks::NewDelivery]) -> Result<()>;
        /// The newest delivery still open to merging under `key` (queued, not yet claimed):
        /// its id and payload.
        async fn waiting_delivery(&self, key: &str) -> Result<Option<(i64, String)>>;
        /// Replaces the payload of delivery `id` if it is still open under `key` and still
        /// holds `old` (no claim and no other merge came in between); false otherwise.
        async fn merge_delivery(&self, id: i64, key: &str, old: &str, new: &str) -> Result<bool>;
        /// Up to `limit` due deliveries (`next_at <= now`, not dead), oldest due first; each
        /// one's `next_at` moves to `lease_until`, so no other claim takes it meanwhile and a
        /// node that dies sending it leaves it due again.
        async fn claim_deliveries(
            &self,
            now: i64,
            lease_until: i64,
            limit: usize,
        ) -> Result<Vec<webhooks::Delivery>>;
        /// The receiver took it: the row goes.
        async fn delivered(&self, id: i64) -> Result<()>;
        /// The attempt failed: tried again at `next_at`, or dead from `dead_at` on.
        async fn delivery_failed(
            &self,
            id: i64,
            attempts: i64,
            next_at: i64,
            dead_at: Option<i64>,
            error: &str,
        ) -> Result<()>;
        /// Deliveries given up (dead letters).
        async fn dead_deliveries(&self) -> Result<i64>;
        /// Deliveries waiting (not dead).
        async fn pending_deliveries(&self) -> Result<i64>;

        /// Leases up to `limit` schedule hints due at `now` (`next_at <= now`, no live lease)
        /// until `lease_until` for `node`. On Postgres with `FOR UPDATE SKIP LOCKED`: two nodes
        /// never claim one hint.
        async fn claim_scheduled(
            &self,
            now: i64,
            lease_until: i64,
            node: &str,
            limit: usize,
        ) -> Result<Vec<schedule::Claim>>;
        /// The document was looked at as of `gen`: its next due time (`None`: nothing waits,
        /// the hint goes). If `gen` moved meanwhile (the document changed), only the lease ends
        /// and the hint stays due now.
        async fn finish_scheduled(&self, doc: &str, gen: i64, next_at: Option<i64>) -> Result<()>;
        /// Something transient failed: look at the document again from `at`.
        async fn retry_scheduled(&self, doc: &str, at: i64) -> Result<()>;
        /// A document holds something due at `at` that no trigger marks (a conversation's
        /// temporary role, `engine::lapses`): its hint is due by then at the latest, and its
        /// `gen` moves, so a pass that looked at it before does not settle it.
        async fn hint_scheduled(&self, doc: &str, at: i64) -> Result<()>;
        /// The bucket of a due message's post: the stored one, or `bucket` stored now.
        async fn post_bucket(&self, doc: &str, message: &str, bucket: &str) -> Result<String>;
        /// The post was refused by its bucket for a reason about the bucket (full, not open):
        /// the next attempt goes to `to`.
        async fn move_post(&self, doc: &str, message: &str, to: &str) -> Result<()>;
        /// The message is settled in the private document: its post row goes.
        async fn post_done(&self, doc: &str, message: &str) -> Result<()>;
    }

    /// Invite links ([`invites`]) and the accounts' hashed contact identifiers ([`contacts`]).
    pub trait Directory: Send + Sync {
        /// Stores a new invite link under the hash of its token.
        async fn create_invite(
            &self,
            tenant: &TenantId,
            conv: &ConvId,
            token_hash: &[u8; 32],
            invite: &Invite,
        ) -> Result<()>;
        /// The link whose token hashes to `token_hash`, in `tenant`.
        async fn invite_by_token(
            &self,
            tenant: &TenantId,
            token_hash: &[u8; 32],
        ) -> Result<Option<(ConvId, Invite)>>;
        /// The conversation's links, newest first, at most `limit`.
        async fn invites(
            &self,
            tenant: &TenantId,
            conv: &ConvId,
            limit: usize,
        ) -> Result<Vec<Invite>>;
        /// How many of the conversation's links are live at `now_ms`.
        async fn live_invites(&self, tenant: &TenantId, conv: &ConvId, now_ms: i64) -> Result<u64>;
        /// Revokes a link of the conversation (once: a revoked link keeps its first time).
        /// Returns whether the link exists.
        async fn revoke_invite(
            &self,
            tenant: &TenantId,
            conv: &ConvId,
            id: &str,
            now_ms: i64,
        ) -> Result<bool>;
        /// Counts one use if the link is usable at `now_ms`; returns whether it was.
        async fn use_invite(&self, tenant: &TenantId, id: &str, now_ms: i64) -> Result<bool>;
        /// Gives back a use whose join did not happen.
        async fn unuse_invite(&self, tenant: &TenantId, id: &str) -> Result<()>;
        /// Replaces the identifiers of `account` with `hashes`; a hash another account had
        /// moves to this one.
        async fn register_identifiers(
            &self,
            tenant: &TenantId,
            account: &AccountId,
            hashes: &[String],
        ) -> Result<()>;
        /// The accounts of the tenant holding any of `hashes`: `(hash, account)`, in hash order.
        async fn match_identifiers(
            &self,
            tenant: &TenantId,
            hashes: &[String],
        ) -> Result<Vec<(String, AccountId)>>;
    }

    /// The MLS directory ([`devices`]): devices bound to their signature keys, their key
    /// packages, and the references of the packages claimed.
    pub trait Devices: Send + Sync {
        /// Stores a device's key packages in one transaction (its first upload registers it
        /// with the upload's signature key), or nothing and why: the answer is how many
        /// ordinary packages the device holds now.
        async fn upload_key_packages(
            &self,
            upload: &devices::Upload<'_>,
        ) -> Result<std::result::Result<u64, devices::UploadRefused>>;
        /// One package of every registered, not removed device of `accounts` in `tenant`, in
        /// (account, device) order: where `ordinary` allows it, the oldest ordinary one,
        /// deleted and never handed out again; else the last-resort one, which stays; else none.
        async fn claim_key_packages(
            &self,
            tenant: &TenantId,
            accounts: &[AccountId],
            ordinary: &dyn devices::Ordinary,
            at: i64,
        ) -> Result<Vec<devices::Claimed>>;
        /// The accounts of `others`, `account` aside, that share a conversation of `tenant` with
        /// `account` in which both are active members (the `memberships` projection), in one
        /// query, in bytewise order: whose ordinary key packages `account` may claim.
        async fn co_members(
            &self,
            tenant: &TenantId,
            account: &AccountId,
            others: &[AccountId],
        ) -> Result<Vec<AccountId>>;
        /// The registered, not removed devices of `accounts` in `tenant`, in (account, device)
        /// order, in one query.
        async fn devices_of(
            &self,
            tenant: &TenantId,
            accounts: &[AccountId],
        ) -> Result<Vec<devices::DeviceRow>>;
        /// What the Delivery Service checks a group step against (`accept::Need::Devices`), in
        /// one query: every registered device of `ask.accounts` in `tenant`, removed or not, with
        /// the signature key bound to it; every device of `tenant` removed at a generation after
        /// `ask.removed_after`; and the tenant's removal generation, read first (every removal
        /// up to it is in the answer).
        async fn directory_of(
            &self,
            tenant: &TenantId,
            ask: &confab_core::e2ee::DirectoryAsk,
        ) -> Result<confab_core::e2ee::DirectoryAnswer>;
        /// The devices of `account` in `tenant` removed from the directory, in device order (an
        /// account's other devices take them out of its groups).
        async fn removed_devices_of(
            &self,
            tenant: &TenantId,
            account: &AccountId,
        ) -> Result<Vec<confab_core::ids::DeviceId>>;
        /// Marks a device removed (the first time stays) at its tenant's next removal generation,
        /// and drops its packages; `false` if it was never registered.
        async fn remove_device(
            &self,
            device: &confab_core::e2ee::DeviceIdentity,
            at: i64,
        ) -> Result<bool>;
        /// How many ordinary key packages the device holds; the device is seen at `at` (it asks
        /// on connecting).
        async fn key_packages_held(
            &self,
            device: &confab_core::e2ee::DeviceIdentity,
            at: i64,
        ) -> Result<u64>;
    }

    /// What the nodes of a cluster on one database share. A store of one node (SQLite) has no
    /// one to tell and nobody elsewhere.
    pub trait Cluster: Send + Sync {
        /// Where to listen for the commits of other nodes on the same database (Postgres);
        /// `None`: this store has one node (SQLite).
        fn cluster_options(&self) -> Option<sqlx::postgres::PgConnectOptions>;
        /// Publishes `payloads` on `channel` to every node listening (Postgres `NOTIFY`, in
        /// order, in one statement).
        async fn notify(&self, channel: &'static str, payloads: &[String]) -> Result<()>;
        /// `node` is alive now; `came` got a first client on it, `went` lost their last one.
        /// `reset` first forgets every row of `node` (a start, or a node that could not write
        /// for a while: `came` is then everything it has) ([`clients`]).
        async fn sync_clients(
            &self,
            node: &str,
            came: &[clients::Key],
            went: &[clients::Key],
            reset: bool,
        ) -> Result<()>;
        /// Of `accounts`, those with a client on a node other than `node` whose heartbeat is at
        /// most `alive_ms` old.
        async fn clients_elsewhere(
            &self,
            node: &str,
            accounts: &[clients::Key],
            alive_ms: i64,
        ) -> Result<Vec<clients::Key>>;
    }
}

// After `store_traits!`: the guard uses the `forward_store!` it writes, which a module
// declared before it would not see.
pub mod health;
