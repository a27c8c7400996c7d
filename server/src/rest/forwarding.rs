//! Forwarded attachments (docs/ATTACHMENTS.md, "Forwarding"): a blob is scoped to its
//! conversation, so a forward's attachment is copied into the conversation it is forwarded
//! to, and the forward names the copy. Whoever may read the forward reads the copy; nobody
//! reads the original from there; each conversation's retention sweeps its own copy.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use confab_core::ids::ConvId;
use confab_core::model::attachment::{blob_reference, Attachment};
use serde::Deserialize;

use super::attachments::{may_attach, may_read, BlobView};
use super::budget::Writer;
use super::conversations::path_conv;
use super::error::ApiError;
use super::extract::{Caller, JsonBody, Params};
use crate::blobs::{self, BlobHash, BlobMeta, Scope};
use crate::clock::now_ms;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyRequest {
    /// The conversation the blob is stored in.
    from: String,
}

/// `POST /v1/conversations/{id}/attachments/{hash}/copy` `{from}`: the blob `hash` of
/// conversation `from` copied into `id`, for a forward. The caller must read `from` and may
/// send an attachment in `id`. 201 copied; 200 when `id` holds it already.
pub async fn copy(
    State(app): State<AppState>,
    caller: Writer,
    Params((id, hash)): Params<(String, String)>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<CopyRequest>,
) -> Result<Response, ApiError> {
    let to = path_conv(&id)?;
    let from = ConvId::new(req.from.as_str())
        .map_err(|e| ApiError::invalid("invalid_value", "from", e.to_string()))?;
    let hash = blobs::parse_hash(&hash)?;
    let (meta, created) = copy_checked(&app, &caller, &from, &to, &hash).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(BlobView::of(meta, &to, &headers))).into_response())
}

/// Copies `hash` of `from` into `to` for `caller`: reading `from` and attaching in `to`
/// checked first. `not_found` when `from` holds no such blob.
async fn copy_checked(
    app: &AppState,
    caller: &Caller,
    from: &ConvId,
    to: &ConvId,
    hash: &BlobHash,
) -> Result<(BlobMeta, bool), ApiError> {
    may_read(app, caller, from).await?;
    may_attach(app, caller, to).await?;
    let (source, target) = (
        Scope::new(&caller.tenant, from),
        Scope::new(&caller.tenant, to),
    );
    app.blobs
        .copy(&source, &target, hash, caller.account.as_str(), now_ms())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no attachment {hash} in {from}")))
}

/// A REST forward's attachments: each naming a blob of `from` (the forwarded message's
/// conversation) is copied into `to` and named there; the others are left as they are
/// (`check_references` judges them).
pub async fn forward_attachments(
    app: &AppState,
    caller: &Caller,
    from: &ConvId,
    to: &ConvId,
    attachments: Vec<Attachment>,
) -> Result<Vec<Attachment>, ApiError> {
    let mut out = Vec::with_capacity(attachments.len());
    for mut attachment in attachments {
        if let Some((named, hash)) = blob_reference(&attachment.url) {
            if named == from.as_str() && from != to {
                copy_checked(app, caller, from, to, &hash).await?;
                attachment.url = attachment.url.replacen(
                    &blobs::path_of(from, &hash),
                    &blobs::path_of(to, &hash),
                    1,
                );
            }
        }
        out.push(attachment);
    }
    Ok(out)
}
