//! The acceptor's side of an encrypted conversation: the Delivery Service's view of its MLS
//! group (`e2ee::GroupView`), rebuilt from the conversation document when first needed, and
//! the check of every change that makes the group or commits to it against the membership
//! as that change leaves it (docs/E2EE.md, "Membership").

use std::collections::HashMap;

use automerge::Automerge;

use crate::doc::read;
use crate::e2ee::ds::{check_welcome, GroupView, StagedCheck};
use crate::e2ee::{DeviceIdentity, Directory, DirectoryAsk, DsRefusal, Leaf};
use crate::ids::{AccountId, DocId};
use crate::model::conversation::Conversation;
use crate::model::message::{aad_names, sealed_aad};
use crate::policy::{Author, Effect};
use crate::validate::RejectCode;

/// What an accepted change does to the group, applied once the change is staged.
#[derive(Debug)]
pub(super) struct GroupStep {
    created: Option<GroupView>,
    /// A new group's leaves: its whole tree comes in.
    created_leaves: Vec<Leaf>,
    commit: Option<StagedCheck>,
}

impl GroupStep {
    /// What the directory must say to decide the step, `None` if nothing. Every leaf it
    /// brings in and every active member's device it removes: their accounts' entries. Every
    /// device it leaves in the group (one removed from the directory must go): with
    /// `checked` (every device of the group was checked against every removal up to that
    /// generation, [`super::Acceptor`]'s `directory_checked`), the devices removed since;
    /// without, their accounts' entries too. So a commit in steady state reads O(what it
    /// changes) rows, and O(accounts in the group) once per load of the unit.
    pub(super) fn directory_ask(&self, checked: Option<u64>) -> Option<DirectoryAsk> {
        let commit = self.commit.iter();
        let stays = commit.clone().flat_map(|c| c.stays.iter());
        if self.created_leaves.is_empty()
            && commit
                .clone()
                .all(|c| c.leaves.is_empty() && c.removes_listed.is_empty())
            && stays.clone().next().is_none()
        {
            return None;
        }
        // A new group's leaves are all checked as leaves: `checked` was about the group before.
        let removed_after = checked.filter(|_| self.created.is_none());
        let accounts: std::collections::BTreeSet<AccountId> = self
            .created_leaves
            .iter()
            .chain(commit.clone().flat_map(|c| c.leaves.iter()))
            .map(|l| &l.device)
            .chain(commit.flat_map(|c| c.removes_listed.iter()))
            .chain(stays.filter(|_| removed_after.is_none()))
            .map(|d| d.account.clone())
            .collect();
        Some(DirectoryAsk {
            accounts: accounts.into_iter().collect(),
            removed_after,
        })
    }

    /// Checks the step against the directory's answer to [`GroupStep::directory_ask`]: a
    /// device it leaves in is removed only if the answer says so (asked by account, or among
    /// the removals after the generation every device of the group was checked at).
    pub(super) fn check_directory(&self, directory: &Directory) -> Result<(), DsRefusal> {
        for leaf in &self.created_leaves {
            directory.check(leaf)?;
        }
        match &self.commit {
            Some(commit) => commit.check_directory(directory),
            None => Ok(()),
        }
    }

    /// Moves `view` on (a new group replaces it).
    pub(super) fn apply(self, view: &mut Option<GroupView>) -> Result<(), DsRefusal> {
        if let Some(created) = self.created {
            *view = Some(created);
        }
        if let (Some(commit), Some(view)) = (self.commit, view.as_mut()) {
            view.apply(commit)?;
        }
        Ok(())
    }
}

/// Why the group could not be followed: its stored messages no longer make a group. Never a
/// verdict on a change; the host treats it as storage gone wrong.
#[derive(Debug)]
pub(super) struct Unreadable(pub String);

/// The group as the accepted document holds it: the creator's group info and tree, then
/// every commit in epoch order. Costs O(commits) MLS steps, once per load of the unit.
pub(super) fn rebuild(
    doc: &Automerge,
    conv: &Conversation,
) -> Result<Option<GroupView>, Unreadable> {
    let Some(state) = conv.mls else {
        return Ok(None);
    };
    let log = read::read_mls_log(doc, 0).ok_or_else(|| Unreadable("no mls map".into()))?;
    let mut view = GroupView::follow(&log.group_info, &log.tree)
        .map_err(|e| Unreadable(format!("group info: {e}")))?;
    for (epoch, commit) in &log.commits {
        if *epoch != view.epoch() {
            return Err(Unreadable(format!("no commit for epoch {}", view.epoch())));
        }
        view.replay(commit)
            .map_err(|e| Unreadable(format!("commit of epoch {epoch}: {e}")))?;
    }
    if view.epoch() != state.epoch {
        return Err(Unreadable(format!(
            "the commits reach epoch {}, the document says {}",
            view.epoch(),
            state.epoch
        )));
    }
    Ok(Some(view))
}

/// Checks the MLS effects of one change submitted by `author` (from its device) against `view`
/// and the membership `conv` has once `effects` are applied. `Ok(None)`: the change does not
/// touch the group. What only the directory can decide is left to
/// [`GroupStep::check_directory`].
pub(super) fn check(
    view: Option<&GroupView>,
    conv_doc: &DocId,
    conv: &Conversation,
    author: &Author,
    effects: &[Effect],
) -> Result<Option<GroupStep>, (RejectCode, String)> {
    let init = effects.iter().find_map(|e| match e {
        Effect::MlsInit { group_info, tree } => Some((group_info, tree)),
        _ => None,
    });
    let commit = effects.iter().find_map(|e| match e {
        Effect::MlsCommit {
            commit, welcome, ..
        } => Some((commit, welcome)),
        _ => None,
    });
    if init.is_none() && commit.is_none() {
        return Ok(None);
    }
    let refuse = |r: DsRefusal| (RejectCode::from(&r), r.to_string());
    let tenant = conv_doc.tenant();
    // The commit must come from the device that submits it, of the author's account.
    let device = author
        .device
        .as_ref()
        .map(|d| DeviceIdentity::new(tenant.clone(), author.account.clone(), d.clone()))
        .ok_or_else(|| {
            refuse(DsRefusal::WrongSender {
                got: "a submission from no device".into(),
            })
        })?;
    let device = &device;
    let after = active_after(effects);
    let allowed = |d: &DeviceIdentity| {
        &d.tenant == tenant
            && after
                .get(&d.account)
                .copied()
                .unwrap_or_else(|| conv.active_member(&d.account).is_some())
    };
    let created = match init {
        Some((group_info, tree)) => {
            let created = GroupView::create(group_info, tree, device, &allowed).map_err(refuse)?;
            if created.group_id() != crate::e2ee::group_id(conv_doc) {
                return Err(refuse(DsRefusal::WrongGroup));
            }
            Some(created)
        }
        None => None,
    };
    let staged = match commit {
        Some((commit, welcome)) => {
            let Some(view) = created.as_ref().or(view) else {
                return Err(refuse(DsRefusal::Invalid("no group to commit to".into())));
            };
            let staged = view
                .check_commit(commit, device, &allowed)
                .map_err(refuse)?;
            match welcome {
                Some(_) if staged.added.is_empty() => {
                    return Err(refuse(DsRefusal::Malformed(
                        "a Welcome with a commit that adds no device".into(),
                    )));
                }
                Some(w) => check_welcome(w).map_err(refuse)?,
                None if !staged.added.is_empty() => {
                    return Err(refuse(DsRefusal::Malformed(
                        "a commit that adds devices carries their Welcome".into(),
                    )))
                }
                None => {}
            }
            Some(staged)
        }
        None => None,
    };
    Ok(Some(GroupStep {
        created_leaves: created.as_ref().map(GroupView::leaves).unwrap_or_default(),
        created,
        commit: staged,
    }))
}

/// Whether each account whose member entry the change writes is active after it.
fn active_after(effects: &[Effect]) -> HashMap<AccountId, bool> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::AddMember { after, .. } | Effect::UpdateMember { after, .. } => {
                Some((after.account.clone(), after.is_active()))
            }
            _ => None,
        })
        .collect()
}

/// What a sealed message is checked against, derived from the group and the membership once
/// per change of either (not per message: a send costs the same in any group size).
#[derive(Debug)]
pub(super) struct GroupFacts {
    devices: std::collections::HashSet<DeviceIdentity>,
    /// An account that is no longer an active member but still has a device in the group (a
    /// leave waiting for its removal commit).
    owes: Option<AccountId>,
}

impl GroupFacts {
    pub(super) fn of(view: Option<&GroupView>, conv: &Conversation) -> Self {
        let devices: std::collections::HashSet<DeviceIdentity> = view
            .map(|v| v.devices().into_iter().collect())
            .unwrap_or_default();
        let owes = devices
            .iter()
            .find(|d| conv.active_member(&d.account).is_none())
            .map(|d| d.account.clone());
        GroupFacts { devices, owes }
    }
}

/// Checks the sealed content of every message `effects` post or edit in an encrypted
/// conversation: the group exists and owes no removal, the submitting device is in it, and
/// the content is an MLS application message of the group, of an epoch still in the window,
/// bound to its message's id, and an edit also to the ciphertext it replaces.
pub(super) fn check_sealed(
    view: Option<&GroupView>,
    facts: &GroupFacts,
    tenant: &crate::ids::TenantId,
    author: &Author,
    effects: &[Effect],
) -> Result<(), (RejectCode, String)> {
    let refuse = |r: DsRefusal| (RejectCode::from(&r), r.to_string());
    for effect in effects {
        let (id, sealed, replaces) = match effect {
            Effect::PostMessage(m) => match &m.sealed {
                Some(sealed) => (&m.id, sealed, None),
                None => continue,
            },
            // The policy took only an edit of a message that is sealed and not deleted.
            Effect::EditSealed { message, sealed } => (
                &message.id,
                sealed,
                Some(message.sealed.as_deref().unwrap_or_default()),
            ),
            _ => continue,
        };
        let Some(view) = view else {
            return Err((
                RejectCode::Policy(crate::policy::DenyCode::MlsNoGroup),
                "the conversation's MLS group has not been made yet".into(),
            ));
        };
        if let Some(account) = &facts.owes {
            return Err(refuse(DsRefusal::RemovalPending(account.to_string())));
        }
        let device = author
            .device
            .as_ref()
            .map(|d| DeviceIdentity::new(tenant.clone(), author.account.clone(), d.clone()));
        if !device.as_ref().is_some_and(|d| facts.devices.contains(d)) {
            return Err(refuse(DsRefusal::NotInGroup(device.map_or_else(
                || "a submission from no device".to_owned(),
                |d| d.to_string(),
            ))));
        }
        let frame = view.check_application(sealed).map_err(refuse)?;
        if frame.aad != sealed_aad(id, replaces) {
            // Bound to this message but not over its content: an older content replayed.
            let stale = replaces.is_some() && aad_names(&frame.aad, id);
            return Err(refuse(if stale {
                DsRefusal::StaleEdit
            } else {
                DsRefusal::WrongAad
            }));
        }
    }
    Ok(())
}
