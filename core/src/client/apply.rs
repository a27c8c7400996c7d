//! How an intent writes, and what the policy says about it beforehand (the same `policy`
//! the server runs, on the client's local state). The engine runs an intent through here
//! once per document it writes (`write_change`), which writes through `doc::write`; nothing
//! here calls back into the engine.

use automerge::{Automerge, ScalarValue};
use serde_bytes::ByteBuf;

use super::error::ClientError;
use super::intent::Intent;
use super::outbox::PendingChange;
use crate::doc::schema::keys::{CLIENT_NAME, OWNER_NAME, TITLE};
use crate::doc::{read, write, DocError, IntentTag};
use crate::ids::{direct_conv_id, support_conv_id, AccountId, Bucket, DocId, TenantId};
use crate::limits::REACTIONS_PER_MEMBER_MAX;
use crate::model::conversation::*;
use crate::model::message::MessageKind;
use crate::policy::{self, Author, Context, Denial, DenyCode, Effect};

/// The documents an intent writes, in the order it writes them.
pub fn targets(
    intent: &Intent,
    tenant: &TenantId,
    me: &AccountId,
    place: impl Fn(&crate::ids::ConvId, i64) -> Bucket,
) -> Vec<DocId> {
    use Intent::*;
    let conv = |c| DocId::conv(tenant, c);
    match intent {
        CreateConversation { conv: c, .. } => vec![conv(c)],
        OpenDirect { peer } => vec![conv(&direct_conv_id(tenant, me, peer))],
        OpenSupport {
            resource, client, ..
        } => vec![conv(&support_conv_id(tenant, client, resource))],
        Send { conv: c, message } => vec![DocId::msgs(tenant, c, place(c, message.created_at))],
        Edit {
            conv: c, bucket, ..
        }
        | Delete {
            conv: c, bucket, ..
        }
        | React {
            conv: c, bucket, ..
        }
        | AnswerProposal {
            conv: c, bucket, ..
        } => {
            vec![DocId::msgs(tenant, c, *bucket)]
        }
        Pin { conv: c, .. }
        | Unpin { conv: c, .. }
        | MarkRead { conv: c, .. }
        | MarkDelivered { conv: c, .. }
        | NameSupport { conv: c, .. }
        | CloseLead { conv: c, .. }
        | SetLead { conv: c, .. }
        | AddMember { conv: c, .. }
        | RemoveMember { conv: c, .. }
        | Leave { conv: c }
        | SetRole { conv: c, .. }
        | SetInfo { conv: c, .. }
        | SetSetting { conv: c, .. }
        | SetLifecycle { conv: c, .. }
        | Block { conv: c, .. } => vec![conv(c)],
        SetConvPref { .. }
        | SetDraft { .. }
        | SetContact { .. }
        | Schedule { .. }
        | EditScheduled { .. }
        | CancelScheduled { .. } => {
            vec![DocId::private(tenant, me)]
        }
        SetProfile { .. } => vec![DocId::profile(tenant, me)],
    }
}

/// The conversation an intent is about, if any (known without loading anything: message
/// buckets depend on the conversation's width, the conversation does not).
pub fn conv_of(intent: &Intent, tenant: &TenantId, me: &AccountId) -> Option<crate::ids::ConvId> {
    targets(intent, tenant, me, |_, at| Bucket::first(at))
        .first()
        .and_then(|d| d.conv_id().cloned())
}

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
pub(super) fn write_change(
    doc: &mut Automerge,
    target: &DocId,
    intent: &Intent,
    me: &AccountId,
    id: u64,
    now: i64,
    thread_depth: u32,
) -> Result<Option<PendingChange>, ClientError> {
    let tag = IntentTag::new(id.to_string(), intent.kind());
    let before = doc.get_heads();
    let wrote = write_to(doc, target, intent, me, &tag, now, thread_depth)
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
    use Intent::*;
    let tenant = id.tenant();
    let wrote = match intent {
        CreateConversation {
            conv: _,
            kind,
            title,
            members,
            settings,
            parent,
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
            };
            write::create_conversation(doc, tag, &spec)?
        }
        OpenDirect { peer } => {
            let (_, change) = write::direct_creation_change(tenant, me, peer)?;
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
        } => {
            let link = ResourceLink {
                resource: resource.clone(),
                client: client.clone(),
                owner: owner.clone(),
            };
            let (_, change) = write::support_creation_change(tenant, &link)?;
            if automerge::ReadDoc::get_change_by_hash(doc, &change.hash()).is_some() {
                return Ok(false);
            }
            write::apply_creation(doc, change)?;
            return Ok(true);
        }
        Send { message, .. } => write::post_message(doc, tag, message)?,
        Edit { message, body, .. } => write::edit_body(doc, tag, now, message, body)?,
        Delete { message, .. } => write::delete_message(doc, tag, now, message)?,
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
            write::add_member(doc, tag, now, &m)?
        }
        RemoveMember { account, ban, .. } => {
            let status = if *ban {
                MemberStatus::Banned
            } else {
                MemberStatus::Removed
            };
            write::set_member_status(doc, tag, now, account, status)?
        }
        Leave { .. } => write::set_member_status(doc, tag, now, me, MemberStatus::Left)?,
        SetRole { account, role, .. } => write::set_role(doc, tag, now, account, *role)?,
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

/// The policy's verdict on `intent`, from the client's own state (a well-behaved client
/// only meets a denial in a race).
pub fn check(
    intent: &Intent,
    me: &AccountId,
    conv: Option<&Conversation>,
    bucket: Option<&Automerge>,
    now: i64,
    bucket_id: Option<Bucket>,
) -> Result<(), Denial> {
    use Intent::*;
    let author = Author::user(me.clone());
    let ctx = Context {
        conv,
        parent: None,
        now_ms: now,
        last_post_ms: None,
        bucket: bucket_id,
    };
    // The policy reads a message's author, kind, status and deletion, not its reactions.
    let message = |id: &crate::ids::MessageId| {
        bucket
            .and_then(|b| read::read_message_fields(b, id))
            .ok_or(Denial {
                code: DenyCode::MessageMissing,
                reason: format!("{id} is not loaded here"),
            })
    };
    let member = |account: &AccountId| conv.and_then(|c| c.member(account)).cloned();
    let effect = match intent {
        // Creation and find-or-create are checked by the server (parents, pairs).
        CreateConversation { .. } | OpenDirect { .. } | OpenSupport { .. } => return Ok(()),
        SetConvPref { .. } | SetDraft { .. } | SetProfile { .. } | SetContact { .. } => {
            return Ok(())
        }
        // The author's own document; whether the message may be sent is decided at its time.
        Schedule { .. } | EditScheduled { .. } | CancelScheduled { .. } => return Ok(()),
        Send { message: m, .. } => {
            if m.kind == MessageKind::System {
                return Ok(());
            }
            Effect::PostMessage(Box::new(m.clone()))
        }
        Edit { message: id, .. } => Effect::EditBody(Box::new(message(id)?)),
        Delete { message: id, .. } => Effect::DeleteMessage(Box::new(message(id)?)),
        React {
            message: id,
            emoji,
            on: true,
            ..
        } if bucket.is_some_and(|b| {
            let mine = read::reactions_of(b, id.as_str(), me.as_str());
            !mine.contains(emoji) && mine.len() >= REACTIONS_PER_MEMBER_MAX
        }) =>
        {
            return Err(Denial {
                code: DenyCode::TooManyReactions,
                reason: format!("at most {REACTIONS_PER_MEMBER_MAX} reactions on one message"),
            })
        }
        React { message: id, .. } => Effect::SetReaction {
            message: Box::new(message(id)?),
            account: me.clone(),
        },
        AnswerProposal {
            proposal, status, ..
        } => Effect::SetProposalStatus {
            proposal: Box::new(message(proposal)?),
            to: *status,
        },
        Pin { message, .. } => Effect::Pin {
            message: message.clone(),
            by: me.clone(),
        },
        Unpin { message, .. } => Effect::Unpin {
            message: message.clone(),
        },
        MarkRead { .. } => Effect::MarkRead {
            account: me.clone(),
        },
        MarkDelivered { .. } => Effect::MarkDelivered {
            account: me.clone(),
        },
        NameSupport { .. } => {
            // One change, several fields: each must pass where the thread has none yet.
            for (field, _) in support_names(intent) {
                let unset = conv.is_some_and(|c| match field {
                    TITLE => c.info.title.is_none(),
                    CLIENT_NAME => c.info.client_name.is_none(),
                    _ => c.info.owner_name.is_none(),
                });
                if unset {
                    policy::check(
                        &ctx,
                        &author,
                        &Effect::SetInfo {
                            field: field.into(),
                        },
                    )?;
                }
            }
            return Ok(());
        }
        CloseLead { .. } => {
            policy::check(
                &ctx,
                &author,
                &Effect::SetLifecycle {
                    to: Lifecycle::Closed,
                    by: me.clone(),
                },
            )?;
            Effect::SetLead {
                outcome: true,
                closed_after: true,
            }
        }
        SetLead { .. } => Effect::SetLead {
            outcome: false,
            closed_after: conv.is_some_and(|c| c.lifecycle.state == Lifecycle::Closed),
        },
        AddMember { account, role, .. } => {
            let mut after = Member::new(account.clone(), *role);
            if account != me {
                after.invited_by = Some(me.clone());
            }
            Effect::AddMember {
                before: member(account),
                after,
            }
        }
        RemoveMember { account, ban, .. } => {
            let Some(before) = member(account) else {
                return Err(Denial {
                    code: DenyCode::NotMember,
                    reason: format!("{account} is not a member"),
                });
            };
            let mut after = before.clone();
            after.status = if *ban {
                MemberStatus::Banned
            } else {
                MemberStatus::Removed
            };
            Effect::UpdateMember {
                before,
                after,
                fields: vec!["status".into(), "removed_at".into()],
            }
        }
        Leave { .. } => {
            let Some(before) = member(me) else {
                return Err(Denial {
                    code: DenyCode::NotMember,
                    reason: "not a member".into(),
                });
            };
            let mut after = before.clone();
            after.status = MemberStatus::Left;
            Effect::UpdateMember {
                before,
                after,
                fields: vec!["status".into(), "left_at".into()],
            }
        }
        SetRole { account, role, .. } => {
            let Some(before) = member(account) else {
                return Err(Denial {
                    code: DenyCode::NotMember,
                    reason: format!("{account} is not a member"),
                });
            };
            let mut after = before.clone();
            after.role = *role;
            Effect::UpdateMember {
                before,
                after,
                fields: vec!["role".into()],
            }
        }
        SetInfo { field, .. } => Effect::SetInfo {
            field: field.clone(),
        },
        SetSetting { key, .. } => Effect::SetSetting { key: key.clone() },
        SetLifecycle { state, .. } => Effect::SetLifecycle {
            to: *state,
            by: me.clone(),
        },
        Block { on, .. } => {
            let Some(before) = member(me) else {
                return Err(Denial {
                    code: DenyCode::NotMember,
                    reason: "not a member".into(),
                });
            };
            let mut after = before.clone();
            after.blocked = *on;
            Effect::UpdateMember {
                before,
                after,
                fields: vec![crate::doc::schema::keys::BLOCKED.into()],
            }
        }
    };
    policy::check(&ctx, &author, &effect)
}

/// The (field, value) pairs a `NameSupport` intent writes where unset.
fn support_names(intent: &Intent) -> Vec<(&'static str, &str)> {
    let Intent::NameSupport {
        title,
        client_name,
        owner_name,
        ..
    } = intent
    else {
        return Vec::new();
    };
    [
        (TITLE, title),
        (CLIENT_NAME, client_name),
        (OWNER_NAME, owner_name),
    ]
    .into_iter()
    .filter_map(|(field, value)| value.as_deref().map(|v| (field, v)))
    .collect()
}
