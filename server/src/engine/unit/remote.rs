//! What other nodes of a cluster commit to this unit's documents: read from the change log
//! after what the unit holds, taken into the acceptor and pushed to the subscribers here;
//! and this node's changes that lost their commit to another node, validated again on top
//! of what it committed.

use std::collections::HashSet;

use confab_core::accept::Tail;
use confab_core::ids::DocId;
use confab_core::protocol::{ErrorCode, SeqChange, ServerFrame};
use serde_bytes::ByteBuf;

use super::{Slot, Unit, Waiter, MAX_ATTEMPTS};
use crate::engine::cluster::Committed;
use crate::engine::{now_ms, Control, SubmitOutcome};

/// Changes one catch-up reads from the log at most.
const CATCH_UP_LIMIT: usize = 1024;

/// How long after its last local write a bucket keeps taking other nodes' changes in
/// memory rather than leaving it.
const WRITER_MEMORY: std::time::Duration = std::time::Duration::from_secs(10);

impl Unit {
    /// The seq pushed to `doc`'s subscribers, if it has any.
    fn serving(&self, doc: &DocId) -> Option<u64> {
        self.subscribers
            .get(doc)
            .filter(|subs| !subs.is_empty())
            .and(self.delivered.get(doc).copied())
    }

    /// Catches up on what the inbox says other nodes committed (or on everything the unit
    /// holds or serves, after the listener lost notifications).
    pub(super) async fn take_remote(&mut self) {
        self.trust_memory();
        let waiting = self.inbox.take();
        let mut docs: Vec<(DocId, Option<Committed>)> = waiting
            .docs
            .into_iter()
            .map(|(d, c)| (d, Some(c)))
            .collect();
        if waiting.resync {
            let mut all: HashSet<DocId> = self.acceptor.loaded_docs().cloned().collect();
            all.extend(self.subscribers.keys().cloned());
            docs.retain(|(d, _)| !all.contains(d));
            docs.extend(all.into_iter().map(|d| (d, None)));
        }
        for (doc, committed) in docs {
            let known = self.acceptor.known_seq(&doc);
            // Another node's first change to a bucket part: this node's subscribers of the
            // conversation learn of the part (its own commits announced it in `publish`).
            if committed.is_some_and(|c| c.first_seq == 1 && known.is_none_or(|k| k < c.last_seq)) {
                self.announce_bucket(&doc);
            }
            let serving = self.serving(&doc);
            if known.is_none() && serving.is_none() {
                continue;
            }
            // Anything already held and pushed needs nothing; nor does a notification of this
            // node's own commit that came before the committer's answer: the answer pushes it
            // (and were those seqs another node's, this node's batch holding them loses its
            // commit and catches up then).
            if let Some(c) = committed {
                let held = known.is_none_or(|k| k >= c.last_seq);
                let pushed = serving.is_none_or(|d| d >= c.last_seq);
                if held && (pushed || self.acceptor.has_uncommitted(&doc)) {
                    continue;
                }
            }
            // Another node commits to a document this one writes too: both back off to one
            // small batch in flight, or the node that lost once keeps losing to the others'
            // deep pipelines (it must read and validate again; they need not).
            let writing_here = self
                .written
                .get(&doc)
                .is_some_and(|at| at.elapsed() < super::CONTENDED_FOR);
            if committed.is_some() && writing_here {
                self.contended_until = Some(std::time::Instant::now() + super::CONTENDED_FOR);
            }
            if self.acceptor.has_uncommitted(&doc) {
                // This node's batches in flight took the same seqs: they lose their commit
                // and are validated again on top of what the log holds.
                self.settle().await;
            }
            self.catch_up(&doc, committed.map(|c| c.commit_ms)).await;
        }
    }

    /// Reads `doc`'s log after what the unit holds or has pushed, takes it into the
    /// acceptor and pushes it to the subscribers, in seq order.
    pub(super) async fn catch_up(&mut self, doc: &DocId, commit_ms: Option<i64>) {
        let known = self.acceptor.known_seq(doc);
        let serving = self.serving(doc);
        let from = match (known, serving) {
            (Some(k), Some(d)) => k.min(d),
            (Some(k), None) => k,
            (None, Some(d)) => d,
            (None, None) => return,
        };
        let id = doc.clone();
        let tail = match self
            .engine
            .read(move |store| async move { store.log_tail(&id, from, CATCH_UP_LIMIT).await })
            .await
        {
            Ok(tail) => tail,
            Err(e) => {
                // Read again once the storage had time to come back: what the subscribers
                // miss must not wait for the document's next commit.
                tracing::warn!(%doc, error = %e, "catching up from the log failed");
                let inbox = self.inbox.clone();
                let doc = doc.clone();
                let wait = self.engine.health().retry_after_ms();
                tokio::spawn(async move {
                    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                    inbox.recheck(doc);
                });
                return;
            }
        };
        let metrics = self.engine.inner.metrics.clone();
        let metrics = &metrics.cluster;
        metrics.catchup_reads.inc();
        // A node far behind reads the log in steps, each a job of its own, so it keeps
        // answering its clients in between.
        let read_up_to = tail.changes.last().map_or(from, |(seq, _)| *seq);
        if read_up_to < tail.last_seq {
            self.inbox.note(
                doc.clone(),
                Committed {
                    first_seq: read_up_to + 1,
                    last_seq: tail.last_seq,
                    commit_ms: commit_ms.unwrap_or_else(now_ms),
                },
            );
        }
        metrics
            .lag_seqs
            .observe(tail.last_seq.saturating_sub(from) as f64);
        // A bucket nobody wrote through this node lately leaves memory instead of taking
        // the other node's changes (an Automerge apply per catch-up, on every node serving
        // it): its subscribers are served from the log, and a write here loads it fresh.
        let written_here = self
            .written
            .get(doc)
            .is_some_and(|at| at.elapsed() < WRITER_MEMORY);
        if known.is_some() && !written_here && self.acceptor.release(doc) {
            self.written.remove(doc);
            self.count_loaded();
        } else if known.is_some() {
            let view = Tail {
                changes: tail.changes.iter().map(|(s, b)| (*s, &b[..])).collect(),
                last_seq: tail.last_seq,
                policy_seq: tail.policy_seq,
                snapshot_seq: tail.snapshot_seq,
            };
            match self.acceptor.absorb(doc, &view) {
                Ok(deactivated) => {
                    let changes = tail.changes.iter().map(|(s, b)| (*s, &b[..]));
                    self.remember(doc, changes);
                    for gone in deactivated {
                        self.revoke(&gone.account, gone.status);
                    }
                }
                // The document left memory; it is loaded fresh when needed.
                Err(e) => tracing::warn!(%doc, error = %e, "another node's changes"),
            }
            self.count_loaded();
        }
        let Some(delivered) = self.serving(doc) else {
            return;
        };
        if tail.snapshot_seq > delivered {
            // What they miss was folded into a snapshot: they reconnect and catch up from
            // their cursors, snapshot first.
            self.lag_all(doc);
            return;
        }
        let changes: Vec<SeqChange> = tail
            .changes
            .into_iter()
            .filter(|(seq, _)| *seq > delivered)
            .map(|(seq, bytes)| SeqChange {
                seq,
                change: ByteBuf::from(bytes),
            })
            .collect();
        if changes.is_empty() {
            return;
        }
        self.delivered.insert(doc.clone(), read_up_to);
        self.push(
            doc,
            ServerFrame::Changes {
                doc: doc.to_string(),
                changes,
            },
            None,
        );
        if let Some(at) = commit_ms {
            let lag_ms = now_ms().saturating_sub(at).max(0);
            metrics.lag_seconds.observe(lag_ms as f64 / 1000.0);
        }
    }

    /// Tells every subscriber of `doc` to reconnect and catch up from its cursor.
    fn lag_all(&mut self, doc: &DocId) {
        if let Some(subs) = self.subscribers.remove(doc) {
            for conn in subs {
                let _ = conn.control.try_send(Control::Lagged(doc.clone()));
            }
        }
        self.delivered.remove(doc);
    }

    /// Whether this node's own commit of `changes` to `doc` continues what its subscribers
    /// have. When another node's changes come between and have not been pushed yet (the
    /// document was loaded fresh with them), the push waits for a catch-up that sends
    /// everything in order.
    pub(super) fn deliver_in_order(&mut self, doc: &DocId, changes: &[SeqChange]) -> bool {
        let (Some(first), Some(last)) = (changes.first(), changes.last()) else {
            return false;
        };
        let Some(delivered) = self.serving(doc) else {
            return true;
        };
        if delivered + 1 < first.seq {
            self.inbox.note(
                doc.clone(),
                Committed {
                    first_seq: first.seq,
                    last_seq: last.seq,
                    commit_ms: now_ms(),
                },
            );
            return false;
        }
        if delivered >= last.seq {
            return false;
        }
        self.delivered.insert(doc.clone(), last.seq);
        true
    }

    /// Validates again, in order, the changes whose batches lost their commit to another
    /// node, after reading what it committed. Each answer waits in the new batch.
    pub(super) async fn retry(&mut self) {
        self.lost_epoch = None;
        for doc in std::mem::take(&mut self.stale) {
            self.catch_up(&doc, None).await;
        }
        for mut waiter in std::mem::take(&mut self.retries) {
            let mut slots = Vec::with_capacity(waiter.slots.len());
            for slot in std::mem::take(&mut waiter.slots) {
                slots.push(match slot {
                    Slot::Again { doc, author, bytes } if waiter.attempts <= MAX_ATTEMPTS => {
                        self.accept(&doc, &author, bytes).await
                    }
                    Slot::Again { bytes, .. } => Slot::Done(SubmitOutcome::Failed {
                        code: ErrorCode::Internal,
                        retry_after_ms: None,
                        hash: confab_core::validate::parse_change(&bytes)
                            .ok()
                            .map(|c| c.hash().0),
                        message: format!(
                            "other nodes committed first {MAX_ATTEMPTS} times; resubmit"
                        ),
                    }),
                    other => other,
                });
            }
            self.batch.waiting.push(Waiter { slots, ..waiter });
            // Small commits, soon: the longer a batch takes to validate, the likelier
            // another node commits first again.
            if self.batch.pending.len() >= self.batch_limit() {
                self.start_commit().await;
            }
        }
        if self.acceptor.broken().is_some() {
            // As `reload`, but `settle` (which runs this) waits for the batches itself.
            self.epoch.store(true, std::sync::atomic::Ordering::SeqCst);
            self.start_commit().await;
            self.epoch = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            self.reset();
        }
    }
}
