//! How an intent writes: the engine runs an intent through here once per document it
//! writes (`write_change`), which writes through `doc::write`; nothing here calls back into
//! the engine. Which documents an intent writes (`targets`, `conv_of`) is the intent's own
//! (`intent`); what the policy says of it beforehand (`check`) is `verdict`'s; both are
//! named here too, for the server and the hosts.

use automerge::{Automerge, ScalarValue};
use serde_bytes::ByteBuf;

use super::error::ClientError;
use super::intent::{support_names, Intent};
use super::outbox::PendingChange;
use crate::doc::write::MlsWrite;
use crate::doc::{write, DocError, IntentTag};
use crate::ids::{AccountId, DocId};
use crate::model::conversation::*;

pub use super::intent::{conv_of, direct_id, support_id, targets};
pub use super::verdict::check;

fn json_scalar(value: &serde_json::Value) -> Result<ScalarValue, DocError> {
    match value {
        serde_json::Value::Bool(b) => Ok(ScalarValue::Boolean(*b)),
        serde_json::Value::String(s) => Ok(ScalarValue::Str(s.as_str().into())),
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(ScalarValue::Int)
            .ok_or_else(|| DocError::NotApplicable("numbers are integers".into())),
        _ => Err(DocError::NotApplicable(
            "a string, an integer or a boolean".into(),
        )),
    }
}

fn field_name(
    name: &str,
    known: &[(&'static str, crate::doc::schema::FieldType)],
) -> Result<&'static str, DocError> {
    known
        .iter()
        .map(|(k, _)| *k)
        .find(|k| *k == name)
        .ok_or_else(|| DocError::NotApplicable(format!("unknown field {name}")))
}

/// Writes intent `id` into the local replica `doc` of `target` (one of its `targets`) and
/// returns the change that holds it, for the outbox: `None` when there was nothing to write
/// there. `thread_depth` as for `write_to`.
#[allow(clippy::too_many_arguments)]
pub(super) fn write_change(
    doc: &mut Automerge,
    target: &DocId,
    intent: &Intent,
    me: &AccountId,
    id: u64,
    now: i64,
    thread_depth: u32,
    mls: Option<MlsWrite<'_>>,
) -> Result<Option<PendingChange>, ClientError> {
    let tag = IntentTag::new(id.to_string(), intent.kind());
    let before = doc.get_heads();
    let wrote = write_to_with(doc, target, intent, me, &tag, now, thread_depth, mls)
        .map_err(|e| ClientError::NotApplicable(e.to_string()))?;
    if !wrote {
        return Ok(None);
    }
    // The last change on top of `before`: ours, or a deterministic creation change.
    let change = doc
        .get_changes(&before)
        .into_iter()
        .last()
        .ok_or_else(|| ClientError::NotApplicable("the intent wrote nothing".into()))?;
    Ok(Some(PendingChange {
        doc: target.to_string(),
        hash: ByteBuf::from(change.hash().0.to_vec()),
        bytes: ByteBuf::from(change.raw_bytes().to_vec()),
        acked: false,
    }))
}

/// Writes the MLS group an encrypted creation made into the conversation document `doc`, as
/// a change of intent `id` after its creation change: the acceptor takes a creation change
/// with the conversation's own fields only, and the group in the change after it.
pub(super) fn write_group_change(
    doc: &mut Automerge,
    target: &DocId,
    intent: &Intent,
    id: u64,
    now: i64,
    mls: MlsWrite<'_>,
) -> Result<PendingChange, ClientError> {
    let tag = IntentTag::new(id.to_string(), intent.kind());
    let hash = write::write_mls(doc, &tag, now, mls)
        .map_err(|e| ClientError::NotApplicable(e.to_string()))?
        .ok_or_else(|| ClientError::NotApplicable("the group wrote nothing".into()))?;
    let change = automerge::ReadDoc::get_change_by_hash(doc, &hash)
        .ok_or_else(|| ClientError::NotApplicable("the group's change vanished".into()))?;
    Ok(PendingChange {
        doc: target.to_string(),
        hash: ByteBuf::from(hash.0.to_vec()),
        bytes: ByteBuf::from(change.raw_bytes().to_vec()),
        acked: false,
    })
}

/// Writes `intent` into `doc` (one of its `targets`). `Ok(false)` when there is nothing to
/// write there (for example a direct conversation that exists already). `thread_depth`: the
/// depth of a thread the intent creates (its parent's plus one).
pub fn write_to(
    doc: &mut Automerge,
    id: &DocId,
    intent: &Intent,
    me: &AccountId,
    tag: &IntentTag,
    now: i64,
    thread_depth: u32,
) -> Result<bool, DocError> {
    write_to_with(doc, id, intent, me, tag, now, thread_depth, None)
}

/// [`write_to`], with what an encrypted conversation's MLS group gains in the same change:
/// the commit of an add or a removal.
#[allow(clippy::too_many_arguments)]
pub fn write_to_with(
    doc: &mut Automerge,
    id: &DocId,
    intent: &Intent,
    me: &AccountId,
    tag: &IntentTag,
    now: i64,
    thread_depth: u32,
    mls: Option<MlsWrite<'_>>,
) -> Result<bool, DocError> {
    use Intent::*;
    let tenant = id.tenant();
    let with_mls = |tx: &mut automerge::transaction::Transaction<'_>| match mls {
        Some(mls) => write::put_mls(tx, now, mls),
        None => Ok(()),
    };
    if mls.is_some()
        && !matches!(
            intent,
            AddMember { .. } | RemoveMember { .. } | SyncDevices { .. }
        )
    {
        return Err(DocError::NotApplicable(format!(
            "{} carries no MLS message",
            intent.kind()
        )));
    }
    let wrote = match intent {
        CreateConversation {
            conv: _,
            kind,
            title,
            members,
            settings,
            parent,
            encrypted,
        } => {
            let mut all = vec![Member::new(me.clone(), Role::Owner)];
            for (account, role) in members.iter().filter(|(a, _)| a != me) {
                let mut m = Member::new(account.clone(), *role);
                m.invited_by = Some(me.clone());
                all.push(m);
            }
            let spec = write::CreateConv {
                kind: *kind,
                created_by: me.clone(),
                created_at: now,
                bucket_ms: DEFAULT_BUCKET_MS,
                thread: parent.as_ref().map(|(p, m)| ThreadLink {
                    parent: p.clone(),
                    message: m.clone(),
                    depth: thread_depth,
                }),
                info: Info {
                    title: title.clone(),
                    ..Info::default()
                },
                settings: settings
                    .clone()
                    .unwrap_or_else(|| Settings::defaults_for(*kind)),
                members: all,
                encrypted: *encrypted,
            };
            write::create_conversation(doc, tag, &spec)?
        }
        OpenDirect { peer, encrypted } => {
            let (_, change) = if *encrypted {
                write::encrypted_direct_creation_change(tenant, me, peer)?
            } else {
                write::direct_creation_change(tenant, me, peer)?
            };
            if automerge::ReadDoc::get_change_by_hash(doc, &change.hash()).is_some() {
                return Ok(false);
            }
            write::apply_creation(doc, change)?;
            return Ok(true);
        }
        OpenSupport {
            resource,
            client,
            owner,
            encrypted,
        } => {
            let link = ResourceLink {
                resource: resource.clone(),
                client: client.clone(),
                owner: owner.clone(),
            };
            let (_, change) = if *encrypted {
                write::encrypted_support_creation_change(tenant, &link)?
            } else {
                write::support_creation_change(tenant, &link)?
            };
            if automerge::ReadDoc::get_change_by_hash(doc, &change.hash()).is_some() {
                return Ok(false);
            }
            write::apply_creation(doc, change)?;
            return Ok(true);
        }
        Send { message, .. } => write::post_message(doc, tag, message)?,
        Edit { message, body, .. } => write::edit_body(doc, tag, now, message, body)?,
        EditSealed {
            message, sealed, ..
        } => write::edit_sealed(doc, tag, now, message, sealed)?,
        Delete { message, .. } => write::delete_message(doc, tag, now, message, me)?,
        React {
            message, emoji, on, ..
        } => write::react(doc, tag, now, message, me, emoji, *on)?,
        Pin { message, .. } => write::pin(doc, tag, now, message, me)?,
        Unpin { message, .. } => write::unpin(doc, tag, now, message)?,
        MarkRead { message, .. } => write::mark_read(doc, tag, now, me, message)?,
        MarkDelivered { message, .. } => write::mark_delivered(doc, tag, now, me, message)?,
        NameSupport { .. } => write::name_unset(doc, tag, now, &support_names(intent))?,
        CloseLead {
            outcome, reason, ..
        } => write::close_lead(doc, tag, now, me, *outcome, reason.as_deref())?,
        SetLead { lead, .. } => write::set_lead(doc, tag, now, lead)?,
        AddMember { account, role, .. } => {
            let mut m = Member::new(account.clone(), *role);
            if account != me {
                m.invited_by = Some(me.clone());
            }
            m.joined_at = Some(now);
            write::transact(doc, tag, now, |tx| {
                write::put_member(tx, &m)?;
                with_mls(tx)
            })?
        }
        RemoveMember { account, ban, .. } => {
            let status = if *ban {
                MemberStatus::Banned
            } else {
                MemberStatus::Removed
            };
            write::transact(doc, tag, now, |tx| {
                write::put_member_status(tx, now, account, status)?;
                with_mls(tx)
            })?
        }
        Leave { .. } => write::set_member_status(doc, tag, now, me, MemberStatus::Left)?,
        // Only its commit, when the group owes one.
        SyncDevices { .. } => match mls {
            Some(_) => write::transact(doc, tag, now, with_mls)?,
            None => None,
        },
        SetRole {
            account,
            role,
            until,
            ..
        } => write::set_role(doc, tag, now, account, *role, *until)?,
        SetOverride {
            account,
            permission,
            allowed,
            until,
            ..
        } => write::set_override(doc, tag, now, account, *permission, *allowed, *until)?,
        SetInfo { field, value, .. } => {
            let field = field_name(field, crate::doc::schema::INFO_FIELDS)?;
            write::set_info(doc, tag, now, field, value.as_deref())?
        }
        SetSetting { key, value, .. } => {
            let key = field_name(key, crate::doc::schema::SETTINGS_FIELDS)?;
            write::set_setting(doc, tag, now, key, json_scalar(value)?)?
        }
        SetLifecycle { state, .. } => write::set_lifecycle(doc, tag, now, *state, me)?,
        Block { on, .. } => write::set_blocked(doc, tag, now, me, *on)?,
        TransferOwnership { account, .. } => write::transfer_ownership(doc, tag, now, me, account)?,
        // `now` is the engine's server time, the clock messages are created with.
        Hide { conv, on } => write::set_hidden(doc, tag, now, conv, on.then_some(now))?,
        AnswerProposal {
            proposal, status, ..
        } => write::set_proposal_status(doc, tag, now, proposal, *status)?,
        SetConvPref { conv, key, value } => {
            let key = field_name(key, crate::doc::schema::CONV_PREF_FIELDS)?;
            write::set_conv_pref(doc, tag, now, conv, key, json_scalar(value)?)?
        }
        SetDraft { conv, text } => write::set_draft(doc, tag, now, conv, text.as_deref())?,
        SetProfile { profile } => write::set_profile(doc, tag, now, profile)?,
        SetContact {
            id,
            contact: Some(contact),
        } => write::set_contact(doc, tag, now, id, contact)?,
        SetContact { id, contact: None } => write::remove_contact(doc, tag, now, id)?,
        Schedule { id, conv, body, at } => {
            let message = crate::model::schedule::NewSchedule {
                conv: conv.clone(),
                body: body.clone(),
                at: *at,
            };
            crate::doc::schedule::schedule(doc, tag, now, id, &message)?
        }
        EditScheduled { id, body, at } => {
            crate::doc::schedule::edit(doc, tag, now, id, body.as_deref(), *at)?
        }
        CancelScheduled { id } => crate::doc::schedule::cancel(doc, tag, now, id)?,
    };
    Ok(wrote.is_some())
}
