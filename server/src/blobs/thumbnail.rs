//! Thumbnails of image blobs (PNG, JPEG, GIF, WebP): a JPEG at most `edge` pixels on its
//! longer side, made on first request and kept beside the blob.
//!
//! Memory is bounded before decoding: the header's dimensions are read first and an image
//! above `max_pixels` is refused (`image_too_large`) without decoding it; the decoder also
//! runs under an allocation limit, and at most `concurrency` decodes run at once.

use std::io::Cursor;
use std::sync::Arc;

use bytes::Bytes;
use image::{ImageFormat, ImageReader};
use object_store::{ObjectStoreExt, PutPayload};
use tokio::sync::Semaphore;

use super::{store_error, BlobError, BlobHash, Blobs, Scope};

/// Types a thumbnail is made of.
pub const IMAGE_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

/// Thumbnail settings.
#[derive(Debug, Clone)]
pub struct ThumbnailConfig {
    /// Longest side of a thumbnail, in pixels.
    pub edge: u32,
    /// Largest image (width × height) decoded: 16 MP, 64 MiB as RGBA.
    pub max_pixels: u64,
    /// Largest image file read to decode.
    pub max_source_bytes: u64,
    /// Decodes running at once.
    pub permits: Arc<Semaphore>,
}

impl Default for ThumbnailConfig {
    fn default() -> Self {
        ThumbnailConfig {
            edge: 256,
            max_pixels: 16_000_000,
            max_source_bytes: 32 << 20,
            permits: Arc::new(Semaphore::new(2)),
        }
    }
}

fn format_of(mime: &str) -> Option<ImageFormat> {
    match mime {
        "image/png" => Some(ImageFormat::Png),
        "image/jpeg" => Some(ImageFormat::Jpeg),
        "image/gif" => Some(ImageFormat::Gif),
        "image/webp" => Some(ImageFormat::WebP),
        _ => None,
    }
}

/// Makes the thumbnail of `bytes` (blocking: run it off the runtime's workers).
pub fn render(
    bytes: &[u8],
    format: ImageFormat,
    config: &ThumbnailConfig,
) -> Result<Vec<u8>, BlobError> {
    let undecodable =
        |e: image::ImageError| BlobError::NoThumbnail(format!("not a readable image: {e}"));
    let (width, height) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(undecodable)?;
    let pixels = u64::from(width) * u64::from(height);
    if pixels > config.max_pixels {
        return Err(BlobError::NoThumbnail(format!(
            "{width}×{height} is more than {} pixels",
            config.max_pixels
        )));
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    // RGBA at 16 bits per channel at most, plus the decoder's working room.
    limits.max_alloc = Some(pixels.saturating_mul(8).saturating_add(16 << 20));
    reader.limits(limits);
    let image = reader.decode().map_err(undecodable)?;
    let thumb = image.thumbnail(config.edge, config.edge).to_rgb8();
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80)
        .encode_image(&thumb)
        .map_err(|e| BlobError::Store(format!("encoding a thumbnail: {e}")))?;
    Ok(out)
}

impl Blobs {
    /// The thumbnail of an image blob: the stored one, or one made now and stored.
    /// `NotFound` when there is no such blob; `NoThumbnail` when it is no image this can
    /// read or it is too large.
    pub async fn thumbnail(&self, scope: &Scope, hash: &BlobHash) -> Result<Bytes, BlobError> {
        let Some(meta) = self.meta(scope, hash).await? else {
            return Err(BlobError::NotFound(format!("no attachment {hash}")));
        };
        let Some(format) = format_of(&meta.mime) else {
            return Err(BlobError::NoThumbnail(format!(
                "{} has no thumbnail (images: {})",
                meta.mime,
                IMAGE_TYPES.join(", ")
            )));
        };
        match self.store.get(&scope.thumb(hash)).await {
            Ok(got) => return got.bytes().await.map_err(store_error),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(store_error(e)),
        }
        let config = &self.thumbnails;
        if meta.size > config.max_source_bytes {
            return Err(BlobError::NoThumbnail(format!(
                "{} bytes is more than {} to decode",
                meta.size, config.max_source_bytes
            )));
        }
        let _permit = config
            .permits
            .acquire()
            .await
            .map_err(|e| BlobError::Store(e.to_string()))?;
        let source = self
            .store
            .get(&scope.blob(hash))
            .await
            .map_err(store_error)?
            .bytes()
            .await
            .map_err(store_error)?;
        let config = config.clone();
        let thumb = tokio::task::spawn_blocking(move || render(&source, format, &config))
            .await
            .map_err(|e| BlobError::Store(format!("thumbnail task: {e}")))??;
        let thumb = Bytes::from(thumb);
        self.store
            .put(&scope.thumb(hash), PutPayload::from(thumb.clone()))
            .await
            .map_err(store_error)?;
        Ok(thumb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        });
        let mut out = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .expect("encode");
        out
    }

    #[test]
    fn thumbnails_fit_the_edge_and_keep_the_aspect() {
        let thumb = render(
            &png(1000, 500),
            ImageFormat::Png,
            &ThumbnailConfig::default(),
        )
        .expect("thumbnail");
        let decoded = image::load_from_memory_with_format(&thumb, ImageFormat::Jpeg).expect("jpeg");
        assert_eq!((decoded.width(), decoded.height()), (256, 128));
    }

    #[test]
    fn images_above_the_pixel_limit_are_refused_before_decoding() {
        let config = ThumbnailConfig {
            max_pixels: 100 * 100,
            ..ThumbnailConfig::default()
        };
        assert!(render(&png(100, 100), ImageFormat::Png, &config).is_ok());
        let err = render(&png(101, 100), ImageFormat::Png, &config).expect_err("too large");
        assert_eq!(err.code(), "no_thumbnail");
        let err = render(b"not an image", ImageFormat::Png, &config).expect_err("garbage");
        assert_eq!(err.code(), "no_thumbnail");
    }
}
