//! Presence: who of a conversation's members is online, away or offline, and when each was
//! last heard (docs/PROTOCOL.md, Presence). Kept in memory per conversation and member from
//! `presence` signals; never stored. Time is a parameter (device milliseconds), as everywhere
//! in the engine.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::engine::{ClientEngine, Event, Output};
use crate::ids::{AccountId, ConvId, DocId, DocTarget};
use crate::protocol::{ClientFrame, SignalKind};

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

impl PresenceBook {
    /// A conversation followed since: ours is due there at once, unless already scheduled.
    pub(super) fn follow(&mut self, conv: ConvId) {
        self.sent.entry(conv).or_insert((None, i64::MIN));
    }
}

impl ClientEngine {
    fn member_count(&self, conv: &ConvId) -> usize {
        self.conversation(conv).map_or(0, |c| c.members.len())
    }

    /// A `presence` signal from `from` in `conv` (the server set `from`; our own account's
    /// other devices are not shown).
    pub(super) fn on_presence(
        &mut self,
        conv: ConvId,
        from: AccountId,
        data: Option<&str>,
        device_now: i64,
    ) {
        let Some(state) = data.and_then(PresenceState::parse) else {
            return;
        };
        if from == self.config.account {
            return;
        }
        let ttl = presence_refresh_ms(self.member_count(&conv)) * PRESENCE_TTL_PERIODS;
        let entries = self.presence.heard.entry(conv.clone()).or_default();
        let before = entries.get(&from).map(|h| h.state);
        entries.insert(
            from,
            Heard {
                state,
                at: device_now,
                expires: device_now.saturating_add(ttl),
            },
        );
        if before != Some(state) {
            self.out.push(Output::Event(Event::Presence {
                conv: conv.to_string(),
            }));
        }
    }

    /// The members of `conv` this device has heard from, with their state at `device_now`
    /// (one not refreshed within its time to live is `offline`). Members never heard are
    /// not listed: the host shows them as unknown/offline.
    pub fn presence(&self, conv: &ConvId, device_now: i64) -> Vec<MemberPresence> {
        self.presence
            .heard
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

    /// The host says whether the person is here (`online`) or not looking (`away`, e.g. the
    /// page lost focus). Sent to every followed conversation, within the per-conversation gap.
    pub fn set_presence(&mut self, state: PresenceState, device_now: i64) {
        let state = match state {
            // Offline is what the server says when the connection goes.
            PresenceState::Offline => PresenceState::Away,
            s => s,
        };
        if self.presence.own == state {
            return;
        }
        self.presence.own = state;
        for (last, due) in self.presence.sent.values_mut() {
            *due = last.map_or(device_now, |l| l.saturating_add(PRESENCE_MIN_GAP_MS));
        }
        self.presence_due(device_now);
    }

    /// When the host must call `tick` next for presence (a refresh or a held change to send,
    /// a member to turn offline); kept apart from `next_wakeup`, which says when intents
    /// wait, so "nothing waits" keeps its meaning there. `None` while disconnected.
    pub fn presence_wakeup(&self) -> Option<i64> {
        if !self.online {
            return None;
        }
        let sends = self.presence.sent.values().map(|(_, due)| *due);
        let expiries = self
            .presence
            .heard
            .values()
            .flat_map(|m| m.values())
            .filter(|h| h.state != PresenceState::Offline)
            .map(|h| h.expires);
        sends.chain(expiries).min()
    }

    /// Connected: our presence goes to every followed conversation now.
    pub(super) fn presence_connected(&mut self, device_now: i64) {
        self.presence.sent = self
            .docs
            .keys()
            .filter_map(|id| match id.target() {
                DocTarget::Conv(c) => Some((c.clone(), (None, device_now))),
                _ => None,
            })
            .collect();
        self.presence_due(device_now);
    }

    /// Sends what is due (refreshes and held changes) and turns members not refreshed in
    /// time offline, with an event each.
    pub(super) fn presence_due(&mut self, device_now: i64) {
        if self.online {
            let due: Vec<ConvId> = self
                .presence
                .sent
                .iter()
                .filter(|(_, (_, due))| *due <= device_now)
                .map(|(c, _)| c.clone())
                .collect();
            for conv in due {
                let next = device_now.saturating_add(presence_refresh_ms(self.member_count(&conv)));
                self.presence
                    .sent
                    .insert(conv.clone(), (Some(device_now), next));
                self.out.push(Output::Send(ClientFrame::Signal {
                    doc: DocId::conv(&self.config.tenant, &conv).to_string(),
                    kind: SignalKind::Presence,
                    data: Some(self.presence.own.as_str().to_string()),
                }));
            }
        }
        let mut expired = Vec::new();
        for (conv, members) in &mut self.presence.heard {
            let mut changed = false;
            for h in members.values_mut() {
                if h.state != PresenceState::Offline && h.expires <= device_now {
                    h.state = PresenceState::Offline;
                    changed = true;
                }
            }
            if changed {
                expired.push(conv.to_string());
            }
        }
        for conv in expired {
            self.out.push(Output::Event(Event::Presence { conv }));
        }
    }
}
