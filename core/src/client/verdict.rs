//! What the policy says of an intent before it is written: the same `policy` the server
//! runs, on the client's local state (the conversation as the policy reads it, the bucket
//! document a message change reads). A well-behaved client only meets a denial in a race.

use automerge::Automerge;

use super::intent::{support_names, Intent};
use crate::doc::read;
use crate::doc::schema::keys::{self, CLIENT_NAME, TITLE};
use crate::ids::{AccountId, Bucket};
use crate::limits::REACTIONS_PER_MEMBER_MAX;
use crate::model::conversation::*;
use crate::model::message::MessageKind;
use crate::policy::{self, Author, Context, Denial, DenyCode, Effect};

/// The policy's verdict on `intent` by `me`, from the client's own state.
pub fn check(
    intent: &Intent,
    me: &AccountId,
    conv: Option<&Conversation>,
    bucket: Option<&Automerge>,
    now: i64,
    bucket_id: Option<Bucket>,
    parent_standing: Option<policy::Standing>,
) -> Result<(), Denial> {
    use Intent::*;
    let author = Author::user(me.clone());
    let ctx = Context {
        conv,
        parent: None,
        now_ms: now,
        last_post_ms: None,
        bucket: bucket_id,
        parent_standing,
        parent_message: None,
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
    // The entry a change of someone's role or overrides starts from.
    let entry = |account: &AccountId| {
        member(account).ok_or_else(|| Denial {
            code: DenyCode::NotMember,
            reason: format!("{account} is not a member"),
        })
    };
    let effect = match intent {
        CreateConversation {
            kind,
            encrypted: true,
            ..
        } => return policy::encryption_allowed(*kind),
        // Creation and find-or-create are checked by the server (parents, pairs).
        CreateConversation { .. } | OpenDirect { .. } | OpenSupport { .. } => return Ok(()),
        SetConvPref { .. } | SetDraft { .. } | SetProfile { .. } | SetContact { .. } => {
            return Ok(())
        }
        // The private document's validation holds the same rule.
        Hide { conv, .. } if !conv.is_direct() => {
            return Err(Denial {
                code: DenyCode::DirectOnly,
                reason: format!("{conv} is not a direct conversation: leave it instead"),
            })
        }
        Hide { .. } => return Ok(()),
        // The author's own document; whether the message may be sent is decided at its time.
        Schedule { .. } | EditScheduled { .. } | CancelScheduled { .. } => return Ok(()),
        Send { message: m, .. } => {
            if m.kind == MessageKind::System {
                return Ok(());
            }
            Effect::PostMessage(Box::new(m.clone()))
        }
        Edit { message: id, .. } => Effect::EditBody(Box::new(message(id)?)),
        EditSealed {
            message: id,
            sealed,
            ..
        } => Effect::EditSealed {
            message: Box::new(message(id)?),
            sealed: sealed.clone(),
        },
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
        // What the commit may add or must remove is the server's group check.
        SyncDevices { .. } => Effect::MlsCommit {
            epoch: 0,
            commit: Vec::new(),
            welcome: None,
        },
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
        SetRole {
            account,
            role,
            until,
            ..
        } => {
            let before = entry(account)?;
            // What `write::set_role` writes.
            let after = before.granted(*role, *until, now);
            let mut fields = vec![keys::ROLE.to_owned()];
            if (after.role_until, after.role_after) != (before.role_until, before.role_after) {
                fields.extend([keys::ROLE_UNTIL.to_owned(), keys::ROLE_AFTER.to_owned()]);
            }
            Effect::UpdateMember {
                before,
                after,
                fields,
            }
        }
        SetOverride {
            account,
            permission,
            allowed,
            until,
            ..
        } => {
            let before = entry(account)?;
            // What `write::set_override` writes.
            let mut after = before.clone();
            match allowed {
                Some(v) => after.overrides.insert(*permission, *v),
                None => after.overrides.remove(permission),
            };
            match until.filter(|_| allowed.is_some()) {
                Some(t) => after.overrides_until.insert(*permission, t),
                None => after.overrides_until.remove(permission),
            };
            let key = permission.as_str();
            let fields = vec![key.to_owned(), format!("{key}_until")];
            Effect::UpdateMember {
                before,
                after,
                fields,
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
        TransferOwnership { account, .. } => {
            let Some(from_before) = member(me) else {
                return Err(Denial {
                    code: DenyCode::NotMember,
                    reason: "not a member".into(),
                });
            };
            let mut from_after = from_before.clone();
            from_after.role = Role::Admin;
            let to_before = member(account);
            let mut to_after = to_before
                .clone()
                .unwrap_or_else(|| Member::new(account.clone(), Role::Owner));
            to_after.role = Role::Owner;
            let mut to_fields = vec![crate::doc::schema::keys::ROLE.to_owned()];
            to_fields.extend(to_after.overrides.keys().map(|p| p.as_str().to_owned()));
            to_after.overrides.clear();
            Effect::TransferOwnership(Box::new(policy::Transfer {
                from: policy::EntryWrite {
                    before: Some(from_before),
                    after: from_after,
                    fields: vec![crate::doc::schema::keys::ROLE.to_owned()],
                },
                to: policy::EntryWrite {
                    before: to_before,
                    after: to_after,
                    fields: to_fields,
                },
            }))
        }
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
