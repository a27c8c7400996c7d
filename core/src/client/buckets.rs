//! Which bucket part a message goes to, and what this client knows of a conversation's
//! parts (docs/FEATURES.md, "Bounded buckets").
//!
//! A state machine of its own (`BucketBook`): the server's listings and announcements,
//! refusals that move a message and paging that waits for a listing go in as method calls;
//! the part a message goes to, the listing to ask for and the requests a listing lets go
//! on come back. What the engine holds (stored and loaded parts, a part's message count)
//! is an input.
//!
//! The period of a message is fixed by its time; the part is the writer's best knowledge:
//! the newest part it knows of the period, or the next one once that holds
//! `BUCKET_TARGET_MESSAGES`. The server arbitrates: a post to a part that is full, or to a
//! new part whose predecessor is not full enough, is refused with a code that moves the
//! message (`bucket_full`, `bucket_not_open`) and the engine writes it again in the part
//! the refusal points to.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::ask::RequestId;
use crate::ids::{Bucket, ConvId, DocId, DocTarget};
use crate::limits::BUCKET_TARGET_MESSAGES;
use crate::policy::DenyCode;
use crate::protocol::ClientFrame;

/// How many times one message is moved to another part before it ends rejected (the
/// server's answers would have to contradict each other this often).
pub(super) const MOVES_MAX: u32 = 16;

/// How many parts one `buckets` request asks for.
pub(super) const BUCKETS_PAGE: u32 = 32;

/// A `load_older` request (at device time) waiting for `conv`'s listing.
pub(super) type Paging = (RequestId, ConvId, i64);

/// What the server told this client about parts, and which refusals moved messages.
#[derive(Debug, Default)]
pub(super) struct BucketBook {
    /// Parts the server listed or announced, per conversation.
    listed: HashMap<ConvId, BTreeSet<Bucket>>,
    /// Parts a `bucket_full` refusal closed.
    full: HashSet<(ConvId, Bucket)>,
    /// Parts a `bucket_not_open` refusal said may not be opened yet.
    not_open: HashSet<(ConvId, Bucket)>,
    /// Conversations whose listing went down to their oldest part.
    reached_start: HashSet<ConvId>,
    /// Conversations whose listing failed (an error answered it): paging walks what is
    /// stored until a listing comes, instead of asking again at once.
    unlisted: HashSet<ConvId>,
    /// `load_older` requests waiting for the server's listing, with their conversation.
    waiting: Vec<Paging>,
    /// How often each intent's message was moved.
    moves: HashMap<u64, u32>,
}

impl BucketBook {
    /// Forgets what one connection asked (the server's answers to it will not come).
    pub(super) fn take_waiting(&mut self) -> Vec<Paging> {
        std::mem::take(&mut self.waiting)
    }

    /// What listings said holds for their connection only: a device that wrote offline may
    /// open a part in an older period meanwhile, and a failed listing may succeed now.
    pub(super) fn disconnected(&mut self) {
        self.reached_start.clear();
        self.unlisted.clear();
    }

    pub(super) fn reached_start(&self, conv: &ConvId) -> bool {
        self.reached_start.contains(conv)
    }

    pub(super) fn may_ask(&self, conv: &ConvId) -> bool {
        !self.unlisted.contains(conv)
    }

    pub(super) fn moves_of(&self, id: u64) -> u32 {
        self.moves.get(&id).copied().unwrap_or(0)
    }

    pub(super) fn note_move(&mut self, id: u64) {
        *self.moves.entry(id).or_insert(0) += 1;
    }

    /// Forgets the listed parts of `conv` before `period` (the retention dropped them).
    pub(super) fn forget_before(&mut self, conv: &ConvId, period: i64) {
        if let Some(listed) = self.listed.get_mut(conv) {
            listed.retain(|b| b.period >= period);
        }
    }
}

impl BucketBook {
    /// The parts of `conv` the server listed or announced.
    pub(super) fn listed(&self, conv: &ConvId) -> impl DoubleEndedIterator<Item = Bucket> + '_ {
        self.listed.get(conv).into_iter().flatten().copied()
    }

    /// The newest listed part of `conv` in `parts`.
    pub(super) fn newest_listed(
        &self,
        conv: &ConvId,
        parts: std::ops::RangeInclusive<Bucket>,
    ) -> Option<Bucket> {
        self.listed
            .get(conv)
            .and_then(|l| l.range(parts).next_back().copied())
    }

    /// The part a message of `conv` goes to in its period: from `newest`, the newest part
    /// of the period known here (or the period's first), on past every part writers left
    /// (a refusal said it is full, or it holds the target here: `counted` gives a part's
    /// messages held here), unless a refusal said the next may not be opened yet.
    pub(super) fn place(
        &self,
        conv: &ConvId,
        newest: Bucket,
        counted: impl Fn(Bucket) -> usize,
    ) -> Bucket {
        let mut bucket = newest;
        while (self.full.contains(&(conv.clone(), bucket))
            || counted(bucket) >= BUCKET_TARGET_MESSAGES)
            && !self.not_open.contains(&(conv.clone(), bucket.next()))
            && bucket.part < u32::MAX
        {
            bucket = bucket.next();
        }
        bucket
    }

    /// A refusal that moves a message: remembers what it says of the part.
    pub(super) fn refused(&mut self, doc: &DocId, code: DenyCode) {
        let DocTarget::Msgs(conv, bucket) = doc.target() else {
            return;
        };
        let key = (conv.clone(), *bucket);
        match code {
            DenyCode::BucketFull => {
                self.full.insert(key);
            }
            DenyCode::BucketNotOpen => {
                self.not_open.insert(key);
            }
            _ => {}
        }
    }

    /// The request for the parts of `conv` (its conversation document `conv_doc`) older
    /// than `before` (the newest without it); the engine sends it while online.
    pub(super) fn ask(conv_doc: &DocId, before: Option<Bucket>) -> ClientFrame {
        ClientFrame::Buckets {
            doc: conv_doc.to_string(),
            before,
            limit: BUCKETS_PAGE,
        }
    }

    /// The server's listing of `conv`: parts newest first, `more` when older ones exist
    /// (the requests that waited for it: `take_waiting_for`).
    pub(super) fn on_listing(&mut self, conv: &ConvId, buckets: Vec<Bucket>, more: bool) {
        self.listed.entry(conv.clone()).or_default().extend(buckets);
        if !more {
            self.reached_start.insert(conv.clone());
        }
        self.unlisted.remove(conv);
    }

    /// Another writer opened `bucket` of `conv`.
    pub(super) fn on_opened(&mut self, conv: &ConvId, bucket: Bucket) {
        self.listed.entry(conv.clone()).or_default().insert(bucket);
    }

    /// An error about `conv`'s document may be the answer to its listing (storage down,
    /// access lost): paging that waited for it goes on with what is stored (so every
    /// `load_older` still ends), and asks no listing again on this connection. Returns the
    /// requests that waited.
    pub(super) fn listing_failed(&mut self, conv: &ConvId) -> Vec<Paging> {
        if !self.waiting.iter().any(|(_, c, _)| c == conv) {
            return Vec::new();
        }
        self.unlisted.insert(conv.clone());
        self.take_waiting_for(conv)
    }

    /// The requests waiting for `conv`'s listing, taken off the wait.
    pub(super) fn take_waiting_for(&mut self, conv: &ConvId) -> Vec<Paging> {
        let (ready, waiting) = self
            .take_waiting()
            .into_iter()
            .partition(|(_, c, _)| c == conv);
        self.waiting = waiting;
        ready
    }

    /// A `load_older` request that needs the server's listing waits for it.
    pub(super) fn wait_for_listing(&mut self, request: RequestId, conv: &ConvId, device_now: i64) {
        self.waiting.push((request, conv.clone(), device_now));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn conv() -> ConvId {
        ConvId::new("c1").unwrap()
    }

    fn doc(bucket: Bucket) -> DocId {
        DocId::msgs(&crate::ids::TenantId::new("t").unwrap(), &conv(), bucket)
    }

    #[test]
    fn a_message_moves_past_full_parts_but_not_into_one_not_open() {
        let mut book = BucketBook::default();
        let first = Bucket::first(5);
        assert_eq!(book.place(&conv(), first, |_| 0), first);
        // Full here by count, or by the server's word.
        let counted = |b: Bucket| {
            if b == first {
                BUCKET_TARGET_MESSAGES
            } else {
                0
            }
        };
        assert_eq!(book.place(&conv(), first, counted), first.next());
        book.refused(&doc(first), DenyCode::BucketFull);
        assert_eq!(book.place(&conv(), first, |_| 0), first.next());
        book.refused(&doc(first.next()), DenyCode::BucketNotOpen);
        assert_eq!(book.place(&conv(), first, |_| 0), first);
    }

    #[test]
    fn paging_waits_for_the_listing_of_its_conversation() {
        let mut book = BucketBook::default();
        let other = ConvId::new("c2").unwrap();
        book.wait_for_listing(RequestId(1), &conv(), 10);
        book.wait_for_listing(RequestId(2), &other, 20);
        book.on_listing(&conv(), vec![Bucket::first(4), Bucket::first(3)], false);
        assert_eq!(
            book.take_waiting_for(&conv()),
            vec![(RequestId(1), conv(), 10)]
        );
        assert!(book.reached_start(&conv()));
        assert_eq!(
            book.newest_listed(&conv(), Bucket::first(3)..=Bucket::new(3, u32::MAX)),
            Some(Bucket::first(3))
        );
        assert_eq!(
            book.listing_failed(&other),
            vec![(RequestId(2), other.clone(), 20)]
        );
        assert!(!book.may_ask(&other));
        book.disconnected();
        assert!(book.may_ask(&other) && !book.reached_start(&conv()));
    }
}
