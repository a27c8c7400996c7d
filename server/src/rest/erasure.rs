//! Account erasure over REST (docs/OPERATIONS.md, "Account erasure"): a tenant's service
//! asks for it and follows its progress; the purge loop runs it (`crate::forget::erasure`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use confab_core::ids::{AccountId, DocId};
use confab_core::model::time::format_rfc3339;
use confab_core::policy::DenyCode;
use serde::Serialize;

use super::error::ApiError;
use super::extract::{Caller, Params};
use crate::state::AppState;
use crate::store::forget::{Erasure, ErasureStep};

/// An erasure's progress.
#[derive(Debug, Serialize)]
pub struct ErasureAnswer {
    pub account: String,
    /// `running` or `done`.
    pub state: &'static str,
    /// The step it is at (`messages`, `memberships`, `devices`, `documents`, `done`).
    pub step: ErasureStep,
    pub requested_by: String,
    pub requested_at: String,
    pub updated_at: String,
    pub done_at: Option<String>,
    /// Messages it wrote that are now tombstones.
    pub messages_redacted: i64,
    /// Messages the policy kept (in conversations their owners deleted).
    pub messages_skipped: i64,
    pub conversations_left: i64,
    /// Conversations it owns alone: it stays their owner until the ownership moves.
    pub conversations_kept_as_owner: i64,
    pub devices_removed: i64,
}

impl From<&Erasure> for ErasureAnswer {
    fn from(e: &Erasure) -> Self {
        ErasureAnswer {
            account: e.account.to_string(),
            state: if e.done_at.is_some() {
                "done"
            } else {
                "running"
            },
            step: e.step,
            requested_by: e.requested_by.to_string(),
            requested_at: format_rfc3339(e.requested_at),
            updated_at: format_rfc3339(e.updated_at),
            done_at: e.done_at.map(format_rfc3339),
            messages_redacted: e.messages,
            messages_skipped: e.skipped,
            conversations_left: e.left_convs,
            conversations_kept_as_owner: e.kept_owner,
            devices_removed: e.devices,
        }
    }
}

fn service_only(caller: &Caller) -> Result<(), ApiError> {
    if caller.service {
        return Ok(());
    }
    Err(ApiError::forbidden(
        DenyCode::ServiceOnly,
        "an account is erased by the tenant's services (a service account)",
    ))
}

/// Has the tenant ever seen `account`: a membership, a device, or its own documents.
async fn known(app: &AppState, caller: &Caller, account: &AccountId) -> Result<bool, ApiError> {
    let store = app.engine.store();
    if !store
        .memberships_of(&caller.tenant, account)
        .await?
        .is_empty()
        || !store
            .devices_of(&caller.tenant, std::slice::from_ref(account))
            .await?
            .is_empty()
    {
        return Ok(true);
    }
    for doc in [
        DocId::profile(&caller.tenant, account),
        DocId::private(&caller.tenant, account),
    ] {
        if store.load_doc(&doc).await?.last_seq > 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `POST /v1/accounts/{account}/erasure`: starts the erasure (202), or answers the one
/// asked for before (202 while it runs, 200 once done).
pub async fn start(
    State(app): State<AppState>,
    caller: Caller,
    Params(account): Params<String>,
) -> Result<(StatusCode, Json<ErasureAnswer>), ApiError> {
    service_only(&caller)?;
    let account = AccountId::new(account)?;
    let store = app.engine.store();
    let existing = store.erasure(&caller.tenant, &account).await?;
    if existing.is_none() && !known(&app, &caller, &account).await? {
        return Err(ApiError::not_found(format!(
            "{account} is not an account of {}",
            caller.tenant
        )));
    }
    let now = crate::clock::now_ms();
    let erasure = match existing {
        Some(e) => e,
        None => {
            store
                .request_erasure(&caller.tenant, &account, &caller.account, now)
                .await?
        }
    };
    if erasure.done_at.is_some() {
        return Ok((StatusCode::OK, Json((&erasure).into())));
    }
    // Started at once rather than at the next pass; a node that dies leaves it to the pass.
    let engine = app.engine.clone();
    tokio::spawn(async move {
        if let Err(error) = crate::forget::erasure::resume_one(&engine, now).await {
            tracing::warn!(%error, "erasure interrupted; the next pass resumes it");
        }
    });
    Ok((StatusCode::ACCEPTED, Json((&erasure).into())))
}

/// `GET /v1/accounts/{account}/erasure`: the progress, or 404 if none was asked for.
pub async fn progress(
    State(app): State<AppState>,
    caller: Caller,
    Params(account): Params<String>,
) -> Result<Json<ErasureAnswer>, ApiError> {
    service_only(&caller)?;
    let account = AccountId::new(account)?;
    match app.engine.store().erasure(&caller.tenant, &account).await? {
        Some(e) => Ok(Json((&e).into())),
        None => Err(ApiError::not_found(format!(
            "no erasure of {account} was asked for"
        ))),
    }
}
