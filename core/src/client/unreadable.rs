//! Why a sealed message shows no content on this device (docs/E2EE.md, "Why a message is
//! unreadable"): each case says whether it will ever open here, and a transient one what it
//! waits for, so an app never shows "not opened yet" for a message that never will.

use serde::{Deserialize, Serialize};

use crate::e2ee::E2eeError;

/// The reason a sealed message is `undecryptable` when the device that sealed it, the MLS
/// sender its decryption proves, is not of the message's author: another tenant, or another
/// account than the clear `author` of the message (a server or relay that relabelled it).
/// The message is not opened, and its plaintext is neither kept nor shown.
pub(super) const SENDER_MISMATCH: &str = "sender_mismatch";

/// Why this device cannot show a sealed message's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unreadable {
    /// Sealed before this device joined the group: never opens here.
    BeforeJoin,
    /// Sealed in an epoch whose keys this device no longer keeps: never opens here.
    OutsideWindow,
    /// Its MLS sender is not of the account its author names: never shown.
    SenderMismatch,
    /// Not a well-formed sealed message of this group, or bound to another message.
    Damaged,
    /// Decrypted once already and what was read not kept: never opens again here.
    ReadOnce,
    /// This device is not in the group, and its account is no longer an active member.
    NotMember,
    /// Waits for this device to be added to the group (it said it waits: "Joining").
    WaitingToJoin,
    /// Waits for the group's commits that bring this device to the message's epoch.
    WaitingForKeys,
    /// Waits for the conversation's earlier messages, opened first (each sender's ratchet
    /// is opened in order).
    WaitingForEarlier,
    /// Waits for a connection: nothing is opened offline.
    WaitingForConnection,
}

impl Unreadable {
    /// Whether it will never open on this device.
    pub fn is_permanent(self) -> bool {
        !matches!(
            self,
            Self::WaitingToJoin
                | Self::WaitingForKeys
                | Self::WaitingForEarlier
                | Self::WaitingForConnection
        )
    }

    /// What a person is told.
    pub fn words(self) -> &'static str {
        match self {
            Self::BeforeJoin => "sent before this device joined",
            Self::OutsideWindow => "sent in an epoch outside the window this device keeps",
            Self::SenderMismatch => SENDER_MISMATCH,
            Self::Damaged => "damaged",
            Self::ReadOnce => "read once already and not kept",
            Self::NotMember => "this device is not in the group and will not be added",
            Self::WaitingToJoin => "waiting for this device to be added to the group",
            Self::WaitingForKeys => "waiting for the keys of the epoch it was sent in",
            Self::WaitingForEarlier => "waiting for earlier messages to be opened first",
            Self::WaitingForConnection => "waiting for a connection",
        }
    }

    /// The case a decryption error is, kept with the message.
    pub(super) fn of_error(e: &E2eeError) -> Self {
        match e {
            E2eeError::EpochTooOld => Self::OutsideWindow,
            E2eeError::BeforeJoin => Self::BeforeJoin,
            E2eeError::AlreadyDecrypted => Self::ReadOnce,
            _ => Self::Damaged,
        }
    }

    /// The case a kept reason is: what this build keeps ([`Unreadable::words`]) and what
    /// earlier builds kept.
    pub(super) fn of_kept(reason: &str) -> Self {
        const ALL: [Unreadable; 6] = [
            Unreadable::BeforeJoin,
            Unreadable::OutsideWindow,
            Unreadable::SenderMismatch,
            Unreadable::Damaged,
            Unreadable::ReadOnce,
            Unreadable::NotMember,
        ];
        ALL.into_iter()
            .find(|u| u.words() == reason)
            .unwrap_or(Self::Damaged)
    }
}
