//! A conversation unit's part of cutting a message part's history (`engine::cut`).

use std::time::Instant;

use confab_core::automerge::Automerge;
use confab_core::doc::cut;
use confab_core::ids::DocId;
use confab_core::model::conversation::Lifecycle;
use confab_core::policy::Effect;
use confab_core::protocol::ServerFrame;
use serde_bytes::ByteBuf;

use super::super::cut::{CutError, CutReport};
use super::Unit;
use crate::store::{NewGeneration, StoreError};

impl Unit {
    /// Rebuilds `doc` as its next generation and installs it. Runs between jobs, after every
    /// earlier commit (`process` settles first), so the part holds nothing uncommitted and
    /// its writers here wait for exactly this call; `fenced`, so do other nodes' (the row is
    /// held before the part is read). `None`: the part was never written.
    pub(super) async fn cut(
        &mut self,
        doc: &DocId,
        fenced: bool,
    ) -> Result<Option<CutReport>, CutError> {
        let failed = |message: String| CutError::Failed {
            doc: doc.clone(),
            message,
        };
        let moved_or_failed = |error: StoreError| match error.is_conflict() {
            true => CutError::Moved(doc.clone()),
            false => failed(error.to_string()),
        };
        let started = Instant::now();
        let fence = match fenced {
            true => Some(
                self.engine
                    .store()
                    .fence_part(doc)
                    .await
                    .map_err(moved_or_failed)?,
            ),
            false => None,
        };
        self.prepare(doc).await.map_err(|e| failed(e.to_string()))?;
        // Other nodes may have committed what this node was not told of yet: the install's
        // fence would refuse a cut of the older state, so read the log's tail first.
        if self.engine.inner.clustered {
            self.catch_up(doc, None).await;
            // A catch-up may have let the part go (a snapshot past what it held): load again.
            self.prepare(doc).await.map_err(|e| failed(e.to_string()))?;
        }
        let Some(view) = self.acceptor.view(doc) else {
            return Ok(None);
        };
        if view.last_seq == 0 {
            return Ok(None);
        }
        let generation = cut::generation(view.accepted.doc()) + 1;
        let base_seq = view.last_seq;
        let changes_dropped = base_seq - view.snapshot_seq;
        // A part of a conversation its owner deleted keeps no message content
        // (docs/POLICY.md, "Delete"): every message becomes a tombstone of that delete.
        let deleted = self.acceptor.conversation().and_then(|c| {
            let l = &c.lifecycle;
            (l.state == Lifecycle::Deleted).then(|| (l.at.unwrap_or(0), l.by.clone()))
        });
        let rebuilt = match &deleted {
            None => cut::rebuild(doc, view.accepted.doc(), generation),
            Some((at, by)) => {
                let by = by.as_ref().map_or("", |a| a.as_str());
                let emptied = cut::Emptied { at: *at, by };
                self.release_blobs_of(doc, view.accepted.doc()).await;
                cut::rebuild_emptied(doc, view.accepted.doc(), generation, emptied)
            }
        }
        .map_err(|e| failed(e.to_string()))?;
        let snapshot = rebuilt.save();
        let next = NewGeneration {
            generation,
            base_seq,
            snapshot,
        };
        let installed = match fence {
            Some(fence) => fence.install(&next).await,
            None => self.engine.store().install_generation(doc, &next).await,
        };
        // Memory goes either way: the earlier generation must not be served again, and a
        // failed install may still have committed (the next load tells).
        self.acceptor.release(doc);
        self.written.remove(doc);
        self.prune_recent();
        self.count_loaded();
        self.engine.saved_parts().forget(doc);
        installed.map_err(moved_or_failed)?;
        let seq = base_seq + 1;
        let bytes = next.snapshot.len();
        // Subscribers replace their copy: a snapshot of a newer generation (docs/PROTOCOL.md,
        // "Generations"); later pushes continue from its seq.
        if self.subscribers.contains_key(doc) {
            self.push(
                doc,
                ServerFrame::Snapshot {
                    doc: doc.to_string(),
                    seq,
                    data: ByteBuf::from(next.snapshot),
                    order: None,
                },
                None,
            );
            self.delivered.insert(doc.clone(), seq);
        }
        Ok(Some(CutReport {
            generation,
            seq,
            changes_dropped,
            bytes,
            stalled: started.elapsed(),
        }))
    }

    /// Records the blobs the live messages of `part` name as released, as their deletes
    /// would (`projection::released_blobs`): the sweep deletes each once no live message of
    /// the conversation names it. Before the install: a cut that fails releases early,
    /// which the sweep's check makes harmless.
    async fn release_blobs_of(&self, part: &DocId, current: &Automerge) {
        let effects: Vec<Effect> = confab_core::doc::read::read_messages(current)
            .into_iter()
            .filter(|m| m.deleted_at.is_none() && (m.attachments.is_some() || m.blobs.is_some()))
            .map(|m| Effect::DeleteMessage(Box::new(m)))
            .collect();
        let released =
            crate::engine::projection::released_blobs(part, &effects, crate::clock::now_ms());
        if released.is_empty() {
            return;
        }
        if let Err(error) = self.engine.store().release_blobs(&released).await {
            tracing::warn!(%part, %error, "a deleted conversation's blobs were not recorded");
        }
    }
}
