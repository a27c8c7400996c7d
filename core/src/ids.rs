//! Identifier newtypes, document ids, and the deterministic ids of direct conversations and
//! resource support threads.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::error::ModelError;
use crate::limits::{ID_MAX_CHARS, TENANT_MAX_CHARS};

fn check_id(field: &'static str, value: &str, max: usize, extra: &str) -> Result<(), ModelError> {
    if value.is_empty() {
        return Err(ModelError::Empty { field });
    }
    if value.chars().count() > max {
        return Err(ModelError::TooLong {
            field,
            len: value.chars().count(),
            max,
            unit: "characters",
        });
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-' || extra.contains(*c)))
    {
        return Err(ModelError::InvalidFormat {
            field,
            reason: format!("character {bad:?} is not allowed (use A-Z a-z 0-9 _ - {extra})"),
        });
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr, $extra:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps an id.
            pub fn new(value: impl Into<String>) -> Result<Self, ModelError> {
                let value = value.into();
                check_id($field, &value, $max, $extra)?;
                Ok(Self(value))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ModelError;
            fn try_from(value: String) -> Result<Self, ModelError> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = ModelError;
            fn from_str(s: &str) -> Result<Self, ModelError> {
                Self::new(s)
            }
        }
    };
}

id_type!(
    /// A tenant: nothing crosses tenants.
    TenantId, "tenant", TENANT_MAX_CHARS, ""
);
id_type!(
    /// An account (a JWT subject). Accounts may look like e-mail addresses.
    AccountId, "account", ID_MAX_CHARS, ".@+"
);
id_type!(
    /// A conversation. No `.`: it separates the bucket in a message document's key.
    ConvId, "conversation", ID_MAX_CHARS, ""
);
id_type!(
    /// A message, chosen by the client that writes it (unique per conversation).
    MessageId, "message", ID_MAX_CHARS, ""
);
id_type!(
    /// A platform resource a support thread is bound to.
    ResourceId, "resource", ID_MAX_CHARS, ""
);
id_type!(
    /// A lead of a support thread, the platform's id.
    LeadId, "lead", ID_MAX_CHARS, ""
);
id_type!(
    /// A contact entry in an account's private document.
    ContactId, "contact", ID_MAX_CHARS, ""
);
id_type!(
    /// One device of an account: a leaf of every encrypted conversation its account is in.
    DeviceId, "device", ID_MAX_CHARS, ""
);

/// The four kinds of document (docs/SCHEMA.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DocKind {
    /// A conversation: info, settings, members, pins, read markers, lifecycle.
    Conv,
    /// One time bucket of a conversation's messages.
    Msgs,
    /// An account's public profile.
    Profile,
    /// An account's private data: contacts, per-conversation settings, drafts.
    Private,
}

impl DocKind {
    /// The kind's name in a document id.
    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Conv => "conv",
            DocKind::Msgs => "msgs",
            DocKind::Profile => "profile",
            DocKind::Private => "private",
        }
    }
}

/// Which bucket of a conversation a message document holds: the *period* its messages were
/// created in (`floor(created_at / span)`), and the *part* of that period. A busy period
/// fills several parts one after the other, so no document grows without bound
/// (docs/FEATURES.md, "Bounded buckets"). Written `<period>` for part 0 and
/// `<period>.<part>` after it: the ids of buckets from before parts existed are unchanged.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bucket {
    pub period: i64,
    pub part: u32,
}

impl Bucket {
    pub const fn new(period: i64, part: u32) -> Self {
        Bucket { period, part }
    }

    /// The first part of a period.
    pub const fn first(period: i64) -> Self {
        Bucket { period, part: 0 }
    }

    /// The part that follows this one in its period.
    pub fn next(self) -> Self {
        Bucket {
            period: self.period,
            part: self.part.saturating_add(1),
        }
    }

    /// The part before this one in its period (none for a period's first part).
    pub fn previous_part(self) -> Option<Self> {
        self.part.checked_sub(1).map(|part| Bucket {
            period: self.period,
            part,
        })
    }
}

impl From<i64> for Bucket {
    fn from(period: i64) -> Self {
        Bucket::first(period)
    }
}

impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.part == 0 {
            write!(f, "{}", self.period)
        } else {
            write!(f, "{}.{}", self.period, self.part)
        }
    }
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bucket({self})")
    }
}

impl std::str::FromStr for Bucket {
    type Err = ModelError;

    /// Parses the normal form only: one spelling per document (`+007`, `07` and `7.0` must
    /// not name bucket `7`).
    fn from_str(text: &str) -> Result<Self, ModelError> {
        let bad = |reason: &str| ModelError::InvalidFormat {
            field: "bucket",
            reason: reason.to_owned(),
        };
        let (period, part) = match text.split_once('.') {
            None => (text, None),
            Some((period, part)) => (period, Some(part)),
        };
        let period_n: i64 = period
            .parse()
            .map_err(|_| bad("the period is not an integer"))?;
        if period_n.to_string() != period {
            return Err(bad("the period is not in its normal form"));
        }
        let part_n = match part {
            None => 0,
            Some(part) => {
                let n: u32 = part
                    .parse()
                    .map_err(|_| bad("the part is not an integer"))?;
                if n == 0 || n.to_string() != part {
                    return Err(bad("the part is not in its normal form (1, 2, ...)"));
                }
                n
            }
        };
        Ok(Bucket::new(period_n, part_n))
    }
}

impl serde::Serialize for Bucket {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Bucket {
    /// A string in the normal form, or an integer (a period's first part, as buckets were
    /// written before parts existed).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Bucket;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a bucket: \"<period>\" or \"<period>.<part>\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Bucket, E> {
                Ok(Bucket::first(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Bucket, E> {
                i64::try_from(v)
                    .map(Bucket::first)
                    .map_err(|_| E::custom("bucket period out of range"))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Bucket, E> {
                // JavaScript numbers arrive as floats through some encoders.
                if v.fract() == 0.0 && v.abs() < 9.0e15 {
                    Ok(Bucket::first(v as i64))
                } else {
                    Err(E::custom("bucket period is not an integer"))
                }
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Bucket, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// What a document is about, typed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DocTarget {
    Conv(ConvId),
    Msgs(ConvId, Bucket),
    Profile(AccountId),
    Private(AccountId),
}

/// `<tenant>/<kind>/<key>`: the id of every document.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocId {
    tenant: TenantId,
    target: DocTarget,
}

impl DocId {
    pub fn new(tenant: TenantId, target: DocTarget) -> Self {
        Self { tenant, target }
    }
    pub fn conv(tenant: &TenantId, conv: &ConvId) -> Self {
        Self::new(tenant.clone(), DocTarget::Conv(conv.clone()))
    }
    pub fn msgs(tenant: &TenantId, conv: &ConvId, bucket: impl Into<Bucket>) -> Self {
        Self::new(tenant.clone(), DocTarget::Msgs(conv.clone(), bucket.into()))
    }
    pub fn profile(tenant: &TenantId, account: &AccountId) -> Self {
        Self::new(tenant.clone(), DocTarget::Profile(account.clone()))
    }
    pub fn private(tenant: &TenantId, account: &AccountId) -> Self {
        Self::new(tenant.clone(), DocTarget::Private(account.clone()))
    }
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }
    pub fn target(&self) -> &DocTarget {
        &self.target
    }
    pub fn kind(&self) -> DocKind {
        match self.target {
            DocTarget::Conv(_) => DocKind::Conv,
            DocTarget::Msgs(..) => DocKind::Msgs,
            DocTarget::Profile(_) => DocKind::Profile,
            DocTarget::Private(_) => DocKind::Private,
        }
    }
    /// The conversation a `conv` or `msgs` document belongs to.
    pub fn conv_id(&self) -> Option<&ConvId> {
        match &self.target {
            DocTarget::Conv(c) | DocTarget::Msgs(c, _) => Some(c),
            _ => None,
        }
    }

    /// Parses `<tenant>/<kind>/<key>`.
    pub fn parse(text: &str) -> Result<Self, ModelError> {
        let bad = |reason: &str| ModelError::InvalidFormat {
            field: "document id",
            reason: reason.to_owned(),
        };
        let mut parts = text.splitn(3, '/');
        let (Some(tenant), Some(kind), Some(key)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected <tenant>/<kind>/<key>"));
        };
        let tenant = TenantId::new(tenant)?;
        let target = match kind {
            "conv" => DocTarget::Conv(ConvId::new(key)?),
            "msgs" => {
                let (conv, bucket) = key
                    .split_once('.')
                    .ok_or_else(|| bad("a msgs key is <conversation>.<bucket>"))?;
                DocTarget::Msgs(ConvId::new(conv)?, bucket.parse()?)
            }
            "profile" => DocTarget::Profile(AccountId::new(key)?),
            "private" => DocTarget::Private(AccountId::new(key)?),
            other => return Err(bad(&format!("unknown document kind {other:?}"))),
        };
        Ok(Self { tenant, target })
    }
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            DocTarget::Conv(c) => write!(f, "{}/conv/{}", self.tenant, c),
            DocTarget::Msgs(c, b) => write!(f, "{}/msgs/{}.{}", self.tenant, c, b),
            DocTarget::Profile(a) => write!(f, "{}/profile/{}", self.tenant, a),
            DocTarget::Private(a) => write!(f, "{}/private/{}", self.tenant, a),
        }
    }
}

impl fmt::Debug for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocId({self})")
    }
}

impl ConvId {
    /// Whether this is a direct conversation's id: `d-` ids are reserved for them (a
    /// creation under one is refused), so the id alone says it.
    pub fn is_direct(&self) -> bool {
        self.0.starts_with("d-")
    }

    /// Whether this is a direct conversation's or a support thread's id: one made by a
    /// deterministic creation change, which any of its members' devices may write (`d-` and
    /// `s-` ids are reserved for them).
    pub fn is_deterministic(&self) -> bool {
        self.is_direct() || self.0.starts_with("s-")
    }
}

fn hashed_id(prefix: &str, domain: &str, parts: &[&str]) -> ConvId {
    ConvId(hashed(prefix, domain, parts))
}

fn hashed(prefix: &str, domain: &str, parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(domain.as_bytes());
    for part in parts {
        // Length-prefixed so that ("ab","c") and ("a","bc") never collide.
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    format!("{prefix}{}", hex::encode(&digest[..16]))
}

/// The one direct conversation of a pair in a tenant: the same on every device, offline too.
pub fn direct_conv_id(tenant: &TenantId, a: &AccountId, b: &AccountId) -> ConvId {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    hashed_id(
        "d-",
        "confab/direct/v1",
        &[tenant.as_str(), lo.as_str(), hi.as_str()],
    )
}

/// The one end-to-end encrypted direct conversation of a pair: apart from the plaintext one
/// (a conversation never changes whether it is encrypted), the same on every device.
pub fn encrypted_direct_conv_id(tenant: &TenantId, a: &AccountId, b: &AccountId) -> ConvId {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    hashed_id(
        "d-",
        "confab/direct-e2ee/v1",
        &[tenant.as_str(), lo.as_str(), hi.as_str()],
    )
}

/// The one support thread of a client about a resource: one per (client, resource) pair.
pub fn support_conv_id(tenant: &TenantId, client: &AccountId, resource: &ResourceId) -> ConvId {
    hashed_id(
        "s-",
        "confab/support/v1",
        &[tenant.as_str(), client.as_str(), resource.as_str()],
    )
}

/// The one end-to-end encrypted support thread of a client about a resource: apart from the
/// plaintext one (a conversation never changes whether it is encrypted), `s-` like it so the
/// support rules that read the id keep applying.
pub fn encrypted_support_conv_id(
    tenant: &TenantId,
    client: &AccountId,
    resource: &ResourceId,
) -> ConvId {
    hashed_id(
        "s-",
        "confab/support-e2ee/v1",
        &[tenant.as_str(), client.as_str(), resource.as_str()],
    )
}

/// The lead a client's new request opens on the support thread `conv`, closed at
/// `closed_at` while about `previous`: derived from that closure alone, so every device,
/// node and store that sees the same closure names the same new lead, and two requests
/// racing after one closure open one lead (docs/POLICY.md, "Support threads").
pub fn next_lead_id(conv: &ConvId, previous: Option<&LeadId>, closed_at: Option<i64>) -> LeadId {
    let at = closed_at.unwrap_or_default().to_string();
    let previous = previous.map_or("", LeadId::as_str);
    LeadId(hashed(
        "l-",
        "confab/lead/v1",
        &[conv.as_str(), previous, &at],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(s: &str) -> AccountId {
        AccountId::new(s).expect("valid account")
    }

    #[test]
    fn ids_reject_bad_characters_and_lengths() {
        assert_eq!(ConvId::new("").unwrap_err().code(), "empty");
        assert_eq!(ConvId::new("a.b").unwrap_err().code(), "invalid_format");
        assert_eq!(ConvId::new("a".repeat(65)).unwrap_err().code(), "too_long");
        assert!(AccountId::new("jane.doe+x@example.com").is_ok());
        assert!(AccountId::new("a/b").is_err());
        assert!(AccountId::new("a|b").is_err());
    }

    #[test]
    fn doc_ids_round_trip() {
        let t = TenantId::new("acme").expect("tenant");
        let c = ConvId::new("c1").expect("conv");
        for id in [
            DocId::conv(&t, &c),
            DocId::msgs(&t, &c, -3),
            DocId::msgs(&t, &c, 20_000),
            DocId::msgs(&t, &c, Bucket::new(-3, 1)),
            DocId::profile(&t, &acc("bob@x.io")),
            DocId::private(&t, &acc("bob")),
        ] {
            assert_eq!(DocId::parse(&id.to_string()).expect("parses"), id);
        }
        assert!(DocId::parse("acme/nope/x").is_err());
        assert!(DocId::parse("acme/msgs/c1").is_err());
        assert!(DocId::parse("acme/msgs/c1.+007").is_err());
        assert!(DocId::parse("acme/msgs/c1.07").is_err());
        assert!(DocId::parse("acme/msgs/c1.7.0").is_err());
        assert!(DocId::parse("acme/msgs/c1.7.01").is_err());
        assert!(DocId::parse("acme/msgs/c1.7.-1").is_err());
        assert!(DocId::parse("acme/msgs/c1.7.1.1").is_err());
        let part = DocId::msgs(&t, &c, Bucket::new(7, 3));
        assert_eq!(part.to_string(), "acme/msgs/c1.7.3");
        assert_eq!(DocId::parse("acme/msgs/c1.7.3").expect("parses"), part);
        assert!(DocId::parse("acme").is_err());
    }

    #[test]
    fn buckets_order_by_period_then_part_and_read_old_integers() {
        assert!(Bucket::new(5, 9) < Bucket::new(6, 0));
        assert!(Bucket::new(6, 0) < Bucket::new(6, 1));
        assert_eq!(Bucket::new(6, 1).previous_part(), Some(Bucket::first(6)));
        assert_eq!(Bucket::first(6).previous_part(), None);
        let json =
            serde_json::to_string(&vec![Bucket::first(-2), Bucket::new(7, 3)]).expect("serializes");
        assert_eq!(json, r#"["-2","7.3"]"#);
        let back: Vec<Bucket> = serde_json::from_str(r#"["-2","7.3",20779]"#).expect("parses");
        assert_eq!(
            back,
            vec![Bucket::first(-2), Bucket::new(7, 3), Bucket::first(20779)]
        );
        for bad in [r#""7.0""#, r#""07""#, r#""7.x""#, r#""""#, "1.5"] {
            assert!(serde_json::from_str::<Bucket>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn direct_ids_are_symmetric_and_tenant_scoped() {
        let t = TenantId::new("acme").expect("tenant");
        let u = TenantId::new("other").expect("tenant");
        let (a, b, c) = (acc("alice"), acc("bob"), acc("carol"));
        assert_eq!(direct_conv_id(&t, &a, &b), direct_conv_id(&t, &b, &a));
        assert_eq!(
            encrypted_direct_conv_id(&t, &a, &b),
            encrypted_direct_conv_id(&t, &b, &a)
        );
        assert_ne!(
            direct_conv_id(&t, &a, &b),
            encrypted_direct_conv_id(&t, &a, &b)
        );
        assert_ne!(direct_conv_id(&t, &a, &b), direct_conv_id(&t, &a, &c));
        assert_ne!(direct_conv_id(&t, &a, &b), direct_conv_id(&u, &a, &b));
        let r = ResourceId::new("room-12").expect("resource");
        assert_eq!(support_conv_id(&t, &a, &r), support_conv_id(&t, &a, &r));
        assert_ne!(support_conv_id(&t, &a, &r), support_conv_id(&t, &b, &r));
        let sealed = encrypted_support_conv_id(&t, &a, &r);
        assert_eq!(sealed, encrypted_support_conv_id(&t, &a, &r));
        assert_ne!(sealed, support_conv_id(&t, &a, &r));
        assert_ne!(sealed, encrypted_support_conv_id(&t, &b, &r));
        assert_ne!(sealed, encrypted_support_conv_id(&u, &a, &r));
        assert!(sealed.as_str().starts_with("s-") && sealed.is_deterministic());
        assert!(!sealed.is_direct());
    }

    #[test]
    fn a_new_lead_follows_from_the_closure_alone() {
        let conv = ConvId::new("s-1").unwrap();
        let old = LeadId::new("lead-1").unwrap();
        let next = next_lead_id(&conv, Some(&old), Some(5));
        assert_eq!(next, next_lead_id(&conv, Some(&old), Some(5)));
        assert_ne!(next, old);
        assert_ne!(
            next,
            next_lead_id(&conv, Some(&old), Some(6)),
            "another closure"
        );
        assert_ne!(
            next,
            next_lead_id(&conv, Some(&next), Some(5)),
            "another lead"
        );
        assert!(LeadId::new(next.as_str()).is_ok(), "a valid lead id");
    }
}
