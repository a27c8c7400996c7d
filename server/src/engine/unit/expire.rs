//! A conversation unit's part of retention (`engine::retention`): dropping expired buckets
//! from memory, storage and subscriptions, and refusing subscriptions to them.

use confab_core::automerge::ChangeHash;
use confab_core::ids::{DocId, DocTarget};
use confab_core::policy::DenyCode;
use confab_core::protocol::ErrorCode;
use confab_core::validate::{RejectCode, Rejection};

use super::super::retention::Expired;
use super::super::{Control, UnitKey};
use super::Unit;
use crate::store::retention::DropRequest;

impl Unit {
    /// Drops the buckets the conversation's retention expired at `now_ms`. Runs between
    /// jobs, after every earlier commit (`process` settles first), so nothing of them waits
    /// for a commit.
    pub(super) async fn expire(&mut self, now_ms: i64) -> Result<Expired, String> {
        let UnitKey::Conv(tenant, conv) = self.key.clone() else {
            return Ok(Expired::default());
        };
        self.prepare(&DocId::conv(&tenant, &conv))
            .await
            .map_err(|e| e.to_string())?;
        let Some(c) = self.acceptor.conversation().filter(|c| c.meta.is_some()) else {
            return Ok(Expired::default());
        };
        let (Some(first_kept), Some(days)) = (c.first_kept_period(now_ms), c.settings.retention())
        else {
            return Ok(Expired::default());
        };
        let expired =
            |doc: &DocId| matches!(doc.target(), DocTarget::Msgs(_, b) if b.period < first_kept);
        // Memory first: a bucket still loaded after its rows went would be served again.
        let loaded: Vec<DocId> = self
            .acceptor
            .loaded_docs()
            .filter(|d| expired(d))
            .cloned()
            .collect();
        for doc in &loaded {
            self.acceptor.release(doc);
            self.written.remove(doc);
        }
        self.prune_recent();
        self.count_loaded();
        let dropped = self
            .engine
            .store()
            .drop_buckets(DropRequest {
                tenant: &tenant,
                conv: &conv,
                first_kept,
                retention_days: days,
                now_ms,
            })
            .await
            .map_err(|e| e.to_string())?;
        // Subscribers are told the bucket is gone, and get no more pushes of it.
        let subscribed: Vec<DocId> = self
            .subscribers
            .keys()
            .filter(|d| expired(d))
            .cloned()
            .collect();
        for doc in subscribed {
            self.delivered.remove(&doc);
            for conn in self.subscribers.remove(&doc).unwrap_or_default() {
                let _ = conn.control.try_send(Control::Revoke {
                    doc: doc.clone(),
                    code: RejectCode::Policy(DenyCode::RetentionExpired),
                    reason: format!("older than the conversation's {days}-day retention"),
                });
            }
        }
        for bucket in &dropped.buckets {
            // A kept save would outlive the rows (refused at subscribe, but memory).
            self.engine
                .saved_parts()
                .forget(&DocId::msgs(&tenant, &conv, *bucket));
            tracing::info!(%tenant, %conv, period = bucket.period, part = bucket.part,
                retention_days = days, "bucket dropped by retention");
        }
        Ok(Expired { dropped })
    }

    /// A subscription to a bucket the retention expired is refused `bucket_expired`, judged
    /// at the server's clock (or a later sweep's): its rows are gone, or about to go.
    pub(super) fn refuse_expired(&self, doc: &DocId) -> Result<(), (ErrorCode, String)> {
        let DocTarget::Msgs(_, bucket) = doc.target() else {
            return Ok(());
        };
        let now = self.engine.retention_now();
        match self.acceptor.conversation() {
            Some(c) if c.is_expired(*bucket, now) => Err((
                ErrorCode::BucketExpired,
                format!(
                    "bucket {bucket} is past the conversation's {}-day retention",
                    c.settings.retention().unwrap_or(0)
                ),
            )),
            _ => Ok(()),
        }
    }

    /// A change to a bucket the retention expired is refused `retention_expired` before
    /// anything else (a reaction or edit to a dropped message would otherwise find its
    /// dependencies missing, and a stored one would bring the bucket back).
    pub(super) async fn refuse_expired_write(
        &mut self,
        doc: &DocId,
        hash: ChangeHash,
    ) -> Option<Rejection> {
        let DocTarget::Msgs(conv, bucket) = doc.target() else {
            return None;
        };
        // A failed load is answered by the decision that follows, which loads it again.
        self.prepare(&DocId::conv(doc.tenant(), conv)).await.ok()?;
        let c = self.acceptor.conversation()?;
        c.is_expired(*bucket, self.engine.retention_now()).then(|| {
            Rejection::new(
                Some(hash),
                RejectCode::Policy(DenyCode::RetentionExpired),
                format!(
                    "bucket {bucket} is past the conversation's {}-day retention",
                    c.settings.retention().unwrap_or(0)
                ),
            )
        })
    }
}
