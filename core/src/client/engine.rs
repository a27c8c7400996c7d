//! The client engine, sans-io: local replicas, the outbox of intents with their changes,
//! cursors, subscriptions. Frames from the server are handled in `receive`, storage in
//! `persist`, loads in `ask`/`load`/`jobs`, catch-up from snapshots in `catchup`, derived
//! views in `views`.
//!
//! Inputs are method calls (`intent`, `connected`, `receive`, `loaded`, ...); outputs are
//! data the host carries out in order: frames to send, store writes, store reads, events.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use automerge::{ActorId, Automerge, Change, ChangeHash};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::apply;
use super::ask::{Load, Loads, Outcome, RequestId};
use super::buckets::BucketBook;
use super::cache::ViewCell;
pub use super::error::ClientError;
use super::intent::Intent;
use super::store::StoreOp;
use crate::doc::{self, read, IntentTag};
use crate::ids::{AccountId, ConvId, DocId, DocTarget, MessageId, TenantId};
use crate::model::conversation::{Conversation, Lifecycle};
use crate::protocol::ClientFrame;

/// Where an intent stands. Every intent ends accepted or rejected with a reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum IntentStatus {
    /// Written locally, not yet sent (offline, or held behind an earlier intent of the same
    /// conversation that waits for a resend).
    Pending,
    /// Sent, no answer yet.
    Sent,
    /// The server could not take it yet (a transient error, no answer in time, or it waits
    /// for an earlier intent of this device that could not be taken): it is resent in order
    /// with backoff until it is accepted or rejected for a reason about itself.
    Retrying,
    Accepted,
    /// `code` for programs (a `refusal::Code`), `reason` for people (a sentence with names
    /// and titles, `refusal`), `detail` the technical text (the server's or the policy's).
    Rejected {
        code: String,
        reason: String,
        #[serde(default)]
        detail: String,
    },
}

/// What the host must do, in order (docs/CLIENT.md, "The client engine and its hosts").
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A frame for the server (dropped when offline: the engine sends again on `connected`).
    Send(ClientFrame),
    /// Store writes, applied all or none, after the writes before them.
    Persist(Vec<StoreOp>),
    /// Store reads the engine waits for: answer with `ClientEngine::loaded` (any order).
    Load(Load),
    Event(Event),
}

/// What changed, for the UI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Intent {
        id: u64,
        status: IntentStatus,
    },
    Doc {
        doc: String,
    },
    Typing {
        conv: String,
    },
    /// A member's presence in `conv` changed (read it with `presence`).
    Presence {
        conv: String,
    },
    Revoked {
        doc: String,
        reason: String,
    },
    /// The server told of a change of the account's membership in a conversation (added,
    /// removed, left, banned, a new role); the engine already follows or stopped it.
    Membership(super::feed::MembershipChange),
    Online {
        online: bool,
    },
    /// A request (`restoring`, `open_conversation`, `load_older`) is finished.
    Done {
        request: RequestId,
        outcome: Outcome,
    },
    /// Something stored could not be read back (start-up goes on without it).
    Error {
        code: String,
        message: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct PendingChange {
    pub(super) doc: String,
    pub(super) hash: ByteBuf,
    pub(super) bytes: ByteBuf,
    pub(super) acked: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct OutboxEntry {
    pub(super) id: u64,
    pub(super) intent: Intent,
    pub(super) created_at: i64,
    pub(super) status: IntentStatus,
    pub(super) changes: Vec<PendingChange>,
    /// Waits for the next resend round (retry bookkeeping lives in memory only: a restart
    /// reconnects and resends everything anyway).
    #[serde(skip)]
    pub(super) resend: bool,
    /// Device time of the last send while no answer settled it (for the answer timeout).
    #[serde(skip)]
    pub(super) sent_at: Option<i64>,
}

impl OutboxEntry {
    pub(super) fn is_final(&self) -> bool {
        matches!(
            self.status,
            IntentStatus::Accepted | IntentStatus::Rejected { .. }
        )
    }
}

/// One document as this client holds it.
pub(super) struct ClientDoc {
    /// Accepted changes only.
    pub(super) server: Automerge,
    /// Accepted plus this device's pending changes: what the user sees.
    pub(super) local: Automerge,
    /// Every change up to this seq is in `server` and stored: catch-up resumes after it.
    pub(super) cursor: u64,
    /// Server order of messages created in this document.
    pub(super) message_seq: HashMap<MessageId, u64>,
    pub(super) changes_since_snapshot: usize,
    pub(super) revoked: Option<String>,
    /// This device's changes acked with a seq beyond `cursor`: in `server` and stored as ack
    /// records until that seq arrives in order.
    pub(super) acked: HashMap<ChangeHash, u64>,
    /// Subscribed, `synced` not yet received (the store fold waits for it).
    pub(super) catching_up: bool,
    /// Not subscribed yet: the conversation's creation still waits in the outbox, and the
    /// server refuses to subscribe to a conversation that does not exist.
    pub(super) deferred: bool,
    /// The server refused to subscribe it (`forbidden`), as of its conversation's feed entry
    /// (its seq, `None` without one): a newer entry that says active subscribes it again
    /// (docs/FEATURES.md, "The membership feed").
    pub(super) refused: Option<Option<u64>>,
    /// What the policy reads of a conversation document, as of `local`'s heads.
    pub(super) view: ViewCell,
    /// A message bucket's timeline items, as of its heads.
    pub(super) timeline: super::timeline_cache::TimelineCell,
}

impl ClientDoc {
    pub(super) fn new(server: Automerge, local: Automerge, cursor: u64) -> Self {
        ClientDoc {
            server,
            local,
            cursor,
            message_seq: HashMap::new(),
            changes_since_snapshot: 0,
            revoked: None,
            acked: HashMap::new(),
            catching_up: false,
            deferred: false,
            refused: None,
            view: ViewCell::default(),
            timeline: Default::default(),
        }
    }
}

/// Identity of this client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    pub tenant: TenantId,
    pub account: AccountId,
    /// This device's actor (16 random bytes chosen once and kept in the store).
    pub actor: ActorId,
}

/// First delay before resending after a transient failure (without `retry_after_ms`).
pub const RETRY_MIN_MS: i64 = 250;
/// The backoff doubles per resend round without progress up to this.
pub const RETRY_MAX_MS: i64 = 30_000;
/// A sent change with no answer this long while connected is resent (resending is idempotent).
pub const ANSWER_TIMEOUT_MS: i64 = 30_000;

/// The client engine.
pub struct ClientEngine {
    pub(super) config: ClientConfig,
    pub(super) online: bool,
    clock_offset: i64,
    pub(super) docs: BTreeMap<DocId, ClientDoc>,
    pub(super) outbox: BTreeMap<u64, OutboxEntry>,
    pub(super) next_id: u64,
    pub(super) typing: HashMap<ConvId, BTreeMap<AccountId, i64>>,
    pub(super) out: Vec<Output>,
    /// Device time of the next resend round (some entry has `resend` set, or a document waits
    /// to be subscribed again).
    pub(super) retry_at: Option<i64>,
    /// Resend rounds since the last ack: the backoff's exponent.
    pub(super) retry_attempt: u32,
    /// Subscriptions a transient error may have dropped: sent again with the next round.
    pub(super) resubscribe: BTreeSet<DocId>,
    /// The server's limits from `welcome` (a resend round batches a document's changes).
    pub(super) max_changes: usize,
    pub(super) max_frame: usize,
    /// Store reads out and the work that waits for them.
    pub(super) loads: Loads,
    /// What the server said of the conversations' bucket parts.
    pub(super) buckets: BucketBook,
    /// What the server said of the account's memberships.
    pub(super) feed: super::feed::Feed,
    /// Members' presence and ours (never stored).
    pub(super) presence: super::presence::PresenceBook,
    /// Arrived messages of others still to mark delivered (never stored).
    pub(super) delivery: super::delivery::Delivery,
}

impl std::fmt::Debug for ClientEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientEngine")
            .field("account", &self.config.account)
            .field("docs", &self.docs.len())
            .field("outbox", &self.outbox.len())
            .finish()
    }
}

impl ClientEngine {
    pub fn new(config: ClientConfig) -> Self {
        ClientEngine {
            config,
            online: false,
            clock_offset: 0,
            docs: BTreeMap::new(),
            outbox: BTreeMap::new(),
            next_id: 1,
            typing: HashMap::new(),
            out: Vec::new(),
            retry_at: None,
            retry_attempt: 0,
            resubscribe: BTreeSet::new(),
            max_changes: 100,
            max_frame: 1 << 20,
            loads: Loads::empty_store(),
            buckets: BucketBook::default(),
            feed: Default::default(),
            presence: Default::default(),
            delivery: Default::default(),
        }
    }

    /// An engine over a store that may hold data (every host with a persistent store starts
    /// here): its first output loads the outbox and the index of stored documents, then the
    /// documents a start shows; `Event::Done` with `Outcome::Restored` says it is over.
    /// Intents and requests made meanwhile wait for it.
    pub fn restoring(config: ClientConfig) -> Self {
        let mut engine = Self::new(config);
        engine.loads = Loads::unknown_store();
        engine.start_restore();
        engine
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    pub fn is_online(&self) -> bool {
        self.online
    }

    /// Takes what the host must do, in order.
    pub fn drain(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }

    /// Server time estimate from the device clock.
    pub fn server_now(&self, device_now: i64) -> i64 {
        device_now + self.clock_offset
    }

    // ---------- documents ----------

    /// Loads `id` fresh from its genesis unless loaded; `true` when it was new.
    pub(super) fn ensure_doc(&mut self, id: &DocId) -> Result<bool, ClientError> {
        if self.docs.contains_key(id) {
            return Ok(false);
        }
        let server = doc::genesis(id)
            .map_err(|e| ClientError::Corrupt(e.to_string()))?
            .with_actor(self.config.actor.clone());
        let local = server.clone();
        self.docs
            .insert(id.clone(), ClientDoc::new(server, local, 0));
        self.index_doc(id);
        Ok(true)
    }

    /// Starts following a document (a conversation, one of its buckets, a profile): from the
    /// store when stored there (after its load), else fresh from the server.
    pub fn open(&mut self, id: &DocId) -> Result<(), ClientError> {
        self.open_doc(id)
    }

    pub fn is_loaded(&self, id: &DocId) -> bool {
        self.docs.contains_key(id)
    }

    /// The heads of `conv`'s document as this device sees it (accepted plus pending): what
    /// `conversation(conv)` is a function of, so a host may keep what it made of it until
    /// they move. `None` while the document is not loaded.
    pub fn conversation_heads(&self, conv: &ConvId) -> Option<Vec<ChangeHash>> {
        let doc = self.docs.get(&DocId::conv(&self.config.tenant, conv))?;
        Some(doc.local.get_heads())
    }

    /// The conversation as this device sees it (accepted plus pending).
    pub fn conversation(&self, conv: &ConvId) -> Option<Conversation> {
        let doc = self.docs.get(&DocId::conv(&self.config.tenant, conv))?;
        Some(doc.view.full(&doc.local, conv)).filter(|c| c.meta.is_some())
    }

    pub(super) fn bucket_ms(&self, conv: &ConvId) -> i64 {
        self.cached_bucket_ms(conv)
    }

    /// The bucket document a message of `conv` created at `at` goes to.
    pub fn bucket_doc(&self, conv: &ConvId, at: i64) -> DocId {
        DocId::msgs(&self.config.tenant, conv, self.bucket_for(conv, at))
    }

    // ---------- intents ----------

    /// Checks an intent with the policy on local state, writes it, queues it. Returns its id.
    /// When a document it touches must be loaded first (or an earlier intent waits), it
    /// waits, with status `Pending`, and runs once the loads are answered: its events come
    /// then, and a refusal of the policy then makes it `Rejected` (instead of an `Err` here).
    pub fn intent(&mut self, intent: Intent, device_now: i64) -> Result<u64, ClientError> {
        if self.can_run_now(&intent) {
            return self.run_intent(None, intent, device_now);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.hold_intent(id, intent, device_now);
        Ok(id)
    }

    /// Runs an intent whose documents are in memory, under `reserved` if it waited.
    pub(super) fn run_intent(
        &mut self,
        reserved: Option<u64>,
        intent: Intent,
        device_now: i64,
    ) -> Result<u64, ClientError> {
        let now = self.server_now(device_now);
        let me = self.config.account.clone();
        let tenant = self.config.tenant.clone();
        let targets = apply::targets(&intent, &tenant, &me, |c, at| self.bucket_for(c, at));
        let mut opened = Vec::new();
        for target in &targets {
            if self.ensure_doc(target)? {
                opened.push(target.clone());
            }
        }
        self.check(&intent, &targets, now)?;
        if let Some(reopen) = self.reopen_for(&intent, now) {
            // Its own intent, before the message: refused or not, the message stands alone.
            let _ = self.run_intent(None, reopen, device_now);
        }
        let id = reserved.unwrap_or_else(|| {
            self.next_id += 1;
            self.next_id - 1
        });
        let mut entry = OutboxEntry {
            id,
            intent,
            created_at: now,
            status: IntentStatus::Pending,
            changes: Vec::new(),
            resend: false,
            sent_at: None,
        };
        for target in &targets {
            if let Some(change) = self.write(target, &entry.intent, id, now)? {
                entry.changes.push(change);
            }
        }
        if entry.changes.is_empty() {
            entry.status = IntentStatus::Accepted;
        }
        let status = entry.status.clone();
        self.outbox.insert(id, entry);
        for target in &targets {
            self.out.push(Output::Event(Event::Doc {
                doc: target.to_string(),
            }));
        }
        self.persist_entry(id);
        self.out.push(Output::Event(Event::Intent { id, status }));
        if self.online {
            // The change goes first: a conversation this intent creates is subscribed once
            // its creation is acked (`subscribe` defers it until then).
            self.dispatch(id, device_now);
        }
        for target in &opened {
            self.subscribe(target);
        }
        Ok(id)
    }

    /// A new message reopens an archived conversation. The reopen is written by
    /// the sender's device (no side effect on the server), when its policy allows it.
    fn reopen_for(&self, intent: &Intent, now: i64) -> Option<Intent> {
        let Intent::Send { conv, .. } = intent else {
            return None;
        };
        if !self.is_archived(conv) {
            return None;
        }
        let reopen = Intent::SetLifecycle {
            conv: conv.clone(),
            state: Lifecycle::Active,
        };
        let targets = [DocId::conv(&self.config.tenant, conv)];
        self.check(&reopen, &targets, now).ok().map(|()| reopen)
    }

    pub(super) fn check(
        &self,
        intent: &Intent,
        targets: &[DocId],
        now: i64,
    ) -> Result<(), ClientError> {
        self.policy_check(intent, targets, now).map_err(|d| {
            let code = d.code.as_str().to_owned();
            ClientError::Denied {
                reason: self.explain(intent, &code),
                code,
                detail: d.reason,
            }
        })
    }

    pub(super) fn write(
        &mut self,
        target: &DocId,
        intent: &Intent,
        id: u64,
        now: i64,
    ) -> Result<Option<PendingChange>, ClientError> {
        let me = self.config.account.clone();
        let tag = IntentTag::new(id.to_string(), intent.kind());
        let stamped = self.stamped(intent);
        let intent = stamped.as_ref().unwrap_or(intent);
        let thread_depth = self.thread_depth(intent);
        self.ensure_doc(target)?;
        let state = self
            .docs
            .get_mut(target)
            .ok_or_else(|| ClientError::NotApplicable("document vanished".into()))?;
        let before = state.local.get_heads();
        let wrote = apply::write_to(
            &mut state.local,
            target,
            intent,
            &me,
            &tag,
            now,
            thread_depth,
        )
        .map_err(|e| ClientError::NotApplicable(e.to_string()))?;
        if !wrote {
            return Ok(None);
        }
        // The last change on top of `before`: ours, or a deterministic creation change.
        let change = state
            .local
            .get_changes(&before)
            .into_iter()
            .last()
            .ok_or_else(|| ClientError::NotApplicable("the intent wrote nothing".into()))?;
        Ok(Some(PendingChange {
            doc: target.to_string(),
            hash: ByteBuf::from(change.hash().0.to_vec()),
            bytes: ByteBuf::from(change.raw_bytes().to_vec()),
            acked: false,
        }))
    }

    /// The depth of a thread `intent` creates: one below its parent's, read from the parent's
    /// document (a thread of a thread is 2, ...); 1 when this device does not hold the
    /// parent, whose creation the server then checks.
    fn thread_depth(&self, intent: &Intent) -> u32 {
        let Intent::CreateConversation {
            parent: Some((parent, _)),
            ..
        } = intent
        else {
            return 1;
        };
        let parent = DocId::conv(&self.config.tenant, parent);
        let parent_depth = self
            .docs
            .get(&parent)
            .and_then(|d| crate::doc::read::read_meta(&d.local))
            .and_then(|m| m.thread)
            .map_or(0, |t| t.depth);
        parent_depth + 1
    }

    /// Sends the entry's unacked changes, one submit per document.
    pub(super) fn send_entry(&mut self, id: u64, device_now: i64) {
        let Some(entry) = self.outbox.get_mut(&id) else {
            return;
        };
        if entry.is_final() {
            return;
        }
        entry.resend = false;
        entry.sent_at = Some(device_now);
        let mut by_doc: BTreeMap<String, Vec<ByteBuf>> = BTreeMap::new();
        for change in entry.changes.iter().filter(|c| !c.acked) {
            by_doc
                .entry(change.doc.clone())
                .or_default()
                .push(change.bytes.clone());
        }
        if entry.status == IntentStatus::Pending {
            entry.status = IntentStatus::Sent;
        }
        for (doc, changes) in by_doc {
            self.out
                .push(Output::Send(ClientFrame::Submit { doc, changes }));
        }
    }

    /// The status of an intent (`None` once accepted and forgotten).
    pub fn status(&self, id: u64) -> Option<IntentStatus> {
        if self.loads.holds(id) {
            return Some(IntentStatus::Pending);
        }
        self.outbox.get(&id).map(|e| e.status.clone())
    }

    /// Whether intent `id` waits for loads (its events come when it runs).
    pub fn is_held(&self, id: u64) -> bool {
        self.loads.holds(id)
    }

    /// Intents not yet accepted, oldest first (the visible outbox).
    pub fn outbox(&self) -> Vec<(u64, Intent, IntentStatus)> {
        let mut out: Vec<_> = self
            .outbox
            .values()
            .filter(|e| e.status != IntentStatus::Accepted)
            .map(|e| (e.id, e.intent.clone(), e.status.clone()))
            .collect();
        out.extend(
            self.loads
                .held_intents()
                .map(|(id, intent)| (id, intent.clone(), IntentStatus::Pending)),
        );
        out
    }

    /// Forgets a rejected intent once the user has seen it.
    pub fn dismiss(&mut self, id: u64) {
        if matches!(
            self.outbox.get(&id).map(|e| &e.status),
            Some(IntentStatus::Rejected { .. })
        ) {
            self.outbox.remove(&id);
            self.persist_entry(id);
        }
    }

    /// This device's changes to `doc` the server has not accepted yet, oldest intent first
    /// (a rejected intent's are not: they never return to the document).
    pub(super) fn pending_changes(&self, doc: &DocId) -> Vec<Change> {
        let doc = doc.to_string();
        self.outbox
            .values()
            .filter(|e| !e.is_final())
            .flat_map(|e| e.changes.iter())
            .filter(|c| c.doc == doc && !c.acked)
            .filter_map(|c| Change::try_from(&c.bytes[..]).ok())
            .collect()
    }

    // ---------- connection ----------

    /// The server welcomed us: subscribe from every cursor, resend the outbox in order.
    pub fn connected(&mut self, server_time: i64, device_now: i64) {
        self.online = true;
        self.clock_offset = server_time - device_now;
        let docs: Vec<DocId> = self.docs.keys().cloned().collect();
        for id in &docs {
            self.subscribe(id);
        }
        // Everything unanswered goes out again in order, packed into few frames (a phone back
        // after days offline sends its outbox in a handful of submits): no round is due any
        // more.
        self.retry_at = None;
        self.resubscribe.clear();
        let ids: Vec<u64> = self.outbox.keys().copied().collect();
        self.send_packed(ids, device_now);
        // Conversations others added this account to (or removed it from) meanwhile.
        self.ask_memberships();
        self.presence_connected(device_now);
        self.out.push(Output::Event(Event::Online { online: true }));
    }

    pub fn disconnected(&mut self) {
        self.online = false;
        for entry in self.outbox.values_mut() {
            if matches!(entry.status, IntentStatus::Sent | IntentStatus::Retrying) {
                entry.status = IntentStatus::Pending;
            }
            entry.resend = false;
            entry.sent_at = None;
        }
        self.retry_at = None;
        self.resubscribe.clear();
        self.feed_disconnected();
        for state in self.docs.values_mut() {
            state.catching_up = false;
            state.deferred = false;
        }
        // Paging that waited for the server's listing goes on with what is stored.
        self.buckets.disconnected();
        let waiting = self.buckets.take_waiting();
        self.page_again(waiting);
        self.out
            .push(Output::Event(Event::Online { online: false }));
    }

    /// Subscribes to `id` from its cursor when online, unless read access was revoked or its
    /// conversation's creation still waits in the outbox (then it waits for the ack).
    pub(super) fn subscribe(&mut self, id: &DocId) {
        if !self.online {
            return;
        }
        let waiting = id.conv_id().is_some_and(|c| self.creation_pending(c));
        let Some(state) = self.docs.get_mut(id) else {
            return;
        };
        if state.revoked.is_some() {
            return;
        }
        state.deferred = waiting;
        if waiting {
            return;
        }
        state.catching_up = true;
        self.out.push(Output::Send(ClientFrame::Subscribe {
            doc: id.to_string(),
            after: state.cursor,
        }));
        // Parts opened while this client was away are learnt with the conversation.
        if let DocTarget::Conv(conv) = id.target() {
            let conv = conv.clone();
            self.ask_buckets(&conv, None);
            // Our presence goes to it with the next tick.
            self.presence.follow(conv);
        }
    }

    /// `conv` exists only on this device so far: no accepted creation, and a change to its
    /// conversation document waits in the outbox (not rejected).
    pub(super) fn creation_pending(&self, conv: &ConvId) -> bool {
        let conv_doc = DocId::conv(&self.config.tenant, conv);
        if self
            .docs
            .get(&conv_doc)
            .is_some_and(|d| read::read_meta(&d.server).is_some())
        {
            return false;
        }
        let doc = conv_doc.to_string();
        self.outbox.values().any(|e| {
            !matches!(e.status, IntentStatus::Rejected { .. })
                && e.changes.iter().any(|c| c.doc == doc && !c.acked)
        })
    }

    /// Subscribes the documents of `conv` that waited for its creation, once it is decided.
    pub(super) fn resume_deferred(&mut self, conv: &ConvId) {
        if !self.online || self.creation_pending(conv) {
            return;
        }
        let waiting: Vec<DocId> = self
            .docs
            .iter()
            .filter(|(id, d)| d.deferred && id.conv_id() == Some(conv))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &waiting {
            self.subscribe(id);
        }
    }
}

/// Two documents whose changes are checked against each other: the same document, or
/// documents of one conversation (a message needs its conversation and the membership in it).
pub(super) fn related(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (DocId::parse(a), DocId::parse(b)) {
        (Ok(a), Ok(b)) => a.conv_id().is_some() && a.conv_id() == b.conv_id(),
        _ => false,
    }
}

/// Ids of the messages a change creates (`messages/<shard>/<id>` maps).
pub(super) fn created_messages(change: &Change) -> Vec<MessageId> {
    use automerge::legacy::{Key, ObjectId, OpType};
    change
        .decode()
        .operations
        .iter()
        .filter_map(|op| match (&op.obj, &op.key, &op.action) {
            (ObjectId::Id(_), Key::Map(key), OpType::Make(automerge::ObjType::Map)) => {
                MessageId::new(key.as_str()).ok()
            }
            _ => None,
        })
        .collect()
}
