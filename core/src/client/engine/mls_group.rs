//! The engine following its encrypted conversations' MLS groups (docs/E2EE.md, "On the
//! device"): commits the synced conversation document brings are processed in epoch order, a
//! Welcome for this device joins it, this device's own commit is confirmed when the server
//! accepts its change and discarded when it refuses it; adds and removals carry their
//! commit, made on the epoch the device is at, with the key packages claimed for them.

use std::collections::BTreeSet;

use crate::client::engine::{ClientEngine, ClientError, Event, Output};
use crate::client::intent::Intent;
use crate::client::load::Ready;
use crate::client::mls::{ClaimedFor, Committing, MlsSide};
use crate::doc::read;
use crate::e2ee::{self, CommitBundle, DeviceIdentity, E2eeError};
use crate::ids::{AccountId, ConvId, DocId, DocTarget};
use crate::protocol::{ClaimedPackage, ClientFrame};

/// How often an add or removal that lost its epoch to another commit is made again on the
/// new epoch before it ends rejected.
pub(super) const REBUILDS_MAX: u32 = 5;

/// Whether `code` says a commit lost its epoch to another one (stale, or the two writes of
/// `mls/commits/<e>` conflicted first).
pub(super) fn lost_epoch(code: &str) -> bool {
    matches!(code, "mls_stale_epoch" | "conflicting_write")
}

impl ClientEngine {
    fn group_of(&self, conv: &ConvId) -> (DocId, Vec<u8>) {
        let doc = DocId::conv(&self.config.tenant, conv);
        let group = e2ee::group_id(&doc);
        (doc, group)
    }

    /// The conversation an intent commits to its group for, when it is encrypted: adding or
    /// removing a member (a leave commits nothing: the next committer pays it).
    pub(super) fn commits_for(&self, intent: &Intent) -> Option<ConvId> {
        let conv = match intent {
            Intent::AddMember { conv, .. }
            | Intent::RemoveMember { conv, .. }
            | Intent::SyncDevices { conv } => conv,
            _ => return None,
        };
        let has_group = self
            .docs
            .get(&DocId::conv(&self.config.tenant, conv))
            .is_some_and(|d| read::read_mls(&d.local).is_some());
        (self.is_encrypted(conv) && has_group).then(|| conv.clone())
    }

    /// Whether an intent that writes into `conv`'s group (a commit, a sealed message) can be
    /// made now: the device follows the group up to the accepted epoch and has no commit of
    /// its own in flight. `Wait` asks for what it waits for (key packages to claim).
    pub(super) fn group_ready(&mut self, intent: &Intent) -> Ready {
        // The Delivery Service takes a group or a commit only from a device the directory
        // holds: one made before this device's first upload landed waits for it.
        let writes_group = self.commits_for(intent).is_some() || self.creates_group(intent);
        if writes_group && self.mls.as_ref().is_some_and(|m| m.registered.is_none()) {
            return Ready::Wait;
        }
        let claims = self.claims_for(intent);
        if let Some(conv) = self
            .commits_for(intent)
            .or_else(|| self.sealed_conv(intent))
        {
            let (doc, group) = self.group_of(&conv);
            let Some(mls) = self.mls.as_ref() else {
                return Ready::Yes; // refused when written: no device
            };
            let Some(epoch) = mls.device.epoch(&group) else {
                // A direct conversation's or support thread's device whose own group lost
                // waits for the Welcome of the winner's commit; elsewhere refused when
                // written: not in the group.
                return if conv.is_deterministic() && self.group_accepted(&conv) {
                    Ready::Wait
                } else {
                    Ready::Yes
                };
            };
            let accepted = self.docs.get(&doc).and_then(|d| read::read_mls(&d.server));
            // Two devices may make a direct conversation's or support thread's group; the
            // one the server takes is the group: nothing is sealed for this device's own
            // before that.
            if accepted.is_none() && conv.is_deterministic() {
                return Ready::Wait;
            }
            let accepted = accepted.map_or(0, |m| m.epoch);
            if epoch < accepted || mls.committing.values().any(|c| c.group == group) {
                return Ready::Wait;
            }
            // A commit refused for keeping a removed device waits for the directory.
            if self.commits_for(intent).is_some()
                && mls.relisting.contains(&group)
                && !mls.peers_listing.is_empty()
            {
                return Ready::Wait;
            }
            // Sealed only in an epoch a departed member cannot read.
            if self.sealed_conv(intent).is_some() && self.waits_for_owed(&conv) {
                return Ready::Wait;
            }
        }
        let missing: Vec<AccountId> = claims
            .into_iter()
            .filter(|a| !self.mls.as_ref().is_some_and(|m| m.claimed.contains_key(a)))
            .collect();
        if missing.is_empty() || self.mls.is_none() {
            return Ready::Yes;
        }
        self.ask_claim(missing);
        Ready::Wait
    }

    /// The accounts whose devices the intent's commit adds: the added member's, or every
    /// member's of an encrypted creation (this account's other devices too).
    fn claims_for(&self, intent: &Intent) -> Vec<AccountId> {
        match intent {
            Intent::AddMember { account, .. } if self.commits_for(intent).is_some() => {
                vec![account.clone()]
            }
            Intent::CreateConversation {
                members,
                encrypted: true,
                ..
            } => self.with_me(members.iter().map(|(a, _)| a)),
            // A deterministic encrypted creation: its parties' devices (`creates_group` only
            // holds for an encrypted one).
            Intent::OpenDirect { peer, .. } if self.creates_group(intent) => self.with_me([peer]),
            Intent::OpenSupport { client, owner, .. } if self.creates_group(intent) => {
                self.with_me([client, owner])
            }
            Intent::SyncDevices { conv } => {
                let mut accounts: BTreeSet<AccountId> = self.joiners_of(conv);
                if !self.device_drift(conv).add.is_empty() {
                    accounts.insert(self.config.account.clone());
                }
                accounts.into_iter().collect()
            }
            _ => Vec::new(),
        }
    }

    /// `accounts` and this device's own (its other devices), once each, in order.
    fn with_me<'a>(&self, accounts: impl IntoIterator<Item = &'a AccountId>) -> Vec<AccountId> {
        let mut all: BTreeSet<AccountId> = accounts.into_iter().cloned().collect();
        all.insert(self.config.account.clone());
        all.into_iter().collect()
    }

    /// Whether `intent` makes its conversation's group: an encrypted creation, or a
    /// deterministic encrypted creation (the find-or-create of an encrypted direct
    /// conversation or support thread) whose group this device neither holds nor knows of
    /// (one known is joined from its Welcome instead).
    pub(super) fn creates_group(&self, intent: &Intent) -> bool {
        let Some(conv) = self.created_conv(intent) else {
            return false;
        };
        if matches!(intent, Intent::CreateConversation { .. }) {
            return true;
        }
        let (doc, group) = self.group_of(&conv);
        let holds = self
            .mls
            .as_ref()
            .is_some_and(|m| m.device.epoch(&group).is_some());
        let known = |d: &crate::client::replica::ClientDoc| {
            if holds {
                read::read_mls(&d.server).is_some()
            } else {
                read::read_mls(&d.local).is_some()
            }
        };
        !self.docs.get(&doc).is_some_and(known)
    }

    /// The conversation an encrypted creation makes.
    pub(super) fn created_conv(&self, intent: &Intent) -> Option<ConvId> {
        match intent {
            Intent::CreateConversation {
                conv,
                encrypted: true,
                ..
            } => Some(conv.clone()),
            Intent::OpenDirect {
                peer,
                encrypted: true,
            } => Some(crate::client::apply::direct_id(
                &self.config.tenant,
                &self.config.account,
                peer,
                true,
            )),
            Intent::OpenSupport {
                resource,
                client,
                encrypted: true,
                ..
            } => Some(crate::client::apply::support_id(
                &self.config.tenant,
                client,
                resource,
                true,
            )),
            _ => None,
        }
    }

    /// Whether the accepted document of `conv` holds its group.
    /// What a `SyncDevices` of `conv` would change now (nothing outside the group).
    pub(super) fn device_drift(&self, conv: &ConvId) -> Drift {
        let (_, group) = self.group_of(conv);
        let Some(mls) = self.mls.as_ref() else {
            return Drift::default();
        };
        match mls.device.members(&group) {
            Ok(in_group) => drift(mls, &self.config.account, &in_group),
            Err(_) => Drift::default(),
        }
    }

    /// Queues a `SyncDevices` for every encrypted conversation whose group this device is
    /// in and whose devices of this account differ from the directory's last answer (one at
    /// a time per conversation).
    pub(super) fn sync_device_groups(&mut self, device_now: i64) {
        let convs: Vec<ConvId> = self
            .encrypted_convs()
            .into_iter()
            .filter(|c| self.group_accepted(c))
            .filter(|c| !self.device_drift(c).is_empty())
            .filter(|c| !self.syncing(c))
            .collect();
        for conv in convs {
            if let Err(e) = self.intent(Intent::SyncDevices { conv }, device_now) {
                self.out.push(Output::Event(Event::Error {
                    code: e.code().to_owned(),
                    message: e.to_string(),
                }));
            }
        }
    }

    /// The encrypted conversations whose documents this engine holds.
    pub(super) fn encrypted_convs(&self) -> Vec<ConvId> {
        self.docs
            .keys()
            .filter_map(|d| match d.target() {
                DocTarget::Conv(c) => Some(c.clone()),
                _ => None,
            })
            .filter(|c| self.is_encrypted(c))
            .collect()
    }

    pub(super) fn group_accepted(&self, conv: &ConvId) -> bool {
        let (doc, _) = self.group_of(conv);
        self.docs
            .get(&doc)
            .is_some_and(|d| read::read_mls(&d.server).is_some())
    }

    /// Asks the directory for one key package of every device of `accounts` (once while
    /// the answer is out; again on the next connection).
    pub(super) fn ask_claim(&mut self, accounts: Vec<AccountId>) {
        let online = self.online;
        let Some(mls) = self.mls.as_mut() else {
            return;
        };
        let accounts: Vec<AccountId> = accounts
            .into_iter()
            .filter(|a| !mls.asking.values().flatten().any(|b| b == a))
            .collect();
        if accounts.is_empty() {
            return;
        }
        mls.wanted.extend(accounts.iter().cloned());
        if !online {
            return;
        }
        let id = mls.request_id();
        mls.asking.insert(id, accounts.clone());
        self.out
            .push(crate::client::Output::Send(ClientFrame::ClaimKeyPackages {
                id,
                accounts: accounts.iter().map(ToString::to_string).collect(),
            }));
    }

    /// Connected: the claims that held intents wait for go out again.
    pub(super) fn claims_connected(&mut self) {
        let wanted: Vec<AccountId> = match self.mls.as_mut() {
            Some(mls) => {
                mls.asking.clear();
                mls.wanted.iter().cloned().collect()
            }
            None => return,
        };
        if !wanted.is_empty() {
            self.ask_claim(wanted);
        }
    }

    /// `key_packages`: the packages the held intents wait for; they run now. This device's
    /// own package (the directory lists every device of its account) is left out, and so is
    /// any package this device does not trust ([`ClientEngine::trusted_package`]): its device
    /// is not added, and an `Event::Error` says why.
    pub(super) fn on_key_packages(&mut self, id: u64, devices: Vec<ClaimedPackage>) {
        let me = self.config.account.clone();
        let Some(mls) = self.mls.as_mut() else {
            return;
        };
        let Some(accounts) = mls.asking.remove(&id) else {
            return;
        };
        let own = mls.device.identity().device.to_string();
        let mut distrusted = Vec::new();
        let mut known = None;
        for account in accounts {
            let mut packages = Vec::new();
            for d in devices.iter().filter(|d| d.account == account.as_str()) {
                let Some(package) = d.package.as_ref() else {
                    continue;
                };
                if account == me && d.device == own {
                    continue;
                }
                let known = known.get_or_insert_with(|| self.known_keys());
                match self.trusted_package(&account, &d.device, package, known) {
                    Ok(()) => packages.push(ClaimedFor {
                        account: account.clone(),
                        device: d.device.clone(),
                        package: package.to_vec(),
                    }),
                    Err(why) => distrusted.push(why),
                }
            }
            if let Some(mls) = self.mls.as_mut() {
                mls.wanted.remove(&account);
                mls.claimed.insert(account, Ok(packages));
            }
        }
        for (code, message) in distrusted {
            self.out.push(Output::Event(Event::Error { code, message }));
        }
        self.advance();
    }

    /// The signature key of every device this device knows: those of its groups' trees, and
    /// its own account's as the directory listed them.
    fn known_keys(&self) -> std::collections::HashMap<DeviceIdentity, Vec<u8>> {
        let Some(mls) = self.mls.as_ref() else {
            return Default::default();
        };
        let mut known = mls.device.known_keys();
        for d in mls.devices.iter().flatten() {
            if let Ok(device) = crate::ids::DeviceId::new(d.device.as_str()) {
                let id = DeviceIdentity::new(
                    self.config.tenant.clone(),
                    self.config.account.clone(),
                    device,
                );
                known.entry(id).or_insert_with(|| d.signature_key.to_vec());
            }
        }
        known
    }

    /// Whether a package the directory handed out for `account`'s `device` may be added: it
    /// is a well-formed, self-signed key package of the ciphersuite that names exactly that
    /// device, and a device this device knows keeps the key it knows (a server that
    /// substitutes its own packages gets them left out). `Err`: the code and why.
    fn trusted_package(
        &self,
        account: &AccountId,
        device: &str,
        package: &[u8],
        known: &std::collections::HashMap<DeviceIdentity, Vec<u8>>,
    ) -> Result<(), (String, String)> {
        let Ok(device) = crate::ids::DeviceId::new(device) else {
            return Err((
                "mls_wrong_identity".into(),
                format!("the directory named an invalid device {device:?} of {account}"),
            ));
        };
        let identity = DeviceIdentity::new(self.config.tenant.clone(), account.clone(), device);
        let info = e2ee::ds::check_key_package(package, &identity).map_err(|r| {
            (
                r.code().to_owned(),
                format!("the key package of {identity}: {r}"),
            )
        })?;
        match known.get(&identity) {
            Some(key) if *key != info.signature_key => Err((
                "mls_wrong_signature_key".into(),
                format!(
                    "the directory handed out a key package of {identity} with another \
                     signature key than this device knows for it: not added"
                ),
            )),
            _ => Ok(()),
        }
    }

    /// A claim was refused: the intents that wait for it end rejected with the code.
    pub(super) fn on_claim_error(&mut self, id: u64, code: &str) -> bool {
        let Some(mls) = self.mls.as_mut() else {
            return false;
        };
        let Some(accounts) = mls.asking.remove(&id) else {
            return false;
        };
        for account in accounts {
            mls.wanted.remove(&account);
            mls.claimed.insert(account, Err(code.to_owned()));
        }
        self.advance();
        true
    }

    /// The commit an add or removal of an encrypted conversation carries, made now on the
    /// device's epoch: the added account's claimed devices in, the removed account's devices
    /// out, and every removal the group owes (devices of accounts no longer active).
    pub(super) fn commit_part(
        &mut self,
        intent: &Intent,
    ) -> Result<Option<CommitBundle>, ClientError> {
        let Some(conv) = self
            .commits_for(intent)
            .or_else(|| self.created_conv(intent))
        else {
            return Ok(None);
        };
        let claims = self.claims_for(intent);
        let (_, group) = self.group_of(&conv);
        let conversation = self.conversation(&conv);
        // Devices the directory removed leave at any commit (the server refuses one that
        // keeps them, `mls_keeps_removed_device`).
        let listed_removed: Vec<DeviceIdentity> = self
            .group_devices(&conv)
            .unwrap_or_default()
            .into_iter()
            .filter(|d| self.listed_removed(d))
            .collect();
        let gone = self.listed_removed_names();
        let mls = self.mls.as_mut().ok_or_else(no_device)?;
        let in_group = mls.device.members(&group).map_err(e2ee_error)?;
        let mut remove: BTreeSet<DeviceIdentity> = in_group
            .iter()
            .filter(|d| {
                conversation
                    .as_ref()
                    .is_some_and(|c| c.active_member(&d.account).is_none())
            })
            .cloned()
            .collect();
        if let Intent::AddMember { account, .. } = intent {
            remove.retain(|d| &d.account != account);
        }
        if let Intent::RemoveMember { account, .. } = intent {
            remove.extend(in_group.iter().filter(|d| &d.account == account).cloned());
        }
        remove.extend(listed_removed);
        let mut packages = take_claims(mls, &claims)?;
        // Nor does one bring such a device in.
        packages.retain(|p| !gone.contains(&(p.account.clone(), p.device.clone())));
        if let Intent::SyncDevices { conv } = intent {
            let drift = drift(mls, &self.config.account, &in_group);
            remove.extend(drift.remove);
            // This account's listed devices the group lacks; another account's waiting
            // devices the group lacks (the server checks each against its directory).
            let me = &self.config.account;
            let waiting = mls.joiners.get(conv);
            packages.retain(|p| {
                if &p.account == me {
                    // Listed since the last list, or a new device of this account that said
                    // it waits (not one the directory removed).
                    drift.add.contains(&p.device)
                        || (waiting
                            .and_then(|w| w.get(me))
                            .is_some_and(|devices| devices.contains(&p.device))
                            && !mls.removed.contains(&p.device))
                } else {
                    // An account that left since its device said it waits is not added.
                    let active = conversation
                        .as_ref()
                        .is_some_and(|c| c.active_member(&p.account).is_some());
                    active
                        && !in_group
                            .iter()
                            .any(|d| d.account == p.account && d.device.as_str() == p.device)
                }
            });
            // A waiting device the directory gave no package of cannot be added now.
            if let Some(joiners) = mls.joiners.get_mut(conv) {
                for (account, devices) in joiners.iter_mut() {
                    devices.retain(|device| {
                        packages
                            .iter()
                            .any(|p| &p.account == account && &p.device == device)
                    });
                }
                joiners.retain(|_, devices| !devices.is_empty());
            }
        }
        // A device already in the group and staying is not added again (a member who left
        // and is added back before the owed removal was committed).
        packages.retain(|p| {
            !in_group.iter().any(|d| {
                d.account == p.account && d.device.as_str() == p.device && !remove.contains(d)
            })
        });
        let packages: Vec<Vec<u8>> = packages.into_iter().map(|p| p.package).collect();
        // A removal always carries a commit (the server requires one), even of a member none
        // of whose devices is in the group: it moves the group to keys they never held.
        let removal = matches!(intent, Intent::RemoveMember { .. });
        // Blanks on this device's path: a `SyncDevices` with nothing else to do is the
        // commit of its update path alone (`settle_heal`).
        let heal = mls.device.path_blanks(&group).is_ok_and(|b| b > 0);
        if packages.is_empty() && remove.is_empty() && !removal && !heal {
            return Ok(None);
        }
        let remove: Vec<DeviceIdentity> = remove.into_iter().collect();
        // Every commit carries this device's update path, adds too: the blanks an add
        // leaves above its new leaves are filled in the same commit, which the added
        // devices learn from their Welcome (docs/E2EE.md, "Trees that stay cheap").
        let bundle = mls
            .device
            .commit_with_path(&group, &packages, &remove)
            .map_err(e2ee_error)?;
        self.save_device();
        Ok(Some(bundle))
    }

    /// Intent `id` carries `commit` to `conv`'s group: it is in flight until answered.
    pub(super) fn note_commit(&mut self, id: u64, conv: &ConvId, commit: Vec<u8>) {
        let (_, group) = self.group_of(conv);
        if let Some(mls) = self.mls.as_mut() {
            mls.committing.insert(id, Committing { group, commit });
        }
        self.save_device();
    }

    /// The server accepted intent `id`'s change: its commit (if any) takes effect here.
    pub(super) fn commit_accepted(&mut self, id: u64) {
        let Some(Committing { group, .. }) =
            self.mls.as_mut().and_then(|m| m.committing.remove(&id))
        else {
            return;
        };
        let before = self.leaves_now(&group);
        if let Some(mls) = self.mls.as_mut() {
            // Already moved on (the winner's commit processed): nothing pending to merge.
            match mls.device.confirm_commit(&group) {
                Ok(_) => self.note_key_changes(&group, before),
                Err(e) => self.e2ee_event(&e),
            }
        }
        self.save_device();
        self.advance();
    }

    /// A change before intent `id`'s in its document was refused: its change depends on
    /// that one and will never be accepted, so the commit it carries (if any) is discarded
    /// (openmls holds one pending commit per group) and `true` says the intent is to be made
    /// anew.
    pub(super) fn drop_commit(&mut self, id: u64) -> bool {
        let Some(mls) = self.mls.as_mut() else {
            return false;
        };
        let Some(Committing { group, .. }) = mls.committing.remove(&id) else {
            return false;
        };
        if let Err(e) = mls.device.discard_commit(&group) {
            self.e2ee_event(&e);
        }
        self.save_device();
        true
    }

    /// The server refused intent `id`'s change: its commit (if any) is forgotten. `true`
    /// when it lost its epoch to another commit and is to be made again on the new epoch
    /// (at most `REBUILDS_MAX` times; the intent keeps its id).
    pub(super) fn commit_rejected(&mut self, id: u64, code: &str) -> bool {
        let Some(mls) = self.mls.as_mut() else {
            return false;
        };
        let Some(Committing { group, .. }) = mls.committing.remove(&id) else {
            return false;
        };
        // Already cleared when the winner's commit was processed.
        let _ = mls.device.discard_commit(&group);
        let rebuilds = mls.rebuilds.entry(id).or_default();
        *rebuilds += 1;
        let keeps_removed = code == "mls_keeps_removed_device";
        let again = (lost_epoch(code) || keeps_removed) && *rebuilds <= REBUILDS_MAX;
        if keeps_removed {
            mls.relisting.insert(group);
        }
        self.save_device();
        if keeps_removed {
            // This device did not know of a removal: the directory is asked again, and the
            // commit is made again from the answer, carrying the removal.
            self.refresh_devices();
        }
        again
    }

    /// `conv`'s document moved: the device follows its group to the accepted epoch (joining
    /// it from a Welcome first when it is not in it yet).
    pub(super) fn follow_group(&mut self, conv: &ConvId) {
        self.touch_group(conv);
        let (doc, group) = self.group_of(conv);
        let Some(mls) = self.mls.as_mut() else {
            return;
        };
        let Some(state) = self.docs.get(&doc) else {
            return;
        };
        let Some(accepted) = read::read_mls(&state.server) else {
            return;
        };
        let mut changed = false;
        if lost_creation(&mls.device, &group, &state.server) {
            // Another device's group of this conversation was accepted first (two devices
            // opened an encrypted direct conversation or support thread offline): this one
            // is dropped, with its commit, and the device joins the winner's from its Welcome.
            mls.committing.retain(|_, c| c.group != group);
            mls.scanned.remove(&group);
            if let Err(e) = mls.device.forget_group(&group) {
                self.e2ee_event(&e);
                return;
            }
            changed = true;
        }
        let epoch = match mls.device.epoch(&group) {
            Some(e) => e,
            None => {
                // The newest Welcome first: a device removed and added again joins where it
                // was added last. Each epoch's Welcome is tried once.
                let from = mls.scanned.get(&group).copied().unwrap_or(0);
                let mut joined = None;
                for e in (from..accepted.epoch).rev() {
                    let Some(welcome) = read::read_mls_welcome(&state.server, e) else {
                        continue;
                    };
                    if mls.device.join(&welcome).is_ok() {
                        joined = Some(e + 1);
                        break;
                    }
                }
                mls.scanned.insert(group.clone(), accepted.epoch);
                match joined {
                    Some(e) => {
                        changed = true;
                        e
                    }
                    None if changed => {
                        self.save_device();
                        return;
                    }
                    None => return,
                }
            }
        };
        let mut failed = None;
        if epoch < accepted.epoch {
            // The accepted commits from this device's epoch on, one after the other.
            let log = read::read_mls_log(&state.server, epoch).unwrap_or_default();
            let commits: Vec<Vec<u8>> = log
                .commits
                .range(epoch..accepted.epoch)
                .zip(epoch..)
                .take_while(|((e, _), want)| *e == want)
                .map(|((_, commit), _)| commit.clone())
                .collect();
            let followed = self.follow_commits(conv, &group, epoch, commits);
            changed |= followed.moved;
            failed = followed.failed;
        }
        if let Some(e) = failed {
            self.e2ee_event(&e);
        }
        let removed = self
            .mls
            .as_ref()
            .is_some_and(|m| m.device.epoch(&group).is_none());
        if changed {
            self.save_device();
            self.open_waiting(conv);
            self.advance();
        }
        // Removed on the way: it joins again from a later Welcome, if one adds it back.
        if changed && removed {
            self.follow_group(conv);
        }
    }
}

/// Whether this device's group `group` is one it made that the server did not take: still
/// at epoch 0, while the accepted document holds another group's tree.
fn lost_creation(device: &e2ee::Device, group: &[u8], server: &automerge::Automerge) -> bool {
    if device.epoch(group) != Some(0) {
        return false;
    }
    let Some(log) = read::read_mls_log(server, 0) else {
        return false;
    };
    device
        .group_init(group)
        .is_ok_and(|mine| mine.ratchet_tree != log.tree)
}

/// What `SyncDevices` changes in a group whose devices are `in_group`: this account's
/// listed devices the group lacks, and its devices in the group the directory removed.
fn drift(mls: &MlsSide, me: &AccountId, in_group: &[DeviceIdentity]) -> Drift {
    let mine: BTreeSet<&str> = in_group
        .iter()
        .filter(|d| &d.account == me)
        .map(|d| d.device.as_str())
        .collect();
    let add = mls
        .devices
        .iter()
        .flatten()
        .map(|d| d.device.as_str())
        .filter(|d| !mine.contains(d) && !mls.removed.contains(*d))
        .map(str::to_owned)
        .collect();
    let remove = in_group
        .iter()
        .filter(|d| &d.account == me && mls.removed.contains(d.device.as_str()))
        .cloned()
        .collect();
    Drift { add, remove }
}

/// The key packages claimed for `accounts`, taken (each is used once).
fn take_claims(mls: &mut MlsSide, accounts: &[AccountId]) -> Result<Vec<ClaimedFor>, ClientError> {
    let mut packages = Vec::new();
    for account in accounts {
        match mls.claimed.remove(account) {
            Some(Ok(claimed)) => packages.extend(claimed),
            Some(Err(code)) => {
                return Err(ClientError::E2ee(format!(
                    "the key packages of {account} could not be claimed: {code}"
                )))
            }
            None => {
                return Err(ClientError::E2ee(format!(
                    "no key packages claimed for {account}"
                )))
            }
        }
    }
    Ok(packages)
}

fn no_device() -> ClientError {
    ClientError::E2ee("no device attached: encrypted conversations need one".into())
}

fn e2ee_error(e: E2eeError) -> ClientError {
    ClientError::E2ee(e.to_string())
}

/// This account's devices a group lacks (by name) and those it must lose.
#[derive(Debug, Default)]
pub(super) struct Drift {
    pub(super) add: BTreeSet<String>,
    pub(super) remove: Vec<DeviceIdentity>,
}

impl Drift {
    fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}
