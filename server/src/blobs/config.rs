//! The attachment flags of `serve` (every flag has a `CONFAB_*` variable).

use std::path::Path;

use clap::Args;

use super::limits::{self, BlobLimits};
use super::{BlobError, Blobs};

#[derive(Debug, Clone, Args)]
pub struct AttachmentArgs {
    /// Where attachments are stored: an object store URL (`file:///srv/confab-blobs`; with
    /// the `s3` build feature `s3://bucket/prefix`, credentials and endpoint from `AWS_*`
    /// variables). Default: local files in `<data-dir>/blobs`.
    #[arg(long, env = "CONFAB_BLOB_STORE_URL")]
    pub blob_store_url: Option<String>,
    /// Largest attachment in bytes (25 MiB).
    #[arg(long, env = "CONFAB_ATTACHMENT_MAX_BYTES", default_value_t = limits::DEFAULT_MAX_BYTES)]
    pub attachment_max_bytes: u64,
    /// Per-tenant largest attachment: `tenant=bytes,tenant=bytes`.
    #[arg(long, env = "CONFAB_ATTACHMENT_TENANT_MAX_BYTES", default_value = "")]
    pub attachment_tenant_max_bytes: String,
    /// Accepted MIME types, comma-separated: `type/subtype`, `type/*`, or `*/*`.
    #[arg(long, env = "CONFAB_ATTACHMENT_TYPES", default_value = limits::DEFAULT_TYPES)]
    pub attachment_types: String,
    /// Largest chunk of a resumable upload in bytes (8 MiB; held in memory while stored).
    #[arg(long, env = "CONFAB_ATTACHMENT_CHUNK_BYTES", default_value_t = limits::DEFAULT_CHUNK_MAX_BYTES)]
    pub attachment_chunk_bytes: usize,
    /// Largest image (width × height) a thumbnail is made of; larger ones have none.
    #[arg(
        long,
        env = "CONFAB_THUMBNAIL_MAX_PIXELS",
        default_value_t = 16_000_000
    )]
    pub thumbnail_max_pixels: u64,
}

impl AttachmentArgs {
    /// The store and limits these flags name.
    pub fn open(&self, data_dir: &Path) -> Result<Blobs, BlobError> {
        let limits = BlobLimits {
            max_bytes: self.attachment_max_bytes,
            per_tenant: limits::parse_per_tenant(&self.attachment_tenant_max_bytes)
                .map_err(|e| BlobError::Store(format!("--attachment-tenant-max-bytes: {e}")))?,
            types: limits::parse_types(&self.attachment_types),
            chunk_max_bytes: self.attachment_chunk_bytes.max(1),
        };
        let mut blobs = match &self.blob_store_url {
            Some(url) => Blobs::from_url(url, limits)?,
            None => Blobs::local(&data_dir.join("blobs"), limits)?,
        };
        blobs.thumbnails.max_pixels = self.thumbnail_max_pixels;
        Ok(blobs)
    }
}
