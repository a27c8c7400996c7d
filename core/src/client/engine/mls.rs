//! The engine's side of this device's MLS state (`crate::client::mls` holds it): attaching
//! the device, saving what changed, keeping the key packages topped up in the directory,
//! and routing MLS frames to the groups.

use crate::client::engine::{ClientEngine, ClientError, Event, Output};
use crate::client::intent::Intent;
use crate::client::mls::{Again, MlsPart, MlsSide, KEY_PACKAGES_TARGET};
use crate::client::mls_saved;
use crate::client::records::HostKey;
use crate::client::retry::is_transient;
use crate::client::store::StoreOp;
use crate::e2ee::{self, Device, DeviceIdentity, E2eeError};
use crate::ids::{AccountId, ConvId, DeviceId, DocId};
use crate::protocol::ClientFrame;
use serde_bytes::ByteBuf;
use std::collections::{BTreeMap, BTreeSet, HashMap};

impl ClientEngine {
    /// Gives the engine this device's MLS identity (`device` is the name its `hello` sends)
    /// and its saved state: the store's entries whose keys start with `HostKey::Mls`'s key
    /// (`LocalStore::scan` of it), none for a device new to encryption, which gets a fresh
    /// signature key, saved at once. Until this is called the engine cannot create or read
    /// encrypted conversations. A saved state of another identity (another account or device
    /// name), or a damaged one, is `ClientError::Corrupt`. A state saved whole by an earlier
    /// build loads and is written again in the current layout.
    pub fn attach_device(
        &mut self,
        device: DeviceId,
        saved: &[(String, Vec<u8>)],
    ) -> Result<(), ClientError> {
        let identity = DeviceIdentity::new(
            self.config.tenant.clone(),
            self.config.account.clone(),
            device,
        );
        let loaded = match mls_saved::load(saved)? {
            Some(loaded) => {
                if loaded.device.identity() != &identity {
                    return Err(ClientError::Corrupt(format!(
                        "the saved MLS device is {}, not {identity}",
                        loaded.device.identity()
                    )));
                }
                loaded
            }
            None => mls_saved::Loaded {
                device: Device::new(identity).map_err(e2ee_error)?,
                committing: BTreeMap::new(),
                record: None,
                stale: Vec::new(),
                notices: HashMap::new(),
                verified: BTreeMap::new(),
            },
        };
        let mls_saved::Loaded {
            device,
            committing,
            record,
            stale,
            notices,
            verified,
        } = loaded;
        let whole = record.is_none();
        if whole {
            // A fresh device's entries are all changes; a migrated one's are not.
            let mut ops: Vec<StoreOp> = stale.into_iter().map(StoreOp::Delete).collect();
            ops.extend(mls_saved::all_ops(&device));
            self.out.push(Output::Persist(ops));
        }
        self.mls = Some(MlsSide {
            device,
            committing,
            record,
            next_request: 0,
            counting: None,
            uploading: None,
            held: None,
            registered: None,
            wanted: BTreeSet::new(),
            asking: BTreeMap::new(),
            claimed: BTreeMap::new(),
            scanned: HashMap::new(),
            rebuilds: HashMap::new(),
            listing: None,
            devices: None,
            removed: BTreeSet::new(),
            peers_listing: BTreeMap::new(),
            peers_removed: BTreeMap::new(),
            relisting: BTreeSet::new(),
            peers_cursor: None,
            removing: BTreeMap::new(),
            again: Again::default(),
            owed_tried: HashMap::new(),
            owes_seen: HashMap::new(),
            touched: BTreeSet::new(),
            owed_now: None,
            owed_due: BTreeMap::new(),
            announced: BTreeMap::new(),
            joiners: BTreeMap::new(),
            joins_due: BTreeMap::new(),
            joins_started: HashMap::new(),
            heal_tried: HashMap::new(),
            sealed_into: BTreeMap::new(),
            notices,
            verified,
        });
        if whole {
            self.save_device();
        }
        if self.online {
            self.mls_connected();
        }
        Ok(())
    }

    /// This device's MLS identity, once attached.
    pub fn device_identity(&self) -> Option<&DeviceIdentity> {
        self.mls.as_ref().map(|m| m.device.identity())
    }

    /// How many key packages the directory holds for this device, as it last said (`None`
    /// before its first answer).
    pub fn key_packages_held(&self) -> Option<u64> {
        self.mls.as_ref().and_then(|m| m.held)
    }

    /// The epoch this device's group of `conv` is at (`None`: not in its group).
    pub fn group_epoch(&self, conv: &ConvId) -> Option<u64> {
        let group = e2ee::group_id(&DocId::conv(&self.config.tenant, conv));
        self.mls.as_ref()?.device.epoch(&group)
    }

    /// Writes what changed of the device's state (after every change of it: a group made, a
    /// commit, a join, a decryption that moved a ratchet, key packages made): the storage's
    /// entries written or deleted since the last save, and the record if it changed.
    pub(super) fn save_device(&mut self) {
        let Some(mls) = &mut self.mls else {
            return;
        };
        let mut ops = mls_saved::change_ops(mls.device.take_changes());
        let record = mls_saved::record(&mls.device, &mls.committing);
        if mls.record.as_ref() != Some(&record) {
            ops.push(StoreOp::Put(HostKey::Mls.key().to_owned(), record.clone()));
            mls.record = Some(record);
        }
        if !ops.is_empty() {
            self.out.push(Output::Persist(ops));
        }
    }

    /// Connected: asks the directory how many key packages this device holds.
    pub(super) fn mls_connected(&mut self) {
        let Some(mls) = self.mls.as_mut() else {
            return;
        };
        mls.again = Again::default();
        mls.announced.clear();
        mls.peers_listing.clear();
        self.count_key_packages();
        self.claims_connected();
        self.removals_connected();
        // After the count, which is when the directory sees this device.
        self.refresh_devices();
    }

    /// Asks the directory how many key packages this device holds (an upload of none).
    fn count_key_packages(&mut self) {
        let Some(mls) = self.mls.as_mut() else {
            return;
        };
        let id = mls.request_id();
        mls.counting = Some(id);
        mls.uploading = None;
        self.out.push(Output::Send(ClientFrame::UploadKeyPackages {
            id,
            packages: Vec::new(),
            last_resort: None,
        }));
    }

    /// The resend round: the directory requests a transient refusal left are asked again,
    /// in the order a connection asks them.
    pub(super) fn directory_round(&mut self, device_now: i64) {
        let Some(mls) = self.mls.as_mut() else {
            return;
        };
        let again = std::mem::take(&mut mls.again);
        let wanted: Vec<AccountId> = mls.wanted.iter().cloned().collect();
        if again.count {
            self.count_key_packages();
        }
        if again.claim {
            // Those of other claims still out are left to their answers.
            self.ask_claim(wanted);
        }
        if again.list {
            self.refresh_devices();
        }
        // A `device_waiting` refused for now is said again.
        self.announce_all_waiting(device_now);
    }

    /// `key_packages_stored`: tops up to `KEY_PACKAGES_TARGET` after the count.
    pub(super) fn on_key_packages_stored(&mut self, id: u64, held: u64, device_now: i64) {
        let Some(mls) = self.mls.as_mut() else {
            return;
        };
        if mls.uploading == Some(id) {
            mls.uploading = None;
            mls.held = Some(held);
            self.note_registered(true, device_now);
            return;
        }
        if mls.counting != Some(id) {
            return;
        }
        mls.counting = None;
        mls.held = Some(held);
        if held > 0 {
            self.note_registered(true, device_now);
        }
        if held >= KEY_PACKAGES_TARGET {
            return;
        }
        let Some(mls) = self.mls.as_mut() else {
            return;
        };
        let made: Result<Vec<ByteBuf>, E2eeError> = (held..KEY_PACKAGES_TARGET)
            .map(|_| mls.device.key_package(false).map(ByteBuf::from))
            .collect();
        let last_resort = mls.device.key_package(true).map(ByteBuf::from);
        let (packages, last_resort) = match (made, last_resort) {
            (Ok(p), Ok(l)) => (p, l),
            (Err(e), _) | (_, Err(e)) => {
                self.e2ee_event(&e);
                return;
            }
        };
        let id = mls.request_id();
        mls.uploading = Some(id);
        // Their private keys are in the device's state: saved before the packages leave.
        self.save_device();
        self.out.push(Output::Send(ClientFrame::UploadKeyPackages {
            id,
            packages,
            last_resort: Some(last_resort),
        }));
    }

    /// A directory request of this engine was refused. Refused for now (a retryable code:
    /// the database down, the server busy), a count, claim or list is asked again at the
    /// next resend round, after the server's `retry_after_ms`: an add or a device sync that
    /// waits for a claim keeps waiting, never rejected for an outage. Otherwise it is told to
    /// the app (nothing waits on an upload; the next connection tries again), and a claim's
    /// intents are rejected with its code.
    pub(super) fn on_directory_error(
        &mut self,
        id: u64,
        code: String,
        message: String,
        retry_after_ms: Option<u64>,
        device_now: i64,
    ) {
        if self.on_peer_list_refused(id) {
            return;
        }
        if is_transient(&code) && self.directory_again(id) {
            self.retry.schedule(device_now, retry_after_ms);
            return;
        }
        if self.on_claim_error(id, &code) || self.on_remove_refused(id, &code) {
            return;
        }
        let Some(mls) = self.mls.as_mut() else {
            return;
        };
        if mls.listing == Some(id) {
            mls.listing = None;
            self.out.push(Output::Event(Event::Error { code, message }));
            return;
        }
        if mls.counting == Some(id) || mls.uploading == Some(id) {
            let refused = matches!(
                code.as_str(),
                "device_removed" | "mls_signature_key_mismatch" | "mls_wrong_identity"
            );
            mls.counting = None;
            mls.uploading = None;
            self.out.push(Output::Event(Event::Error { code, message }));
            if refused {
                // What waits for the registration goes on, and the server says why not.
                self.note_registered(false, device_now);
            }
        }
    }

    /// The directory answered whether it holds this device: what waited for that goes on.
    fn note_registered(&mut self, registered: bool, device_now: i64) {
        let Some(mls) = self.mls.as_mut() else {
            return;
        };
        let first = mls.registered.is_none();
        mls.registered = Some(registered);
        if first {
            self.advance();
            // Only a registered device can be added: now it says where it waits.
            self.announce_all_waiting(device_now);
        }
    }

    /// Whether request `id` is a count, claim or list out: then it is marked to ask again.
    /// A device removal is the app's request: its refusal is its answer.
    fn directory_again(&mut self, id: u64) -> bool {
        let Some(mls) = self.mls.as_mut() else {
            return false;
        };
        if mls.asking.remove(&id).is_some() {
            // Its accounts stay wanted: the round claims them again.
            mls.again.claim = true;
        } else if mls.listing == Some(id) {
            mls.listing = None;
            mls.again.list = true;
        } else if mls.counting == Some(id) || mls.uploading == Some(id) {
            mls.counting = None;
            mls.uploading = None;
            mls.again.count = true;
        } else {
            return false;
        }
        true
    }

    pub(super) fn e2ee_event(&mut self, e: &E2eeError) {
        self.out.push(Output::Event(Event::Error {
            code: "e2ee".into(),
            message: e.to_string(),
        }));
    }

    /// What `intent` adds to its conversation's group, made now on this device's state: the
    /// group of an encrypted creation (the same group again when the creation is rewritten),
    /// the commit of an add or a removal.
    pub(super) fn mls_part(&mut self, intent: &Intent) -> Result<Option<MlsPart>, ClientError> {
        if self.commits_for(intent).is_some() {
            let commit = self.commit_part(intent)?;
            return Ok(commit.map(|c| MlsPart {
                init: None,
                commit: Some(c),
            }));
        }
        let Some(conv) = self
            .created_conv(intent)
            .filter(|_| self.creates_group(intent))
        else {
            return Ok(None);
        };
        let group = e2ee::group_id(&DocId::conv(&self.config.tenant, &conv));
        let mls = self.mls.as_mut().ok_or_else(|| {
            ClientError::E2ee("no device attached: encrypted conversations need one".into())
        })?;
        // Written again (a rebase): the same group, its members' commit still pending.
        if mls.device.epoch(&group).is_some() {
            let init = mls.device.group_init(&group).map_err(e2ee_error)?;
            return Ok(Some(MlsPart {
                init: Some(init),
                commit: None,
            }));
        }
        let init = mls.device.create_group(&group).map_err(e2ee_error)?;
        let commit = self.commit_part(intent)?;
        self.save_device();
        Ok(Some(MlsPart {
            init: Some(init),
            commit,
        }))
    }
}

fn e2ee_error(e: E2eeError) -> ClientError {
    ClientError::E2ee(e.to_string())
}
