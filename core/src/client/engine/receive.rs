//! What the server says: frames in, and what they do to the replicas and the outbox
//! (acks, rejections with their rebase, pushes, catch-up, signals, transient errors), and
//! to the parts they are for: listings to `buckets`, membership entries to `feed`,
//! presence signals to `presence`, transient errors and rejections to `retry`. Each part
//! answers with what to do, which is carried out here.

use automerge::Change;

use crate::client::buckets::MOVES_MAX;
use crate::client::engine::{ClientEngine, ClientError, Event, IntentStatus, Output};
use crate::client::feed::{self, FeedAction};
use crate::client::intent::Intent;
use crate::client::outbox::find;
use crate::client::presence::PresenceState;
use crate::client::replica::{buckets_of, created_messages};
use crate::client::retry::{is_transient, Rejected};
use crate::client::store::StoreOp;
use crate::doc::read;
use crate::ids::{AccountId, Bucket, ConvId, DocId, DocTarget};
use crate::policy::DenyCode;
use crate::protocol::{ClientFrame, Membership, SeqChange, ServerFrame, SignalKind};
use crate::validate::RejectCode;

/// How often a read or delivery marker that lost to another device of this account is
/// written again before it ends rejected.
const MARKER_REWRITES_MAX: u32 = 3;

impl ClientEngine {
    /// Handles one frame from the server.
    pub fn receive(&mut self, frame: ServerFrame, device_now: i64) {
        if let ServerFrame::Error {
            doc: Some(doc),
            code,
            message,
            ..
        } = &frame
        {
            self.listing_failed(doc);
            self.read_times_failed(doc, code, message);
        }
        if let ServerFrame::Error {
            doc: Some(doc),
            code,
            hash: None,
            id: None,
            retry_after_ms,
            ..
        } = &frame
        {
            self.waiting_refused(doc, code, *retry_after_ms, device_now);
        }
        match frame {
            ServerFrame::Changes { doc, changes } => self.on_changes(&doc, changes),
            ServerFrame::Snapshot {
                doc,
                seq,
                data,
                order,
            } => self.on_snapshot(&doc, seq, &data, order.as_ref(), device_now),
            ServerFrame::Synced { doc, .. } => {
                self.on_synced(&doc);
                self.expire_after_sync(&doc, device_now);
            }
            ServerFrame::Ack { doc, hash, seq } => {
                self.on_ack(&doc, &hash, seq);
                self.retry.progress(&self.outbox, device_now);
            }
            ServerFrame::Reject {
                doc,
                hash,
                code,
                reason,
            } => {
                if let Some(hash) = hash {
                    self.on_reject_frame(&doc, &hash, code, reason, device_now);
                }
            }
            ServerFrame::Revoked { doc, code, .. } if code == "retention_expired" => {
                self.on_expired_bucket(&doc);
            }
            ServerFrame::Revoked { doc, reason, .. } => {
                if let Ok(id) = DocId::parse(&doc) {
                    if let Some(state) = self.docs.get_mut(&id) {
                        state.revoked = Some(reason.clone());
                        state.catching_up = false;
                    }
                    self.index_due.doc(&id);
                }
                self.out.push(Output::Event(Event::Revoked { doc, reason }));
            }
            ServerFrame::Signal {
                doc,
                from,
                kind,
                data,
            } => self.on_signal(&doc, from, kind, data, device_now),
            ServerFrame::Welcome {
                server_time,
                max_changes,
                max_frame,
                ..
            } => {
                self.retry.limits(max_changes, max_frame);
                self.connected(server_time, device_now)
            }
            ServerFrame::Error {
                code,
                doc: Some(doc),
                ..
            } if code == "forbidden" => self.on_forbidden(&doc),
            ServerFrame::Error {
                code,
                doc: Some(doc),
                ..
            } if code == "bucket_expired" => self.on_expired_bucket(&doc),
            // A directory request's answer (its id), transient or not.
            ServerFrame::Error {
                code,
                message,
                id: Some(id),
                retry_after_ms,
                ..
            } => self.on_directory_error(id, code, message, retry_after_ms, device_now),
            ServerFrame::Error {
                code,
                doc,
                hash,
                retry_after_ms,
                ..
            } if is_transient(&code) => self.on_transient(
                doc.as_deref(),
                hash.as_ref().map(|h| h.as_slice()),
                retry_after_ms,
                device_now,
            ),
            ServerFrame::Buckets { doc, buckets, more } => self.on_buckets(&doc, buckets, more),
            ServerFrame::Bucket { doc, bucket } => self.on_bucket(&doc, bucket),
            ServerFrame::ReadTimes { doc, reads } => self.on_read_times(&doc, reads),
            ServerFrame::Memberships { memberships, more } => {
                self.on_memberships(memberships, more, device_now)
            }
            ServerFrame::Membership {
                conv,
                role,
                status,
                seq,
            } => self.on_membership(
                Membership {
                    conv,
                    role,
                    status,
                    seq,
                },
                device_now,
            ),
            ServerFrame::KeyPackagesStored { id, held } => {
                self.on_key_packages_stored(id, held, device_now)
            }
            ServerFrame::KeyPackages { id, devices } => self.on_key_packages(id, devices),
            ServerFrame::Devices {
                id,
                account,
                devices,
                removed,
            } => self.on_devices(id, &account, devices, removed, device_now),
            ServerFrame::DeviceRemoved { id } => self.on_device_removed(id),
            ServerFrame::Pong { .. } | ServerFrame::Error { .. } => {}
        }
        self.settle_owed(device_now);
        self.delivery.schedule(device_now);
        self.retry
            .ensure_round(&self.outbox, self.online, device_now);
    }

    /// A subscription was refused. If it raced the creation of its conversation, it is
    /// retried when the creation is acked. If the membership feed already says this account
    /// is active in it, the refusal was read before the membership (the server answers a
    /// subscription and pushes the feed on separate paths): it is asked once more per feed
    /// entry, so a real refusal ends after one try. A `forbidden` while no subscription of
    /// the document awaits its answer (a refused `buckets` request names the conversation
    /// document too) leaves a live subscription as it is.
    fn on_forbidden(&mut self, doc: &str) {
        let Ok(id) = DocId::parse(doc) else {
            return;
        };
        let conv = id.conv_id().cloned();
        let waiting = conv.as_ref().is_some_and(|c| self.creation_pending(c));
        let active = conv.as_ref().and_then(|c| self.feed.active_since(c));
        let Some(state) = self.docs.get_mut(&id) else {
            return;
        };
        let awaited = std::mem::replace(&mut state.catching_up, false);
        state.deferred = waiting;
        self.index_due.doc(&id);
        if waiting || !awaited {
            return;
        }
        let again = active.is_some() && state.refused != Some(active);
        state.refused = Some(active);
        if again {
            self.subscribe(&id);
        }
    }

    fn on_signal(
        &mut self,
        doc: &str,
        from: String,
        kind: SignalKind,
        data: Option<String>,
        device_now: i64,
    ) {
        let (Ok(id), Ok(from)) = (DocId::parse(doc), AccountId::new(from)) else {
            return;
        };
        let Some(conv) = id.conv_id().cloned() else {
            return;
        };
        if kind == SignalKind::DevicesChanged {
            self.on_devices_changed(from);
            return;
        }
        if kind == SignalKind::DeviceWaiting {
            if let Some(device) = data {
                self.on_device_waiting(&conv, from, device, device_now);
            }
            return;
        }
        if kind == SignalKind::Presence {
            // Our own account's other devices are not shown.
            let Some(state) = data.as_deref().and_then(PresenceState::parse) else {
                return;
            };
            if from == self.config.account {
                return;
            }
            let members = self.member_count(&conv);
            if self
                .presence
                .heard(conv.clone(), from, state, members, device_now)
            {
                self.out.push(Output::Event(Event::Presence {
                    conv: conv.to_string(),
                }));
            }
            return;
        }
        let typing = self.typing.entry(conv.clone()).or_default();
        if kind == SignalKind::Typing {
            typing.insert(from, device_now + 6000);
        } else {
            typing.remove(&from);
        }
        self.out.push(Output::Event(Event::Typing {
            conv: conv.to_string(),
        }));
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
        let mut fresh = Vec::with_capacity(changes.len());
        let mut decoded = Vec::with_capacity(changes.len());
        let mut own = Vec::new();
        let mut created = false;
        // A change that gives a message a new sealed content (an edit): it is opened again.
        let mut edited = false;
        let mut arrived = Vec::new();
        for c in changes.into_iter().filter(|c| c.seq > state.cursor) {
            let Ok(change) = Change::try_from(&c.change[..]) else {
                continue;
            };
            let new = created_messages(&change);
            edited |= new.is_empty() && crate::client::replica::writes_sealed(&change);
            for message in new {
                state.message_seq.insert(message.clone(), c.seq);
                arrived.push(message);
                created = true;
            }
            if change.actor_id() == &self.config.actor {
                own.push(change.hash());
            }
            fresh.push((c, change.hash()));
            decoded.push(change);
        }
        if fresh.is_empty() {
            return;
        }
        let before = (state.server.get_heads(), state.local.get_heads());
        if state.server.apply_changes(decoded.clone()).is_err()
            || state.local.apply_changes(decoded.clone()).is_err()
        {
            return;
        }
        let heads = state.server.get_heads();
        state.search.arrived(&before.0, heads, &decoded);
        self.index_due.doc(&id);
        state.cursor = fresh.last().map_or(state.cursor, |(c, _)| c.seq);
        // The push of this device's own change acked out of order (the server sends a change
        // to its writer too; one acked in order moved the cursor and is filtered out above):
        // stored under its seq, but nothing shows differently, so no one is told (an app
        // would redraw for nothing once per message it sends).
        let moved = before != (state.server.get_heads(), state.local.get_heads());
        if created && moved {
            self.delivery.arrived(&id);
        }
        self.persist_accepted(&id, &fresh);
        if moved {
            self.out.push(Output::Event(Event::Doc {
                doc: id.to_string(),
            }));
        }
        match id.target() {
            DocTarget::Conv(conv) => {
                let conv = conv.clone();
                self.follow_group(&conv);
            }
            DocTarget::Msgs(..) if created || edited => {
                if edited {
                    let since = self
                        .docs
                        .get(&id)
                        .and_then(|s| crate::client::timeline::touched_since(&s.server, &before.0));
                    arrived.extend(since.into_iter().flatten());
                    // Each is opened once: a second decryption of one ciphertext fails.
                    arrived.sort();
                    arrived.dedup();
                }
                self.open_arrived(&id, Some(arrived))
            }
            _ => {}
        }
        // This device's own changes pushed before their ack (the server pushes to sockets
        // as it commits, and the writer's ack follows on its connection's own path): the
        // push is their acceptance, as durable as an ack, so the ack finds nothing left to
        // do (one store write per message sent, not two).
        for hash in own {
            if let Some((entry, index)) = find(&self.outbox, doc, &hash.0) {
                self.retry.acked();
                let (op, done) = self.mark_accepted(entry, index);
                self.out.push(Output::Persist(vec![op]));
                self.accepted_intent(entry, done, Some(&id));
            }
        }
    }

    fn on_synced(&mut self, doc: &str) {
        let Ok(id) = DocId::parse(doc) else {
            return;
        };
        if let Some(state) = self.docs.get_mut(&id) {
            state.catching_up = false;
            state.refused = None;
        }
        self.index_due.doc(&id);
        if let DocTarget::Conv(conv) = id.target() {
            let conv = conv.clone();
            self.delivery.conversation_synced(&conv);
        }
        // The parts after it may open now (sealed messages open in the order sent).
        if let Some(conv) = id.conv_id() {
            let conv = conv.clone();
            self.open_ready(&conv);
        }
        self.fold_if_due(&id);
    }

    /// One of our changes is accepted: it is stored as accepted in the same batch that updates
    /// the outbox, so a restart before its push shows it accepted and sends nothing again.
    fn on_ack(&mut self, doc: &str, hash: &[u8], seq: u64) {
        // Progress: the next transient failure starts the backoff afresh.
        self.retry.acked();
        let Some((id, index)) = find(&self.outbox, doc, hash) else {
            return;
        };
        let Some(bytes) = self.outbox.get(&id).map(|e| e.changes[index].bytes.clone()) else {
            return;
        };
        let doc_id = DocId::parse(doc).ok();
        let mut ops = Vec::new();
        if let (Some(doc_id), Ok(change)) = (&doc_id, Change::try_from(&bytes[..])) {
            ops.extend(self.accept_own(doc_id, change, seq));
        }
        let (op, done) = self.mark_accepted(id, index);
        ops.push(op);
        self.out.push(Output::Persist(ops));
        if let Some(doc_id) = &doc_id {
            self.fold_if_due(doc_id);
        }
        self.accepted_intent(id, done, doc_id.as_ref());
    }

    /// Marks change `index` of outbox entry `id` accepted: the entry's store op, and whether
    /// the whole intent is accepted now.
    fn mark_accepted(&mut self, id: u64, index: usize) -> (StoreOp, bool) {
        let mut done = false;
        if let Some(entry) = self.outbox.get_mut(&id) {
            entry.changes[index].acked = true;
            done = entry.changes.iter().all(|c| c.acked);
            if done {
                entry.status = IntentStatus::Accepted;
            }
        }
        (self.entry_op(id), done)
    }

    /// After an accepted change of intent `id` was stored: an intent accepted whole is told
    /// and leaves the outbox; subscriptions waiting for the conversation's creation go.
    fn accepted_intent(&mut self, id: u64, done: bool, doc: Option<&DocId>) {
        // A commit rides in an intent's last change: an ack of an earlier one (a creation
        // acked as a copy of another device's) says nothing of it.
        if done {
            self.commit_accepted(id);
            self.marker_rewrites.remove(&id);
            let answered = self.outbox.get(&id).and_then(|e| match &e.intent {
                Intent::Edit { message, .. } => Some((message.clone(), false)),
                Intent::Delete { message, .. } => Some((message.clone(), true)),
                _ => None,
            });
            match (answered, doc) {
                (Some((message, false)), Some(doc)) => self.edit_answered(doc, &message, true),
                // What this device sealed of its deleted message goes with the ciphertext.
                (Some((message, true)), Some(doc)) => self.open_arrived(doc, Some(vec![message])),
                _ => {}
            }
        }
        if let Some(DocTarget::Conv(conv)) = doc.map(DocId::target) {
            let conv = conv.clone();
            self.follow_group(&conv);
            if self.group_accepted(&conv) {
                // Sends into a direct conversation or support thread wait for its group to
                // be the server's.
                self.advance();
            }
        }
        if done {
            self.out.push(Output::Event(Event::Intent {
                id,
                status: IntentStatus::Accepted,
            }));
            self.outbox.remove(&id);
        }
        if let Some(DocTarget::Conv(conv)) = doc.map(DocId::target) {
            let conv = conv.clone();
            self.resume_deferred(&conv);
        }
    }

    /// Rejection without loss: drop the rejected change and everything after it in that document, rebuild
    /// the document from accepted state, re-apply the later intents as new changes, report.
    pub(super) fn on_reject(
        &mut self,
        doc: &str,
        hash: &[u8],
        code: String,
        reason: String,
        device_now: i64,
    ) {
        let Some((rejected_id, _)) = find(&self.outbox, doc, hash) else {
            return; // a change we already replaced: its rejection is expected
        };
        let Ok(doc_id) = DocId::parse(doc) else {
            return;
        };
        // A refusal about where a message was put moves it (and the sends after it in the
        // same part) to the part the refusal points to; a message that keeps being moved
        // ends rejected.
        let moves_to = DenyCode::parse(&code).filter(|c| c.moves_message());
        if let Some(deny) = moves_to {
            self.buckets.refused(&doc_id, deny);
        }
        let moved = |engine: &Self, id: u64| {
            moves_to.is_some()
                && engine.buckets.moves_of(id) < MOVES_MAX
                && engine
                    .outbox
                    .get(&id)
                    .is_some_and(|e| matches!(e.intent, Intent::Send { .. }))
        };
        let mut moving: Vec<u64> = Vec::new();
        let holds = self.goal_holds(rejected_id, &doc_id, &code)
            || self
                .outbox
                .get(&rejected_id)
                .is_some_and(|e| self.sent_already(&doc_id, &e.intent));
        // A commit that lost its epoch to another is made again on the new one; a marker
        // that lost to another device of this account, on what the server holds now.
        let resealed = !holds && self.reseal_after(rejected_id, &code);
        let rebuild = self.commit_rejected(rejected_id, &code)
            || resealed
            || (!holds && self.marker_lost(rejected_id, &code));
        if rebuild || moved(self, rejected_id) {
            moving.push(rejected_id);
        } else if holds {
            if let Some(entry) = self.outbox.get_mut(&rejected_id) {
                entry.status = IntentStatus::Accepted;
            }
        } else {
            let human = self
                .outbox
                .get(&rejected_id)
                .map(|e| self.explain(&e.intent, &code));
            if let (Some(entry), Some(human)) = (self.outbox.get_mut(&rejected_id), human) {
                entry.status = IntentStatus::Rejected {
                    code,
                    reason: human,
                    detail: reason,
                };
            }
        }
        // Intents rejected before are out of the document for good: neither rebased nor
        // re-applied (their changes stay in the outbox only until dismissed).
        let later: Vec<u64> = self
            .outbox
            .values()
            .filter(|e| e.id > rejected_id && !e.is_final())
            .filter(|e| e.changes.iter().any(|c| c.doc == doc && !c.acked))
            .map(|e| e.id)
            .collect();
        let earlier: Vec<Change> = self
            .outbox
            .values()
            .filter(|e| e.id < rejected_id && !e.is_final())
            .flat_map(|e| e.changes.iter().filter(|c| c.doc == doc && !c.acked))
            .filter_map(|c| Change::try_from(&c.bytes[..]).ok())
            .collect();
        if let Some(state) = self.docs.get_mut(&doc_id) {
            let mut local = state.server.clone();
            let _ = local.apply_changes(earlier);
            state.local = local;
        }
        // A refused edit of a sealed message: its text is the accepted one again here too.
        let refused_edit = self.outbox.get(&rejected_id).and_then(|e| match &e.intent {
            Intent::Edit { message, .. } if !holds => Some(message.clone()),
            _ => None,
        });
        if let Some(message) = refused_edit {
            self.edit_answered(&doc_id, &message, false);
        }
        let now = self.server_now(device_now);
        let mut remade: Vec<u64> = Vec::new();
        for id in later {
            // The sealed writes after one sealed again wait for the group with it, in order.
            if (!moving.is_empty() && moved(self, id)) || (resealed && self.is_sealed_write(id)) {
                moving.push(id);
                continue;
            }
            // Its change depends on the refused one: its commit is discarded and the intent
            // made anew from the queue, where it waits for the group and claims again.
            if self.drop_commit(id) {
                remade.push(id);
                continue;
            }
            self.write_again(id, &doc_id, now, device_now);
        }
        // Their stored entries stay as they were until they are written again: a restart in
        // between sends the old change, is refused again and moves it again.
        for id in &moving {
            if let Some(entry) = self.outbox.remove(id) {
                if moves_to.is_some() && !(rebuild && *id == rejected_id) {
                    self.buckets.note_move(*id);
                }
                self.hold_intent(*id, entry.intent, device_now);
            }
        }
        for id in remade {
            if let Some(entry) = self.outbox.remove(&id) {
                self.hold_intent(id, entry.intent, device_now);
            }
        }
        if !moving.contains(&rejected_id) {
            self.persist_entry(rejected_id);
        }
        if let Some(status) = self.status(rejected_id) {
            self.out.push(Output::Event(Event::Intent {
                id: rejected_id,
                status,
            }));
        }
        if holds {
            self.outbox.remove(&rejected_id);
        }
        self.out.push(Output::Event(Event::Doc {
            doc: doc.to_owned(),
        }));
        if let DocTarget::Conv(conv) = doc_id.target() {
            self.resume_deferred(conv);
        }
    }
}

impl ClientEngine {
    /// Writes intent `id` again into `doc_id` as the document now is (its unacked changes
    /// to it go), reports its status and sends it. Where its goal already holds it ends
    /// accepted (`held`: a message of the device's own already in the document).
    pub(super) fn write_again(&mut self, id: u64, doc_id: &DocId, now: i64, device_now: i64) {
        let Some(mut entry) = self.outbox.remove(&id) else {
            return;
        };
        let doc = doc_id.to_string();
        entry.changes.retain(|c| c.doc != doc || c.acked);
        let checked = self.check(&entry.intent, std::slice::from_ref(doc_id), now);
        match checked.and_then(|()| self.write(doc_id, &entry.intent, id, now)) {
            Ok(Some(change)) => entry.changes.push(change),
            Ok(None) => {}
            Err(_) if self.sent_already(doc_id, &entry.intent) => {}
            Err(ClientError::Denied {
                code,
                reason,
                detail,
            }) => {
                entry.status = IntentStatus::Rejected {
                    code,
                    reason,
                    detail,
                }
            }
            Err(e) => {
                entry.status = IntentStatus::Rejected {
                    code: e.code().to_owned(),
                    reason: self.explain(&entry.intent, e.code()),
                    detail: e.to_string(),
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
            self.dispatch(id, device_now);
        }
    }

    /// A send whose message the accepted document holds already: it was accepted, its
    /// answer lost (a part cut in between: docs/PROTOCOL.md, "Generations").
    fn sent_already(&self, doc: &DocId, intent: &Intent) -> bool {
        let Intent::Send { message, .. } = intent else {
            return false;
        };
        self.docs
            .get(doc)
            .and_then(|d| read::read_message(&d.server, &message.id))
            .is_some_and(|m| m.author == self.config.account)
    }

    /// A lifecycle move refused as `conflicting_write` because another device made the same
    /// move first (two members reopening an archived conversation with their messages): what
    /// it asked for holds, so it ends accepted rather than rejected for someone else's write.
    ///
    /// Likewise an encrypted direct conversation or support thread whose group another device
    /// made first (both opened it offline): the conversation exists, encrypted, and this
    /// device joins that group from its Welcome (`follow_group`).
    fn goal_holds(&self, id: u64, doc: &DocId, code: &str) -> bool {
        let server = || self.docs.get(doc).map(|d| &d.server);
        match self.outbox.get(&id).map(|e| &e.intent) {
            Some(Intent::SetLifecycle { state, .. }) => {
                code == RejectCode::ConflictingWrite.as_str()
                    && server().is_some_and(|d| read::read_lifecycle(d).state == *state)
            }
            // The server names the group's key itself: another group holds it.
            Some(
                Intent::OpenDirect {
                    encrypted: true, ..
                }
                | Intent::OpenSupport {
                    encrypted: true, ..
                },
            ) => code == DenyCode::AlreadyCreated.as_str(),
            // Another device of this account moved the marker to the same message at once.
            Some(Intent::MarkDelivered { message, .. }) => {
                code == RejectCode::ConflictingWrite.as_str()
                    && server().is_some_and(|d| {
                        read::read_delivered(d).get(&self.config.account) == Some(message)
                    })
            }
            Some(Intent::MarkRead { message, .. }) => {
                code == RejectCode::ConflictingWrite.as_str()
                    && server().is_some_and(|d| {
                        read::read_reads(d).get(&self.config.account) == Some(message)
                    })
            }
            _ => false,
        }
    }

    /// Whether intent `id` is a read or delivery marker refused as `conflicting_write`:
    /// another device of this account moved the same marker at once. It is written again on
    /// the accepted document, at most `MARKER_REWRITES_MAX` times.
    fn marker_lost(&mut self, id: u64, code: &str) -> bool {
        let marker = self.outbox.get(&id).is_some_and(|e| {
            matches!(
                e.intent,
                Intent::MarkRead { .. } | Intent::MarkDelivered { .. }
            )
        });
        if !marker || code != RejectCode::ConflictingWrite.as_str() {
            return false;
        }
        let rewrites = self.marker_rewrites.entry(id).or_default();
        *rewrites += 1;
        if *rewrites > MARKER_REWRITES_MAX {
            self.marker_rewrites.remove(&id);
            return false;
        }
        true
    }
}

impl ClientEngine {
    /// A retryable `error` frame (`internal`, `unavailable`, `rate_limited`, ...): about one
    /// change (`hash`), a submit or subscription of `doc`, or a frame it cannot tell.
    fn on_transient(
        &mut self,
        doc: Option<&str>,
        hash: Option<&[u8]>,
        retry_after_ms: Option<u64>,
        device_now: i64,
    ) {
        let catching_up = |id: &DocId| self.docs.get(id).is_some_and(|d| d.catching_up);
        // The subscriptions it may have dropped.
        let dropped: Vec<DocId> = match (doc, hash) {
            (Some(_), Some(_)) => Vec::new(),
            (Some(doc), None) => DocId::parse(doc)
                .ok()
                .filter(|id| catching_up(id))
                .into_iter()
                .collect(),
            (None, _) => self
                .docs
                .iter()
                .filter(|(_, d)| d.catching_up)
                .map(|(id, _)| id.clone())
                .collect(),
        };
        let (mut marked, outs) = self.retry.transient(&mut self.outbox, doc, hash, dropped);
        self.route_retry(outs, device_now);
        if doc.is_none() {
            // The membership list may have been it, or failed itself.
            marked |= self.feed.failed();
        }
        if marked {
            self.retry.schedule(device_now, retry_after_ms);
        }
    }

    /// A `reject` frame: `retry` tells whether it is final (then the intent is rejected and
    /// its document rebased), transient, or waits behind an earlier intent.
    fn on_reject_frame(
        &mut self,
        doc: &str,
        hash: &[u8],
        code: String,
        reason: String,
        device_now: i64,
    ) {
        if code == RejectCode::MissingDependency.as_str() && self.lost_by_a_cut(doc, hash) {
            // The part's new generation is on its way (pushed, or this connection's
            // catch-up): it writes the intent again. Until then the change waits as after
            // any transient answer.
            return self.on_transient(Some(doc), Some(hash), None, device_now);
        }
        match self
            .retry
            .rejected(&mut self.outbox, doc, hash, &code, device_now)
        {
            Rejected::Ignored => {}
            Rejected::Transient => self.on_transient(Some(doc), Some(hash), None, device_now),
            Rejected::Resent(outs) => self.route_retry(outs, device_now),
            Rejected::Final => {
                self.on_reject(doc, hash, code, reason, device_now);
                self.retry.settled(&self.outbox, device_now);
            }
        }
    }

    fn on_memberships(&mut self, list: Vec<Membership>, more: bool, device_now: i64) {
        for m in list {
            self.on_membership(m, device_now);
        }
        self.feed.listed(more);
    }

    /// One entry of the feed: the feed decides from what this client holds of the
    /// conversation; its documents are followed, stopped, or left as they are.
    fn on_membership(&mut self, m: Membership, device_now: i64) {
        let Some(noted) = self.feed.note(m) else {
            return;
        };
        let conv = noted.conv().clone();
        let held = self.feed_held(&conv, noted.seq());
        let decision = self.feed.decide(noted, &held);
        match decision.action {
            FeedAction::Nothing => {}
            FeedAction::Open => {
                let _ = self.open_conversation(&conv, feed::OPEN_LIMIT, device_now);
            }
            FeedAction::Readmit => self.readmit(&conv),
            FeedAction::Resubscribe { seq } => self.resubscribe_refused(&conv, seq),
            FeedAction::Stop { reason } => self.stop_following(&conv, &reason),
        }
        if let Some(change) = decision.tell {
            self.out.push(Output::Event(Event::Membership(change)));
        }
    }

    /// What this client holds of `conv`, for a feed entry of `seq`.
    fn feed_held(&self, conv: &ConvId, seq: u64) -> feed::Held {
        let conv_doc = DocId::conv(&self.config.tenant, conv);
        let mut of_conv = self
            .docs
            .iter()
            .filter(|(d, _)| d.conv_id() == Some(conv))
            .map(|(_, s)| s);
        let live = of_conv.clone().any(|s| s.revoked.is_none());
        let refused_before = of_conv.any(|s| s.refused.is_some_and(|r| r.is_none_or(|r| r < seq)));
        feed::Held {
            followed: self.loads.is_stored(&conv_doc) || self.docs.contains_key(&conv_doc),
            revoked: self
                .docs
                .get(&conv_doc)
                .is_some_and(|d| d.revoked.is_some()),
            live,
            refused_before,
            index_known: self.loads.index_known(),
            place: self.place_name(conv),
        }
    }

    /// The conversation's documents in memory stop (no more subscriptions); the app is
    /// told once.
    fn stop_following(&mut self, conv: &ConvId, reason: &str) {
        let mut stopped = false;
        for (id, state) in self.docs.iter_mut() {
            if id.conv_id() == Some(conv) && state.revoked.is_none() {
                state.revoked = Some(reason.to_owned());
                state.catching_up = false;
                state.deferred = false;
                stopped = true;
            }
        }
        self.index_due.every();
        if stopped {
            self.out.push(Output::Event(Event::Revoked {
                doc: DocId::conv(&self.config.tenant, conv).to_string(),
                reason: reason.to_owned(),
            }));
        }
    }

    /// Subscribes again the documents of `conv` whose subscription the server refused as of
    /// an older feed entry than `seq`.
    fn resubscribe_refused(&mut self, conv: &ConvId, seq: u64) {
        let refused: Vec<DocId> = self
            .docs
            .iter()
            .filter(|(d, s)| {
                d.conv_id() == Some(conv) && s.refused.is_some_and(|r| r.is_none_or(|r| r < seq))
            })
            .map(|(d, _)| d.clone())
            .collect();
        for id in &refused {
            if let Some(state) = self.docs.get_mut(id) {
                state.refused = Some(Some(seq));
            }
            self.subscribe(id);
        }
    }

    /// Added again after a removal: the conversation's documents are followed again.
    fn readmit(&mut self, conv: &ConvId) {
        let docs: Vec<DocId> = self
            .docs
            .iter()
            .filter(|(d, s)| d.conv_id() == Some(conv) && s.revoked.is_some())
            .map(|(d, _)| d.clone())
            .collect();
        for id in &docs {
            if let Some(state) = self.docs.get_mut(id) {
                state.revoked = None;
            }
            self.subscribe(id);
        }
    }

    /// The server's listing of a conversation's parts, newest first, `more` when older ones
    /// exist: paging that waited for it goes on.
    fn on_buckets(&mut self, doc: &str, buckets: Vec<Bucket>, more: bool) {
        let Ok(id) = DocId::parse(doc) else {
            return;
        };
        let DocTarget::Conv(conv) = id.target() else {
            return;
        };
        let conv = conv.clone();
        let newest = buckets.first().copied();
        self.buckets.on_listing(&conv, buckets, more);
        if let Some(newest) = newest {
            self.follow_newest(&conv, newest);
        }
        let ready = self.buckets.take_waiting_for(&conv);
        self.page_again(ready);
        self.out.push(Output::Event(Event::Doc {
            doc: id.to_string(),
        }));
    }

    /// Another writer opened a part of a conversation.
    fn on_bucket(&mut self, doc: &str, bucket: Bucket) {
        let Ok(id) = DocId::parse(doc) else {
            return;
        };
        let DocTarget::Conv(conv) = id.target() else {
            return;
        };
        let conv = conv.clone();
        self.buckets.on_opened(&conv, bucket);
        self.follow_newest(&conv, bucket);
    }

    /// A client that holds a part of `conv` in memory follows the conversation's live end:
    /// a newer part is opened (and subscribed) as soon as it is known.
    fn follow_newest(&mut self, conv: &ConvId, bucket: Bucket) {
        let newest_loaded = buckets_of(&self.docs, &self.config.tenant, conv)
            .map(|(b, _)| b)
            .max();
        if newest_loaded.is_some_and(|n| bucket > n) {
            let doc = DocId::msgs(&self.config.tenant, conv, bucket);
            if let Err(e) = self.open_doc(&doc) {
                self.out.push(Output::Event(Event::Error {
                    code: e.code().to_owned(),
                    message: format!("{doc}: {e}"),
                }));
            }
        }
    }

    /// An error about a conversation's `conv` document may be the answer to its listing:
    /// paging that waited for it goes on with what is stored.
    fn listing_failed(&mut self, doc: &str) {
        let Ok(id) = DocId::parse(doc) else {
            return;
        };
        let DocTarget::Conv(conv) = id.target() else {
            return;
        };
        let ready = self.buckets.listing_failed(conv);
        if !ready.is_empty() {
            self.page_again(ready);
        }
    }
}
