//! Devices that were never added to a group they belong in (docs/E2EE.md, "Joining"): a
//! member added before their first sign-in, one whose first key packages landed after the
//! group was made, a new phone or a reinstall with no other device of the account online.
//! Such a device, once registered, says in each encrypted conversation whose group it is not
//! in that it waits (a `device_waiting` signal, once per connection and every
//! `WAIT_AGAIN_MS` while it still waits; the server stamps the
//! device's name and keeps it for members who subscribe later). A member's device in the
//! group then claims that account's key packages and commits their waiting devices in
//! (`SyncDevices`): the group's committer at once, the others 3 s apart by their place
//! in the order of committers, and only while the device is still missing, so one commit usually settles it. A
//! device starts such a sync for a conversation at most once per step, so a member's flood
//! of signals costs each other device a claim per step.

use std::collections::BTreeSet;

use crate::client::engine::{ClientEngine, Event, Output};
use crate::client::intent::Intent;
use crate::e2ee;
use crate::ids::{AccountId, ConvId, DocId};
use crate::protocol::{ClientFrame, SignalKind};

/// How long each place in the group after the head waits before adding a waiting device
/// itself (place *k* waits *k* × this).
pub const JOIN_STEP_MS: i64 = 3_000;

/// How often a device still not in a group says again that it waits. A member's device
/// that subscribed where the signal was not kept (another node, a unit loaded since) hears
/// the next one.
pub const WAIT_AGAIN_MS: i64 = 30_000;

impl ClientEngine {
    /// The accounts whose waiting devices `conv`'s next `SyncDevices` adds.
    pub(super) fn joiners_of(&self, conv: &ConvId) -> BTreeSet<AccountId> {
        let Some(mls) = self.mls.as_ref() else {
            return BTreeSet::new();
        };
        mls.joiners
            .get(conv)
            .map(|j| j.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether `device` of `account` is in this device's group of `conv`.
    fn in_group(&self, conv: &ConvId, account: &AccountId, device: &str) -> bool {
        let group = e2ee::group_id(&DocId::conv(&self.config.tenant, conv));
        self.mls
            .as_ref()
            .and_then(|m| m.device.members(&group).ok())
            .is_some_and(|members| {
                members
                    .iter()
                    .any(|d| &d.account == account && d.device.as_str() == device)
            })
    }

    /// Says in `conv` that this device waits to be added, when it should: online and
    /// registered, the group accepted, this account an active member, this device not in
    /// the group (no Welcome joined it). Once per connection, and again every
    /// `WAIT_AGAIN_MS` while it still waits.
    pub(super) fn announce_waiting(&mut self, conv: &ConvId, device_now: i64) {
        let Some(mls) = self.mls.as_ref() else {
            return;
        };
        let said_lately = mls
            .announced
            .get(conv)
            .is_some_and(|at| device_now < at + WAIT_AGAIN_MS);
        if !self.online || mls.registered != Some(true) || said_lately {
            return;
        }
        let group = e2ee::group_id(&DocId::conv(&self.config.tenant, conv));
        let active = self
            .conversation(conv)
            .is_some_and(|c| c.active_member(&self.config.account).is_some());
        if mls.device.epoch(&group).is_some() || !self.group_accepted(conv) || !active {
            // Not waiting (any more): nothing to say again.
            if let Some(mls) = self.mls.as_mut() {
                mls.announced.remove(conv);
            }
            return;
        }
        if let Some(mls) = self.mls.as_mut() {
            mls.announced.insert(conv.clone(), device_now);
        }
        self.out.push(Output::Send(ClientFrame::Signal {
            doc: DocId::conv(&self.config.tenant, conv).to_string(),
            kind: SignalKind::DeviceWaiting,
            data: None,
        }));
    }

    /// A refusal for now naming `doc` (the server's database down, a busy node): a
    /// `device_waiting` this device sent there may not have been relayed, so it is said
    /// again at the next resend round.
    pub(super) fn waiting_refused(
        &mut self,
        doc: &str,
        code: &str,
        retry_after_ms: Option<u64>,
        device_now: i64,
    ) {
        let Ok(id) = DocId::parse(doc) else {
            return;
        };
        let (Some(conv), Some(mls)) = (id.conv_id(), self.mls.as_mut()) else {
            return;
        };
        if crate::client::retry::is_transient(code) && mls.announced.remove(conv).is_some() {
            self.retry.schedule(device_now, retry_after_ms);
        }
    }

    /// Every held encrypted conversation whose group this device waits to be added to.
    pub(super) fn announce_all_waiting(&mut self, device_now: i64) {
        for conv in self.encrypted_convs() {
            self.announce_waiting(&conv, device_now);
        }
    }

    /// When this device next says again that it waits somewhere.
    pub(super) fn waiting_wakeup(&self) -> Option<i64> {
        let mls = self.mls.as_ref()?;
        mls.announced.values().min().map(|at| at + WAIT_AGAIN_MS)
    }

    /// Says again where this device still waits, once `WAIT_AGAIN_MS` passed.
    pub(super) fn waiting_due(&mut self, device_now: i64) {
        if self.waiting_wakeup().is_some_and(|at| at <= device_now) {
            let due: Vec<ConvId> = self
                .mls
                .as_ref()
                .map(|m| m.announced.keys().cloned().collect())
                .unwrap_or_default();
            for conv in due {
                self.announce_waiting(&conv, device_now);
            }
        }
    }

    /// `device_waiting` from `device` of `account` in `conv`: if this device is in the
    /// group, the account is an active member and the device is missing, this device adds
    /// it: at once when it is the group's committer, else after its place's wait.
    pub(super) fn on_device_waiting(
        &mut self,
        conv: &ConvId,
        account: AccountId,
        device: String,
        device_now: i64,
    ) {
        let Some(conversation) = self.conversation(conv) else {
            return;
        };
        if conversation.active_member(&account).is_none() || self.in_group(conv, &account, &device)
        {
            return;
        }
        let committers = self.committers(conv);
        let Some(mls) = self.mls.as_ref() else {
            return;
        };
        let me = mls.device.identity();
        // Not in the group (or not following it): nothing to add it with.
        let Some(place) = committers.iter().position(|d| d == me) else {
            return;
        };
        // One device at a time: in a large group the later places do not all fire at once.
        // And one sync per step here: a flood of signals costs a claim per step, not each.
        let next_start = mls
            .joins_started
            .get(conv)
            .map_or(i64::MIN, |at| at + JOIN_STEP_MS);
        let due = (device_now + JOIN_STEP_MS * place as i64).max(next_start);
        if let Some(mls) = self.mls.as_mut() {
            let (at, waiting) = mls
                .joins_due
                .entry(conv.clone())
                .or_insert((due, Default::default()));
            *at = (*at).min(due);
            waiting.entry(account).or_default().insert(device);
        }
        self.joins_due(device_now);
    }

    /// When the earliest wait for a waiting device ends.
    pub(super) fn joins_wakeup(&self) -> Option<i64> {
        self.mls
            .as_ref()?
            .joins_due
            .values()
            .map(|(at, _)| *at)
            .min()
    }

    /// Adds the waiting devices whose wait is over and that are still missing.
    pub(super) fn joins_due(&mut self, device_now: i64) {
        let Some(mls) = self.mls.as_mut() else {
            return;
        };
        let due: Vec<ConvId> = mls
            .joins_due
            .iter()
            .filter(|(_, (at, _))| *at <= device_now)
            .map(|(c, _)| c.clone())
            .collect();
        for conv in due {
            let Some((_, waiting)) = self.mls.as_mut().and_then(|m| m.joins_due.remove(&conv))
            else {
                continue;
            };
            let mut missing = waiting;
            for (account, devices) in missing.iter_mut() {
                devices.retain(|device| !self.in_group(&conv, account, device));
            }
            missing.retain(|_, devices| !devices.is_empty());
            if missing.is_empty() {
                continue;
            }
            if let Some(mls) = self.mls.as_mut() {
                let joiners = mls.joiners.entry(conv.clone()).or_default();
                for (account, devices) in missing {
                    joiners.entry(account).or_default().extend(devices);
                }
                mls.joins_started.insert(conv.clone(), device_now);
            }
            // A sync not yet run claims them when it runs.
            let held = self
                .loads
                .held_intents()
                .any(|(_, i)| matches!(i, Intent::SyncDevices { conv: c } if c == &conv));
            if held {
                continue;
            }
            if let Err(e) = self.intent(Intent::SyncDevices { conv }, device_now) {
                self.out.push(Output::Event(Event::Error {
                    code: e.code().to_owned(),
                    message: e.to_string(),
                }));
            }
        }
    }
}
