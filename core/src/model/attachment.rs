//! Attachment references, mentions and reactions of messages.
//!
//! A message stores attachments and mentions as JSON text; attachments are references (URLs)
//! to files kept elsewhere, never the bytes.

use std::collections::BTreeSet;

use crate::error::{check_chars, ModelError};
use crate::ids::{AccountId, ConvId};
use crate::limits::{ATTACHMENTS_MAX, ID_MAX_CHARS, MENTIONS_MAX, REACTION_MAX_BYTES};
use crate::model::str_enum::str_enum;
use crate::model::url::{validate_url_with, UrlRule};

/// Longest attachment file name (the common file-system limit).
pub const ATTACHMENT_NAME_MAX_CHARS: usize = 255;
/// Longest MIME type: 127-character type and subtype names plus `/` (RFC 6838 §4.2).
pub const MIME_MAX_CHARS: usize = 255;

str_enum!(
    /// What an attachment is, so clients pick a viewer without fetching it.
    AttachmentKind, "kind" {
        Image = "image",
        File = "file",
        Voice = "voice",
        Video = "video",
        Sticker = "sticker",
    }
);

/// A reference to a file attached to a message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    /// Unique within its message.
    pub id: String,
    pub kind: AttachmentKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `type/subtype`, e.g. `image/png`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime: Option<String>,
    /// Size in bytes, as announced by the uploader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    pub url: String,
}

impl Attachment {
    /// Checks the id, the URL (`https:` only), the name's length and the MIME type's shape.
    pub fn validate(&self) -> Result<(), ModelError> {
        self.validate_with(UrlRule::HttpsOnly)
    }

    /// [`Attachment::validate`] with the URL under `urls`.
    pub fn validate_with(&self, urls: UrlRule) -> Result<(), ModelError> {
        if self.id.is_empty() {
            return Err(ModelError::Empty { field: "id" });
        }
        check_chars("id", &self.id, ID_MAX_CHARS)?;
        if self.id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ModelError::InvalidFormat {
                field: "id",
                reason: "whitespace and control characters are not allowed".into(),
            });
        }
        validate_url_with("url", &self.url, urls)?;
        if let Some(name) = &self.name {
            check_chars("name", name, ATTACHMENT_NAME_MAX_CHARS)?;
        }
        if let Some(mime) = &self.mime {
            validate_mime(mime)?;
        }
        Ok(())
    }
}

/// `type/subtype` made of RFC 6838 restricted-name characters; parameters (`; charset=`)
/// are not part of it.
pub fn validate_mime(mime: &str) -> Result<(), ModelError> {
    check_chars("mime", mime, MIME_MAX_CHARS)?;
    let name_ok = |part: &str| {
        part.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
    };
    match mime.split_once('/') {
        Some((kind, sub)) if name_ok(kind) && name_ok(sub) => Ok(()),
        _ => Err(ModelError::InvalidFormat {
            field: "mime",
            reason: "expected type/subtype, e.g. image/png".into(),
        }),
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(
    field: &'static str,
    json: &str,
) -> Result<T, ModelError> {
    serde_json::from_str(json).map_err(|e| ModelError::InvalidFormat {
        field,
        reason: e.to_string(),
    })
}

fn too_many(field: &'static str, len: usize, max: usize) -> Result<(), ModelError> {
    if len > max {
        return Err(ModelError::TooLong {
            field,
            len,
            max,
            unit: "entries",
        });
    }
    Ok(())
}

/// Checks a message's attachments: at most [`ATTACHMENTS_MAX`], each valid, ids unique.
pub fn validate_attachments(attachments: &[Attachment]) -> Result<(), ModelError> {
    validate_attachments_with(attachments, UrlRule::HttpsOnly)
}

/// [`validate_attachments`] with the URLs under `urls`.
pub fn validate_attachments_with(
    attachments: &[Attachment],
    urls: UrlRule,
) -> Result<(), ModelError> {
    too_many("attachments", attachments.len(), ATTACHMENTS_MAX)?;
    let mut ids = BTreeSet::new();
    for attachment in attachments {
        attachment.validate_with(urls)?;
        if !ids.insert(attachment.id.as_str()) {
            return Err(ModelError::InvalidFormat {
                field: "attachments",
                reason: format!("duplicate attachment id {:?}", attachment.id),
            });
        }
    }
    Ok(())
}

/// Parses and validates a message's `attachments` JSON array.
pub fn attachments_from_json(json: &str) -> Result<Vec<Attachment>, ModelError> {
    attachments_from_json_with(json, UrlRule::HttpsOnly)
}

/// [`attachments_from_json`] with the URLs under `urls`.
pub fn attachments_from_json_with(
    json: &str,
    urls: UrlRule,
) -> Result<Vec<Attachment>, ModelError> {
    let attachments: Vec<Attachment> = parse_json("attachments", json)?;
    validate_attachments_with(&attachments, urls)?;
    Ok(attachments)
}

/// The JSON array stored in a message; absent options are omitted.
pub fn attachments_to_json(attachments: &[Attachment]) -> String {
    // Strings, integers and unit enums under string keys: serializing cannot fail.
    serde_json::to_string(attachments).unwrap_or_default()
}

/// A blob's SHA-256: 32 bytes, written as 64 lowercase hex digits. A blob of the attachment
/// store is named by it (docs/ATTACHMENTS.md), in an attachment's URL and in a sealed
/// message's `blobs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobHash([u8; 32]);

impl BlobHash {
    /// 64 hex digits (either case).
    pub fn parse(text: &str) -> Result<Self, ModelError> {
        let invalid = || ModelError::InvalidFormat {
            field: "hash",
            reason: format!(
                "not a SHA-256 hash (64 hex digits): {:?}",
                text.chars().take(80).collect::<String>()
            ),
        };
        if text.len() != 64 {
            return Err(invalid());
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).map_err(|_| invalid())?;
        Ok(BlobHash(out))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        BlobHash(bytes)
    }

    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        BlobHash(sha2::Sha256::digest(bytes).into())
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Display for BlobHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.hex())
    }
}

/// The blob an attachment URL names, with the conversation it is stored in: a URL whose path
/// is `/v1/conversations/<conv>/attachments/<sha256>` (any host; a query or fragment is not
/// part of it). `None` for any other URL (a file kept elsewhere). In core, so that every side
/// reads blob URLs one way.
pub fn blob_reference(url: &str) -> Option<(&str, BlobHash)> {
    let path = match url.find("://") {
        Some(i) => {
            let rest = &url[i + 3..];
            &rest[rest.find('/')?..]
        }
        None => url,
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let rest = path.strip_prefix("/v1/conversations/")?;
    let (conv, rest) = rest.split_once('/')?;
    let hash = rest.strip_prefix("attachments/")?;
    Some((conv, BlobHash::parse(hash).ok()?))
}

/// The blobs of conversation `conv` that the attachment list `json` names by URL, each once,
/// in the order first named. Only each entry's `url` is read, so a sealed content's list,
/// whose entries carry their file's key, reads alike; a list that does not parse names none.
pub fn blobs_named(json: &str, conv: &ConvId) -> Vec<BlobHash> {
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        url: String,
    }
    let entries: Vec<Entry> = serde_json::from_str(json).unwrap_or_default();
    let mut out: Vec<BlobHash> = Vec::new();
    for entry in entries {
        if let Some((named, hash)) = blob_reference(&entry.url) {
            if named == conv.as_str() && !out.contains(&hash) {
                out.push(hash);
            }
        }
    }
    out
}

/// Parses a sealed message's `blobs` JSON array: at most [`ATTACHMENTS_MAX`] distinct
/// hashes, each 64 lowercase hex digits (the one spelling a device writes).
pub fn blob_hashes_from_json(json: &str) -> Result<Vec<BlobHash>, ModelError> {
    const FIELD: &str = "blobs";
    let texts: Vec<String> = parse_json(FIELD, json)?;
    too_many(FIELD, texts.len(), ATTACHMENTS_MAX)?;
    let mut out = Vec::with_capacity(texts.len());
    for text in texts {
        let hash = BlobHash::parse(&text)
            .ok()
            .filter(|h| h.hex() == text)
            .ok_or_else(|| ModelError::InvalidFormat {
                field: FIELD,
                reason: format!(
                    "{:?} is not a SHA-256 hash (64 lowercase hex digits)",
                    text.chars().take(80).collect::<String>()
                ),
            })?;
        if out.contains(&hash) {
            return Err(ModelError::InvalidFormat {
                field: FIELD,
                reason: format!("{hash} is named twice"),
            });
        }
        out.push(hash);
    }
    Ok(out)
}

/// The JSON array of hashes stored in a sealed message's `blobs`.
pub fn blob_hashes_to_json(hashes: &[BlobHash]) -> String {
    let texts = hashes
        .iter()
        .map(|h| serde_json::Value::String(h.hex()))
        .collect();
    serde_json::Value::Array(texts).to_string()
}

/// Parses a message's `mentions` JSON array of account ids: at most [`MENTIONS_MAX`],
/// each a valid id, no duplicates (one mention notifies once).
pub fn mentions_from_json(json: &str) -> Result<Vec<AccountId>, ModelError> {
    let texts: Vec<String> = parse_json("mentions", json)?;
    too_many("mentions", texts.len(), MENTIONS_MAX)?;
    let mut seen = BTreeSet::new();
    let mut mentions = Vec::with_capacity(texts.len());
    for text in texts {
        let id = AccountId::new(text)?;
        if !seen.insert(id.clone()) {
            return Err(ModelError::InvalidFormat {
                field: "mentions",
                reason: format!("{id} is mentioned twice"),
            });
        }
        mentions.push(id);
    }
    Ok(mentions)
}

/// The JSON array of account ids stored in a message.
pub fn mentions_to_json(mentions: &[AccountId]) -> String {
    let ids = mentions
        .iter()
        .map(|id| serde_json::Value::String(id.to_string()))
        .collect();
    serde_json::Value::Array(ids).to_string()
}

/// A reaction (an emoji or a short code): non-empty, at most [`REACTION_MAX_BYTES`] bytes,
/// no whitespace or control characters, and no `|`, which separates parts of reaction keys.
pub fn validate_reaction(reaction: &str) -> Result<(), ModelError> {
    const FIELD: &str = "reaction";
    if reaction.is_empty() {
        return Err(ModelError::Empty { field: FIELD });
    }
    crate::error::check_bytes(FIELD, reaction, REACTION_MAX_BYTES)?;
    match reaction
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || *c == '|')
    {
        Some(c) => Err(ModelError::InvalidFormat {
            field: FIELD,
            reason: format!("character {c:?} is not allowed"),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::URL_MAX_CHARS;

    fn photo() -> Attachment {
        Attachment {
            id: "a1".into(),
            kind: AttachmentKind::Image,
            name: Some("beach.jpg".into()),
            mime: Some("image/jpeg".into()),
            size: Some(123_456),
            url: "https://files.example.com/t/acme/a1".into(),
        }
    }

    fn code_field(r: Result<(), ModelError>) -> (&'static str, &'static str) {
        let e = r.expect_err("should be refused");
        (e.code(), e.field())
    }

    #[test]
    fn kinds_parse_and_print() {
        for kind in AttachmentKind::ALL {
            assert_eq!(AttachmentKind::parse(kind.as_str()), Ok(*kind));
        }
        assert_eq!(
            AttachmentKind::parse("gif").expect_err("refused").code(),
            "unknown_value"
        );
    }

    #[test]
    fn attachment_fields_are_checked() {
        assert!(photo().validate().is_ok());
        let bare = Attachment {
            name: None,
            mime: None,
            size: None,
            ..photo()
        };
        assert!(bare.validate().is_ok());
        type Breaker = fn(&mut Attachment);
        let cases: [(Breaker, (&str, &str)); 6] = [
            (|a| a.id = String::new(), ("empty", "id")),
            (|a| a.id = "x".repeat(ID_MAX_CHARS + 1), ("too_long", "id")),
            (|a| a.id = "a 1".into(), ("invalid_format", "id")),
            (|a| a.url = String::new(), ("empty", "url")),
            (
                |a| a.url = "x".repeat(URL_MAX_CHARS + 1),
                ("too_long", "url"),
            ),
            (
                |a| a.url = "https://e.io/a b".into(),
                ("invalid_format", "url"),
            ),
        ];
        for (break_it, expected) in cases {
            let mut a = photo();
            break_it(&mut a);
            assert_eq!(code_field(a.validate()), expected);
        }
    }

    #[test]
    fn name_is_bounded() {
        let mut a = photo();
        a.name = Some("é".repeat(ATTACHMENT_NAME_MAX_CHARS));
        assert!(a.validate().is_ok());
        a.name = Some("é".repeat(ATTACHMENT_NAME_MAX_CHARS + 1));
        assert_eq!(code_field(a.validate()), ("too_long", "name"));
    }

    #[test]
    fn mime_is_type_slash_subtype() {
        for ok in [
            "image/png",
            "application/vnd.ms-excel",
            "audio/ogg",
            "image/svg+xml",
        ] {
            assert!(validate_mime(ok).is_ok(), "{ok}");
        }
        for bad in [
            "png",
            "image/",
            "/png",
            "image/png/x",
            "text/plain; charset=utf-8",
            "",
        ] {
            assert_eq!(
                code_field(validate_mime(bad)),
                ("invalid_format", "mime"),
                "{bad}"
            );
        }
        let long = format!("image/{}", "x".repeat(MIME_MAX_CHARS));
        assert_eq!(code_field(validate_mime(&long)), ("too_long", "mime"));
        let mut a = photo();
        a.mime = Some("jpeg".into());
        assert_eq!(code_field(a.validate()), ("invalid_format", "mime"));
    }

    #[test]
    fn attachments_round_trip_through_json() {
        let list = vec![
            photo(),
            Attachment {
                id: "a2".into(),
                name: None,
                ..photo()
            },
        ];
        let json = attachments_to_json(&list);
        assert!(json.starts_with(r#"[{"id":"a1","kind":"image","name":"beach.jpg""#));
        assert!(!json.contains("null"));
        assert_eq!(attachments_from_json(&json), Ok(list));
        assert_eq!(attachments_from_json("[]"), Ok(Vec::new()));
    }

    #[test]
    fn attachments_json_is_limited_and_strict() {
        let many: Vec<_> = (0..ATTACHMENTS_MAX)
            .map(|i| Attachment {
                id: format!("a{i}"),
                ..photo()
            })
            .collect();
        assert!(attachments_from_json(&attachments_to_json(&many)).is_ok());
        let mut too_many = many.clone();
        too_many.push(Attachment {
            id: "extra".into(),
            ..photo()
        });
        let err = attachments_from_json(&attachments_to_json(&too_many)).expect_err("21");
        assert_eq!((err.code(), err.field()), ("too_long", "attachments"));
        let dup = attachments_to_json(&[photo(), photo()]);
        let err = attachments_from_json(&dup).expect_err("duplicate id");
        assert_eq!((err.code(), err.field()), ("invalid_format", "attachments"));
        let bytes = r#"[{"id":"a","kind":"file","url":"u","data":"AAAA"}]"#;
        let err = attachments_from_json(bytes).expect_err("unknown field");
        assert_eq!((err.code(), err.field()), ("invalid_format", "attachments"));
        assert!(attachments_from_json("{}").is_err());
        let bad_url = r#"[{"id":"a","kind":"file","url":""}]"#;
        assert_eq!(
            attachments_from_json(bad_url).expect_err("refused").field(),
            "url"
        );
    }

    #[test]
    fn blob_urls_name_a_conversation_and_a_hash() {
        let h = BlobHash::of(b"x");
        let url = format!("https://chat.example.com/v1/conversations/c1/attachments/{h}");
        assert_eq!(blob_reference(&url), Some(("c1", h)));
        assert_eq!(
            blob_reference(&format!("{url}?download=1")),
            Some(("c1", h))
        );
        assert_eq!(blob_reference(&format!("{url}#top")), Some(("c1", h)));
        let upper = format!(
            "/v1/conversations/c1/attachments/{}",
            h.hex().to_uppercase()
        );
        assert_eq!(blob_reference(&upper), Some(("c1", h)));
        assert_eq!(blob_reference("https://cdn.example.com/a.png"), None);
        assert_eq!(
            blob_reference("https://e.com/v1/conversations/c1/attachments/zz"),
            None
        );
        assert_eq!(
            blob_reference(&format!("https://e.com/v1/conversations/c1/thumbs/{h}")),
            None
        );
    }

    #[test]
    fn an_attachment_list_names_the_blobs_of_its_conversation_once() {
        let (a, b, c) = (BlobHash::of(b"a"), BlobHash::of(b"b"), BlobHash::of(b"c"));
        let url = |conv: &str, h: &BlobHash| {
            format!("https://chat.example/v1/conversations/{conv}/attachments/{h}")
        };
        // A sealed list's entries carry their file's key: only `url` is read.
        let list = serde_json::json!([
            {"id": "1", "kind": "file", "url": url("c1", &a),
             "encryption": {"key": "00", "nonce": "00", "sha256": a.hex()}},
            {"id": "2", "kind": "image", "url": url("c2", &b)},
            {"id": "3", "kind": "file", "url": "https://cdn.example/x.png"},
            {"id": "4", "kind": "file", "url": url("c1", &c)},
            {"id": "5", "kind": "file", "url": url("c1", &a)},
        ])
        .to_string();
        let c1 = ConvId::new("c1").expect("id");
        assert_eq!(blobs_named(&list, &c1), vec![a, c]);
        assert_eq!(blobs_named("not json", &c1), Vec::new());
    }

    #[test]
    fn blob_hash_lists_are_limited_lowercase_and_unique() {
        let hashes: Vec<_> = (0..ATTACHMENTS_MAX)
            .map(|i| BlobHash::of(&i.to_le_bytes()))
            .collect();
        let json = blob_hashes_to_json(&hashes);
        assert_eq!(blob_hashes_from_json(&json), Ok(hashes.clone()));
        assert_eq!(blob_hashes_from_json("[]"), Ok(Vec::new()));
        let mut over = hashes.clone();
        over.push(BlobHash::of(b"one more"));
        let err = blob_hashes_from_json(&blob_hashes_to_json(&over)).expect_err("21");
        assert_eq!((err.code(), err.field()), ("too_long", "blobs"));
        let h = hashes[0].hex();
        for bad in [
            serde_json::json!([h.to_uppercase()]),
            serde_json::json!([&h[1..]]),
            serde_json::json!([format!("{h}0")]),
            serde_json::json!([h.replace(&h[..1], "g")]),
            serde_json::json!([h, h]),
            serde_json::json!([1]),
            serde_json::json!({"a": h}),
        ] {
            let err = blob_hashes_from_json(&bad.to_string()).expect_err("refused");
            assert_eq!(
                (err.code(), err.field()),
                ("invalid_format", "blobs"),
                "{bad}"
            );
        }
    }

    #[test]
    fn mentions_round_trip_through_json() {
        let ids: Vec<_> = ["alice", "bob@x.io"]
            .into_iter()
            .map(|s| AccountId::new(s).expect("id"))
            .collect();
        let json = mentions_to_json(&ids);
        assert_eq!(json, r#"["alice","bob@x.io"]"#);
        assert_eq!(mentions_from_json(&json), Ok(ids));
        assert_eq!(mentions_to_json(&[]), "[]");
    }

    #[test]
    fn mentions_are_limited_valid_and_unique() {
        let max: Vec<_> = (0..MENTIONS_MAX).map(|i| format!("u{i}")).collect();
        assert!(mentions_from_json(&serde_json::json!(max).to_string()).is_ok());
        let over: Vec<_> = (0..=MENTIONS_MAX).map(|i| format!("u{i}")).collect();
        let err = mentions_from_json(&serde_json::json!(over).to_string()).expect_err("101");
        assert_eq!((err.code(), err.field()), ("too_long", "mentions"));
        let err = mentions_from_json(r#"["bob","alice","bob"]"#).expect_err("duplicate");
        assert_eq!((err.code(), err.field()), ("invalid_format", "mentions"));
        assert_eq!(
            mentions_from_json(r#"["a b"]"#)
                .expect_err("refused")
                .field(),
            "account"
        );
        assert_eq!(
            mentions_from_json(r#"[""]"#).expect_err("refused").code(),
            "empty"
        );
        assert_eq!(
            mentions_from_json("[1]").expect_err("refused").field(),
            "mentions"
        );
        assert_eq!(
            mentions_from_json("nope").expect_err("refused").code(),
            "invalid_format"
        );
    }

    #[test]
    fn reactions() {
        for ok in ["👍", "❤️", "👨‍👩‍👧‍👦", ":tada:", "+1"] {
            assert!(validate_reaction(ok).is_ok(), "{ok}");
        }
        assert_eq!(code_field(validate_reaction("")), ("empty", "reaction"));
        let long = "😀".repeat(REACTION_MAX_BYTES / 4 + 1);
        assert_eq!(
            code_field(validate_reaction(&long)),
            ("too_long", "reaction")
        );
        assert!(validate_reaction(&"x".repeat(REACTION_MAX_BYTES)).is_ok());
        for bad in ["👍 ", "a\tb", "\u{7}", "👍|bob", "\u{3000}"] {
            let got = code_field(validate_reaction(bad));
            assert_eq!(got, ("invalid_format", "reaction"), "{bad:?}");
        }
    }
}
