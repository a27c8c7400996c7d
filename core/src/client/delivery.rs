//! Delivery markers the engine writes by itself (a message's "delivered", the ✓✓ of a
//! chat): when messages of others arrive from the server, the device moves its account's
//! `members/<account>/delivered` to the newest of them, without the app asking. Every
//! host gets it, since it lives here and not in one runtime.
//!
//! Coalesced: arrivals in a conversation are marked at most once per
//! `DELIVERED_INTERVAL_MS` (a burst of N messages costs one marker write, not N), the
//! first after `DELIVERED_DELAY_MS` so a burst that is still arriving is taken whole.
//! Forward only, never for this account's own messages, and only while the policy lets
//! the member write its marker (an inactive member writes nothing), and only in direct,
//! support and group conversations of at most `AUTO_DELIVERED_MAX_MEMBERS` members (the
//! cost of a marker grows with the group: see there). A host turns it off with
//! `set_auto_delivered(false)` and may still write `Intent::MarkDelivered` itself.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::engine::ClientEngine;
use super::intent::Intent;
use super::timeline_cache::TimelineCell;
use crate::ids::{Bucket, ConvId, DocId, DocTarget, MessageId};
use crate::model::conversation::{ConvKind, Conversation};

/// The wait after the first arrival before the marker is written (device ms).
pub const DELIVERED_DELAY_MS: i64 = 300;
/// The least time between two marker writes of one conversation (device ms).
pub const DELIVERED_INTERVAL_MS: i64 = 2_000;
/// Automatic markers only in conversations of at most this many members, and never in
/// channels. A marker is a change of the conversation document, which every subscriber
/// receives: in a conversation of n members one message would cost n writes and n² pushes
/// (a 10,000-subscriber channel: 10⁸ per post). Channels count views instead; an app may
/// still mark by hand anywhere (`Intent::MarkDelivered`).
pub const AUTO_DELIVERED_MAX_MEMBERS: usize = 32;

/// What the engine knows of arrivals still to mark.
#[derive(Debug)]
pub(super) struct Delivery {
    enabled: bool,
    /// Conversations where messages arrived in the frame being handled (the frame's time
    /// is known only once it is handled).
    arrived: BTreeSet<ConvId>,
    /// When each conversation's marker is due (device ms).
    due: BTreeMap<ConvId, i64>,
    /// When the engine last wrote each conversation's marker (device ms).
    last: HashMap<ConvId, i64>,
    /// Conversations whose marker was due while their conversation document was not here
    /// yet (subscribed, not synced: messages can arrive first): scheduled again when it
    /// syncs.
    waiting: BTreeSet<ConvId>,
}

/// What `delivered_target` found.
enum Target {
    Mark(MessageId),
    /// Nothing to mark (marked already, none of others, or not where markers are written).
    Nothing,
    /// The conversation document is not here yet: the member list and the marker are unknown.
    NotYet,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            enabled: true,
            arrived: BTreeSet::new(),
            due: BTreeMap::new(),
            last: HashMap::new(),
            waiting: BTreeSet::new(),
        }
    }
}

impl ClientEngine {
    /// Whether the engine marks arrived messages of others delivered by itself (on unless
    /// turned off). Off drops what waits to be marked.
    pub fn set_auto_delivered(&mut self, on: bool) {
        self.delivery.enabled = on;
        if !on {
            self.delivery.arrived.clear();
            self.delivery.due.clear();
            self.delivery.waiting.clear();
        }
    }

    pub fn auto_delivered(&self) -> bool {
        self.delivery.enabled
    }

    /// Messages were created in `doc` by changes from the server.
    pub(super) fn note_arrival(&mut self, doc: &DocId) {
        if !self.delivery.enabled {
            return;
        }
        if let DocTarget::Msgs(conv, _) = doc.target() {
            self.delivery.arrived.insert(conv.clone());
        }
    }

    /// `conv`'s conversation document synced: a marker that waited for it is scheduled.
    pub(super) fn conversation_synced(&mut self, conv: &ConvId) {
        if self.delivery.waiting.remove(conv) {
            self.delivery.arrived.insert(conv.clone());
        }
    }

    /// Schedules the conversations noted while handling a frame received at `device_now`.
    pub(super) fn schedule_delivered(&mut self, device_now: i64) {
        let d = &mut self.delivery;
        for conv in std::mem::take(&mut d.arrived) {
            if d.due.contains_key(&conv) {
                continue; // already waiting: this arrival joins it
            }
            let after_last = d
                .last
                .get(&conv)
                .map_or(i64::MIN, |t| t.saturating_add(DELIVERED_INTERVAL_MS));
            let at = device_now
                .saturating_add(DELIVERED_DELAY_MS)
                .max(after_last);
            d.due.insert(conv, at);
        }
    }

    /// The earliest due marker (device ms).
    pub(super) fn delivered_wakeup(&self) -> Option<i64> {
        self.delivery.due.values().min().copied()
    }

    /// Writes the markers due at `device_now`.
    pub(super) fn delivered_due(&mut self, device_now: i64) {
        let due: Vec<ConvId> = self
            .delivery
            .due
            .iter()
            .filter(|(_, at)| **at <= device_now)
            .map(|(c, _)| c.clone())
            .collect();
        for conv in due {
            self.delivery.due.remove(&conv);
            let message = match self.delivered_target(&conv) {
                Target::Mark(message) => message,
                Target::Nothing => continue,
                Target::NotYet => {
                    self.delivery.waiting.insert(conv);
                    continue;
                }
            };
            let intent = Intent::MarkDelivered {
                conv: conv.clone(),
                message,
            };
            // Not a member who may write it (left, removed, banned, a read-only view): no
            // marker, and no refusal for the app to show.
            if self.verdict(&intent, device_now).is_err() {
                continue;
            }
            if self.intent(intent, device_now).is_ok() {
                self.delivery.last.insert(conv, device_now);
            }
        }
    }

    /// The newest accepted message of another account in the loaded buckets of `conv`, when
    /// it is past this account's delivery marker.
    fn delivered_target(&self, conv: &ConvId) -> Target {
        let conv_doc = DocId::conv(&self.config.tenant, conv);
        let catching_up = self.docs.get(&conv_doc).is_none_or(|d| d.catching_up);
        match self.conversation(conv) {
            Some(conversation) if !catching_up => match self.newest_to_mark(conv, &conversation) {
                Some(message) => Target::Mark(message),
                None => Target::Nothing,
            },
            _ => Target::NotYet,
        }
    }

    fn newest_to_mark(&self, conv: &ConvId, conversation: &Conversation) -> Option<MessageId> {
        let me = &self.config.account;
        let channel = conversation
            .meta
            .as_ref()
            .is_some_and(|m| m.kind == ConvKind::Channel);
        if channel || conversation.members.len() > AUTO_DELIVERED_MAX_MEMBERS {
            return None;
        }
        let newest = self
            .conv_buckets(conv)
            .into_iter()
            .rev()
            .find_map(|(bucket, state)| {
                TimelineCell::items(state, bucket)
                    .iter()
                    .filter(|i| !i.pending && i.message.author != *me)
                    .filter_map(|i| i.seq.map(|seq| (seq, i.message.id.clone())))
                    .max()
                    .map(|(seq, id)| ((bucket, seq), id))
            })?;
        let marker = conversation.delivered.get(me).cloned();
        match marker {
            Some(m) if m == newest.1 => None,
            Some(m) => match self.position_of(conv, &m) {
                Some(at) if at >= newest.0 => None,
                // Behind it, or in a bucket not loaded here (older than what arrives).
                _ => Some(newest.1),
            },
            None => Some(newest.1),
        }
    }

    /// Where a message stands in server order: (bucket, seq).
    fn position_of(&self, conv: &ConvId, message: &MessageId) -> Option<(Bucket, u64)> {
        self.conv_buckets(conv)
            .into_iter()
            .find_map(|(bucket, state)| state.message_seq.get(message).map(|s| (bucket, *s)))
    }

    /// The loaded bucket documents of `conv`, in bucket order (the documents' map is in
    /// id order, which need not be).
    fn conv_buckets(&self, conv: &ConvId) -> Vec<(Bucket, &super::engine::ClientDoc)> {
        let mut buckets: Vec<_> = self
            .docs
            .range(
                DocId::msgs(&self.config.tenant, conv, i64::MIN)
                    ..=DocId::msgs(&self.config.tenant, conv, i64::MAX),
            )
            .filter_map(|(id, state)| match id.target() {
                DocTarget::Msgs(c, bucket) if c == conv => Some((*bucket, state)),
                _ => None,
            })
            .collect();
        buckets.sort_by_key(|(b, _)| *b);
        buckets
    }
}
