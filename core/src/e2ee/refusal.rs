//! Why the Delivery Service refuses an MLS message (docs/E2EE.md, "Delivery Service codes"):
//! its own file so that the directory's check and the group's use one type without importing
//! each other.

use super::E2eeError;

/// Why the Delivery Service refuses an MLS message. Each has a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsRefusal {
    #[error("not a well-formed MLS message of the expected kind: {0}")]
    Malformed(String),
    #[error("the MLS message is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the message is for another group")]
    WrongGroup,
    #[error("the commit is for epoch {got}, the group is at epoch {current}")]
    StaleEpoch { got: u64, current: u64 },
    #[error("the message names epoch {got}, the group is only at {current}")]
    UnknownEpoch { got: u64, current: u64 },
    #[error("an application message must be encrypted")]
    NotEncrypted,
    #[error("MLS validation failed: {0}")]
    Invalid(String),
    #[error("the commit was made by {got}, not by the submitting device")]
    WrongSender { got: String },
    #[error("the commit adds {0}, which is not a device of an active member")]
    AddsNonMember(String),
    #[error("{0} is no longer a device of an active member and the commit does not remove it")]
    MissingRemoval(String),
    #[error("the commit removes {0}, a device of another active member")]
    RemovesMember(String),
    #[error("{0} was removed from the directory and the commit does not remove it")]
    KeepsRemovedDevice(String),
    #[error("the commit carries a proposal other than add, remove or update")]
    UnsupportedProposal,
    #[error("the key package names {got}, not the uploading device")]
    WrongIdentity { got: String },
    #[error("the ciphertext is bound to another message")]
    WrongAad,
    #[error("the edit is bound to a content the message no longer holds (replayed or outdated)")]
    StaleEdit,
    #[error("{0} is not a device of the group")]
    NotInGroup(String),
    #[error("{0} left the conversation and a commit must remove their devices first")]
    RemovalPending(String),
    #[error("{0}")]
    UnknownDevice(String),
    #[error("{0} is registered with another signature key")]
    WrongSignatureKey(String),
    #[error("a leaf of {from} would name {to}: a device keeps its identity")]
    IdentityChanged { from: String, to: String },
}

impl DsRefusal {
    /// Every code, for the docs and the tests that keep them in step.
    pub const CODES: &'static [&'static str] = &[
        "mls_malformed",
        "mls_too_large",
        "mls_wrong_group",
        "mls_stale_epoch",
        "mls_unknown_epoch",
        "mls_not_encrypted",
        "mls_invalid",
        "mls_wrong_sender",
        "mls_adds_non_member",
        "mls_missing_removal",
        "mls_removes_member",
        "mls_keeps_removed_device",
        "mls_unsupported_proposal",
        "mls_wrong_identity",
        "mls_wrong_aad",
        "mls_stale_edit",
        "mls_not_in_group",
        "mls_removal_pending",
        "mls_unknown_device",
        "mls_wrong_signature_key",
    ];

    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "mls_malformed",
            Self::TooLarge(_) => "mls_too_large",
            Self::WrongGroup => "mls_wrong_group",
            Self::StaleEpoch { .. } => "mls_stale_epoch",
            Self::UnknownEpoch { .. } => "mls_unknown_epoch",
            Self::NotEncrypted => "mls_not_encrypted",
            Self::Invalid(_) => "mls_invalid",
            Self::WrongSender { .. } => "mls_wrong_sender",
            Self::AddsNonMember(_) => "mls_adds_non_member",
            Self::MissingRemoval(_) => "mls_missing_removal",
            Self::RemovesMember(_) => "mls_removes_member",
            Self::KeepsRemovedDevice(_) => "mls_keeps_removed_device",
            Self::UnsupportedProposal => "mls_unsupported_proposal",
            Self::WrongIdentity { .. } => "mls_wrong_identity",
            Self::WrongAad => "mls_wrong_aad",
            Self::StaleEdit => "mls_stale_edit",
            Self::NotInGroup(_) => "mls_not_in_group",
            Self::RemovalPending(_) => "mls_removal_pending",
            Self::UnknownDevice(_) => "mls_unknown_device",
            Self::WrongSignatureKey(_) => "mls_wrong_signature_key",
            Self::IdentityChanged { .. } => "mls_wrong_identity",
        }
    }
}

impl From<E2eeError> for DsRefusal {
    fn from(e: E2eeError) -> Self {
        match e {
            E2eeError::TooLarge(max) => Self::TooLarge(max),
            other => Self::Malformed(other.to_string()),
        }
    }
}
