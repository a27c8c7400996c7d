//! A unit's commit pipeline: while one batch is being committed the unit validates the
//! next on top of it. Batches finish in order; acks and pushes go out only after their
//! commit, and a failed commit fails every later batch built on it (the epoch flag).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use confab_core::ids::{AccountId, DocId};
use confab_core::model::conversation::MemberStatus;
use confab_core::policy::{DenyCode, Effect};
use confab_core::protocol::{encode_server, ErrorCode, SeqChange, ServerFrame};
use confab_core::validate::RejectCode;
use serde_bytes::ByteBuf;
use tokio::sync::{mpsc, oneshot};

use super::{lost_slot, Pending, Slot, Unit, Waiter};
use crate::engine::committer::{CommitError, CommitRequest, CommitResult};
use crate::engine::{Control, SubmitOutcome};
use crate::net::frame::binary_frame;
use crate::net::outlet::Refused;
use crate::store::NewChange;

/// Batches validated ahead of the oldest uncommitted one.
pub(super) const MAX_IN_FLIGHT: usize = 8;

/// The changes and answers of one batch, as validation builds it.
#[derive(Default)]
pub(super) struct Batch {
    pub pending: Vec<Pending>,
    pub waiting: Vec<Waiter>,
    /// When the unit took up the batch's first job (the `validate` stage starts).
    pub opened: Option<Instant>,
}

/// A batch handed to the committer.
pub(super) struct InFlight {
    batch: Batch,
    done: oneshot::Receiver<CommitResult>,
    epoch: Arc<AtomicBool>,
}

/// Waits for the oldest batch's commit; pending forever when nothing is in flight.
pub(super) async fn oldest_done(in_flight: &mut VecDeque<InFlight>) -> CommitResult {
    match in_flight.front_mut() {
        Some(flight) => (&mut flight.done)
            .await
            .unwrap_or_else(|_| Err("committer stopped".into())),
        None => std::future::pending().await,
    }
}

impl Unit {
    /// Hands the current batch to the committer and starts a new one. The batch's bucket
    /// changes may still be staged: the commit needs only their bytes.
    pub(super) async fn start_commit(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        if batch.pending.is_empty() && batch.waiting.is_empty() {
            return;
        }
        let (reply, done) = oneshot::channel();
        let epoch = self.epoch.clone();
        let now = Instant::now();
        if let Some(opened) = batch.opened {
            let validated = now.saturating_duration_since(opened);
            let stages = &self.engine.inner.metrics.stages;
            stages.validate.observe(validated.as_secs_f64());
        }
        if batch.pending.is_empty() {
            // Only rejections: answered in order behind the batches still committing.
            let _ = reply.send(Ok(now));
        } else {
            self.hint_lapses(&batch.pending).await;
            let changes: Vec<NewChange> = batch.pending.iter().map(|p| p.change.clone()).collect();
            let request = CommitRequest {
                changes,
                reply,
                sent: now,
                poisoned: epoch.clone(),
            };
            if let Err(mpsc::error::SendError(request)) =
                self.engine.inner.committer.send(request).await
            {
                let _ = request.reply.send(Err("committer stopped".into()));
            }
        }
        self.in_flight.push_back(InFlight { batch, done, epoch });
    }

    /// Marks the conversations whose accepted changes grant something for a while as due at
    /// its lapse (`engine::lapses`), before the commit is sent: an acked grant has its hint.
    /// If storage refuses the mark it most likely refuses the commit too; if not, readers
    /// still take the grant at their own time, and only the push at the lapse is missed.
    async fn hint_lapses(&self, pending: &[Pending]) {
        let changes = pending
            .iter()
            .map(|p| (&p.change.doc, &p.effects[..], p.change.accepted_at));
        for (doc, at) in crate::engine::lapses::hints(changes) {
            if let Err(error) = self.engine.store().hint_scheduled(&doc, at).await {
                tracing::warn!(%doc, %error, "a temporary role's lapse was not scheduled");
            }
        }
    }

    /// Commits the current batch and waits until every batch is answered: reads and
    /// subscriptions see all earlier submits as committed.
    /// Changes that lost their commit to another node are validated again here, and
    /// committed, before this returns.
    pub(super) async fn settle(&mut self) {
        loop {
            self.start_commit().await;
            while !self.in_flight.is_empty() {
                let result = oldest_done(&mut self.in_flight).await;
                self.finish_oldest(result);
            }
            if self.retries.is_empty() {
                return;
            }
            self.retry().await;
        }
    }

    /// Answers the oldest in-flight batch with its commit's result.
    pub(super) fn finish_oldest(&mut self, result: CommitResult) {
        let Some(flight) = self.in_flight.pop_front() else {
            return;
        };
        let Batch {
            pending, waiting, ..
        } = flight.batch;
        // Committed, and no earlier batch of its epoch was lost: everything accepted before
        // it is durable too (what a `Slot::Durable` waits for).
        let durable = result.is_ok() && !flight.epoch.load(Ordering::SeqCst);
        let outcomes: Vec<SubmitOutcome> = match result {
            Ok(durable) => {
                let metrics = &self.engine.inner.metrics;
                let answered = durable.elapsed().as_secs_f64();
                metrics.stages.answer.observe(answered);
                self.engine
                    .inner
                    .metrics
                    .changes_accepted
                    .inc_by(pending.len() as u64);
                for p in &pending {
                    self.acceptor.committed(&p.change.doc, p.change.seq);
                    let change = (p.change.seq, &p.change.bytes[..]);
                    self.remember(&p.change.doc, [change]);
                }
                self.publish(&pending);
                pending
                    .iter()
                    .map(|p| SubmitOutcome::Ack {
                        hash: p.change.hash,
                        seq: p.change.seq,
                    })
                    .collect()
            }
            Err(error) if error.conflict && Arc::ptr_eq(&flight.epoch, &self.epoch) => {
                // Another node committed first. Later batches of this epoch were built on
                // this one: the committer refuses them and they come back here too. Forget
                // what was accepted since the last commit, catch up from the log and
                // validate all of them again, in order, before anything newer.
                self.engine.inner.metrics.cluster.commit_conflicts.inc();
                self.contended_until = Some(Instant::now() + super::CONTENDED_FOR);
                tracing::debug!(message = %error.message, "commit conflict; validating again");
                self.epoch.store(true, Ordering::SeqCst);
                self.lost_epoch = Some(self.epoch.clone());
                self.epoch = Arc::new(AtomicBool::new(false));
                self.acceptor.rewind();
                self.count_loaded();
                self.keep_for_retry(pending, waiting);
                return;
            }
            Err(_)
                if self
                    .lost_epoch
                    .as_ref()
                    .is_some_and(|lost| Arc::ptr_eq(lost, &flight.epoch)) =>
            {
                self.keep_for_retry(pending, waiting);
                return;
            }
            Err(CommitError { code, message, .. }) => {
                // Memory may hold what storage lost. Later batches of the same epoch were
                // built on this one: the committer refuses them, and they find the unit
                // already reset.
                if Arc::ptr_eq(&flight.epoch, &self.epoch) {
                    self.epoch.store(true, Ordering::SeqCst);
                    self.epoch = Arc::new(AtomicBool::new(false));
                    if code == ErrorCode::Unavailable {
                        // The storage is down: keep what was committed before this batch
                        // (its own changes and the later batches' are taken back) to serve
                        // reads from memory until it returns (`unsure`).
                        tracing::warn!(%message, "commit failed in an outage; memory rewound");
                        self.acceptor.rewind();
                        self.unsure = true;
                        self.count_loaded();
                    } else {
                        tracing::error!(%message, "commit failed; reloading from storage");
                        self.reset();
                    }
                }
                pending
                    .iter()
                    .map(|p| {
                        // A batch refused because an earlier one failed in an outage is
                        // the outage's too.
                        self.engine.outage_outcome(SubmitOutcome::Failed {
                            code,
                            retry_after_ms: self.engine.retry_after_ms(code),
                            hash: Some(p.change.hash),
                            message: message.clone(),
                        })
                    })
                    .collect()
            }
        };
        let engine = self.engine.clone();
        let resolve = |slot: Slot| match slot {
            Slot::Done(o) => engine.outage_outcome(o),
            Slot::Durable { hash, seq } if durable => SubmitOutcome::Ack { hash, seq },
            Slot::Durable { hash, .. } => engine.outage_outcome(SubmitOutcome::Failed {
                code: ErrorCode::Internal,
                retry_after_ms: None,
                hash: Some(hash),
                message: "an earlier batch of this conversation was not stored".into(),
            }),
            Slot::Pending(i) => outcomes.get(i).cloned().unwrap_or(SubmitOutcome::Failed {
                code: ErrorCode::Internal,
                retry_after_ms: None,
                hash: None,
                message: "lost in commit".into(),
            }),
            // Only a lost batch's answers hold these, and they go to `retry`, not here.
            Slot::Again { bytes, .. } => SubmitOutcome::Failed {
                code: ErrorCode::Internal,
                retry_after_ms: None,
                hash: confab_core::validate::parse_change(&bytes)
                    .ok()
                    .map(|c| c.hash().0),
                message: "not validated again".into(),
            },
        };
        for mut waiter in waiting {
            let slots = std::mem::take(&mut waiter.slots);
            waiter.send(slots.into_iter().map(resolve).collect());
        }
    }

    /// Keeps a lost batch's answers for validating its changes again (`remote::retry`):
    /// each change of the batch becomes `Slot::Again`; what was decided without a commit
    /// stays decided; a resubmission that waited for a lost batch is answered retryable.
    fn keep_for_retry(&mut self, pending: Vec<Pending>, waiting: Vec<Waiter>) {
        // The conversation document first: a batch refused for a moved policy is validated
        // again on the conversation as the other node left it.
        let conv_doc = match &self.key {
            crate::engine::UnitKey::Conv(tenant, conv) => Some(DocId::conv(tenant, conv)),
            crate::engine::UnitKey::Account(..) => None,
        };
        for doc in conv_doc.iter().chain(pending.iter().map(|p| &p.change.doc)) {
            if !self.stale.contains(doc) {
                self.stale.push(doc.clone());
            }
        }
        let mut pending: Vec<Option<Pending>> = pending.into_iter().map(Some).collect();
        for mut waiter in waiting {
            waiter.slots = std::mem::take(&mut waiter.slots)
                .into_iter()
                .map(|slot| match slot {
                    Slot::Pending(i) => match pending.get_mut(i).and_then(Option::take) {
                        Some(p) => Slot::Again {
                            doc: p.change.doc,
                            author: p.author,
                            bytes: p.change.bytes,
                        },
                        None => lost_slot(None),
                    },
                    Slot::Durable { hash, .. } => lost_slot(Some(hash)),
                    other => other,
                })
                .collect();
            waiter.attempts = waiter.attempts.saturating_add(1);
            self.retries.push(waiter);
        }
    }

    /// Pushes committed changes to subscribers and revokes lost read access.
    fn publish(&mut self, pending: &[Pending]) {
        let mut i = 0;
        while i < pending.len() {
            let doc = pending[i].change.doc.clone();
            let mut changes = Vec::new();
            while i < pending.len() && pending[i].change.doc == doc {
                changes.push(SeqChange {
                    seq: pending[i].change.seq,
                    change: ByteBuf::from(pending[i].change.bytes.clone()),
                });
                i += 1;
            }
            if changes.first().is_some_and(|c| c.seq == 1) {
                self.announce_bucket(&doc);
                self.part_opened(&doc);
            }
            if !self.deliver_in_order(&doc, &changes) {
                continue;
            }
            self.push(
                &doc,
                ServerFrame::Changes {
                    doc: doc.to_string(),
                    changes,
                },
                None,
            );
        }
        for p in pending {
            if let Some(actor) = &p.change.bind_actor {
                let tenant = p.change.doc.tenant();
                let bindings = &self.engine.inner.bindings;
                bindings.remember(tenant, actor, &p.change.account);
            }
            self.engine.memberships_committed(&p.change);
            self.engine.notify_committed(&p.change, &p.effects);
            for effect in &p.effects {
                if let Effect::UpdateMember { before, after, .. } = effect {
                    if before.is_active() && !after.is_active() {
                        self.revoke(&after.account, after.status);
                    }
                }
            }
        }
        // The threads below this conversation follow its members: they ask again.
        if let crate::engine::UnitKey::Conv(tenant, conv) = &self.key {
            if pending.iter().any(|p| p.change.moves_policy) {
                self.engine.parent_moved(tenant, conv);
            }
        }
    }

    /// Tells the conversation's subscribers that `doc`, a bucket part, got its first
    /// change: clients learn of a new part without asking (docs/FEATURES.md, "Bounded
    /// buckets").
    pub(super) fn announce_bucket(&mut self, doc: &DocId) {
        let confab_core::ids::DocTarget::Msgs(conv, bucket) = doc.target() else {
            return;
        };
        let conv_doc = DocId::conv(doc.tenant(), conv);
        let frame = ServerFrame::Bucket {
            doc: conv_doc.to_string(),
            bucket: *bucket,
        };
        self.push(&conv_doc, frame, None);
    }

    /// Writes `frame` into the socket of every subscriber of `doc` but `except`, framed
    /// once for all (one `send` each, made here: no connection task is woken).
    pub(super) fn push(&mut self, doc: &DocId, frame: ServerFrame, except: Option<u64>) {
        let Some(subs) = self.subscribers.get_mut(doc) else {
            return;
        };
        if subs.iter().all(|c| Some(c.id) == except) {
            return;
        }
        let framed = binary_frame(&encode_server(&frame));
        let mut sent = 0;
        subs.retain(|conn| {
            if Some(conn.id) == except {
                return true;
            }
            match conn.outlet.push(&framed) {
                Ok(()) => {
                    sent += 1;
                    true
                }
                Err(Refused::Lagging) => {
                    // A slow consumer is dropped, not waited for: it catches up on reconnect.
                    let _ = conn.control.try_send(Control::Lagged(doc.clone()));
                    false
                }
                Err(Refused::Closed) => false,
            }
        });
        self.engine.inner.metrics.frames_out(sent);
    }

    pub(super) fn revoke(&mut self, account: &AccountId, status: MemberStatus) {
        let reason = format!("{account} is {}", status.as_str());
        self.revoke_with(account, DenyCode::MemberInactive, reason);
    }

    /// Ends `account`'s subscriptions here, telling its connections why.
    pub(super) fn revoke_with(&mut self, account: &AccountId, code: DenyCode, reason: String) {
        for (doc, subs) in self.subscribers.iter_mut() {
            self.presence.gone(doc, account);
            subs.retain(|conn| {
                if conn.account != *account || conn.service {
                    return true;
                }
                let _ = conn.control.try_send(Control::Revoke {
                    doc: doc.clone(),
                    code: RejectCode::Policy(code),
                    reason: reason.clone(),
                });
                false
            });
        }
    }
}
