//! The fate of a sent intent when the server cannot answer it yet: transient errors,
//! rejections caused by this device's own unaccepted intents, frames that get no answer.
//! Such intents are resent in outbox order with backoff (`tick` at `next_wakeup`), never
//! reported rejected; only a rejection about the intent itself is final.
//!
//! Resending is safe: the server acks an already-accepted change with its original seq.

use serde_bytes::ByteBuf;

use super::engine::{
    related, ClientEngine, Event, IntentStatus, Output, ANSWER_TIMEOUT_MS, RETRY_MAX_MS,
    RETRY_MIN_MS,
};
use super::receive::is_transient;
use crate::ids::DocId;
use crate::protocol::ClientFrame;

/// The longest `retry_after_ms` honoured (a guard against absurd values).
const RETRY_AFTER_CAP_MS: u64 = 600_000;

impl ClientEngine {
    /// When the host must call `tick` next (device time, ms); `None`: nothing waits.
    pub fn next_wakeup(&self) -> Option<i64> {
        let delivered = self.delivered_wakeup();
        if !self.online {
            return delivered;
        }
        let unanswered = self
            .outbox
            .values()
            .filter(|e| !e.is_final() && !e.resend)
            .filter_map(|e| e.sent_at)
            .min()
            .map(|t| t.saturating_add(ANSWER_TIMEOUT_MS));
        [self.retry_at, unanswered, delivered]
            .into_iter()
            .flatten()
            .min()
    }

    /// Carries out what is due at `device_now`: intents sent without an answer for
    /// `ANSWER_TIMEOUT_MS` join the resend; a due round resends, in outbox order, every
    /// intent that waits for it and subscribes again where a transient error may have
    /// dropped a subscription. Calling it early or often is harmless.
    pub fn tick(&mut self, device_now: i64) {
        self.presence_due(device_now);
        self.delivered_due(device_now);
        if !self.online {
            return;
        }
        let late: Vec<u64> = self
            .outbox
            .values()
            .filter(|e| !e.is_final() && !e.resend)
            .filter(|e| {
                e.sent_at
                    .is_some_and(|t| t.saturating_add(ANSWER_TIMEOUT_MS) <= device_now)
            })
            .map(|e| e.id)
            .collect();
        if !late.is_empty() {
            for id in late {
                self.mark_resend(id);
            }
            // They waited long enough already.
            self.retry_at = Some(self.retry_at.map_or(device_now, |t| t.min(device_now)));
        }
        if self.retry_at.is_some_and(|t| t <= device_now) {
            self.resend_round(device_now);
        }
    }

    /// Sends a new or rebased entry now, or holds it behind an earlier related entry that
    /// waits for a resend round (it would only come back `missing_dependency`).
    pub(super) fn dispatch(&mut self, id: u64, device_now: i64) {
        if self.waits_behind(id, |e| e.resend) {
            if let Some(entry) = self.outbox.get_mut(&id) {
                entry.resend = true;
                entry.sent_at = None;
            }
            self.schedule_round(device_now, None);
        } else {
            self.send_entry(id, device_now);
        }
    }

    /// An earlier entry, neither accepted nor rejected, with unacked changes related to a
    /// document `id` writes, and matching `filter`.
    fn waits_behind(&self, id: u64, filter: impl Fn(&super::engine::OutboxEntry) -> bool) -> bool {
        let Some(entry) = self.outbox.get(&id) else {
            return false;
        };
        let docs: Vec<&str> = entry.changes.iter().map(|c| c.doc.as_str()).collect();
        self.outbox.range(..id).any(|(_, e)| {
            !e.is_final()
                && filter(e)
                && e.changes
                    .iter()
                    .any(|c| !c.acked && docs.iter().any(|d| related(&c.doc, d)))
        })
    }

    /// Marks entry `id` for the next round; `true` unless it is settled.
    fn mark_resend(&mut self, id: u64) -> bool {
        let Some(entry) = self.outbox.get_mut(&id) else {
            return false;
        };
        if entry.is_final() {
            return false;
        }
        entry.resend = true;
        entry.sent_at = None;
        if entry.status == IntentStatus::Sent {
            entry.status = IntentStatus::Retrying;
            self.out.push(Output::Event(Event::Intent {
                id,
                status: IntentStatus::Retrying,
            }));
        }
        true
    }

    /// Sets the next round: after `retry_after_ms` when the server gave one (its latest word
    /// wins over any backoff), otherwise after the backoff unless a round is already set.
    fn schedule_round(&mut self, device_now: i64, retry_after_ms: Option<u64>) {
        match retry_after_ms {
            Some(ms) => {
                let wait = i64::try_from(ms.min(RETRY_AFTER_CAP_MS)).unwrap_or(RETRY_MAX_MS);
                self.retry_at = Some(device_now.saturating_add(wait));
            }
            None => {
                if self.retry_at.is_none() {
                    self.retry_at = Some(device_now.saturating_add(self.backoff()));
                }
            }
        }
    }

    /// `RETRY_MIN_MS` doubling per round without an ack, capped at `RETRY_MAX_MS`, less up
    /// to a quarter of deterministic jitter (from this device's actor and the round) so that
    /// clients failed by one outage do not come back in step. No clock, no randomness.
    pub(super) fn backoff(&self) -> i64 {
        let exp = self.retry_attempt.min(16);
        let base = RETRY_MIN_MS.saturating_mul(1 << exp).min(RETRY_MAX_MS);
        let seed = self
            .config
            .actor
            .to_bytes()
            .iter()
            .fold(u64::from(exp).wrapping_add(0x9e37_79b9), |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
            });
        let per_mille = i64::try_from(seed % 1000).unwrap_or(0);
        base - base / 4 * per_mille / 1000
    }

    /// An ack arrived (the server stores again): intents still waiting go out now.
    pub(super) fn on_progress(&mut self, device_now: i64) {
        if self.outbox.values().any(|e| e.resend && !e.is_final()) {
            self.retry_at = Some(self.retry_at.map_or(device_now, |t| t.min(device_now)));
        }
    }

    /// A retryable `error` frame (`internal`, `unavailable`, `rate_limited`, ...).
    pub(super) fn on_transient(
        &mut self,
        doc: Option<&str>,
        hash: Option<&[u8]>,
        retry_after_ms: Option<u64>,
        device_now: i64,
    ) {
        let mut marked = false;
        match (doc, hash) {
            // One change could not be stored: it alone (its dependents come back on their
            // own, `missing_dependency`, and wait for it).
            (Some(doc), Some(hash)) => {
                if let Some((id, _)) = self.find(doc, hash) {
                    marked |= self.mark_resend(id);
                }
            }
            // A submit or a subscription of `doc` failed: everything of it still unanswered.
            (Some(doc), None) => {
                if let Ok(id) = DocId::parse(doc) {
                    marked |= self.resubscribe_if_catching_up(&id);
                }
                for id in self.unanswered(|d| d == doc) {
                    marked |= self.mark_resend(id);
                }
            }
            // A frame was ignored (`rate_limited`) and we cannot tell which: every submit and
            // subscription still unanswered may have been it.
            (None, _) => {
                let catching_up: Vec<DocId> = self
                    .docs
                    .iter()
                    .filter(|(_, d)| d.catching_up)
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in &catching_up {
                    marked |= self.resubscribe_if_catching_up(id);
                }
                for id in self.unanswered(|_| true) {
                    marked |= self.mark_resend(id);
                }
                // The membership list may have been it, or failed itself.
                marked |= self.feed_failed();
            }
        }
        if marked {
            self.schedule_round(device_now, retry_after_ms);
        }
    }

    fn resubscribe_if_catching_up(&mut self, id: &DocId) -> bool {
        if self.docs.get(id).is_some_and(|d| d.catching_up) {
            self.resubscribe.insert(id.clone());
            return true;
        }
        false
    }

    /// Entries sent and not settled, with an unacked change to a document `doc` accepts.
    fn unanswered(&self, doc: impl Fn(&str) -> bool) -> Vec<u64> {
        self.outbox
            .values()
            .filter(|e| !e.is_final() && e.sent_at.is_some())
            .filter(|e| e.changes.iter().any(|c| !c.acked && doc(&c.doc)))
            .map(|e| e.id)
            .collect()
    }

    /// A `reject` frame. It is final unless it is transient, or an earlier intent of this
    /// device related to it (the same document, or the same conversation) is neither
    /// accepted nor rejected: then the rejection may be about that one (`missing_dependency`
    /// when its change was not stored; `not_member` when the conversation's creation was
    /// not), so the intent is resent after it and gets its own verdict.
    pub(super) fn on_reject_frame(
        &mut self,
        doc: &str,
        hash: &[u8],
        code: String,
        reason: String,
        device_now: i64,
    ) {
        let Some((id, _)) = self.find(doc, hash) else {
            return; // a change we already replaced: its rejection is expected
        };
        if self.outbox.get(&id).is_none_or(|e| e.is_final()) {
            return; // an answer to a duplicate send
        }
        if is_transient(&code) {
            return self.on_transient(Some(doc), Some(hash), None, device_now);
        }
        if self.waits_behind(id, |_| true) {
            // Its predecessors go out again with it, first (one may have been lost).
            let before: Vec<u64> = self
                .outbox
                .range(..id)
                .filter(|(_, e)| e.sent_at.is_some())
                .map(|(i, _)| *i)
                .collect();
            for earlier in before {
                if self.is_related(earlier, id) {
                    self.mark_resend(earlier);
                }
            }
            self.mark_resend(id);
            self.schedule_round(device_now, None);
            return;
        }
        self.on_reject(doc, hash, code, reason, device_now);
        // A verdict is progress too: what waited behind the rejected intent goes out now.
        self.retry_attempt = 0;
        self.on_progress(device_now);
    }

    /// Keeps "an intent waits for a round, so a round is set" true whatever path got here.
    pub(super) fn ensure_round(&mut self, device_now: i64) {
        if self.online
            && self.retry_at.is_none()
            && self.outbox.values().any(|e| e.resend && !e.is_final())
        {
            self.schedule_round(device_now, None);
        }
    }

    /// `a` has an unacked change related to one of `b`'s documents.
    fn is_related(&self, a: u64, b: u64) -> bool {
        let (Some(a), Some(b)) = (self.outbox.get(&a), self.outbox.get(&b)) else {
            return false;
        };
        a.changes
            .iter()
            .any(|c| !c.acked && b.changes.iter().any(|d| related(&c.doc, &d.doc)))
    }

    /// Resends every entry that waits for a round, in outbox order ([`Self::send_packed`]:
    /// a long outbox costs a few frames, not one per intent).
    ///
    /// While the server keeps failing (no ack since the last round) a round is a probe: only
    /// the first waiting intent of each conversation goes out, so a long outage costs the
    /// server one change per conversation per round instead of the whole backlog. The probe's
    /// ack brings the next round forward, and that one sends everything.
    fn resend_round(&mut self, device_now: i64) {
        self.retry_at = None;
        let probe = self.retry_attempt > 0;
        self.retry_attempt = self.retry_attempt.saturating_add(1).min(16);
        let mut due: Vec<u64> = Vec::new();
        let mut probed: Vec<&str> = Vec::new();
        for e in self.outbox.values().filter(|e| e.resend && !e.is_final()) {
            if probe {
                let docs = e
                    .changes
                    .iter()
                    .filter(|c| !c.acked)
                    .map(|c| c.doc.as_str());
                let docs: Vec<&str> = docs.collect();
                if docs.iter().any(|d| probed.iter().any(|p| related(p, d))) {
                    continue;
                }
                probed.extend(docs);
            }
            due.push(e.id);
        }
        self.send_packed(due, device_now);
        self.feed_round();
        for id in std::mem::take(&mut self.resubscribe) {
            if self.docs.get(&id).is_some_and(|d| d.catching_up) {
                self.subscribe(&id);
            }
        }
    }

    /// Sends the unacked changes of `ids`, in that order, marked sent at `device_now`. A
    /// document's changes in consecutive entries share a submit, within the server's
    /// `max_changes` and half its `max_frame` (room for the CBOR around them).
    pub(super) fn send_packed(&mut self, ids: Vec<u64>, device_now: i64) {
        let byte_budget = self.max_frame / 2;
        let mut frames: Vec<(String, Vec<ByteBuf>, usize)> = Vec::new();
        for id in ids {
            let Some(entry) = self.outbox.get_mut(&id).filter(|e| !e.is_final()) else {
                continue;
            };
            entry.resend = false;
            entry.sent_at = Some(device_now);
            if entry.status == IntentStatus::Pending {
                entry.status = IntentStatus::Sent;
            }
            for change in entry.changes.iter().filter(|c| !c.acked) {
                let size = change.bytes.len();
                match frames.last_mut() {
                    Some((doc, changes, bytes))
                        if *doc == change.doc
                            && changes.len() < self.max_changes
                            && *bytes + size <= byte_budget =>
                    {
                        changes.push(change.bytes.clone());
                        *bytes += size;
                    }
                    _ => frames.push((change.doc.clone(), vec![change.bytes.clone()], size)),
                }
            }
        }
        for (doc, changes, _) in frames {
            self.out
                .push(Output::Send(ClientFrame::Submit { doc, changes }));
        }
    }
}
