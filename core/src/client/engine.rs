//! The client engine, sans-io: local replicas, the outbox of intents with their changes,
//! cursors, ack/reject/push handling, rebase on rejection, and derived views.
//!
//! Inputs are method calls (`intent`, `connected`, `receive`, ...); outputs are data the host
//! carries out in order: frames to send, store writes, events.

use std::collections::{BTreeMap, HashMap};

use automerge::{ActorId, Automerge, Change};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::apply;
use super::intent::Intent;
use super::store::StoreOp;
use crate::doc::{self, read, IntentTag};
use crate::ids::{AccountId, ConvId, DocId, DocTarget, MessageId, TenantId};
use crate::model::conversation::{Conversation, DEFAULT_BUCKET_MS};
use crate::protocol::{ClientFrame, SeqChange, ServerFrame, SignalKind};

/// Where an intent stands. Every intent ends accepted or rejected with a reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum IntentStatus {
    /// Written locally, not yet sent (offline).
    Pending,
    /// Sent, no answer yet.
    Sent,
    Accepted,
    Rejected {
        code: String,
        reason: String,
    },
}

/// What the host must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Send(ClientFrame),
    Persist(Vec<StoreOp>),
    Event(Event),
}

/// What changed, for the UI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Intent { id: u64, status: IntentStatus },
    Doc { doc: String },
    Typing { conv: String },
    Revoked { doc: String, reason: String },
    Online { online: bool },
}

/// Errors of the client engine (a denied intent carries the policy's code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("{code}: {reason}")]
    Denied { code: String, reason: String },
    #[error("{0}")]
    NotApplicable(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
}

impl ClientError {
    pub fn code(&self) -> &str {
        match self {
            ClientError::Denied { code, .. } => code,
            ClientError::NotApplicable(_) => "not_applicable",
            ClientError::Corrupt(_) => "corrupt",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingChange {
    doc: String,
    hash: ByteBuf,
    bytes: ByteBuf,
    acked: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct OutboxEntry {
    id: u64,
    intent: Intent,
    created_at: i64,
    status: IntentStatus,
    changes: Vec<PendingChange>,
}

struct ClientDoc {
    /// Accepted changes only.
    server: Automerge,
    /// Accepted plus this device's pending changes: what the user sees.
    local: Automerge,
    cursor: u64,
    /// Server order of messages created in this document.
    message_seq: HashMap<MessageId, u64>,
    changes_since_snapshot: usize,
    revoked: Option<String>,
}

/// Identity of this client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    pub tenant: TenantId,
    pub account: AccountId,
    /// This device's actor (16 random bytes chosen once and kept in the store).
    pub actor: ActorId,
}

/// A message in a timeline view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineItem {
    pub message: crate::model::message::Message,
    /// Server order; `None` while pending.
    pub seq: Option<u64>,
    pub bucket: i64,
    pub pending: bool,
}

/// A row of the conversation list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationSummary {
    pub conv: ConvId,
    pub kind: Option<String>,
    pub title: Option<String>,
    pub lifecycle: String,
    pub unread: usize,
    pub last_message: Option<String>,
    pub last_activity: i64,
    pub muted: bool,
    pub pinned: bool,
    pub archived: bool,
}

const SNAPSHOT_EVERY: usize = 256;

/// A stored snapshot: the accepted document, its cursor and its messages' server order.
#[derive(Serialize, Deserialize)]
struct SnapshotRecord {
    seq: u64,
    data: ByteBuf,
    message_seq: HashMap<MessageId, u64>,
}

fn snapshot_record(state: &ClientDoc) -> Vec<u8> {
    cbor(&SnapshotRecord {
        seq: state.cursor,
        data: ByteBuf::from(state.server.save()),
        message_seq: state.message_seq.clone(),
    })
}

fn key_snapshot(doc: &DocId) -> String {
    format!("snap/{doc}")
}
fn key_change(doc: &DocId, seq: u64) -> String {
    format!("chg/{doc}/{seq:020}")
}
fn key_outbox(id: u64) -> String {
    format!("out/{id:020}")
}

fn cbor<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    if ciborium::ser::into_writer(value, &mut out).is_err() {
        out.clear();
    }
    out
}

fn uncbor<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ClientError> {
    ciborium::de::from_reader(bytes).map_err(|e| ClientError::Corrupt(e.to_string()))
}

/// The client engine.
pub struct ClientEngine {
    config: ClientConfig,
    online: bool,
    clock_offset: i64,
    docs: BTreeMap<DocId, ClientDoc>,
    outbox: BTreeMap<u64, OutboxEntry>,
    next_id: u64,
    typing: HashMap<ConvId, BTreeMap<AccountId, i64>>,
    out: Vec<Output>,
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
        }
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

    // ---------- persistence ----------

    /// Restores the outbox from store entries under `out/` (call once at start).
    pub fn restore_outbox(&mut self, entries: &[(String, Vec<u8>)]) -> Result<(), ClientError> {
        for (_, bytes) in entries {
            let entry: OutboxEntry = uncbor(bytes)?;
            self.next_id = self.next_id.max(entry.id + 1);
            self.outbox.insert(entry.id, entry);
        }
        Ok(())
    }

    /// Loads one document from its store entries (`snap/<doc>`, `chg/<doc>/`) plus this
    /// device's unacked changes from the outbox (restore the outbox first). Documents load on
    /// demand: a conversation opens with its newest bucket only.
    pub fn restore_doc(
        &mut self,
        id: &DocId,
        snapshot: Option<&[u8]>,
        changes: &[(String, Vec<u8>)],
    ) -> Result<(), ClientError> {
        let corrupt = |e: &dyn std::fmt::Display| ClientError::Corrupt(format!("{id}: {e}"));
        let (mut server, mut cursor, mut message_seq) = match snapshot {
            Some(bytes) => {
                let record: SnapshotRecord = uncbor(bytes)?;
                (
                    Automerge::load(&record.data).map_err(|e| corrupt(&e))?,
                    record.seq,
                    record.message_seq,
                )
            }
            None => (
                doc::genesis(id).map_err(|e| corrupt(&e))?,
                0,
                HashMap::new(),
            ),
        };
        let mut decoded = Vec::with_capacity(changes.len());
        for (key, bytes) in changes {
            let seq = key
                .rsplit('/')
                .next()
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0);
            cursor = cursor.max(seq);
            let change = Change::try_from(&bytes[..]).map_err(|e| corrupt(&e))?;
            for (message, _) in created_messages(&change) {
                message_seq.insert(message, seq);
            }
            decoded.push(change);
        }
        server.apply_changes(decoded).map_err(|e| corrupt(&e))?;
        let mut local = server.clone().with_actor(self.config.actor.clone());
        let doc_text = id.to_string();
        let pending: Vec<Change> = self
            .outbox
            .values()
            .flat_map(|e| e.changes.iter())
            .filter(|c| c.doc == doc_text && !c.acked)
            .map(|c| Change::try_from(&c.bytes[..]).map_err(|e| corrupt(&e)))
            .collect::<Result<_, _>>()?;
        local.apply_changes(pending).map_err(|e| corrupt(&e))?;
        self.docs.insert(
            id.clone(),
            ClientDoc {
                server: server.with_actor(self.config.actor.clone()),
                local,
                cursor,
                message_seq,
                changes_since_snapshot: changes.len(),
                revoked: None,
            },
        );
        Ok(())
    }

    fn persist_accepted(&mut self, id: &DocId, changes: &[SeqChange]) {
        let Some(state) = self.docs.get_mut(id) else {
            return;
        };
        let mut ops: Vec<StoreOp> = changes
            .iter()
            .map(|c| StoreOp::Put(key_change(id, c.seq), c.change.to_vec()))
            .collect();
        state.changes_since_snapshot += changes.len();
        if state.changes_since_snapshot >= SNAPSHOT_EVERY {
            // Fold the change log into a snapshot (it holds this batch too): bounded store
            // size and fast loads.
            ops = vec![
                StoreOp::DeletePrefix(format!("chg/{id}/")),
                StoreOp::Put(key_snapshot(id), snapshot_record(state)),
            ];
            state.changes_since_snapshot = 0;
        }
        self.out.push(Output::Persist(ops));
    }

    fn persist_entry(&mut self, id: u64) {
        let op = match self.outbox.get(&id) {
            Some(e) if matches!(e.status, IntentStatus::Accepted) => {
                StoreOp::Delete(key_outbox(id))
            }
            Some(e) => StoreOp::Put(key_outbox(id), cbor(e)),
            None => StoreOp::Delete(key_outbox(id)),
        };
        self.out.push(Output::Persist(vec![op]));
    }

    // ---------- documents ----------

    fn ensure_doc(&mut self, id: &DocId) -> Result<&mut ClientDoc, ClientError> {
        if !self.docs.contains_key(id) {
            let server = doc::genesis(id)
                .map_err(|e| ClientError::Corrupt(e.to_string()))?
                .with_actor(self.config.actor.clone());
            let local = server.clone();
            self.docs.insert(
                id.clone(),
                ClientDoc {
                    server,
                    local,
                    cursor: 0,
                    message_seq: HashMap::new(),
                    changes_since_snapshot: 0,
                    revoked: None,
                },
            );
            if self.online {
                self.out.push(Output::Send(ClientFrame::Subscribe {
                    doc: id.to_string(),
                    after: 0,
                }));
            }
        }
        self.docs
            .get_mut(id)
            .ok_or_else(|| ClientError::NotApplicable("document vanished".into()))
    }

    /// Starts following a document (a conversation, one of its buckets, a profile).
    pub fn open(&mut self, id: &DocId) -> Result<(), ClientError> {
        self.ensure_doc(id).map(|_| ())
    }

    pub fn is_loaded(&self, id: &DocId) -> bool {
        self.docs.contains_key(id)
    }

    /// The conversation as this device sees it (accepted plus pending).
    pub fn conversation(&self, conv: &ConvId) -> Option<Conversation> {
        let doc = self.docs.get(&DocId::conv(&self.config.tenant, conv))?;
        Some(read::read_conversation(&doc.local, conv.clone())).filter(|c| c.meta.is_some())
    }

    fn bucket_ms(&self, conv: &ConvId) -> i64 {
        self.conversation(conv)
            .and_then(|c| c.meta.map(|m| m.bucket_ms))
            .unwrap_or(DEFAULT_BUCKET_MS)
    }

    /// The bucket document a message created at `at` belongs to.
    pub fn bucket_doc(&self, conv: &ConvId, at: i64) -> DocId {
        DocId::msgs(
            &self.config.tenant,
            conv,
            at.div_euclid(self.bucket_ms(conv).max(1)),
        )
    }

    // ---------- intents ----------

    /// Checks an intent with the policy on local state, writes it, queues it. Returns its id.
    pub fn intent(&mut self, intent: Intent, device_now: i64) -> Result<u64, ClientError> {
        let now = self.server_now(device_now);
        let me = self.config.account.clone();
        let tenant = self.config.tenant.clone();
        let targets = apply::targets(&intent, &tenant, &me, |c| self.bucket_ms(c));
        for target in &targets {
            self.ensure_doc(target)?;
        }
        self.check(&intent, &targets, now)?;
        let id = self.next_id;
        self.next_id += 1;
        let mut entry = OutboxEntry {
            id,
            intent,
            created_at: now,
            status: IntentStatus::Pending,
            changes: Vec::new(),
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
            self.send_entry(id);
        }
        Ok(id)
    }

    fn check(&self, intent: &Intent, targets: &[DocId], now: i64) -> Result<(), ClientError> {
        let conv_id = targets.first().and_then(|t| t.conv_id().cloned());
        let conv = conv_id.as_ref().and_then(|c| self.conversation(c));
        let bucket = targets
            .iter()
            .find(|t| matches!(t.target(), DocTarget::Msgs(..)));
        let bucket_doc = bucket.and_then(|b| self.docs.get(b)).map(|d| &d.local);
        let bucket_id = bucket.and_then(|b| match b.target() {
            DocTarget::Msgs(_, n) => Some(*n),
            _ => None,
        });
        apply::check(
            intent,
            &self.config.account,
            conv.as_ref(),
            bucket_doc,
            now,
            bucket_id,
        )
        .map_err(|d| ClientError::Denied {
            code: d.code.as_str().to_owned(),
            reason: d.reason,
        })
    }

    fn write(
        &mut self,
        target: &DocId,
        intent: &Intent,
        id: u64,
        now: i64,
    ) -> Result<Option<PendingChange>, ClientError> {
        let me = self.config.account.clone();
        let tag = IntentTag::new(id.to_string(), intent.kind());
        let state = self.ensure_doc(target)?;
        let before = state.local.get_heads();
        let wrote = apply::write_to(&mut state.local, target, intent, &me, &tag, now)
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

    fn send_entry(&mut self, id: u64) {
        let Some(entry) = self.outbox.get_mut(&id) else {
            return;
        };
        if matches!(
            entry.status,
            IntentStatus::Accepted | IntentStatus::Rejected { .. }
        ) {
            return;
        }
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
        self.outbox.get(&id).map(|e| e.status.clone())
    }

    /// Intents not yet accepted, oldest first (the visible outbox).
    pub fn outbox(&self) -> Vec<(u64, Intent, IntentStatus)> {
        self.outbox
            .values()
            .filter(|e| e.status != IntentStatus::Accepted)
            .map(|e| (e.id, e.intent.clone(), e.status.clone()))
            .collect()
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

    // ---------- connection ----------

    /// The server welcomed us: subscribe from every cursor, resend the outbox in order.
    pub fn connected(&mut self, server_time: i64, device_now: i64) {
        self.online = true;
        self.clock_offset = server_time - device_now;
        let subscribes: Vec<ClientFrame> = self
            .docs
            .iter()
            .filter(|(_, d)| d.revoked.is_none())
            .map(|(id, d)| ClientFrame::Subscribe {
                doc: id.to_string(),
                after: d.cursor,
            })
            .collect();
        self.out.extend(subscribes.into_iter().map(Output::Send));
        let ids: Vec<u64> = self.outbox.keys().copied().collect();
        for id in ids {
            self.send_entry(id);
        }
        self.out.push(Output::Event(Event::Online { online: true }));
    }

    pub fn disconnected(&mut self) {
        self.online = false;
        for entry in self.outbox.values_mut() {
            if entry.status == IntentStatus::Sent {
                entry.status = IntentStatus::Pending;
            }
        }
        self.out
            .push(Output::Event(Event::Online { online: false }));
    }

    /// Handles one frame from the server.
    pub fn receive(&mut self, frame: ServerFrame, device_now: i64) {
        match frame {
            ServerFrame::Changes { doc, changes } => self.on_changes(&doc, changes),
            ServerFrame::Snapshot { doc, seq, data } => self.on_snapshot(&doc, seq, &data),
            ServerFrame::Ack { doc, hash, seq } => self.on_ack(&doc, &hash, seq),
            ServerFrame::Reject {
                doc,
                hash,
                code,
                reason,
            } => {
                if let Some(hash) = hash {
                    self.on_reject(&doc, &hash, code, reason, device_now);
                }
            }
            ServerFrame::Revoked { doc, reason, .. } => {
                if let Ok(id) = DocId::parse(&doc) {
                    if let Some(state) = self.docs.get_mut(&id) {
                        state.revoked = Some(reason.clone());
                    }
                }
                self.out.push(Output::Event(Event::Revoked { doc, reason }));
            }
            ServerFrame::Signal {
                doc, from, kind, ..
            } => {
                let (Ok(id), Ok(from)) = (DocId::parse(&doc), AccountId::new(from)) else {
                    return;
                };
                let Some(conv) = id.conv_id().cloned() else {
                    return;
                };
                let typing = self.typing.entry(conv.clone()).or_default();
                match kind {
                    SignalKind::Typing => {
                        typing.insert(from, device_now + 6000);
                    }
                    SignalKind::StoppedTyping => {
                        typing.remove(&from);
                    }
                    SignalKind::Presence => {}
                }
                self.out.push(Output::Event(Event::Typing {
                    conv: conv.to_string(),
                }));
            }
            ServerFrame::Welcome { server_time, .. } => self.connected(server_time, device_now),
            ServerFrame::Synced { .. } | ServerFrame::Pong { .. } | ServerFrame::Error { .. } => {}
        }
    }

    /// Tells the conversation's other members that we type (ephemeral).
    pub fn typing_signal(&mut self, conv: &ConvId, typing: bool) {
        if self.online {
            self.out.push(Output::Send(ClientFrame::Signal {
                doc: DocId::conv(&self.config.tenant, conv).to_string(),
                kind: if typing {
                    SignalKind::Typing
                } else {
                    SignalKind::StoppedTyping
                },
                data: None,
            }));
        }
    }

    /// Who types in `conv` right now.
    pub fn typing(&self, conv: &ConvId, device_now: i64) -> Vec<AccountId> {
        self.typing
            .get(conv)
            .map(|t| {
                t.iter()
                    .filter(|(_, until)| **until > device_now)
                    .map(|(a, _)| a.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn on_changes(&mut self, doc: &str, changes: Vec<SeqChange>) {
        let Ok(id) = DocId::parse(doc) else {
            return;
        };
        let Some(state) = self.docs.get_mut(&id) else {
            return;
        };
        let fresh: Vec<SeqChange> = changes
            .into_iter()
            .filter(|c| c.seq > state.cursor)
            .collect();
        if fresh.is_empty() {
            return;
        }
        let mut decoded = Vec::with_capacity(fresh.len());
        for c in &fresh {
            let Ok(change) = Change::try_from(&c.change[..]) else {
                continue;
            };
            for (message, _) in created_messages(&change) {
                state.message_seq.insert(message, c.seq);
            }
            decoded.push(change);
        }
        if state.server.apply_changes(decoded.clone()).is_err()
            || state.local.apply_changes(decoded).is_err()
        {
            return;
        }
        state.cursor = fresh.last().map_or(state.cursor, |c| c.seq);
        self.persist_accepted(&id, &fresh);
        self.out.push(Output::Event(Event::Doc {
            doc: id.to_string(),
        }));
    }

    fn on_snapshot(&mut self, doc: &str, seq: u64, data: &[u8]) {
        let Ok(id) = DocId::parse(doc) else {
            return;
        };
        let Some(state) = self.docs.get_mut(&id) else {
            return;
        };
        if state.server.load_incremental(data).is_err()
            || state.local.load_incremental(data).is_err()
        {
            return;
        }
        state.cursor = state.cursor.max(seq);
        let record = snapshot_record(state);
        self.out.push(Output::Persist(vec![StoreOp::Put(
            key_snapshot(&id),
            record,
        )]));
        self.out.push(Output::Event(Event::Doc {
            doc: id.to_string(),
        }));
    }

    fn find(&self, doc: &str, hash: &[u8]) -> Option<(u64, usize)> {
        self.outbox.values().find_map(|e| {
            e.changes
                .iter()
                .position(|c| c.doc == doc && c.hash.as_slice() == hash)
                .map(|i| (e.id, i))
        })
    }

    fn on_ack(&mut self, doc: &str, hash: &[u8], seq: u64) {
        let Some((id, index)) = self.find(doc, hash) else {
            return;
        };
        let Some(entry) = self.outbox.get_mut(&id) else {
            return;
        };
        entry.changes[index].acked = true;
        let bytes = entry.changes[index].bytes.clone();
        let done = entry.changes.iter().all(|c| c.acked);
        if done {
            entry.status = IntentStatus::Accepted;
        }
        if let (Ok(doc_id), Ok(change)) = (DocId::parse(doc), Change::try_from(&bytes[..])) {
            if let Some(state) = self.docs.get_mut(&doc_id) {
                for (message, _) in created_messages(&change) {
                    state.message_seq.insert(message, seq);
                }
                let _ = state.server.apply_changes([change]);
            }
        }
        self.persist_entry(id);
        if done {
            self.out.push(Output::Event(Event::Intent {
                id,
                status: IntentStatus::Accepted,
            }));
            self.outbox.remove(&id);
        }
    }

    /// DESIGN §4: drop the rejected change and everything after it in that document, rebuild
    /// the document from accepted state, re-apply the later intents as new changes, report.
    fn on_reject(&mut self, doc: &str, hash: &[u8], code: String, reason: String, device_now: i64) {
        let Some((rejected_id, _)) = self.find(doc, hash) else {
            return; // a change we already replaced: its rejection is expected
        };
        let Ok(doc_id) = DocId::parse(doc) else {
            return;
        };
        if let Some(entry) = self.outbox.get_mut(&rejected_id) {
            entry.status = IntentStatus::Rejected { code, reason };
        }
        let later: Vec<u64> = self
            .outbox
            .values()
            .filter(|e| e.id > rejected_id && e.changes.iter().any(|c| c.doc == doc && !c.acked))
            .map(|e| e.id)
            .collect();
        let earlier: Vec<PendingChange> = self
            .outbox
            .values()
            .filter(|e| e.id < rejected_id)
            .flat_map(|e| {
                e.changes
                    .iter()
                    .filter(|c| c.doc == doc && !c.acked)
                    .cloned()
            })
            .collect();
        if let Some(state) = self.docs.get_mut(&doc_id) {
            let mut local = state.server.clone();
            let earlier_changes: Vec<Change> = earlier
                .iter()
                .filter_map(|c| Change::try_from(&c.bytes[..]).ok())
                .collect();
            let _ = local.apply_changes(earlier_changes);
            state.local = local;
        }
        let now = self.server_now(device_now);
        for id in later {
            let Some(mut entry) = self.outbox.remove(&id) else {
                continue;
            };
            entry.changes.retain(|c| c.doc != doc || c.acked);
            let checked = self.check(&entry.intent, std::slice::from_ref(&doc_id), now);
            match checked.and_then(|()| self.write(&doc_id, &entry.intent, id, now)) {
                Ok(Some(change)) => entry.changes.push(change),
                Ok(None) => {}
                Err(e) => {
                    entry.status = IntentStatus::Rejected {
                        code: e.code().to_owned(),
                        reason: e.to_string(),
                    }
                }
            }
            if entry.changes.iter().all(|c| c.acked)
                && !matches!(entry.status, IntentStatus::Rejected { .. })
            {
                entry.status = IntentStatus::Accepted;
            }
            let status = entry.status.clone();
            self.outbox.insert(id, entry);
            self.persist_entry(id);
            self.out.push(Output::Event(Event::Intent { id, status }));
            if self.online {
                self.send_entry(id);
            }
        }
        self.persist_entry(rejected_id);
        if let Some(status) = self.status(rejected_id) {
            self.out.push(Output::Event(Event::Intent {
                id: rejected_id,
                status,
            }));
        }
        self.out.push(Output::Event(Event::Doc {
            doc: doc.to_owned(),
        }));
    }

    // ---------- views ----------

    /// Messages of the loaded buckets of `conv`: server order, then pending ones.
    pub fn timeline(&self, conv: &ConvId) -> Vec<TimelineItem> {
        let mut items = Vec::new();
        for (id, state) in self.docs.range(
            DocId::msgs(&self.config.tenant, conv, i64::MIN)
                ..=DocId::msgs(&self.config.tenant, conv, i64::MAX),
        ) {
            let DocTarget::Msgs(c, bucket) = id.target() else {
                continue;
            };
            if c != conv {
                continue;
            }
            let accepted = accepted_messages(&state.server);
            for message in read::read_messages(&state.local) {
                let pending = !accepted.contains(&message.id);
                items.push(TimelineItem {
                    seq: state.message_seq.get(&message.id).copied(),
                    bucket: *bucket,
                    pending,
                    message,
                });
            }
        }
        // Server order (bucket, seq); restored messages without a known seq by time; pending last.
        items.sort_by(|a, b| {
            (
                a.pending,
                a.bucket,
                a.seq.unwrap_or(0),
                a.message.created_at,
                &a.message.id,
            )
                .cmp(&(
                    b.pending,
                    b.bucket,
                    b.seq.unwrap_or(0),
                    b.message.created_at,
                    &b.message.id,
                ))
        });
        items
    }

    /// The conversation list: last activity first, unread counts from read markers.
    pub fn conversations(&self) -> Vec<ConversationSummary> {
        let private = self
            .docs
            .get(&DocId::private(&self.config.tenant, &self.config.account))
            .map(|d| read::read_private(&d.local))
            .unwrap_or_default();
        let mut out = Vec::new();
        for (id, state) in &self.docs {
            let DocTarget::Conv(conv_id) = id.target() else {
                continue;
            };
            let conv = read::read_conversation(&state.local, conv_id.clone());
            let Some(meta) = conv.meta.as_ref() else {
                continue;
            };
            let timeline = self.timeline(conv_id);
            let marker = conv.reads.get(&self.config.account);
            let read_upto = marker.and_then(|m| timeline.iter().position(|i| i.message.id == *m));
            let unread = timeline
                .iter()
                .enumerate()
                .filter(|(i, item)| {
                    read_upto.is_none_or(|r| *i > r)
                        && item.message.author != self.config.account
                        && item.message.deleted_at.is_none()
                })
                .count();
            let last = timeline.last();
            let prefs = private.convs.get(conv_id).cloned().unwrap_or_default();
            out.push(ConversationSummary {
                conv: conv_id.clone(),
                kind: Some(meta.kind.as_str().to_owned()),
                title: conv.info.title.clone(),
                lifecycle: conv.lifecycle.state.as_str().to_owned(),
                unread,
                last_message: last.map(|i| {
                    i.message
                        .body
                        .chars()
                        .take(crate::limits::PREVIEW_CHARS)
                        .collect()
                }),
                last_activity: last.map_or(meta.created_at, |i| i.message.created_at),
                muted: prefs.muted,
                pinned: prefs.pinned,
                archived: prefs.archived,
            });
        }
        out.sort_by_key(|s| std::cmp::Reverse((s.pinned, s.last_activity)));
        out
    }
}

/// Ids of the messages in a bucket document.
fn accepted_messages(doc: &Automerge) -> std::collections::HashSet<MessageId> {
    let mut out = std::collections::HashSet::new();
    let Some(messages) = read::get_map(doc, &automerge::ROOT, doc::schema::keys::MESSAGES) else {
        return out;
    };
    for shard in automerge::ReadDoc::keys(doc, &messages) {
        if let Some(shard) = read::get_map(doc, &messages, &shard) {
            out.extend(
                automerge::ReadDoc::keys(doc, &shard).filter_map(|k| MessageId::new(k).ok()),
            );
        }
    }
    out
}

/// Ids of the messages a change creates (`messages/<id>` maps made at the bucket root map).
fn created_messages(change: &Change) -> Vec<(MessageId, ())> {
    use automerge::legacy::{Key, ObjectId, OpType};
    change
        .decode()
        .operations
        .iter()
        .filter_map(|op| match (&op.obj, &op.key, &op.action) {
            (ObjectId::Id(_), Key::Map(key), OpType::Make(automerge::ObjType::Map)) => {
                MessageId::new(key.as_str()).ok().map(|m| (m, ()))
            }
            _ => None,
        })
        .collect()
}
