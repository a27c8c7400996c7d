//! Events the client emits, and their names.

use super::*;

/// The names `on(name, callback)` accepts; `"*"` receives every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "snake_case")]
pub enum EventName {
    Online,
    Offline,
    Reconnecting,
    Connection,
    Trace,
    Intent,
    Doc,
    Conversation,
    Timeline,
    Conversations,
    Profile,
    Typing,
    Presence,
    Revoked,
    Membership,
    Upload,
    Devices,
    DeviceRemoved,
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
    /// The connection's state changed (also `client.connectionState`).
    Connection {
        state: ConnectionState,
        /// Why it is not online (absent when online).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        reason: Option<ConnectionReason>,
    },
    /// Timing of one step (only with the `trace` option).
    Trace {
        stage: TraceStage,
        /// Its duration in microseconds.
        us: u32,
        /// Store operations written (`store` only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        count: Option<u32>,
    },
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
    /// A member's presence in `conv` changed (read them with `presence(conv)`).
    Presence { conv: String },
    /// The account lost read access to a document.
    Revoked {
        doc: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        conv: Option<String>,
        reason: String,
    },
    /// The server told of a change of the account's membership: added to a conversation
    /// (the client follows it already, no polling needed), removed, banned, left, or a new
    /// role. `following`: whether the client follows the conversation now; `sentence`: for
    /// people ("You were removed from Weekend plans").
    Membership {
        conv: String,
        role: Role,
        status: MemberStatus,
        following: bool,
        sentence: String,
    },
    /// An upload's chunk was acknowledged: `sent` of `size` bytes are on the server
    /// (`uploadAttachment`, `resumeUploads`).
    Upload {
        upload: String,
        conv: String,
        sent: u64,
        size: u64,
    },
    /// The server listed this account's devices anew (read them with `devices()`).
    Devices,
    /// The server answered `removeDevice(device)`: `refused` is its code when the device
    /// was not removed (`unknown_device`, ...).
    DeviceRemoved {
        device: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        refused: Option<String>,
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
            ClientEvent::Connection { .. } => EventName::Connection,
            ClientEvent::Trace { .. } => EventName::Trace,
            ClientEvent::Intent { .. } => EventName::Intent,
            ClientEvent::Doc { .. } => EventName::Doc,
            ClientEvent::Conversation { .. } => EventName::Conversation,
            ClientEvent::Timeline { .. } => EventName::Timeline,
            ClientEvent::Conversations => EventName::Conversations,
            ClientEvent::Profile { .. } => EventName::Profile,
            ClientEvent::Typing { .. } => EventName::Typing,
            ClientEvent::Presence { .. } => EventName::Presence,
            ClientEvent::Revoked { .. } => EventName::Revoked,
            ClientEvent::Membership { .. } => EventName::Membership,
            ClientEvent::Upload { .. } => EventName::Upload,
            ClientEvent::Devices => EventName::Devices,
            ClientEvent::DeviceRemoved { .. } => EventName::DeviceRemoved,
            ClientEvent::Error { .. } => EventName::Error,
        }
    }
}

/// Where the connection stands, as a header would show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    /// Welcomed by the server: intents go out at once.
    Online,
    /// An attempt is under way (token, socket, waiting for `welcome`).
    Connecting,
    /// No connection: intents wait in the outbox as `pending`.
    Offline,
}

/// Why the client is connecting or offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionReason {
    /// `connect()` was not called, or `disconnect()` was.
    Disconnected,
    /// The device has no network (the browser's `offline` event): retried on `online`.
    Network,
    /// The socket closed or failed (server gone, refused, unreachable): retried with backoff.
    Closed,
    /// The server did not answer a ping in time: retried with backoff.
    Timeout,
    /// The token provider failed or the server refused the token: retried with backoff.
    Refused,
}

/// The steps a `trace` event times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "snake_case")]
pub enum TraceStage {
    /// A server frame handled: the engine, then every event listener it caused.
    Receive,
    /// The engine's part of `receive`.
    Engine,
    /// An intent written by the engine (the API call's synchronous part).
    Intent,
    /// One batch of store writes (one transaction), until it is committed.
    Store,
    /// A frame from the engine's output to the socket (it waits for the writes before it).
    Send,
}
