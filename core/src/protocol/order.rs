//! `snapshot.order`: which change got which `seq` (docs/PROTOCOL.md, "Catch-up"). A saved
//! Automerge document keeps no seqs, so a snapshot alone loses the server order of its
//! messages (a timeline is in acceptance order); this field gives it back for the changes
//! the client had not seen, in about two bytes per change.
//!
//! A change is named by its actor and its start op: an actor's changes cover disjoint,
//! increasing op ranges, so the op id `(counter, actor)` of anything a change made (a
//! message's map) finds its change — the one of that actor with the greatest start op
//! `<= counter`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// The seqs of a run of changes (field `order` of a `snapshot` frame).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotOrder {
    /// The seq of the first change described; the others follow without gaps.
    pub from: u64,
    /// The actors of the described changes; `changes` names them by index.
    pub actors: Vec<ByteBuf>,
    /// Two integers per change, in seq order: the index of its actor in `actors`, then its
    /// start op minus the start op of the change before it (the first: minus 0).
    pub changes: Vec<i64>,
}

impl SnapshotOrder {
    /// Builds the order of the changes `from`, `from + 1`, ... given as (actor, start op).
    pub fn build<'a>(from: u64, changes: impl IntoIterator<Item = (&'a [u8], u64)>) -> Self {
        let mut order = SnapshotOrder {
            from,
            ..SnapshotOrder::default()
        };
        let mut index: HashMap<&[u8], i64> = HashMap::new();
        let mut previous: i64 = 0;
        for (actor, start_op) in changes {
            let next = index.len() as i64;
            let i = *index.entry(actor).or_insert_with(|| {
                order.actors.push(ByteBuf::from(actor.to_vec()));
                next
            });
            let start = i64::try_from(start_op).unwrap_or(i64::MAX);
            order.changes.push(i);
            order.changes.push(start.saturating_sub(previous));
            previous = start;
        }
        order
    }

    /// The described changes as (seq, actor, start op). Stops at the first entry that does not
    /// make sense (an unknown actor index, a start op below 1): the input comes off the wire.
    pub fn entries(&self) -> Vec<(u64, &[u8], u64)> {
        let mut out = Vec::with_capacity(self.changes.len() / 2);
        let mut start: i64 = 0;
        for (n, pair) in self.changes.chunks_exact(2).enumerate() {
            let actor = usize::try_from(pair[0])
                .ok()
                .and_then(|i| self.actors.get(i));
            let Some(actor) = actor else { break };
            let Some(next) = start.checked_add(pair[1]).filter(|s| *s >= 1) else {
                break;
            };
            let Some(seq) = self.from.checked_add(n as u64) else {
                break;
            };
            start = next;
            out.push((seq, actor.as_slice(), start as u64));
        }
        out
    }
}

/// Reads the actor and start op from the header of an uncompressed Automerge change chunk
/// without parsing its columns (what the server stored: changes are validated before).
/// `None` if the bytes are not such a chunk.
pub fn change_actor_and_start_op(bytes: &[u8]) -> Option<(&[u8], u64)> {
    const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
    const CHANGE: u8 = 1;
    if bytes.get(..4)? != MAGIC || *bytes.get(8)? != CHANGE {
        return None;
    }
    let mut at = 9;
    let _length = uleb(bytes, &mut at)?;
    let deps = uleb(bytes, &mut at)?;
    at = at.checked_add(usize::try_from(deps).ok()?.checked_mul(32)?)?;
    let actor_len = usize::try_from(uleb(bytes, &mut at)?).ok()?;
    let actor = bytes.get(at..at.checked_add(actor_len)?)?;
    at += actor_len;
    let _seq = uleb(bytes, &mut at)?;
    let start_op = uleb(bytes, &mut at)?;
    (start_op >= 1).then_some((actor, start_op))
}

/// An unsigned LEB128 integer at `*at` (at most 64 bits), advancing `at`.
fn uleb(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn build_and_entries_round_trip() {
        let a = [1u8; 16];
        let b = [2u8; 16];
        let order =
            SnapshotOrder::build(41, [(&a[..], 10), (&b[..], 7), (&a[..], 16), (&b[..], 20)]);
        assert_eq!(order.actors.len(), 2);
        assert_eq!(order.changes, vec![0, 10, 1, -3, 0, 9, 1, 4]);
        let entries = order.entries();
        assert_eq!(
            entries,
            vec![
                (41, &a[..], 10),
                (42, &b[..], 7),
                (43, &a[..], 16),
                (44, &b[..], 20)
            ]
        );
    }

    #[test]
    fn nonsense_entries_end_the_list() {
        let order = SnapshotOrder {
            from: u64::MAX,
            actors: vec![ByteBuf::from(vec![1])],
            changes: vec![0, 5, 7, 1, 0, 1],
        };
        assert_eq!(order.entries(), vec![(u64::MAX, &[1u8][..], 5)]);
        let negative = SnapshotOrder {
            from: 1,
            actors: vec![ByteBuf::from(vec![1])],
            changes: vec![0, -1, 0, 3],
        };
        assert!(negative.entries().is_empty());
    }

    #[test]
    fn the_header_of_a_real_change_gives_its_actor_and_start_op() {
        let id = crate::ids::DocId::parse("acme/conv/g1").unwrap();
        let actor = automerge::ActorId::from(&[9u8; 16][..]);
        let mut doc = crate::doc::genesis(&id).unwrap().with_actor(actor.clone());
        let mut tx = doc.transaction();
        automerge::transaction::Transactable::put(&mut tx, automerge::ROOT, "x", 1).unwrap();
        tx.commit();
        let change = doc.get_last_local_change().unwrap();
        let (got_actor, start) = change_actor_and_start_op(change.raw_bytes()).unwrap();
        assert_eq!(got_actor, actor.to_bytes());
        assert_eq!(start, change.start_op().get());
        for cut in 0..change.raw_bytes().len().min(64) {
            let _ = change_actor_and_start_op(&change.raw_bytes()[..cut]);
        }
        assert_eq!(change_actor_and_start_op(b"not a change"), None);
    }
}
