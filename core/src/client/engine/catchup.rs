//! Catch-up from a `snapshot` frame: the server sends the saved document instead of the
//! changes when the client missed many of them (docs/PROTOCOL.md, "Catch-up"). Loading a saved
//! document is several times faster than applying its changes one batch at a time, and it is
//! ~30 bytes per message instead of ~290.

use std::collections::HashMap;

use automerge::{Automerge, ReadDoc};

use crate::client::engine::{ClientEngine, Event, Output};
use crate::client::records::{key_changes, key_snapshot};
use crate::client::store::StoreOp;
use crate::doc::{read, schema::keys};
use crate::ids::{DocId, DocTarget, MessageId};
use crate::protocol::SnapshotOrder;

impl ClientEngine {
    pub(super) fn on_snapshot(
        &mut self,
        doc: &str,
        seq: u64,
        data: &[u8],
        order: Option<&SnapshotOrder>,
        device_now: i64,
    ) {
        let Ok(id) = DocId::parse(doc) else {
            return;
        };
        if self.docs.get(&id).is_none_or(|state| seq <= state.cursor) {
            return; // nothing this client does not have
        }
        let Ok(loaded) = Automerge::load(data) else {
            return;
        };
        if self.is_newer_generation(&id, &loaded) {
            return self.replace_generation(&id, seq, loaded, data, device_now);
        }
        let pending = self.pending_changes(&id);
        let actor = self.config.actor.clone();
        let Some(state) = self.docs.get_mut(&id) else {
            return;
        };
        let mut server = loaded.with_actor(actor);
        let saved_heads = server.get_heads();
        // What this client holds beyond the snapshot (its own acked changes) stays; when it
        // holds nothing more, this finds that from the heads alone.
        if server.merge(&mut state.server).is_err() {
            return;
        }
        let complete = server.get_heads() == saved_heads;
        if let Some(order) = order {
            assign_seqs(&server, &mut state.message_seq, order);
        }
        let mut local = server.clone();
        if local.apply_changes(pending).is_err() {
            return;
        }
        state.server = server;
        state.local = local;
        self.index_due.doc(&id);
        state.cursor = seq;
        state.changes_since_snapshot = 0;
        // Their records go with the change log; the stored snapshot holds the changes.
        state.acked.clear();
        // The received bytes are the snapshot to store, unless the merge added to them.
        let data = if complete {
            data.to_vec()
        } else {
            state.server.save()
        };
        let record = state.snapshot_record(data);
        self.out.push(Output::Persist(vec![
            StoreOp::DeletePrefix(key_changes(&id)),
            StoreOp::Put(key_snapshot(&id), record),
        ]));
        // A catch-up brings messages too (the marker takes only the newest of others').
        self.delivery.arrived(&id);
        self.out.push(Output::Event(Event::Doc {
            doc: id.to_string(),
        }));
        match id.target() {
            DocTarget::Conv(conv) => {
                let conv = conv.clone();
                self.follow_group(&conv);
            }
            DocTarget::Msgs(..) => self.open_arrived(&id, None),
            _ => {}
        }
    }
}

/// Gives every message of `doc` without a seq the seq of the change that created it, found
/// from the op id of its map: the change of the same actor with the greatest start op not
/// above the op's counter (an actor's changes cover increasing, disjoint op ranges).
/// Messages made by changes `order` does not describe keep no seq.
fn assign_seqs(doc: &Automerge, message_seq: &mut HashMap<MessageId, u64>, order: &SnapshotOrder) {
    let mut by_actor: HashMap<&[u8], Vec<(u64, u64)>> = HashMap::new();
    for (seq, actor, start_op) in order.entries() {
        by_actor.entry(actor).or_default().push((start_op, seq));
    }
    for starts in by_actor.values_mut() {
        starts.sort_unstable();
    }
    let Some(messages) = read::get_map(doc, &automerge::ROOT, keys::MESSAGES) else {
        return;
    };
    for shard in doc.map_range(&messages, ..) {
        for item in doc.map_range(shard.id(), ..) {
            let automerge::ObjId::Id(counter, actor, _) = item.id() else {
                continue;
            };
            let Ok(message) = MessageId::new(item.key.as_ref()) else {
                continue;
            };
            if message_seq.contains_key(&message) {
                continue;
            }
            let Some(starts) = by_actor.get(actor.to_bytes()) else {
                continue;
            };
            let at = starts.partition_point(|(start, _)| *start <= counter);
            if let Some((_, seq)) = at.checked_sub(1).and_then(|i| starts.get(i)) {
                message_seq.insert(message, *seq);
            }
        }
    }
}
