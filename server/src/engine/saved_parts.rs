//! The saved bytes of message bucket parts, kept for catch-up and shared by every unit of
//! the node.
//!
//! Why: a client that missed much is sent each bucket part as a saved document (`catchup`).
//! Saving a part is Automerge's `save` (mostly DEFLATE), and a part that left memory (a unit
//! keeps a few per conversation) is first loaded again from its change log: together most
//! of the server's time in a catch-up of 10,000 messages, paid again for every client
//! (docs/BENCHMARKS.md, "Client catch-up"). A part's content at a committed seq never
//! changes, so its saved bytes are kept with that seq, together with the actor and start op
//! of each logged change (the snapshot's `order`), and sent to every later client while the
//! part's log still ends at that seq. A part with accepted changes not yet committed is
//! never kept (its seq is not durable yet).
//!
//! Bounded by bytes in two generations (the older is dropped whole when the newer fills, so
//! what is in use stays without an LRU's bookkeeping): at most `2 * GENERATION_BYTES`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use confab_core::ids::DocId;
use confab_core::protocol::SnapshotOrder;

/// Saved bytes kept per generation. A closed part of 1,000 short messages saves to ~35 KB,
/// so a generation holds about 900 of them.
const GENERATION_BYTES: usize = 32 << 20;

/// A part as saved at a committed seq.
#[derive(Debug)]
pub(crate) struct SavedPart {
    /// The seq of the newest change the bytes hold.
    pub last_seq: u64,
    /// The part's compaction seq when it was saved: changes up to it have no seq of their own.
    pub snapshot_seq: u64,
    /// Automerge `save` of the part.
    pub data: Vec<u8>,
    /// Actor and start op of each change after `snapshot_seq`, `None` when the log did not
    /// hold them all (the snapshot is then sent without an order, as it would be unkept).
    pub heads: Option<Heads>,
}

impl SavedPart {
    fn weight(&self) -> usize {
        self.data.len() + self.heads.as_ref().map_or(0, Heads::weight)
    }

    /// The order of the changes after `after` (or after the compaction, if later).
    pub fn order_after(&self, after: u64) -> Option<SnapshotOrder> {
        let from = after.max(self.snapshot_seq);
        self.heads
            .as_ref()
            .and_then(|h| h.order(self.snapshot_seq, from))
    }
}

/// The (actor, start op) of consecutive changes, with each actor stored once.
#[derive(Debug, Default)]
pub(crate) struct Heads {
    actors: Vec<Vec<u8>>,
    changes: Vec<(u32, u64)>,
}

impl Heads {
    /// From the heads of consecutive changes, in seq order.
    pub fn collect<'a>(heads: impl IntoIterator<Item = (&'a [u8], u64)>) -> Self {
        let mut out = Heads::default();
        let mut index: HashMap<&'a [u8], u32> = HashMap::new();
        for (actor, start_op) in heads {
            let next = out.actors.len() as u32;
            let i = *index.entry(actor).or_insert_with(|| {
                out.actors.push(actor.to_vec());
                next
            });
            out.changes.push((i, start_op));
        }
        out
    }

    fn weight(&self) -> usize {
        self.actors.iter().map(Vec::len).sum::<usize>() + self.changes.len() * 16
    }

    /// The order of the changes after `from`, these heads starting after `base`.
    pub fn order(&self, base: u64, from: u64) -> Option<SnapshotOrder> {
        let skip = usize::try_from(from.checked_sub(base)?).ok()?;
        let rest = self.changes.get(skip..)?;
        Some(SnapshotOrder::build(
            from + 1,
            rest.iter()
                .map(|(i, op)| (self.actors[*i as usize].as_slice(), *op)),
        ))
    }
}

#[derive(Debug, Default)]
struct Generations {
    newer: HashMap<DocId, Arc<SavedPart>>,
    newer_bytes: usize,
    older: HashMap<DocId, Arc<SavedPart>>,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct SavedParts {
    kept: Mutex<Generations>,
}

impl SavedParts {
    /// The kept save of `doc`, if any (its seq is for the caller to check).
    pub(crate) fn get(&self, doc: &DocId) -> Option<Arc<SavedPart>> {
        let mut kept = self.lock();
        if let Some(part) = kept.newer.get(doc) {
            return Some(part.clone());
        }
        // Still in use: moves to the newer generation so it outlives the older one.
        let part = kept.older.remove(doc)?;
        kept.insert(doc.clone(), part.clone());
        Some(part)
    }

    /// Keeps the save of `doc` at a committed seq, unless one of a later seq is kept.
    pub(crate) fn keep(&self, doc: &DocId, part: SavedPart) -> Arc<SavedPart> {
        let part = Arc::new(part);
        let mut kept = self.lock();
        let later = kept
            .newer
            .get(doc)
            .or_else(|| kept.older.get(doc))
            .filter(|k| k.last_seq > part.last_seq)
            .cloned();
        if later.is_some() {
            return part;
        }
        kept.older.remove(doc);
        kept.insert(doc.clone(), part.clone());
        part
    }

    /// Forgets `doc` (retention dropped it).
    pub(crate) fn forget(&self, doc: &DocId) {
        let mut kept = self.lock();
        if let Some(old) = kept.newer.remove(doc) {
            kept.newer_bytes = kept.newer_bytes.saturating_sub(old.weight());
        }
        kept.older.remove(doc);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // Every step leaves the maps consistent, so a poisoned lock is still usable.
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Generations {
    fn insert(&mut self, doc: DocId, part: Arc<SavedPart>) {
        let weight = part.weight();
        if self.newer_bytes + weight > GENERATION_BYTES && !self.newer.is_empty() {
            self.older = std::mem::take(&mut self.newer);
            self.newer_bytes = 0;
        }
        if let Some(old) = self.newer.insert(doc, part) {
            self.newer_bytes = self.newer_bytes.saturating_sub(old.weight());
        }
        self.newer_bytes += weight;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_core::ids::{Bucket, ConvId, TenantId};

    fn part_doc(n: u32) -> DocId {
        let tenant = TenantId::new("t1").expect("tenant id");
        let conv = ConvId::new("g-kept").expect("conv id");
        DocId::msgs(&tenant, &conv, Bucket { period: 1, part: n })
    }

    fn saved(last_seq: u64, bytes: usize) -> SavedPart {
        SavedPart {
            last_seq,
            snapshot_seq: 0,
            data: vec![0; bytes],
            heads: None,
        }
    }

    #[test]
    fn an_order_is_cut_from_the_kept_heads_for_any_cursor_after_the_compaction() {
        let a: &[u8] = b"actor-a";
        let b: &[u8] = b"actor-b";
        let heads = Heads::collect([(a, 1), (b, 1), (a, 4), (b, 3)]);
        let part = SavedPart {
            last_seq: 14,
            snapshot_seq: 10,
            data: Vec::new(),
            heads: Some(heads),
        };
        let whole = part.order_after(0).expect("order from the compaction");
        assert_eq!(whole.from, 11);
        assert_eq!(
            whole.entries(),
            vec![(11, a, 1), (12, b, 1), (13, a, 4), (14, b, 3)]
        );
        let cut = part.order_after(12).expect("order after 12");
        assert_eq!(cut.entries(), vec![(13, a, 4), (14, b, 3)]);
        assert!(part.order_after(14).is_some_and(|o| o.entries().is_empty()));
        assert!(part.order_after(15).is_none(), "a cursor past the part");
    }

    #[test]
    fn kept_bytes_stay_within_two_generations_and_what_is_used_stays() {
        let parts = SavedParts::default();
        let each = GENERATION_BYTES / 4;
        parts.keep(&part_doc(0), saved(1, each));
        for n in 1..20 {
            parts.keep(&part_doc(n), saved(1, each));
            // Part 0 is in use all along.
            assert!(parts.get(&part_doc(0)).is_some(), "after {n} more");
        }
        let kept = parts.lock();
        let total: usize = kept
            .newer
            .values()
            .chain(kept.older.values())
            .map(|p| p.weight())
            .sum();
        assert!(total <= 2 * GENERATION_BYTES, "{total} bytes kept");
        assert!(kept.newer.len() + kept.older.len() < 20);
    }

    #[test]
    fn a_save_of_a_later_seq_wins_and_a_forgotten_part_is_gone() {
        let parts = SavedParts::default();
        parts.keep(&part_doc(1), saved(5, 10));
        parts.keep(&part_doc(1), saved(9, 10));
        assert_eq!(parts.get(&part_doc(1)).map(|p| p.last_seq), Some(9));
        parts.keep(&part_doc(1), saved(7, 10));
        assert_eq!(
            parts.get(&part_doc(1)).map(|p| p.last_seq),
            Some(9),
            "a save made late, of an older seq"
        );
        parts.forget(&part_doc(1));
        assert!(parts.get(&part_doc(1)).is_none());
        assert_eq!(parts.lock().newer_bytes, 0);
    }
}
