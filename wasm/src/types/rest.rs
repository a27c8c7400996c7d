//! Uploads and the notification feed: what `uploadAttachment`, `pendingUploads`,
//! `resumeUploads` and `notifications` take and give (the server's REST answers, camelCase).

use super::*;

/// `uploadAttachment(conv, blob, options)`.
#[derive(Debug, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct UploadOptions {
    /// The file name the attachment shows; default the `File`'s name.
    #[serde(default)]
    #[tsify(optional)]
    pub name: Option<String>,
    /// Default from the type: `image/*` is `image`, `video/*` `video`, anything else `file`.
    #[serde(default)]
    #[tsify(optional)]
    pub kind: Option<AttachmentKind>,
    /// Default the blob's `type` (`application/octet-stream` when it has none).
    #[serde(default)]
    #[tsify(optional)]
    pub mime: Option<String>,
    /// The attachment's id within its message; default `a-` and the hash's start.
    #[serde(default)]
    #[tsify(optional)]
    pub id: Option<String>,
    /// Bytes per request; default 1 MiB, never above the server's `chunk_max_bytes`.
    #[serde(default)]
    #[tsify(optional)]
    pub chunk_bytes: Option<u32>,
    /// Called after each chunk the server acknowledged.
    #[serde(default = "undefined", with = "serde_wasm_bindgen::preserve")]
    #[tsify(optional, type = "(progress: UploadProgress) => void")]
    pub on_progress: wasm_bindgen::JsValue,
    /// Aborting it stops the upload after the request in flight; it stays pending
    /// (`resumeUploads()` continues it, `cancelUpload(id)` drops it).
    #[serde(default = "undefined", with = "serde_wasm_bindgen::preserve")]
    #[tsify(optional, type = "AbortSignal")]
    pub signal: wasm_bindgen::JsValue,
}

/// `resumeUploads(options)`.
#[derive(Debug, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct ResumeOptions {
    #[serde(default = "undefined", with = "serde_wasm_bindgen::preserve")]
    #[tsify(optional, type = "(progress: UploadProgress) => void")]
    pub on_progress: wasm_bindgen::JsValue,
    #[serde(default = "undefined", with = "serde_wasm_bindgen::preserve")]
    #[tsify(optional, type = "AbortSignal")]
    pub signal: wasm_bindgen::JsValue,
}

fn undefined() -> wasm_bindgen::JsValue {
    wasm_bindgen::JsValue::UNDEFINED
}

/// Where an upload stands: `sent` of `size` bytes are stored on the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
pub struct UploadProgress {
    /// The upload's id (the server's).
    pub upload: String,
    pub conv: String,
    pub sent: u64,
    pub size: u64,
}

/// An upload recorded in the store until it completes or is cancelled (its bytes too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct PendingUpload {
    /// The server's upload id.
    pub upload: String,
    pub conv: String,
    /// SHA-256, 64 hex digits.
    pub hash: String,
    pub size: u64,
    pub mime: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub name: Option<String>,
    pub kind: AttachmentKind,
    /// The id the attachment reference will carry.
    pub attachment_id: String,
    pub chunk_bytes: u32,
    pub created_at: i64,
    /// An encrypted conversation's upload: the recorded bytes are the ciphertext (`hash`
    /// and `size` are its), sealed so; `plainSize` is the file's. It is stored under the
    /// file's declared `mime`, so the tenant's type policy applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub encryption: Option<AttachmentSeal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub plain_size: Option<u64>,
}

/// What `resumeUploads()` did with one pending upload: its attachment, or why not (an
/// upload that failed for good is dropped; one that failed for now stays pending).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
pub struct ResumedUpload {
    pub upload: String,
    pub conv: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub attachment: Option<Attachment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub error: Option<RestError>,
    /// Whether it is still pending (`error` was transient, or it was aborted).
    pub pending: bool,
}

/// A REST failure: the server's code and message, with the HTTP status (absent when there
/// was no answer: `network`, `aborted`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
pub struct RestError {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub status: Option<u16>,
}

/// `notifications(options)`: `GET /v1/notifications` (docs/NOTIFICATIONS.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(default)]
pub struct FeedOptions {
    /// The previous page's `nextCursor`: older notifications.
    #[tsify(optional)]
    pub cursor: Option<String>,
    /// 1..100, default 50.
    #[tsify(optional)]
    pub limit: Option<u32>,
    /// Unread ones only.
    #[tsify(optional)]
    pub unread: Option<bool>,
}

/// Why the account was told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    Mention,
    Reply,
    Direct,
    Proposal,
    JoinRequest,
    /// New messages of a group or channel at the level `all`, one entry per conversation
    /// with their `count`.
    Message,
}

/// One entry of the feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// Increasing; `markNotificationsRead(id)` marks up to it.
    pub id: i64,
    pub kind: NotificationKind,
    pub conversation: String,
    /// The message it is about (absent for a join request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub message: Option<String>,
    /// The message's author, or the account asking to join.
    pub from: String,
    /// The start of the text; empty for join requests and deleted messages.
    pub preview: String,
    /// RFC 3339.
    #[serde(alias = "created_at")]
    pub created_at: String,
    pub read: bool,
    /// How many messages the entry tells of (more than one only for `message`).
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

/// A page of the feed, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct NotificationPage {
    pub notifications: Vec<Notification>,
    /// Unread notifications in all the account's conversations.
    pub unread: u32,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    #[serde(
        default,
        alias = "next_cursor",
        skip_serializing_if = "Option::is_none"
    )]
    #[tsify(optional)]
    pub next_cursor: Option<String>,
}

/// `markNotificationsRead(upTo?)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
pub struct MarkedRead {
    /// Notifications this call marked read.
    pub marked: u32,
    pub unread: u32,
}
