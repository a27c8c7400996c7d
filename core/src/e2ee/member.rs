//! One device's side of MLS: its signature key, the key packages others add it with, the
//! groups it is a leaf of, the commits it makes, and the encryption and decryption of
//! application messages. All of it lives in one storage provider whose entries the host keeps:
//! a small header ([`Device::header`]) and the storage's entries, saved as they change
//! ([`Device::take_changes`]) and loaded back with [`Device::from_parts`]. The whole state in
//! one value ([`Device::to_bytes`], [`Device::from_bytes`]) is the form earlier builds saved.
//!
//! A commit is made pending and stays so until the Delivery Service's answer: accepted, the
//! host calls [`Device::confirm_commit`]; refused or beaten by another commit of the same
//! epoch, [`Device::discard_commit`], and the intent behind it is built again on the new epoch.

use std::collections::BTreeMap;

use openmls::prelude::tls_codec::{DeserializeBytes as _, Serialize as _};
use openmls::prelude::*;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::crypto::{Crypto, SignatureKeys};
use super::identity::DeviceIdentity;
use super::store::Store;
use super::{group_config, snapshot, CIPHERSUITE, MAX_APPLICATION_BYTES, MAX_HANDSHAKE_BYTES};

/// Why a device could not do what it was asked. Each variant is a reason about the input or
/// the device's state, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum E2eeError {
    #[error("not an MLS message of the expected kind: {0}")]
    Malformed(String),
    #[error("the MLS message is larger than {0} bytes")]
    TooLarge(usize),
    #[error("this device is not in the group")]
    UnknownGroup,
    #[error("the device named is not in the group")]
    UnknownMember,
    #[error("a commit of this device awaits the server's answer")]
    CommitPending,
    #[error("the message's epoch is older than this device keeps secrets for")]
    EpochTooOld,
    #[error("the message was written before this device joined")]
    BeforeJoin,
    #[error("the message was already decrypted on this device (each decrypts once)")]
    AlreadyDecrypted,
    #[error("the sender's credential does not name a device")]
    BadCredential,
    #[error("MLS refused: {0}")]
    Mls(String),
    #[error("the saved device state is unreadable")]
    BadState,
    /// A commit brings in a leaf whose key or identity is not the one this device knows for
    /// that device: the device does not follow it (only a lying server delivers one, since
    /// the Delivery Service checks every leaf against the directory).
    #[error("{0}")]
    KeyChanged(String),
}

/// A member's new leaf names the device of the leaf it replaces, with the same key.
fn same_leaf(before: Option<&Member>, leaf: &LeafNode) -> Result<(), E2eeError> {
    let before = before.ok_or(E2eeError::UnknownMember)?;
    let device = DeviceIdentity::from_credential(&before.credential);
    let named = DeviceIdentity::from_credential(leaf.credential());
    if device.is_none() || named != device {
        return Err(E2eeError::KeyChanged(format!(
            "a new leaf of {} names another device",
            device.map_or_else(|| "a device".to_owned(), |d| d.to_string())
        )));
    }
    if before.signature_key.as_slice() != leaf.signature_key().as_slice() {
        return Err(E2eeError::KeyChanged(format!(
            "a new leaf of {} carries another signature key",
            device.map_or_else(|| "a device".to_owned(), |d| d.to_string())
        )));
    }
    Ok(())
}

fn mls(e: impl std::fmt::Debug) -> E2eeError {
    E2eeError::Mls(format!("{e:?}"))
}

/// openmls's provider over a storage this module can save and restore.
#[derive(Debug, Default)]
struct Provider {
    crypto: Crypto,
    storage: Store,
}

impl OpenMlsProvider for Provider {
    type CryptoProvider = Crypto;
    type RandProvider = Crypto;
    type StorageProvider = Store;

    fn storage(&self) -> &Store {
        &self.storage
    }
    fn crypto(&self) -> &Crypto {
        &self.crypto
    }
    fn rand(&self) -> &Crypto {
        &self.crypto
    }
}

/// What the Delivery Service needs to start following a new group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInit {
    pub group_info: Vec<u8>,
    pub ratchet_tree: Vec<u8>,
}

/// A pending commit: the commit for every member and the Welcome for the devices it adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitBundle {
    /// The epoch the commit moves the group from.
    pub epoch: u64,
    pub commit: Vec<u8>,
    pub welcome: Option<Vec<u8>>,
}

impl CommitBundle {
    /// The messages of a commit openmls built from `epoch`, serialized.
    fn of(epoch: u64, bundle: CommitMessageBundle) -> Result<Self, E2eeError> {
        let (commit, welcome, _) = bundle.into_messages();
        Ok(CommitBundle {
            epoch,
            commit: commit.tls_serialize_detached().map_err(mls)?,
            welcome: welcome
                .map(|w| w.tls_serialize_detached())
                .transpose()
                .map_err(mls)?,
        })
    }
}

/// What a processed handshake message did to the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeOutcome {
    pub group_id: Vec<u8>,
    /// The epoch the group is in now.
    pub epoch: u64,
    pub added: Vec<DeviceIdentity>,
    pub removed: Vec<DeviceIdentity>,
    /// This device was removed: the group is gone from it.
    pub self_removed: bool,
}

/// A decrypted application message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decrypted {
    pub group_id: Vec<u8>,
    pub epoch: u64,
    pub sender: DeviceIdentity,
    /// The clear data the sender bound to the ciphertext (e.g. the message's id).
    pub aad: Vec<u8>,
    pub plaintext: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    identity: String,
    signature_key: ByteBuf,
    groups: Vec<ByteBuf>,
    storage: ByteBuf,
}

/// What [`Device::header`] holds: everything but the storage's entries.
#[derive(Serialize, Deserialize)]
struct Header {
    identity: String,
    signature_key: ByteBuf,
    groups: Vec<ByteBuf>,
    /// Per group, the epoch this device joined it at (none kept by earlier builds).
    #[serde(default)]
    joined: BTreeMap<ByteBuf, u64>,
}

/// A storage entry as the host keeps it: its key and its value (`None`: deleted).
pub type StateChange = (Vec<u8>, Option<Vec<u8>>);

/// One device: a leaf in every encrypted conversation of its account.
#[derive(Debug)]
pub struct Device {
    identity: DeviceIdentity,
    provider: Provider,
    signer: SignatureKeys,
    groups: BTreeMap<Vec<u8>, MlsGroup>,
    /// Per group, the epoch this device joined it at: a message of an earlier epoch was
    /// sent before it joined.
    joined: BTreeMap<Vec<u8>, u64>,
}

impl Device {
    /// A new device with a fresh signature key.
    pub fn new(identity: DeviceIdentity) -> Result<Self, E2eeError> {
        let provider = Provider::default();
        let signer = SignatureKeys::generate(provider.crypto()).map_err(mls)?;
        signer.store(provider.storage()).map_err(mls)?;
        Ok(Self {
            identity,
            provider,
            signer,
            groups: BTreeMap::new(),
            joined: BTreeMap::new(),
        })
    }

    pub fn identity(&self) -> &DeviceIdentity {
        &self.identity
    }

    /// The public half of the device's signature key, which every credential it makes carries.
    pub fn signature_key(&self) -> &[u8] {
        self.signer.public()
    }

    fn credential(&self) -> CredentialWithKey {
        CredentialWithKey {
            credential: self.identity.credential(),
            signature_key: self.signer.public().into(),
        }
    }

    /// A key package for the directory, as an MLS message. Its private keys stay here until a
    /// Welcome uses them. A last-resort package may be used more than once.
    pub fn key_package(&self, last_resort: bool) -> Result<Vec<u8>, E2eeError> {
        // Every package says it understands last-resort packages, so either kind can be added.
        let mut builder = KeyPackage::builder().leaf_node_capabilities(
            Capabilities::builder()
                .extensions(vec![ExtensionType::LastResort])
                .build(),
        );
        if last_resort {
            builder = builder.mark_as_last_resort();
        }
        let bundle = builder
            .build(CIPHERSUITE, &self.provider, &self.signer, self.credential())
            .map_err(mls)?;
        MlsMessageOut::from(bundle.key_package().clone())
            .tls_serialize_detached()
            .map_err(mls)
    }

    /// Starts a group with this device alone in it.
    pub fn create_group(&mut self, group_id: &[u8]) -> Result<GroupInit, E2eeError> {
        let group = MlsGroup::new_with_group_id(
            &self.provider,
            &self.signer,
            &group_config(),
            GroupId::from_slice(group_id),
            self.credential(),
        )
        .map_err(mls)?;
        self.groups.insert(group_id.to_vec(), group);
        self.joined.insert(group_id.to_vec(), 0);
        self.group_init(group_id)
    }

    /// The group info and ratchet tree of a group this device is in, as of its epoch: what
    /// [`Device::create_group`] answered, again (a rewritten creation carries the same group).
    pub fn group_init(&self, group_id: &[u8]) -> Result<GroupInit, E2eeError> {
        let group = self.groups.get(group_id).ok_or(E2eeError::UnknownGroup)?;
        Ok(GroupInit {
            group_info: group
                .export_group_info(self.provider.crypto(), &self.signer, true)
                .map_err(mls)?
                .tls_serialize_detached()
                .map_err(mls)?,
            ratchet_tree: group
                .export_ratchet_tree()
                .tls_serialize_detached()
                .map_err(mls)?,
        })
    }

    pub fn groups(&self) -> impl Iterator<Item = &[u8]> {
        self.groups.keys().map(Vec::as_slice)
    }

    pub fn epoch(&self, group_id: &[u8]) -> Option<u64> {
        self.groups.get(group_id).map(|g| g.epoch().as_u64())
    }

    /// How many past epochs of group `group_id` this device keeps the secrets of.
    pub fn past_epochs_kept(&self, group_id: &[u8]) -> Option<usize> {
        self.groups
            .get(group_id)
            .map(|g| match g.past_epoch_deletion_policy() {
                PastEpochDeletionPolicy::MaxEpochs(n) => *n,
                PastEpochDeletionPolicy::KeepAll => usize::MAX,
            })
    }

    /// Keeps the secrets of up to `epochs` past epochs of group `group_id` from now on: more
    /// keeps the ones the group will pass, fewer drops the oldest at once.
    pub fn keep_past_epochs(&mut self, group_id: &[u8], epochs: usize) -> Result<(), E2eeError> {
        let group = self
            .groups
            .get_mut(group_id)
            .ok_or(E2eeError::UnknownGroup)?;
        if matches!(group.past_epoch_deletion_policy(), PastEpochDeletionPolicy::MaxEpochs(n) if *n == epochs)
        {
            return Ok(());
        }
        group
            .set_past_epoch_deletion_policy(
                &self.provider,
                PastEpochDeletionPolicy::MaxEpochs(epochs),
            )
            .map_err(mls)
    }

    /// The devices of a group as this device knows it, in leaf order.
    pub fn members(&self, group_id: &[u8]) -> Result<Vec<DeviceIdentity>, E2eeError> {
        let group = self.groups.get(group_id).ok_or(E2eeError::UnknownGroup)?;
        group
            .members()
            .map(|m| DeviceIdentity::from_credential(&m.credential).ok_or(E2eeError::BadCredential))
            .collect()
    }

    /// The devices of a group with their signature keys, as this device's tree holds them.
    pub fn leaves(&self, group_id: &[u8]) -> Result<Vec<super::Leaf>, E2eeError> {
        let group = self.groups.get(group_id).ok_or(E2eeError::UnknownGroup)?;
        group
            .members()
            .map(|m| {
                let device = DeviceIdentity::from_credential(&m.credential)
                    .ok_or(E2eeError::BadCredential)?;
                Ok(super::Leaf {
                    device,
                    signature_key: m.signature_key,
                })
            })
            .collect()
    }

    /// The blank parent nodes on this device's direct path in group `group_id`: what its
    /// own update path would fill.
    pub fn path_blanks(&self, group_id: &[u8]) -> Result<u32, E2eeError> {
        let group = self.groups.get(group_id).ok_or(E2eeError::UnknownGroup)?;
        Ok(super::tree::blanks_above(
            group.treesync(),
            group.own_leaf_index().u32(),
        ))
    }

    /// What an update path costs each device of group `group_id`, in leaf order.
    pub fn path_costs(
        &self,
        group_id: &[u8],
    ) -> Result<Vec<(DeviceIdentity, super::tree::PathCost)>, E2eeError> {
        let group = self.groups.get(group_id).ok_or(E2eeError::UnknownGroup)?;
        let costs = super::tree::costs(group.treesync());
        group
            .members()
            .zip(costs)
            .map(|(m, cost)| {
                let device = DeviceIdentity::from_credential(&m.credential)
                    .ok_or(E2eeError::BadCredential)?;
                debug_assert_eq!(m.index.u32(), cost.leaf);
                Ok((device, cost))
            })
            .collect()
    }

    /// The signature key of every device in this device's groups, as their trees hold them:
    /// what it knows of other devices' keys, to check a key the server hands it against.
    pub fn known_keys(&self) -> std::collections::HashMap<DeviceIdentity, Vec<u8>> {
        self.groups
            .values()
            .flat_map(|g| g.members())
            .filter_map(|m| {
                DeviceIdentity::from_credential(&m.credential).map(|d| (d, m.signature_key))
            })
            .collect()
    }

    /// A commit adding the devices of `key_packages` and removing `remove`, pending until
    /// [`Device::confirm_commit`] or [`Device::discard_commit`].
    pub fn commit(
        &mut self,
        group_id: &[u8],
        key_packages: &[Vec<u8>],
        remove: &[DeviceIdentity],
    ) -> Result<CommitBundle, E2eeError> {
        self.commit_with(group_id, key_packages, remove, false)
    }

    /// [`Device::commit`], carrying this device's update path even when its proposals need
    /// none (adds only): the path's blank nodes are filled (docs/E2EE.md, "Trees that stay
    /// cheap").
    pub fn commit_with_path(
        &mut self,
        group_id: &[u8],
        key_packages: &[Vec<u8>],
        remove: &[DeviceIdentity],
    ) -> Result<CommitBundle, E2eeError> {
        self.commit_with(group_id, key_packages, remove, true)
    }

    fn commit_with(
        &mut self,
        group_id: &[u8],
        key_packages: &[Vec<u8>],
        remove: &[DeviceIdentity],
        update_path: bool,
    ) -> Result<CommitBundle, E2eeError> {
        let adds = key_packages
            .iter()
            .map(|bytes| parse_key_package(&self.provider, bytes))
            .collect::<Result<Vec<_>, _>>()?;
        let group = self
            .groups
            .get_mut(group_id)
            .ok_or(E2eeError::UnknownGroup)?;
        if group.pending_commit().is_some() {
            return Err(E2eeError::CommitPending);
        }
        let removals = remove
            .iter()
            .map(|who| {
                group
                    .members()
                    .find(|m| DeviceIdentity::from_credential(&m.credential).as_ref() == Some(who))
                    .map(|m| m.index)
                    .ok_or(E2eeError::UnknownMember)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let epoch = group.epoch().as_u64();
        let bundle = group
            .commit_builder()
            .force_self_update(update_path)
            .propose_adds(adds)
            .propose_removals(removals)
            .load_psks(self.provider.storage())
            .map_err(mls)?
            // A Welcome still carries its group info and the tree; no one reads a group info
            // of every commit, and building one serializes and signs the whole tree.
            .create_group_info(false)
            .build(
                self.provider.rand(),
                self.provider.crypto(),
                &self.signer,
                |_| true,
            )
            .map_err(mls)?
            .stage_commit(&self.provider)
            .map_err(mls)?;
        CommitBundle::of(epoch, bundle)
    }

    /// A commit whose update path gives this device's leaf a fresh signature key and, with
    /// `names`, a credential naming another device: what a Delivery Service must refuse
    /// (docs/E2EE.md, "Every leaf is a registered device"). Pending like
    /// [`Device::commit`]. For the attack suite only.
    #[cfg(any(test, feature = "crafting"))]
    pub fn commit_with_new_leaf_key(
        &mut self,
        group_id: &[u8],
        names: Option<&DeviceIdentity>,
    ) -> Result<CommitBundle, E2eeError> {
        let signer = SignatureKeys::generate(self.provider.crypto()).map_err(mls)?;
        let credential = names.unwrap_or(&self.identity).credential();
        let group = self
            .groups
            .get_mut(group_id)
            .ok_or(E2eeError::UnknownGroup)?;
        let epoch = group.epoch().as_u64();
        let bundle = group
            .self_update_with_new_signer(
                &self.provider,
                &self.signer,
                NewSignerBundle {
                    signer: &signer,
                    credential_with_key: CredentialWithKey {
                        credential,
                        signature_key: signer.public().into(),
                    },
                },
                LeafNodeParameters::default(),
            )
            .map_err(mls)?;
        CommitBundle::of(epoch, bundle)
    }

    /// The Delivery Service accepted this device's pending commit: the group moves on.
    pub fn confirm_commit(&mut self, group_id: &[u8]) -> Result<u64, E2eeError> {
        let group = self
            .groups
            .get_mut(group_id)
            .ok_or(E2eeError::UnknownGroup)?;
        group.merge_pending_commit(&self.provider).map_err(mls)?;
        Ok(group.epoch().as_u64())
    }

    /// The pending commit will never be accepted: forget it.
    pub fn discard_commit(&mut self, group_id: &[u8]) -> Result<(), E2eeError> {
        let group = self
            .groups
            .get_mut(group_id)
            .ok_or(E2eeError::UnknownGroup)?;
        group
            .clear_pending_commit(self.provider.storage())
            .map_err(mls)
    }

    /// Drops a group from this device and its storage (one it made that the Delivery
    /// Service did not take); a Welcome may add the device to a group of that id after.
    pub fn forget_group(&mut self, group_id: &[u8]) -> Result<(), E2eeError> {
        self.joined.remove(group_id);
        if let Some(mut gone) = self.groups.remove(group_id) {
            gone.delete(self.provider.storage()).map_err(mls)?;
        }
        Ok(())
    }

    /// Joins the group a Welcome adds this device to; returns its group id.
    pub fn join(&mut self, welcome: &[u8]) -> Result<Vec<u8>, E2eeError> {
        let body = parse_message(welcome, MAX_HANDSHAKE_BYTES)?;
        let MlsMessageBodyIn::Welcome(welcome) = body else {
            return Err(E2eeError::Malformed("not a Welcome".into()));
        };
        let group = StagedWelcome::new_from_welcome(
            &self.provider,
            group_config().join_config(),
            welcome,
            None,
        )
        .map_err(mls)?
        .into_group(&self.provider)
        .map_err(mls)?;
        let id = group.group_id().as_slice().to_vec();
        self.joined.insert(id.clone(), group.epoch().as_u64());
        self.groups.insert(id.clone(), group);
        Ok(id)
    }

    /// Processes a commit of another device, in the Delivery Service's order. A pending
    /// commit of this device for the same epoch lost the race and is discarded.
    pub fn process_commit(&mut self, bytes: &[u8]) -> Result<HandshakeOutcome, E2eeError> {
        let message = protocol_message(bytes, MAX_HANDSHAKE_BYTES)?;
        let group_id = message.group_id().as_slice().to_vec();
        let group = self
            .groups
            .get_mut(&group_id)
            .ok_or(E2eeError::UnknownGroup)?;
        if message.epoch() < group.epoch() {
            return Err(E2eeError::EpochTooOld);
        }
        if group.pending_commit().is_some() {
            group
                .clear_pending_commit(self.provider.storage())
                .map_err(mls)?;
        }
        let processed = group
            .process_message(&self.provider, message)
            .map_err(mls)?;
        let sender = processed.sender().clone();
        let ProcessedMessageContent::StagedCommitMessage(staged) = processed.into_content() else {
            return Err(E2eeError::Malformed("not a commit".into()));
        };
        let in_group: Vec<Member> = group.members().collect();
        let removed = staged
            .remove_proposals()
            .map(|p| {
                group
                    .member(p.remove_proposal().removed())
                    .and_then(DeviceIdentity::from_credential)
                    .ok_or(E2eeError::BadCredential)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let added = self.check_leaves(&group_id, &in_group, &sender, &staged)?;
        let self_removed = staged.self_removed();
        let group = self
            .groups
            .get_mut(&group_id)
            .ok_or(E2eeError::UnknownGroup)?;
        group
            .merge_staged_commit(&self.provider, *staged)
            .map_err(mls)?;
        let epoch = group.epoch().as_u64();
        if self_removed {
            // Its state goes from the storage too: a Welcome may add this device again.
            self.joined.remove(&group_id);
            if let Some(mut gone) = self.groups.remove(&group_id) {
                gone.delete(self.provider.storage()).map_err(mls)?;
            }
        }
        Ok(HandshakeOutcome {
            group_id,
            epoch,
            added,
            removed,
            self_removed,
        })
    }

    /// Nothing a delivered commit brings in changes a key this device knows: a member's new
    /// leaf (update path, Update proposal) keeps its identity and signature key, and an added
    /// device already seen in one of this device's groups keeps its key. The devices added.
    fn check_leaves(
        &self,
        group_id: &[u8],
        in_group: &[Member],
        sender: &Sender,
        staged: &StagedCommit,
    ) -> Result<Vec<DeviceIdentity>, E2eeError> {
        let at = |index: LeafNodeIndex| in_group.iter().find(|m| m.index == index);
        if let Some(leaf) = staged.update_path_leaf_node() {
            let Sender::Member(index) = *sender else {
                return Err(E2eeError::Malformed("a path from outside the group".into()));
            };
            same_leaf(at(index), leaf)?;
        }
        for update in staged.update_proposals() {
            let Sender::Member(index) = *update.sender() else {
                return Err(E2eeError::Malformed(
                    "an update from outside the group".into(),
                ));
            };
            same_leaf(at(index), update.update_proposal().leaf_node())?;
        }
        let mut added = Vec::new();
        let mut known = None;
        for add in staged.add_proposals() {
            let leaf = add.add_proposal().key_package().leaf_node();
            let device = DeviceIdentity::from_credential(leaf.credential())
                .ok_or(E2eeError::BadCredential)?;
            let known = known.get_or_insert_with(|| self.known_keys());
            if known
                .get(&device)
                .is_some_and(|key| key.as_slice() != leaf.signature_key().as_slice())
            {
                return Err(E2eeError::KeyChanged(format!(
                    "a commit of group {} adds {device} with another signature key than \
                     this device knows for it",
                    String::from_utf8_lossy(group_id)
                )));
            }
            added.push(device);
        }
        Ok(added)
    }

    /// Encrypts `plaintext` for the group's current epoch, binding `aad` (sent in the clear).
    pub fn encrypt(
        &mut self,
        group_id: &[u8],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, E2eeError> {
        let group = self
            .groups
            .get_mut(group_id)
            .ok_or(E2eeError::UnknownGroup)?;
        group.set_aad(aad.to_vec());
        let message = group
            .create_message(&self.provider, &self.signer, plaintext)
            .map_err(mls)?;
        let bytes = message.tls_serialize_detached().map_err(mls)?;
        if bytes.len() > MAX_APPLICATION_BYTES {
            return Err(E2eeError::TooLarge(MAX_APPLICATION_BYTES));
        }
        Ok(bytes)
    }

    /// Decrypts an application message. Each ciphertext decrypts once per device (its key is
    /// deleted after use, for forward secrecy): the host keeps what it read.
    pub fn decrypt(&mut self, bytes: &[u8]) -> Result<Decrypted, E2eeError> {
        let message = protocol_message(bytes, MAX_APPLICATION_BYTES)?;
        if !matches!(message, ProtocolMessage::PrivateMessage(_))
            || message.content_type() != ContentType::Application
        {
            return Err(E2eeError::Malformed(
                "not an encrypted application message".into(),
            ));
        }
        let group_id = message.group_id().as_slice().to_vec();
        let group = self
            .groups
            .get_mut(&group_id)
            .ok_or(E2eeError::UnknownGroup)?;
        let epoch = message.epoch().as_u64();
        let processed = group
            .process_message(&self.provider, message)
            .map_err(|e| decrypt_error(e, epoch, group.epoch().as_u64()))
            .map_err(|e| match (e, self.joined.get(&group_id)) {
                (E2eeError::EpochTooOld, Some(joined)) if epoch < *joined => E2eeError::BeforeJoin,
                (e, _) => e,
            })?;
        let sender = DeviceIdentity::from_credential(processed.credential())
            .ok_or(E2eeError::BadCredential)?;
        let aad = processed.aad().to_vec();
        let ProcessedMessageContent::ApplicationMessage(app) = processed.into_content() else {
            return Err(E2eeError::Malformed("not an application message".into()));
        };
        Ok(Decrypted {
            group_id,
            epoch,
            sender,
            aad,
            plaintext: app.into_bytes(),
        })
    }

    /// What the device's storage holds (tests of the storage's form).
    #[cfg(test)]
    pub(crate) fn storage(&self) -> &Store {
        &self.provider.storage
    }

    /// The device's whole state: keys, groups and their secrets, in one value (the form
    /// earlier builds saved; tests and benchmarks build such states with it).
    pub fn to_bytes(&self) -> Vec<u8> {
        let saved = Saved {
            identity: self.identity.to_string(),
            signature_key: ByteBuf::from(self.signer.public().to_vec()),
            groups: self.group_ids(),
            storage: ByteBuf::from(snapshot::encode(&self.provider.storage)),
        };
        let mut out = Vec::new();
        // Writing CBOR into a Vec cannot fail.
        let _ = ciborium::into_writer(&saved, &mut out);
        out
    }

    /// A device as [`Device::to_bytes`] saved it. Its storage has no changes to take: a host
    /// moving it to entries saves [`Device::entries`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, E2eeError> {
        let saved: Saved = ciborium::from_reader(bytes).map_err(|_| E2eeError::BadState)?;
        let storage = snapshot::decode(&saved.storage).ok_or(E2eeError::BadState)?;
        Self::load(&saved.identity, &saved.signature_key, saved.groups, storage)
    }

    /// Everything of the state but the storage's entries: identity, signature key, groups.
    /// A few hundred bytes; it changes only when a group is made, joined or left.
    pub fn header(&self) -> Vec<u8> {
        let header = Header {
            identity: self.identity.to_string(),
            signature_key: ByteBuf::from(self.signer.public().to_vec()),
            groups: self.group_ids(),
            joined: self
                .joined
                .iter()
                .map(|(g, e)| (ByteBuf::from(g.clone()), *e))
                .collect(),
        };
        let mut out = Vec::new();
        // Writing CBOR into a Vec cannot fail.
        let _ = ciborium::into_writer(&header, &mut out);
        out
    }

    /// The storage's entries written or deleted since the last call (or since the device was
    /// made or loaded), each with its value now (`None`: deleted): what the host writes to
    /// keep its copy equal to the device's.
    pub fn take_changes(&self) -> Vec<StateChange> {
        self.provider.storage.take_changes()
    }

    /// Every storage entry; the changes not yet taken are then saved with them.
    pub fn entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.provider.storage.clear_changes();
        self.provider
            .storage
            .with_entries(|map| map.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    /// A device from its [`Device::header`] and every storage entry it had.
    pub fn from_parts(
        header: &[u8],
        entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
    ) -> Result<Self, E2eeError> {
        let header: Header = ciborium::from_reader(header).map_err(|_| E2eeError::BadState)?;
        let storage = Store::from_entries(entries.into_iter().collect());
        let mut device = Self::load(
            &header.identity,
            &header.signature_key,
            header.groups,
            storage,
        )?;
        device.joined = header
            .joined
            .into_iter()
            .map(|(g, e)| (g.into_vec(), e))
            .filter(|(g, _)| device.groups.contains_key(g))
            .collect();
        Ok(device)
    }

    fn group_ids(&self) -> Vec<ByteBuf> {
        self.groups.keys().cloned().map(ByteBuf::from).collect()
    }

    fn load(
        identity: &str,
        signature_key: &[u8],
        group_ids: Vec<ByteBuf>,
        storage: Store,
    ) -> Result<Self, E2eeError> {
        let identity =
            DeviceIdentity::from_bytes(identity.as_bytes()).ok_or(E2eeError::BadState)?;
        let provider = Provider {
            crypto: Crypto::default(),
            storage,
        };
        let signer =
            SignatureKeys::read(provider.storage(), signature_key).ok_or(E2eeError::BadState)?;
        let mut groups = BTreeMap::new();
        for id in group_ids {
            let group = MlsGroup::load(provider.storage(), &GroupId::from_slice(&id))
                .map_err(|_| E2eeError::BadState)?
                .ok_or(E2eeError::BadState)?;
            groups.insert(id.into_vec(), group);
        }
        Ok(Self {
            identity,
            provider,
            signer,
            groups,
            joined: BTreeMap::new(),
        })
    }
}

fn decrypt_error(e: ProcessMessageError<impl std::fmt::Debug>, epoch: u64, now: u64) -> E2eeError {
    // openmls nests these reasons deep in its error tree; tests pin the mapping.
    let text = format!("{e:?}");
    if text.contains("SecretReuseError") {
        E2eeError::AlreadyDecrypted
    } else if epoch < now
        && (text.contains("NoPastEpochData") || text.contains("TooDistantInThePast"))
    {
        E2eeError::EpochTooOld
    } else {
        E2eeError::Mls(text)
    }
}

/// The group and epoch an application message was sealed in, read from its clear header
/// without decrypting it.
pub fn sealed_epoch(bytes: &[u8]) -> Result<(Vec<u8>, u64), E2eeError> {
    let message = protocol_message(bytes, MAX_APPLICATION_BYTES)?;
    Ok((
        message.group_id().as_slice().to_vec(),
        message.epoch().as_u64(),
    ))
}

pub(crate) fn parse_message(bytes: &[u8], max: usize) -> Result<MlsMessageBodyIn, E2eeError> {
    if bytes.len() > max {
        return Err(E2eeError::TooLarge(max));
    }
    let message = MlsMessageIn::tls_deserialize_exact_bytes(bytes)
        .map_err(|e| E2eeError::Malformed(e.to_string()))?;
    Ok(message.extract())
}

fn protocol_message(bytes: &[u8], max: usize) -> Result<ProtocolMessage, E2eeError> {
    match parse_message(bytes, max)? {
        MlsMessageBodyIn::PublicMessage(m) => Ok(m.into()),
        MlsMessageBodyIn::PrivateMessage(m) => Ok(m.into()),
        _ => Err(E2eeError::Malformed("not a group message".into())),
    }
}

fn parse_key_package(provider: &Provider, bytes: &[u8]) -> Result<KeyPackage, E2eeError> {
    let MlsMessageBodyIn::KeyPackage(kp) = parse_message(bytes, MAX_HANDSHAKE_BYTES)? else {
        return Err(E2eeError::Malformed("not a key package".into()));
    };
    kp.validate(provider.crypto(), ProtocolVersion::Mls10)
        .map_err(|e| E2eeError::Malformed(format!("key package: {e:?}")))
}
