//! The fate of a sent intent when the server cannot answer it yet: transient errors,
//! rejections caused by this device's own unaccepted intents, frames that get no answer.
//! Such intents are resent in outbox order with backoff (`tick` at `next_wakeup`), never
//! reported rejected; only a rejection about the intent itself is final.
//!
//! A state machine of its own (`Retry`: the next round, the backoff, the subscriptions to
//! ask again, the server's frame limits). It works on the outbox the engine owns and hands
//! it (a method argument); what to send, which intents now retry and when a round runs
//! come back as `RetryOut`, which the engine routes.
//!
//! Resending is safe: the server acks an already-accepted change with its original seq.

use std::collections::{BTreeMap, BTreeSet};

use automerge::ActorId;
use serde_bytes::ByteBuf;

use super::outbox::{find, related, IntentStatus, Outbox, OutboxEntry};
use crate::ids::DocId;
use crate::protocol::{ClientFrame, ErrorCode};

/// First delay before resending after a transient failure (without `retry_after_ms`).
pub const RETRY_MIN_MS: i64 = 250;
/// The backoff doubles per resend round without progress up to this.
pub const RETRY_MAX_MS: i64 = 30_000;
/// A sent change with no answer this long while connected is resent (resending is idempotent).
pub const ANSWER_TIMEOUT_MS: i64 = 30_000;
/// The longest `retry_after_ms` honoured (a guard against absurd values).
const RETRY_AFTER_CAP_MS: u64 = 600_000;

/// What retrying asks of the engine, in order.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum RetryOut {
    Send(ClientFrame),
    /// Intent `id` waits for a resend round now (`Event::Intent` with `Retrying`).
    Retrying(u64),
    /// A resend round ran: the membership list goes again if it failed, and `resubscribe`
    /// (subscriptions a transient error may have dropped) are asked again where still
    /// catching up.
    Round {
        resubscribe: Vec<DocId>,
    },
}

/// What a `reject` frame is, for the engine.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Rejected {
    /// No unsettled intent of this device wrote it (replaced already, or a duplicate's
    /// answer).
    Ignored,
    /// "Not now" rather than "no": handled as a transient error of that change.
    Transient,
    /// It may be about an earlier related intent still unsettled: resent after it.
    Resent(Vec<RetryOut>),
    /// About the intent itself: final (the engine rejects and rebases, then `settled`).
    Final,
}

/// A code that says "not now" rather than "no": the request is neither accepted nor refused.
pub(super) fn is_transient(code: &str) -> bool {
    ErrorCode::parse(code).is_some_and(ErrorCode::is_retryable)
}

/// Resend rounds and their backoff.
#[derive(Debug)]
pub(super) struct Retry {
    /// Device time of the next resend round (some entry has `resend` set, or a document
    /// waits to be subscribed again).
    at: Option<i64>,
    /// Resend rounds since the last ack: the backoff's exponent.
    attempt: u32,
    /// Subscriptions a transient error may have dropped: sent again with the next round.
    resubscribe: BTreeSet<DocId>,
    /// The server's limits from `welcome` (a resend round batches a document's changes).
    max_changes: usize,
    max_frame: usize,
    /// This device's actor: the backoff's jitter.
    actor: ActorId,
}

impl Retry {
    pub(super) fn new(actor: ActorId) -> Self {
        Retry {
            at: None,
            attempt: 0,
            resubscribe: BTreeSet::new(),
            max_changes: 100,
            max_frame: 1 << 20,
            actor,
        }
    }

    /// The server's limits, from its `welcome`.
    pub(super) fn limits(&mut self, max_changes: u32, max_frame: u32) {
        self.max_changes = usize::try_from(max_changes).unwrap_or(usize::MAX).max(1);
        self.max_frame = usize::try_from(max_frame).unwrap_or(usize::MAX);
    }

    /// When a round or an answer's timeout is due while connected (device ms).
    pub(super) fn wakeup(&self, outbox: &Outbox) -> Option<i64> {
        let unanswered = outbox
            .values()
            .filter(|e| !e.is_final() && !e.resend)
            .filter_map(|e| e.sent_at)
            .min()
            .map(|t| t.saturating_add(ANSWER_TIMEOUT_MS));
        [self.at, unanswered].into_iter().flatten().min()
    }

    /// What is due at `device_now` while connected: intents sent without an answer for
    /// `ANSWER_TIMEOUT_MS` join the resend; a due round resends, in outbox order, every
    /// intent that waits for it. Calling it early or often is harmless.
    pub(super) fn tick(&mut self, outbox: &mut Outbox, device_now: i64) -> Vec<RetryOut> {
        let mut out = Vec::new();
        let late: Vec<u64> = outbox
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
                mark_resend(outbox, id, &mut out);
            }
            // They waited long enough already.
            self.at = Some(self.at.map_or(device_now, |t| t.min(device_now)));
        }
        if self.at.is_some_and(|t| t <= device_now) {
            self.round(outbox, device_now, &mut out);
        }
        out
    }

    /// Connected: everything unanswered goes out again in order, packed into few frames (a
    /// phone back after days offline sends its outbox in a handful of submits); no round is
    /// due any more.
    pub(super) fn connected(&mut self, outbox: &mut Outbox, device_now: i64) -> Vec<RetryOut> {
        self.at = None;
        self.resubscribe.clear();
        let ids: Vec<u64> = outbox.keys().copied().collect();
        self.send_packed(outbox, ids, device_now)
    }

    /// Disconnected: nothing is in flight, no round waits.
    pub(super) fn disconnected(&mut self, outbox: &mut Outbox) {
        for entry in outbox.values_mut() {
            if matches!(entry.status, IntentStatus::Sent | IntentStatus::Retrying) {
                entry.status = IntentStatus::Pending;
            }
            entry.resend = false;
            entry.sent_at = None;
        }
        self.at = None;
        self.resubscribe.clear();
    }

    /// `doc` is no longer held: no subscription of it is asked again.
    pub(super) fn forget(&mut self, doc: &DocId) {
        self.resubscribe.remove(doc);
    }

    /// Sends a new or rebased entry now, or holds it behind an earlier related entry that
    /// waits for a resend round (it would only come back `missing_dependency`).
    pub(super) fn dispatch(
        &mut self,
        outbox: &mut Outbox,
        id: u64,
        device_now: i64,
    ) -> Vec<RetryOut> {
        if waits_behind(outbox, id, |e| e.resend) {
            if let Some(entry) = outbox.get_mut(&id) {
                entry.resend = true;
                entry.sent_at = None;
            }
            self.schedule(device_now, None);
            return Vec::new();
        }
        send_entry(outbox, id, device_now)
    }

    /// An ack arrived: the next transient failure starts the backoff afresh.
    pub(super) fn acked(&mut self) {
        self.attempt = 0;
    }

    /// The server stores again: intents still waiting go out now.
    pub(super) fn progress(&mut self, outbox: &Outbox, device_now: i64) {
        if outbox.values().any(|e| e.resend && !e.is_final()) {
            self.at = Some(self.at.map_or(device_now, |t| t.min(device_now)));
        }
    }

    /// A final verdict came: it is progress too, so what waited behind the rejected intent
    /// goes out now.
    pub(super) fn settled(&mut self, outbox: &Outbox, device_now: i64) {
        self.attempt = 0;
        self.progress(outbox, device_now);
    }

    /// A retryable `error` frame (`internal`, `unavailable`, `rate_limited`, ...) about
    /// `doc` (one change of it with `hash`, or every submit still unanswered without `doc`);
    /// `catching_up`: the subscriptions it may have dropped. Returns whether anything waits
    /// for a round now (the engine then calls `schedule`).
    pub(super) fn transient(
        &mut self,
        outbox: &mut Outbox,
        doc: Option<&str>,
        hash: Option<&[u8]>,
        catching_up: Vec<DocId>,
    ) -> (bool, Vec<RetryOut>) {
        let mut out = Vec::new();
        let mut marked = !catching_up.is_empty();
        self.resubscribe.extend(catching_up);
        match (doc, hash) {
            // One change could not be stored: it alone (its dependents come back on their
            // own, `missing_dependency`, and wait for it).
            (Some(doc), Some(hash)) => {
                if let Some((id, _)) = find(outbox, doc, hash) {
                    marked |= mark_resend(outbox, id, &mut out);
                }
            }
            // A submit or a subscription of `doc` failed: everything of it still unanswered.
            (Some(doc), None) => {
                for id in unanswered(outbox, |d| d == doc) {
                    marked |= mark_resend(outbox, id, &mut out);
                }
            }
            // A frame was ignored (`rate_limited`) and we cannot tell which: every submit
            // still unanswered may have been it.
            (None, _) => {
                for id in unanswered(outbox, |_| true) {
                    marked |= mark_resend(outbox, id, &mut out);
                }
            }
        }
        (marked, out)
    }

    /// A `reject` frame of change `hash` to `doc`. It is final unless it is transient, or an
    /// earlier intent of this device related to it (the same document, or the same
    /// conversation) is neither accepted nor rejected: then the rejection may be about that
    /// one (`missing_dependency` when its change was not stored; `not_member` when the
    /// conversation's creation was not), so the intent is resent after it and gets its own
    /// verdict.
    pub(super) fn rejected(
        &mut self,
        outbox: &mut Outbox,
        doc: &str,
        hash: &[u8],
        code: &str,
        device_now: i64,
    ) -> Rejected {
        let Some((id, _)) = find(outbox, doc, hash) else {
            return Rejected::Ignored; // a change we already replaced: its rejection is expected
        };
        if outbox.get(&id).is_none_or(|e| e.is_final()) {
            return Rejected::Ignored; // an answer to a duplicate send
        }
        if is_transient(code) {
            return Rejected::Transient;
        }
        if !waits_behind(outbox, id, |_| true) {
            return Rejected::Final;
        }
        // Its predecessors go out again with it, first (one may have been lost).
        let mut out = Vec::new();
        let before: Vec<u64> = outbox
            .range(..id)
            .filter(|(_, e)| e.sent_at.is_some())
            .map(|(i, _)| *i)
            .collect();
        for earlier in before {
            if is_related(outbox, earlier, id) {
                mark_resend(outbox, earlier, &mut out);
            }
        }
        mark_resend(outbox, id, &mut out);
        self.schedule(device_now, None);
        Rejected::Resent(out)
    }

    /// Sets the next round: after `retry_after_ms` when the server gave one (its latest word
    /// wins over any backoff), otherwise after the backoff unless a round is already set.
    pub(super) fn schedule(&mut self, device_now: i64, retry_after_ms: Option<u64>) {
        match retry_after_ms {
            Some(ms) => {
                let wait = i64::try_from(ms.min(RETRY_AFTER_CAP_MS)).unwrap_or(RETRY_MAX_MS);
                self.at = Some(device_now.saturating_add(wait));
            }
            None => {
                if self.at.is_none() {
                    self.at = Some(device_now.saturating_add(self.backoff()));
                }
            }
        }
    }

    /// Keeps "an intent waits for a round, so a round is set" true whatever path got here.
    pub(super) fn ensure_round(&mut self, outbox: &Outbox, online: bool, device_now: i64) {
        if online && self.at.is_none() && outbox.values().any(|e| e.resend && !e.is_final()) {
            self.schedule(device_now, None);
        }
    }

    /// `RETRY_MIN_MS` doubling per round without an ack, capped at `RETRY_MAX_MS`, less up
    /// to a quarter of deterministic jitter (from this device's actor and the round) so that
    /// clients failed by one outage do not come back in step. No clock, no randomness.
    fn backoff(&self) -> i64 {
        let exp = self.attempt.min(16);
        let base = RETRY_MIN_MS.saturating_mul(1 << exp).min(RETRY_MAX_MS);
        let seed = self
            .actor
            .to_bytes()
            .iter()
            .fold(u64::from(exp).wrapping_add(0x9e37_79b9), |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
            });
        let per_mille = i64::try_from(seed % 1000).unwrap_or(0);
        base - base / 4 * per_mille / 1000
    }

    /// Resends every entry that waits for a round, in outbox order ([`Self::send_packed`]:
    /// a long outbox costs a few frames, not one per intent).
    ///
    /// While the server keeps failing (no ack since the last round) a round is a probe: only
    /// the first waiting intent of each conversation goes out, so a long outage costs the
    /// server one change per conversation per round instead of the whole backlog. The probe's
    /// ack brings the next round forward, and that one sends everything.
    fn round(&mut self, outbox: &mut Outbox, device_now: i64, out: &mut Vec<RetryOut>) {
        self.at = None;
        let probe = self.attempt > 0;
        self.attempt = self.attempt.saturating_add(1).min(16);
        let mut due: Vec<u64> = Vec::new();
        let mut probed: Vec<&str> = Vec::new();
        for e in outbox.values().filter(|e| e.resend && !e.is_final()) {
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
        out.extend(self.send_packed(outbox, due, device_now));
        out.push(RetryOut::Round {
            resubscribe: std::mem::take(&mut self.resubscribe).into_iter().collect(),
        });
    }

    /// Sends the unacked changes of `ids`, in that order, marked sent at `device_now`. A
    /// document's changes in consecutive entries share a submit, within the server's
    /// `max_changes` and half its `max_frame` (room for the CBOR around them).
    fn send_packed(&self, outbox: &mut Outbox, ids: Vec<u64>, device_now: i64) -> Vec<RetryOut> {
        let byte_budget = self.max_frame / 2;
        let mut frames: Vec<(String, Vec<ByteBuf>, usize)> = Vec::new();
        for id in ids {
            let Some(entry) = outbox.get_mut(&id).filter(|e| !e.is_final()) else {
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
        frames
            .into_iter()
            .map(|(doc, changes, _)| RetryOut::Send(ClientFrame::Submit { doc, changes }))
            .collect()
    }
}

/// Sends the entry's unacked changes, one submit per document.
fn send_entry(outbox: &mut Outbox, id: u64, device_now: i64) -> Vec<RetryOut> {
    let Some(entry) = outbox.get_mut(&id) else {
        return Vec::new();
    };
    if entry.is_final() {
        return Vec::new();
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
    by_doc
        .into_iter()
        .map(|(doc, changes)| RetryOut::Send(ClientFrame::Submit { doc, changes }))
        .collect()
}

/// An earlier entry, neither accepted nor rejected, with unacked changes related to a
/// document `id` writes, and matching `filter`.
fn waits_behind(outbox: &Outbox, id: u64, filter: impl Fn(&OutboxEntry) -> bool) -> bool {
    let Some(entry) = outbox.get(&id) else {
        return false;
    };
    let docs: Vec<&str> = entry.changes.iter().map(|c| c.doc.as_str()).collect();
    outbox.range(..id).any(|(_, e)| {
        !e.is_final()
            && filter(e)
            && e.changes
                .iter()
                .any(|c| !c.acked && docs.iter().any(|d| related(&c.doc, d)))
    })
}

/// Marks entry `id` for the next round; `true` unless it is settled.
fn mark_resend(outbox: &mut Outbox, id: u64, out: &mut Vec<RetryOut>) -> bool {
    let Some(entry) = outbox.get_mut(&id) else {
        return false;
    };
    if entry.is_final() {
        return false;
    }
    entry.resend = true;
    entry.sent_at = None;
    if entry.status == IntentStatus::Sent {
        entry.status = IntentStatus::Retrying;
        out.push(RetryOut::Retrying(id));
    }
    true
}

/// Entries sent and not settled, with an unacked change to a document `doc` accepts.
fn unanswered(outbox: &Outbox, doc: impl Fn(&str) -> bool) -> Vec<u64> {
    outbox
        .values()
        .filter(|e| !e.is_final() && e.sent_at.is_some())
        .filter(|e| e.changes.iter().any(|c| !c.acked && doc(&c.doc)))
        .map(|e| e.id)
        .collect()
}

/// `a` has an unacked change related to one of `b`'s documents.
fn is_related(outbox: &Outbox, a: u64, b: u64) -> bool {
    let (Some(a), Some(b)) = (outbox.get(&a), outbox.get(&b)) else {
        return false;
    };
    a.changes
        .iter()
        .any(|c| !c.acked && b.changes.iter().any(|d| related(&c.doc, &d.doc)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::intent::Intent;
    use super::super::outbox::PendingChange;
    use super::*;
    use crate::ids::ConvId;

    fn entry(id: u64, doc: &str) -> OutboxEntry {
        OutboxEntry {
            id,
            intent: Intent::Leave {
                conv: ConvId::new("c1").unwrap(),
            },
            created_at: 0,
            status: IntentStatus::Pending,
            changes: vec![PendingChange {
                doc: doc.into(),
                hash: ByteBuf::from(vec![id as u8]),
                bytes: ByteBuf::from(vec![id as u8; 4]),
                acked: false,
            }],
            resend: false,
            sent_at: None,
        }
    }

    #[test]
    fn an_unanswered_intent_is_resent_after_the_timeout_and_backs_off() {
        let mut outbox: Outbox = [(1, entry(1, "t/conv/c1"))].into_iter().collect();
        let mut retry = Retry::new(ActorId::from(vec![7u8; 16]));
        assert_eq!(retry.dispatch(&mut outbox, 1, 0).len(), 1);
        assert_eq!(outbox[&1].status, IntentStatus::Sent);
        assert_eq!(retry.wakeup(&outbox), Some(ANSWER_TIMEOUT_MS));
        assert!(retry.tick(&mut outbox, ANSWER_TIMEOUT_MS - 1).is_empty());
        let out = retry.tick(&mut outbox, ANSWER_TIMEOUT_MS);
        assert_eq!(out[0], RetryOut::Retrying(1));
        assert!(matches!(out[1], RetryOut::Send(ClientFrame::Submit { .. })));
        assert_eq!(
            out[2],
            RetryOut::Round {
                resubscribe: Vec::new()
            }
        );
        // A transient error: the next round waits for the backoff (jitter: up to a quarter).
        let (marked, _) = retry.transient(&mut outbox, None, None, Vec::new());
        assert!(marked);
        retry.schedule(100_000, None);
        let at = retry.wakeup(&outbox).unwrap();
        assert!((100_000 + RETRY_MIN_MS * 2 * 3 / 4..=100_000 + RETRY_MIN_MS * 2).contains(&at));
    }

    #[test]
    fn a_rejection_behind_an_unsettled_related_intent_is_resent_after_it() {
        let mut outbox: Outbox = [(1, entry(1, "t/conv/c1")), (2, entry(2, "t/conv/c1"))]
            .into_iter()
            .collect();
        let mut retry = Retry::new(ActorId::from(vec![7u8; 16]));
        retry.connected(&mut outbox, 0);
        let code = "missing_dependency";
        let resent = retry.rejected(&mut outbox, "t/conv/c1", &[2], code, 5);
        assert_eq!(
            resent,
            Rejected::Resent(vec![RetryOut::Retrying(1), RetryOut::Retrying(2)])
        );
        assert_eq!(
            retry.rejected(&mut outbox, "t/conv/c1", &[9], code, 5),
            Rejected::Ignored
        );
        assert_eq!(
            retry.rejected(&mut outbox, "t/conv/c1", &[1], code, 5),
            Rejected::Final
        );
    }
}
