//! Attachments of encrypted conversations (docs/E2EE.md, "Encrypted attachments"): a file is
//! sealed with AES-256-GCM under a fresh key and nonce before it is uploaded
//! (`confab_core::e2ee::file`), and `downloadAttachment` opens what it fetches.

use js_sys::{Array, Uint8Array};
use wasm_bindgen_futures::JsFuture;
use web_sys::Blob;

use crate::error::{describe_js, Failure, Result};
use crate::types::{Attachment, AttachmentSeal};
use confab_core::e2ee::file::{self, FileError, FILE_KEY_BYTES, FILE_NONCE_BYTES};

/// The whole of `blob`'s bytes (a sealed file is encrypted in one piece).
pub async fn bytes_of(blob: &Blob) -> Result<Vec<u8>> {
    let buffer = JsFuture::from(blob.array_buffer())
        .await
        .map_err(|e| Failure::new("read_failed", describe_js(&e).1))?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

fn blob_of(bytes: &[u8], mime: Option<&str>) -> Result<Blob> {
    let parts = Array::of1(&Uint8Array::from(bytes));
    let blob = match mime {
        Some(mime) => {
            let options = web_sys::BlobPropertyBag::new();
            options.set_type(mime);
            Blob::new_with_u8_array_sequence_and_options(&parts, &options)
        }
        None => Blob::new_with_u8_array_sequence(&parts),
    };
    blob.map_err(|e| Failure::new("invalid_argument", describe_js(&e).1))
}

fn failure(e: &FileError) -> Failure {
    Failure::new(e.code(), e.to_string())
}

/// `blob` sealed under a key and nonce drawn here for it alone: the ciphertext to upload and
/// what a reader needs to open it.
pub async fn seal_blob(blob: &Blob) -> Result<(Blob, AttachmentSeal)> {
    let plain = bytes_of(blob).await?;
    let mut key = [0u8; FILE_KEY_BYTES];
    let mut nonce = [0u8; FILE_NONCE_BYTES];
    getrandom::fill(&mut key)
        .and_then(|()| getrandom::fill(&mut nonce))
        .map_err(|e| Failure::new("unavailable", format!("no randomness: {e}")))?;
    let sealed = file::seal_file(&plain, &key, &nonce).map_err(|e| failure(&e))?;
    let seal = AttachmentSeal {
        key: hex::encode(key),
        nonce: hex::encode(nonce),
        sha256: sealed.hash,
    };
    Ok((blob_of(&sealed.ciphertext, None)?, seal))
}

/// The file `bytes` (as downloaded) holds: opened when the reference is sealed, as they are
/// otherwise. A ciphertext that is not the one sealed is `attachment_tampered`.
pub fn open_download(attachment: &Attachment, bytes: Vec<u8>) -> Result<Blob> {
    let mime = attachment.mime.as_deref();
    let Some(seal) = &attachment.encryption else {
        return blob_of(&bytes, mime);
    };
    let key = hex::decode(&seal.key).map_err(|_| failure(&FileError::BadKey))?;
    let nonce = hex::decode(&seal.nonce).map_err(|_| failure(&FileError::BadKey))?;
    let plain =
        file::open_file(&bytes, &key, &nonce, Some(&seal.sha256)).map_err(|e| failure(&e))?;
    blob_of(&plain, mime)
}
