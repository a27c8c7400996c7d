//! Presence: members' online/away/offline with last-seen (docs/PROTOCOL.md, Presence).

use super::*;

mirror_enum!(
    /// A member's presence.
    PresenceState => cc::PresenceState { Online = "online", Away = "away", Offline = "offline" }
);

/// One member's presence in a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct MemberPresence {
    pub account: String,
    pub state: PresenceState,
    /// When the member was last heard from (device time, ms since the epoch).
    pub last_seen: i64,
}

impl From<cc::MemberPresence> for MemberPresence {
    fn from(p: cc::MemberPresence) -> Self {
        MemberPresence {
            account: p.account.to_string(),
            state: p.state.into(),
            last_seen: p.last_seen,
        }
    }
}
