//! The account's membership feed (docs/PROTOCOL.md, "Memberships"): on every connection
//! the engine asks the server for its memberships, follows a conversation it was added to,
//! stops one it was removed from (or left, or was banned from), and tells the app.
//!
//! Entries are states, not deltas: each carries the conversation document's `seq` it holds
//! as of, and the newest wins, so a list answered after a push (or a push that repeats what
//! a list said) changes nothing. Nothing is inferred from an absent entry: a conversation
//! created on this device and not yet acked is in no list.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::engine::{ClientEngine, Event, Output};
use crate::ids::{ConvId, DocId};
use crate::model::conversation::{MemberStatus, Role};
use crate::protocol::{ClientFrame, Membership};

/// Messages a conversation the account was added to shows at first (as the app's
/// `open_conversation` would).
const OPEN_LIMIT: usize = 50;

/// What the server said of the account's memberships.
#[derive(Debug, Default)]
pub(super) struct Feed {
    /// The newest entry per conversation (kept across connections: seqs only grow).
    known: BTreeMap<ConvId, Membership>,
    /// `memberships` was sent on this connection and its last page has not come.
    listing: bool,
    /// The list failed transiently: asked again with the next resend round.
    again: bool,
}

/// A change of the account's membership, for the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipChange {
    pub conv: ConvId,
    pub role: Role,
    pub status: MemberStatus,
    /// The engine follows the conversation now (added), or stopped (removed, left, banned).
    pub following: bool,
    /// For people: "You were added to Weekend plans", "You were removed from Weekend plans".
    pub sentence: String,
}

impl ClientEngine {
    /// Asks for the account's memberships (on `connected`, and again after a transient
    /// failure of the list).
    pub(super) fn ask_memberships(&mut self) {
        if !self.online {
            return;
        }
        self.feed.listing = true;
        self.feed.again = false;
        self.out.push(Output::Send(ClientFrame::Memberships {}));
    }

    pub(super) fn feed_disconnected(&mut self) {
        self.feed.listing = false;
        self.feed.again = false;
    }

    /// A transient error without a document may have been the list's: ask again with the
    /// next round. Returns whether a round is needed.
    pub(super) fn feed_failed(&mut self) -> bool {
        if self.feed.listing {
            self.feed.again = true;
        }
        self.feed.again
    }

    /// The resend round: the list again, if it failed.
    pub(super) fn feed_round(&mut self) {
        if self.feed.again {
            self.ask_memberships();
        }
    }

    /// Whether a `memberships` list is under way on this connection.
    pub fn is_listing_memberships(&self) -> bool {
        self.feed.listing
    }

    /// The account's membership in `conv` as the server last said it.
    pub fn membership(&self, conv: &ConvId) -> Option<(Role, MemberStatus)> {
        self.feed.known.get(conv).map(|m| (m.role, m.status))
    }

    pub(super) fn on_memberships(&mut self, list: Vec<Membership>, more: bool, device_now: i64) {
        for m in list {
            self.on_membership(m, device_now);
        }
        if !more {
            self.feed.listing = false;
        }
    }

    /// One entry of the feed: follow, stop, or only remember it.
    pub(super) fn on_membership(&mut self, m: Membership, device_now: i64) {
        let before = self.feed.known.get(&m.conv).cloned();
        if before.as_ref().is_some_and(|b| b.seq > m.seq) {
            return; // older than what the engine heard: a list that crossed a push
        }
        self.feed.known.insert(m.conv.clone(), m.clone());
        if before
            .as_ref()
            .is_some_and(|b| b.role == m.role && b.status == m.status)
        {
            return;
        }
        let conv_doc = DocId::conv(&self.config.tenant, &m.conv);
        let stored = self
            .loads
            .stored
            .as_ref()
            .is_some_and(|s| s.contains(&conv_doc));
        let followed = stored || self.docs.contains_key(&conv_doc);
        let revoked = self
            .docs
            .get(&conv_doc)
            .is_some_and(|d| d.revoked.is_some());
        let was_active = before.as_ref().map(|b| b.status == MemberStatus::Active);
        let following = if m.status == MemberStatus::Active {
            if !followed {
                // Added: opened as the app's `open_conversation` would (from the store if
                // it is there, else from the server): it and its newest bucket part are
                // subscribed.
                let _ = self.open_conversation(&m.conv, OPEN_LIMIT, device_now);
                if self.loads.stored.is_none() {
                    // The store's index is still being read (a connection before the
                    // start-up restore ended): the conversation may be stored already, so
                    // this is no news; opening it waits for the index either way.
                    return;
                }
            } else if revoked {
                self.readmit(&m.conv);
            } else if self.resubscribe_refused(&m.conv, m.seq) {
                // A subscription refused before this entry: asked again above.
            } else if before.is_none() {
                return; // followed already, and the first thing heard of it
            }
            true
        } else {
            let reason = self.membership_sentence(&m, before.as_ref());
            let stopped = self.stop_following(&m.conv, &reason);
            if !stopped && was_active != Some(true) {
                return; // never followed here, or known inactive already
            }
            false
        };
        let sentence = self.membership_sentence(&m, before.as_ref());
        self.out
            .push(Output::Event(Event::Membership(MembershipChange {
                conv: m.conv,
                role: m.role,
                status: m.status,
                following,
                sentence,
            })));
    }

    /// The conversation's documents in memory stop (no more subscriptions); the app is
    /// told once. Returns whether any was followed until now.
    fn stop_following(&mut self, conv: &ConvId, reason: &str) -> bool {
        let mut stopped = false;
        for (id, state) in self.docs.iter_mut() {
            if id.conv_id() == Some(conv) && state.revoked.is_none() {
                state.revoked = Some(reason.to_owned());
                state.catching_up = false;
                state.deferred = false;
                stopped = true;
            }
        }
        if stopped {
            self.out.push(Output::Event(Event::Revoked {
                doc: DocId::conv(&self.config.tenant, conv).to_string(),
                reason: reason.to_owned(),
            }));
        }
        stopped
    }

    /// The feed's entry (its seq) when it says this account is active in `conv`.
    pub(super) fn active_since(&self, conv: &ConvId) -> Option<u64> {
        self.feed
            .known
            .get(conv)
            .filter(|m| m.status == MemberStatus::Active)
            .map(|m| m.seq)
    }

    /// Subscribes again the documents of `conv` whose subscription the server refused as of
    /// an older feed entry than `seq`. Returns whether there was any.
    fn resubscribe_refused(&mut self, conv: &ConvId, seq: u64) -> bool {
        let refused: Vec<DocId> = self
            .docs
            .iter()
            .filter(|(d, s)| {
                d.conv_id() == Some(conv) && s.refused.is_some_and(|r| r.is_none_or(|r| r < seq))
            })
            .map(|(d, _)| d.clone())
            .collect();
        for id in &refused {
            if let Some(state) = self.docs.get_mut(id) {
                state.refused = Some(Some(seq));
            }
            self.subscribe(id);
        }
        !refused.is_empty()
    }

    /// Added again after a removal: the conversation's documents are followed again.
    fn readmit(&mut self, conv: &ConvId) {
        let docs: Vec<DocId> = self
            .docs
            .iter()
            .filter(|(d, s)| d.conv_id() == Some(conv) && s.revoked.is_some())
            .map(|(d, _)| d.clone())
            .collect();
        for id in &docs {
            if let Some(state) = self.docs.get_mut(id) {
                state.revoked = None;
            }
            self.subscribe(id);
        }
    }

    fn membership_sentence(&self, m: &Membership, before: Option<&Membership>) -> String {
        let place = self.place_name(&m.conv);
        let role = m.role.as_str();
        match m.status {
            MemberStatus::Active if before.is_some_and(|b| b.status == MemberStatus::Active) => {
                format!("You are now {role} in {place}")
            }
            MemberStatus::Active => format!("You were added to {place} as {role}"),
            MemberStatus::Removed
                if before.is_some_and(|b| b.status == MemberStatus::Requested) =>
            {
                format!("Your request to join {place} was declined")
            }
            MemberStatus::Removed => format!("You were removed from {place}"),
            MemberStatus::Left => format!("You left {place}"),
            MemberStatus::Banned => format!("You were banned from {place}"),
            MemberStatus::Requested => format!("You asked to join {place}"),
        }
    }
}
