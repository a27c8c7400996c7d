//! Joining over REST (docs/POLICY.md, "Joining"): join requests (ask, list, approve,
//! decline, withdraw) and invite links (create, list, revoke, join by link).
//!
//! Every write goes through the engine like any other change, so the policy decides
//! (`core::policy::joining`); links are the server's own: a token is 32 random bytes,
//! shown once and stored as its SHA-256 (`store::invites`). Nothing here shows a
//! conversation's content to someone who is not an active member: asking and joining by
//! link answer only the id and the caller's status until the caller is in.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use confab_core::doc::write;
use confab_core::ids::{AccountId, ConvId, DocId};
use confab_core::model::conversation::{ConvKind, Conversation, Member, MemberStatus, Role};
use confab_core::model::joining::{check_new_invite, Invite, InviteRefusal, INVITES_PER_CONV_MAX};
use confab_core::policy::joining::{may_invite, may_review, takes_requests};
use confab_core::policy::{join_role, Author, Denial};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::budget::Writer;
use super::conversations::{fresh_id, load, path_conv, readable, respond_with};
use super::error::{acked, ApiError};
use super::extract::{Caller, JsonBody, Params};
use super::views::opt_time;
use crate::clock::now_ms;
use crate::state::AppState;

fn denied(d: Denial) -> ApiError {
    ApiError::forbidden(d.code, d.reason)
}

/// The caller's standing after asking or joining: no more than the id and its own status.
#[derive(Debug, Serialize)]
pub struct JoinStatus {
    conversation: String,
    status: &'static str,
}

fn join_status(id: &ConvId, status: MemberStatus, code: StatusCode) -> Response {
    (
        code,
        Json(JoinStatus {
            conversation: id.to_string(),
            status: status.as_str(),
        }),
    )
        .into_response()
}

/// `who`'s request: the join role, nothing else.
fn request_entry(conv: &Conversation, who: &AccountId) -> Member {
    let mut m = Member::new(
        who.clone(),
        join_role(conv.kind().unwrap_or(ConvKind::Group)),
    );
    m.status = MemberStatus::Requested;
    m
}

// ---------- join requests ----------

/// `POST /v1/conversations/{id}/join-requests`: the caller asks to join. 202 with
/// `status: requested`; 200 when the caller is already active or has asked already.
pub async fn ask(
    State(app): State<AppState>,
    caller: Writer,
    Params(id): Params<String>,
) -> Result<Response, ApiError> {
    let id = path_conv(&id)?;
    let conv = load(&app, &caller, &id).await?;
    if let Some(s @ (MemberStatus::Active | MemberStatus::Requested)) =
        conv.member(&caller.account).map(|m| m.status)
    {
        return Ok(join_status(&id, s, StatusCode::OK));
    }
    let entry = request_entry(&conv, &caller.account);
    let outcome = caller
        .write(
            &app,
            DocId::conv(&caller.tenant, &id),
            Box::new(move |doc, tag| write::add_member(doc, tag, now_ms(), &entry)),
        )
        .await;
    acked(outcome, ApiError::not_found)?;
    Ok(join_status(
        &id,
        MemberStatus::Requested,
        StatusCode::ACCEPTED,
    ))
}

#[derive(Debug, Serialize)]
pub struct JoinRequestView {
    user_id: String,
    role: &'static str,
}

#[derive(Debug, Serialize)]
pub struct JoinRequestList {
    requests: Vec<JoinRequestView>,
}

/// `GET /v1/conversations/{id}/join-requests`: pending requests, for members who may
/// answer them (the right to add, under `add_members_policy`).
pub async fn list_requests(
    State(app): State<AppState>,
    caller: Caller,
    Params(id): Params<String>,
) -> Result<Json<JoinRequestList>, ApiError> {
    let id = path_conv(&id)?;
    let conv = load(&app, &caller, &id).await?;
    readable(&app, &conv, &caller).await?;
    may_review(now_ms(), &conv, &caller.author()).map_err(denied)?;
    let requests = conv
        .members
        .values()
        .filter(|m| m.status == MemberStatus::Requested)
        .map(|m| JoinRequestView {
            user_id: m.account.to_string(),
            role: m.role.as_str(),
        })
        .collect();
    Ok(Json(JoinRequestList { requests }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// The role to give; default the join role.
    role: Option<Role>,
}

/// `account`'s pending request: 404 without an entry, 409 `not_requested` with one in
/// another status.
fn pending<'a>(conv: &'a Conversation, account: &AccountId) -> Result<&'a Member, ApiError> {
    match conv.member(account) {
        Some(m) if m.status == MemberStatus::Requested => Ok(m),
        Some(m) => Err(ApiError::conflict(
            "not_requested",
            format!(
                "{account} is {} in {}, with no pending request",
                m.status.as_str(),
                conv.id
            ),
        )),
        None => Err(ApiError::not_found(format!(
            "{account} has no pending request to join {}",
            conv.id
        ))),
    }
}

/// `POST /v1/conversations/{id}/join-requests/{account}/approve`: adds the requester.
pub async fn approve(
    State(app): State<AppState>,
    caller: Writer,
    Params((id, account)): Params<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    // The body is optional: none (or `{}`) keeps the requested role.
    let body: ApproveRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ApproveRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| super::extract::json_error(e, &body))?
    };
    let id = path_conv(&id)?;
    let account = AccountId::new(account)?;
    let conv = load(&app, &caller, &id).await?;
    readable(&app, &conv, &caller).await?;
    let request = pending(&conv, &account)?;
    let role = body.role.unwrap_or(request.role);
    let now = now_ms();
    let mut member = Member::new(account, role);
    member.joined_at = Some(now);
    member.invited_by = Some(caller.account.clone());
    let outcome = caller
        .write(
            &app,
            DocId::conv(&caller.tenant, &id),
            Box::new(move |doc, tag| write::add_member(doc, tag, now, &member)),
        )
        .await;
    acked(outcome, ApiError::not_found)?;
    respond_with(&app, &caller, &id, StatusCode::OK).await
}

/// `POST /v1/conversations/{id}/join-requests/{account}/decline`: the request becomes
/// `removed`; the account cannot ask again by itself.
pub async fn decline(
    State(app): State<AppState>,
    caller: Writer,
    Params((id, account)): Params<(String, String)>,
) -> Result<Response, ApiError> {
    let id = path_conv(&id)?;
    let account = AccountId::new(account)?;
    let conv = load(&app, &caller, &id).await?;
    readable(&app, &conv, &caller).await?;
    pending(&conv, &account)?;
    let now = now_ms();
    let outcome = caller
        .write(
            &app,
            DocId::conv(&caller.tenant, &id),
            Box::new(move |doc, tag| {
                write::set_member_status(doc, tag, now, &account, MemberStatus::Removed)
            }),
        )
        .await;
    acked(outcome, ApiError::not_found)?;
    respond_with(&app, &caller, &id, StatusCode::OK).await
}

/// `DELETE /v1/conversations/{id}/join-requests/{account}`: the caller withdraws its own
/// request (status `left`; it may ask again).
pub async fn withdraw(
    State(app): State<AppState>,
    caller: Writer,
    Params((id, account)): Params<(String, String)>,
) -> Result<Response, ApiError> {
    let id = path_conv(&id)?;
    let account = AccountId::new(account)?;
    if account != caller.account {
        return Err(ApiError::forbidden(
            confab_core::policy::DenyCode::NotOwnKey,
            "only the requester withdraws its request; admins decline",
        ));
    }
    let conv = load(&app, &caller, &id).await?;
    pending(&conv, &account)?;
    let now = now_ms();
    let outcome = caller
        .write(
            &app,
            DocId::conv(&caller.tenant, &id),
            Box::new(move |doc, tag| {
                write::set_member_status(doc, tag, now, &account, MemberStatus::Left)
            }),
        )
        .await;
    acked(outcome, ApiError::not_found)?;
    Ok(join_status(&id, MemberStatus::Left, StatusCode::OK))
}

// ---------- invite links ----------

/// An invite link as its conversation's admins see it (never the token).
#[derive(Debug, Serialize)]
pub struct InviteView {
    id: String,
    created_by: String,
    created_at: Option<String>,
    expires_at: Option<String>,
    max_uses: Option<u32>,
    uses: u32,
    revoked_at: Option<String>,
    /// Neither revoked, expired nor used up.
    live: bool,
}

impl InviteView {
    fn of(i: &Invite, now: i64) -> Self {
        InviteView {
            id: i.id.clone(),
            created_by: i.created_by.to_string(),
            created_at: opt_time(Some(i.created_at)),
            expires_at: opt_time(Some(i.expires_at)),
            max_uses: i.max_uses,
            uses: i.uses,
            revoked_at: opt_time(i.revoked_at),
            live: i.is_live(now),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateInvite {
    /// Seconds until the link expires: 1 ..= 2,592,000 (30 days).
    expires_in_s: i64,
    max_uses: Option<u32>,
}

/// The link just made: the token is shown this once.
#[derive(Debug, Serialize)]
pub struct CreatedInvite {
    #[serde(flatten)]
    invite: InviteView,
    token: String,
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// `POST /v1/conversations/{id}/invites`: a new link (`link_join` only, by a member who may
/// add). 201 with the token.
pub async fn create_invite(
    State(app): State<AppState>,
    caller: Writer,
    Params(id): Params<String>,
    JsonBody(req): JsonBody<CreateInvite>,
) -> Result<Response, ApiError> {
    let id = path_conv(&id)?;
    let conv = load(&app, &caller, &id).await?;
    readable(&app, &conv, &caller).await?;
    may_invite(now_ms(), &conv, &caller.author()).map_err(denied)?;
    let now = now_ms();
    let expires_at = check_new_invite(now, req.expires_in_s.saturating_mul(1000), req.max_uses)?;
    let store = app.engine.store();
    let n = store.live_invites(&caller.tenant, &id, now).await?;
    if n >= INVITES_PER_CONV_MAX as u64 {
        return Err(ApiError::conflict(
            "too_many_invites",
            format!("{id} has {n} live links; revoke one first"),
        ));
    }
    let mut bytes = [0u8; confab_core::model::joining::INVITE_TOKEN_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|e| ApiError::internal(format!("no random source: {e}")))?;
    let token = hex::encode(bytes);
    let invite = Invite {
        id: fresh_id("inv-"),
        created_by: caller.account.clone(),
        created_at: now,
        expires_at,
        max_uses: req.max_uses,
        uses: 0,
        revoked_at: None,
    };
    store
        .create_invite(&caller.tenant, &id, &token_hash(&token), &invite)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedInvite {
            invite: InviteView::of(&invite, now),
            token,
        }),
    )
        .into_response())
}

#[derive(Debug, Serialize)]
pub struct InviteList {
    invites: Vec<InviteView>,
}

/// `GET /v1/conversations/{id}/invites`: the newest 100 links, for members who may add.
pub async fn list_invites(
    State(app): State<AppState>,
    caller: Caller,
    Params(id): Params<String>,
) -> Result<Json<InviteList>, ApiError> {
    let id = path_conv(&id)?;
    let conv = load(&app, &caller, &id).await?;
    readable(&app, &conv, &caller).await?;
    may_review(now_ms(), &conv, &caller.author()).map_err(denied)?;
    let now = now_ms();
    let list = app
        .engine
        .store()
        .invites(&caller.tenant, &id, INVITES_PER_CONV_MAX)
        .await?;
    Ok(Json(InviteList {
        invites: list.iter().map(|i| InviteView::of(i, now)).collect(),
    }))
}

/// `DELETE /v1/conversations/{id}/invites/{invite}`: revokes a link (members who may add,
/// or its creator). Revoking a revoked link answers 204 again.
pub async fn revoke_invite(
    State(app): State<AppState>,
    caller: Writer,
    Params((id, invite)): Params<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = path_conv(&id)?;
    let conv = load(&app, &caller, &id).await?;
    readable(&app, &conv, &caller).await?;
    let store = app.engine.store();
    let ours = store
        .invites(&caller.tenant, &id, INVITES_PER_CONV_MAX)
        .await?
        .iter()
        .any(|i| i.id == invite && i.created_by == caller.account);
    if !ours {
        may_review(now_ms(), &conv, &caller.author()).map_err(denied)?;
    }
    match store
        .revoke_invite(&caller.tenant, &id, &invite, now_ms())
        .await?
    {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            InviteRefusal::NotFound.code(),
            format!("{id} has no link {invite}"),
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinByLink {
    token: String,
}

fn refused(r: InviteRefusal) -> ApiError {
    let status = match r {
        InviteRefusal::NotFound => StatusCode::NOT_FOUND,
        _ => StatusCode::GONE,
    };
    ApiError::new(status, r.code(), r.to_string())
}

/// `POST /v1/invites/join`: joins (or, where approval is required, asks to join) the
/// link's conversation. The add is written as the link's creator, whose rights are checked
/// again now; a refused link changes nothing (the use is given back if the write fails).
pub async fn join_by_link(
    State(app): State<AppState>,
    caller: Writer,
    JsonBody(req): JsonBody<JoinByLink>,
) -> Result<Response, ApiError> {
    let store = app.engine.store().clone();
    // Anything that is not a token of ours is simply not found: no hint about the format.
    let found = store
        .invite_by_token(&caller.tenant, &token_hash(req.token.trim()))
        .await?;
    let Some((id, invite)) = found else {
        return Err(refused(InviteRefusal::NotFound));
    };
    let now = now_ms();
    let conv = load(&app, &caller, &id).await?;
    // Someone already in (or asking) is answered as is, whatever became of the link.
    if let Some(m) = conv.active_member(&caller.account) {
        return Ok(join_status(&id, m.status, StatusCode::OK));
    }
    if conv
        .member(&caller.account)
        .is_some_and(|m| m.status == MemberStatus::Requested)
    {
        return Ok(join_status(&id, MemberStatus::Requested, StatusCode::OK));
    }
    invite.check_use(now).map_err(refused)?;
    let creator = Author::user(invite.created_by.clone());
    may_invite(now_ms(), &conv, &creator).map_err(denied)?;
    if !store.use_invite(&caller.tenant, &invite.id, now).await? {
        // Used up or revoked between the read and the use.
        return Err(refused(InviteRefusal::UsedUp));
    }
    let doc = DocId::conv(&caller.tenant, &id);
    let (outcome, status) = if takes_requests(&conv) {
        let entry = request_entry(&conv, &caller.account);
        let outcome = caller
            .write(
                &app,
                doc,
                Box::new(move |d, tag| write::add_member(d, tag, now, &entry)),
            )
            .await;
        (outcome, MemberStatus::Requested)
    } else {
        let mut member = Member::new(
            caller.account.clone(),
            join_role(conv.kind().unwrap_or(ConvKind::Group)),
        );
        member.joined_at = Some(now);
        member.invited_by = Some(invite.created_by.clone());
        let outcome = app
            .engine
            .write(
                doc,
                creator,
                Box::new(move |d, tag| write::add_member(d, tag, now, &member)),
            )
            .await;
        (caller.charged(&app, outcome), MemberStatus::Active)
    };
    if let Err(e) = acked(outcome, ApiError::not_found) {
        store.unuse_invite(&caller.tenant, &invite.id).await?;
        return Err(e);
    }
    if status == MemberStatus::Active {
        return respond_with(&app, &caller, &id, StatusCode::OK).await;
    }
    Ok(join_status(&id, status, StatusCode::ACCEPTED))
}
