//! This device's end-to-end encryption state (docs/E2EE.md, "On the device"): its MLS state
//! (`e2ee::Device`), kept in the store under `HostKey::Mls` (`mls_saved`: what changed is
//! written whenever it changes), and what it asked of the server's directory. The engine
//! runs it (`engine::mls` and the `engine::mls_*` files).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::doc::write::MlsWrite;
use crate::e2ee::{CommitBundle, Device, GroupInit};
use crate::ids::{AccountId, ConvId};

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
    pub(super) record: Option<Vec<u8>>,
    pub(super) next_request: u64,
    /// The `upload_key_packages` of no package that asks how many are held.
    pub(super) counting: Option<u64>,
    /// The upload that tops up.
    pub(super) uploading: Option<u64>,
    /// How many ordinary key packages the directory last said it holds for this device.
    pub(super) held: Option<u64>,
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
    pub(super) again: Again,
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
pub(super) struct Again {
    pub(super) count: bool,
    pub(super) claim: bool,
    pub(super) list: bool,
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
