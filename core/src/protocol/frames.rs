//! The frames of the hub protocol, version 1 (docs/PROTOCOL.md describes each field).

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::ids::{Bucket, ConvId};
use crate::model::conversation::{MemberStatus, Role};

pub use super::order::SnapshotOrder;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Ephemeral signals, relayed to members and never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    Typing,
    StoppedTyping,
    Presence,
    /// A device of the sender waits to be added to the conversation's MLS group (docs/E2EE.md,
    /// "Joining"): relayed with the device's name as `data`, set by the server.
    DeviceWaiting,
    /// The sender's devices changed in the directory (one was removed): sent by the server
    /// alone, to each conversation the account is an active member of, so that the members'
    /// devices ask `list_devices` again and take a removed device out of their groups at once.
    DevicesChanged,
}

/// Client → server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ClientFrame {
    Hello {
        v: u32,
        token: String,
        device: String,
    },
    Subscribe {
        doc: String,
        after: u64,
    },
    Unsubscribe {
        doc: String,
    },
    Submit {
        doc: String,
        changes: Vec<ByteBuf>,
    },
    Signal {
        doc: String,
        kind: SignalKind,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<String>,
    },
    Ping {
        nonce: u64,
    },
    /// Lists the message bucket parts of a conversation (`doc`: its `conv` document), newest
    /// first: the newest `limit` older than `before`, or the newest of all without it.
    Buckets {
        doc: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<Bucket>,
        limit: u32,
    },
    /// Asks when each member of a conversation (`doc`: its `conv` document) last moved its
    /// read marker, by the server's stored time; answered by `read_times`.
    ReadTimes {
        doc: String,
    },
    /// Follows the account's memberships on this connection: every one the server holds
    /// (`memberships` pages), then a `membership` push whenever one changes.
    Memberships {},
    /// Puts MLS key packages of this connection's device in the directory (its first upload
    /// registers the device); `last_resort` replaces the device's last-resort package.
    UploadKeyPackages {
        id: u64,
        packages: Vec<ByteBuf>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_resort: Option<ByteBuf>,
    },
    /// Takes one key package of every device of each account (of the connection's tenant).
    ClaimKeyPackages {
        id: u64,
        accounts: Vec<String>,
    },
    /// Lists the registered devices of an account of the connection's tenant.
    ListDevices {
        id: u64,
        account: String,
    },
    /// Removes a device of the connection's own account from the directory.
    RemoveDevice {
        id: u64,
        device: String,
    },
}

/// The most key packages one `upload_key_packages` frame carries (the last resort aside).
pub const KEY_PACKAGES_PER_UPLOAD: usize = 100;

/// The most ordinary key packages the directory holds for one device.
pub const KEY_PACKAGES_HELD_MAX: u64 = 100;

/// The most accounts one `claim_key_packages` names.
pub const CLAIM_ACCOUNTS_MAX: usize = 100;

/// The most `claim_key_packages` requests one connection sends in any
/// [`CLAIMS_WINDOW_MS`]; beyond, each is refused `rate_limited` with `retry_after_ms`.
pub const CLAIMS_PER_CONNECTION: usize = 20;

/// The window of [`CLAIMS_PER_CONNECTION`] (ms).
pub const CLAIMS_WINDOW_MS: i64 = 10_000;

/// The most ordinary key packages of one account a server node hands out in any
/// [`CLAIMED_PER_ACCOUNT_WINDOW_MS`], whoever claims; beyond, the account's devices answer
/// their last-resort package.
pub const CLAIMED_PER_ACCOUNT: usize = 30;

/// The window of [`CLAIMED_PER_ACCOUNT`] (ms).
pub const CLAIMED_PER_ACCOUNT_WINDOW_MS: i64 = 60_000;

/// One device's answer in a `key_packages` frame: its key package, or none left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimedPackage {
    pub account: String,
    pub device: String,
    /// `None`: the device has no package left (nor a last-resort one).
    pub package: Option<ByteBuf>,
}

/// A registered device and the MLS signature key bound to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceEntry {
    pub device: String,
    pub signature_key: ByteBuf,
    /// When its first upload registered it (server time, ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_at: Option<i64>,
    /// When it last connected (asked how many key packages it holds; server time, ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_at: Option<i64>,
    /// The ordinary key packages it holds: how many more devices can add it before its
    /// last-resort package is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_packages: Option<u64>,
}

/// The most bucket parts one `buckets` answer lists.
pub const BUCKETS_LIMIT_MAX: u32 = 256;

/// One stored change with its per-document sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqChange {
    pub seq: u64,
    pub change: ByteBuf,
}

/// The account's membership in one conversation, as of the conversation document's `seq`
/// (a later `seq` supersedes an earlier one; two entries with the same `seq` agree).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub conv: ConvId,
    pub role: Role,
    pub status: MemberStatus,
    pub seq: u64,
}

/// A member's read marker and when it last moved (server time, ms; `None` for a marker
/// stored before read times were kept, until it moves).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadTime {
    pub account: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<i64>,
}

/// The most memberships one `memberships` page holds.
pub const MEMBERSHIPS_PAGE: usize = 512;

/// Server → client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ServerFrame {
    Welcome {
        v: u32,
        account: String,
        tenant: String,
        server_time: i64,
        max_frame: u32,
        max_changes: u32,
    },
    /// Accepted changes of a document, in seq order: catch-up batches, then live pushes.
    Changes {
        doc: String,
        changes: Vec<SeqChange>,
    },
    /// The whole document as of `seq` (Automerge save format), sent instead of changes: when
    /// a compaction folded away changes the client has not seen, or when the client misses so
    /// many that the document is the cheaper catch-up (docs/PROTOCOL.md, "Catch-up").
    Snapshot {
        doc: String,
        seq: u64,
        data: ByteBuf,
        /// The seqs of the changes after the client's cursor that the store still lists.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        order: Option<SnapshotOrder>,
    },
    /// Catch-up of `doc` is complete up to `seq`; live pushes follow.
    Synced {
        doc: String,
        seq: u64,
    },
    Ack {
        doc: String,
        hash: ByteBuf,
        seq: u64,
    },
    Reject {
        doc: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hash: Option<ByteBuf>,
        code: String,
        reason: String,
    },
    /// The account lost read access to `doc`; no more pushes for it.
    Revoked {
        doc: String,
        code: String,
        reason: String,
    },
    Signal {
        doc: String,
        from: String,
        kind: SignalKind,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<String>,
    },
    Pong {
        nonce: u64,
        server_time: i64,
    },
    /// The answer to `buckets`: parts of the conversation `doc`, newest first; `more` when
    /// older ones exist beyond the limit.
    Buckets {
        doc: String,
        buckets: Vec<Bucket>,
        more: bool,
    },
    /// A new bucket part of the conversation `doc` got its first message: pushed to the
    /// subscribers of the `conv` document.
    Bucket {
        doc: String,
        bucket: Bucket,
    },
    /// The answer to `read_times`: every read marker of the conversation `doc` with its
    /// time, by account.
    ReadTimes {
        doc: String,
        reads: Vec<ReadTime>,
    },
    /// The answer to `memberships`: every membership of the account (any status), in pages;
    /// `more` on every page but the last.
    Memberships {
        memberships: Vec<Membership>,
        more: bool,
    },
    /// One of the account's memberships changed (added, removed, left, banned, role), on
    /// whichever node it was committed. Sent only to the account's own connections that
    /// follow their memberships.
    Membership {
        conv: ConvId,
        role: Role,
        status: MemberStatus,
        seq: u64,
    },
    /// The answer to `upload_key_packages`: the device holds `held` ordinary packages now.
    KeyPackagesStored {
        id: u64,
        held: u64,
    },
    /// The answer to `claim_key_packages`: one entry per registered device of the accounts
    /// asked for, in (account, device) order.
    KeyPackages {
        id: u64,
        devices: Vec<ClaimedPackage>,
    },
    /// The answer to `list_devices`.
    Devices {
        id: u64,
        account: String,
        devices: Vec<DeviceEntry>,
        /// The account's devices removed from the directory, which its other devices take
        /// out of its groups.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        removed: Vec<String>,
    },
    /// The answer to `remove_device`.
    DeviceRemoved {
        id: u64,
    },
    /// A request failed (`fatal`: the server closes the connection after this frame).
    Error {
        code: String,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        doc: Option<String>,
        fatal: bool,
        /// The submitted change this answers (`internal`, `unavailable`, `rate_limited` for a
        /// submit): that change was neither accepted nor rejected.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hash: Option<ByteBuf>,
        /// For retryable codes: wait at least this long before resubmitting.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
        /// The directory request (`upload_key_packages`, ...) this refuses.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
}
