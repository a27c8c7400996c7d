//! Attachments over REST (docs/ATTACHMENTS.md): upload in one request or in resumable
//! chunks, download, thumbnails. Uploading needs what sending an attachment needs (the
//! policy's verdict on an image message now: membership, `allow_attachments`,
//! `can_send_media`, lifecycle, lock); downloading needs read access. Blobs live under their
//! tenant and conversation (`crate::blobs`), so the path names the only place looked in.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::{Bytes, BytesMut};
use confab_core::client::{apply, Intent};
use confab_core::ids::{ConvId, MessageId};
use confab_core::model::attachment::{blob_reference, Attachment};
use confab_core::model::message::{MessageKind, NewMessage};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::budget::Writer;
use super::conversations::{load, parent_standing, path_conv, readable};
use super::error::ApiError;
use super::extract::{Caller, JsonBody, Params};
use crate::blobs::session::{ChunkOutcome, Progress, Session};
use crate::blobs::{self, BlobError, BlobHash, BlobMeta, Scope};
use crate::clock::now_ms;
use crate::state::AppState;

impl From<BlobError> for ApiError {
    fn from(e: BlobError) -> Self {
        let status = match &e {
            BlobError::TooLarge { .. } | BlobError::ChunkTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            BlobError::TypeNotAllowed(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            BlobError::HashMismatch { .. }
            | BlobError::InvalidHash(_)
            | BlobError::SizeMismatch(_) => StatusCode::UNPROCESSABLE_ENTITY,
            BlobError::OffsetMismatch { .. } => StatusCode::CONFLICT,
            BlobError::NotFound(_) | BlobError::NoThumbnail(_) => StatusCode::NOT_FOUND,
            BlobError::Full => StatusCode::INSUFFICIENT_STORAGE,
            BlobError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            BlobError::Body(_) => StatusCode::BAD_REQUEST,
        };
        let field = match &e {
            BlobError::InvalidHash(_) | BlobError::HashMismatch { .. } => Some("hash"),
            BlobError::TypeNotAllowed(_) => Some("mime"),
            BlobError::TooLarge { .. } | BlobError::SizeMismatch(_) => Some("size"),
            BlobError::OffsetMismatch { .. } => Some("offset"),
            _ => None,
        };
        if matches!(e, BlobError::Store(_)) {
            tracing::warn!(error = %e, "attachment store");
        }
        let err = ApiError::new(status, e.code(), e.to_string());
        match field {
            Some(f) => err.with_field(f),
            None => err,
        }
    }
}

/// A stored attachment: what a message's attachment entry takes (`url`, `mime`, `size`).
#[derive(Debug, Serialize)]
pub struct BlobView {
    hash: String,
    size: u64,
    mime: String,
    /// `https://<host>/v1/conversations/<conv>/attachments/<hash>`.
    url: String,
    /// The same without the origin.
    path: String,
    created_at: i64,
}

impl BlobView {
    pub(super) fn of(meta: BlobMeta, conv: &ConvId, headers: &HeaderMap) -> Self {
        let path = format!("/v1/conversations/{conv}/attachments/{}", meta.hash);
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
            .unwrap_or("localhost");
        BlobView {
            url: format!("https://{host}{path}"),
            path,
            hash: meta.hash,
            size: meta.size,
            mime: meta.mime,
            created_at: meta.created_at,
        }
    }
}

/// The caller may send an attachment in `id` now: the policy's verdict on an image message.
pub(super) async fn may_attach(
    app: &AppState,
    caller: &Caller,
    id: &ConvId,
) -> Result<(), ApiError> {
    let conv = load(app, caller, id).await?;
    let now = now_ms();
    let probe = MessageId::new("m-attach-probe").map_err(ApiError::from)?;
    let mut message = NewMessage::text(probe, caller.account.clone(), "", now);
    message.kind = MessageKind::Image;
    if conv.encrypted() {
        // Its messages are sealed: the probe is one (its content is never checked here).
        message.sealed = Some(vec![0]);
    }
    let intent = Intent::Send {
        conv: id.clone(),
        message,
    };
    let parent = parent_standing(app, &caller.tenant, &conv, &caller.account).await?;
    apply::check(
        &intent,
        &caller.account,
        Some(&conv),
        None,
        now,
        None,
        parent,
    )
    .map_err(|d| ApiError::forbidden(d.code, d.reason))
}

pub(super) async fn may_read(app: &AppState, caller: &Caller, id: &ConvId) -> Result<(), ApiError> {
    let conv = load(app, caller, id).await?;
    readable(app, &conv, caller).await
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// `PUT /v1/conversations/{id}/attachments/{hash}`: the body is the file, `Content-Type`
/// its type. 201 stored; 200 when it already was (the body is not read).
pub async fn put(
    State(app): State<AppState>,
    caller: Writer,
    Params((id, hash)): Params<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let conv = path_conv(&id)?;
    may_attach(&app, &caller, &conv).await?;
    let hash = blobs::parse_hash(&hash)?;
    let blobs = &app.blobs;
    let mime = blobs.limits.check_type(content_type(&headers))?;
    let max = blobs.limits.max_bytes_of(&caller.tenant);
    if let Some(len) = content_length(&headers) {
        blobs.limits.check_size(&caller.tenant, len)?;
    }
    let scope = Scope::new(&caller.tenant, &conv);
    if let Some(meta) = blobs.meta(&scope, &hash).await? {
        return Ok((StatusCode::OK, Json(BlobView::of(meta, &conv, &headers))).into_response());
    }
    let size = blobs
        .put_stream(&scope, &hash, None, max, body.into_data_stream())
        .await?;
    let meta = BlobMeta {
        hash: hash.hex(),
        size,
        mime,
        uploaded_by: caller.account.to_string(),
        created_at: now_ms(),
    };
    blobs.put_meta(&scope, &meta).await?;
    Ok((
        StatusCode::CREATED,
        Json(BlobView::of(meta, &conv, &headers)),
    )
        .into_response())
}

/// `GET /v1/conversations/{id}/attachments/{hash}`: the bytes, with their type.
pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Params((id, hash)): Params<(String, String)>,
) -> Result<Response, ApiError> {
    let conv = path_conv(&id)?;
    may_read(&app, &caller, &conv).await?;
    let hash = blobs::parse_hash(&hash)?;
    let scope = Scope::new(&caller.tenant, &conv);
    let Some((meta, got)) = app.blobs.get(&scope, &hash).await? else {
        return Err(ApiError::not_found(format!(
            "no attachment {hash} in {conv}"
        )));
    };
    let mut response = Body::from_stream(got.into_stream()).into_response();
    let h = response.headers_mut();
    if let Ok(mime) = HeaderValue::from_str(&meta.mime) {
        h.insert(header::CONTENT_TYPE, mime);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.size));
    served_headers(h, &hash);
    Ok(response)
}

/// Content-addressed bytes never change; what the browser does with them is fenced in.
fn served_headers(h: &mut HeaderMap, hash: &BlobHash) {
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{hash}\"")) {
        h.insert(header::ETAG, etag);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
}

/// `GET /v1/conversations/{id}/attachments/{hash}/thumbnail`: a JPEG of at most 256 px.
pub async fn thumbnail(
    State(app): State<AppState>,
    caller: Caller,
    Params((id, hash)): Params<(String, String)>,
) -> Result<Response, ApiError> {
    let conv = path_conv(&id)?;
    may_read(&app, &caller, &conv).await?;
    let hash = blobs::parse_hash(&hash)?;
    let scope = Scope::new(&caller.tenant, &conv);
    let thumb = app.blobs.thumbnail(&scope, &hash).await?;
    let mut response = ([(header::CONTENT_TYPE, "image/jpeg")], thumb).into_response();
    served_headers(response.headers_mut(), &hash);
    Ok(response)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    hash: String,
    size: u64,
    mime: String,
}

#[derive(Debug, Serialize)]
pub struct UploadView {
    /// Absent when the blob was already stored (nothing to send).
    #[serde(skip_serializing_if = "Option::is_none")]
    upload: Option<String>,
    hash: String,
    size: u64,
    mime: String,
    offset: u64,
    complete: bool,
    chunk_max_bytes: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    blob: Option<BlobView>,
}

impl UploadView {
    fn progress(p: Progress, chunk_max_bytes: usize) -> Self {
        UploadView {
            upload: Some(p.session.id),
            hash: p.session.hash,
            size: p.session.size,
            mime: p.session.mime,
            offset: p.offset,
            complete: false,
            chunk_max_bytes,
            blob: None,
        }
    }

    fn done(upload: Option<String>, blob: BlobView, chunk_max_bytes: usize) -> Self {
        UploadView {
            upload,
            hash: blob.hash.clone(),
            size: blob.size,
            mime: blob.mime.clone(),
            offset: blob.size,
            complete: true,
            chunk_max_bytes,
            blob: Some(blob),
        }
    }
}

/// `POST /v1/conversations/{id}/uploads`: opens a resumable upload of `{hash, size, mime}`.
/// 201 with the session; 200 `complete` when the blob is already stored.
pub async fn open(
    State(app): State<AppState>,
    caller: Writer,
    Params(id): Params<String>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<UploadRequest>,
) -> Result<Response, ApiError> {
    let conv = path_conv(&id)?;
    may_attach(&app, &caller, &conv).await?;
    let hash = blobs::parse_hash(&req.hash)?;
    let blobs = &app.blobs;
    let mime = blobs.limits.check_type(&req.mime)?;
    blobs.limits.check_size(&caller.tenant, req.size)?;
    if req.size == 0 {
        return Err(BlobError::SizeMismatch(
            "an upload session carries at least one byte (PUT an empty file)".into(),
        )
        .into());
    }
    let chunk = blobs.limits.chunk_max_bytes;
    let scope = Scope::new(&caller.tenant, &conv);
    if let Some(meta) = blobs.meta(&scope, &hash).await? {
        let view = UploadView::done(None, BlobView::of(meta, &conv, &headers), chunk);
        return Ok((StatusCode::OK, Json(view)).into_response());
    }
    let now = now_ms();
    let session = Session {
        id: blobs::session::fresh_id(now),
        hash: hash.hex(),
        size: req.size,
        mime,
        account: caller.account.to_string(),
        created_at: now,
    };
    blobs.open_session(&scope, &session).await?;
    let view = UploadView::progress(Progress { session, offset: 0 }, chunk);
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// `GET /v1/conversations/{id}/uploads/{upload}`: where a resumable upload stands.
pub async fn progress(
    State(app): State<AppState>,
    caller: Caller,
    Params((id, upload)): Params<(String, String)>,
) -> Result<Json<UploadView>, ApiError> {
    let conv = path_conv(&id)?;
    may_read(&app, &caller, &conv).await?;
    let scope = Scope::new(&caller.tenant, &conv);
    let p = app
        .blobs
        .progress(&scope, &upload, caller.account.as_str())
        .await?;
    Ok(Json(UploadView::progress(
        p,
        app.blobs.limits.chunk_max_bytes,
    )))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffsetQuery {
    offset: u64,
}

/// `PATCH /v1/conversations/{id}/uploads/{upload}?offset=<n>`: the next chunk, starting at
/// the offset the upload stands at. 200 with the new offset; 201 `complete` with the blob
/// once the last byte came.
pub async fn chunk(
    State(app): State<AppState>,
    caller: Writer,
    Params((id, upload)): Params<(String, String)>,
    query: Result<Query<OffsetQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let conv = path_conv(&id)?;
    may_attach(&app, &caller, &conv).await?;
    let Query(OffsetQuery { offset }) =
        query.map_err(|e| ApiError::invalid("invalid_value", "offset", e.body_text()))?;
    let blobs = &app.blobs;
    let scope = Scope::new(&caller.tenant, &conv);
    let progress = blobs
        .progress(&scope, &upload, caller.account.as_str())
        .await?;
    let max = blobs.limits.chunk_max_bytes;
    if let Some(len) = content_length(&headers) {
        if len > max as u64 {
            return Err(BlobError::ChunkTooLarge {
                len,
                max: max as u64,
            }
            .into());
        }
    }
    let chunk = read_chunk(body, max).await?;
    let chunk_max = blobs.limits.chunk_max_bytes;
    match blobs
        .put_chunk(&scope, progress, offset, chunk, now_ms())
        .await?
    {
        ChunkOutcome::Partial(p) => Ok(Json(UploadView::progress(p, chunk_max)).into_response()),
        ChunkOutcome::Complete(meta) => {
            let view =
                UploadView::done(Some(upload), BlobView::of(meta, &conv, &headers), chunk_max);
            Ok((StatusCode::CREATED, Json(view)).into_response())
        }
    }
}

/// A request body of at most `max` bytes, in memory.
async fn read_chunk(body: Body, max: usize) -> Result<Bytes, BlobError> {
    let mut stream = body.into_data_stream();
    let mut out = BytesMut::new();
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|e| BlobError::Body(e.to_string()))?;
        if out.len() + piece.len() > max {
            return Err(BlobError::ChunkTooLarge {
                len: (out.len() + piece.len()) as u64,
                max: max as u64,
            });
        }
        out.extend_from_slice(&piece);
    }
    Ok(out.freeze())
}

/// `DELETE /v1/conversations/{id}/uploads/{upload}`: abandons an upload.
pub async fn abandon(
    State(app): State<AppState>,
    caller: Writer,
    Params((id, upload)): Params<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let conv = path_conv(&id)?;
    may_read(&app, &caller, &conv).await?;
    let scope = Scope::new(&caller.tenant, &conv);
    app.blobs
        .progress(&scope, &upload, caller.account.as_str())
        .await?;
    app.blobs.delete_session(&scope, &upload).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Checks the attachments a REST message carries: each that names a blob of this server
/// (`/v1/conversations/<conv>/attachments/<hash>`) must name one of this conversation that
/// is stored (`blob_not_found` otherwise, 422: another conversation's or tenant's blob is
/// never found from here).
pub async fn check_references(
    app: &AppState,
    caller: &Caller,
    conv: &ConvId,
    attachments: &[Attachment],
) -> Result<(), ApiError> {
    let scope = Scope::new(&caller.tenant, conv);
    for attachment in attachments {
        let Some((named, hash)) = blob_reference(&attachment.url) else {
            continue;
        };
        let stored = named == conv.as_str() && app.blobs.meta(&scope, &hash).await?.is_some();
        if !stored {
            return Err(ApiError::invalid(
                "blob_not_found",
                "attachments",
                format!("no attachment {hash} in {conv}: upload it to this conversation first"),
            ));
        }
    }
    Ok(())
}
