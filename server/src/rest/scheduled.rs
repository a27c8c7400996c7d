//! Scheduled messages of the calling account (docs/FEATURES.md, "Scheduled messages"):
//! schedule, list, edit, cancel. They live in the caller's private document, which only
//! the caller reads; each write is a `doc::schedule` intent on it through the engine.
//! Inputs are checked first against the committed document, so bad input gets its code
//! (`schedule_in_past`, `schedule_too_far`, `schedule_not_found`, ...) and writes nothing.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use confab_core::doc::read::Scheduled;
use confab_core::doc::{read, schedule};
use confab_core::ids::{ConvId, DocId, MessageId};
use confab_core::model::schedule::{check_at, check_body, NewSchedule, ScheduleError};
use confab_core::model::time::{format_rfc3339, parse_rfc3339};
use serde::{Deserialize, Serialize};

use super::budget::Writer;
use super::conversations::{fresh_id, load, readable};
use super::error::{acked, ApiError};
use super::extract::{Caller, JsonBody, Params};
use crate::clock::now_ms;
use crate::state::AppState;

impl From<ScheduleError> for ApiError {
    fn from(e: ScheduleError) -> Self {
        let (status, field) = match &e {
            ScheduleError::NotFound(_) => (StatusCode::NOT_FOUND, None),
            ScheduleError::InPast { .. } | ScheduleError::TooFar { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, Some("at"))
            }
            ScheduleError::Refused(_) => (StatusCode::UNPROCESSABLE_ENTITY, Some("at")),
            ScheduleError::Body => (StatusCode::UNPROCESSABLE_ENTITY, Some("body")),
            ScheduleError::TooMany => (StatusCode::UNPROCESSABLE_ENTITY, None),
        };
        let err = ApiError::new(status, e.code(), e.to_string());
        match field {
            Some(f) => err.with_field(f),
            None => err,
        }
    }
}

/// One scheduled message as REST shows it.
#[derive(Debug, Serialize)]
pub struct ScheduledView {
    id: String,
    conv: String,
    body: String,
    /// RFC 3339, as every REST time.
    at: String,
    /// Why the server did not post it at its time (a reject code); absent while pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    refused: Option<String>,
}

impl From<Scheduled> for ScheduledView {
    fn from(s: Scheduled) -> Self {
        ScheduledView {
            id: s.id.to_string(),
            conv: s.conv.to_string(),
            body: s.body,
            at: format_rfc3339(s.at),
            refused: s.refused,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ScheduledList {
    scheduled: Vec<ScheduledView>,
}

fn private_of(caller: &Caller) -> DocId {
    DocId::private(&caller.tenant, &caller.account)
}

async fn committed(app: &AppState, caller: &Caller) -> Result<read::PrivateData, ApiError> {
    let doc = app.engine.committed(&private_of(caller)).await?;
    Ok(read::read_private(&doc))
}

async fn entry(app: &AppState, caller: &Caller, id: &str) -> Result<Scheduled, ApiError> {
    let missing = || ApiError::from(ScheduleError::NotFound(id.to_owned()));
    let id = MessageId::new(id).map_err(|_| missing())?;
    committed(app, caller)
        .await?
        .scheduled
        .remove(&id)
        .ok_or_else(missing)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    conv: Option<String>,
}

/// `GET /v1/scheduled?conv=`: the caller's scheduled messages (pending and refused), by
/// time.
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let conv = match query.conv {
        Some(c) => Some(ConvId::new(c.as_str())?),
        None => None,
    };
    let mut scheduled: Vec<Scheduled> = committed(&app, &caller)
        .await?
        .scheduled
        .into_values()
        .filter(|s| conv.as_ref().is_none_or(|c| *c == s.conv))
        .collect();
    scheduled.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
    let scheduled = scheduled.into_iter().map(ScheduledView::from).collect();
    Ok(Json(ScheduledList { scheduled }).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    id: Option<String>,
    conv: String,
    body: String,
    at: String,
}

/// `POST /v1/scheduled`: 201 with the scheduled message. The caller must be able to read
/// the conversation now; whether it may send is decided at `at`.
pub async fn create(
    State(app): State<AppState>,
    caller: Writer,
    JsonBody(req): JsonBody<ScheduleRequest>,
) -> Result<Response, ApiError> {
    let now = now_ms();
    let conv = ConvId::new(req.conv.as_str())?;
    let message = NewSchedule {
        conv: conv.clone(),
        body: req.body,
        at: parse_rfc3339("at", &req.at)?,
    };
    message.validate(now)?;
    let id = MessageId::new(req.id.unwrap_or_else(|| fresh_id("m-")))?;
    let found = load(&app, &caller, &conv).await?;
    readable(&app, &found, &caller).await?;
    let view = ScheduledView {
        id: id.to_string(),
        conv: conv.to_string(),
        body: message.body.clone(),
        at: format_rfc3339(message.at),
        refused: None,
    };
    let outcome = caller
        .write(
            &app,
            private_of(&caller),
            Box::new(move |d, tag| schedule::schedule(d, tag, now, &id, &message)),
        )
        .await;
    acked(outcome, |reason| {
        ApiError::conflict("already_exists", reason)
    })?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditRequest {
    body: Option<String>,
    at: Option<String>,
}

/// `PATCH /v1/scheduled/{id}`: a new body and/or time (a new time reschedules a refused
/// one).
pub async fn edit(
    State(app): State<AppState>,
    caller: Writer,
    Params(id): Params<String>,
    JsonBody(req): JsonBody<EditRequest>,
) -> Result<Response, ApiError> {
    let now = now_ms();
    if let Some(body) = &req.body {
        check_body(body)?;
    }
    let at = match &req.at {
        Some(text) => Some(parse_rfc3339("at", text)?),
        None => None,
    };
    if let Some(at) = at {
        check_at(at, now)?;
    }
    let current = entry(&app, &caller, &id).await?;
    if current.refused.is_some() && at.is_none() {
        return Err(ScheduleError::Refused(id).into());
    }
    let target = current.id.clone();
    let body = req.body.clone();
    let outcome = caller
        .write(
            &app,
            private_of(&caller),
            Box::new(move |d, tag| schedule::edit(d, tag, now, &target, body.as_deref(), at)),
        )
        .await;
    match outcome {
        // Nothing to change is fine: the answer is the entry as it stands.
        crate::engine::SubmitOutcome::Reject {
            code: confab_core::validate::RejectCode::NotApplicable,
            ..
        } if req.body.as_ref().is_none_or(|b| *b == current.body)
            && at.is_none_or(|a| a == current.at) => {}
        outcome => {
            acked(outcome, |reason| {
                ApiError::conflict("schedule_changed", reason)
            })?;
        }
    }
    let view = entry(&app, &caller, current.id.as_str()).await?;
    Ok(Json(ScheduledView::from(view)).into_response())
}

/// `DELETE /v1/scheduled/{id}`: cancels a pending message, or dismisses a refused one. 204.
pub async fn cancel(
    State(app): State<AppState>,
    caller: Writer,
    Params(id): Params<String>,
) -> Result<Response, ApiError> {
    let now = now_ms();
    let current = entry(&app, &caller, &id).await?;
    let target = current.id;
    let outcome = caller
        .write(
            &app,
            private_of(&caller),
            Box::new(move |d, tag| schedule::cancel(d, tag, now, &target)),
        )
        .await;
    acked(outcome, |reason| {
        ApiError::from(ScheduleError::NotFound(reason))
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
