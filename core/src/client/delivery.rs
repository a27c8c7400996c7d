//! Delivery markers the engine writes by itself (a member's `delivered` marker, the ✓✓ of
//! a chat): when messages of others arrive from the server, the device moves its account's
//! `members/<account>/delivered` to the newest of them, without the app asking. Every
//! host gets it, since it lives here and not in one runtime.
//!
//! A state machine of its own (`Delivery`): arrivals, syncs and ticks go in as method
//! calls; the conversations whose marker is due come back, and `target` says, from the
//! documents the engine hands it, which message to mark. The engine writes the marker as
//! an intent (`Intent::MarkDelivered`).
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

use super::replica::{buckets_of, ClientDoc, Docs};
use crate::ids::{AccountId, Bucket, ConvId, DocId, DocTarget, MessageId, TenantId};
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

/// What `target` found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Target {
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

impl Delivery {
    /// Whether the engine marks arrived messages of others delivered by itself (on unless
    /// turned off). Off drops what waits to be marked.
    pub(super) fn set_enabled(&mut self, on: bool) {
        self.enabled = on;
        if !on {
            self.arrived.clear();
            self.due.clear();
            self.waiting.clear();
        }
    }

    pub(super) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Messages were created in `doc` by changes from the server.
    pub(super) fn arrived(&mut self, doc: &DocId) {
        if !self.enabled {
            return;
        }
        if let DocTarget::Msgs(conv, _) = doc.target() {
            self.arrived.insert(conv.clone());
        }
    }

    /// `conv`'s conversation document synced: a marker that waited for it is scheduled.
    pub(super) fn conversation_synced(&mut self, conv: &ConvId) {
        if self.waiting.remove(conv) {
            self.arrived.insert(conv.clone());
        }
    }

    /// Schedules the conversations noted while handling a frame received at `device_now`.
    pub(super) fn schedule(&mut self, device_now: i64) {
        for conv in std::mem::take(&mut self.arrived) {
            if self.due.contains_key(&conv) {
                continue; // already waiting: this arrival joins it
            }
            let after_last = self
                .last
                .get(&conv)
                .map_or(i64::MIN, |t| t.saturating_add(DELIVERED_INTERVAL_MS));
            let at = device_now
                .saturating_add(DELIVERED_DELAY_MS)
                .max(after_last);
            self.due.insert(conv, at);
        }
    }

    /// The earliest due marker (device ms).
    pub(super) fn wakeup(&self) -> Option<i64> {
        self.due.values().min().copied()
    }

    /// The conversations whose marker is due at `device_now`, taken off the schedule: the
    /// engine asks `target` for each, then says `wait` or `marked`.
    pub(super) fn take_due(&mut self, device_now: i64) -> Vec<ConvId> {
        let due: Vec<ConvId> = self
            .due
            .iter()
            .filter(|(_, at)| **at <= device_now)
            .map(|(c, _)| c.clone())
            .collect();
        for conv in &due {
            self.due.remove(conv);
        }
        due
    }

    /// `conv`'s conversation document is not here yet: its marker waits for the sync.
    pub(super) fn wait(&mut self, conv: ConvId) {
        self.waiting.insert(conv);
    }

    /// The engine wrote `conv`'s marker at `device_now`.
    pub(super) fn marked(&mut self, conv: ConvId, device_now: i64) {
        self.last.insert(conv, device_now);
    }
}

/// The newest accepted message of another account than `me` in the held buckets of `conv`
/// (`conversation` as this device sees it), when it is past `me`'s delivery marker.
pub(super) fn target(
    docs: &Docs,
    tenant: &TenantId,
    me: &AccountId,
    conv: &ConvId,
    conversation: Option<&Conversation>,
) -> Target {
    let catching_up = docs
        .get(&DocId::conv(tenant, conv))
        .is_none_or(|d| d.catching_up);
    match conversation {
        Some(conversation) if !catching_up => {
            match newest_to_mark(docs, tenant, me, conv, conversation) {
                Some(message) => Target::Mark(message),
                None => Target::Nothing,
            }
        }
        _ => Target::NotYet,
    }
}

fn newest_to_mark(
    docs: &Docs,
    tenant: &TenantId,
    me: &AccountId,
    conv: &ConvId,
    conversation: &Conversation,
) -> Option<MessageId> {
    let channel = conversation
        .meta
        .as_ref()
        .is_some_and(|m| m.kind == ConvKind::Channel);
    if channel || conversation.members.len() > AUTO_DELIVERED_MAX_MEMBERS {
        return None;
    }
    // In bucket order (the documents' map is in id order, which need not be).
    let mut buckets: Vec<(Bucket, &ClientDoc)> = buckets_of(docs, tenant, conv).collect();
    buckets.sort_by_key(|(b, _)| *b);
    let newest = buckets.iter().rev().find_map(|(bucket, state)| {
        state
            .timeline_items(*bucket)
            .iter()
            .filter(|i| !i.pending && i.message.author != *me)
            .filter_map(|i| i.seq.map(|seq| (seq, i.message.id.clone())))
            .max()
            .map(|(seq, id)| ((*bucket, seq), id))
    })?;
    let marker = conversation.delivered.get(me).cloned();
    match marker {
        Some(m) if m == newest.1 => None,
        Some(m) => match position_of(&buckets, &m) {
            Some(at) if at >= newest.0 => None,
            // Behind it, or in a bucket not loaded here (older than what arrives).
            _ => Some(newest.1),
        },
        None => Some(newest.1),
    }
}

/// Where a message stands in server order: (bucket, seq).
fn position_of(buckets: &[(Bucket, &ClientDoc)], message: &MessageId) -> Option<(Bucket, u64)> {
    buckets
        .iter()
        .find_map(|(bucket, state)| state.message_seq.get(message).map(|s| (*bucket, *s)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn conv() -> ConvId {
        ConvId::new("c1").unwrap()
    }

    fn doc() -> DocId {
        DocId::msgs(&crate::ids::TenantId::new("t").unwrap(), &conv(), 7)
    }

    #[test]
    fn a_burst_is_marked_once_after_the_delay_and_then_at_most_per_interval() {
        let mut d = Delivery::default();
        d.arrived(&doc());
        d.arrived(&doc());
        d.schedule(1_000);
        assert_eq!(d.wakeup(), Some(1_000 + DELIVERED_DELAY_MS));
        assert!(d.take_due(1_000).is_empty());
        assert_eq!(d.take_due(1_000 + DELIVERED_DELAY_MS), vec![conv()]);
        d.marked(conv(), 1_300);
        d.arrived(&doc());
        d.schedule(1_400);
        assert_eq!(d.wakeup(), Some(1_300 + DELIVERED_INTERVAL_MS));
    }

    #[test]
    fn a_marker_waits_for_its_conversation_and_off_drops_everything() {
        let mut d = Delivery::default();
        d.wait(conv());
        d.conversation_synced(&conv());
        d.schedule(0);
        assert_eq!(d.wakeup(), Some(DELIVERED_DELAY_MS));
        let (docs, tenant) = (Docs::new(), crate::ids::TenantId::new("t").unwrap());
        let me = AccountId::new("me").unwrap();
        assert_eq!(target(&docs, &tenant, &me, &conv(), None), Target::NotYet);
        d.set_enabled(false);
        assert_eq!(d.wakeup(), None);
        d.arrived(&doc());
        d.schedule(0);
        assert_eq!(d.wakeup(), None);
    }
}
