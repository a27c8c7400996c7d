//! MLS bytes from the network, on both sides: the Delivery Service's checks (key packages,
//! Welcomes, group infos and trees, commits, application messages, its saved view) and a
//! device's (joining, processing a commit, decrypting, its saved state).
//!
//! [`MlsFixture::check`] is what the `mls` fuzz target runs, and what
//! `core/tests/mls_decoding.rs` runs on stable against mutations of the fixture's valid
//! messages: it never panics, a refusal changes nothing, and whatever a mutated message is
//! accepted for is exactly what the original said (MLS signs and tags every handshake
//! message and seals every application message, so a flipped byte is refused or harmless).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeSet;

use confab_core::e2ee::ds::{check_key_package, check_welcome};
use confab_core::e2ee::{Device, DeviceIdentity, Directory, DirectoryEntry, GroupView};
use confab_core::ids::{AccountId, DeviceId, TenantId};

pub const GROUP: &[u8] = b"acme/conv/fuzzed";
const AAD: &[u8] = b"msg-1";
const PLAINTEXT: &[u8] = b"the plans for saturday";

/// Where an input goes, chosen by its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    KeyPackage,
    Welcome,
    GroupInfo,
    RatchetTree,
    Commit,
    Application,
    SavedView,
    SavedDevice,
}

impl Sink {
    pub const ALL: [Sink; 8] = [
        Sink::KeyPackage,
        Sink::Welcome,
        Sink::GroupInfo,
        Sink::RatchetTree,
        Sink::Commit,
        Sink::Application,
        Sink::SavedView,
        Sink::SavedDevice,
    ];

    pub fn of(byte: u8) -> Sink {
        Self::ALL[usize::from(byte) % Self::ALL.len()]
    }
}

fn identity(account: &str) -> DeviceIdentity {
    DeviceIdentity::new(
        TenantId::new("acme").unwrap(),
        AccountId::new(account).unwrap(),
        DeviceId::new("d1").unwrap(),
    )
}

/// A group of alice and bob at epoch 1, as the Delivery Service and bob hold it, with the
/// valid messages of the next step: carol's key package, alice's commit adding her and its
/// Welcome, and an application message of alice at epoch 1.
pub struct MlsFixture {
    alice: DeviceIdentity,
    allowed: BTreeSet<DeviceIdentity>,
    /// The directory's entries of alice, bob and carol: each device with its own key.
    directory: Vec<DirectoryEntry>,
    group_info: Vec<u8>,
    ratchet_tree: Vec<u8>,
    /// The view at epoch 1 and bob's and carol's devices, saved (each check starts afresh).
    view: Vec<u8>,
    bob: Vec<u8>,
    carol: Vec<u8>,
    pub key_package: Vec<u8>,
    pub welcome: Vec<u8>,
    pub commit: Vec<u8>,
    pub application: Vec<u8>,
}

impl MlsFixture {
    pub fn new() -> Self {
        let mut alice = Device::new(identity("alice")).unwrap();
        let mut bob = Device::new(identity("bob")).unwrap();
        let carol = Device::new(identity("carol")).unwrap();
        let allowed: BTreeSet<DeviceIdentity> = [&alice, &bob, &carol]
            .iter()
            .map(|d| d.identity().clone())
            .collect();
        let init = alice.create_group(GROUP).unwrap();
        let mut view = GroupView::create(
            &init.group_info,
            &init.ratchet_tree,
            alice.identity(),
            &allowed,
        )
        .unwrap();
        let add_bob = alice
            .commit(GROUP, &[bob.key_package(false).unwrap()], &[])
            .unwrap();
        let staged = view
            .check_commit(&add_bob.commit, alice.identity(), &allowed)
            .unwrap();
        view.apply(staged).unwrap();
        alice.confirm_commit(GROUP).unwrap();
        bob.join(&add_bob.welcome.unwrap()).unwrap();
        let application = alice.encrypt(GROUP, AAD, PLAINTEXT).unwrap();
        let key_package = carol.key_package(false).unwrap();
        let directory = [&alice, &bob, &carol]
            .iter()
            .map(|d| DirectoryEntry {
                device: d.identity().clone(),
                signature_key: d.signature_key().to_vec(),
                removed: false,
            })
            .collect();
        let add_carol = alice
            .commit(GROUP, std::slice::from_ref(&key_package), &[])
            .unwrap();
        Self {
            alice: alice.identity().clone(),
            allowed,
            directory,
            group_info: init.group_info,
            ratchet_tree: init.ratchet_tree,
            view: view.to_bytes(),
            bob: bob.to_bytes(),
            carol: carol.to_bytes(),
            key_package,
            welcome: add_carol.welcome.unwrap(),
            commit: add_carol.commit,
            application,
        }
    }

    /// The valid input of a sink, for mutation.
    pub fn valid(&self, sink: Sink) -> &[u8] {
        match sink {
            Sink::KeyPackage => &self.key_package,
            Sink::Welcome => &self.welcome,
            Sink::GroupInfo => &self.group_info,
            Sink::RatchetTree => &self.ratchet_tree,
            Sink::Commit => &self.commit,
            Sink::Application => &self.application,
            Sink::SavedView => &self.view,
            Sink::SavedDevice => &self.bob,
        }
    }

    fn view(&self) -> GroupView {
        GroupView::from_bytes(&self.view).expect("the saved view loads")
    }

    fn device(saved: &[u8]) -> Device {
        Device::from_bytes(saved).expect("the saved device loads")
    }

    /// Feeds `data` to `sink`'s readers; panics (a finding) if a property fails.
    pub fn check(&self, sink: Sink, data: &[u8]) {
        match sink {
            Sink::KeyPackage => {
                // Any well-signed package naming carol passes (a corpus from another run holds
                // packages of another carol's keys): it is bound to its uploader and decided
                // the same way twice.
                let carol = identity("carol");
                if let Ok(info) = check_key_package(data, &carol) {
                    assert_eq!(check_key_package(data, &carol).ok(), Some(info));
                    assert!(check_key_package(data, &identity("bob")).is_err());
                }
            }
            Sink::Welcome => {
                let _ = check_welcome(data);
                let mut carol = Self::device(&self.carol);
                if let Ok(group) = carol.join(data) {
                    assert_eq!(group, GROUP);
                    assert_eq!(carol.epoch(GROUP), Some(2));
                }
            }
            Sink::GroupInfo => {
                if let Ok(view) = GroupView::follow(data, &self.ratchet_tree) {
                    assert_eq!((view.group_id(), view.epoch()), (GROUP, 0));
                    assert_eq!(view.devices(), BTreeSet::from([self.alice.clone()]));
                }
            }
            Sink::RatchetTree => {
                if let Ok(view) = GroupView::follow(&self.group_info, data) {
                    assert_eq!((view.group_id(), view.epoch()), (GROUP, 0));
                    assert_eq!(view.devices(), BTreeSet::from([self.alice.clone()]));
                }
            }
            Sink::Commit => self.check_commit(data),
            Sink::Application => self.check_application(data),
            Sink::SavedView => {
                let _ = GroupView::from_bytes(data).map(|v| (v.epoch(), v.devices()));
            }
            Sink::SavedDevice => {
                if let Ok(mut device) = Device::from_bytes(data) {
                    let _ = device.decrypt(&self.application);
                    let _ = device.process_commit(&self.commit);
                }
            }
        }
    }

    fn check_commit(&self, data: &[u8]) {
        let view = self.view();
        let carol = identity("carol");
        if let Ok(staged) = view.check_commit(data, &self.alice, &self.allowed) {
            assert_eq!((staged.epoch, &staged.added), (2, &vec![carol.clone()]));
            assert!(staged.removed.is_empty());
            // Every leaf it brings in is one the directory binds, with that key, or the
            // directory refuses it; a directory that binds nothing refuses any leaf.
            let directory = Directory::new(self.directory.iter().cloned());
            if staged.check_directory(&directory).is_ok() {
                for leaf in &staged.leaves {
                    let bound = self.directory.iter().find(|e| e.device == leaf.device);
                    assert_eq!(
                        bound.map(|e| &e.signature_key),
                        Some(&leaf.signature_key),
                        "a leaf the directory does not bind was accepted"
                    );
                }
            }
            assert!(
                staged.leaves.is_empty() || staged.check_directory(&Directory::default()).is_err()
            );
        }
        // A refused replay leaves the view where it was: the real commit still moves it.
        let mut replayed = self.view();
        match replayed.replay(data) {
            Ok(epoch) => assert_eq!(epoch, 2),
            Err(_) => {
                assert_eq!(replayed.epoch(), 1);
                assert_eq!(replayed.replay(&self.commit).unwrap(), 2);
            }
        }
        let mut bob = Self::device(&self.bob);
        match bob.process_commit(data) {
            Ok(outcome) => {
                assert_eq!((outcome.epoch, outcome.added), (2, vec![carol]));
                assert!(outcome.removed.is_empty() && !outcome.self_removed);
            }
            Err(_) => {
                assert_eq!(bob.epoch(GROUP), Some(1));
                assert_eq!(bob.process_commit(&self.commit).unwrap().epoch, 2);
            }
        }
    }

    fn check_application(&self, data: &[u8]) {
        if let Ok(frame) = self.view().check_application(data) {
            assert_eq!(frame.epoch, 1);
        }
        let mut bob = Self::device(&self.bob);
        match bob.decrypt(data) {
            Ok(read) => {
                assert_eq!(read.plaintext, PLAINTEXT);
                assert_eq!(read.aad, AAD);
                assert_eq!(read.sender, self.alice);
            }
            // A refused ciphertext spends nothing: the real one still decrypts.
            Err(_) => assert_eq!(bob.decrypt(&self.application).unwrap().plaintext, PLAINTEXT),
        }
    }
}

impl Default for MlsFixture {
    fn default() -> Self {
        Self::new()
    }
}
