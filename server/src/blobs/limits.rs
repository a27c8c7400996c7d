//! What an upload may be: its size (per tenant where configured) and its MIME type.

use std::collections::HashMap;

use confab_core::ids::TenantId;

use super::BlobError;

/// Default largest attachment: 25 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 25 << 20;
/// Default largest chunk of a resumable upload: 8 MiB (held in memory while it is stored).
pub const DEFAULT_CHUNK_MAX_BYTES: usize = 8 << 20;
/// Default MIME types: images, audio, video, PDF, plain text and zip archives.
pub const DEFAULT_TYPES: &str =
    "image/png,image/jpeg,image/gif,image/webp,audio/*,video/*,application/pdf,text/plain,application/zip";

/// Size and type limits of uploads.
#[derive(Debug, Clone)]
pub struct BlobLimits {
    /// Largest attachment of a tenant without an entry in `per_tenant`.
    pub max_bytes: u64,
    /// Per-tenant largest attachment, overriding `max_bytes`.
    pub per_tenant: HashMap<TenantId, u64>,
    /// Accepted MIME types: `type/subtype`, `type/*`, or `*/*` for any.
    pub types: Vec<String>,
    /// Largest chunk of a resumable upload.
    pub chunk_max_bytes: usize,
}

impl Default for BlobLimits {
    fn default() -> Self {
        BlobLimits {
            max_bytes: DEFAULT_MAX_BYTES,
            per_tenant: HashMap::new(),
            types: parse_types(DEFAULT_TYPES),
            chunk_max_bytes: DEFAULT_CHUNK_MAX_BYTES,
        }
    }
}

/// A comma-separated list of MIME patterns, lowercased.
pub fn parse_types(list: &str) -> Vec<String> {
    list.split(',')
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// `tenant=bytes,tenant=bytes`.
pub fn parse_per_tenant(list: &str) -> Result<HashMap<TenantId, u64>, String> {
    let mut out = HashMap::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (tenant, bytes) = entry
            .split_once('=')
            .ok_or_else(|| format!("{entry:?}: expected tenant=bytes"))?;
        let tenant = TenantId::new(tenant.trim()).map_err(|e| format!("{entry:?}: {e}"))?;
        let bytes = bytes
            .trim()
            .parse::<u64>()
            .map_err(|e| format!("{entry:?}: {e}"))?;
        out.insert(tenant, bytes);
    }
    Ok(out)
}

impl BlobLimits {
    pub fn max_bytes_of(&self, tenant: &TenantId) -> u64 {
        self.per_tenant
            .get(tenant)
            .copied()
            .unwrap_or(self.max_bytes)
    }

    /// Refuses a size above the tenant's limit.
    pub fn check_size(&self, tenant: &TenantId, size: u64) -> Result<(), BlobError> {
        let max = self.max_bytes_of(tenant);
        if size > max {
            return Err(BlobError::TooLarge { size, max });
        }
        Ok(())
    }

    /// The MIME type, normalized (lowercase, parameters dropped), if it is accepted.
    pub fn check_type(&self, mime: &str) -> Result<String, BlobError> {
        let bare = mime
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        confab_core::model::attachment::validate_mime(&bare)
            .map_err(|_| BlobError::TypeNotAllowed(mime.to_owned()))?;
        let (kind, _) = bare.split_once('/').unwrap_or((&bare, ""));
        let accepted = self
            .types
            .iter()
            .any(|t| t == "*/*" || *t == bare || t.strip_suffix("/*").is_some_and(|k| k == kind));
        if accepted {
            Ok(bare)
        } else {
            Err(BlobError::TypeNotAllowed(bare))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_match_exactly_by_family_or_any() {
        let limits = BlobLimits::default();
        assert_eq!(
            limits.check_type("image/PNG").ok(),
            Some("image/png".into())
        );
        assert_eq!(
            limits.check_type("text/plain; charset=utf-8").ok(),
            Some("text/plain".into())
        );
        assert!(limits.check_type("audio/ogg").is_ok());
        for bad in ["application/x-msdownload", "text/html", "png", ""] {
            assert!(
                matches!(limits.check_type(bad), Err(BlobError::TypeNotAllowed(_))),
                "{bad}"
            );
        }
        let any = BlobLimits {
            types: parse_types("*/*"),
            ..BlobLimits::default()
        };
        assert!(any.check_type("text/html").is_ok());
    }

    #[test]
    fn sizes_are_per_tenant() {
        let limits = BlobLimits {
            per_tenant: parse_per_tenant("small=10, big = 1000").expect("parses"),
            ..BlobLimits::default()
        };
        let small = TenantId::new("small").expect("id");
        assert!(limits.check_size(&small, 10).is_ok());
        assert!(matches!(
            limits.check_size(&small, 11),
            Err(BlobError::TooLarge { size: 11, max: 10 })
        ));
        let other = TenantId::new("other").expect("id");
        assert_eq!(limits.max_bytes_of(&other), DEFAULT_MAX_BYTES);
        assert!(parse_per_tenant("nope").is_err());
        assert!(parse_per_tenant("a=x").is_err());
    }
}
