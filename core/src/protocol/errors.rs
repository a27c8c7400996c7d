//! Protocol-level error codes (frame and session errors; change rejections use
//! `validate::RejectCode`).

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("frame of {len} bytes is larger than {max}")]
    FrameTooLarge { len: usize, max: usize },
    #[error("not a valid frame: {0}")]
    BadFrame(String),
}

macro_rules! error_codes {
    ($($variant:ident = $text:literal: $doc:literal),+ $(,)?) => {
        /// Stable protocol error codes (the `code` of an `error` frame).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $(#[doc = $doc] $variant),+ }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $text),+ }
            }
            pub fn describe(self) -> &'static str {
                match self { $(ErrorCode::$variant => $doc),+ }
            }
            /// The code named `text`, if this build knows it.
            pub fn parse(text: &str) -> Option<ErrorCode> {
                match text { $($text => Some(ErrorCode::$variant),)+ _ => None }
            }
        }
    };
}

error_codes! {
    BadFrame = "bad_frame": "the message is not a valid frame; it is ignored",
    FrameTooLarge = "frame_too_large": "the frame is larger than the server's max_frame; it is ignored",
    UnsupportedVersion = "unsupported_version": "the server does not speak this protocol version (fatal)",
    Unauthenticated = "unauthenticated": "the first frame must be hello (fatal)",
    AuthFailed = "auth_failed": "the token is not valid (fatal)",
    TokenExpired = "token_expired": "the token has expired (fatal)",
    WrongTenant = "wrong_tenant": "the document belongs to another tenant",
    AlreadyAuthenticated = "already_authenticated": "hello was already accepted on this connection",
    InvalidDoc = "invalid_doc": "the document id is not valid",
    Forbidden = "forbidden": "the account may not read this document",
    BucketExpired = "bucket_expired": "the message bucket is past its conversation's retention (settings/retention_days): its content is deleted; drop it locally and do not subscribe to it again",
    TooManyChanges = "too_many_changes": "a submit holds more changes than max_changes",
    TooManySubscriptions = "too_many_subscriptions": "the connection subscribes to too many documents",
    RateLimited = "rate_limited": "the connection sends frames, or the connection or its account submits changes, signals or directory requests, or the connection claims key packages, faster than allowed (a rejected change counts several times); nothing of the frame was looked at; a refused submit or signal names its doc and retry_after_ms, a refused directory request its id and retry_after_ms",
    TooManyConnections = "too_many_connections": "the server has no room for another connection (fatal)",
    SignalTooLarge = "signal_too_large": "a signal's data is too long",
    Lagging = "lagging": "the connection fell behind the pushes (fatal); reconnect and catch up from your cursors",
    Internal = "internal": "the server failed; nothing was stored; retry later",
    Unavailable = "unavailable": "the server cannot store anything right now (its database is unreachable, full, or too slow to answer a commit within its bound); nothing was stored, except after a commit that timed out, which may have been stored anyway; resubmit after retry_after_ms (safe either way: a stored change is acked with its seq)",
    ShuttingDown = "shutting_down": "the server is shutting down (fatal); reconnect",
    AlreadyFollowing = "already_following": "the connection follows its account's memberships already (a second memberships request is ignored)",
    InvalidId = "invalid_id": "an account or device id in a directory request (or the hello's device, for an upload) is not a valid id",
    TooManyKeyPackages = "too_many_key_packages": "an upload_key_packages frame holds more than 100 key packages",
    KeyPackagesFull = "key_packages_full": "the device would hold more than 100 unclaimed key packages; nothing of the upload was stored",
    TooManyAccounts = "too_many_accounts": "a claim_key_packages frame names more than 100 accounts",
    SignatureKeyMismatch = "mls_signature_key_mismatch": "the key package carries another signature key than the one the device registered with; nothing of the upload was stored",
    KeyPackageReused = "mls_key_package_reused": "the key package was claimed already and is never handed out again; nothing of the upload was stored",
    DeviceRemoved = "device_removed": "the connection's device was removed from the directory; it uploads nothing more",
    UnknownDevice = "unknown_device": "the account has no registered device of that id",
}

impl ErrorCode {
    /// Transient: the request (a submitted change, a subscription) was neither accepted nor
    /// refused for a reason about itself; the client sends it again later (after
    /// `retry_after_ms` when given, with backoff) and never treats it as a rejection.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::Internal
                | ErrorCode::Unavailable
                | ErrorCode::RateLimited
                | ErrorCode::ShuttingDown
                | ErrorCode::Lagging
                | ErrorCode::TooManyConnections
        )
    }
}

/// WebSocket close codes the server uses.
pub mod close {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// Server shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// Protocol violation before authentication.
    pub const POLICY: u16 = 1008;
    /// Server error.
    pub const INTERNAL: u16 = 1011;
    /// Authentication failed or token expired.
    pub const AUTH: u16 = 4001;
    /// Connection limit reached.
    pub const FULL: u16 = 4029;
}
