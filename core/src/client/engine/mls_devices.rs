//! The account's devices as the server's directory lists them (docs/E2EE.md, "The account's
//! devices"): asked on every connection (after the key package count, which is when the
//! directory sees this device) and on `refresh_devices`, kept for `devices`; removing one
//! (`remove_device`); and the account's groups kept to the list (`SyncDevices`).

use crate::client::engine::{ClientEngine, ClientError, Event, Output};
use crate::e2ee::{self, DeviceIdentity};
use crate::ids::{ConvId, DocId};
use crate::protocol::{ClientFrame, DeviceEntry};

/// One registered device of this account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub device: String,
    /// When its first key package upload registered it (server time, ms).
    pub registered_at: Option<i64>,
    /// When it last connected (server time, ms); `None` if not since the server keeps it.
    pub last_seen_at: Option<i64>,
    /// Whether it is the device this engine runs as.
    pub this_device: bool,
    /// The ordinary key packages it holds (how many more devices can add it to a group
    /// before its last-resort package is used).
    pub key_packages: Option<u64>,
    /// Its MLS signature key, bound by its first upload.
    pub signature_key: Vec<u8>,
}

impl ClientEngine {
    /// The account's registered devices as the directory last listed them, in device order
    /// (`None`: no answer yet, or no device attached).
    pub fn devices(&self) -> Option<Vec<DeviceInfo>> {
        let mls = self.mls.as_ref()?;
        let me = mls.device.identity().device.as_str();
        let listed = mls.devices.as_ref()?;
        Some(
            listed
                .iter()
                .map(|d| DeviceInfo {
                    this_device: d.device == me,
                    device: d.device.clone(),
                    registered_at: d.registered_at,
                    last_seen_at: d.last_seen_at,
                    key_packages: d.key_packages,
                    signature_key: d.signature_key.to_vec(),
                })
                .collect(),
        )
    }

    /// The devices in `conv`'s group as this device's state holds it, in the group's order
    /// (`None`: this device is not in the group).
    pub fn group_devices(&self, conv: &ConvId) -> Option<Vec<DeviceIdentity>> {
        let group = e2ee::group_id(&DocId::conv(&self.config.tenant, conv));
        self.mls.as_ref()?.device.members(&group).ok()
    }

    /// The safety number of this account and `peer` in `conv`'s group: 60 digits over the
    /// signature keys of both accounts' devices in that group, as this device's own MLS state
    /// holds them (`e2ee::safety_number`), so both people's devices show the same digits and
    /// any device added, removed or re-keyed changes them (docs/E2EE.md, "Safety numbers").
    /// `None` when this device is not in the group or `peer` has no device in it.
    pub fn safety_number(&self, conv: &ConvId, peer: &crate::ids::AccountId) -> Option<String> {
        let group = e2ee::group_id(&DocId::conv(&self.config.tenant, conv));
        let leaves = self.mls.as_ref()?.device.leaves(&group).ok()?;
        let of = |account: &crate::ids::AccountId| -> Vec<(&DeviceIdentity, &[u8])> {
            leaves
                .iter()
                .filter(|l| &l.device.account == account)
                .map(|l| (&l.device, l.signature_key.as_slice()))
                .collect()
        };
        let (mine, theirs) = (of(&self.config.account), of(peer));
        if theirs.is_empty() || peer == &self.config.account {
            return None;
        }
        Some(e2ee::safety_number(&mine, &theirs))
    }

    /// Asks the directory for the account's devices again (online; otherwise on the next
    /// connection). `Event::Devices` tells when the answer is in.
    pub fn refresh_devices(&mut self) {
        let online = self.online;
        let account = self.config.account.to_string();
        let Some(mls) = self.mls.as_mut() else {
            return;
        };
        if !online {
            return;
        }
        let id = mls.request_id();
        mls.listing = Some(id);
        self.out
            .push(Output::Send(ClientFrame::ListDevices { id, account }));
        // And those of the accounts sharing a group with it: their removed devices leave.
        self.list_peers();
    }

    /// `devices`: the answer to this engine's last `list_devices`. The account's groups
    /// follow it: its listed devices a group lacks are added, its removed ones taken out.
    pub(super) fn on_devices(
        &mut self,
        id: u64,
        account: &str,
        devices: Vec<DeviceEntry>,
        removed: Vec<String>,
        device_now: i64,
    ) {
        if self.on_peer_devices(id, account, &removed) {
            return;
        }
        let Some(mls) = self.mls.as_mut() else {
            return;
        };
        if mls.listing != Some(id) || account != self.config.account.as_str() {
            return;
        }
        mls.listing = None;
        mls.devices = Some(devices);
        let removed: std::collections::BTreeSet<String> = removed.into_iter().collect();
        let moved = mls.removed != removed;
        mls.removed = removed;
        if moved {
            let me = self.config.account.clone();
            self.removals_moved(&me);
        }
        self.out.push(Output::Event(Event::Devices));
        self.sync_device_groups(device_now);
    }

    /// Removes another device of this account from the directory (it is no longer listed
    /// nor claimed, and uploads nothing more); once the directory answers, the list is asked
    /// again and this device takes it out of every encrypted conversation's group it is in.
    /// `Event::DeviceRemoved` tells the answer. Online only.
    pub fn remove_device(&mut self, device: &str) -> Result<(), ClientError> {
        let online = self.online;
        let mls = self.mls.as_mut().ok_or_else(|| {
            ClientError::E2ee("no device attached: there is no device list".into())
        })?;
        let device = crate::ids::DeviceId::new(device)
            .map_err(|e| ClientError::NotApplicable(format!("device {device:?}: {e}")))?;
        if device == mls.device.identity().device {
            return Err(ClientError::NotApplicable(
                "a device cannot remove itself: remove it from another device".into(),
            ));
        }
        if !online {
            return Err(ClientError::NotApplicable(
                "offline: a device is removed by the server's directory".into(),
            ));
        }
        let id = mls.request_id();
        mls.removing.insert(id, device.to_string());
        self.out.push(Output::Send(ClientFrame::RemoveDevice {
            id,
            device: device.to_string(),
        }));
        Ok(())
    }

    /// Connected: the removals a lost connection left unanswered are asked again. The
    /// directory's removal is idempotent (a device removed already is answered removed), so
    /// whether or not the first request reached it, each `remove_device` ends with an answer
    /// and its list moves the groups. Sent before the list the connection asks for.
    pub(super) fn removals_connected(&mut self) {
        let Some(mls) = self.mls.as_ref() else {
            return;
        };
        for (id, device) in &mls.removing {
            self.out.push(Output::Send(ClientFrame::RemoveDevice {
                id: *id,
                device: device.clone(),
            }));
        }
    }

    /// `device_removed`: the list is asked again, and its answer moves the groups.
    pub(super) fn on_device_removed(&mut self, id: u64) {
        let Some(device) = self.mls.as_mut().and_then(|m| m.removing.remove(&id)) else {
            return;
        };
        self.out.push(Output::Event(Event::DeviceRemoved {
            device,
            refused: None,
        }));
        self.refresh_devices();
    }

    /// A `remove_device` of this engine was refused (`code`): told to the app. `false` if
    /// `id` is not one.
    pub(super) fn on_remove_refused(&mut self, id: u64, code: &str) -> bool {
        let Some(device) = self.mls.as_mut().and_then(|m| m.removing.remove(&id)) else {
            return false;
        };
        self.out.push(Output::Event(Event::DeviceRemoved {
            device,
            refused: Some(code.to_owned()),
        }));
        true
    }
}
