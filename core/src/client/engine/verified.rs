//! Contacts the person marked verified (docs/E2EE.md, "Safety numbers"): after comparing a
//! safety number out loud, the person marks the other account verified; this device keeps
//! that account's fingerprint then (its half of a safety number, over its devices' keys as
//! this device's own MLS state holds them in all its groups) and says `changed` as soon as
//! a commit it followed adds, removes or re-keys a device of that account, until the person
//! compares and marks it again. Kept on this device only, saved with its MLS state.

use crate::client::engine::ClientEngine;
use crate::client::mls_saved::verified_key;
use crate::client::records::cbor;
use crate::client::store::StoreOp;
use crate::e2ee::{self, DeviceIdentity};
use crate::ids::AccountId;

/// What this device can say of another account's devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Never marked verified on this device.
    Unverified,
    /// Marked verified, and its devices are the ones they were then.
    Verified,
    /// Marked verified, and a device of the account was added, removed or re-keyed since:
    /// compare the safety number again.
    Changed,
}

impl ClientEngine {
    /// The fingerprint of `account`'s devices as this device's groups hold them; `None` if
    /// no group of this device holds one.
    fn fingerprint(&self, account: &AccountId) -> Option<String> {
        let known = self.mls.as_ref()?.device.known_keys();
        let devices: Vec<(&DeviceIdentity, &[u8])> = known
            .iter()
            .filter(|(d, _)| &d.account == account)
            .map(|(d, k)| (d, k.as_slice()))
            .collect();
        (!devices.is_empty()).then(|| e2ee::account_half(&devices))
    }

    /// Marks `peer` verified as its devices are now (after the person compared the safety
    /// number of a conversation they share). `false`, and nothing marked, for this account
    /// itself or an account no group of this device holds a device of.
    pub fn mark_verified(&mut self, peer: &AccountId) -> bool {
        if peer == &self.config.account {
            return false;
        }
        let Some(now) = self.fingerprint(peer) else {
            return false;
        };
        let Some(mls) = self.mls.as_mut() else {
            return false;
        };
        mls.verified.insert(peer.clone(), now);
        self.save_verified();
        true
    }

    /// Takes `peer`'s mark away (it reads `unverified`).
    pub fn unmark_verified(&mut self, peer: &AccountId) {
        let removed = self
            .mls
            .as_mut()
            .is_some_and(|mls| mls.verified.remove(peer).is_some());
        if removed {
            self.save_verified();
        }
    }

    /// Whether `peer` is verified on this device, and still has the devices it had then.
    pub fn verification(&self, peer: &AccountId) -> Verification {
        let Some(marked) = self.mls.as_ref().and_then(|m| m.verified.get(peer)) else {
            return Verification::Unverified;
        };
        match self.fingerprint(peer) {
            Some(now) if &now == marked => Verification::Verified,
            _ => Verification::Changed,
        }
    }

    fn save_verified(&mut self) {
        let Some(mls) = self.mls.as_ref() else {
            return;
        };
        let op = StoreOp::Put(verified_key(), cbor(&mls.verified));
        self.out
            .push(crate::client::engine::Output::Persist(vec![op]));
    }
}
