//! Presence: who of a conversation's members is online, away or offline, and when each was
//! last heard (docs/PROTOCOL.md, Presence), and when this device tells its own. A state
//! machine of its own (`PresenceBook`): signals heard, the host's state, connections and
//! ticks go in as method calls; what to send and which conversations changed come back as
//! `PresenceOut`, which the engine routes. Kept in memory per conversation and member;
//! never stored. Time is a parameter (device milliseconds), as everywhere in the engine.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::ids::{AccountId, ConvId};

/// A member's presence, the `data` of a `presence` signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceState {
    Online,
    Away,
    Offline,
}

impl PresenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            PresenceState::Online => "online",
            PresenceState::Away => "away",
            PresenceState::Offline => "offline",
        }
    }

    /// The state a signal's `data` names; anything else is ignored by the receiver.
    pub fn parse(data: &str) -> Option<Self> {
        match data {
            "online" => Some(PresenceState::Online),
            "away" => Some(PresenceState::Away),
            "offline" => Some(PresenceState::Offline),
            _ => None,
        }
    }
}

/// One member's presence as this device knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberPresence {
    pub account: AccountId,
    pub state: PresenceState,
    /// Device time (ms) the member was last heard from (any state).
    pub last_seen: i64,
}

/// A sender refreshes its presence at least this often in a conversation...
pub const PRESENCE_REFRESH_MIN_MS: i64 = 60_000;
/// ...and, in a large group, once per this much per member, so each receiver hears under one
/// presence signal per second whatever the group's size (1,000 members: every 20 minutes).
pub const PRESENCE_REFRESH_PER_MEMBER_MS: i64 = 1_200;
/// A member not heard for this many refresh periods is offline (a lost refresh is tolerated).
pub const PRESENCE_TTL_PERIODS: i64 = 3;
/// A device sends at most one presence per conversation in this window; a change inside it
/// (focus/blur flapping) goes out once at its end, the latest state only.
pub const PRESENCE_MIN_GAP_MS: i64 = 5_000;

/// How often a member of a conversation with `members` members refreshes its presence.
pub fn presence_refresh_ms(members: usize) -> i64 {
    let members = i64::try_from(members).unwrap_or(i64::MAX);
    members
        .saturating_mul(PRESENCE_REFRESH_PER_MEMBER_MS)
        .max(PRESENCE_REFRESH_MIN_MS)
}

#[derive(Debug, Clone)]
struct Heard {
    state: PresenceState,
    at: i64,
    /// Device time this entry turns offline without a refresh.
    expires: i64,
}

/// Presence kept by the engine.
#[derive(Debug)]
pub(super) struct PresenceBook {
    heard: HashMap<ConvId, BTreeMap<AccountId, Heard>>,
    /// What this device says of itself (`online` unless the host said `away`).
    own: PresenceState,
    /// Per conversation: when ours was last sent, and when it is due next.
    sent: HashMap<ConvId, (Option<i64>, i64)>,
}

impl Default for PresenceBook {
    fn default() -> Self {
        PresenceBook {
            heard: HashMap::new(),
            own: PresenceState::Online,
            sent: HashMap::new(),
        }
    }
}

/// What presence asks of the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PresenceOut {
    /// Send this device's state to `conv` (a `presence` signal).
    Send { conv: ConvId, state: PresenceState },
    /// A member's presence in `conv` changed (`Event::Presence`).
    Changed(ConvId),
}

impl PresenceBook {
    /// A conversation followed since: ours is due there at once, unless already scheduled.
    pub(super) fn follow(&mut self, conv: ConvId) {
        self.sent.entry(conv).or_insert((None, i64::MIN));
    }

    /// A `presence` signal from `from` in `conv` (the server set `from`) whose data says
    /// `state`; `members`: how many members `conv` has (its time to live grows with it).
    /// Whether what is shown changed.
    pub(super) fn heard(
        &mut self,
        conv: ConvId,
        from: AccountId,
        state: PresenceState,
        members: usize,
        device_now: i64,
    ) -> bool {
        let ttl = presence_refresh_ms(members) * PRESENCE_TTL_PERIODS;
        let entries = self.heard.entry(conv).or_default();
        let before = entries.get(&from).map(|h| h.state);
        entries.insert(
            from,
            Heard {
                state,
                at: device_now,
                expires: device_now.saturating_add(ttl),
            },
        );
        before != Some(state)
    }

    /// The members of `conv` heard from, with their state at `device_now` (one not refreshed
    /// within its time to live is `offline`).
    pub(super) fn members(&self, conv: &ConvId, device_now: i64) -> Vec<MemberPresence> {
        self.heard
            .get(conv)
            .map(|m| {
                m.iter()
                    .map(|(account, h)| MemberPresence {
                        account: account.clone(),
                        state: if h.expires <= device_now {
                            PresenceState::Offline
                        } else {
                            h.state
                        },
                        last_seen: h.at,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The host says whether the person is here: `true` when that changes what this device
    /// says (it goes to every followed conversation, within the per-conversation gap, with
    /// the next `due`).
    pub(super) fn set_own(&mut self, state: PresenceState, device_now: i64) -> bool {
        let state = match state {
            // Offline is what the server says when the connection goes.
            PresenceState::Offline => PresenceState::Away,
            s => s,
        };
        if self.own == state {
            return false;
        }
        self.own = state;
        for (last, due) in self.sent.values_mut() {
            *due = last.map_or(device_now, |l| l.saturating_add(PRESENCE_MIN_GAP_MS));
        }
        true
    }

    /// The next time `due` has something to do: a refresh or a held change to send (only
    /// when `online`), a member to turn offline.
    pub(super) fn wakeup(&self, online: bool) -> Option<i64> {
        if !online {
            return None;
        }
        let sends = self.sent.values().map(|(_, due)| *due);
        let expiries = self
            .heard
            .values()
            .flat_map(|m| m.values())
            .filter(|h| h.state != PresenceState::Offline)
            .map(|h| h.expires);
        sends.chain(expiries).min()
    }

    /// Connected: ours goes to each of `followed` now.
    pub(super) fn connected(&mut self, followed: impl Iterator<Item = ConvId>, device_now: i64) {
        self.sent = followed.map(|c| (c, (None, device_now))).collect();
    }

    /// The conversations where ours is due at `device_now` (sent only while online).
    pub(super) fn due_sends(&self, device_now: i64) -> Vec<ConvId> {
        self.sent
            .iter()
            .filter(|(_, (_, due))| *due <= device_now)
            .map(|(c, _)| c.clone())
            .collect()
    }

    /// Ours goes to `conv` at `device_now`; `members`: how many members it has (the next
    /// refresh waits longer in a larger group).
    pub(super) fn send(&mut self, conv: ConvId, members: usize, device_now: i64) -> PresenceOut {
        let next = device_now.saturating_add(presence_refresh_ms(members));
        self.sent.insert(conv.clone(), (Some(device_now), next));
        PresenceOut::Send {
            conv,
            state: self.own,
        }
    }

    /// Turns members not refreshed in time offline: one `Changed` per conversation.
    pub(super) fn expire(&mut self, device_now: i64) -> Vec<PresenceOut> {
        let mut expired = Vec::new();
        for (conv, members) in &mut self.heard {
            let mut changed = false;
            for h in members.values_mut() {
                if h.state != PresenceState::Offline && h.expires <= device_now {
                    h.state = PresenceState::Offline;
                    changed = true;
                }
            }
            if changed {
                expired.push(PresenceOut::Changed(conv.clone()));
            }
        }
        expired
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn conv() -> ConvId {
        ConvId::new("c1").unwrap()
    }

    fn bob() -> AccountId {
        AccountId::new("bob").unwrap()
    }

    #[test]
    fn a_member_heard_turns_offline_after_its_time_to_live() {
        let mut book = PresenceBook::default();
        assert!(book.heard(conv(), bob(), PresenceState::Online, 2, 0));
        assert!(!book.heard(conv(), bob(), PresenceState::Online, 2, 10));
        let ttl = PRESENCE_REFRESH_MIN_MS * PRESENCE_TTL_PERIODS;
        assert_eq!(book.wakeup(true), Some(10 + ttl));
        assert_eq!(
            book.members(&conv(), 10 + ttl)[0].state,
            PresenceState::Offline
        );
        assert!(book.expire(10 + ttl - 1).is_empty());
        assert_eq!(book.expire(10 + ttl), vec![PresenceOut::Changed(conv())]);
        assert_eq!(book.wakeup(true), None);
    }

    #[test]
    fn ours_goes_out_on_connect_and_a_change_waits_for_the_gap() {
        let mut book = PresenceBook::default();
        book.connected([conv()].into_iter(), 100);
        assert_eq!(book.due_sends(100), vec![conv()]);
        assert_eq!(
            book.send(conv(), 3, 100),
            PresenceOut::Send {
                conv: conv(),
                state: PresenceState::Online
            }
        );
        assert!(book.due_sends(101).is_empty());
        assert!(book.set_own(PresenceState::Offline, 200));
        assert!(!book.set_own(PresenceState::Away, 201));
        assert!(book.due_sends(100 + PRESENCE_MIN_GAP_MS - 1).is_empty());
        assert_eq!(book.due_sends(100 + PRESENCE_MIN_GAP_MS), vec![conv()]);
        assert_eq!(book.wakeup(false), None);
    }
}
