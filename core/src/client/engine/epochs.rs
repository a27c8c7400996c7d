//! Following a group's commits without losing the messages of the epochs passed
//! (docs/E2EE.md, "Epochs a device keeps").
//!
//! A device back from being away may follow many commits at once, and the messages sent in
//! the epochs between may be held already (their part arrived first) or arrive after (the
//! conversation document arrived first). Two things keep them readable:
//!
//! - the commits are followed one at a time, and before the commit that ends an epoch the
//!   messages held of that epoch are opened (server order: a message and the commits before
//!   it), so what is held opens however many epochs were missed;
//! - while it passes more epochs than it usually keeps (`e2ee::PAST_EPOCHS`), the device
//!   keeps every epoch it passes, as many as `e2ee::catch_up_epochs` allows for its group's
//!   size, for the messages that arrive after the commits; once the conversation and its
//!   held parts are caught up and opened, it goes back to the usual window.

use crate::client::engine::ClientEngine;
use crate::doc::read;
use crate::e2ee::{self, E2eeError, PAST_EPOCHS};
use crate::ids::{ConvId, DocId};

/// How following a group's commits ended.
pub(super) struct Followed {
    /// Whether the device's group moved.
    pub(super) moved: bool,
    /// The commit the device could not follow.
    pub(super) failed: Option<E2eeError>,
}

impl ClientEngine {
    /// Follows `commits`, the accepted commits from `epoch` on in order, in group `group`
    /// of `conv`: each epoch's held messages are opened before the commit that ends it.
    pub(super) fn follow_commits(
        &mut self,
        conv: &ConvId,
        group: &[u8],
        mut epoch: u64,
        commits: Vec<Vec<u8>>,
    ) -> Followed {
        let mut followed = Followed {
            moved: false,
            failed: None,
        };
        self.keep_epochs_passed(group, commits.len());
        for commit in commits {
            if self.opens_at(conv, epoch) {
                self.open_ready(conv);
            }
            let before = self.leaves_now(group);
            let Some(mls) = self.mls.as_mut() else {
                break;
            };
            // This device's own commit, accepted before its ack came: it takes effect.
            let own = mls
                .committing
                .iter()
                .find(|(_, c)| c.group == group && c.commit == commit)
                .map(|(id, _)| *id);
            let step = match own {
                Some(id) => {
                    mls.committing.remove(&id);
                    mls.device.confirm_commit(group).map(|e| (e, false))
                }
                None => mls
                    .device
                    .process_commit(&commit)
                    .map(|o| (o.epoch, o.self_removed)),
            };
            match step {
                Ok((next, self_removed)) => {
                    followed.moved = true;
                    epoch = next;
                    if self_removed {
                        // A later Welcome may add it back: those from here on are tried.
                        mls.scanned.insert(group.to_vec(), next);
                        break;
                    }
                    self.note_key_changes(group, before);
                }
                Err(e) => {
                    followed.failed = Some(e);
                    break;
                }
            }
        }
        followed
    }

    /// Before following `passing` commits at once: a device that passes more epochs than it
    /// usually keeps keeps every one of them (up to `e2ee::catch_up_epochs`), for the
    /// messages of those epochs still to arrive.
    fn keep_epochs_passed(&mut self, group: &[u8], passing: usize) {
        let Some(mls) = self.mls.as_mut() else {
            return;
        };
        if passing <= PAST_EPOCHS as usize {
            return;
        }
        let devices = mls.device.members(group).map_or(0, |m| m.len());
        let want = passing.min(e2ee::catch_up_epochs(devices));
        let kept = mls.device.past_epochs_kept(group).unwrap_or(0);
        if want <= kept || want <= PAST_EPOCHS as usize {
            return;
        }
        if let Err(e) = mls.device.keep_past_epochs(group, want) {
            self.e2ee_event(&e);
        }
    }

    /// Once `conv`'s document and its held parts are caught up and what they hold is
    /// opened, a group that kept more epochs for a catch-up goes back to the usual window.
    /// Answers whether the device's state moved.
    pub(super) fn keep_usual_epochs(&mut self, conv: &ConvId) -> bool {
        let conv_doc = DocId::conv(&self.config.tenant, conv);
        let group = e2ee::group_id(&conv_doc);
        let wide = self
            .mls
            .as_ref()
            .and_then(|m| m.device.past_epochs_kept(&group))
            .is_some_and(|kept| kept > PAST_EPOCHS as usize);
        if !wide || !self.caught_up(conv, &conv_doc, &group) {
            return false;
        }
        let Some(mls) = self.mls.as_mut() else {
            return false;
        };
        match mls.device.keep_past_epochs(&group, PAST_EPOCHS as usize) {
            Ok(()) => true,
            Err(e) => {
                self.e2ee_event(&e);
                false
            }
        }
    }

    /// Whether `conv`'s document and every held part of it have synced, and the device's
    /// group is at the accepted epoch.
    fn caught_up(&self, conv: &ConvId, conv_doc: &DocId, group: &[u8]) -> bool {
        let Some(state) = self.docs.get(conv_doc) else {
            return false;
        };
        if !self.online || state.catching_up {
            return false;
        }
        let accepted = read::read_mls(&state.server).map_or(0, |m| m.epoch);
        let at = self.mls.as_ref().and_then(|m| m.device.epoch(group));
        at.is_some_and(|e| e >= accepted)
            && crate::client::replica::buckets_of(&self.docs, &self.config.tenant, conv)
                .all(|(_, part)| !part.catching_up)
    }
}

impl ClientEngine {
    /// How many past epochs of `conv`'s group this device keeps the secrets of: `PAST_EPOCHS`,
    /// more while it catches up.
    pub fn group_past_epochs(&self, conv: &ConvId) -> Option<usize> {
        let group = e2ee::group_id(&DocId::conv(&self.config.tenant, conv));
        self.mls.as_ref()?.device.past_epochs_kept(&group)
    }
}
