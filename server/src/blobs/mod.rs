//! Attachments' bytes (docs/ATTACHMENTS.md): content-addressed blobs in an object store,
//! scoped to a tenant and a conversation.
//!
//! Layout under the store's root (one prefix per conversation, so a blob of another tenant
//! or conversation has another path and cannot be named from here):
//!
//! ```text
//! t/<tenant>/c/<conv>/blobs/<sha256>        the bytes
//! t/<tenant>/c/<conv>/meta/<sha256>.json    size, type, uploader, time (a blob exists once this does)
//! t/<tenant>/c/<conv>/thumbs/<sha256>.jpg   a thumbnail, made on first request
//! t/<tenant>/c/<conv>/uploads/<id>/session.json and /<offset> parts of a resumable upload
//! ```
//!
//! Bytes are hashed while they stream into a multipart upload; a hash that does not match
//! aborts it, so nothing is stored. Memory per upload is the store's part buffer (5 MiB for
//! object_store's multipart writer) or one chunk of a resumable upload.

pub mod config;
pub mod limits;
pub mod retention;
pub mod session;
pub mod thumbnail;

use std::sync::Arc;

use bytes::Bytes;
use confab_core::ids::{ConvId, TenantId};
use futures_util::{Stream, StreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use limits::BlobLimits;

/// Why a blob operation failed: each has a stable code (docs/ATTACHMENTS.md).
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("{size} bytes is more than this tenant's limit of {max}")]
    TooLarge { size: u64, max: u64 },
    #[error("a chunk of {len} bytes is more than the limit of {max}")]
    ChunkTooLarge { len: u64, max: u64 },
    #[error("type {0:?} is not accepted here")]
    TypeNotAllowed(String),
    #[error("the bytes hash to {actual}, not {stated}")]
    HashMismatch { stated: String, actual: String },
    #[error("not a SHA-256 hash (64 hex digits): {0:?}")]
    InvalidHash(String),
    #[error("{0}")]
    SizeMismatch(String),
    #[error("the upload is at offset {current}, not {sent}")]
    OffsetMismatch { current: u64, sent: u64 },
    #[error("{0}")]
    NotFound(String),
    #[error("the attachment store is full")]
    Full,
    #[error("the attachment store failed: {0}")]
    Store(String),
    #[error("{0}")]
    NoThumbnail(String),
    #[error("reading the request body: {0}")]
    Body(String),
}

impl BlobError {
    /// The stable code of the REST answer.
    pub fn code(&self) -> &'static str {
        match self {
            BlobError::TooLarge { .. } => "too_large",
            BlobError::ChunkTooLarge { .. } => "chunk_too_large",
            BlobError::TypeNotAllowed(_) => "type_not_allowed",
            BlobError::HashMismatch { .. } => "hash_mismatch",
            BlobError::InvalidHash(_) => "invalid_hash",
            BlobError::SizeMismatch(_) => "size_mismatch",
            BlobError::OffsetMismatch { .. } => "offset_mismatch",
            BlobError::NotFound(_) => "not_found",
            BlobError::Full => "storage_full",
            BlobError::Store(_) => "unavailable",
            BlobError::NoThumbnail(_) => "no_thumbnail",
            BlobError::Body(_) => "bad_request",
        }
    }
}

/// A store error: "full" when the file system ran out of space (ENOSPC), otherwise a
/// failure to retry. Not-found is the caller's to decide.
fn store_error(e: object_store::Error) -> BlobError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::StorageFull || io.raw_os_error() == Some(28) {
                return BlobError::Full;
            }
        }
        source = err.source();
    }
    BlobError::Store(e.to_string())
}

/// A blob's SHA-256 (core's: the device names sealed messages' blobs by it too).
pub use confab_core::model::attachment::BlobHash;

/// The hash `text` names (64 hex digits), or `invalid_hash`.
pub fn parse_hash(text: &str) -> Result<BlobHash, BlobError> {
    BlobHash::parse(text).map_err(|_| BlobError::InvalidHash(text.chars().take(80).collect()))
}

/// What is stored beside a blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobMeta {
    pub hash: String,
    pub size: u64,
    pub mime: String,
    pub uploaded_by: String,
    pub created_at: i64,
}

/// One conversation's place in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub tenant: TenantId,
    pub conv: ConvId,
}

impl Scope {
    pub fn new(tenant: &TenantId, conv: &ConvId) -> Self {
        Scope {
            tenant: tenant.clone(),
            conv: conv.clone(),
        }
    }

    fn root(&self) -> String {
        // Tenant and conversation ids are restricted names (no `/`); object_store's Path
        // still escapes what a path segment may not hold.
        format!(
            "t/{}/c/{}",
            Path::from(self.tenant.as_str()),
            Path::from(self.conv.as_str())
        )
    }

    pub fn blob(&self, hash: &BlobHash) -> Path {
        Path::from(format!("{}/blobs/{hash}", self.root()))
    }

    pub fn blobs(&self) -> Path {
        Path::from(format!("{}/blobs", self.root()))
    }

    pub fn meta(&self, hash: &BlobHash) -> Path {
        Path::from(format!("{}/meta/{hash}.json", self.root()))
    }

    pub fn thumb(&self, hash: &BlobHash) -> Path {
        Path::from(format!("{}/thumbs/{hash}.jpg", self.root()))
    }

    pub fn uploads(&self) -> Path {
        Path::from(format!("{}/uploads", self.root()))
    }

    pub fn upload(&self, id: &str) -> Path {
        Path::from(format!("{}/uploads/{id}", self.root()))
    }
}

/// The attachment store: an object store and the limits of what goes in.
#[derive(Debug, Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    pub limits: BlobLimits,
    pub thumbnails: thumbnail::ThumbnailConfig,
}

impl Blobs {
    pub fn new(store: Arc<dyn ObjectStore>, limits: BlobLimits) -> Self {
        Blobs {
            store,
            limits,
            thumbnails: thumbnail::ThumbnailConfig::default(),
        }
    }

    /// Local files under `dir` (created if missing).
    pub fn local(dir: &std::path::Path, limits: BlobLimits) -> Result<Self, BlobError> {
        std::fs::create_dir_all(dir).map_err(|e| BlobError::Store(e.to_string()))?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .map_err(store_error)?
            // Empty folders of deleted blobs and finished uploads go too.
            .with_automatic_cleanup(true);
        Ok(Blobs::new(Arc::new(fs), limits))
    }

    /// The store a URL names (`file:///path`, `memory:///`, and with the `s3` feature
    /// `s3://bucket/prefix`), configured from `AWS_*` variables for S3.
    pub fn from_url(url: &str, limits: BlobLimits) -> Result<Self, BlobError> {
        let parsed = url::Url::parse(url).map_err(|e| BlobError::Store(format!("{url}: {e}")))?;
        let options: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with("AWS_"))
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        let (store, prefix) =
            object_store::parse_url_opts(&parsed, options).map_err(store_error)?;
        let store: Arc<dyn ObjectStore> = if prefix.as_ref().is_empty() {
            Arc::from(store)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(store, prefix))
        };
        Ok(Blobs::new(store, limits))
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The stored blob's description, if it is stored.
    pub async fn meta(
        &self,
        scope: &Scope,
        hash: &BlobHash,
    ) -> Result<Option<BlobMeta>, BlobError> {
        match self.store.get(&scope.meta(hash)).await {
            Ok(got) => {
                let bytes = got.bytes().await.map_err(store_error)?;
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| BlobError::Store(format!("blob description: {e}")))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    /// Streams `body` into the blob `hash` of `scope`, at most `max` bytes and exactly
    /// `expected` when given. Stores nothing unless the bytes hash to `hash`.
    pub async fn put_stream<S, E>(
        &self,
        scope: &Scope,
        hash: &BlobHash,
        expected: Option<u64>,
        max: u64,
        body: S,
    ) -> Result<u64, BlobError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let mut body = body;
        let upload = self
            .store
            .put_multipart(&scope.blob(hash))
            .await
            .map_err(store_error)?;
        let mut writer = WriteMultipart::new(upload);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let failure = loop {
            let chunk = match body.next().await {
                None => break None,
                Some(Err(e)) => break Some(BlobError::Body(e.to_string())),
                Some(Ok(chunk)) => chunk,
            };
            size += chunk.len() as u64;
            if size > max {
                break Some(BlobError::TooLarge { size, max });
            }
            if expected.is_some_and(|e| size > e) {
                break Some(BlobError::SizeMismatch(format!(
                    "more bytes than the {} announced",
                    expected.unwrap_or_default()
                )));
            }
            hasher.update(&chunk);
            // At most a couple of parts in flight: memory stays bounded per upload.
            if let Err(e) = writer.wait_for_capacity(2).await {
                break Some(store_error(e));
            }
            writer.put(chunk);
        };
        let failure = failure.or_else(|| match expected {
            Some(e) if e != size => Some(BlobError::SizeMismatch(format!(
                "{size} bytes sent, {e} announced"
            ))),
            _ => None,
        });
        let failure = failure.or_else(|| {
            let actual = BlobHash::from_bytes(hasher.finalize().into());
            (actual != *hash).then(|| BlobError::HashMismatch {
                stated: hash.hex(),
                actual: actual.hex(),
            })
        });
        if let Some(failure) = failure {
            if let Err(e) = writer.abort().await {
                tracing::warn!(error = %e, "aborting a refused upload");
            }
            return Err(failure);
        }
        writer.finish().await.map_err(store_error)?;
        Ok(size)
    }

    /// Records a stored blob: from now on it exists.
    pub async fn put_meta(&self, scope: &Scope, meta: &BlobMeta) -> Result<(), BlobError> {
        let hash = parse_hash(&meta.hash)?;
        let json = serde_json::to_vec(meta).map_err(|e| BlobError::Store(e.to_string()))?;
        self.store
            .put(&scope.meta(&hash), PutPayload::from(json))
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// The blob's bytes as a stream, with its description; `None` if it is not stored.
    pub async fn get(
        &self,
        scope: &Scope,
        hash: &BlobHash,
    ) -> Result<Option<(BlobMeta, object_store::GetResult)>, BlobError> {
        let Some(meta) = self.meta(scope, hash).await? else {
            return Ok(None);
        };
        match self.store.get(&scope.blob(hash)).await {
            Ok(got) => Ok(Some((meta, got))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    /// Copies the blob `hash` of `from` into `to` (a forward's attachment: docs/ATTACHMENTS.md,
    /// "Forwarding"), described as `by`'s at `now_ms`; the bytes are copied inside the
    /// object store. The blob `to` holds already, if it does; `None` when `from` holds none.
    /// The copy is `to`'s own from then on: its readers read it, its retention sweeps it.
    pub async fn copy(
        &self,
        from: &Scope,
        to: &Scope,
        hash: &BlobHash,
        by: &str,
        now_ms: i64,
    ) -> Result<Option<(BlobMeta, bool)>, BlobError> {
        if let Some(meta) = self.meta(to, hash).await? {
            return Ok(Some((meta, false)));
        }
        let Some(source) = self.meta(from, hash).await? else {
            return Ok(None);
        };
        match self.store.copy(&from.blob(hash), &to.blob(hash)).await {
            Ok(()) => {}
            // Swept between the description's read and the copy.
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(store_error(e)),
        }
        let meta = BlobMeta {
            uploaded_by: by.to_owned(),
            created_at: now_ms,
            ..source
        };
        self.put_meta(to, &meta).await?;
        Ok(Some((meta, true)))
    }

    /// Deletes a blob with its description and thumbnail (the description first: a blob
    /// without one does not exist).
    pub async fn delete(&self, scope: &Scope, hash: &BlobHash) -> Result<(), BlobError> {
        for path in [scope.meta(hash), scope.thumb(hash), scope.blob(hash)] {
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(store_error(e)),
            }
        }
        Ok(())
    }
}

/// The path of a blob under the REST root.
pub fn path_of(conv: &ConvId, hash: &BlobHash) -> String {
    format!("/v1/conversations/{conv}/attachments/{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_parse_only_as_64_hex_digits() {
        let h = BlobHash::of(b"hello");
        assert_eq!(parse_hash(&h.hex()).ok(), Some(h));
        assert_eq!(parse_hash(&h.hex().to_uppercase()).ok(), Some(h));
        for bad in ["", "00", &"g".repeat(64), &"0".repeat(65)] {
            assert!(matches!(parse_hash(bad), Err(BlobError::InvalidHash(_))));
        }
    }

    #[tokio::test]
    async fn a_mismatching_upload_stores_nothing() {
        let dir = tempfile::tempdir().expect("dir");
        let blobs = Blobs::local(dir.path(), BlobLimits::default()).expect("store");
        let scope = Scope::new(
            &TenantId::new("t").expect("id"),
            &ConvId::new("c").expect("id"),
        );
        let stated = BlobHash::of(b"something else");
        let body =
            futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"hello"))]);
        let err = blobs
            .put_stream(&scope, &stated, None, 100, body)
            .await
            .expect_err("mismatch");
        assert_eq!(err.code(), "hash_mismatch");
        let files: Vec<_> = walk(dir.path());
        assert!(files.is_empty(), "{files:?}");
        let right = BlobHash::of(b"hello");
        let body =
            futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"hello"))]);
        assert_eq!(
            blobs
                .put_stream(&scope, &right, Some(5), 100, body)
                .await
                .ok(),
            Some(5)
        );
        assert_eq!(walk(dir.path()).len(), 1);
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
        out
    }
}
