//! Giving a member a role or a permission override from an integration, for good or for a
//! while ("moderator until Friday": docs/POLICY.md, "Temporary roles and overrides").

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use confab_core::client::{apply, Intent};
use confab_core::doc::write;
use confab_core::ids::{AccountId, DocId};
use confab_core::model::conversation::{Permission, Role};
use confab_core::model::time::parse_rfc3339;
use serde::Deserialize;

use super::budget::Writer;
use super::conversations::{load, path_conv, readable, respond_with};
use super::error::{acked, ApiError};
use super::extract::{JsonBody, Params};
use crate::clock::now_ms;
use crate::state::AppState;

/// `PATCH /v1/conversations/{id}/members/{account}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetRoleRequest {
    role: Role,
    /// RFC 3339: the role lapses then, and the member goes back to the role it had. Absent
    /// or `null`: for good.
    #[serde(default)]
    expires_at: Option<String>,
}

/// `PATCH /v1/conversations/{id}/members/{account}`: gives `account` `role`, for good or
/// until `expires_at`, through the same intent and policy as the sync protocol (admins
/// give roles below their own: `no_permission`, `role_too_high`, `owner_protected`).
pub async fn set_role(
    State(app): State<AppState>,
    caller: Writer,
    Params((id, account)): Params<(String, String)>,
    JsonBody(req): JsonBody<SetRoleRequest>,
) -> Result<Response, ApiError> {
    let id = path_conv(&id)?;
    let account = AccountId::new(account)?;
    let until = match &req.expires_at {
        Some(text) => Some(parse_rfc3339("expires_at", text)?),
        None => None,
    };
    let conv = load(&app, &caller, &id).await?;
    readable(&app, &conv, &caller).await?;
    let Some(current) = conv.member(&account) else {
        return Err(ApiError::not_found(format!(
            "{account} is not a member of {id}"
        )));
    };
    let now = now_ms();
    // The role it has already (with the same expiry): answered as it is.
    if current.granted(req.role, until, now) == *current {
        return respond_with(&app, &caller, &id, StatusCode::OK).await;
    }
    let intent = Intent::SetRole {
        conv: id.clone(),
        account: account.clone(),
        role: req.role,
        until,
    };
    // Checked first: a refusal answers with its code before anything is written.
    if let Err(denial) = apply::check(&intent, &caller.account, Some(&conv), None, now, None, None)
    {
        return Err(ApiError::forbidden(denial.code, denial.reason));
    }
    let role = req.role;
    let outcome = caller
        .write(
            &app,
            DocId::conv(&caller.tenant, &id),
            Box::new(move |doc, tag| write::set_role(doc, tag, now, &account, role, until)),
        )
        .await;
    acked(outcome, ApiError::not_found)?;
    respond_with(&app, &caller, &id, StatusCode::OK).await
}

/// `PUT /v1/conversations/{id}/members/{account}/permissions/{permission}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPermissionRequest {
    /// The override: `true` allows, `false` denies, `null` removes it (the role default
    /// applies again).
    allowed: Option<bool>,
    /// RFC 3339: the override lapses then. Absent or `null`: for good.
    #[serde(default)]
    expires_at: Option<String>,
}

/// `PUT /v1/conversations/{id}/members/{account}/permissions/{permission}`: sets or removes
/// one override of `account`, for good or until `expires_at`, through the same intent and
/// policy as the sync protocol (only a member ranked above the target: `role_too_high`;
/// `owner_protected`; an expiry without an override: `invalid_value`).
pub async fn set_permission(
    State(app): State<AppState>,
    caller: Writer,
    Params((id, account, permission)): Params<(String, String, String)>,
    JsonBody(req): JsonBody<SetPermissionRequest>,
) -> Result<Response, ApiError> {
    let id = path_conv(&id)?;
    let account = AccountId::new(account)?;
    let permission = Permission::parse(&permission)?;
    let until = match &req.expires_at {
        Some(text) => Some(parse_rfc3339("expires_at", text)?),
        None => None,
    };
    if until.is_some() && req.allowed.is_none() {
        return Err(ApiError::invalid(
            "invalid_value",
            "expires_at",
            "an expiry needs an override (`allowed` true or false)",
        ));
    }
    let conv = load(&app, &caller, &id).await?;
    readable(&app, &conv, &caller).await?;
    let Some(current) = conv.member(&account) else {
        return Err(ApiError::not_found(format!(
            "{account} is not a member of {id}"
        )));
    };
    let now = now_ms();
    // The override it has already (with the same expiry), or none to remove: answered as
    // it is.
    let current = current.at(now);
    if current.overrides.get(&permission).copied() == req.allowed
        && current.overrides_until.get(&permission).copied() == until
    {
        return respond_with(&app, &caller, &id, StatusCode::OK).await;
    }
    let intent = Intent::SetOverride {
        conv: id.clone(),
        account: account.clone(),
        permission,
        allowed: req.allowed,
        until,
    };
    // Checked first: a refusal answers with its code before anything is written.
    if let Err(denial) = apply::check(&intent, &caller.account, Some(&conv), None, now, None, None)
    {
        return Err(ApiError::forbidden(denial.code, denial.reason));
    }
    let allowed = req.allowed;
    let outcome = caller
        .write(
            &app,
            DocId::conv(&caller.tenant, &id),
            Box::new(move |doc, tag| {
                write::set_override(doc, tag, now, &account, permission, allowed, until)
            }),
        )
        .await;
    acked(outcome, ApiError::not_found)?;
    respond_with(&app, &caller, &id, StatusCode::OK).await
}
