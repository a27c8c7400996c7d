//! Sealed messages on the device (docs/E2EE.md, "On the device"): a send into an encrypted
//! conversation seals its content (`SealedContent`, bound to the message id) for the group's
//! current epoch; a message of another device is opened once when it arrives (MLS deletes
//! each key after use, and a sender cannot open its own). What was read is kept with its
//! bucket document, in memory and in the store (`open/<doc>/<message>`), and timelines show
//! it; a message that cannot be opened is shown `undecryptable` with its reason. A message is
//! opened only under its MLS sender's account: the device that sealed it (the leaf its
//! decryption proves) must be of this tenant and of the account its clear `author` names.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::unreadable::Unreadable;
use crate::e2ee::{DeviceIdentity, E2eeError};
use crate::ids::{AccountId, MessageId, TenantId};
use crate::model::message::SealedContent;

/// What this device read of one sealed message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Opened {
    Read {
        content: SealedContent,
        /// The SHA-256 of the ciphertext it was read from: an edit replaces the ciphertext,
        /// and the message is opened again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        of: Option<Vec<u8>>,
        /// For this device's own edit: what it read before, shown again if the server
        /// refuses the edit (the sender cannot open its earlier ciphertext).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<Box<Opened>>,
        /// The account of the device that sealed it: the MLS sender its decryption proved
        /// (this account for what this device sealed). It is shown only while the message's
        /// clear `author` is this account. `None` in a record kept before it was recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sender: Option<AccountId>,
    },
    /// It cannot be read here: `reason` says why (sent before this device joined, an epoch
    /// outside the window of past epochs, corrupt, [`SENDER_MISMATCH`]).
    Undecryptable {
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        of: Option<Vec<u8>>,
    },
}

impl Opened {
    /// Whether this was read from another ciphertext than `sealed` (the message was edited
    /// since). A record that names none is taken as current.
    pub(super) fn is_stale(&self, sealed: &[u8]) -> bool {
        let (Opened::Read { of, .. } | Opened::Undecryptable { of, .. }) = self;
        of.as_ref().is_some_and(|of| *of != digest(sealed))
    }

    /// The record, of this one and those it replaced, read from `sealed`.
    pub(super) fn read_from(self, sealed: &[u8]) -> Option<Opened> {
        let mut record = self;
        loop {
            if !record.is_stale(sealed) {
                return Some(record);
            }
            match record {
                Opened::Read {
                    before: Some(b), ..
                } => record = *b,
                _ => return None,
            }
        }
    }

    /// This record with at most `depth` earlier ones behind it (edits pending at once).
    pub(super) fn pruned(self, depth: usize) -> Opened {
        match self {
            Opened::Read {
                content,
                of,
                before,
                sender,
            } => Opened::Read {
                content,
                of,
                before: before
                    .filter(|_| depth > 0)
                    .map(|b| Box::new(b.pruned(depth - 1))),
                sender,
            },
            other => other,
        }
    }

    /// The content read, if it may be shown under a message whose clear author is `author`:
    /// not when it was not read, nor when it was read from another account's device (the
    /// author was changed after it was opened: it shows as [`SENDER_MISMATCH`]).
    pub(super) fn read_for(&self, author: &AccountId) -> Option<&SealedContent> {
        match self {
            Opened::Read {
                content, sender, ..
            } if sender.as_ref().is_none_or(|s| s == author) => Some(content),
            _ => None,
        }
    }
}

pub(super) use super::unreadable::SENDER_MISMATCH;

/// Whether `sender`, the device that sealed a message, is of `tenant` and of `author`'s
/// account: only then is what it sealed shown as `author`'s.
pub(super) fn sent_by(sender: &DeviceIdentity, tenant: &TenantId, author: &AccountId) -> bool {
    sender.tenant == *tenant && sender.account == *author
}

/// How many earlier records an edit keeps: one per edit of the message still pending.
pub(super) const EDITS_PENDING_KEPT: usize = 4;

pub(super) fn digest(sealed: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(sealed).to_vec()
}

/// Per bucket document: what was read of its sealed messages.
pub(super) type OpenedBook = HashMap<MessageId, Opened>;

/// The reason kept for a message a decryption error leaves unreadable.
pub(super) fn reason(e: &E2eeError) -> String {
    Unreadable::of_error(e).words().to_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ids::DeviceId;

    fn device(tenant: &str, account: &str) -> DeviceIdentity {
        DeviceIdentity::new(
            TenantId::new(tenant).unwrap(),
            AccountId::new(account).unwrap(),
            DeviceId::new("phone").unwrap(),
        )
    }

    #[test]
    fn a_message_opens_only_under_its_senders_account_of_this_tenant() {
        let acme = TenantId::new("acme").unwrap();
        let alice = AccountId::new("alice").unwrap();
        assert!(sent_by(&device("acme", "alice"), &acme, &alice));
        assert!(!sent_by(&device("acme", "carol"), &acme, &alice));
        assert!(!sent_by(&device("other", "alice"), &acme, &alice));
    }

    #[test]
    fn what_was_read_shows_only_under_the_account_that_sealed_it() {
        let alice = AccountId::new("alice").unwrap();
        let carol = AccountId::new("carol").unwrap();
        let content = SealedContent {
            body: "hi".into(),
            caption: None,
            payload: None,
            attachments: None,
        };
        let read = |sender: Option<AccountId>| Opened::Read {
            content: content.clone(),
            of: None,
            before: None,
            sender,
        };
        assert_eq!(read(Some(alice.clone())).read_for(&alice), Some(&content));
        assert_eq!(read(Some(alice.clone())).read_for(&carol), None);
        // A record kept before the sender was recorded is taken as the author's.
        assert_eq!(read(None).read_for(&carol), Some(&content));
        let refused = Opened::Undecryptable {
            reason: SENDER_MISMATCH.into(),
            of: None,
        };
        assert_eq!(refused.read_for(&alice), None);
    }
}
