//! What the engine keeps in the local store, and how it comes back: the outbox, the
//! documents (snapshots, accepted changes, ack records) and the index of stored documents,
//! written as `Output::Persist` and restored from loads. The keys and records are
//! `records`'.

use std::collections::HashMap;

use automerge::{Automerge, Change, ChangeHash, ReadDoc};

use crate::client::engine::{ClientEngine, ClientError, Output};
use crate::client::outbox::{IntentStatus, OutboxEntry};
use crate::client::records::{
    cbor, key_ack, key_change, key_changes, key_outbox, key_snapshot, parse_change_key, uncbor,
    SnapshotRecord, DOCS_PREFIX, SNAPSHOT_EVERY,
};
use crate::client::replica::{created_messages, ClientDoc};
use crate::client::store::StoreOp;
use crate::doc;
use crate::ids::DocId;
use crate::protocol::SeqChange;

impl ClientEngine {
    /// Restores the outbox from store entries under `out/` (once, at start).
    pub(super) fn restore_outbox(
        &mut self,
        entries: &[(String, Vec<u8>)],
    ) -> Result<(), ClientError> {
        for (_, bytes) in entries {
            let mut entry: OutboxEntry = uncbor(bytes)?;
            // Nothing is in flight after a restart: it goes out again when connected.
            if matches!(entry.status, IntentStatus::Sent | IntentStatus::Retrying) {
                entry.status = IntentStatus::Pending;
            }
            self.next_id = self.next_id.max(entry.id + 1);
            self.outbox.insert(entry.id, entry);
        }
        Ok(())
    }

    /// Loads one document from its store entries (`snap/<doc>`, `chg/<doc>/`) plus this
    /// device's unacked changes from the outbox (restore the outbox first), and subscribes to
    /// it when online. Documents load on demand: a conversation opens with its newest bucket.
    pub(super) fn restore_doc(
        &mut self,
        id: &DocId,
        snapshot: Option<&[u8]>,
        changes: &[(String, Vec<u8>)],
    ) -> Result<(), ClientError> {
        let corrupt = |e: &dyn std::fmt::Display| ClientError::Corrupt(format!("{id}: {e}"));
        let (server, cursor, message_seq) = match snapshot {
            Some(bytes) => {
                let record: SnapshotRecord = uncbor(bytes)?;
                (
                    Automerge::load(&record.data).map_err(|e| corrupt(&e))?,
                    record.seq,
                    record.message_seq,
                )
            }
            None => (
                doc::genesis(id).map_err(|e| corrupt(&e))?,
                0,
                HashMap::new(),
            ),
        };
        let mut state = ClientDoc::new(server, Automerge::new(), cursor);
        state.message_seq = message_seq;
        let mut decoded = Vec::with_capacity(changes.len());
        for (key, bytes) in changes {
            let (seq, ack) = parse_change_key(key).unwrap_or((0, false));
            let change = Change::try_from(&bytes[..]).map_err(|e| corrupt(&e))?;
            if ack {
                // Accepted, but the changes before its seq may be missing: no cursor move.
                state.acked.insert(change.hash(), seq);
            } else {
                state.cursor = state.cursor.max(seq);
                state.changes_since_snapshot += 1;
            }
            for message in created_messages(&change) {
                state.message_seq.insert(message, seq);
            }
            decoded.push(change);
        }
        state
            .server
            .apply_changes(decoded)
            .map_err(|e| corrupt(&e))?;
        let actor = self.config.actor.clone();
        state.server = std::mem::take(&mut state.server).with_actor(actor);
        state.local = state.server.clone();
        state
            .local
            .apply_changes(self.pending_changes(id))
            .map_err(|e| corrupt(&e))?;
        // Automerge queues a change whose dependencies are absent: without this check a store
        // that lost an entry would restore half a document, silently. (The accepted document
        // alone may lack this device's pending changes that an acked one builds on.)
        if !state.local.get_missing_deps(&[]).is_empty() {
            return Err(corrupt(
                &"stored changes miss the changes they build on (an entry is absent)",
            ));
        }
        self.docs.insert(id.clone(), state);
        self.index_due.doc(id);
        self.subscribe(id);
        Ok(())
    }

    /// Records a document new to this device in the store's index (`docs/`), so it is
    /// restored at start, with its genesis as its first snapshot: a restore then loads the
    /// genesis instead of making it again (loading is several times cheaper, and making it
    /// was a large share of restoring a young document), until the log is folded into a real
    /// snapshot.
    pub(super) fn index_doc(&mut self, id: &DocId) {
        self.loads.note_stored(id);
        let mut ops = vec![StoreOp::Put(format!("{DOCS_PREFIX}{id}"), Vec::new())];
        if let Some(state) = self.docs.get(id) {
            ops.push(StoreOp::Put(
                key_snapshot(id),
                state.snapshot_record(state.server.save()),
            ));
        }
        self.out.push(Output::Persist(ops));
    }

    /// Stores changes received in seq order; drops the ack records they replace; folds the
    /// log into a snapshot when due (after catch-up, not at every page of it).
    pub(super) fn persist_accepted(&mut self, id: &DocId, changes: &[(SeqChange, ChangeHash)]) {
        let Some(state) = self.docs.get_mut(id) else {
            return;
        };
        let mut ops = Vec::with_capacity(changes.len());
        for (c, hash) in changes {
            ops.push(StoreOp::Put(key_change(id, c.seq), c.change.to_vec()));
            if let Some(seq) = state.acked.remove(hash) {
                ops.push(StoreOp::Delete(key_ack(id, seq, hash)));
            }
        }
        state.changes_since_snapshot += changes.len();
        self.out.push(Output::Persist(ops));
        self.fold_if_due(id);
    }

    /// Folds the change log of `id` into a snapshot once it is long enough and catch-up is
    /// over: bounded store size and fast loads.
    pub(super) fn fold_if_due(&mut self, id: &DocId) {
        let Some(state) = self.docs.get_mut(id) else {
            return;
        };
        if state.catching_up || state.changes_since_snapshot < SNAPSHOT_EVERY {
            return;
        }
        let record = state.snapshot_record(state.server.save());
        state.changes_since_snapshot = 0;
        // The snapshot holds the acked changes too: their records go with the log.
        state.acked.clear();
        self.out.push(Output::Persist(vec![
            StoreOp::DeletePrefix(key_changes(id)),
            StoreOp::Put(key_snapshot(id), record),
        ]));
    }

    /// This device's `change` was accepted with `seq`: it joins the accepted document and the
    /// ops returned store it as accepted.
    ///
    /// When `seq` is the next one after the cursor, the ack *is* that seq arriving in order:
    /// the cursor moves and the change is stored as an accepted change, so the server's push
    /// of it to this connection (it pushes to the writer too) is skipped as held already — no
    /// second store write per message sent. After a gap it is kept as an ack record
    /// until its seq arrives in order. A change held already (its push came first, or a
    /// catch-up brought it) is stored under its own seq; its ack may carry another one (a
    /// resubmitted change folded into a server snapshot is acked with the snapshot's seq), so
    /// it changes nothing.
    pub(super) fn accept_own(&mut self, id: &DocId, change: Change, seq: u64) -> Vec<StoreOp> {
        let Some(state) = self.docs.get_mut(id) else {
            return Vec::new();
        };
        let hash = change.hash();
        if state.server.get_change_by_hash(&hash).is_some() {
            return Vec::new();
        }
        for message in created_messages(&change) {
            state.message_seq.insert(message, seq);
        }
        let raw = change.raw_bytes().to_vec();
        let before = state.server.get_heads();
        if state.server.apply_changes([change.clone()]).is_err() || seq <= state.cursor {
            // Not applicable, or (not held, so never in practice) at or below the cursor.
            return Vec::new();
        }
        let heads = state.server.get_heads();
        state.search.arrived(&before, heads, &[change]);
        self.index_due.doc(id);
        // (Applied, not queued for a missing dependency: the server accepted it after its
        // dependencies, so at `cursor + 1` they are all held; checked all the same.)
        if seq == state.cursor + 1 && state.server.get_change_by_hash(&hash).is_some() {
            state.cursor = seq;
            state.changes_since_snapshot += 1;
            return vec![StoreOp::Put(key_change(id, seq), raw)];
        }
        state.acked.insert(hash, seq);
        vec![StoreOp::Put(key_ack(id, seq, &hash), raw)]
    }

    /// The store write that mirrors outbox entry `id` (gone once accepted or dismissed).
    pub(super) fn entry_op(&self, id: u64) -> StoreOp {
        match self.outbox.get(&id) {
            Some(e) if !matches!(e.status, IntentStatus::Accepted) => {
                StoreOp::Put(key_outbox(id), cbor(e))
            }
            _ => StoreOp::Delete(key_outbox(id)),
        }
    }

    pub(super) fn persist_entry(&mut self, id: u64) {
        let mut ops = vec![self.entry_op(id)];
        // A scheduled message kept here leaves its list in the write that puts its send in
        // the outbox: a crash neither drops it nor posts it twice.
        ops.extend(self.posted(id));
        self.out.push(Output::Persist(ops));
    }
}
