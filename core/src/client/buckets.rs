//! Which bucket part a message goes to, and what this client knows of a conversation's
//! parts (docs/FEATURES.md, "Bounded buckets").
//!
//! The period of a message is fixed by its time; the part is the writer's best knowledge:
//! the newest part it knows of the period, or the next one once that holds
//! `BUCKET_TARGET_MESSAGES`. The server arbitrates: a post to a part that is full, or to a
//! new part whose predecessor is not full enough, is refused with a code that moves the
//! message (`bucket_full`, `bucket_not_open`) and the engine writes it again in the part
//! the refusal points to.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::ask::{Job, RequestId};
use super::engine::{ClientEngine, Event, Output};
use crate::ids::{Bucket, ConvId, DocId, DocTarget};
use crate::limits::BUCKET_TARGET_MESSAGES;
use crate::policy::DenyCode;
use crate::protocol::ClientFrame;

/// How many times one message is moved to another part before it ends rejected (the
/// server's answers would have to contradict each other this often).
pub(super) const MOVES_MAX: u32 = 16;

/// How many parts one `buckets` request asks for.
pub(super) const BUCKETS_PAGE: u32 = 32;

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
    waiting: Vec<(RequestId, ConvId, i64)>,
    /// How often each intent's message was moved.
    moves: HashMap<u64, u32>,
}

impl BucketBook {
    /// Forgets what one connection asked (the server's answers to it will not come).
    pub(super) fn take_waiting(&mut self) -> Vec<(RequestId, ConvId, i64)> {
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

impl ClientEngine {
    /// Every part of `conv` this client knows of: listed by the server, stored, in memory.
    pub(super) fn known_buckets(&self, conv: &ConvId) -> BTreeSet<Bucket> {
        let mut known = self.buckets.listed.get(conv).cloned().unwrap_or_default();
        let of_conv = |d: &DocId| match d.target() {
            DocTarget::Msgs(c, b) if c == conv => Some(*b),
            _ => None,
        };
        // Key ranges: the cost is this conversation's parts, not every stored document.
        let tenant = &self.config.tenant;
        let range = DocId::msgs(tenant, conv, Bucket::new(i64::MIN, 0))
            ..=DocId::msgs(tenant, conv, Bucket::new(i64::MAX, u32::MAX));
        known.extend(self.loads.stored_in(range.clone()).filter_map(of_conv));
        known.extend(self.docs.range(range).map(|(d, _)| d).filter_map(of_conv));
        known
    }

    /// The newest part of `period` this client knows of (listed, stored or in memory), by
    /// key ranges: a send asks it, so no set of every part is built.
    pub(super) fn newest_known(&self, conv: &ConvId, period: i64) -> Option<Bucket> {
        let parts = Bucket::first(period)..=Bucket::new(period, u32::MAX);
        let tenant = &self.config.tenant;
        let docs =
            DocId::msgs(tenant, conv, *parts.start())..=DocId::msgs(tenant, conv, *parts.end());
        let of_conv = |d: &DocId| match d.target() {
            DocTarget::Msgs(c, b) if c == conv => Some(*b),
            _ => None,
        };
        let listed = self
            .buckets
            .listed
            .get(conv)
            .and_then(|l| l.range(parts).next_back().copied());
        let stored = self
            .loads
            .stored_in(docs.clone())
            .filter_map(of_conv)
            .next_back();
        let loaded = self
            .docs
            .range(docs)
            .map(|(d, _)| d)
            .filter_map(of_conv)
            .next_back();
        [listed, stored, loaded].into_iter().flatten().max()
    }

    /// The part a message of `conv` created at `created_at` goes to (see the module docs).
    pub fn bucket_for(&self, conv: &ConvId, created_at: i64) -> Bucket {
        let period = created_at.div_euclid(self.bucket_ms(conv).max(1));
        let mut bucket = self
            .newest_known(conv, period)
            .unwrap_or(Bucket::first(period));
        while self.moved_on(conv, bucket)
            && !self
                .buckets
                .not_open
                .contains(&(conv.clone(), bucket.next()))
            && bucket.part < u32::MAX
        {
            bucket = bucket.next();
        }
        bucket
    }

    /// Writers leave `bucket`: a refusal said it is full, or it holds the target here.
    fn moved_on(&self, conv: &ConvId, bucket: Bucket) -> bool {
        if self.buckets.full.contains(&(conv.clone(), bucket)) {
            return true;
        }
        self.docs
            .get(&DocId::msgs(&self.config.tenant, conv, bucket))
            .is_some_and(|d| d.view.message_count(&d.local) >= BUCKET_TARGET_MESSAGES)
    }

    /// A refusal that moves a message: remembers what it says of the part.
    pub(super) fn note_bucket_refusal(&mut self, doc: &DocId, code: DenyCode) {
        let DocTarget::Msgs(conv, bucket) = doc.target() else {
            return;
        };
        let key = (conv.clone(), *bucket);
        match code {
            DenyCode::BucketFull => {
                self.buckets.full.insert(key);
            }
            DenyCode::BucketNotOpen => {
                self.buckets.not_open.insert(key);
            }
            _ => {}
        }
    }

    /// Asks the server for parts of `conv` older than `before` (the newest without it).
    pub(super) fn ask_buckets(&mut self, conv: &ConvId, before: Option<Bucket>) {
        if !self.online {
            return;
        }
        self.out.push(Output::Send(ClientFrame::Buckets {
            doc: DocId::conv(&self.config.tenant, conv).to_string(),
            before,
            limit: BUCKETS_PAGE,
        }));
    }

    /// The server's listing: parts newest first, `more` when older ones exist.
    pub(super) fn on_buckets(&mut self, doc: &str, buckets: Vec<Bucket>, more: bool) {
        let Ok(id) = DocId::parse(doc) else {
            return;
        };
        let DocTarget::Conv(conv) = id.target() else {
            return;
        };
        let conv = conv.clone();
        let newest = buckets.first().copied();
        self.buckets
            .listed
            .entry(conv.clone())
            .or_default()
            .extend(buckets);
        if !more {
            self.buckets.reached_start.insert(conv.clone());
        }
        self.buckets.unlisted.remove(&conv);
        if let Some(newest) = newest {
            self.follow_newest(&conv, newest);
        }
        let (ready, waiting): (Vec<_>, Vec<_>) = self
            .buckets
            .take_waiting()
            .into_iter()
            .partition(|(_, c, _)| *c == conv);
        self.buckets.waiting = waiting;
        self.page_again(ready);
        self.out.push(Output::Event(Event::Doc {
            doc: id.to_string(),
        }));
    }

    /// Another writer opened a part of `conv`.
    pub(super) fn on_bucket(&mut self, doc: &str, bucket: Bucket) {
        let Ok(id) = DocId::parse(doc) else {
            return;
        };
        let DocTarget::Conv(conv) = id.target() else {
            return;
        };
        let conv = conv.clone();
        self.buckets
            .listed
            .entry(conv.clone())
            .or_default()
            .insert(bucket);
        self.follow_newest(&conv, bucket);
    }

    /// A client that holds a part of `conv` in memory follows the conversation's live end:
    /// a newer part is opened (and subscribed) as soon as it is known.
    fn follow_newest(&mut self, conv: &ConvId, bucket: Bucket) {
        let tenant = self.config.tenant.clone();
        let newest_loaded = self
            .docs
            .range(
                DocId::msgs(&tenant, conv, Bucket::new(i64::MIN, 0))
                    ..=DocId::msgs(&tenant, conv, Bucket::new(i64::MAX, u32::MAX)),
            )
            .filter_map(|(d, _)| match d.target() {
                DocTarget::Msgs(c, b) if c == conv => Some(*b),
                _ => None,
            })
            .max();
        if newest_loaded.is_some_and(|n| bucket > n) {
            let doc = DocId::msgs(&tenant, conv, bucket);
            if let Err(e) = self.open_doc(&doc) {
                self.out.push(Output::Event(Event::Error {
                    code: e.code().to_owned(),
                    message: format!("{doc}: {e}"),
                }));
            }
        }
    }

    /// An error about a conversation's `conv` document may be the answer to its listing
    /// (storage down, access lost): paging that waited for it goes on with what is stored,
    /// so every `load_older` still ends.
    pub(super) fn listing_failed(&mut self, doc: &str) {
        let Ok(id) = DocId::parse(doc) else {
            return;
        };
        let DocTarget::Conv(conv) = id.target() else {
            return;
        };
        if !self.buckets.waiting.iter().any(|(_, c, _)| c == conv) {
            return;
        }
        self.buckets.unlisted.insert(conv.clone());
        let (ready, waiting): (Vec<_>, Vec<_>) = self
            .buckets
            .take_waiting()
            .into_iter()
            .partition(|(_, c, _)| c == conv);
        self.buckets.waiting = waiting;
        self.page_again(ready);
    }

    /// `load_older` requests that waited for a listing take their next step (with what the
    /// listing brought, or offline with what is stored).
    pub(super) fn page_again(&mut self, requests: Vec<(RequestId, ConvId, i64)>) {
        for (request, conv, device_now) in requests {
            self.loads.queue.push_back(Job::Older {
                request,
                conv,
                device_now,
                target: None,
            });
        }
        self.advance();
    }

    /// A `load_older` request that needs the server's listing waits for it.
    pub(super) fn wait_for_listing(
        &mut self,
        request: RequestId,
        conv: &ConvId,
        before: Option<Bucket>,
        device_now: i64,
    ) {
        self.buckets
            .waiting
            .push((request, conv.clone(), device_now));
        self.ask_buckets(conv, before);
    }
}
