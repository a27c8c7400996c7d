//! The engine's side of end-to-end encryption (docs/E2EE.md, "On the device"): this device's
//! MLS state (`e2ee::Device`), kept in the store under `HostKey::Mls` (`mls_saved`: what
//! changed is written whenever it changes), and the key packages it keeps in the server's
//! directory. The engine
//! hands this part what it needs and carries out what it returns, like its other parts.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::engine::{ClientEngine, ClientError, Event, Output};
use super::intent::Intent;
use super::mls_saved;
use super::records::HostKey;
use super::retry::is_transient;
use super::store::StoreOp;
use crate::doc::write::MlsWrite;
use crate::e2ee::{self, CommitBundle, Device, DeviceIdentity, E2eeError, GroupInit};
use crate::ids::{AccountId, ConvId, DeviceId, DocId};
use crate::protocol::ClientFrame;

/// How many ordinary key packages a device keeps in the directory: on every connection it
/// asks how many it holds and tops up to this many (with a fresh last-resort package), so up
/// to this many devices can add it while it is away before the last-resort one is used.
pub const KEY_PACKAGES_TARGET: u64 = 20;

/// The device, its commits in flight, and what it asked of the directory.
#[derive(Debug)]
pub(super) struct MlsSide {
    pub(super) device: Device,
    /// Intents whose change carries a commit of this device the server has not answered
    /// (saved with the device: its own commit is recognised in the document after a restart).
    pub(super) committing: BTreeMap<u64, Committing>,
    /// The record last written under `HostKey::Mls` (`None`: none in this layout yet).
    record: Option<Vec<u8>>,
    next_request: u64,
    /// The `upload_key_packages` of no package that asks how many are held.
    counting: Option<u64>,
    /// The upload that tops up.
    uploading: Option<u64>,
    /// How many ordinary key packages the directory last said it holds for this device.
    held: Option<u64>,
    /// Whether the directory is known to hold this device (it said it holds packages of it,
    /// or stored an upload), or refused to (`Some(false)`: removed, another key bound). The
    /// server takes a group or commit only from a registered device, so one waits for this.
    pub(super) registered: Option<bool>,
    /// Accounts whose key packages a held add waits for, the claims out (by request id),
    /// and the answers not yet used (the code when the claim was refused).
    pub(super) wanted: BTreeSet<AccountId>,
    pub(super) asking: BTreeMap<u64, Vec<AccountId>>,
    pub(super) claimed: BTreeMap<AccountId, Result<Vec<ClaimedFor>, String>>,
    /// Per group this device is not in: the epochs whose Welcomes were tried.
    pub(super) scanned: HashMap<Vec<u8>, u64>,
    /// How often each intent's commit was made again after losing its epoch.
    pub(super) rebuilds: HashMap<u64, u32>,
    /// The `list_devices` of this account out, and the directory's last answer.
    pub(super) listing: Option<u64>,
    pub(super) devices: Option<Vec<crate::protocol::DeviceEntry>>,
    /// The account's devices the directory's last answer says were removed.
    pub(super) removed: BTreeSet<String>,
    /// Other accounts' `list_devices` out (`mls_removed`), and the devices each answer said
    /// were removed (accounts with none are left out).
    pub(super) peers_listing: BTreeMap<u64, AccountId>,
    pub(super) peers_removed: BTreeMap<AccountId, BTreeSet<String>>,
    /// Groups whose commit was refused for keeping a removed device: their next commit
    /// waits for those answers (made again then, it carries the removal).
    pub(super) relisting: BTreeSet<Vec<u8>>,
    /// The last account the previous `list_peers` asked of: the next goes on after it.
    pub(super) peers_cursor: Option<AccountId>,
    /// This engine's `remove_device` requests out, by request id: the device each names.
    pub(super) removing: BTreeMap<u64, String>,
    /// Requests the directory could not answer now (`unavailable`, ...): asked again at the
    /// engine's next resend round, not only at the next connection.
    again: Again,
    /// The owed removals (`mls_owed`): per group, the accepted epoch at which this device
    /// last started the commit that pays them; conversations whose document moved since the
    /// last look; and the conversation a waiting send wants paid before it.
    pub(super) owed_tried: HashMap<Vec<u8>, u64>,
    /// Per conversation, whether its group owes a removal, as of the conversation
    /// document's local heads and the group's epoch: a send asks it, and it costs a walk
    /// of the members only when either moved.
    pub(super) owes_seen: HashMap<ConvId, (Vec<automerge::ChangeHash>, Option<u64>, bool)>,
    pub(super) touched: BTreeSet<ConvId>,
    pub(super) owed_now: Option<ConvId>,
    /// Per conversation, when this device commits an owed removal if it is still owed (its
    /// place in the order of committers: `mls_owed`).
    pub(super) owed_due: BTreeMap<ConvId, i64>,
    /// Joining (`mls_joining`): the conversations this device said it waits in since it
    /// connected, and when it last said so; per conversation, the accounts whose waiting
    /// devices its next `SyncDevices` adds, and those this device adds later unless another
    /// did first.
    pub(super) announced: BTreeMap<ConvId, i64>,
    pub(super) joiners: BTreeMap<ConvId, Waiting>,
    pub(super) joins_due: BTreeMap<ConvId, (i64, Waiting)>,
    /// Per conversation, when this device last started a sync for waiting devices: the
    /// next starts a step later, however many signals come (a member's flood of them).
    pub(super) joins_started: HashMap<ConvId, i64>,
    /// Healing (`mls_owed`): per group, the accepted epoch at which this device last
    /// looked at its path (and committed it if it held blanks); the conversations it sealed
    /// a write into since the last look, with the device time of that write.
    pub(super) heal_tried: HashMap<Vec<u8>, u64>,
    pub(super) sealed_into: BTreeMap<ConvId, i64>,
    /// Per group, the key-change notices its commits brought (`key_changes`), saved apart.
    pub(super) notices: HashMap<Vec<u8>, Vec<super::key_changes::Kept>>,
    /// The contacts the person marked verified (`verified`), saved apart.
    pub(super) verified: BTreeMap<AccountId, String>,
}

/// Devices that said they wait to be added to a group, per account (an account may have
/// several: a new phone and a laptop signed in the same minute).
pub(super) type Waiting = BTreeMap<AccountId, BTreeSet<String>>;

/// The directory requests a transient refusal left to ask again.
#[derive(Debug, Default)]
struct Again {
    count: bool,
    claim: bool,
    list: bool,
}

/// A key package claimed for one device.
#[derive(Debug, Clone)]
pub(super) struct ClaimedFor {
    pub(super) account: AccountId,
    pub(super) device: String,
    pub(super) package: Vec<u8>,
}

impl MlsSide {
    pub(super) fn request_id(&mut self) -> u64 {
        self.next_request += 1;
        self.next_request
    }
}

/// A commit of this device in flight.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Committing {
    #[serde(with = "serde_bytes")]
    pub(super) group: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub(super) commit: Vec<u8>,
}

/// What an intent adds to an encrypted conversation's group, owned until it is written: a
/// new group (with its creation) and a commit (of an add or a removal, or of a creation's
/// other members' devices).
#[derive(Default)]
pub(super) struct MlsPart {
    pub(super) init: Option<GroupInit>,
    pub(super) commit: Option<CommitBundle>,
}

impl MlsPart {
    pub(super) fn init_write(&self) -> Option<MlsWrite<'_>> {
        self.init.as_ref().map(|init| MlsWrite::Init {
            group_info: &init.group_info,
            tree: &init.ratchet_tree,
        })
    }

    pub(super) fn commit_write(&self) -> Option<MlsWrite<'_>> {
        self.commit.as_ref().map(|bundle| MlsWrite::Commit {
            epoch: bundle.epoch,
            commit: &bundle.commit,
            welcome: bundle.welcome.as_deref(),
        })
    }
}

fn e2ee_error(e: E2eeError) -> ClientError {
    ClientError::E2ee(e.to_string())
}

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
