//! Bucket parts that closed: their saves are kept for catch-up (`engine::saved_parts`), so
//! the first client to catch up on one is sent kept bytes, not a part loaded and saved for
//! it.

use confab_core::ids::{Bucket, DocId, DocTarget};

use super::Unit;

impl Unit {
    /// `doc`, a bucket part, got its first change: the part before it in its period closed
    /// (its save is kept after the unit's next apply, `keep_closed_parts`).
    pub(super) fn part_opened(&mut self, doc: &DocId) {
        let DocTarget::Msgs(conv, bucket) = doc.target() else {
            return;
        };
        let Some(part) = bucket.part.checked_sub(1) else {
            return;
        };
        let previous = DocId::msgs(doc.tenant(), conv, Bucket { part, ..*bucket });
        if !self.closed.contains(&previous) {
            self.closed.push(previous);
        }
    }

    /// Keeps the save of each closed part once all of it is committed (a save must be of a
    /// durable seq), applying what it still has staged; one that left memory meanwhile is
    /// kept by its first catch-up instead. `false`: an apply failed and the unit must reload.
    pub(super) fn keep_closed_parts(&mut self) -> bool {
        if self.closed.is_empty() {
            return true;
        }
        let closed = std::mem::take(&mut self.closed);
        for doc in closed {
            if self.acceptor.has_uncommitted(&doc) {
                self.closed.push(doc);
                continue;
            }
            if self.acceptor.known_seq(&doc).is_none() {
                continue;
            }
            if self.acceptor.apply_staged_of(&doc).is_err() {
                return false;
            }
            if let Some(info) = self.acceptor.view(&doc) {
                let recent = self.recent.get(&doc);
                super::super::catchup::keep_closed(&self.engine, &doc, info, recent);
            }
        }
        true
    }
}
