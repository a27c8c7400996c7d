//! Messages (docs/SCHEMA.md, "`msgs`").

use std::collections::BTreeMap;

use crate::error::{check_bytes, check_chars, ModelError};
use crate::ids::{AccountId, ConvId, MessageId};
use crate::limits::{BODY_MAX_CHARS, CAPTION_MAX_CHARS, PAYLOAD_MAX_BYTES};
use crate::model::attachment::{
    attachments_from_json_with, blob_hashes_from_json, blobs_named, mentions_from_json, BlobHash,
};
use crate::model::proposal::{ProposalPayload, ProposalResponsePayload, ProposalStatus};
use crate::model::str_enum::str_enum;
use crate::model::support::Stamp;
use crate::model::url::UrlRule;

str_enum!(
    /// What a message is; media kinds need media rights and attachments allowed.
    MessageKind, "kind" {
        Text = "text",
        Image = "image",
        File = "file",
        Voice = "voice",
        Video = "video",
        Sticker = "sticker",
        System = "system",
        Proposal = "proposal",
        ProposalResponse = "proposal_response",
    }
);

impl MessageKind {
    /// Kinds that carry media and need `can_send_media` and `allow_attachments`.
    pub fn is_media(self) -> bool {
        matches!(
            self,
            MessageKind::Image | MessageKind::File | MessageKind::Voice | MessageKind::Video
        )
    }
}

/// Where a forwarded message came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ForwardedFrom {
    pub conv: ConvId,
    pub message: MessageId,
}

impl ForwardedFrom {
    /// Stored as `<conversation>/<message>`.
    pub fn encode(&self) -> String {
        format!("{}/{}", self.conv, self.message)
    }
    pub fn decode(text: &str) -> Result<Self, ModelError> {
        let (conv, message) = text.split_once('/').ok_or(ModelError::InvalidFormat {
            field: "forwarded_from",
            reason: "expected <conversation>/<message>".into(),
        })?;
        Ok(ForwardedFrom {
            conv: ConvId::new(conv)?,
            message: MessageId::new(message)?,
        })
    }
}

/// The content of an encrypted conversation's message, as the author's device seals it
/// (`NewMessage::sealed` holds it encrypted) and members' devices open it: everything a
/// plaintext message carries in the clear that the server does not need.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SealedContent {
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachments: Option<String>,
}

impl SealedContent {
    /// The plaintext the device encrypts: the content's CBOR, then zero bytes up to the size
    /// bucket it falls in ([`sealed_size_bucket`]), so a ciphertext's size says which bucket
    /// its content is in, not its length.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing CBOR into a Vec cannot fail.
        let _ = ciborium::into_writer(self, &mut out);
        out.resize(sealed_size_bucket(out.len()), 0);
        out
    }

    /// The content a decrypted plaintext holds (its padding ignored); `None` if it is not one.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        // One CBOR item is read; the zeros after it are the padding.
        ciborium::from_reader(bytes).ok()
    }
}

/// The size a sealed content of `len` bytes is padded to: the next power of two from 256
/// bytes up to 32 KiB, then the next multiple of 8 KiB. Most chat messages fall in the first
/// bucket, where every one looks the same; a longer one reveals its bucket only. At most a
/// content's size twice over, and a few KiB beyond 32 KiB.
pub fn sealed_size_bucket(len: usize) -> usize {
    const SMALLEST: usize = 256;
    const POWERS_UP_TO: usize = 32 << 10;
    const STEP_BEYOND: usize = 8 << 10;
    match len {
        0..=SMALLEST => SMALLEST,
        _ if len <= POWERS_UP_TO => len.next_power_of_two(),
        _ => len.div_ceil(STEP_BEYOND) * STEP_BEYOND,
    }
}

/// The authenticated data a sealed content is bound to: its message's id, and for an edit
/// also the SHA-256 of the ciphertext it replaces. The server takes an edit only over the
/// content the message holds (`accept::mls::check_sealed`), so a replayed older ciphertext,
/// bound to a content the message no longer has, is refused (`mls_stale_edit`).
pub fn sealed_aad(id: &MessageId, replaces: Option<&[u8]>) -> Vec<u8> {
    use sha2::Digest as _;
    let mut aad = id.as_str().as_bytes().to_vec();
    if let Some(replaced) = replaces {
        // A NUL never appears in an id: the two forms cannot be confused.
        aad.push(0);
        aad.extend_from_slice(&sha2::Sha256::digest(replaced));
    }
    aad
}

/// Whether `aad` binds a sealed content to message `id`: as its first content or as an edit
/// of it (which content an edit replaced is the server's check).
pub fn aad_names(aad: &[u8], id: &MessageId) -> bool {
    let id = id.as_str().as_bytes();
    aad == id || (aad.len() == id.len() + 33 && aad.starts_with(id) && aad[id.len()] == 0)
}

/// A message as written by its author. Fields not named here are not allowed in a message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NewMessage {
    pub id: MessageId,
    pub author: AccountId,
    pub kind: MessageKind,
    pub body: String,
    /// JSON text (proposal and proposal_response carry the contracts of `model::proposal`).
    pub payload: Option<String>,
    pub caption: Option<String>,
    /// JSON array of attachment references (never bytes).
    pub attachments: Option<String>,
    /// JSON array of account ids.
    pub mentions: Option<String>,
    pub reply_to: Option<MessageId>,
    pub forwarded_from: Option<ForwardedFrom>,
    /// Client clock, milliseconds since the epoch.
    pub created_at: i64,
    pub scheduled_at: Option<i64>,
    /// Sender stamps (support threads only; `policy::support`).
    #[serde(default, skip_serializing_if = "Stamp::is_empty")]
    pub stamp: Stamp,
    /// Encrypted conversations: the content, sealed by the author's device (an MLS
    /// application message); `body` is empty and caption, payload and attachments absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<Vec<u8>>,
    /// A sealed message only: JSON array of the hashes of the blobs of its conversation that
    /// its sealed attachments name (hashes only: the references stay sealed), so that the
    /// server releases them with the message (docs/E2EE.md, "Encrypted attachments").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blobs: Option<String>,
}

impl NewMessage {
    /// A plain text message.
    pub fn text(
        id: MessageId,
        author: AccountId,
        body: impl Into<String>,
        created_at: i64,
    ) -> Self {
        NewMessage {
            id,
            author,
            kind: MessageKind::Text,
            body: body.into(),
            payload: None,
            caption: None,
            attachments: None,
            mentions: None,
            reply_to: None,
            forwarded_from: None,
            created_at,
            scheduled_at: None,
            stamp: Stamp::default(),
            sealed: None,
            blobs: None,
        }
    }

    /// Whether any content is in the clear: what an encrypted conversation's message never
    /// carries.
    pub fn has_clear_content(&self) -> bool {
        !self.body.is_empty()
            || self.caption.is_some()
            || self.payload.is_some()
            || self.attachments.is_some()
    }

    /// Checks every limit and every structured field (attachment URLs `https:` only).
    pub fn validate(&self) -> Result<(), ModelError> {
        self.validate_with(UrlRule::HttpsOnly)
    }

    /// [`NewMessage::validate`] with attachment URLs under `urls`.
    pub fn validate_with(&self, urls: UrlRule) -> Result<(), ModelError> {
        check_chars("body", &self.body, BODY_MAX_CHARS)?;
        self.stamp.validate()?;
        if let Some(caption) = &self.caption {
            check_chars("caption", caption, CAPTION_MAX_CHARS)?;
        }
        if let Some(payload) = &self.payload {
            check_bytes("payload", payload, PAYLOAD_MAX_BYTES)?;
            match self.kind {
                MessageKind::Proposal => ProposalPayload::from_json(payload)?.validate_new()?,
                MessageKind::ProposalResponse => {
                    ProposalResponsePayload::from_json(payload)?.validate()?
                }
                _ => {
                    serde_json::from_str::<serde_json::Value>(payload).map_err(|e| {
                        ModelError::InvalidFormat {
                            field: "payload",
                            reason: e.to_string(),
                        }
                    })?;
                }
            }
        } else if matches!(
            self.kind,
            MessageKind::Proposal | MessageKind::ProposalResponse
        ) {
            return Err(ModelError::Missing { field: "payload" });
        }
        if self.kind == MessageKind::ProposalResponse && self.reply_to.is_none() {
            // The response names the proposal it answers.
            return Err(ModelError::Missing { field: "reply_to" });
        }
        if let Some(attachments) = &self.attachments {
            attachments_from_json_with(attachments, urls)?;
        }
        if let Some(mentions) = &self.mentions {
            mentions_from_json(mentions)?;
        }
        if let Some(blobs) = &self.blobs {
            blob_hashes_from_json(blobs)?;
        }
        if self.created_at < 0 {
            return Err(ModelError::OutOfRange {
                field: "created_at",
                reason: "before 1970".into(),
            });
        }
        // A sealed message's content is inside the seal.
        if self.sealed.is_none()
            && self.body.is_empty()
            && self.attachments.is_none()
            && self.payload.is_none()
        {
            return Err(ModelError::Empty { field: "body" });
        }
        Ok(())
    }
}

/// A message read out of a bucket document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Message {
    pub id: MessageId,
    pub author: AccountId,
    pub kind: MessageKind,
    pub body: String,
    pub payload: Option<String>,
    pub caption: Option<String>,
    pub attachments: Option<String>,
    pub mentions: Option<String>,
    pub reply_to: Option<MessageId>,
    pub forwarded_from: Option<ForwardedFrom>,
    pub created_at: i64,
    pub edited_at: Option<i64>,
    /// Tombstone: when it was deleted.
    pub deleted_at: Option<i64>,
    /// Tombstone: the account that deleted it (the author, or a holder of delete rights).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_by: Option<AccountId>,
    pub scheduled_at: Option<i64>,
    /// Proposal status, for `proposal` messages.
    pub status: Option<ProposalStatus>,
    /// Sender stamps (support threads only).
    #[serde(default, skip_serializing_if = "Stamp::is_empty")]
    pub stamp: Stamp,
    /// `{emoji: {account: time}}`.
    pub reactions: BTreeMap<String, BTreeMap<AccountId, i64>>,
    /// Encrypted conversations: the sealed content ([`NewMessage::sealed`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<Vec<u8>>,
    /// A sealed message's blob hashes ([`NewMessage::blobs`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blobs: Option<String>,
}

impl Message {
    /// The blobs of conversation `conv` this message names: those its attachments' URLs
    /// name there, and a sealed message's `blobs`. What its delete releases, and what keeps
    /// a blob while the message lives (docs/ATTACHMENTS.md, "Deleted messages").
    pub fn blob_hashes(&self, conv: &ConvId) -> Vec<BlobHash> {
        let mut out = self
            .attachments
            .as_deref()
            .map(|json| blobs_named(json, conv))
            .unwrap_or_default();
        // Checked when it was written; read leniently all the same.
        let sealed: Vec<String> = self
            .blobs
            .as_deref()
            .and_then(|json| serde_json::from_str(json).ok())
            .unwrap_or_default();
        for hash in sealed.iter().filter_map(|h| BlobHash::parse(h).ok()) {
            if !out.contains(&hash) {
                out.push(hash);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: &str) -> NewMessage {
        NewMessage::text(
            MessageId::new("m1").expect("id"),
            AccountId::new("a").expect("id"),
            body,
            1_700_000_000_000,
        )
    }

    #[test]
    fn sealed_content_is_padded_to_its_bucket_and_reads_back() {
        assert_eq!(sealed_size_bucket(0), 256);
        assert_eq!(sealed_size_bucket(256), 256);
        assert_eq!(sealed_size_bucket(257), 512);
        assert_eq!(sealed_size_bucket(5_000), 8_192);
        assert_eq!(sealed_size_bucket(32 << 10), 32 << 10);
        assert_eq!(sealed_size_bucket((32 << 10) + 1), 40 << 10);
        let short = SealedContent {
            body: "hi".into(),
            ..SealedContent::default()
        };
        let longer = SealedContent {
            body: "a message of a few more words, still short".into(),
            attachments: Some("[]".into()),
            ..SealedContent::default()
        };
        // Two contents of different lengths in one bucket: the same size.
        assert_eq!(short.to_bytes().len(), 256);
        assert_eq!(longer.to_bytes().len(), 256);
        assert_eq!(SealedContent::from_bytes(&short.to_bytes()), Some(short));
        assert_eq!(SealedContent::from_bytes(&longer.to_bytes()), Some(longer));
        // The largest content a message may carry still fits an application message.
        let largest = SealedContent {
            body: "é".repeat(BODY_MAX_CHARS),
            caption: Some("é".repeat(CAPTION_MAX_CHARS)),
            payload: Some("x".repeat(PAYLOAD_MAX_BYTES)),
            attachments: Some("x".repeat(8_000)),
        };
        let padded = largest.to_bytes();
        assert!(
            padded.len() + 1_024 < crate::e2ee::MAX_APPLICATION_BYTES,
            "{}",
            padded.len()
        );
        assert_eq!(SealedContent::from_bytes(&padded), Some(largest));
    }

    #[test]
    fn body_limit_counts_characters() {
        assert!(msg(&"é".repeat(BODY_MAX_CHARS)).validate().is_ok());
        let err = msg(&"x".repeat(BODY_MAX_CHARS + 1))
            .validate()
            .expect_err("too long");
        assert_eq!((err.code(), err.field()), ("too_long", "body"));
    }

    #[test]
    fn payload_limit_and_json() {
        let mut m = msg("hi");
        m.payload = Some(format!("\"{}\"", "x".repeat(PAYLOAD_MAX_BYTES)));
        assert_eq!(m.validate().expect_err("big").code(), "too_long");
        m.payload = Some("{not json".into());
        assert_eq!(m.validate().expect_err("bad").code(), "invalid_format");
        m.payload = Some("{\"a\":1}".into());
        assert!(m.validate().is_ok());
    }

    #[test]
    fn proposals_need_their_payload_contract() {
        let mut m = msg("Visit tomorrow?");
        m.kind = MessageKind::Proposal;
        assert_eq!(m.validate().expect_err("missing").code(), "missing");
        m.payload = Some(r#"{"proposalType":"visit"}"#.into());
        assert!(m.validate().is_err());
    }

    #[test]
    fn blob_hashes_are_checked_and_read_with_the_attachments() {
        let (a, b) = (BlobHash::of(b"a"), BlobHash::of(b"b"));
        let mut m = msg("");
        m.sealed = Some(vec![1]);
        m.blobs = Some(crate::model::attachment::blob_hashes_to_json(&[a]));
        assert!(m.validate().is_ok());
        m.blobs = Some(r#"["nope"]"#.into());
        let err = m.validate().expect_err("malformed");
        assert_eq!((err.code(), err.field()), ("invalid_format", "blobs"));

        // What a message names: its attachments' blobs of the conversation, and its `blobs`.
        let conv = ConvId::new("c1").expect("id");
        let stored = Message {
            id: m.id.clone(),
            author: m.author.clone(),
            kind: MessageKind::File,
            body: String::new(),
            payload: None,
            caption: None,
            attachments: Some(format!(
                r#"[{{"id":"1","kind":"file","url":"https://e.io/v1/conversations/c1/attachments/{b}"}},
                    {{"id":"2","kind":"file","url":"https://e.io/v1/conversations/c2/attachments/{a}"}}]"#
            )),
            mentions: None,
            reply_to: None,
            forwarded_from: None,
            created_at: 0,
            edited_at: None,
            deleted_at: None,
            deleted_by: None,
            scheduled_at: None,
            status: None,
            stamp: Stamp::default(),
            reactions: BTreeMap::new(),
            sealed: None,
            blobs: Some(crate::model::attachment::blob_hashes_to_json(&[a, b])),
        };
        assert_eq!(stored.blob_hashes(&conv), vec![b, a]);
        let bare = Message {
            attachments: None,
            blobs: None,
            ..stored
        };
        assert!(bare.blob_hashes(&conv).is_empty());
    }

    #[test]
    fn empty_text_is_refused() {
        assert_eq!(msg("").validate().expect_err("empty").code(), "empty");
    }

    #[test]
    fn an_edit_is_bound_to_the_content_it_replaces() {
        let id = MessageId::new("m1").expect("id");
        let first = sealed_aad(&id, None);
        let edit = sealed_aad(&id, Some(b"first ciphertext"));
        assert_eq!(first, b"m1");
        assert_ne!(edit, sealed_aad(&id, Some(b"another ciphertext")));
        assert!(aad_names(&first, &id) && aad_names(&edit, &id));
        let other = MessageId::new("m2").expect("id");
        assert!(!aad_names(&sealed_aad(&other, Some(b"x")), &id));
        assert!(!aad_names(b"m1\0short", &id));
    }

    #[test]
    fn forwarded_from_round_trips() {
        let f = ForwardedFrom::decode("c1/m9").expect("parses");
        assert_eq!(ForwardedFrom::decode(&f.encode()), Ok(f));
        assert!(ForwardedFrom::decode("nope").is_err());
    }
}
