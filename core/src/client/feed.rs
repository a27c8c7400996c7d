//! The account's membership feed (docs/PROTOCOL.md, "Memberships"): on every connection
//! the engine asks the server for its memberships, follows a conversation it was added to,
//! stops one it was removed from (or left, or was banned from), and tells the app.
//!
//! A state machine of its own (`Feed`): the list's progress and every entry go in as
//! method calls; an entry comes back as a `Decision` (what to do with the conversation's
//! documents, what to tell the app), which the engine carries out. What the engine holds of
//! the conversation is an input (`Held`), read once per entry that changes something.
//!
//! Entries are states, not deltas: each carries the conversation document's `seq` it holds
//! as of, and the newest wins, so a list answered after a push (or a push that repeats what
//! a list said) changes nothing. Nothing is inferred from an absent entry: a conversation
//! created on this device and not yet acked is in no list.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::ConvId;
use crate::model::conversation::{MemberStatus, Role};
use crate::protocol::{ClientFrame, Membership};

/// Messages a conversation the account was added to shows at first (as the app's
/// `open_conversation` would).
pub(super) const OPEN_LIMIT: usize = 50;

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

/// What the engine holds of an entry's conversation.
#[derive(Debug, Clone, Default)]
pub(super) struct Held {
    /// Stored or in memory.
    pub(super) followed: bool,
    /// Its conversation document is held with its read access revoked.
    pub(super) revoked: bool,
    /// A held document of it is followed (not revoked).
    pub(super) live: bool,
    /// A held document of it was refused a subscription as of an older feed entry than
    /// this one (or of none).
    pub(super) refused_before: bool,
    /// The store's index is read (else the conversation may be stored already).
    pub(super) index_known: bool,
    /// The conversation as people know it ("Weekend plans").
    pub(super) place: String,
}

/// What the engine does with an entry's conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum FeedAction {
    /// Nothing but remember the entry.
    Nothing,
    /// Added: open it as the app's `open_conversation` would (from the store if it is
    /// there, else from the server), `OPEN_LIMIT` messages.
    Open,
    /// Added again after a removal: follow its revoked documents again.
    Readmit,
    /// Subscribe again its documents refused as of an older entry than `seq`.
    Resubscribe { seq: u64 },
    /// No longer a member: stop its documents (`Event::Revoked` with `reason`).
    Stop { reason: String },
}

/// What one entry of the feed comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Decision {
    pub(super) action: FeedAction,
    /// What the app is told (`Event::Membership`), if anything.
    pub(super) tell: Option<MembershipChange>,
}

/// An entry that changes what the feed knows, with what was known before it.
#[derive(Debug)]
pub(super) struct Noted {
    entry: Membership,
    before: Option<Membership>,
}

impl Noted {
    pub(super) fn conv(&self) -> &ConvId {
        &self.entry.conv
    }

    pub(super) fn seq(&self) -> u64 {
        self.entry.seq
    }
}

impl Feed {
    /// Asks for the account's memberships (on `connected`, and again after a transient
    /// failure of the list); the engine sends it while online.
    pub(super) fn ask(&mut self) -> ClientFrame {
        self.listing = true;
        self.again = false;
        ClientFrame::Memberships {}
    }

    pub(super) fn disconnected(&mut self) {
        self.listing = false;
        self.again = false;
    }

    /// A transient error without a document may have been the list's: ask again with the
    /// next round. Returns whether a round is needed.
    pub(super) fn failed(&mut self) -> bool {
        if self.listing {
            self.again = true;
        }
        self.again
    }

    /// The resend round: whether the list is asked again (it failed).
    pub(super) fn round(&self) -> bool {
        self.again
    }

    /// Whether a `memberships` list is under way on this connection.
    pub(super) fn is_listing(&self) -> bool {
        self.listing
    }

    /// A page of the list came; `more`: it goes on.
    pub(super) fn listed(&mut self, more: bool) {
        if !more {
            self.listing = false;
        }
    }

    /// The account's membership in `conv` as the server last said it.
    pub(super) fn membership(&self, conv: &ConvId) -> Option<(Role, MemberStatus)> {
        self.known.get(conv).map(|m| (m.role, m.status))
    }

    /// The feed's entry (its seq) when it says this account is active in `conv`.
    pub(super) fn active_since(&self, conv: &ConvId) -> Option<u64> {
        self.known
            .get(conv)
            .filter(|m| m.status == MemberStatus::Active)
            .map(|m| m.seq)
    }

    /// One entry of the feed, remembered when it is the newest; `Some` when it changes the
    /// role or the status (then the engine reads what it holds and asks `decide`).
    pub(super) fn note(&mut self, m: Membership) -> Option<Noted> {
        let before = self.known.get(&m.conv).cloned();
        if before.as_ref().is_some_and(|b| b.seq > m.seq) {
            return None; // older than what the engine heard: a list that crossed a push
        }
        self.known.insert(m.conv.clone(), m.clone());
        if before
            .as_ref()
            .is_some_and(|b| b.role == m.role && b.status == m.status)
        {
            return None;
        }
        Some(Noted { entry: m, before })
    }

    /// Follow, stop, or only remember: what a noted entry comes to, given what the engine
    /// holds of its conversation.
    pub(super) fn decide(&self, noted: Noted, held: &Held) -> Decision {
        let Noted { entry: m, before } = noted;
        let sentence = membership_sentence(&m, before.as_ref(), &held.place);
        let tell = |following: bool| MembershipChange {
            conv: m.conv.clone(),
            role: m.role,
            status: m.status,
            following,
            sentence: sentence.clone(),
        };
        if m.status == MemberStatus::Active {
            let action = if !held.followed {
                FeedAction::Open
            } else if held.revoked {
                FeedAction::Readmit
            } else if held.refused_before {
                FeedAction::Resubscribe { seq: m.seq }
            } else {
                FeedAction::Nothing
            };
            let tell = match action {
                // The store's index is still being read (a connection before the start-up
                // restore ended): the conversation may be stored already, so this is no
                // news; opening it waits for the index either way.
                FeedAction::Open if !held.index_known => None,
                // Followed already, and the first thing heard of it.
                FeedAction::Nothing if before.is_none() => None,
                _ => Some(tell(true)),
            };
            return Decision { action, tell };
        }
        let was_active = before.as_ref().map(|b| b.status == MemberStatus::Active);
        if !held.live {
            // Never followed here, or known inactive already: nothing to tell.
            let tell = (was_active == Some(true)).then(|| tell(false));
            return Decision {
                action: FeedAction::Nothing,
                tell,
            };
        }
        Decision {
            action: FeedAction::Stop {
                reason: sentence.clone(),
            },
            tell: Some(tell(false)),
        }
    }
}

fn membership_sentence(m: &Membership, before: Option<&Membership>, place: &str) -> String {
    let role = m.role.as_str();
    match m.status {
        MemberStatus::Active if before.is_some_and(|b| b.status == MemberStatus::Active) => {
            format!("You are now {role} in {place}")
        }
        MemberStatus::Active => format!("You were added to {place} as {role}"),
        MemberStatus::Removed if before.is_some_and(|b| b.status == MemberStatus::Requested) => {
            format!("Your request to join {place} was declined")
        }
        MemberStatus::Removed => format!("You were removed from {place}"),
        MemberStatus::Left => format!("You left {place}"),
        MemberStatus::Banned => format!("You were banned from {place}"),
        MemberStatus::Requested => format!("You asked to join {place}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn entry(status: MemberStatus, seq: u64) -> Membership {
        Membership {
            conv: ConvId::new("c1").unwrap(),
            role: Role::Member,
            status,
            seq,
        }
    }

    fn held(followed: bool) -> Held {
        Held {
            followed,
            live: followed,
            index_known: true,
            place: "Weekend plans".into(),
            ..Held::default()
        }
    }

    #[test]
    fn an_added_conversation_is_opened_and_told_once() {
        let mut feed = Feed::default();
        let noted = feed.note(entry(MemberStatus::Active, 3)).unwrap();
        let decision = feed.decide(noted, &held(false));
        assert_eq!(decision.action, FeedAction::Open);
        let told = decision.tell.unwrap();
        assert!(told.following);
        assert_eq!(told.sentence, "You were added to Weekend plans as member");
        // The same entry again (a list after the push), and an older one: nothing.
        assert!(feed.note(entry(MemberStatus::Active, 3)).is_none());
        assert!(feed.note(entry(MemberStatus::Removed, 2)).is_none());
        assert_eq!(feed.active_since(&ConvId::new("c1").unwrap()), Some(3));
    }

    #[test]
    fn a_removal_stops_what_is_followed() {
        let mut feed = Feed::default();
        let noted = feed.note(entry(MemberStatus::Active, 1)).unwrap();
        assert_eq!(feed.decide(noted, &held(true)).tell, None);
        let noted = feed.note(entry(MemberStatus::Removed, 2)).unwrap();
        let decision = feed.decide(noted, &held(true));
        let reason = "You were removed from Weekend plans".to_owned();
        assert_eq!(decision.action, FeedAction::Stop { reason });
        assert!(!decision.tell.unwrap().following);
    }

    #[test]
    fn a_failed_list_is_asked_again_with_the_next_round() {
        let mut feed = Feed::default();
        assert_eq!(feed.ask(), ClientFrame::Memberships {});
        assert!(feed.is_listing());
        assert!(feed.failed());
        assert!(feed.round());
        feed.ask();
        assert!(!feed.round());
        feed.listed(false);
        assert!(!feed.is_listing());
        assert!(!feed.failed());
    }
}
