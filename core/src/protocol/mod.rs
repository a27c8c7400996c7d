//! The hub protocol (docs/PROTOCOL.md): frames, their binary codec, and the
//! server's per-connection session state machine. Sans-io.

pub mod budget;
pub mod codec;
pub mod errors;
pub mod frames;
pub mod order;
pub mod peek;
pub mod session;

pub use budget::{Budget, BudgetRate};
pub use codec::{decode_client, decode_server, encode_client, encode_server};
pub use errors::{ErrorCode, ProtocolError};
pub use frames::{
    ClaimedPackage, ClientFrame, DeviceEntry, Membership, ReadTime, SeqChange, ServerFrame,
    SignalKind, CLAIMED_PER_ACCOUNT, CLAIMED_PER_ACCOUNT_WINDOW_MS, CLAIMS_PER_CONNECTION,
    CLAIMS_WINDOW_MS, CLAIM_ACCOUNTS_MAX, KEY_PACKAGES_HELD_MAX, KEY_PACKAGES_PER_UPLOAD,
    MEMBERSHIPS_PAGE, PROTOCOL_VERSION,
};
pub use order::{change_actor_and_start_op, SnapshotOrder};
pub use session::{Action, Identity, Limits, Session};
