//! A message part replaced by its next generation (docs/PROTOCOL.md, "Generations"): the
//! server cut its history, and a `snapshot` whose document's `generation` is above the copy's
//! is not merged (that would bring the cut history back) but takes the copy's place. The
//! device's stored changes of it go, and each intent pending on it is written again on the
//! new generation (the outbox holds intents), where it ends accepted or rejected for a
//! reason about itself.

use automerge::{Automerge, Change, ReadDoc};

use crate::client::engine::{ClientEngine, Event, Output};
use crate::client::outbox;
use crate::client::records::{key_changes, key_snapshot};
use crate::client::store::StoreOp;
use crate::doc::{cut, read};
use crate::ids::DocId;

impl ClientEngine {
    /// The generation of this device's copy of `doc` (`None`: not held).
    pub fn generation(&self, doc: &DocId) -> Option<u64> {
        self.docs
            .get(doc)
            .map(|state| cut::generation(&state.server))
    }

    /// Whether a `missing_dependency` for this device's change `hash` to `doc` says the
    /// server cut the part: every dependency of the change is in the copy the device holds
    /// as accepted, so the server no longer has what it accepted. (A dependency on the
    /// device's own unacked change is not in that copy.)
    pub(super) fn lost_by_a_cut(&self, doc: &str, hash: &[u8]) -> bool {
        let (Ok(id), Some((intent, index))) =
            (DocId::parse(doc), outbox::find(&self.outbox, doc, hash))
        else {
            return false;
        };
        let change = self
            .outbox
            .get(&intent)
            .and_then(|e| e.changes.get(index))
            .and_then(|c| Change::try_from(&c.bytes[..]).ok());
        match (change, self.docs.get(&id)) {
            (Some(change), Some(state)) => change
                .deps()
                .iter()
                .all(|dep| state.server.get_change_by_hash(dep).is_some()),
            _ => false,
        }
    }

    /// Whether `loaded`, a snapshot of `id`, is of a newer generation than the copy held.
    pub(super) fn is_newer_generation(&self, id: &DocId, loaded: &Automerge) -> bool {
        self.docs
            .get(id)
            .is_some_and(|state| cut::generation(loaded) > cut::generation(&state.server))
    }

    /// Replaces the copy of `id` by `loaded`, the generation the server holds as of `seq`
    /// (its saved bytes `data`), and writes the pending intents again on it.
    pub(super) fn replace_generation(
        &mut self,
        id: &DocId,
        seq: u64,
        loaded: Automerge,
        data: &[u8],
        device_now: i64,
    ) {
        let actor = self.config.actor.clone();
        let Some(state) = self.docs.get_mut(id) else {
            return;
        };
        let server = loaded.with_actor(actor);
        // Messages keep the seqs this device knew (their ids outlive the cut); the others
        // take the cut's.
        for message in read::read_messages(&server) {
            state.message_seq.entry(message.id).or_insert(seq);
        }
        state.local = server.clone();
        state.server = server;
        self.index_due.doc(id);
        state.cursor = seq;
        state.changes_since_snapshot = 0;
        state.acked.clear();
        let record = state.snapshot_record(data.to_vec());
        self.out.push(Output::Persist(vec![
            StoreOp::DeletePrefix(key_changes(id)),
            StoreOp::Put(key_snapshot(id), record),
        ]));
        let doc = id.to_string();
        let pending: Vec<u64> = self
            .outbox
            .values()
            .filter(|e| !e.is_final())
            .filter(|e| e.changes.iter().any(|c| c.doc == doc && !c.acked))
            .map(|e| e.id)
            .collect();
        let now = self.server_now(device_now);
        for intent in pending {
            self.write_again(intent, id, now, device_now);
        }
        self.delivery.arrived(id);
        self.out.push(Output::Event(Event::Doc { doc }));
        self.open_arrived(id, None);
    }
}
