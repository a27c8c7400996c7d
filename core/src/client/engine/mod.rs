//! The client engine, sans-io: it owns the documents (`replica`) and the outbox
//! (`outbox`), runs intents (checked by `check`, written by `apply`), follows documents
//! (subscriptions), and routes between the host and its parts. Each part is a state
//! machine of its own, in `client/`, that never names the engine: the membership feed
//! (`feed`), presence (`presence`), bucket parts (`buckets`), delivery markers
//! (`delivery`), resends (`retry`), store reads (`load`), the MLS state (`mls`), what waits
//! to be opened (`opening`), drafts kept here (`here`), the search index (`search`). The
//! engine hands each part what it needs as arguments and carries out what it returns.
//!
//! Every method of `ClientEngine` lives in this folder, one file per concern: frames from
//! the server come in through `receive`, storage through `persist`, the work that waits for
//! loads runs in `jobs`, catch-up from snapshots in `catchup`, derived views in `views`, and
//! each part's file here (`mls`, `opening`, `here`, `search`, ...) is the engine's side of
//! the part of the same name below. The engine's fields are private to this folder: the
//! compiler keeps the parts from reaching into it, and keeps imports running one way
//! (engine → parts).
//!
//! Inputs are method calls (`intent`, `connected`, `receive`, `loaded`, `tick`, ...);
//! outputs are data the host carries out in order: frames to send, store writes, store
//! reads, events.

pub(super) mod catchup;
pub(super) mod epochs;
pub(super) mod forward;
pub(super) mod generation;
pub(super) mod here;
pub(super) mod jobs;
pub(super) mod key_changes;
pub(super) mod mls;
pub(super) mod mls_devices;
pub(super) mod mls_group;
pub(super) mod mls_joining;
pub(super) mod mls_owed;
pub(super) mod mls_removed;
pub(super) mod opening;
pub(super) mod persist;
pub(super) mod reads;
pub(super) mod receive;
pub(super) mod refusal;
pub(super) mod retention;
pub(super) mod sealed;
pub(super) mod search;
pub(super) mod search_index;
pub(super) mod verified;
pub(super) mod views;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use automerge::{ActorId, Change, ChangeHash};
use serde::{Deserialize, Serialize};

use crate::client::apply;
use crate::client::ask::{Load, RequestId};
use crate::client::buckets::BucketBook;
use crate::client::cache::ReadStats;
use crate::client::check::Held;
use crate::client::delivery::{self, Delivery, Target};
use crate::client::feed::Feed;
use crate::client::intent::Intent;
use crate::client::load::Loads;
use crate::client::outbox::{self, Outbox, OutboxEntry, PendingChange};
use crate::client::presence::{MemberPresence, PresenceBook, PresenceOut, PresenceState};
use crate::client::replica::{self, buckets_of, ClientDoc, Docs};
use crate::client::retry::{Retry, RetryOut};
use crate::client::search::SearchPage;
use crate::client::store::StoreOp;
use crate::doc::{self, read};
use crate::ids::{AccountId, Bucket, ConvId, DocId, DocTarget, TenantId};
use crate::model::conversation::{Conversation, Lifecycle};
use crate::policy::Denial;
use crate::protocol::{ClientFrame, SignalKind};

pub use crate::client::error::ClientError;
pub use crate::client::outbox::IntentStatus;
pub use crate::client::retry::{ANSWER_TIMEOUT_MS, RETRY_MAX_MS, RETRY_MIN_MS};

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

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Outcome {
    /// Start-up restore: the outbox and the documents a start shows are in memory.
    Restored,
    /// `open_conversation`: the conversation and enough of its newest buckets are in memory.
    Opened,
    /// `load_older`: `more` is false once the conversation's first bucket was reached.
    Older { more: bool },
    /// `read_times`: each member's read marker with when it last moved (server time).
    ReadTimes {
        reads: Vec<crate::protocol::ReadTime>,
    },
    /// `search`: the device's page (boxed: results are large beside the other outcomes).
    Searched(Box<SearchPage>),
    /// A document it needed could not be read.
    Failed { code: String, message: String },
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
    Membership(crate::client::feed::MembershipChange),
    Online {
        online: bool,
    },
    /// A request (`restoring`, `open_conversation`, `load_older`, `read_times`) is finished.
    Done {
        request: RequestId,
        outcome: Outcome,
    },
    /// The directory answered the account's device list (read it with `devices`).
    Devices,
    /// The directory answered this engine's `remove_device`: `refused` holds its code when
    /// the device was not removed (`unknown_device`, ...).
    DeviceRemoved {
        device: String,
        refused: Option<String>,
    },
    /// Something stored could not be read back (start-up goes on without it).
    Error {
        code: String,
        message: String,
    },
}

/// Identity of this client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    pub tenant: TenantId,
    pub account: AccountId,
    /// This device's actor (16 random bytes chosen once and kept in the store).
    pub actor: ActorId,
}

/// A wakeup due at once (`next_wakeup`): work left for the next `tick`, such as the
/// device's search index catching up with what was just shown.
pub const DUE_NOW: i64 = 0;

/// The client engine.
pub struct ClientEngine {
    config: ClientConfig,
    online: bool,
    clock_offset: i64,
    /// The documents this client holds.
    docs: Docs,
    /// Intents with their changes, by id, until accepted (or a rejection is dismissed).
    outbox: Outbox,
    next_id: u64,
    typing: HashMap<ConvId, BTreeMap<AccountId, i64>>,
    out: Vec<Output>,
    /// Resend rounds and their backoff.
    retry: Retry,
    /// Store reads out and the work that waits for them.
    loads: Loads,
    /// What the server said of the conversations' bucket parts.
    buckets: BucketBook,
    /// What the server said of the account's memberships.
    feed: Feed,
    /// Members' presence and ours (never stored).
    presence: PresenceBook,
    /// Arrived messages of others still to mark delivered (never stored).
    delivery: Delivery,
    /// This device's MLS state, once the host attached it (`attach_device`).
    mls: Option<crate::client::mls::MlsSide>,
    /// Read-time requests waiting for the server.
    reads: crate::client::reads::ReadAsks,
    /// The search index's bucket numbers and layout (`search::index`).
    dict: crate::client::search::dict::Dictionary,
    /// Held buckets whose index may be behind (`search::index::IndexDue`).
    index_due: crate::client::search::index::IndexDue,
    /// How often each marker intent was written again after losing to another device of
    /// this account (never stored).
    marker_rewrites: HashMap<u64, u32>,
    /// Drafts and scheduled messages of encrypted conversations, on this device alone.
    here: crate::client::here::Here,
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
            retry: Retry::new(config.actor.clone()),
            config,
            online: false,
            clock_offset: 0,
            docs: BTreeMap::new(),
            outbox: BTreeMap::new(),
            next_id: 1,
            typing: HashMap::new(),
            out: Vec::new(),
            loads: Loads::empty_store(),
            buckets: BucketBook::default(),
            feed: Feed::default(),
            presence: PresenceBook::default(),
            delivery: Delivery::default(),
            mls: None,
            reads: Default::default(),
            dict: crate::client::search::dict::Dictionary::fresh(),
            index_due: Default::default(),
            marker_rewrites: HashMap::new(),
            here: Default::default(),
        }
    }

    /// An engine over a store that may hold data (every host with a persistent store starts
    /// here): its first output loads the outbox and the index of stored documents, then the
    /// documents a start shows; `Event::Done` with `Outcome::Restored` says it is over.
    /// Intents and requests made meanwhile wait for it.
    pub fn restoring(config: ClientConfig) -> Self {
        let mut engine = Self::new(config);
        engine.loads = Loads::unknown_store();
        // Known once the start-up load is answered (and the index migrated, if older).
        engine.dict = Default::default();
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
        self.index_due.doc(id);
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

    /// The conversation as this device sees it (accepted plus pending), its entries as
    /// written (temporary roles and overrides with their expiries, lapsed or not).
    pub fn conversation(&self, conv: &ConvId) -> Option<Conversation> {
        let doc = self.docs.get(&DocId::conv(&self.config.tenant, conv))?;
        Some(doc.view.full(&doc.local, conv)).filter(|c| c.meta.is_some())
    }

    /// The conversation as it stands at `device_now` (turned into server time): a
    /// temporary role or override whose time has come is gone (`Conversation::at`), as the
    /// server judges it. With the server time until which that view holds (the next
    /// lapse), so a host that keeps it knows when to make it again.
    pub fn conversation_at(
        &self,
        conv: &ConvId,
        device_now: i64,
    ) -> Option<(Conversation, Option<i64>)> {
        let now = self.server_now(device_now);
        let conv = self.conversation(conv)?;
        let until = conv.next_lapse(now);
        Some((conv.at(now), until))
    }

    /// The held documents as this account reads them (the policy's views, stamps, depths).
    pub(super) fn held(&self) -> Held<'_> {
        Held {
            docs: &self.docs,
            tenant: &self.config.tenant,
            me: &self.config.account,
        }
    }

    /// The width of `conv`'s message buckets (the default until it is loaded).
    pub(super) fn bucket_ms(&self, conv: &ConvId) -> i64 {
        self.held().bucket_ms(conv)
    }

    /// The bucket document a message of `conv` created at `at` goes to.
    pub fn bucket_doc(&self, conv: &ConvId, at: i64) -> DocId {
        DocId::msgs(&self.config.tenant, conv, self.bucket_for(conv, at))
    }

    /// The part a message of `conv` created at `created_at` goes to (`buckets`): the newest
    /// part of its period known here, or the next one once writers left it.
    pub fn bucket_for(&self, conv: &ConvId, created_at: i64) -> Bucket {
        let period = created_at.div_euclid(self.bucket_ms(conv).max(1));
        let newest = self
            .newest_known(conv, period)
            .unwrap_or(Bucket::first(period));
        let tenant = &self.config.tenant;
        self.buckets.place(conv, newest, |bucket| {
            self.docs
                .get(&DocId::msgs(tenant, conv, bucket))
                .map_or(0, |d| d.view.message_count(&d.local))
        })
    }

    /// The newest part of `period` this client knows of (listed, stored or in memory), by
    /// key ranges: a send asks it, so no set of every part is built.
    pub(super) fn newest_known(&self, conv: &ConvId, period: i64) -> Option<Bucket> {
        let parts = Bucket::first(period)..=Bucket::new(period, u32::MAX);
        let tenant = &self.config.tenant;
        let docs =
            DocId::msgs(tenant, conv, *parts.start())..=DocId::msgs(tenant, conv, *parts.end());
        let of_conv = |d: &DocId| match d.target() {
            DocTarget::Msgs(c, b) if c == conv => Some(*b),
            _ => None,
        };
        let listed = self.buckets.newest_listed(conv, parts);
        let stored = self
            .loads
            .stored_in(docs.clone())
            .filter_map(of_conv)
            .next_back();
        let loaded = self
            .docs
            .range(docs)
            .map(|(d, _)| d)
            .filter_map(of_conv)
            .next_back();
        [listed, stored, loaded].into_iter().flatten().max()
    }

    /// Every part of `conv` this client knows of: listed by the server, stored, in memory.
    pub(super) fn known_buckets(&self, conv: &ConvId) -> BTreeSet<Bucket> {
        let mut known: BTreeSet<Bucket> = self.buckets.listed(conv).collect();
        let of_conv = |d: &DocId| match d.target() {
            DocTarget::Msgs(c, b) if c == conv => Some(*b),
            _ => None,
        };
        // Key ranges: the cost is this conversation's parts, not every stored document.
        let tenant = &self.config.tenant;
        let range = DocId::msgs(tenant, conv, Bucket::new(i64::MIN, 0))
            ..=DocId::msgs(tenant, conv, Bucket::new(i64::MAX, u32::MAX));
        known.extend(self.loads.stored_in(range).filter_map(of_conv));
        known.extend(buckets_of(&self.docs, tenant, conv).map(|(b, _)| b));
        known
    }

    // ---------- intents ----------

    /// Checks an intent with the policy on local state, writes it, queues it. Returns its id.
    /// When a document it touches must be loaded first (or an earlier intent waits), it
    /// waits, with status `Pending`, and runs once the loads are answered: its events come
    /// then, and a refusal of the policy then makes it `Rejected` (instead of an `Err` here).
    pub fn intent(&mut self, intent: Intent, device_now: i64) -> Result<u64, ClientError> {
        let ran = if self.can_run_now(&intent) {
            self.run_intent(None, intent, device_now)
        } else {
            let id = self.next_id;
            self.next_id += 1;
            self.hold_intent(id, intent, device_now);
            Ok(id)
        };
        self.settle_heal();
        ran
    }

    /// Runs an intent whose documents are in memory, under `reserved` if it waited.
    pub(super) fn run_intent(
        &mut self,
        reserved: Option<u64>,
        intent: Intent,
        device_now: i64,
    ) -> Result<u64, ClientError> {
        let now = self.server_now(device_now);
        // Kept on this device alone: nothing is written to a document or sent.
        if self.is_here(&intent) {
            return self.run_here(reserved, intent, now);
        }
        let targets = self.targets(&intent);
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
        let changes = self.write_all(&targets, &intent, id, now)?;
        if let Some(conv) = self.sealed_conv(&intent).filter(|_| !changes.is_empty()) {
            self.note_sealed(&conv, device_now);
        }
        let mut entry = OutboxEntry {
            id,
            intent,
            created_at: now,
            status: IntentStatus::Pending,
            changes,
            resend: false,
            sent_at: None,
        };
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

    /// The documents `intent` writes, a message's in the part it goes to now (placed here,
    /// from what the engine knows of the parts, before `apply` names the documents).
    pub(super) fn targets(&self, intent: &Intent) -> Vec<DocId> {
        let part = match intent {
            Intent::Send { conv, message } => Some(self.bucket_for(conv, message.created_at)),
            _ => None,
        };
        apply::targets(
            intent,
            &self.config.tenant,
            &self.config.account,
            |_, at| part.unwrap_or(Bucket::first(at)),
        )
    }

    /// A new message reopens an archived conversation. The reopen is written by the
    /// sender's device (no side effect on the server), when its policy allows it.
    fn reopen_for(&self, intent: &Intent, now: i64) -> Option<Intent> {
        let Intent::Send { conv, .. } = intent else {
            return None;
        };
        if !self.held().is_archived(conv) {
            return None;
        }
        let reopen = Intent::SetLifecycle {
            conv: conv.clone(),
            state: Lifecycle::Active,
        };
        let targets = [DocId::conv(&self.config.tenant, conv)];
        self.check(&reopen, &targets, now).ok().map(|()| reopen)
    }

    /// The policy's verdict on `intent` writing `targets` (`check`), a refusal explained for
    /// people (`refusal`).
    pub(super) fn check(
        &self,
        intent: &Intent,
        targets: &[DocId],
        now: i64,
    ) -> Result<(), ClientError> {
        if let Intent::Send { conv, message } = intent {
            if let Some(from) = &message.forwarded_from {
                self.forward_allowed(&from.conv, conv)
                    .map_err(|code| self.refused_here(intent, code))?;
            }
        }
        // The server refuses the same (another unit's answer there): nothing of an
        // encrypted conversation is kept in the clear in the private document.
        if let Some(conv) = self
            .private_text_conv(intent)
            .filter(|c| self.is_encrypted(c))
        {
            let code = crate::policy::DenyCode::PlaintextInEncrypted.as_str();
            return Err(ClientError::Denied {
                reason: self.explain(intent, code),
                code: code.to_owned(),
                detail: format!(
                    "{conv} is end-to-end encrypted: its drafts and scheduled messages are \
                     not kept on the server in the clear"
                ),
            });
        }
        // A message into an encrypted conversation is checked as it will be written: sealed.
        let sealed = self.as_sealed(intent);
        let checked = sealed.as_ref().unwrap_or(intent);
        self.held()
            .policy_check(checked, targets, now)
            .map_err(|d| {
                let code = d.code.as_str().to_owned();
                ClientError::Denied {
                    reason: self.explain(intent, &code),
                    code,
                    detail: d.reason,
                }
            })
    }

    /// The conversation whose text an intent keeps in the private document in the clear: a
    /// draft, a scheduled message, a scheduled message's new body.
    fn private_text_conv(&self, intent: &Intent) -> Option<ConvId> {
        match intent {
            Intent::SetDraft {
                conv,
                text: Some(_),
            }
            | Intent::Schedule { conv, .. } => Some(conv.clone()),
            Intent::EditScheduled {
                id, body: Some(_), ..
            } => self
                .private_doc_data()
                .scheduled
                .into_iter()
                .find(|(entry, _)| entry == id)
                .map(|(_, s)| s.conv),
            _ => None,
        }
    }

    /// Writes intent `id` into `target` (loaded fresh if need be): its change.
    pub(super) fn write(
        &mut self,
        target: &DocId,
        intent: &Intent,
        id: u64,
        now: i64,
    ) -> Result<Option<PendingChange>, ClientError> {
        self.ensure_doc(target)?;
        Ok(self
            .write_all(std::slice::from_ref(target), intent, id, now)?
            .pop())
    }

    /// Writes intent `id`, as written (`check`: its stamps, the depth of a thread it
    /// creates), into each of `targets`, which are held: through `apply`, once per
    /// document. The changes for the outbox.
    fn write_all(
        &mut self,
        targets: &[DocId],
        intent: &Intent,
        id: u64,
        now: i64,
    ) -> Result<Vec<PendingChange>, ClientError> {
        let mls = self.mls_part(intent)?;
        // A message into an encrypted conversation is written sealed.
        let sealed = match targets.first() {
            Some(bucket) => self.seal(intent, bucket)?,
            None => None,
        };
        let intent = sealed.as_ref().unwrap_or(intent);
        let held = self.held();
        let stamped = held.stamped(intent);
        let intent = stamped.as_ref().unwrap_or(intent);
        let thread_depth = held.thread_depth(intent);
        let me = &self.config.account;
        let mut changes = Vec::with_capacity(targets.len());
        for target in targets {
            let state = self
                .docs
                .get_mut(target)
                .ok_or_else(|| ClientError::NotApplicable("document vanished".into()))?;
            // The group goes to the conversation document: an add's or removal's commit in
            // the change of its membership; a new group, and the commit adding its other
            // members' devices, in changes after the creation.
            let part = mls
                .as_ref()
                .filter(|_| matches!(target.target(), DocTarget::Conv(_)));
            let creates = part.is_some_and(|p| p.init.is_some());
            let inline = part.filter(|_| !creates).and_then(|p| p.commit_write());
            let change = apply::write_change(
                &mut state.local,
                target,
                intent,
                me,
                id,
                now,
                thread_depth,
                inline,
            )?;
            changes.extend(change);
            if let Some(part) = part.filter(|_| creates) {
                for write in [part.init_write(), part.commit_write()]
                    .into_iter()
                    .flatten()
                {
                    changes.push(apply::write_group_change(
                        &mut state.local,
                        target,
                        intent,
                        id,
                        now,
                        write,
                    )?);
                }
            }
        }
        if let (Some(bundle), Some(conv)) = (
            mls.and_then(|p| p.commit),
            apply::conv_of(intent, &self.config.tenant, &self.config.account),
        ) {
            self.note_commit(id, &conv, bundle.commit);
        }
        Ok(changes)
    }

    /// The policy's verdict on `intent` now, on this device's state (accepted plus pending);
    /// writes nothing. What `intent` checks before it writes; O(1) in the group's size
    /// (except adding a member to a group).
    pub fn verdict(&self, intent: &Intent, device_now: i64) -> Result<(), Denial> {
        let now = self.server_now(device_now);
        let targets = self.targets(intent);
        let sealed = self.as_sealed(intent);
        let intent = sealed.as_ref().unwrap_or(intent);
        self.held().policy_check(intent, &targets, now)
    }

    /// How often this engine read conversations (see [`ReadStats`]).
    pub fn read_stats(&self) -> ReadStats {
        replica::read_stats(&self.docs)
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
        outbox::pending_changes(&self.outbox, doc)
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
        // Everything unanswered goes out again in order, in few frames.
        let resent = self.retry.connected(&mut self.outbox, device_now);
        self.route_retry(resent, device_now);
        // Conversations others added this account to (or removed it from) meanwhile.
        self.ask_memberships();
        self.presence_connected(device_now);
        self.mls_connected();
        self.out.push(Output::Event(Event::Online { online: true }));
    }

    pub fn disconnected(&mut self) {
        self.online = false;
        self.retry.disconnected(&mut self.outbox);
        self.feed.disconnected();
        for state in self.docs.values_mut() {
            state.catching_up = false;
            state.deferred = false;
        }
        self.index_due.every();
        // Paging that waited for the server's listing goes on with what is stored.
        self.buckets.disconnected();
        self.read_times_disconnected();
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

    // ---------- time: resends, presence, delivery markers, index upkeep ----------

    /// When the host must call `tick` next (device time, ms; `DUE_NOW` is in the past of
    /// every clock); `None`: nothing waits.
    pub fn next_wakeup(&self) -> Option<i64> {
        let delivered = self.delivery.wakeup();
        // The device's search index behind what it holds: due at once.
        let index = self.index_behind().then_some(DUE_NOW);
        let retry = self
            .online
            .then(|| self.retry.wakeup(&self.outbox))
            .flatten();
        // A waiting device this one adds once its place's wait is over, and this device
        // saying again where it still waits ("mls_joining").
        let joins = self.online.then(|| self.joins_wakeup()).flatten();
        // An owed removal this device commits if the devices before it did not ("mls_owed").
        let owed = self.online.then(|| self.owed_wakeup()).flatten();
        let waiting = self.online.then(|| self.waiting_wakeup()).flatten();
        // A scheduled message kept on this device, posted here when due ("here").
        let here = self.here_wakeup();
        [retry, delivered, index, joins, owed, waiting, here]
            .into_iter()
            .flatten()
            .min()
    }

    /// Carries out what is due at `device_now`: presence to send or to expire, delivery
    /// markers, intents sent without an answer for `ANSWER_TIMEOUT_MS` (they join the
    /// resend), a due resend round (every intent that waits for it, in outbox order, and
    /// subscriptions a transient error may have dropped), and, online, the posts of
    /// scheduled messages kept on this device whose time has come. Calling it early or
    /// often is harmless.
    pub fn tick(&mut self, device_now: i64) {
        self.keep_index_up();
        self.presence_due(device_now);
        self.delivered_due(device_now);
        if !self.online {
            return;
        }
        self.joins_due(device_now);
        self.owed_due(device_now);
        self.waiting_due(device_now);
        let due = self.retry.tick(&mut self.outbox, device_now);
        self.route_retry(due, device_now);
        self.post_due_here(device_now);
    }

    /// Sends a new or rebased entry now, or holds it for the next resend round.
    pub(super) fn dispatch(&mut self, id: u64, device_now: i64) {
        let sent = self.retry.dispatch(&mut self.outbox, id, device_now);
        self.route_retry(sent, device_now);
    }

    /// Carries out what the retry part asked, in order.
    pub(super) fn route_retry(&mut self, outs: Vec<RetryOut>, device_now: i64) {
        for out in outs {
            match out {
                RetryOut::Send(frame) => self.out.push(Output::Send(frame)),
                RetryOut::Retrying(id) => self.out.push(Output::Event(Event::Intent {
                    id,
                    status: IntentStatus::Retrying,
                })),
                RetryOut::Round { resubscribe } => {
                    if self.feed.round() {
                        self.ask_memberships();
                    }
                    self.directory_round(device_now);
                    for id in resubscribe {
                        if self.docs.get(&id).is_some_and(|d| d.catching_up) {
                            self.subscribe(&id);
                        }
                    }
                }
            }
        }
    }

    // ---------- presence ----------

    /// The members of `conv` this device has heard from, with their state at `device_now`
    /// (one not refreshed within its time to live is `offline`). Members never heard are
    /// not listed: the host shows them as unknown/offline.
    pub fn presence(&self, conv: &ConvId, device_now: i64) -> Vec<MemberPresence> {
        self.presence.members(conv, device_now)
    }

    /// The host says whether the person is here (`online`) or not looking (`away`, e.g. the
    /// page lost focus). Sent to every followed conversation, within the per-conversation gap.
    pub fn set_presence(&mut self, state: PresenceState, device_now: i64) {
        if self.presence.set_own(state, device_now) {
            self.presence_due(device_now);
        }
    }

    /// When the host must call `tick` next for presence (a refresh or a held change to send,
    /// a member to turn offline); kept apart from `next_wakeup`, which says when intents
    /// wait, so "nothing waits" keeps its meaning there. `None` while disconnected.
    pub fn presence_wakeup(&self) -> Option<i64> {
        self.presence.wakeup(self.online)
    }

    pub(super) fn member_count(&self, conv: &ConvId) -> usize {
        self.conversation(conv).map_or(0, |c| c.members.len())
    }

    /// Connected: our presence goes to every followed conversation now.
    fn presence_connected(&mut self, device_now: i64) {
        let followed = self.docs.keys().filter_map(|id| match id.target() {
            DocTarget::Conv(c) => Some(c.clone()),
            _ => None,
        });
        self.presence.connected(followed, device_now);
        self.presence_due(device_now);
    }

    /// Sends what is due (refreshes and held changes) and turns members not refreshed in
    /// time offline.
    fn presence_due(&mut self, device_now: i64) {
        let mut outs = Vec::new();
        if self.online {
            for conv in self.presence.due_sends(device_now) {
                let members = self.member_count(&conv);
                outs.push(self.presence.send(conv, members, device_now));
            }
        }
        outs.extend(self.presence.expire(device_now));
        self.route_presence(outs);
    }

    pub(super) fn route_presence(&mut self, outs: Vec<PresenceOut>) {
        for out in outs {
            self.out.push(match out {
                PresenceOut::Send { conv, state } => Output::Send(ClientFrame::Signal {
                    doc: DocId::conv(&self.config.tenant, &conv).to_string(),
                    kind: SignalKind::Presence,
                    data: Some(state.as_str().to_string()),
                }),
                PresenceOut::Changed(conv) => Output::Event(Event::Presence {
                    conv: conv.to_string(),
                }),
            });
        }
    }

    // ---------- the membership feed ----------

    /// Asks for the account's memberships (on `connected`, and again after a transient
    /// failure of the list).
    pub(super) fn ask_memberships(&mut self) {
        if self.online {
            let frame = self.feed.ask();
            self.out.push(Output::Send(frame));
        }
    }

    /// Whether a `memberships` list is under way on this connection.
    pub fn is_listing_memberships(&self) -> bool {
        self.feed.is_listing()
    }

    /// The account's membership in `conv` as the server last said it.
    pub fn membership(
        &self,
        conv: &ConvId,
    ) -> Option<(
        crate::model::conversation::Role,
        crate::model::conversation::MemberStatus,
    )> {
        self.feed.membership(conv)
    }

    // ---------- delivery markers ----------

    /// Whether the engine marks arrived messages of others delivered by itself (on unless
    /// turned off). Off drops what waits to be marked.
    pub fn set_auto_delivered(&mut self, on: bool) {
        self.delivery.set_enabled(on);
    }

    pub fn auto_delivered(&self) -> bool {
        self.delivery.enabled()
    }

    /// Writes the markers due at `device_now`, each as an intent.
    fn delivered_due(&mut self, device_now: i64) {
        for conv in self.delivery.take_due(device_now) {
            let conversation = self.conversation(&conv);
            let (docs, tenant, me) = (&self.docs, &self.config.tenant, &self.config.account);
            let message = match delivery::target(docs, tenant, me, &conv, conversation.as_ref()) {
                Target::Mark(message) => message,
                Target::Nothing => continue,
                Target::NotYet => {
                    self.delivery.wait(conv);
                    continue;
                }
            };
            let intent = Intent::MarkDelivered {
                conv: conv.clone(),
                message,
            };
            // Not a member who may write it (left, removed, banned, a read-only view): no
            // marker, and no refusal for the app to show.
            if self.verdict(&intent, device_now).is_err() {
                continue;
            }
            if self.intent(intent, device_now).is_ok() {
                self.delivery.marked(conv, device_now);
            }
        }
    }

    // ---------- bucket parts ----------

    /// Asks the server for parts of `conv` older than `before` (the newest without it).
    pub(super) fn ask_buckets(&mut self, conv: &ConvId, before: Option<Bucket>) {
        if self.online {
            let conv_doc = DocId::conv(&self.config.tenant, conv);
            let frame = BucketBook::ask(&conv_doc, before);
            self.out.push(Output::Send(frame));
        }
    }

    /// A `load_older` request that needs the server's listing waits for it.
    pub(super) fn wait_for_listing(
        &mut self,
        request: RequestId,
        conv: &ConvId,
        before: Option<Bucket>,
        device_now: i64,
    ) {
        self.buckets.wait_for_listing(request, conv, device_now);
        self.ask_buckets(conv, before);
    }
}
