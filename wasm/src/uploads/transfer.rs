//! One upload's requests (docs/ATTACHMENTS.md): hash the blob, open a resumable upload,
//! send chunks from where the server says it stands, retry what may pass later.

use js_sys::Uint8Array;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, Blob};

use crate::connection::backoff_delay;
use crate::error::{Failure, Result};
use crate::http::{transient, Body, Http};
use crate::js;
use crate::types::{Attachment, AttachmentKind, PendingUpload, UploadProgress};

/// Default bytes per chunk: a request of a second or so on a slow uplink, far below the
/// server's default `chunk_max_bytes` (8 MiB).
pub const CHUNK_DEFAULT: u32 = 1 << 20;
/// Bytes hashed per read (the blob is never held whole).
const HASH_SLICE: f64 = 4.0 * 1024.0 * 1024.0;
/// Tries of one request before a transient failure is given back.
const TRIES: u32 = 5;

/// The server's `UploadView`.
#[derive(Debug, Deserialize)]
pub struct UploadView {
    #[serde(default)]
    pub upload: Option<String>,
    pub offset: u64,
    pub complete: bool,
    pub chunk_max_bytes: u64,
    #[serde(default)]
    pub blob: Option<BlobView>,
}

/// The server's `BlobView` (the stored attachment).
#[derive(Debug, Deserialize)]
pub struct BlobView {
    pub size: u64,
    pub mime: String,
    pub url: String,
}

fn view(json: JsValue) -> Result<UploadView> {
    serde_wasm_bindgen::from_value(json)
        .map_err(|e| Failure::new("invalid_answer", format!("upload answer: {e}")))
}

fn bytes_of(value: JsValue) -> Vec<u8> {
    Uint8Array::new(&value).to_vec()
}

/// SHA-256 of the blob as 64 hex digits, read a slice at a time.
pub async fn sha256(blob: &Blob) -> Result<String> {
    let mut hasher = Sha256::new();
    let size = blob.size();
    let mut at = 0.0;
    while at < size {
        let end = (at + HASH_SLICE).min(size);
        let slice = blob
            .slice_with_f64_and_f64(at, end)
            .map_err(|e| Failure::new("invalid_argument", crate::error::describe_js(&e).1))?;
        let buffer = JsFuture::from(slice.array_buffer())
            .await
            .map_err(|e| Failure::new("read_failed", crate::error::describe_js(&e).1))?;
        hasher.update(bytes_of(buffer));
        at = end;
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The kind a type suggests.
pub fn kind_of(mime: &str) -> AttachmentKind {
    match mime.split('/').next() {
        Some("image") => AttachmentKind::Image,
        Some("video") => AttachmentKind::Video,
        _ => AttachmentKind::File,
    }
}

fn aborted(signal: Option<&AbortSignal>) -> Result<()> {
    if signal.is_some_and(AbortSignal::aborted) {
        return Err(Failure::new(
            "aborted",
            "the upload was stopped (its signal aborted)",
        ));
    }
    Ok(())
}

/// `call` until it answers, or fails for good, or `TRIES` transient failures in a row.
pub async fn with_retry<F, Fut, T>(signal: Option<&AbortSignal>, mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut attempt = 0;
    loop {
        aborted(signal)?;
        match call().await {
            Err(e) if transient(&e) && attempt + 1 < TRIES => {
                attempt += 1;
                js::sleep(backoff_delay(attempt, 300, 5_000, js::random_unit())).await;
            }
            other => return other,
        }
    }
}

fn uploads_path(conv: &str) -> String {
    format!("/v1/conversations/{conv}/uploads")
}

/// `POST …/uploads {hash, size, mime}`.
pub async fn open(
    http: &Http,
    conv: &str,
    hash: &str,
    size: u64,
    mime: &str,
    signal: Option<&AbortSignal>,
) -> Result<UploadView> {
    let body = serde_json::json!({ "hash": hash, "size": size, "mime": mime }).to_string();
    let path = uploads_path(conv);
    let answer = with_retry(signal, || {
        http.call("POST", &path, Body::Json(body.clone()), signal)
    })
    .await?;
    view(answer.json)
}

/// A forward's attachments: each naming a blob of conversation `from` is copied into `to`
/// (`POST …/attachments/{hash}/copy`) and named there, so `to`'s readers may read it
/// (docs/ATTACHMENTS.md, "Forwarding"). Others are left as they are.
pub async fn forward_copies(
    http: Result<&Http>,
    from: &str,
    to: &str,
    attachments: &mut [Attachment],
) -> Result<()> {
    let prefix = format!("/v1/conversations/{from}/attachments/");
    for attachment in attachments.iter_mut().filter(|_| from != to) {
        let Some(at) = attachment.url.find(&prefix) else {
            continue;
        };
        let hash = &attachment.url[at + prefix.len()..];
        let end = hash.find(['?', '#']).unwrap_or(hash.len());
        let hash = hash[..end].to_owned();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let http = http.clone()?;
        let path = format!("/v1/conversations/{to}/attachments/{hash}/copy");
        let body = serde_json::json!({ "from": from }).to_string();
        with_retry(None, || {
            http.call("POST", &path, Body::Json(body.clone()), None)
        })
        .await?;
        attachment.url.replace_range(
            at..at + prefix.len(),
            &format!("/v1/conversations/{to}/attachments/"),
        );
    }
    Ok(())
}

/// `GET …/uploads/{upload}`: where it stands.
pub async fn progress(
    http: &Http,
    conv: &str,
    upload: &str,
    signal: Option<&AbortSignal>,
) -> Result<UploadView> {
    let path = format!("{}/{upload}", uploads_path(conv));
    let answer = with_retry(signal, || http.call("GET", &path, Body::None, signal)).await?;
    view(answer.json)
}

/// `DELETE …/uploads/{upload}`; one already gone is fine.
pub async fn abandon(http: &Http, conv: &str, upload: &str) -> Result<()> {
    let path = format!("{}/{upload}", uploads_path(conv));
    match with_retry(None, || http.call("DELETE", &path, Body::None, None)).await {
        Ok(_) => Ok(()),
        Err(e) if e.status == Some(404) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Sends the chunks of `record` from `offset` until the server has every byte; `report`
/// after each acknowledged chunk. The stored blob.
pub async fn send_from(
    http: &Http,
    record: &PendingUpload,
    blob: &Blob,
    mut offset: u64,
    chunk_max: u64,
    signal: Option<&AbortSignal>,
    report: &dyn Fn(UploadProgress),
) -> Result<BlobView> {
    let chunk = u64::from(record.chunk_bytes).clamp(1, chunk_max.max(1));
    let base = format!("{}/{}", uploads_path(&record.conv), record.upload);
    loop {
        aborted(signal)?;
        let end = (offset + chunk).min(record.size);
        let part = blob
            .slice_with_f64_and_f64(offset as f64, end as f64)
            .map_err(|e| Failure::new("invalid_argument", crate::error::describe_js(&e).1))?;
        let path = format!("{base}?offset={offset}");
        let sent = with_retry(signal, || {
            http.call(
                "PATCH",
                &path,
                Body::Blob(part.clone(), record.mime.clone()),
                signal,
            )
        })
        .await;
        let answer = match sent {
            Ok(answer) => view(answer.json)?,
            // Another tab or an earlier try got further: continue from where it stands.
            Err(e) if e.code == "offset_mismatch" => {
                offset = progress(http, &record.conv, &record.upload, signal)
                    .await?
                    .offset;
                continue;
            }
            Err(e) => return Err(e),
        };
        if answer.complete {
            report(UploadProgress {
                upload: record.upload.clone(),
                conv: record.conv.clone(),
                sent: record.size,
                size: record.size,
            });
            return answer.blob.ok_or_else(|| {
                Failure::new("invalid_answer", "a complete upload without its blob")
            });
        }
        offset = answer.offset;
        report(UploadProgress {
            upload: record.upload.clone(),
            conv: record.conv.clone(),
            sent: offset,
            size: record.size,
        });
    }
}

/// The attachment reference a message carries for the stored blob.
pub fn reference(record: &PendingUpload, blob: BlobView) -> Attachment {
    match &record.encryption {
        // The stored blob is ciphertext: the reference says what the file is.
        Some(seal) => Attachment {
            id: record.attachment_id.clone(),
            kind: record.kind,
            name: record.name.clone(),
            mime: Some(record.mime.clone()),
            size: record.plain_size,
            url: blob.url,
            encryption: Some(seal.clone()),
        },
        None => Attachment {
            id: record.attachment_id.clone(),
            kind: record.kind,
            name: record.name.clone(),
            mime: Some(blob.mime),
            size: Some(blob.size),
            url: blob.url,
            encryption: None,
        },
    }
}
