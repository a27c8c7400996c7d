//! The Delivery Service's view of one conversation's MLS group: its public state (the
//! ratchet tree and group context, no secret), which decides every handshake message the
//! server is offered and checks the framing of every application message. It never
//! decrypts.
//!
//! Membership is the server's: a commit is checked against `allowed`, the devices of the
//! conversation's active members as the change that carries the commit leaves them. After an
//! accepted commit no device outside `allowed` is in the group, no allowed device of another
//! account was removed without being added back, and the commit came from the device that
//! submitted it.
//! Deciding and applying are two steps ([`GroupView::check_commit`], [`GroupView::apply`]),
//! so the host applies only what it stored.

use std::collections::BTreeSet;

use openmls::prelude::tls_codec::DeserializeBytes as _;
use openmls::prelude::*;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::crypto::Crypto;
use super::directory::{Directory, Leaf};
use super::identity::DeviceIdentity;
use super::member::parse_message;
pub use super::refusal::DsRefusal;
use super::store::Store;
use super::{
    snapshot, MAX_APPLICATION_BYTES, MAX_HANDSHAKE_BYTES, MAX_KEY_PACKAGE_BYTES, PAST_EPOCHS,
};

fn invalid(e: impl std::fmt::Debug) -> DsRefusal {
    DsRefusal::Invalid(format!("{e:?}"))
}

/// A key package the directory may hold: its reference (the id a claim hands out once),
/// whether it is the device's last resort, and the signature key of its leaf (the device's
/// MLS signature key, which the directory binds to the device on its first upload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPackageInfo {
    pub reference: Vec<u8>,
    pub last_resort: bool,
    pub signature_key: Vec<u8>,
}

/// Checks a key package offered by `uploader`: well formed, signed by its own key, for the
/// ciphersuite in use, and naming exactly the uploading device.
pub fn check_key_package(
    bytes: &[u8],
    uploader: &DeviceIdentity,
) -> Result<KeyPackageInfo, DsRefusal> {
    let MlsMessageBodyIn::KeyPackage(kp) = parse_message(bytes, MAX_KEY_PACKAGE_BYTES)? else {
        return Err(DsRefusal::Malformed("not a key package".into()));
    };
    let crypto = Crypto::default();
    let kp = kp
        .validate(&crypto, ProtocolVersion::Mls10)
        .map_err(invalid)?;
    if kp.ciphersuite() != super::CIPHERSUITE {
        return Err(DsRefusal::Invalid("unsupported ciphersuite".into()));
    }
    let named = DeviceIdentity::from_credential(kp.leaf_node().credential());
    if named.as_ref() != Some(uploader) {
        return Err(DsRefusal::WrongIdentity {
            got: describe(named.as_ref()),
        });
    }
    Ok(KeyPackageInfo {
        reference: kp.hash_ref(&crypto).map_err(invalid)?.as_slice().to_vec(),
        last_resort: kp.last_resort(),
        signature_key: kp.leaf_node().signature_key().as_slice().to_vec(),
    })
}

/// Checks that `bytes` is an MLS Welcome the Delivery Service may hand to the devices a
/// commit adds (it cannot read more: a Welcome is encrypted to their key packages).
pub fn check_welcome(bytes: &[u8]) -> Result<(), DsRefusal> {
    match parse_message(bytes, MAX_HANDSHAKE_BYTES)? {
        MlsMessageBodyIn::Welcome(_) => Ok(()),
        _ => Err(DsRefusal::Malformed("not a Welcome".into())),
    }
}

fn describe(id: Option<&DeviceIdentity>) -> String {
    id.map_or_else(
        || "an unreadable credential".to_owned(),
        ToString::to_string,
    )
}

/// Which devices the conversation's membership allows in its group: a set (tests), or a
/// rule the acceptor answers from the membership as the change leaves it.
pub trait AllowedDevices {
    fn allows(&self, device: &DeviceIdentity) -> bool;
}

impl AllowedDevices for BTreeSet<DeviceIdentity> {
    fn allows(&self, device: &DeviceIdentity) -> bool {
        self.contains(device)
    }
}

impl<F: Fn(&DeviceIdentity) -> bool> AllowedDevices for F {
    fn allows(&self, device: &DeviceIdentity) -> bool {
        self(device)
    }
}

/// A commit the Delivery Service accepted, to [`GroupView::apply`] once it is stored.
#[derive(Debug)]
pub struct StagedCheck {
    staged: Box<StagedCommit>,
    /// The epoch the commit moves the group to.
    pub epoch: u64,
    pub added: Vec<DeviceIdentity>,
    pub removed: Vec<DeviceIdentity>,
    /// Every leaf the commit brings into the group (added devices, the committer's new leaf,
    /// Update proposals' leaves): each must be a registered device with its bound key
    /// ([`super::Directory::check`]).
    pub leaves: Vec<Leaf>,
    /// Devices of other active members the commit removes: allowed only for devices the
    /// directory marks removed (the acceptor asks it).
    pub removes_listed: Vec<DeviceIdentity>,
    /// The devices in the group before the commit that it leaves in: none may be one the
    /// directory marks removed (a removed device leaves at the group's next commit).
    pub stays: Vec<DeviceIdentity>,
}

impl StagedCheck {
    /// The directory's word on what the membership alone could not decide: every leaf
    /// brought in is registered with its bound key, every device of an active member
    /// removed was removed from the directory, and no device the directory removed stays.
    pub fn check_directory(&self, directory: &Directory) -> Result<(), DsRefusal> {
        for leaf in &self.leaves {
            directory.check(leaf)?;
        }
        if let Some(device) = self
            .removes_listed
            .iter()
            .find(|d| !directory.is_removed(d))
        {
            return Err(DsRefusal::RemovesMember(device.to_string()));
        }
        match self.stays.iter().find(|d| directory.is_removed(d)) {
            Some(device) => Err(DsRefusal::KeepsRemovedDevice(device.to_string())),
            None => Ok(()),
        }
    }
}

/// Application message framing the Delivery Service can read without a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationFrame {
    pub epoch: u64,
    /// The clear data the sender bound to the ciphertext.
    pub aad: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    group_id: ByteBuf,
    storage: ByteBuf,
}

/// The public state of one conversation's group.
#[derive(Debug)]
pub struct GroupView {
    crypto: Crypto,
    storage: Store,
    group: PublicGroup,
}

impl GroupView {
    /// Follows a group its creator just made, from the creator's group info and ratchet tree.
    /// Every device in it must be allowed, and the creator must be one of them.
    pub fn create(
        group_info: &[u8],
        ratchet_tree: &[u8],
        creator: &DeviceIdentity,
        allowed: &impl AllowedDevices,
    ) -> Result<Self, DsRefusal> {
        let view = Self::follow(group_info, ratchet_tree)?;
        let devices = view.devices_checked()?;
        if let Some(outsider) = devices.iter().find(|d| !allowed.allows(d)) {
            return Err(DsRefusal::AddsNonMember(outsider.to_string()));
        }
        if !devices.contains(creator) {
            return Err(DsRefusal::WrongSender {
                got: "a group without its creator".into(),
            });
        }
        Ok(view)
    }

    /// Follows a group from its group info and ratchet tree, checking MLS but not who is in
    /// it: for a group whose creation was accepted before (rebuilt from the document).
    pub fn follow(group_info: &[u8], ratchet_tree: &[u8]) -> Result<Self, DsRefusal> {
        let MlsMessageBodyIn::GroupInfo(info) = parse_message(group_info, MAX_HANDSHAKE_BYTES)?
        else {
            return Err(DsRefusal::Malformed("not a group info".into()));
        };
        if ratchet_tree.len() > MAX_HANDSHAKE_BYTES {
            return Err(DsRefusal::TooLarge(MAX_HANDSHAKE_BYTES));
        }
        let tree = RatchetTreeIn::tls_deserialize_exact_bytes(ratchet_tree)
            .map_err(|e| DsRefusal::Malformed(e.to_string()))?;
        let crypto = Crypto::default();
        let storage = Store::default();
        let (group, _) =
            PublicGroup::from_external(&crypto, &storage, tree, info, ProposalStore::new())
                .map_err(invalid)?;
        if group.group_context().ciphersuite() != super::CIPHERSUITE {
            return Err(DsRefusal::Invalid("unsupported ciphersuite".into()));
        }
        Ok(Self {
            crypto,
            storage,
            group,
        })
    }

    pub fn group_id(&self) -> &[u8] {
        self.group.group_id().as_slice()
    }

    pub fn epoch(&self) -> u64 {
        self.group.group_context().epoch().as_u64()
    }

    /// The devices in the group.
    pub fn devices(&self) -> BTreeSet<DeviceIdentity> {
        self.group
            .members()
            .filter_map(|m| DeviceIdentity::from_credential(&m.credential))
            .collect()
    }

    /// Every leaf of the group, as a new group's tree brings them all in.
    pub fn leaves(&self) -> Vec<Leaf> {
        self.group
            .members()
            .filter_map(|m| {
                DeviceIdentity::from_credential(&m.credential).map(|device| Leaf {
                    device,
                    signature_key: m.signature_key,
                })
            })
            .collect()
    }

    fn devices_checked(&self) -> Result<BTreeSet<DeviceIdentity>, DsRefusal> {
        self.group
            .members()
            .map(|m| {
                DeviceIdentity::from_credential(&m.credential)
                    .ok_or_else(|| DsRefusal::Invalid("a leaf's credential names no device".into()))
            })
            .collect()
    }

    /// Decides a commit `submitter` offers, given the devices the membership allows once the
    /// change it travels with is applied.
    pub fn check_commit(
        &self,
        bytes: &[u8],
        submitter: &DeviceIdentity,
        allowed: &impl AllowedDevices,
    ) -> Result<StagedCheck, DsRefusal> {
        let message = self.commit_message(bytes)?;
        // New devices are added by a member's commit; external joins are not accepted.
        let Sender::Member(index) = *message.sender() else {
            return Err(DsRefusal::Invalid("a commit from outside the group".into()));
        };
        let sender = self
            .group
            .members()
            .find(|m| m.index == index)
            .and_then(|m| DeviceIdentity::from_credential(&m.credential));
        if sender.as_ref() != Some(submitter) {
            return Err(DsRefusal::WrongSender {
                got: describe(sender.as_ref()),
            });
        }
        let staged = self.stage(message)?;
        let mut added = Vec::new();
        let mut leaves = Vec::new();
        for proposal in staged.queued_proposals() {
            match proposal.proposal() {
                Proposal::Add(add) => {
                    let leaf = add.key_package().leaf_node();
                    let device = DeviceIdentity::from_credential(leaf.credential());
                    match device {
                        Some(device) if allowed.allows(&device) => {
                            leaves.push(Leaf {
                                device: device.clone(),
                                signature_key: leaf.signature_key().as_slice().to_vec(),
                            });
                            added.push(device);
                        }
                        other => return Err(DsRefusal::AddsNonMember(describe(other.as_ref()))),
                    }
                }
                Proposal::Update(update) => {
                    let Sender::Member(by) = *proposal.sender() else {
                        return Err(DsRefusal::Invalid(
                            "an update from outside the group".into(),
                        ));
                    };
                    let from = self.device_at(by)?;
                    leaves.push(self.same_device(&from, update.leaf_node())?);
                }
                Proposal::Remove(_) => {}
                _ => return Err(DsRefusal::UnsupportedProposal),
            }
        }
        if let Some(path_leaf) = staged.update_path_leaf_node() {
            leaves.push(self.same_device(submitter, path_leaf)?);
        }
        let mut removed = Vec::new();
        let mut removes_listed = Vec::new();
        for proposal in staged.remove_proposals() {
            let device = self.device_at(proposal.remove_proposal().removed())?;
            // An account takes its own devices out (one it removed from the directory);
            // another active member's devices stay unless the directory removed them.
            let own = device.tenant == submitter.tenant && device.account == submitter.account;
            if allowed.allows(&device) && !added.contains(&device) && !own {
                removes_listed.push(device.clone());
            }
            removed.push(device);
        }
        let mut after = self.devices();
        for device in &removed {
            after.remove(device);
        }
        // Added devices are leaves, checked against the directory as such.
        let stays: Vec<DeviceIdentity> = after.iter().cloned().collect();
        after.extend(added.iter().cloned());
        if let Some(left) = after.iter().find(|d| !allowed.allows(d)) {
            return Err(DsRefusal::MissingRemoval(left.to_string()));
        }
        Ok(StagedCheck {
            staged,
            epoch: self.epoch() + 1,
            added,
            removed,
            leaves,
            removes_listed,
            stays,
        })
    }

    /// The device at leaf `index`.
    fn device_at(&self, index: LeafNodeIndex) -> Result<DeviceIdentity, DsRefusal> {
        self.group
            .members()
            .find(|m| m.index == index)
            .and_then(|m| DeviceIdentity::from_credential(&m.credential))
            .ok_or_else(|| DsRefusal::Invalid("names an empty leaf".into()))
    }

    /// A member's new leaf (update path or Update proposal): it must name the same device.
    fn same_device(&self, device: &DeviceIdentity, leaf: &LeafNode) -> Result<Leaf, DsRefusal> {
        let named = DeviceIdentity::from_credential(leaf.credential());
        if named.as_ref() != Some(device) {
            return Err(DsRefusal::IdentityChanged {
                from: device.to_string(),
                to: describe(named.as_ref()),
            });
        }
        Ok(Leaf {
            device: device.clone(),
            signature_key: leaf.signature_key().as_slice().to_vec(),
        })
    }

    /// Moves a followed group on by a commit that was accepted before (rebuilt from the
    /// document): MLS is checked, membership is not.
    pub fn replay(&mut self, bytes: &[u8]) -> Result<u64, DsRefusal> {
        let message = self.commit_message(bytes)?;
        let staged = self.stage(message)?;
        self.group
            .merge_commit(&self.storage, *staged)
            .map_err(invalid)?;
        Ok(self.epoch())
    }

    /// A commit of this group for its current epoch, framed as the server can read it.
    fn commit_message(&self, bytes: &[u8]) -> Result<PublicMessageIn, DsRefusal> {
        let message = match parse_message(bytes, MAX_HANDSHAKE_BYTES)? {
            MlsMessageBodyIn::PublicMessage(m) => m,
            MlsMessageBodyIn::PrivateMessage(_) => {
                return Err(DsRefusal::Malformed(
                    "a commit must be readable by the server".into(),
                ))
            }
            _ => return Err(DsRefusal::Malformed("not a commit".into())),
        };
        if message.group_id() != self.group.group_id() {
            return Err(DsRefusal::WrongGroup);
        }
        if message.content_type() != ContentType::Commit {
            return Err(DsRefusal::Malformed("not a commit".into()));
        }
        let (got, current) = (message.epoch().as_u64(), self.epoch());
        if got < current {
            return Err(DsRefusal::StaleEpoch { got, current });
        }
        if got > current {
            return Err(DsRefusal::UnknownEpoch { got, current });
        }
        Ok(message)
    }

    fn stage(&self, message: PublicMessageIn) -> Result<Box<StagedCommit>, DsRefusal> {
        let processed = self
            .group
            .process_message(&self.crypto, message)
            .map_err(invalid)?;
        match processed.into_content() {
            ProcessedMessageContent::StagedCommitMessage(staged) => Ok(staged),
            _ => Err(DsRefusal::Malformed("not a commit".into())),
        }
    }

    /// Moves the group on by a commit [`GroupView::check_commit`] accepted and the host stored.
    pub fn apply(&mut self, check: StagedCheck) -> Result<u64, DsRefusal> {
        self.group
            .merge_commit(&self.storage, *check.staged)
            .map_err(invalid)?;
        Ok(self.epoch())
    }

    /// Checks an application message's framing: encrypted, for this group, and of an epoch
    /// the members still hold secrets for.
    pub fn check_application(&self, bytes: &[u8]) -> Result<ApplicationFrame, DsRefusal> {
        let message = match parse_message(bytes, MAX_APPLICATION_BYTES)? {
            MlsMessageBodyIn::PrivateMessage(m) => m,
            MlsMessageBodyIn::PublicMessage(_) => return Err(DsRefusal::NotEncrypted),
            _ => return Err(DsRefusal::Malformed("not an application message".into())),
        };
        if message.group_id() != self.group.group_id() {
            return Err(DsRefusal::WrongGroup);
        }
        if message.content_type() != ContentType::Application {
            return Err(DsRefusal::Malformed(
                "handshake messages go as commits".into(),
            ));
        }
        let (got, current) = (message.epoch().as_u64(), self.epoch());
        if got > current {
            return Err(DsRefusal::UnknownEpoch { got, current });
        }
        if current - got > PAST_EPOCHS {
            return Err(DsRefusal::StaleEpoch { got, current });
        }
        Ok(ApplicationFrame {
            epoch: got,
            aad: message.aad().to_vec(),
        })
    }

    /// The public state, to store beside the conversation.
    pub fn to_bytes(&self) -> Vec<u8> {
        let saved = Saved {
            group_id: ByteBuf::from(self.group_id().to_vec()),
            storage: ByteBuf::from(snapshot::encode(&self.storage)),
        };
        let mut out = Vec::new();
        // Writing CBOR into a Vec cannot fail.
        let _ = ciborium::into_writer(&saved, &mut out);
        out
    }

    /// The state [`GroupView::to_bytes`] stored; `None` if it is unreadable.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let saved: Saved = ciborium::from_reader(bytes).ok()?;
        let storage = snapshot::decode(&saved.storage)?;
        let group = PublicGroup::load(&storage, &GroupId::from_slice(&saved.group_id)).ok()??;
        Some(Self {
            crypto: Crypto::default(),
            storage,
            group,
        })
    }
}
