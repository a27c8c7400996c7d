//! Attachments from JavaScript (docs/ATTACHMENTS.md, "Clients"): `uploadAttachment` hashes
//! a Blob, uploads it in resumable chunks with progress, and gives the attachment reference
//! `send` takes; the upload is recorded (with its Blob) until it completes, so that
//! `resumeUploads()` continues it after a reload from where the server says it stands.

mod pending;
pub(crate) mod rest;
mod sealed;
mod transfer;

use std::rc::Rc;

use js_sys::{Function, Promise};
use tsify::Ts;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{AbortSignal, Blob};

use crate::api::{conv_id, from_js, promise, to_js};
use crate::client::ConfabClient;
use crate::error::{Failure, Result};
use crate::http::{transient, Http};
use crate::js;
use crate::runtime::Runtime;
use crate::types::{
    Attachment, ClientEvent, PendingUpload, RestError, ResumeOptions, ResumedUpload, UploadOptions,
    UploadProgress,
};
use rest::Rest;
pub(crate) use transfer::forward_copies;
use transfer::{kind_of, send_from, CHUNK_DEFAULT};

fn signal_of(value: &JsValue) -> Option<AbortSignal> {
    value.dyn_ref::<AbortSignal>().cloned()
}

/// Calls the app's callback (if any) and emits the `upload` event.
fn reporter(rt: &Rc<Runtime>, callback: JsValue) -> impl Fn(UploadProgress) {
    let rt = rt.clone();
    move |p: UploadProgress| {
        if let Some(f) = callback.dyn_ref::<Function>() {
            if let Ok(value) = to_js(&p) {
                // The app's callback failing is its own business; the upload goes on.
                let _ = f.call1(&JsValue::NULL, &value);
            }
        }
        rt.emit(ClientEvent::Upload {
            upload: p.upload,
            conv: p.conv,
            sent: p.sent,
            size: p.size,
        });
    }
}

/// A name of at most 255 characters (what an attachment reference allows).
fn clip_name(name: String) -> String {
    name.chars().take(255).collect()
}

/// Removes `upload` from the active set when the send ends, however it ends.
struct Active<'a>(&'a Rest, String);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.active.borrow_mut().remove(&self.1);
    }
}

/// After a send failed: a failure for now (or an abort) keeps the upload pending; a failure
/// for good drops it here and on the server.
async fn settle_failure(rest: &Rest, http: &Http, record: &PendingUpload, e: &Failure) {
    if transient(e) || e.code == "aborted" {
        return;
    }
    let _ = transfer::abandon(http, &record.conv, &record.upload).await;
    let _ = rest.pending.delete(&record.upload).await;
}

async fn upload(
    rt: Rc<Runtime>,
    rest: Rc<Rest>,
    conv: String,
    blob: Blob,
    options: UploadOptions,
) -> Result<JsValue> {
    let id = conv_id(&conv)?;
    let conv = id.to_string();
    let http = rest.http()?;
    let signal = signal_of(&options.signal);
    let file_name = js_sys::Reflect::get(&blob, &"name".into())
        .ok()
        .and_then(|n| n.as_string());
    let mime = options
        .mime
        .clone()
        .filter(|m| !m.is_empty())
        .or_else(|| Some(blob.type_()).filter(|t| !t.is_empty()))
        .unwrap_or_else(|| "application/octet-stream".into());
    if blob.size() == 0.0 {
        return Err(Failure::new(
            "invalid_argument",
            "the blob is empty: there is nothing to attach",
        ));
    }
    // An encrypted conversation's file leaves this device sealed: the server stores the
    // ciphertext (docs/E2EE.md, "Encrypted attachments").
    let encrypted = rt.read(false, |e| e.is_encrypted(&id));
    let (blob, encryption, plain_size) = if encrypted {
        let plain_size = blob.size() as u64;
        let (sealed, seal) = sealed::seal_blob(&blob).await?;
        (sealed, Some(seal), Some(plain_size))
    } else {
        (blob, None, None)
    };
    let size = blob.size() as u64;
    let hash = match &encryption {
        Some(seal) => seal.sha256.clone(),
        None => transfer::sha256(&blob).await?,
    };
    let kind = options.kind.unwrap_or_else(|| kind_of(&mime));
    let record = PendingUpload {
        upload: String::new(),
        conv,
        size,
        mime,
        name: options.name.or(file_name).map(clip_name),
        kind,
        attachment_id: options.id.unwrap_or_else(|| format!("a-{}", &hash[..12])),
        chunk_bytes: options.chunk_bytes.unwrap_or(CHUNK_DEFAULT).max(1),
        created_at: js::now_ms(),
        hash,
        encryption,
        plain_size,
    };
    let opened = transfer::open(
        http,
        &record.conv,
        &record.hash,
        size,
        &record.mime,
        signal.as_ref(),
    )
    .await?;
    let record = PendingUpload {
        upload: opened.upload.clone().unwrap_or_default(),
        ..record
    };
    let report = reporter(&rt, options.on_progress);
    if opened.complete {
        // Stored already (the same bytes sent before): nothing to send or to record.
        let blob = opened
            .blob
            .ok_or_else(|| Failure::new("invalid_answer", "a complete upload without its blob"))?;
        report(UploadProgress {
            upload: record.upload.clone(),
            conv: record.conv.clone(),
            sent: size,
            size,
        });
        return to_js(&transfer::reference(&record, blob));
    }
    rest.pending.put(&record, &blob).await?;
    rest.active.borrow_mut().insert(record.upload.clone());
    let _active = Active(&rest, record.upload.clone());
    let sent = send_from(
        http,
        &record,
        &blob,
        opened.offset,
        opened.chunk_max_bytes,
        signal.as_ref(),
        &report,
    )
    .await;
    match sent {
        Ok(stored) => {
            rest.pending.delete(&record.upload).await?;
            to_js(&transfer::reference(&record, stored))
        }
        Err(e) => {
            settle_failure(&rest, http, &record, &e).await;
            Err(e)
        }
    }
}

/// Continues one pending upload from where the server says it stands.
async fn resume_one(
    rest: &Rest,
    http: &Http,
    mut record: PendingUpload,
    blob: Blob,
    signal: Option<&AbortSignal>,
    report: &dyn Fn(UploadProgress),
) -> ResumedUpload {
    let _active = Active(rest, record.upload.clone());
    let outcome: Result<_> = async {
        let at = match transfer::progress(http, &record.conv, &record.upload, signal).await {
            Ok(view) => view,
            // The session is gone (completed before the record was dropped, or swept after
            // a day): opening again answers `complete` at once, or a fresh session.
            Err(e) if e.status == Some(404) => {
                let view = transfer::open(
                    http,
                    &record.conv,
                    &record.hash,
                    record.size,
                    &record.mime,
                    signal,
                )
                .await?;
                if view.complete {
                    return view.blob.ok_or_else(|| {
                        Failure::new("invalid_answer", "a complete upload without its blob")
                    });
                }
                rest.pending.delete(&record.upload).await?;
                record.upload = view.upload.clone().unwrap_or_default();
                rest.pending.put(&record, &blob).await?;
                view
            }
            Err(e) => return Err(e),
        };
        send_from(
            http,
            &record,
            &blob,
            at.offset,
            at.chunk_max_bytes,
            signal,
            report,
        )
        .await
    }
    .await;
    match outcome {
        Ok(stored) => {
            let _ = rest.pending.delete(&record.upload).await;
            ResumedUpload {
                upload: record.upload.clone(),
                conv: record.conv.clone(),
                attachment: Some(transfer::reference(&record, stored)),
                error: None,
                pending: false,
            }
        }
        Err(e) => {
            settle_failure(rest, http, &record, &e).await;
            ResumedUpload {
                pending: transient(&e) || e.code == "aborted",
                upload: record.upload,
                conv: record.conv,
                attachment: None,
                error: Some(RestError {
                    code: e.code,
                    message: e.message,
                    status: e.status,
                }),
            }
        }
    }
}

async fn resume(rt: Rc<Runtime>, rest: Rc<Rest>, options: ResumeOptions) -> Result<JsValue> {
    let http = rest.http()?;
    let signal = signal_of(&options.signal);
    let report = reporter(&rt, options.on_progress);
    let mut out = Vec::new();
    for (record, blob) in rest.pending.all().await? {
        // One this page is sending already is not sent twice.
        if !rest.active.borrow_mut().insert(record.upload.clone()) {
            continue;
        }
        out.push(resume_one(&rest, http, record, blob, signal.as_ref(), &report).await);
    }
    array_of(&out)
}

/// A JavaScript array of typed values.
fn array_of<T: tsify::Tsify + serde::Serialize>(items: &[T]) -> Result<JsValue> {
    let array = js_sys::Array::new();
    for item in items {
        array.push(&to_js(item)?);
    }
    Ok(array.into())
}

#[wasm_bindgen]
impl ConfabClient {
    /// Uploads `blob` (a `File` or any `Blob`) to `conv` in resumable chunks and resolves
    /// the attachment reference to pass to `send` (`attachments: [ref]`). Progress goes to
    /// `options.onProgress` and the `upload` event after each acknowledged chunk. Until it
    /// completes the upload is pending (kept with its bytes in IndexedDB): after a reload
    /// `resumeUploads()` continues it. Rejects with the server's code (`not_member`,
    /// `attachments_disabled`, `too_large`, `type_not_allowed`, `hash_mismatch`, ...) and
    /// `status`, after retrying failures that may pass (no answer, 429, 503, 507) with
    /// backoff; `aborted` when `options.signal` aborts.
    #[wasm_bindgen(js_name = uploadAttachment, unchecked_return_type = "Promise<Attachment>")]
    pub fn upload_attachment(
        &self,
        conv: String,
        blob: Blob,
        options: Option<Ts<UploadOptions>>,
    ) -> Promise {
        let rt = self.rt.clone();
        let rest = self.rest.clone();
        let options: Option<JsValue> = options.map(Into::into);
        promise(async move {
            let options = match options {
                Some(o) if !o.is_undefined() && !o.is_null() => from_js::<UploadOptions>(o)?,
                _ => from_js::<UploadOptions>(js_sys::Object::new().into())?,
            };
            upload(rt, rest, conv, blob, options).await
        })
    }

    /// The uploads started and not finished (on this device; with IndexedDB storage across
    /// reloads), oldest first.
    #[wasm_bindgen(js_name = pendingUploads, unchecked_return_type = "Promise<PendingUpload[]>")]
    pub fn pending_uploads(&self) -> Promise {
        let rest = self.rest.clone();
        promise(async move {
            let list: Vec<PendingUpload> = rest
                .pending
                .all()
                .await?
                .into_iter()
                .map(|(r, _)| r)
                .collect();
            array_of(&list)
        })
    }

    /// Continues every pending upload (not already under way on this page) from where the
    /// server says it stands, one after the other. Resolves one `ResumedUpload` each: its
    /// attachment, or its error (`pending` says whether it is kept for a later try).
    #[wasm_bindgen(js_name = resumeUploads, unchecked_return_type = "Promise<ResumedUpload[]>")]
    pub fn resume_uploads(&self, options: Option<Ts<ResumeOptions>>) -> Promise {
        let rt = self.rt.clone();
        let rest = self.rest.clone();
        let options: Option<JsValue> = options.map(Into::into);
        promise(async move {
            let options = match options {
                Some(o) if !o.is_undefined() && !o.is_null() => from_js::<ResumeOptions>(o)?,
                _ => from_js::<ResumeOptions>(js_sys::Object::new().into())?,
            };
            resume(rt, rest, options).await
        })
    }

    /// The file an attachment reference names, as a `Blob` of its type: fetched with the
    /// client's token and, for an encrypted conversation's attachment, checked and decrypted
    /// on this device. Rejects with the server's code, or `attachment_tampered` when the
    /// stored bytes are not the ones sealed.
    #[wasm_bindgen(js_name = downloadAttachment, unchecked_return_type = "Promise<Blob>")]
    pub fn download_attachment(&self, attachment: Ts<Attachment>) -> Promise {
        let rest = self.rest.clone();
        let attachment: JsValue = attachment.into();
        promise(async move {
            let attachment: Attachment = from_js(attachment)?;
            let http = rest.http()?;
            let path = attachment
                .url
                .find("/v1/")
                .map(|at| &attachment.url[at..])
                .ok_or_else(|| {
                    Failure::new(
                        "invalid_argument",
                        "the attachment's url is not the server's",
                    )
                })?;
            let bytes = transfer::with_retry(None, || http.get_bytes(path, None)).await?;
            Ok(JsValue::from(sealed::open_download(&attachment, bytes)?))
        })
    }

    /// Abandons a pending upload: the server drops its chunks, the store its record.
    #[wasm_bindgen(js_name = cancelUpload, unchecked_return_type = "Promise<void>")]
    pub fn cancel_upload(&self, upload: String) -> Promise {
        let rest = self.rest.clone();
        promise(async move {
            let http = rest.http()?;
            let found = rest
                .pending
                .all()
                .await?
                .into_iter()
                .find(|(r, _)| r.upload == upload);
            let Some((record, _)) = found else {
                return Err(Failure::new(
                    "not_found",
                    format!("no pending upload {upload}"),
                ));
            };
            transfer::abandon(http, &record.conv, &record.upload).await?;
            rest.pending.delete(&record.upload).await?;
            Ok(JsValue::UNDEFINED)
        })
    }
}
