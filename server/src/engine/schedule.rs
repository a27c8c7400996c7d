//! Scheduled messages (docs/FEATURES.md, "Scheduled messages"): the scheduler posts each due
//! message of an author's private document into its conversation on the author's behalf,
//! through the conversation's unit like any REST write (so the same policy decides:
//! membership, role, lock, slow mode, retention...), and settles the private document:
//! the entry leaves once posted, or keeps the reject code as `refused`.
//!
//! Which private documents to look at comes from `schedule_hints` (marked by a trigger in
//! the commit that changed one; `store::schedule`). The time is a parameter
//! (`post_due(now_ms)`: the server's clock in production, any time in tests).
//!
//! The same pass writes down lapsed temporary roles: a conversation document's hint is a
//! grant's expiry (`engine::lapses`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use confab_core::automerge::{Automerge, Change};
use confab_core::doc::{read, schedule, write};
use confab_core::ids::{Bucket, DocId, DocTarget, MessageId};
use confab_core::model::message::{MessageKind, NewMessage};
use confab_core::policy::{Author, DenyCode};
use confab_core::validate::RejectCode;

use super::lapses::Lapsed;
use super::{Engine, SubmitOutcome};
use crate::store::schedule::Claim;
use crate::store::StoreError;

/// How long a claimed document is this node's: another node, or this one restarted, takes
/// it over after that. It bounds how late a due message is when a node dies mid-pass
/// (kill -9 leaves its lease behind; its next process has another node id). A pass that
/// outlives its lease is safe, only wasted: posts are exactly once through `schedule_posts`.
pub const LEASE_MS: i64 = 5_000;
/// Documents claimed per store call, few enough to settle well within the lease.
const CLAIM_PAGE: usize = 16;
/// When to look again after a transient failure (storage down, unit stopped).
const RETRY_MS: i64 = 1_000;
/// Bucket parts a post tries before it takes the last refusal (as a REST post).
const BUCKET_ATTEMPTS: usize = 4;

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleReport {
    /// Private documents looked at.
    pub documents: usize,
    pub posted: usize,
    pub refused: usize,
    /// Documents left for a later pass after a transient failure.
    pub retried: usize,
    /// Conversations whose lapsed temporary roles were written down (`engine::lapses`).
    pub lapsed: usize,
}

/// What became of one due message.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fate {
    Posted,
    /// The reject code, kept in the private document for the author.
    Refused(String),
    /// Not decided (storage, shutdown): tried again later.
    Transient,
}

impl Engine {
    /// Posts every scheduled message due at `now_ms` whose document this node can claim.
    pub async fn post_due(&self, now_ms: i64) -> Result<ScheduleReport, StoreError> {
        let mut report = ScheduleReport::default();
        loop {
            let claims = self
                .store()
                .claim_scheduled(
                    now_ms,
                    now_ms.saturating_add(LEASE_MS),
                    self.node(),
                    CLAIM_PAGE,
                )
                .await?;
            let full = claims.len() == CLAIM_PAGE;
            for claim in claims {
                report.documents += 1;
                if let Err(error) = self.settle_document(&claim, now_ms, &mut report).await {
                    tracing::warn!(doc = %claim.doc, %error, "scheduled messages not settled");
                    self.count_retry(&mut report);
                    let at = now_ms.saturating_add(RETRY_MS);
                    // If this fails too, the lease runs out and the document is claimed again.
                    let _ = self.store().retry_scheduled(&claim.doc, at).await;
                }
            }
            if !full {
                return Ok(report);
            }
        }
    }

    /// Posts what is due in one private document and records when to look next.
    async fn settle_document(
        &self,
        claim: &Claim,
        now: i64,
        report: &mut ScheduleReport,
    ) -> Result<(), StoreError> {
        let doc = DocId::parse(&claim.doc).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let account = match doc.target() {
            DocTarget::Private(account) => account.clone(),
            DocTarget::Conv(_) => {
                return match self.settle_lapses(claim, &doc, now).await? {
                    Lapsed::Written => {
                        report.lapsed += 1;
                        Ok(())
                    }
                    Lapsed::Nothing => Ok(()),
                    Lapsed::Transient => {
                        self.count_retry(report);
                        self.retry(claim, now).await
                    }
                };
            }
            // Not a private document (the trigger matched a look-alike id): nothing waits.
            _ => return self.finish(claim, None).await,
        };
        // One node: from the account's unit, which holds it committed (a job runs after
        // every earlier batch is answered), so a pass costs the document's size, not its
        // log. In a cluster another node may have committed a change this node's unit has
        // not taken in yet (an edit, a cancel), so the log decides.
        let private = if self.inner.clustered {
            read::read_private(&self.committed(&doc).await?)
        } else {
            self.private_data(doc.tenant(), &account)
                .await
                .ok_or_else(|| StoreError::Corrupt(format!("{doc} could not be read")))?
        };
        let (due, next) = schedule::due_in(private, now);
        let author = Author::user(account);
        for entry in due {
            let fate = self.post_one(&doc, &author, &entry, now).await?;
            let refused = match &fate {
                Fate::Posted => None,
                Fate::Refused(code) => Some(code.clone()),
                Fate::Transient => {
                    self.count_retry(report);
                    return self.retry(claim, now).await;
                }
            };
            let id = entry.id.clone();
            let settled = self
                .write(
                    doc.clone(),
                    author.clone(),
                    Box::new(move |d, tag| schedule::settle(d, tag, now, &id, refused.as_deref())),
                )
                .await;
            match settled {
                SubmitOutcome::Ack { .. } | SubmitOutcome::Reject { .. } => {}
                SubmitOutcome::Failed { .. } => {
                    self.count_retry(report);
                    return self.retry(claim, now).await;
                }
            }
            self.store()
                .post_done(&claim.doc, entry.id.as_str())
                .await?;
            let metrics = &self.metrics().schedule;
            match &fate {
                Fate::Posted => {
                    report.posted += 1;
                    metrics.posted.inc();
                    let late_ms = now.saturating_sub(entry.at).max(0);
                    metrics.lateness_seconds.observe(late_ms as f64 / 1000.0);
                }
                Fate::Refused(code) => {
                    report.refused += 1;
                    let reason = crate::metrics::ReasonLabel {
                        reason: code.clone(),
                    };
                    metrics.refused.get_or_create(&reason).inc();
                }
                Fate::Transient => {}
            }
            tracing::info!(doc = %doc, message = %entry.id, ?fate, "scheduled message settled");
        }
        self.finish(claim, next).await
    }

    fn count_retry(&self, report: &mut ScheduleReport) {
        report.retried += 1;
        self.metrics().schedule.retried.inc();
    }

    async fn finish(&self, claim: &Claim, next_at: Option<i64>) -> Result<(), StoreError> {
        self.store()
            .finish_scheduled(&claim.doc, claim.gen, next_at)
            .await
    }

    async fn retry(&self, claim: &Claim, now: i64) -> Result<(), StoreError> {
        self.store()
            .retry_scheduled(&claim.doc, now.saturating_add(RETRY_MS))
            .await
    }

    /// The account's private document, typed, from its unit.
    pub(crate) async fn private_data(
        &self,
        tenant: &confab_core::ids::TenantId,
        account: &confab_core::ids::AccountId,
    ) -> Option<read::PrivateData> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let key = super::UnitKey::Account(tenant.clone(), account.clone());
        self.dispatch(key, super::Job::Private { reply })
            .await
            .ok()?;
        rx.await.ok().flatten()
    }

    /// The committed document (what was acked to its writers), read from storage.
    pub async fn committed(&self, doc: &DocId) -> Result<Automerge, StoreError> {
        let stored = self.store().load_doc(doc).await?;
        let corrupt =
            |e: confab_core::automerge::AutomergeError| StoreError::Corrupt(format!("{doc}: {e}"));
        let mut out = match &stored.snapshot {
            Some(bytes) => Automerge::load(bytes).map_err(corrupt)?,
            None => confab_core::doc::genesis(doc)
                .map_err(|e| StoreError::Corrupt(format!("{doc}: {e}")))?,
        };
        let changes = stored
            .changes
            .iter()
            .map(|(_, bytes)| Change::from_bytes(bytes.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Corrupt(format!("{doc}: {e}")))?;
        out.apply_changes(changes).map_err(corrupt)?;
        Ok(out)
    }

    /// Posts one due message as its author, into the bucket recorded for it (so a retry
    /// finds it there instead of posting it twice).
    async fn post_one(
        &self,
        private: &DocId,
        author: &Author,
        entry: &read::Scheduled,
        now: i64,
    ) -> Result<Fate, StoreError> {
        let tenant = private.tenant().clone();
        let Some(conv) = self.conversation(&tenant, &entry.conv).await else {
            return Ok(Fate::Refused(
                RejectCode::Policy(DenyCode::NotMember).as_str().into(),
            ));
        };
        let period = conv.period_of(now);
        let newest = self
            .store()
            .buckets(&tenant, &entry.conv, Some(Bucket::first(period + 1)), 1)
            .await?
            .buckets
            .first()
            .copied()
            .filter(|b| b.period == period)
            .unwrap_or(Bucket::first(period));
        let proposed = DocId::msgs(&tenant, &entry.conv, newest).to_string();
        let stored = self
            .store()
            .post_bucket(&private.to_string(), entry.id.as_str(), &proposed)
            .await?;
        let mut bucket = match DocId::parse(&stored).map(|d| d.target().clone()) {
            Ok(DocTarget::Msgs(_, b)) => b,
            _ => {
                return Err(StoreError::Corrupt(format!(
                    "scheduled post bucket {stored}"
                )))
            }
        };
        let message = NewMessage {
            id: entry.id.clone(),
            author: author.account.clone(),
            kind: MessageKind::Text,
            body: entry.body.clone(),
            payload: None,
            caption: None,
            attachments: None,
            mentions: None,
            reply_to: None,
            forwarded_from: None,
            created_at: now,
            scheduled_at: Some(entry.at),
            // Unstamped: the post runs in the bucket's unit, away from the thread's names
            // (an absent stamp is allowed, docs/POLICY.md "Support threads").
            stamp: Default::default(),
            sealed: None,
            blobs: None,
        };
        for attempt in 1..=BUCKET_ATTEMPTS {
            let doc = DocId::msgs(&tenant, &entry.conv, bucket);
            let there = Arc::new(AtomicBool::new(false));
            let (seen, message) = (there.clone(), message.clone());
            let intent = Box::new(move |d: &mut Automerge, tag: &_| {
                if message_exists(d, &message.id) {
                    seen.store(true, Ordering::SeqCst);
                    return Ok(None);
                }
                write::post_message(d, tag, &message)
            });
            let code = match self.write(doc, author.clone(), intent).await {
                SubmitOutcome::Ack { .. } => return Ok(Fate::Posted),
                SubmitOutcome::Failed { .. } => return Ok(Fate::Transient),
                // Posted by an earlier attempt whose settling did not happen.
                SubmitOutcome::Reject { .. } if there.load(Ordering::SeqCst) => {
                    return Ok(Fate::Posted)
                }
                SubmitOutcome::Reject { code, .. } => code,
            };
            let moved_to = match code {
                RejectCode::Policy(DenyCode::BucketFull) => Some(bucket.next()),
                RejectCode::Policy(DenyCode::BucketNotOpen) => bucket.previous_part(),
                _ => None,
            };
            let Some(next) = moved_to.filter(|_| attempt < BUCKET_ATTEMPTS) else {
                return Ok(Fate::Refused(code.as_str().into()));
            };
            let to = DocId::msgs(&tenant, &entry.conv, next).to_string();
            self.store()
                .move_post(&private.to_string(), entry.id.as_str(), &to)
                .await?;
            bucket = next;
        }
        Ok(Fate::Transient)
    }

    /// Runs `post_due` every `every` until the engine stops (`serve`).
    pub fn spawn_scheduler(&self, every: Duration) {
        let engine = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if engine.is_stopping() {
                    return;
                }
                match engine.post_due(super::now_ms()).await {
                    Ok(report) if report != ScheduleReport::default() => {
                        tracing::debug!(?report, "scheduler pass");
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "scheduler pass failed"),
                }
            }
        });
    }
}

fn message_exists(doc: &Automerge, id: &MessageId) -> bool {
    read::read_message_fields(doc, id).is_some()
}
