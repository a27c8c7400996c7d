//! What the server says: frames in, and what they do to the replicas and the outbox
//! (acks, rejections with their rebase, pushes, catch-up, signals, transient errors).

use automerge::Change;

use super::buckets::MOVES_MAX;
use super::engine::{created_messages, ClientEngine, ClientError, Event, IntentStatus, Output};
use super::intent::Intent;
use super::store::StoreOp;
use crate::doc::read;
use crate::ids::{AccountId, ConvId, DocId, DocTarget};
use crate::policy::DenyCode;
use crate::protocol::{ClientFrame, ErrorCode, SeqChange, ServerFrame, SignalKind};
use crate::validate::RejectCode;

impl ClientEngine {
    /// Handles one frame from the server.
    pub fn receive(&mut self, frame: ServerFrame, device_now: i64) {
        if let ServerFrame::Error { doc: Some(doc), .. } = &frame {
            self.listing_failed(doc);
        }
        match frame {
            ServerFrame::Changes { doc, changes } => self.on_changes(&doc, changes),
            ServerFrame::Snapshot {
                doc,
                seq,
                data,
                order,
            } => self.on_snapshot(&doc, seq, &data, order.as_ref()),
            ServerFrame::Synced { doc, .. } => {
                self.on_synced(&doc);
                self.expire_after_sync(&doc, device_now);
            }
            ServerFrame::Ack { doc, hash, seq } => {
                self.on_ack(&doc, &hash, seq);
                self.on_progress(device_now);
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
                self.max_changes = usize::try_from(max_changes).unwrap_or(usize::MAX).max(1);
                self.max_frame = usize::try_from(max_frame).unwrap_or(usize::MAX);
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
            ServerFrame::Memberships { memberships, more } => {
                self.on_memberships(memberships, more, device_now)
            }
            ServerFrame::Membership {
                conv,
                role,
                status,
                seq,
            } => self.on_membership(
                crate::protocol::Membership {
                    conv,
                    role,
                    status,
                    seq,
                },
                device_now,
            ),
            ServerFrame::Pong { .. } | ServerFrame::Error { .. } => {}
        }
        self.schedule_delivered(device_now);
        self.ensure_round(device_now);
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
        let active = conv.as_ref().and_then(|c| self.active_since(c));
        let Some(state) = self.docs.get_mut(&id) else {
            return;
        };
        let awaited = std::mem::replace(&mut state.catching_up, false);
        state.deferred = waiting;
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
        if kind == SignalKind::Presence {
            return self.on_presence(conv, from, data.as_deref(), device_now);
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
        for c in changes.into_iter().filter(|c| c.seq > state.cursor) {
            let Ok(change) = Change::try_from(&c.change[..]) else {
                continue;
            };
            for message in created_messages(&change) {
                state.message_seq.insert(message, c.seq);
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
            || state.local.apply_changes(decoded).is_err()
        {
            return;
        }
        state.cursor = fresh.last().map_or(state.cursor, |(c, _)| c.seq);
        // The push of this device's own change acked out of order (the server sends a change
        // to its writer too; one acked in order moved the cursor and is filtered out above):
        // stored under its seq, but nothing shows differently, so no one is told (an app
        // would redraw for nothing once per message it sends).
        let moved = before != (state.server.get_heads(), state.local.get_heads());
        if created && moved {
            self.note_arrival(&id);
        }
        self.persist_accepted(&id, &fresh);
        if moved {
            self.out.push(Output::Event(Event::Doc {
                doc: id.to_string(),
            }));
        }
        // This device's own changes pushed before their ack (the server pushes to sockets
        // as it commits, and the writer's ack follows on its connection's own path): the
        // push is their acceptance, as durable as an ack, so the ack finds nothing left to
        // do (one store write per message sent, not two).
        for hash in own {
            if let Some((entry, index)) = self.find(doc, &hash.0) {
                self.retry_attempt = 0;
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
        if let DocTarget::Conv(conv) = id.target() {
            let conv = conv.clone();
            self.conversation_synced(&conv);
        }
        self.fold_if_due(&id);
    }

    pub(super) fn find(&self, doc: &str, hash: &[u8]) -> Option<(u64, usize)> {
        self.outbox.values().find_map(|e| {
            e.changes
                .iter()
                .position(|c| c.doc == doc && c.hash.as_slice() == hash)
                .map(|i| (e.id, i))
        })
    }

    /// One of our changes is accepted: it is stored as accepted in the same batch that updates
    /// the outbox, so a restart before its push shows it accepted and sends nothing again.
    fn on_ack(&mut self, doc: &str, hash: &[u8], seq: u64) {
        // Progress: the next transient failure starts the backoff afresh.
        self.retry_attempt = 0;
        let Some((id, index)) = self.find(doc, hash) else {
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
        let Some((rejected_id, _)) = self.find(doc, hash) else {
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
            self.note_bucket_refusal(&doc_id, deny);
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
        let holds = self.goal_holds(rejected_id, &doc_id, &code);
        if moved(self, rejected_id) {
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
        let now = self.server_now(device_now);
        for id in later {
            if !moving.is_empty() && moved(self, id) {
                moving.push(id);
                continue;
            }
            let Some(mut entry) = self.outbox.remove(&id) else {
                continue;
            };
            entry.changes.retain(|c| c.doc != doc || c.acked);
            let checked = self.check(&entry.intent, std::slice::from_ref(&doc_id), now);
            match checked.and_then(|()| self.write(&doc_id, &entry.intent, id, now)) {
                Ok(Some(change)) => entry.changes.push(change),
                Ok(None) => {}
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
        // Their stored entries stay as they were until they are written again: a restart in
        // between sends the old change, is refused again and moves it again.
        for id in &moving {
            if let Some(entry) = self.outbox.remove(id) {
                self.buckets.note_move(*id);
                self.hold_intent(*id, entry.intent, device_now);
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
    /// A lifecycle move refused as `conflicting_write` because another device made the same
    /// move first (two members reopening an archived conversation with their messages): what
    /// it asked for holds, so it ends accepted rather than rejected for someone else's write.
    fn goal_holds(&self, id: u64, doc: &DocId, code: &str) -> bool {
        if code != RejectCode::ConflictingWrite.as_str() {
            return false;
        }
        let Some(Intent::SetLifecycle { state, .. }) = self.outbox.get(&id).map(|e| &e.intent)
        else {
            return false;
        };
        self.docs
            .get(doc)
            .is_some_and(|d| read::read_lifecycle(&d.server).state == *state)
    }
}

/// A code that says "not now" rather than "no": the request is neither accepted nor refused.
pub(super) fn is_transient(code: &str) -> bool {
    ErrorCode::parse(code).is_some_and(ErrorCode::is_retryable)
}
