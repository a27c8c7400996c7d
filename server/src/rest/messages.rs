//! Messages: post (text, system, proposal, proposal response), answer a proposal, page.
//! Edits, deletion, reactions and pins of a posted message are in `edits`.

use std::collections::{BTreeMap, HashMap};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use confab_core::automerge::{Automerge, Change};
use confab_core::doc::{read, write};
use confab_core::ids::{Bucket, ConvId, DocId, MessageId, TenantId};
use confab_core::model::attachment::{attachments_to_json, Attachment};
use confab_core::model::conversation::ConvKind;
use confab_core::model::message::{ForwardedFrom, Message, MessageKind, NewMessage};
use confab_core::model::proposal::ProposalStatus;
use confab_core::policy::DenyCode;
use confab_core::validate::RejectCode;
use serde::Deserialize;

use super::budget::Writer;
use super::conversations::{fresh_id, load, path_conv, readable};
use super::error::{acked, ApiError};
use super::extract::{Caller, JsonBody, PageQuery, Params, PAGE_MAX};
use super::views::{MessagePage, MessageView, PostedMessage, ProposalStatusView, StatsView};
use crate::clock::now_ms;
use crate::engine::SubmitOutcome;
use crate::state::AppState;
use crate::store::{ChangeLog, MessageRow, Projections};

/// Parts a REST post tries before it answers with the last refusal.
const BUCKET_ATTEMPTS: usize = 4;

fn text_kind() -> MessageKind {
    MessageKind::Text
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostMessageRequest {
    id: Option<String>,
    #[serde(default = "text_kind")]
    kind: MessageKind,
    #[serde(default)]
    body: String,
    /// A JSON value, or its JSON text as a string (as integrations send `payloadJson`).
    payload: Option<serde_json::Value>,
    reply_to: Option<MessageId>,
    /// Accounts the message mentions (at most `MENTIONS_MAX`, no duplicates): they get a
    /// notification (docs/NOTIFICATIONS.md).
    #[serde(default)]
    mentions: Vec<confab_core::ids::AccountId>,
    /// Attachments (docs/ATTACHMENTS.md); one naming a blob of this server must name a
    /// stored blob of this conversation.
    #[serde(default)]
    attachments: Vec<Attachment>,
    /// `<conversation>/<message>` of the message this one forwards; its attachments naming
    /// blobs of that conversation are copied here (docs/ATTACHMENTS.md, "Forwarding").
    forwarded_from: Option<String>,
}

/// `POST /v1/conversations/{id}/messages`: 201 `{id, seq, doc, created_at}`. The time is the
/// server's; the bucket follows from it.
pub async fn post(
    State(app): State<AppState>,
    caller: Writer,
    Params(id): Params<String>,
    JsonBody(req): JsonBody<PostMessageRequest>,
) -> Result<Response, ApiError> {
    let conv_id = path_conv(&id)?;
    let media = !req.attachments.is_empty()
        && matches!(
            req.kind,
            MessageKind::Image | MessageKind::File | MessageKind::Voice | MessageKind::Video
        );
    if !media
        && !matches!(
            req.kind,
            MessageKind::Text
                | MessageKind::System
                | MessageKind::Proposal
                | MessageKind::ProposalResponse
        )
    {
        return Err(ApiError::invalid(
            "invalid_value",
            "kind",
            "REST posts text, system, proposal and proposal_response messages, and image, file, voice and video messages with attachments",
        ));
    }
    let conv = load(&app, &caller, &conv_id).await?;
    let forwarded_from = req
        .forwarded_from
        .as_deref()
        .map(ForwardedFrom::decode)
        .transpose()?;
    let attachments = match &forwarded_from {
        Some(from) => {
            super::forwarding::forward_attachments(
                &app,
                &caller,
                &from.conv,
                &conv_id,
                req.attachments,
            )
            .await?
        }
        None => req.attachments,
    };
    super::attachments::check_references(&app, &caller, &conv_id, &attachments).await?;
    let id = match req.id {
        Some(id) => MessageId::new(id)?,
        None => MessageId::new(fresh_id("m-"))?,
    };
    let payload = match req.payload {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(text)) => Some(text),
        Some(value @ serde_json::Value::Object(_)) => Some(value.to_string()),
        // openapi.json: an object, its JSON text, or null.
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid_value",
                "payload",
                "a payload is a JSON object or its JSON text",
            ))
        }
    };
    let now = now_ms();
    let message = NewMessage {
        id: id.clone(),
        author: caller.account.clone(),
        kind: req.kind,
        body: req.body,
        payload,
        caption: None,
        attachments: (!attachments.is_empty()).then(|| attachments_to_json(&attachments)),
        mentions: (!req.mentions.is_empty())
            .then(|| confab_core::model::attachment::mentions_to_json(&req.mentions)),
        reply_to: req.reply_to,
        forwarded_from,
        created_at: now,
        scheduled_at: None,
        // Support threads: what the thread says about the caller (checked again on accept).
        stamp: confab_core::policy::support::stamp_for(&conv, &caller.author()),
        sealed: None,
        blobs: None,
    };
    message.validate()?;
    // The newest part of the period, moving on as the acceptor's refusals say (a REST
    // writer is a writer like the others: docs/FEATURES.md, "Bounded buckets").
    let period = conv.period_of(now);
    let newest = app
        .engine
        .store()
        .buckets(&caller.tenant, &conv_id, Some(Bucket::first(period + 1)), 1)
        .await?
        .buckets
        .first()
        .copied()
        .filter(|b| b.period == period);
    let mut bucket = newest.unwrap_or(Bucket::first(period));
    let mut attempts = 0;
    let (doc, outcome) = loop {
        let doc = DocId::msgs(&caller.tenant, &conv_id, bucket);
        let message = message.clone();
        let outcome = caller
            .write(
                &app,
                doc.clone(),
                Box::new(move |d, tag| write::post_message(d, tag, &message)),
            )
            .await;
        attempts += 1;
        let moved_to = match &outcome {
            SubmitOutcome::Reject {
                code: RejectCode::Policy(DenyCode::BucketFull),
                ..
            } => Some(bucket.next()),
            SubmitOutcome::Reject {
                code: RejectCode::Policy(DenyCode::BucketNotOpen),
                ..
            } => bucket.previous_part(),
            _ => None,
        };
        match moved_to {
            Some(next) if attempts < BUCKET_ATTEMPTS => bucket = next,
            _ => break (doc, outcome),
        }
    };
    let seq = acked(outcome, |reason| {
        ApiError::conflict("already_exists", reason)
    })?;
    let posted = PostedMessage::new(id.to_string(), seq, doc.to_string(), now);
    Ok((StatusCode::CREATED, Json(posted)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    status: ProposalStatus,
}

/// The projection row of a message, newest pages first (answers come soon after proposals,
/// and services mostly act on recent messages).
pub(super) async fn find_row(
    store: &dyn Projections,
    tenant: &TenantId,
    conv: &ConvId,
    id: &MessageId,
) -> Result<Option<MessageRow>, ApiError> {
    let mut before = None;
    loop {
        let rows = store.messages(tenant, conv, before, PAGE_MAX).await?;
        if let Some(row) = rows.iter().find(|r| r.message == *id) {
            return Ok(Some(row.clone()));
        }
        match rows.last() {
            Some(last) if rows.len() == PAGE_MAX => before = Some(last.pos),
            _ => return Ok(None),
        }
    }
}

/// `POST /v1/conversations/{id}/messages/{message}/status`: the counterparty answers a
/// proposal (`accepted`, `rejected`, `reschedule_requested`).
pub async fn set_status(
    State(app): State<AppState>,
    caller: Writer,
    Params((id, message)): Params<(String, String)>,
    JsonBody(req): JsonBody<StatusRequest>,
) -> Result<Response, ApiError> {
    let conv_id = path_conv(&id)?;
    let message = MessageId::new(message.as_str())
        .map_err(|_| ApiError::not_found(format!("no message {message:?}")))?;
    if req.status == ProposalStatus::Pending {
        return Err(ApiError::invalid(
            "invalid_value",
            "status",
            "a proposal is answered with accepted, rejected or reschedule_requested",
        ));
    }
    let conv = load(&app, &caller, &conv_id).await?;
    readable(&app, &conv, &caller).await?;
    let row = find_row(
        app.engine.store().as_ref(),
        &caller.tenant,
        &conv_id,
        &message,
    )
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no message {message} in {conv_id}")))?;
    if row.kind != MessageKind::Proposal.as_str() {
        return Err(ApiError::invalid(
            "invalid_value",
            "message",
            format!("{message} is a {} message, not a proposal", row.kind),
        ));
    }
    let doc = DocId::parse(&row.doc)
        .map_err(|e| ApiError::internal(format!("stored doc id {}: {e}", row.doc)))?;
    let now = now_ms();
    let status = req.status;
    let target = message.clone();
    let outcome = caller
        .write(
            &app,
            doc,
            Box::new(move |d, tag| write::set_proposal_status(d, tag, now, &target, status)),
        )
        .await;
    let seq = acked(outcome, ApiError::not_found)?;
    let view = ProposalStatusView {
        id: message.to_string(),
        status: status.as_str(),
        seq,
        doc: row.doc,
    };
    Ok(Json(view).into_response())
}

/// `GET /v1/conversations/{id}/messages?before=<pos>&limit=<n>`: newest first.
pub async fn page(
    State(app): State<AppState>,
    caller: Caller,
    Params(id): Params<String>,
    query: PageQuery,
) -> Result<Json<MessagePage>, ApiError> {
    let conv_id = path_conv(&id)?;
    let conv = load(&app, &caller, &conv_id).await?;
    readable(&app, &conv, &caller).await?;
    let rows = app
        .engine
        .store()
        .messages(&caller.tenant, &conv_id, query.before, query.limit)
        .await?;
    let contents = read_contents(app.engine.store().as_ref(), &rows).await;
    // Each row carries its stored view count (`MessageView::of` reads it); only channels
    // count views (docs/SCHEMA.md, "Projection: stats and views").
    let counted = conv.kind() == Some(ConvKind::Channel);
    let messages = rows
        .iter()
        .map(|r| MessageView::of(r, contents.get(&r.message), counted, conv.encrypted()))
        .collect();
    let next_before = if rows.len() == query.limit {
        rows.last().map(|r| r.pos)
    } else {
        None
    };
    Ok(Json(MessagePage {
        messages,
        next_before,
    }))
}

/// `GET /v1/conversations/{id}/stats`: message, media and file counts and the active
/// members, from the projection (one row; docs/SCHEMA.md, "Projection: stats and views").
pub async fn stats(
    State(app): State<AppState>,
    caller: Caller,
    Params(id): Params<String>,
) -> Result<Json<StatsView>, ApiError> {
    let conv_id = path_conv(&id)?;
    let conv = load(&app, &caller, &conv_id).await?;
    readable(&app, &conv, &caller).await?;
    let stats = app
        .engine
        .store()
        .conv_stats(&caller.tenant, &conv_id)
        .await?
        .unwrap_or(crate::store::stats::ConvStats {
            messages: 0,
            media: 0,
            files: 0,
            members: 0,
        });
    Ok(Json(StatsView::of(&stats)))
}

/// Full messages of a page, read from their committed buckets. A bucket that cannot be
/// read leaves its messages with the projection's preview.
async fn read_contents(store: &dyn ChangeLog, rows: &[MessageRow]) -> HashMap<MessageId, Message> {
    let mut by_doc: BTreeMap<&str, Vec<MessageId>> = BTreeMap::new();
    for row in rows {
        by_doc
            .entry(row.doc.as_str())
            .or_default()
            .push(row.message.clone());
    }
    let mut out = HashMap::new();
    for (doc, ids) in by_doc {
        match read_bucket(store, doc, ids).await {
            Ok(found) => out.extend(found),
            Err(e) => {
                tracing::warn!(doc, error = %e, "message bucket unreadable; answering previews")
            }
        }
    }
    out
}

pub(super) async fn read_bucket(
    store: &dyn ChangeLog,
    doc: &str,
    ids: Vec<MessageId>,
) -> Result<Vec<(MessageId, Message)>, String> {
    let id = DocId::parse(doc).map_err(|e| e.to_string())?;
    let stored = store.load_doc(&id).await.map_err(|e| e.to_string())?;
    let decode = move || -> Result<Vec<(MessageId, Message)>, String> {
        let mut bucket = match &stored.snapshot {
            Some(bytes) => Automerge::load(bytes).map_err(|e| e.to_string())?,
            None => confab_core::doc::genesis(&id).map_err(|e| e.to_string())?,
        };
        let changes = stored
            .changes
            .iter()
            .map(|(_, bytes)| Change::try_from(&bytes[..]).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        bucket.apply_changes(changes).map_err(|e| e.to_string())?;
        Ok(ids
            .into_iter()
            .filter_map(|m| read::read_message(&bucket, &m).map(|message| (m, message)))
            .collect())
    };
    tokio::task::spawn_blocking(decode)
        .await
        .map_err(|e| e.to_string())?
}
