//! Events the client emits, and their names.

use super::*;

/// The names `on(name, callback)` accepts; `"*"` receives every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "snake_case")]
pub enum EventName {
    Online,
    Offline,
    Reconnecting,
    Intent,
    Doc,
    Conversation,
    Timeline,
    Conversations,
    Profile,
    Typing,
    Revoked,
    Error,
    #[serde(rename = "*")]
    All,
}

/// What a subscription callback receives; `type` is the event's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientEvent {
    /// The server welcomed the client: sync runs.
    Online,
    /// The connection is gone; intents keep working and wait in the outbox.
    #[serde(rename_all = "camelCase")]
    Offline { will_retry: bool },
    /// The next connection attempt is scheduled.
    #[serde(rename_all = "camelCase")]
    Reconnecting { attempt: u32, delay_ms: u32 },
    /// An intent changed state (accepted, or rejected with the server's code and reason).
    Intent { id: u64, status: IntentStatus },
    /// A document changed (any kind).
    Doc { doc: String },
    /// A conversation's info, settings, members, pins, reads or lifecycle changed.
    Conversation { conv: String },
    /// A conversation's messages changed.
    Timeline { conv: String },
    /// The conversation list may have changed.
    Conversations,
    /// An account's profile changed.
    Profile { account: String },
    /// Who types in `conv` changed.
    Typing { conv: String, accounts: Vec<String> },
    /// The account lost read access to a document.
    Revoked {
        doc: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        conv: Option<String>,
        reason: String,
    },
    /// Something failed in the background (storage, the server, the token provider).
    Error { code: String, message: String },
}

impl ClientEvent {
    pub fn name(&self) -> EventName {
        match self {
            ClientEvent::Online => EventName::Online,
            ClientEvent::Offline { .. } => EventName::Offline,
            ClientEvent::Reconnecting { .. } => EventName::Reconnecting,
            ClientEvent::Intent { .. } => EventName::Intent,
            ClientEvent::Doc { .. } => EventName::Doc,
            ClientEvent::Conversation { .. } => EventName::Conversation,
            ClientEvent::Timeline { .. } => EventName::Timeline,
            ClientEvent::Conversations => EventName::Conversations,
            ClientEvent::Profile { .. } => EventName::Profile,
            ClientEvent::Typing { .. } => EventName::Typing,
            ClientEvent::Revoked { .. } => EventName::Revoked,
            ClientEvent::Error { .. } => EventName::Error,
        }
    }
}
