//! End-to-end encryption of conversations with MLS (RFC 9420), through `openmls` with the
//! RustCrypto algorithms (`crypto`). Every device is a leaf of its conversation's group, named by a
//! credential that says tenant, account and device ([`identity`]).
//!
//! - [`member`]: one device's side: its signature key, key packages, groups, commits, and the
//!   encryption and decryption of application messages.
//! - [`safety`]: safety numbers, two accounts' device keys as digits people compare.
//! - [`file`]: attachments of encrypted conversations, sealed with AES-256-GCM on the device.
//! - `crypto`: openmls's crypto provider, for the one ciphersuite in use.
//! - [`directory`]: what the server's directory of devices says of a leaf (registered, its
//!   bound signature key, removed), which every leaf a commit brings in is checked against.
//! - [`ds`]: the Delivery Service's side, run by the server: the public state of one
//!   conversation's group, which checks every handshake message against the devices the
//!   conversation's membership allows, and every application message's framing. It never
//!   holds a secret and never decrypts.
//!
//! Key material needs a CSPRNG: the provider draws from the operating system (natively) or
//! `crypto.getRandomValues` (in browsers). That is the one randomness in the core.

mod crypto;
pub mod directory;
pub mod ds;
pub mod file;
pub mod identity;
pub mod member;
mod refusal;
pub mod safety;
mod snapshot;
mod store;
pub mod tree;

use openmls::prelude::{Ciphersuite, MlsGroupCreateConfig, MIXED_PLAINTEXT_WIRE_FORMAT_POLICY};

pub use directory::{Directory, DirectoryAnswer, DirectoryAsk, DirectoryEntry, Leaf};
pub use ds::{DsRefusal, GroupView, StagedCheck};
pub use identity::DeviceIdentity;
pub use member::{
    sealed_epoch, CommitBundle, Decrypted, Device, E2eeError, GroupInit, HandshakeOutcome,
    StateChange,
};
pub use safety::{account_half, safety_number};

/// The MLS group id of a conversation: its `conv` document's id, so a group can never be
/// offered for another conversation.
pub fn group_id(conv_doc: &crate::ids::DocId) -> Vec<u8> {
    conv_doc.to_string().into_bytes()
}

/// X25519, AES-128-GCM, SHA-256 and Ed25519: MLS's mandatory suite, fast in wasm.
pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

/// How many past epochs a device keeps the secrets of, and the Delivery Service's window for
/// a send: a message written offline under an older epoch is accepted, and stays readable,
/// while the group has moved at most this many epochs since.
pub const PAST_EPOCHS: u64 = 16;

/// How many past epochs a device keeps at most while it catches up: following more commits
/// at once than `PAST_EPOCHS`, it keeps every epoch it passes, up to this many and
/// `CATCH_UP_BYTES`, until the messages sent in them have arrived and are opened
/// (docs/E2EE.md, "Epochs a device keeps").
pub const CATCH_UP_EPOCHS: usize = 256;

/// What a catching-up device keeps of past epochs in one group at most, in bytes of its
/// state: a kept epoch is its member list and secret tree, about `KEPT_EPOCH_BYTES` a
/// device (docs/BENCHMARKS.md, "Epochs a catching-up device keeps").
pub const CATCH_UP_BYTES: usize = 8 << 20;

/// What one kept past epoch adds to a device's state per device of the group (measured: 89
/// bytes at 1,000 devices, 93 at 100).
const KEPT_EPOCH_BYTES: usize = 90;

/// How many past epochs a device catching up in a group of `devices` keeps at most: 256 up to
/// ~360 devices, fewer in larger groups (93 at 1,000), never fewer than `PAST_EPOCHS`.
pub fn catch_up_epochs(devices: usize) -> usize {
    (CATCH_UP_BYTES / KEPT_EPOCH_BYTES.saturating_mul(devices.max(1)))
        .clamp(PAST_EPOCHS as usize, CATCH_UP_EPOCHS)
}

/// The largest handshake message (commit, Welcome, group info) accepted: adding 1,000
/// devices at once makes a commit of about 300 KB and a Welcome of about 340 KB.
pub const MAX_HANDSHAKE_BYTES: usize = 4 << 20;

/// The largest key package the directory takes: one is about 300 bytes; the bound leaves
/// room for extensions and keeps a flood of uploads cheap to refuse.
pub const MAX_KEY_PACKAGE_BYTES: usize = 16 << 10;

/// The largest application message: a message's encrypted content (body, caption, payload,
/// attachment list) with MLS framing and padding.
pub const MAX_APPLICATION_BYTES: usize = 64 << 10;

/// Handshake messages travel as MLS PublicMessages so that the Delivery Service can follow
/// the group's membership; application messages are always PrivateMessages.
fn group_config() -> MlsGroupCreateConfig {
    MlsGroupCreateConfig::builder()
        .ciphersuite(CIPHERSUITE)
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .max_past_epochs(PAST_EPOCHS as usize)
        .use_ratchet_tree_extension(true)
        .build()
}
