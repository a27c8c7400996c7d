//! Managing a conversation from an integration: change its settings (lock it), delete it,
//! transfer its ownership, hide a direct conversation from one's list, and ask the policy
//! what an account may do there.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use confab_core::client::apply;
use confab_core::client::Intent;
use confab_core::doc::write;
use confab_core::ids::{AccountId, DocId, LeadId, MessageId};
use confab_core::model::conversation::{Lifecycle, Role};
use confab_core::model::message::{Message, MessageKind, NewMessage};
use confab_core::model::support::LeadOutcome;
use confab_core::policy::DenyCode;
use serde::{Deserialize, Serialize};

use super::budget::Writer;
use super::conversations::{
    load, parent_standing, path_conv, readable, respond_with, SettingsPatch,
};
use super::error::{acked, ApiError};
use super::extract::{Caller, JsonBody, Params};
use crate::clock::now_ms;
use crate::engine::ReadRefusal;
use crate::state::AppState;

/// `PATCH /v1/conversations/{id}/settings`: the named settings in one change (admins with
/// `can_change_info`, as over the sync protocol). `{"locked": true}` locks the conversation.
pub async fn patch_settings(
    State(app): State<AppState>,
    caller: Writer,
    Params(id): Params<String>,
    JsonBody(patch): JsonBody<SettingsPatch>,
) -> Result<Response, ApiError> {
    let id = path_conv(&id)?;
    let conv = load(&app, &caller, &id).await?;
    readable(&app, &conv, &caller).await?;
    let values = patch.values();
    if values.is_empty() {
        return Err(ApiError::invalid(
            "invalid_value",
            "settings",
            "name at least one setting to change",
        ));
    }
    let now = now_ms();
    let outcome = caller
        .write(
            &app,
            DocId::conv(&caller.tenant, &id),
            Box::new(move |doc, tag| write::set_settings(doc, tag, now, &values)),
        )
        .await;
    acked(outcome, ApiError::not_found)?;
    respond_with(&app, &caller, &id, StatusCode::OK).await
}

/// `POST /v1/conversations/{id}/lead`: a support thread's lead.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeadRequest {
    /// The related lead (`relatedLeadId`).
    lead: Option<LeadId>,
    /// Closes the thread with this outcome.
    outcome: Option<LeadOutcome>,
    /// Why, with an outcome.
    reason: Option<String>,
}

/// `POST /v1/conversations/{id}/lead`: names the related lead and/or closes the thread with
/// its outcome and reason (moderators and above, and only in support threads, as over the
/// sync protocol: the same acceptor decides). Both in one request are two changes, the lead
/// first.
pub async fn lead(
    State(app): State<AppState>,
    caller: Writer,
    Params(id): Params<String>,
    JsonBody(req): JsonBody<LeadRequest>,
) -> Result<Response, ApiError> {
    let id = path_conv(&id)?;
    let conv = load(&app, &caller, &id).await?;
    readable(&app, &conv, &caller).await?;
    if req.lead.is_none() && req.outcome.is_none() {
        return Err(ApiError::invalid(
            "invalid_value",
            "lead",
            "name a lead, an outcome, or both",
        ));
    }
    if req.reason.is_some() && req.outcome.is_none() {
        return Err(ApiError::invalid(
            "invalid_value",
            "reason",
            "a reason goes with an outcome",
        ));
    }
    let doc = DocId::conv(&caller.tenant, &id);
    let now = now_ms();
    if let Some(lead) = req.lead {
        let outcome = caller
            .write(
                &app,
                doc.clone(),
                Box::new(move |d, tag| write::set_lead(d, tag, now, &lead)),
            )
            .await;
        acked(outcome, ApiError::not_found)?;
    }
    if let Some(outcome) = req.outcome {
        let (me, reason) = (caller.account.clone(), req.reason);
        let written = caller
            .write(
                &app,
                doc,
                Box::new(move |d, tag| {
                    write::close_lead(d, tag, now, &me, outcome, reason.as_deref())
                }),
            )
            .await;
        acked(written, ApiError::not_found)?;
    }
    respond_with(&app, &caller, &id, StatusCode::OK).await
}

/// `DELETE /v1/conversations/{id}`: the owner's soft delete. The
/// conversation takes no more changes and leaves every list; its history stays readable to
/// its members. Deleting a deleted conversation answers it as it is.
pub async fn delete(
    State(app): State<AppState>,
    caller: Writer,
    Params(id): Params<String>,
) -> Result<Response, ApiError> {
    let id = path_conv(&id)?;
    let conv = load(&app, &caller, &id).await?;
    readable(&app, &conv, &caller).await?;
    if conv.lifecycle.state == Lifecycle::Deleted {
        return respond_with(&app, &caller, &id, StatusCode::OK).await;
    }
    let now = now_ms();
    let me = caller.account.clone();
    let outcome = caller
        .write(
            &app,
            DocId::conv(&caller.tenant, &id),
            Box::new(move |doc, tag| write::set_lifecycle(doc, tag, now, Lifecycle::Deleted, &me)),
        )
        .await;
    acked(outcome, ApiError::not_found)?;
    respond_with(&app, &caller, &id, StatusCode::OK).await
}

/// `POST /v1/conversations/{id}/owner` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// The member who becomes the owner.
    account: AccountId,
}

/// `POST /v1/conversations/{id}/owner`: the caller, the owner, makes `account` (an active
/// member) the owner and becomes an admin, in one change (the same policy as over the
/// sync protocol: `owner_only`, `target_not_member`, `target_inactive`). Naming the owner
/// already in place answers the conversation as it is.
pub async fn transfer(
    State(app): State<AppState>,
    caller: Writer,
    Params(id): Params<String>,
    JsonBody(req): JsonBody<TransferRequest>,
) -> Result<Response, ApiError> {
    let id = path_conv(&id)?;
    let conv = load(&app, &caller, &id).await?;
    readable(&app, &conv, &caller).await?;
    if conv
        .active_member(&req.account)
        .is_some_and(|m| m.role == Role::Owner)
    {
        return respond_with(&app, &caller, &id, StatusCode::OK).await;
    }
    let now = now_ms();
    let intent = Intent::TransferOwnership {
        conv: id.clone(),
        account: req.account.clone(),
    };
    // Checked first so an account without an entry gets its code, not "nothing to write".
    if let Err(denial) = apply::check(&intent, &caller.account, Some(&conv), None, now, None, None)
    {
        return Err(ApiError::forbidden(denial.code, denial.reason));
    }
    let (me, to) = (caller.account.clone(), req.account);
    let outcome = caller
        .write(
            &app,
            DocId::conv(&caller.tenant, &id),
            Box::new(move |doc, tag| write::transfer_ownership(doc, tag, now, &me, &to)),
        )
        .await;
    acked(outcome, ApiError::not_found)?;
    respond_with(&app, &caller, &id, StatusCode::OK).await
}

/// `POST /v1/conversations/{id}/hide` hides a direct conversation from the caller's list
/// (`GET /v1/conversations`, the clients' lists) until a message created after now; `DELETE`
/// shows it again. 204. Anything but a direct conversation is `direct_only` (403).
pub async fn hide(
    State(app): State<AppState>,
    caller: Writer,
    Params(id): Params<String>,
) -> Result<Response, ApiError> {
    set_hidden(app, caller, id, true).await
}

/// `DELETE /v1/conversations/{id}/hide`.
pub async fn unhide(
    State(app): State<AppState>,
    caller: Writer,
    Params(id): Params<String>,
) -> Result<Response, ApiError> {
    set_hidden(app, caller, id, false).await
}

async fn set_hidden(
    app: AppState,
    caller: Writer,
    id: String,
    on: bool,
) -> Result<Response, ApiError> {
    let id = path_conv(&id)?;
    let conv = load(&app, &caller, &id).await?;
    readable(&app, &conv, &caller).await?;
    let intent = Intent::Hide {
        conv: id.clone(),
        on,
    };
    let now = now_ms();
    if let Err(denial) = apply::check(&intent, &caller.account, Some(&conv), None, now, None, None)
    {
        return Err(ApiError::forbidden(denial.code, denial.reason));
    }
    let outcome = caller
        .write(
            &app,
            DocId::private(&caller.tenant, &caller.account),
            Box::new(move |doc, tag| write::set_hidden(doc, tag, now, &id, on.then_some(now))),
        )
        .await;
    match outcome {
        // Showing a conversation that is not hidden changes nothing.
        crate::engine::SubmitOutcome::Reject {
            code: confab_core::validate::RejectCode::NotApplicable,
            ..
        } if !on => {}
        outcome => {
            acked(outcome, ApiError::not_found)?;
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// What `GET …/can` asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CanAction {
    Read,
    Send,
    SendMedia,
    React,
    Pin,
    AddMember,
    RemoveMember,
    Ban,
    SetRole,
    ChangeInfo,
    ChangeSettings,
    Archive,
    Close,
    Reopen,
    Delete,
    Leave,
    Block,
    TransferOwnership,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanQuery {
    account: AccountId,
    action: CanAction,
    /// The member an action names (`add_member`, `remove_member`, `ban`, `set_role`,
    /// `transfer_ownership`).
    target: Option<AccountId>,
    /// The role to add with or to give (`add_member`: default `member`; `set_role`).
    role: Option<Role>,
}

#[derive(Debug, Serialize)]
pub struct CanAnswer {
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// `GET /v1/conversations/{id}/can?account=…&action=…[&target=…&role=…]`, service tokens
/// only: the policy's verdict on the conversation's current server state, the same
/// `confab_core::policy::check` every change goes through. What depends on more than the
/// conversation is not asked here: slow mode's clock, a particular message (edit, delete,
/// answer), bucket placement.
pub async fn can(
    State(app): State<AppState>,
    caller: Caller,
    Params(id): Params<String>,
    query: Result<Query<CanQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<CanAnswer>, ApiError> {
    if !caller.service {
        return Err(ApiError::forbidden(
            DenyCode::ServiceOnly,
            "the permission question is for service tokens",
        ));
    }
    let Query(q) = query.map_err(|e| ApiError::invalid("invalid_value", "query", e.body_text()))?;
    let id = path_conv(&id)?;
    let conv = load(&app, &caller, &id).await?;
    let target = || {
        q.target
            .clone()
            .ok_or_else(|| ApiError::invalid("missing", "target", "this action names a target"))
    };
    let now = now_ms();
    let intent = match q.action {
        CanAction::Read => {
            // The read rule every read applies (a thread's parent included).
            let reader = confab_core::policy::Author::user(q.account.clone());
            let doc = DocId::conv(&caller.tenant, &id);
            return Ok(Json(
                match app.engine.may_read(Some(&conv), &doc, &reader).await {
                    Ok(()) => CanAnswer::yes(),
                    Err(ReadRefusal::Denied(d)) => CanAnswer::no(
                        d.code().map_or("not_found", DenyCode::as_str),
                        d.to_string(),
                    ),
                    Err(ReadRefusal::Unavailable(e)) => return Err(ApiError::unavailable(e)),
                },
            ));
        }
        CanAction::Send | CanAction::SendMedia => {
            let mut m = NewMessage::text(probe_message(), q.account.clone(), "", now);
            if q.action == CanAction::SendMedia {
                m.kind = MessageKind::Image;
            }
            Intent::Send {
                conv: id,
                message: m,
            }
        }
        CanAction::React => return Ok(Json(react(&conv, &q.account, now))),
        CanAction::Pin => Intent::Pin {
            conv: id,
            message: probe_message(),
        },
        CanAction::AddMember => Intent::AddMember {
            conv: id,
            account: target()?,
            role: q.role.unwrap_or(Role::Member),
        },
        CanAction::RemoveMember | CanAction::Ban => Intent::RemoveMember {
            conv: id,
            account: target()?,
            ban: q.action == CanAction::Ban,
        },
        CanAction::SetRole => Intent::SetRole {
            conv: id,
            account: target()?,
            role: q
                .role
                .ok_or_else(|| ApiError::invalid("missing", "role", "set_role names a role"))?,
            until: None,
        },
        CanAction::ChangeInfo => Intent::SetInfo {
            conv: id,
            field: "title".into(),
            value: None,
        },
        CanAction::ChangeSettings => Intent::SetSetting {
            conv: id,
            key: "slow_mode_seconds".into(),
            value: 0.into(),
        },
        CanAction::Archive => Intent::SetLifecycle {
            conv: id,
            state: Lifecycle::Archived,
        },
        CanAction::Close => Intent::SetLifecycle {
            conv: id,
            state: Lifecycle::Closed,
        },
        CanAction::Reopen => Intent::SetLifecycle {
            conv: id,
            state: Lifecycle::Active,
        },
        CanAction::Delete => Intent::SetLifecycle {
            conv: id,
            state: Lifecycle::Deleted,
        },
        CanAction::Leave => Intent::Leave { conv: id },
        CanAction::Block => Intent::Block { conv: id, on: true },
        CanAction::TransferOwnership => Intent::TransferOwnership {
            conv: id,
            account: target()?,
        },
    };
    let parent = parent_standing(&app, &caller.tenant, &conv, &q.account).await?;
    Ok(Json(
        match apply::check(&intent, &q.account, Some(&conv), None, now, None, parent) {
            Ok(()) => CanAnswer::yes(),
            Err(d) => CanAnswer::no(d.code.as_str(), d.reason),
        },
    ))
}

/// The policy judges a reaction on a message; any live message stands in.
fn react(
    conv: &confab_core::model::conversation::Conversation,
    account: &AccountId,
    now: i64,
) -> CanAnswer {
    use confab_core::policy::{check, Author, Context, Effect};
    let message = Message {
        id: probe_message(),
        author: account.clone(),
        kind: MessageKind::Text,
        body: String::new(),
        payload: None,
        caption: None,
        attachments: None,
        mentions: None,
        reply_to: None,
        forwarded_from: None,
        created_at: now,
        edited_at: None,
        deleted_at: None,
        deleted_by: None,
        scheduled_at: None,
        status: None,
        reactions: Default::default(),
        stamp: Default::default(),
        sealed: None,
        blobs: None,
    };
    let ctx = Context {
        conv: Some(conv),
        parent: None,
        now_ms: now,
        last_post_ms: None,
        bucket: None,
        parent_standing: None,
        parent_message: None,
    };
    let effect = Effect::SetReaction {
        message: Box::new(message),
        account: account.clone(),
    };
    match check(&ctx, &Author::user(account.clone()), &effect) {
        Ok(()) => CanAnswer::yes(),
        Err(d) => CanAnswer::no(d.code.as_str(), d.reason),
    }
}

/// A message id no real message has: the policy reads only what the effect carries.
fn probe_message() -> MessageId {
    MessageId::new(PROBE_MESSAGE).unwrap_or_else(|_| unreachable!("a valid id"))
}

const PROBE_MESSAGE: &str = "m-can-probe";

impl CanAnswer {
    fn yes() -> Self {
        CanAnswer {
            allowed: true,
            code: None,
            reason: None,
        }
    }
    fn no(code: &'static str, reason: String) -> Self {
        CanAnswer {
            allowed: false,
            code: Some(code),
            reason: Some(reason),
        }
    }
}
