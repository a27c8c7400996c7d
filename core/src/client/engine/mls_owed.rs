//! Commits a group owes, paid without anyone asking (docs/E2EE.md, "Leaving" and "Trees
//! that stay cheap").
//!
//! - **Removals.** A member who leaves or lapses writes no commit, and the server refuses
//!   every sealed message of the group while a departed member's device is in it
//!   (`mls_removal_pending`). So the group's committer (the device of an active member whose
//!   update path costs the fewest encryptions, [`ClientEngine::committers`]) commits the
//!   removal as soon as it sees the departure, the device at place k after it k × 3 s
//!   later if it is still owed (`JOIN_STEP_MS`); a send that finds it still owed has it
//!   committed first (by this device: `SyncDevices` pays every owed removal) and waits for
//!   that commit, so it is sealed in an epoch the departed member cannot read; and a sealed
//!   write refused for its epoch or for a removal is sealed again on the current epoch,
//!   under its id.
//! - **Healing.** A device with blank nodes on its direct path (it joined by someone
//!   else's add, or a removal blanked part of its path) commits its own update path after
//!   its next sealed write goes out, once per epoch, and every commit it makes meanwhile
//!   carries the path: the tree fills where people talk, and later commits seal to O(log n)
//!   nodes instead of every leaf.

use crate::client::ask::Job;
use crate::client::engine::mls_group::REBUILDS_MAX;
use crate::client::engine::mls_joining::JOIN_STEP_MS;
use crate::client::engine::ClientEngine;
use crate::client::intent::Intent;
use crate::e2ee::{self, DeviceIdentity};
use crate::ids::{ConvId, DocId};

/// Whether a sealed write refused with `code` is to be sealed again on the group's current
/// epoch: refused for the epoch it was sealed in, or for a removal the group still owed.
fn reseals_for(code: &str) -> bool {
    matches!(
        code,
        "mls_stale_epoch" | "mls_unknown_epoch" | "mls_removal_pending"
    )
}

impl ClientEngine {
    /// The devices in this device's group of `conv` that must leave it: of accounts no
    /// longer active members, or listed removed by the directory (`mls_removed`).
    pub(super) fn departed_devices(&self, conv: &ConvId) -> Vec<DeviceIdentity> {
        let group = e2ee::group_id(&DocId::conv(&self.config.tenant, conv));
        let (Some(mls), Some(conversation)) = (self.mls.as_ref(), self.conversation(conv)) else {
            return Vec::new();
        };
        let Ok(in_group) = mls.device.members(&group) else {
            return Vec::new();
        };
        in_group
            .into_iter()
            .filter(|d| conversation.active_member(&d.account).is_none() || self.listed_removed(d))
            .collect()
    }

    /// Whether `conv`'s group owes a removal ([`ClientEngine::departed_devices`] is not
    /// empty), found again only when the conversation document or the group moved.
    fn owes(&mut self, conv: &ConvId) -> bool {
        let group = e2ee::group_id(&DocId::conv(&self.config.tenant, conv));
        let heads = self
            .docs
            .get(&DocId::conv(&self.config.tenant, conv))
            .map(|d| d.local.get_heads())
            .unwrap_or_default();
        let Some(mls) = self.mls.as_ref() else {
            return false;
        };
        let epoch = mls.device.epoch(&group);
        if let Some((seen, at, owes)) = mls.owes_seen.get(conv) {
            if *seen == heads && *at == epoch {
                return *owes;
            }
        }
        let owes = !self.departed_devices(conv).is_empty();
        if let Some(mls) = self.mls.as_mut() {
            mls.owes_seen.insert(conv.clone(), (heads, epoch, owes));
        }
        owes
    }

    /// Whether a `SyncDevices` of `conv` waits in the queue or is in flight.
    pub(super) fn syncing(&self, conv: &ConvId) -> bool {
        let syncs = |i: &Intent| matches!(i, Intent::SyncDevices { conv: c } if c == conv);
        self.loads.held_intents().any(|(_, i)| syncs(i))
            || self
                .outbox
                .values()
                .any(|e| syncs(&e.intent) && !e.is_final())
    }

    /// The accepted epoch of `conv`'s group (0 before any commit).
    fn accepted_epoch(&self, conv: &ConvId) -> u64 {
        self.docs
            .get(&DocId::conv(&self.config.tenant, conv))
            .and_then(|d| crate::doc::read::read_mls(&d.server))
            .map_or(0, |m| m.epoch)
    }

    /// Whether this device is to start the commit of `conv`'s owed removal now: one is owed,
    /// none is under way, and this device did not start one at this accepted epoch already
    /// (one that lost its epoch is started again once the winner's commit moved it).
    fn owes_start(&mut self, conv: &ConvId) -> bool {
        if !self.owes(conv) || self.syncing(conv) {
            return false;
        }
        let group = e2ee::group_id(&DocId::conv(&self.config.tenant, conv));
        self.mls
            .as_ref()
            .is_some_and(|m| m.owed_tried.get(&group) != Some(&self.accepted_epoch(conv)))
    }

    /// Notes that this device starts the commit of `conv`'s owed removal at its accepted
    /// epoch.
    fn note_started(&mut self, conv: &ConvId) {
        let epoch = self.accepted_epoch(conv);
        let group = e2ee::group_id(&DocId::conv(&self.config.tenant, conv));
        if let Some(mls) = self.mls.as_mut() {
            mls.owed_tried.insert(group, epoch);
        }
    }

    /// Whether a sealed write into `conv` waits for its group's owed removal. Until this
    /// device tried at this epoch, the commit that pays it is asked to run before the write
    /// ([`ClientEngine::take_owed_job`]); once it tried and nothing is under way, the write
    /// goes on and the server judges it (refused, it is sealed again).
    pub(super) fn waits_for_owed(&mut self, conv: &ConvId) -> bool {
        if self.syncing(conv) {
            return self.owes(conv);
        }
        if !self.owes_start(conv) {
            return false;
        }
        if let Some(mls) = self.mls.as_mut() {
            mls.owed_now = Some(conv.clone());
        }
        true
    }

    /// The `SyncDevices` a waiting write asked for, to run ahead of it (queued behind it,
    /// the write would wait for it forever).
    pub(super) fn take_owed_job(&mut self, device_now: i64) -> Option<Job> {
        let conv = self.mls.as_mut()?.owed_now.take()?;
        self.note_started(&conv);
        let id = self.next_id;
        self.next_id += 1;
        Some(Job::Intent {
            id,
            intent: Box::new(Intent::SyncDevices { conv }),
            device_now,
        })
    }

    /// Notes that `conv`'s document moved: [`ClientEngine::settle_owed`] looks at it.
    pub(super) fn touch_group(&mut self, conv: &ConvId) {
        if let Some(mls) = self.mls.as_mut() {
            mls.touched.insert(conv.clone());
        }
    }

    /// After a frame: in each conversation whose document moved, the device heading the
    /// group commits a removal it owes (and a device not in the group says it waits). Others wait (their sends pay it when the head is
    /// away), so a departure costs the group one commit, not one per device online.
    pub(super) fn settle_owed(&mut self, device_now: i64) {
        let Some(mls) = self.mls.as_mut() else {
            return;
        };
        let touched = std::mem::take(&mut mls.touched);
        if !self.online {
            return;
        }
        for conv in touched {
            // A device not in the group says it waits there ("mls_joining").
            self.announce_waiting(&conv, device_now);
            if !self.group_accepted(&conv) || !self.owes_start(&conv) {
                continue;
            }
            // The committer at once; the device at place k after it once k steps passed
            // and the removal is still owed (the committer may be away).
            let me = self.mls.as_ref().map(|m| m.device.identity().clone());
            let place = self
                .committers(&conv)
                .iter()
                .position(|d| Some(d) == me.as_ref());
            match place {
                Some(0) => {}
                Some(k) => {
                    let due = device_now + JOIN_STEP_MS * k as i64;
                    if let Some(mls) = self.mls.as_mut() {
                        let at = mls.owed_due.entry(conv).or_insert(due);
                        *at = (*at).min(due);
                    }
                    continue;
                }
                None => continue,
            }
            self.note_started(&conv);
            self.sync_group(conv, device_now);
        }
    }

    /// Queues a `SyncDevices` of `conv`: what the group owes, and this device's path; an
    /// intent the engine cannot queue is told as an `Event::Error`.
    fn sync_group(&mut self, conv: ConvId, device_now: i64) {
        if let Err(e) = self.intent(Intent::SyncDevices { conv }, device_now) {
            self.out.push(crate::client::engine::Output::Event(
                crate::client::engine::Event::Error {
                    code: e.code().to_owned(),
                    message: e.to_string(),
                },
            ));
        }
    }

    /// When the earliest owed removal this device waits to commit falls due.
    pub(super) fn owed_wakeup(&self) -> Option<i64> {
        self.mls.as_ref()?.owed_due.values().copied().min()
    }

    /// Commits the owed removals whose wait is over and that are still owed (the devices
    /// before this one in the order of committers did not).
    pub(super) fn owed_due(&mut self, device_now: i64) {
        let Some(mls) = self.mls.as_mut() else {
            return;
        };
        let due: Vec<ConvId> = mls
            .owed_due
            .iter()
            .filter(|(_, at)| **at <= device_now)
            .map(|(c, _)| c.clone())
            .collect();
        for conv in due {
            if let Some(mls) = self.mls.as_mut() {
                mls.owed_due.remove(&conv);
            }
            if !self.group_accepted(&conv) || !self.owes_start(&conv) {
                continue;
            }
            self.note_started(&conv);
            self.sync_group(conv, device_now);
        }
    }

    /// The devices of active members in `conv`'s group, the cheapest committer first: by the
    /// encryptions its update path takes, then by leaf (every member's device orders them
    /// alike, from the same tree). A device the directory removed commits nothing: it is to
    /// leave.
    pub fn committers(&self, conv: &ConvId) -> Vec<DeviceIdentity> {
        let (Some(costs), Some(conversation)) = (self.path_costs(conv), self.conversation(conv))
        else {
            return Vec::new();
        };
        let mut eligible: Vec<(DeviceIdentity, e2ee::tree::PathCost)> = costs
            .into_iter()
            .filter(|(d, _)| {
                conversation.active_member(&d.account).is_some() && !self.listed_removed(d)
            })
            .collect();
        eligible.sort_by_key(|(_, c)| (c.encryptions, c.leaf));
        eligible.into_iter().map(|(d, _)| d).collect()
    }

    /// What an update path costs each device of `conv`'s group, as this device's tree
    /// holds it, in leaf order (`None`: this device is not in the group).
    pub fn path_costs(&self, conv: &ConvId) -> Option<Vec<(DeviceIdentity, e2ee::tree::PathCost)>> {
        let group = e2ee::group_id(&DocId::conv(&self.config.tenant, conv));
        self.mls.as_ref()?.device.path_costs(&group).ok()
    }

    /// Whether this device's direct path in `conv`'s group holds a blank node its update
    /// path would fill.
    pub(super) fn path_has_blanks(&self, conv: &ConvId) -> bool {
        let group = e2ee::group_id(&DocId::conv(&self.config.tenant, conv));
        self.mls
            .as_ref()
            .and_then(|m| m.device.path_blanks(&group).ok())
            .is_some_and(|b| b > 0)
    }

    /// Notes that this device sealed a write into `conv` ([`ClientEngine::settle_heal`]
    /// looks at it).
    pub(super) fn note_sealed(&mut self, conv: &ConvId, device_now: i64) {
        if let Some(mls) = self.mls.as_mut() {
            mls.sealed_into.insert(conv.clone(), device_now);
        }
    }

    /// After sealed writes went out: in each of their groups where this device's path holds
    /// blanks, at the accepted epoch, with no commit of its own under way and none tried at
    /// this epoch, it commits its update path (`SyncDevices`, which also pays whatever else
    /// the group owes). Offline, it waits for the first write after the connection.
    pub(super) fn settle_heal(&mut self) {
        if !self.online {
            return;
        }
        let Some(mls) = self.mls.as_mut() else {
            return;
        };
        let sealed = std::mem::take(&mut mls.sealed_into);
        for (conv, device_now) in sealed {
            let group = e2ee::group_id(&DocId::conv(&self.config.tenant, &conv));
            let epoch = self.accepted_epoch(&conv);
            let Some(mls) = self.mls.as_ref() else {
                return;
            };
            let due = mls.device.epoch(&group) == Some(epoch)
                && mls.heal_tried.get(&group) != Some(&epoch)
                && !mls.committing.values().any(|c| c.group == group);
            if !due || self.syncing(&conv) {
                continue;
            }
            // Looked at once per epoch: the tree moves only with a commit, and reading it
            // costs O(devices), more than the send that asked.
            if let Some(mls) = self.mls.as_mut() {
                mls.heal_tried.insert(group, epoch);
            }
            if self.path_has_blanks(&conv) {
                self.sync_group(conv, device_now);
            }
        }
    }

    /// Whether intent `id`, refused with `code`, is a sealed write to seal again on the
    /// group's current epoch (at most `REBUILDS_MAX` times; it keeps its id).
    pub(super) fn reseal_after(&mut self, id: u64, code: &str) -> bool {
        if !reseals_for(code) || !self.is_sealed_write(id) {
            return false;
        }
        let Some(mls) = self.mls.as_mut() else {
            return false;
        };
        let rebuilds = mls.rebuilds.entry(id).or_default();
        *rebuilds += 1;
        *rebuilds <= REBUILDS_MAX
    }

    /// Whether outbox entry `id` seals its content for an encrypted conversation's group.
    pub(super) fn is_sealed_write(&self, id: u64) -> bool {
        self.outbox
            .get(&id)
            .is_some_and(|e| self.sealed_conv(&e.intent).is_some())
    }
}
