//! What the server's directory of devices says, as the Delivery Service checks leaves against
//! it (docs/E2EE.md, "Every leaf is a registered device"). The directory is the store's; the
//! acceptor asks for the entries of the accounts whose leaves a change brings into a group,
//! and for the devices removed since it last looked (`accept::Need::Devices`), and checks
//! each leaf here, the same way on every store and node.

use std::collections::HashMap;

use super::identity::DeviceIdentity;
use super::refusal::DsRefusal;
use crate::ids::AccountId;

/// What the acceptor asks the directory of the unit's tenant for one change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryAsk {
    /// Every entry of these accounts, removed or not.
    pub accounts: Vec<AccountId>,
    /// Also every device of the tenant removed at a removal generation after this one
    /// (`None`: only the accounts). Each removal from the directory takes the tenant's next
    /// generation; generations become visible in their order.
    pub removed_after: Option<u64>,
}

/// The directory's answer to a [`DirectoryAsk`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryAnswer {
    /// The entries of the accounts asked and of the devices removed after `removed_after`
    /// (a device may come twice).
    pub entries: Vec<DirectoryEntry>,
    /// The tenant's removal generation, read before the entries: every removal up to it is
    /// in them (0: no device of the tenant was ever removed).
    pub generation: u64,
}

/// One registered device: the signature key its first upload bound, and whether it was
/// removed since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntry {
    pub device: DeviceIdentity,
    pub signature_key: Vec<u8>,
    pub removed: bool,
}

/// A leaf a change brings into a group: the device its credential names and its signature
/// key. Added devices, the committer's new leaf (its update path or an Update proposal) and
/// every leaf of a new group's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    pub device: DeviceIdentity,
    pub signature_key: Vec<u8>,
}

/// The directory's entries of some accounts, as answered for one change.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    entries: HashMap<DeviceIdentity, DirectoryEntry>,
}

impl Directory {
    pub fn new(entries: impl IntoIterator<Item = DirectoryEntry>) -> Self {
        Directory {
            entries: entries.into_iter().map(|e| (e.device.clone(), e)).collect(),
        }
    }

    /// The entry of `device`, removed or not.
    pub fn entry(&self, device: &DeviceIdentity) -> Option<&DirectoryEntry> {
        self.entries.get(device)
    }

    /// Whether the directory marks `device` removed.
    pub fn is_removed(&self, device: &DeviceIdentity) -> bool {
        self.entries.get(device).is_some_and(|e| e.removed)
    }

    /// A leaf may enter a group only as a registered, not removed device, with the signature
    /// key bound to it at registration.
    pub fn check(&self, leaf: &Leaf) -> Result<(), DsRefusal> {
        match self.entries.get(&leaf.device) {
            None => Err(DsRefusal::UnknownDevice(format!(
                "{} is not registered in the directory",
                leaf.device
            ))),
            Some(e) if e.removed => Err(DsRefusal::UnknownDevice(format!(
                "{} was removed from the directory",
                leaf.device
            ))),
            Some(e) if e.signature_key != leaf.signature_key => {
                Err(DsRefusal::WrongSignatureKey(leaf.device.to_string()))
            }
            Some(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ids::{AccountId, DeviceId, TenantId};

    fn device(name: &str) -> DeviceIdentity {
        DeviceIdentity::new(
            TenantId::new("acme").unwrap(),
            AccountId::new("alice").unwrap(),
            DeviceId::new(name).unwrap(),
        )
    }

    #[test]
    fn a_leaf_enters_only_as_a_registered_device_with_its_bound_key() {
        let dir = Directory::new([
            DirectoryEntry {
                device: device("phone"),
                signature_key: vec![1; 32],
                removed: false,
            },
            DirectoryEntry {
                device: device("old"),
                signature_key: vec![2; 32],
                removed: true,
            },
        ]);
        let leaf = |name: &str, key: u8| Leaf {
            device: device(name),
            signature_key: vec![key; 32],
        };
        assert_eq!(dir.check(&leaf("phone", 1)), Ok(()));
        let code = |r: Result<(), DsRefusal>| r.unwrap_err().code();
        assert_eq!(
            code(dir.check(&leaf("phone", 9))),
            "mls_wrong_signature_key"
        );
        assert_eq!(code(dir.check(&leaf("old", 2))), "mls_unknown_device");
        assert_eq!(code(dir.check(&leaf("ghost", 1))), "mls_unknown_device");
        assert!(dir.is_removed(&device("old")));
        assert!(!dir.is_removed(&device("phone")));
        assert!(!dir.is_removed(&device("ghost")));
    }
}
