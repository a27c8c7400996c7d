//! Retention on the client (docs/FEATURES.md, "Retention"): the buckets a conversation's
//! `retention_days` expired are dropped from memory, the local store and the views. Expiry
//! is computed here from the conversation and the bucket period
//! (`Conversation::first_kept_period`), the same rule the server deletes by, so a client
//! needs no word from the server: it drops them after each catch-up of the conversation
//! document (its next sync), and when the server answers a bucket `bucket_expired` or
//! revokes it `retention_expired`.

use std::collections::BTreeSet;

use crate::client::engine::{ClientEngine, Event, Output};
use crate::client::records::{key_changes, key_snapshot, DOCS_PREFIX};
use crate::client::store::StoreOp;
use crate::ids::{Bucket, ConvId, DocId, DocTarget};
use crate::protocol::ClientFrame;

impl ClientEngine {
    /// Drops every bucket of `conv` (in memory or stored) its retention expired at server
    /// time `now`; returns them. Nothing without a retention.
    pub fn drop_expired(&mut self, conv: &ConvId, now: i64) -> Vec<DocId> {
        let Some(first_kept) = self
            .conversation(conv)
            .and_then(|c| c.first_kept_period(now))
        else {
            return Vec::new();
        };
        // Key ranges: the cost is this conversation's expired parts, not every document.
        let tenant = &self.config.tenant;
        let range = DocId::msgs(tenant, conv, Bucket::new(i64::MIN, 0))
            ..=DocId::msgs(
                tenant,
                conv,
                Bucket::new(first_kept.saturating_sub(1), u32::MAX),
            );
        let mut expired: BTreeSet<DocId> = self.loads.stored_in(range.clone()).cloned().collect();
        expired.extend(self.docs.range(range).map(|(d, _)| d.clone()));
        let expired: Vec<DocId> = expired
            .into_iter()
            .filter(|d| matches!(d.target(), DocTarget::Msgs(c, b) if c == conv && b.period < first_kept))
            .collect();
        for id in &expired {
            self.forget_bucket(id);
        }
        self.buckets.forget_before(conv, first_kept);
        expired
    }

    /// Drops one bucket from memory, the store and the store's index, and stops following
    /// it; the views no longer show its messages.
    pub(super) fn forget_bucket(&mut self, id: &DocId) {
        self.unindex_bucket(id);
        let followed = self.docs.remove(id).is_some_and(|d| d.revoked.is_none());
        self.loads.forget(id);
        self.retry.forget(id);
        self.out.push(Output::Persist(vec![
            StoreOp::Delete(format!("{DOCS_PREFIX}{id}")),
            StoreOp::Delete(key_snapshot(id)),
            StoreOp::DeletePrefix(key_changes(id)),
        ]));
        if followed && self.online {
            self.out.push(Output::Send(ClientFrame::Unsubscribe {
                doc: id.to_string(),
            }));
        }
        self.out.push(Output::Event(Event::Doc {
            doc: id.to_string(),
        }));
    }

    /// After the conversation document `doc` caught up: its buckets past the retention go.
    pub(super) fn expire_after_sync(&mut self, doc: &str, device_now: i64) {
        let Ok(id) = DocId::parse(doc) else {
            return;
        };
        if let DocTarget::Conv(conv) = id.target() {
            let conv = conv.clone();
            self.drop_expired(&conv, self.server_now(device_now));
        }
    }

    /// The server says a bucket is past the retention (`bucket_expired` answering a
    /// subscription, or `retention_expired` revoking one): it goes, whatever this client's
    /// clock says.
    pub(super) fn on_expired_bucket(&mut self, doc: &str) {
        if let Ok(id) = DocId::parse(doc) {
            if matches!(id.target(), DocTarget::Msgs(..)) {
                self.forget_bucket(&id);
            }
        }
    }
}
