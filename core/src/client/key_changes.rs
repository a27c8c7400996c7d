//! Key-change notices (docs/E2EE.md, "Key changes in the timeline"): what a processed
//! commit did to the devices of accounts that stay in a group, as this device's own MLS
//! state proves it (its member list before and after the commit, with each leaf's
//! signature key), never the server's word. Every member's device derives the same notices
//! from the same commits, and places each before the same message: the first one, in
//! timeline order, sealed in the epoch the commit began or later.

use serde_bytes::ByteBuf;

use crate::e2ee::Leaf;
use crate::ids::{AccountId, DeviceId, MessageId};

/// The notices a device keeps per group, newest: an older one is dropped when a commit
/// brings more.
pub const KEY_CHANGES_KEPT: usize = 64;

/// What one commit did to a device of an account that was in the group before it and is
/// after it. `epoch`: the epoch the commit began (what is sealed from it on was sealed
/// after the change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    /// A device of an account already in the group was added.
    DeviceAdded {
        account: AccountId,
        device: DeviceId,
        epoch: u64,
    },
    /// A device was removed while its account keeps another in the group.
    DeviceRemoved {
        account: AccountId,
        device: DeviceId,
        epoch: u64,
    },
    /// A device in the group, or one removed earlier and added back, has another signature
    /// key than this device knew for it. An honest Delivery Service never lets one through
    /// (a device keeps its key), and this device refuses a commit that re-keys a device it
    /// holds; what is left is a device removed and added back with another key.
    KeyChanged {
        account: AccountId,
        device: DeviceId,
        epoch: u64,
    },
}

impl KeyChange {
    pub fn account(&self) -> &AccountId {
        match self {
            KeyChange::DeviceAdded { account, .. }
            | KeyChange::DeviceRemoved { account, .. }
            | KeyChange::KeyChanged { account, .. } => account,
        }
    }

    pub fn device(&self) -> &DeviceId {
        match self {
            KeyChange::DeviceAdded { device, .. }
            | KeyChange::DeviceRemoved { device, .. }
            | KeyChange::KeyChanged { device, .. } => device,
        }
    }

    pub fn epoch(&self) -> u64 {
        match self {
            KeyChange::DeviceAdded { epoch, .. }
            | KeyChange::DeviceRemoved { epoch, .. }
            | KeyChange::KeyChanged { epoch, .. } => *epoch,
        }
    }

    /// The notice in words, naming the account and the device.
    pub fn words(&self) -> String {
        match self {
            KeyChange::DeviceAdded {
                account, device, ..
            } => format!("{account} added a device ({device})"),
            KeyChange::DeviceRemoved {
                account, device, ..
            } => format!("{account}'s device {device} was removed"),
            KeyChange::KeyChanged {
                account, device, ..
            } => format!("a device of {account} ({device}) changed its key"),
        }
    }
}

/// A notice where a timeline shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyNotice {
    pub change: KeyChange,
    /// The message it stands right before: the first held, in timeline order, that is
    /// sealed in the change's epoch or later (an edited one is left out: an edit is sealed
    /// again in a later epoch). `None`: after every message held.
    pub before: Option<MessageId>,
}

/// A notice as the device keeps it: with the signature key the device had (a removed one's
/// last key), so a device added back with another key is told apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Kept {
    pub(super) change: KeyChange,
    pub(super) key: ByteBuf,
}

/// A notice as stored: its kind (0 added, 1 removed, 2 key changed), account, device, epoch
/// and key. A plain tuple: a tagged enum's serde code costs the wasm package kilobytes.
pub(super) type Stored = (u8, AccountId, DeviceId, u64, ByteBuf);

impl Kept {
    pub(super) fn stored(&self) -> Stored {
        let kind = match self.change {
            KeyChange::DeviceAdded { .. } => 0,
            KeyChange::DeviceRemoved { .. } => 1,
            KeyChange::KeyChanged { .. } => 2,
        };
        let (account, device) = (self.change.account().clone(), self.change.device().clone());
        (kind, account, device, self.change.epoch(), self.key.clone())
    }

    /// `None` for a kind this build does not know.
    pub(super) fn from_stored((kind, account, device, epoch, key): Stored) -> Option<Kept> {
        let kind = match kind {
            0 => Kind::Added,
            1 => Kind::Removed,
            2 => Kind::Changed,
            _ => return None,
        };
        Some(Kept {
            change: kind.change(account, device, epoch),
            key,
        })
    }
}

/// What a commit that moved a group to `epoch` did to devices of accounts that stay (`before`,
/// `after`: the leaves, in leaf order), in that order: removals, changed keys, additions.
/// `kept`: the group's earlier notices; `staying`: the accounts still members of the
/// conversation. A device removed is a notice while its account stays, even its last one; a
/// device added is one when its account had a device in the group, or an earlier notice
/// (its last device removed: a new phone). An account that joins or leaves brings no
/// notice: the conversation shows its membership.
pub(super) fn derive(
    before: &[Leaf],
    after: &[Leaf],
    epoch: u64,
    kept: &[Kept],
    staying: &dyn Fn(&AccountId) -> bool,
) -> Vec<Kept> {
    let has =
        |leaves: &[Leaf], account: &AccountId| leaves.iter().any(|l| &l.device.account == account);
    let key_in = |leaves: &[Leaf], l: &Leaf| -> Option<Vec<u8>> {
        leaves
            .iter()
            .find(|o| o.device == l.device)
            .map(|o| o.signature_key.clone())
    };
    let mut out = Vec::new();
    for l in before {
        let account = &l.device.account;
        if key_in(after, l).is_none() && (has(after, account) || staying(account)) {
            out.push(Kind::Removed.of(l, epoch));
        }
    }
    for l in after {
        match key_in(before, l) {
            Some(key) if key != l.signature_key => out.push(Kind::Changed.of(l, epoch)),
            Some(_) => {}
            None if !has(before, &l.device.account)
                && !kept.iter().any(|k| k.change.account() == &l.device.account) => {}
            None => {
                // The last key this group's notices knew for the device, if any.
                let known = kept
                    .iter()
                    .rev()
                    .find(|k| {
                        k.change.account() == &l.device.account
                            && k.change.device() == &l.device.device
                    })
                    .map(|k| k.key.as_slice());
                let kind = match known {
                    Some(k) if k != l.signature_key.as_slice() => Kind::Changed,
                    _ => Kind::Added,
                };
                out.push(kind.of(l, epoch));
            }
        }
    }
    out
}

#[derive(Clone, Copy)]
enum Kind {
    Added,
    Removed,
    Changed,
}

impl Kind {
    /// The notice of this kind for leaf `l`, kept with its key.
    fn of(self, l: &Leaf, epoch: u64) -> Kept {
        let (account, device) = (l.device.account.clone(), l.device.device.clone());
        Kept {
            change: self.change(account, device, epoch),
            key: ByteBuf::from(l.signature_key.clone()),
        }
    }

    fn change(self, account: AccountId, device: DeviceId, epoch: u64) -> KeyChange {
        match self {
            Kind::Added => KeyChange::DeviceAdded {
                account,
                device,
                epoch,
            },
            Kind::Removed => KeyChange::DeviceRemoved {
                account,
                device,
                epoch,
            },
            Kind::Changed => KeyChange::KeyChanged {
                account,
                device,
                epoch,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::e2ee::DeviceIdentity;
    use crate::ids::TenantId;

    fn leaf(account: &str, device: &str, key: u8) -> Leaf {
        Leaf {
            device: DeviceIdentity::new(
                TenantId::new("acme").unwrap(),
                AccountId::new(account).unwrap(),
                DeviceId::new(device).unwrap(),
            ),
            signature_key: vec![key; 32],
        }
    }

    fn nobody(_: &AccountId) -> bool {
        false
    }

    fn kinds(out: &[Kept]) -> Vec<String> {
        out.iter().map(|k| k.change.words()).collect()
    }

    #[test]
    fn a_device_added_or_removed_for_a_staying_account_is_a_notice() {
        let before = [leaf("alice", "phone", 1), leaf("bob", "phone", 2)];
        let after = [
            leaf("alice", "phone", 1),
            leaf("bob", "phone", 2),
            leaf("bob", "tablet", 3),
        ];
        let added = derive(&before, &after, 4, &[], &nobody);
        assert_eq!(kinds(&added), ["bob added a device (tablet)"]);
        assert_eq!(added[0].change.epoch(), 4);
        let removed = derive(&after, &before, 5, &added, &nobody);
        assert_eq!(kinds(&removed), ["bob's device tablet was removed"]);
    }

    #[test]
    fn an_account_joining_or_leaving_is_no_notice() {
        let before = [leaf("alice", "phone", 1)];
        let after = [
            leaf("alice", "phone", 1),
            leaf("bob", "phone", 2),
            leaf("bob", "tablet", 3),
        ];
        assert!(derive(&before, &after, 2, &[], &nobody).is_empty());
        assert!(derive(&after, &before, 3, &[], &nobody).is_empty());
    }

    #[test]
    fn another_key_for_a_device_is_a_key_change() {
        let before = [leaf("alice", "phone", 1), leaf("bob", "phone", 2)];
        let rekeyed = [leaf("alice", "phone", 1), leaf("bob", "phone", 9)];
        assert_eq!(
            kinds(&derive(&before, &rekeyed, 3, &[], &nobody)),
            ["a device of bob (phone) changed its key"]
        );
        // Removed, then added back with another key by a later commit.
        let two = [
            leaf("alice", "phone", 1),
            leaf("bob", "phone", 2),
            leaf("bob", "tablet", 3),
        ];
        let removed = derive(&two, &before, 3, &[], &nobody);
        let back = [
            leaf("alice", "phone", 1),
            leaf("bob", "phone", 2),
            leaf("bob", "tablet", 7),
        ];
        assert_eq!(
            kinds(&derive(&before, &back, 4, &removed, &nobody)),
            ["a device of bob (tablet) changed its key"]
        );
        // Added back with its own key: an addition.
        assert_eq!(
            kinds(&derive(&before, &two, 4, &removed, &nobody)),
            ["bob added a device (tablet)"]
        );
    }

    #[test]
    fn a_staying_accounts_last_device_replaced_is_two_notices() {
        // bob's only phone is removed while bob stays a member, and a new one is added.
        let before = [leaf("alice", "phone", 1), leaf("bob", "phone", 2)];
        let alone = [leaf("alice", "phone", 1)];
        let bob = |a: &AccountId| a.as_str() == "bob";
        let removed = derive(&before, &alone, 3, &[], &bob);
        assert_eq!(kinds(&removed), ["bob's device phone was removed"]);
        let new = [leaf("alice", "phone", 1), leaf("bob", "phone2", 5)];
        assert_eq!(
            kinds(&derive(&alone, &new, 4, &removed, &bob)),
            ["bob added a device (phone2)"]
        );
        // Leaving (bob no longer a member) is none.
        assert!(derive(&before, &alone, 3, &[], &nobody).is_empty());
    }
}
