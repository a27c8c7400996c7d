//! A message bucket's part of a timeline, cached per bucket document (issue 16).
//!
//! `timeline(conv)` used to read every message of every loaded bucket out of Automerge on
//! each call (~6 ms at 420 messages in the browser), and a page asks after every change: the
//! cost of one push grew with the conversation's loaded history. The cell keeps the bucket's
//! items as of the heads of its `local` and `server` documents and the number of known
//! message seqs (`message_seq` only grows between restores, and a restore replaces the
//! documents too); any change to what an item shows moves one of them, so the cache cannot
//! go stale. A push to today's bucket re-reads that bucket only. (`Arc`, not `Rc`: the engine
//! stays `Send`.)

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use automerge::ChangeHash;

use super::engine::ClientDoc;
use super::views::{accepted_messages, TimelineItem};
use crate::doc::read;
use crate::ids::Bucket;

/// What the cached items were read from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    local: Vec<ChangeHash>,
    server: Vec<ChangeHash>,
    seqs: usize,
}

/// The cached items of one bucket document (in its `ClientDoc`), unsorted.
#[derive(Debug, Default)]
pub(super) struct TimelineCell {
    slot: RefCell<Option<(Key, Arc<Vec<TimelineItem>>)>>,
    /// Times the bucket was read out of Automerge (tests check a push reads one bucket).
    reads: Cell<u64>,
}

impl TimelineCell {
    /// The bucket's items, read again only when the document moved.
    pub(super) fn items(state: &ClientDoc, bucket: Bucket) -> Arc<Vec<TimelineItem>> {
        let key = Key {
            local: state.local.get_heads(),
            server: state.server.get_heads(),
            seqs: state.message_seq.len(),
        };
        let cell = &state.timeline;
        if let Some((at, items)) = cell.slot.borrow().as_ref() {
            if *at == key {
                return items.clone();
            }
        }
        cell.reads.set(cell.reads.get() + 1);
        let accepted = accepted_messages(&state.server);
        let items: Arc<Vec<TimelineItem>> = Arc::new(
            read::read_messages(&state.local)
                .into_iter()
                .map(|message| TimelineItem {
                    seq: state.message_seq.get(&message.id).copied(),
                    bucket,
                    pending: !accepted.contains(&message.id),
                    message,
                })
                .collect(),
        );
        *cell.slot.borrow_mut() = Some((key, items.clone()));
        items
    }

    pub(super) fn reads(&self) -> u64 {
        self.reads.get()
    }
}

impl super::engine::ClientEngine {
    /// How often bucket documents were read out of Automerge for timelines (tests check that
    /// a push re-reads only the bucket it changed, so the cost cannot grow back silently).
    pub fn timeline_reads(&self) -> u64 {
        self.docs.values().map(|s| s.timeline.reads()).sum()
    }
}
