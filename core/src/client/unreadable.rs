//! Why a sealed message shows no content on this device (docs/E2EE.md, "Why a message is
//! unreadable"): each case says whether it will ever open here, and a transient one what it
//! waits for, so an app never shows "not opened yet" for a message that never will.

use serde::{Deserialize, Serialize};

use super::engine::ClientEngine;
use super::sealed::SENDER_MISMATCH;
use crate::e2ee::{self, E2eeError};
use crate::ids::{ConvId, DocId};

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

impl ClientEngine {
    /// Why a sealed message of `conv` that this device has not opened is not open yet, or
    /// why it never will be.
    pub(super) fn not_opened(&self, conv: &ConvId, sealed: &[u8]) -> Unreadable {
        let group = e2ee::group_id(&DocId::conv(&self.config.tenant, conv));
        let Some(epoch) = self.mls.as_ref().and_then(|m| m.device.epoch(&group)) else {
            let member = self
                .conversation(conv)
                .is_some_and(|c| c.active_member(&self.config.account).is_some());
            return if member {
                Unreadable::WaitingToJoin
            } else {
                Unreadable::NotMember
            };
        };
        if !self.online {
            return Unreadable::WaitingForConnection;
        }
        match e2ee::sealed_epoch(sealed) {
            Err(_) => Unreadable::Damaged,
            Ok((_, sent)) if sent > epoch => Unreadable::WaitingForKeys,
            Ok(_) => Unreadable::WaitingForEarlier,
        }
    }
}
