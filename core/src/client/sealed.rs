//! Sealed messages on the device (docs/E2EE.md, "On the device"): a send into an encrypted
//! conversation seals its content (`SealedContent`, bound to the message id) for the group's
//! current epoch; a message of another device is opened once when it arrives (MLS deletes
//! each key after use, and a sender cannot open its own). What was read is kept with its
//! bucket document, in memory and in the store (`open/<doc>/<message>`), and timelines show
//! it; a message that cannot be opened is shown `undecryptable` with its reason. A message is
//! opened only under its MLS sender's account: the device that sealed it (the leaf its
//! decryption proves) must be of this tenant and of the account its clear `author` names.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::engine::{ClientEngine, ClientError, Output};
use super::intent::Intent;
use super::records::{cbor, key_opened, uncbor};
use super::store::StoreOp;
use super::timeline::TimelineItem;
use super::unreadable::Unreadable;
use crate::doc::read;
use crate::e2ee::{self, DeviceIdentity, E2eeError};
use crate::ids::{AccountId, Bucket, ConvId, DocId, MessageId, TenantId};
use crate::model::attachment::{blob_hashes_to_json, blobs_named};
use crate::model::message::{sealed_aad, Message, NewMessage, SealedContent};

/// What this device read of one sealed message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Opened {
    Read {
        content: SealedContent,
        /// The SHA-256 of the ciphertext it was read from: an edit replaces the ciphertext,
        /// and the message is opened again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        of: Option<Vec<u8>>,
        /// For this device's own edit: what it read before, shown again if the server
        /// refuses the edit (the sender cannot open its earlier ciphertext).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<Box<Opened>>,
        /// The account of the device that sealed it: the MLS sender its decryption proved
        /// (this account for what this device sealed). It is shown only while the message's
        /// clear `author` is this account. `None` in a record kept before it was recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sender: Option<AccountId>,
    },
    /// It cannot be read here: `reason` says why (sent before this device joined, an epoch
    /// outside the window of past epochs, corrupt, [`SENDER_MISMATCH`]).
    Undecryptable {
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        of: Option<Vec<u8>>,
    },
}

impl Opened {
    /// Whether this was read from another ciphertext than `sealed` (the message was edited
    /// since). A record that names none is taken as current.
    pub(super) fn is_stale(&self, sealed: &[u8]) -> bool {
        let (Opened::Read { of, .. } | Opened::Undecryptable { of, .. }) = self;
        of.as_ref().is_some_and(|of| *of != digest(sealed))
    }

    /// The record, of this one and those it replaced, read from `sealed`.
    fn read_from(self, sealed: &[u8]) -> Option<Opened> {
        let mut record = self;
        loop {
            if !record.is_stale(sealed) {
                return Some(record);
            }
            match record {
                Opened::Read {
                    before: Some(b), ..
                } => record = *b,
                _ => return None,
            }
        }
    }

    /// This record with at most `depth` earlier ones behind it (edits pending at once).
    fn pruned(self, depth: usize) -> Opened {
        match self {
            Opened::Read {
                content,
                of,
                before,
                sender,
            } => Opened::Read {
                content,
                of,
                before: before
                    .filter(|_| depth > 0)
                    .map(|b| Box::new(b.pruned(depth - 1))),
                sender,
            },
            other => other,
        }
    }

    /// The content read, if it may be shown under a message whose clear author is `author`:
    /// not when it was not read, nor when it was read from another account's device (the
    /// author was changed after it was opened: it shows as [`SENDER_MISMATCH`]).
    pub(super) fn read_for(&self, author: &AccountId) -> Option<&SealedContent> {
        match self {
            Opened::Read {
                content, sender, ..
            } if sender.as_ref().is_none_or(|s| s == author) => Some(content),
            _ => None,
        }
    }
}

pub(super) use super::unreadable::SENDER_MISMATCH;

/// Whether `sender`, the device that sealed a message, is of `tenant` and of `author`'s
/// account: only then is what it sealed shown as `author`'s.
pub(super) fn sent_by(sender: &DeviceIdentity, tenant: &TenantId, author: &AccountId) -> bool {
    sender.tenant == *tenant && sender.account == *author
}

/// How many earlier records an edit keeps: one per edit of the message still pending.
const EDITS_PENDING_KEPT: usize = 4;

pub(super) fn digest(sealed: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(sealed).to_vec()
}

/// Per bucket document: what was read of its sealed messages.
pub(super) type OpenedBook = HashMap<MessageId, Opened>;

impl ClientEngine {
    /// Whether `conv` is end-to-end encrypted, as this device holds it: its messages and
    /// their attachments are sealed.
    pub fn is_encrypted(&self, conv: &ConvId) -> bool {
        self.docs
            .get(&DocId::conv(&self.config.tenant, conv))
            .and_then(|d| read::read_meta(&d.local))
            .is_some_and(|m| m.encrypted)
    }

    /// The encrypted conversation a `Send` seals its message, or an `Edit` its new content,
    /// for.
    pub(super) fn sealed_conv(&self, intent: &Intent) -> Option<ConvId> {
        let (Intent::Send { conv, .. } | Intent::Edit { conv, .. }) = intent else {
            return None;
        };
        // Its meta alone, not the conversation: a send never reads the member list.
        self.is_encrypted(conv).then(|| conv.clone())
    }

    /// `intent` as the policy sees it once sealed (its content out of the clear), for the
    /// checks made before it is written; `None` when it is not sealed.
    pub(super) fn as_sealed(&self, intent: &Intent) -> Option<Intent> {
        let conv = self.sealed_conv(intent)?;
        match intent {
            Intent::Send { message, .. } => Some(Intent::Send {
                message: out_of_clear(message, &conv, vec![0]),
                conv,
            }),
            Intent::Edit {
                message, bucket, ..
            } => Some(Intent::EditSealed {
                conv,
                message: message.clone(),
                bucket: *bucket,
                sealed: vec![0],
            }),
            _ => None,
        }
    }

    /// The message `intent` sends, sealed for its conversation's group (its content kept
    /// here as read: the sender cannot open its own), or `None` when it is not sealed.
    pub(super) fn seal(
        &mut self,
        intent: &Intent,
        bucket: &DocId,
    ) -> Result<Option<Intent>, ClientError> {
        let Some(conv) = self.sealed_conv(intent) else {
            return Ok(None);
        };
        match intent {
            Intent::Send { message, .. } => {
                let content = SealedContent {
                    body: message.body.clone(),
                    caption: message.caption.clone(),
                    payload: message.payload.clone(),
                    attachments: message.attachments.clone(),
                };
                let sealed = self.seal_content(&conv, bucket, &message.id, None, content, None)?;
                Ok(Some(Intent::Send {
                    message: out_of_clear(message, &conv, sealed),
                    conv,
                }))
            }
            Intent::Edit {
                message,
                body,
                bucket: part,
                ..
            } => {
                let sealed = self.seal_edit(&conv, bucket, message, body)?;
                Ok(Some(Intent::EditSealed {
                    conv,
                    message: message.clone(),
                    bucket: *part,
                    sealed,
                }))
            }
            _ => Ok(None),
        }
    }

    /// The new content of an edit of message `id` of `bucket`, sealed over the content it
    /// holds: what this device read of it with the body replaced, bound to the ciphertext it
    /// replaces (the server takes it only over that one).
    fn seal_edit(
        &mut self,
        conv: &ConvId,
        bucket: &DocId,
        id: &MessageId,
        body: &str,
    ) -> Result<Vec<u8>, ClientError> {
        let state = self
            .docs
            .get(bucket)
            .ok_or_else(|| ClientError::NotApplicable("document vanished".into()))?;
        let replaced = read::read_message_fields(&state.local, id)
            .and_then(|m| m.sealed)
            .ok_or_else(|| ClientError::NotApplicable(format!("{id} holds no sealed content")))?;
        let Some(Opened::Read { content, .. }) = state.opened.get(id) else {
            return Err(ClientError::E2ee(format!(
                "{id} was not read on this device: its content cannot be edited here"
            )));
        };
        let content = SealedContent {
            body: body.to_owned(),
            ..content.clone()
        };
        let before = state.opened.get(id).cloned();
        self.seal_content(conv, bucket, id, Some(&replaced), content, before)
    }

    /// `content` of message `id` sealed for `conv`'s group, bound to the message (and to the
    /// ciphertext it replaces, for an edit), and kept here as read: the sender cannot open
    /// its own, and an edit's earlier content is not kept.
    fn seal_content(
        &mut self,
        conv: &ConvId,
        bucket: &DocId,
        id: &MessageId,
        replaces: Option<&[u8]>,
        content: SealedContent,
        before: Option<Opened>,
    ) -> Result<Vec<u8>, ClientError> {
        let group = e2ee::group_id(&DocId::conv(&self.config.tenant, conv));
        let mls = self
            .mls
            .as_mut()
            .ok_or_else(|| ClientError::E2ee("no device attached".into()))?;
        let sealed = mls
            .device
            .encrypt(&group, &sealed_aad(id, replaces), &content.to_bytes())
            .map_err(|e| ClientError::E2ee(e.to_string()))?;
        self.save_device();
        let of = Some(digest(&sealed));
        let before = before.map(|b| Box::new(b.pruned(EDITS_PENDING_KEPT)));
        let sender = Some(self.config.account.clone());
        self.keep_opened(
            bucket,
            id,
            Opened::Read {
                content,
                of,
                before,
                sender,
            },
        );
        Ok(sealed)
    }

    /// This device's edit of message `id` of `bucket` was answered: the record of what the
    /// document's ciphertext holds now (accepted: the edit's, what it replaced goes; refused:
    /// the one it replaced, shown again, since the sender cannot open its own ciphertext).
    pub(super) fn edit_answered(&mut self, bucket: &DocId, id: &MessageId, accepted: bool) {
        let Some(state) = self.docs.get(bucket) else {
            return;
        };
        let doc = if accepted {
            &state.server
        } else {
            &state.local
        };
        let Some(sealed) = read::read_message_fields(doc, id).and_then(|m| m.sealed) else {
            return;
        };
        let Some(Opened::Read {
            before: Some(_), ..
        }) = state.opened.get(id)
        else {
            return;
        };
        let record = state
            .opened
            .get(id)
            .cloned()
            .and_then(|r| r.read_from(&sealed));
        if let Some(Opened::Read {
            content,
            of,
            sender,
            ..
        }) = record
        {
            let current = Opened::Read {
                content,
                of,
                before: None,
                sender,
            };
            if state.opened.get(id) != Some(&current) {
                self.keep_opened(bucket, id, current);
            }
        }
    }

    /// What was read of bucket `doc`'s sealed messages, back from the store (an entry that
    /// does not read back is left out: the message shows as not opened). What it holds
    /// unread (arrived before a restart, waiting for the parts before it) is opened once
    /// the parts before it are caught up.
    pub(super) fn restore_opened(&mut self, doc: &DocId, opened: Vec<(MessageId, Vec<u8>)>) {
        if let Some(state) = self.docs.get_mut(doc) {
            state.to_open = super::opening::ToOpen::all();
            for (id, bytes) in opened {
                if let Ok(o) = uncbor::<Opened>(&bytes) {
                    state.opened.insert(id, o);
                }
            }
        }
        self.index_due.doc(doc);
    }

    fn keep_opened(&mut self, bucket: &DocId, id: &MessageId, opened: Opened) {
        self.out.push(Output::Persist(vec![StoreOp::Put(
            key_opened(bucket, id),
            cbor(&opened),
        )]));
        if let Some(state) = self.docs.get_mut(bucket) {
            state.opened.insert(id.clone(), opened);
        }
        self.index_due.doc(bucket);
    }

    /// A timeline item as this device reads it: a sealed message with the content read here,
    /// or marked undecryptable (a sealed message of another device not opened yet is
    /// `undecryptable` with the reason that it waits).
    pub(super) fn with_opened(&self, conv: &ConvId, mut item: TimelineItem) -> TimelineItem {
        item.unreadable = self.open_into(conv, item.bucket, &mut item.message);
        item.undecryptable = item.unreadable.map(|u| u.words().to_owned());
        item
    }

    /// Puts the content this device opened of sealed `message` (of `conv`'s `bucket`) in
    /// its fields; answers why it cannot when it has not (`None` for a message in the
    /// clear). What was read from another account's device than the message's author now
    /// names is not put: [`SENDER_MISMATCH`].
    pub(super) fn open_into(
        &self,
        conv: &ConvId,
        bucket: Bucket,
        message: &mut Message,
    ) -> Option<Unreadable> {
        let sealed = message.sealed.as_ref()?;
        let doc = DocId::msgs(&self.config.tenant, conv, bucket);
        let opened = self.docs.get(&doc).and_then(|d| d.opened.get(&message.id));
        match opened {
            Some(Opened::Undecryptable { reason, .. }) => Some(Unreadable::of_kept(reason)),
            Some(o) => match o.read_for(&message.author) {
                Some(content) => {
                    message.body = content.body.clone();
                    message.caption = content.caption.clone();
                    message.payload = content.payload.clone();
                    message.attachments = content.attachments.clone();
                    None
                }
                None => Some(Unreadable::SenderMismatch),
            },
            None => Some(self.not_opened(conv, sealed)),
        }
    }
}

impl ClientEngine {
    /// Why a sealed message of `conv` that this device has not opened is not open yet, or
    /// why it never will be.
    pub(super) fn not_opened(&self, conv: &ConvId, sealed: &[u8]) -> Unreadable {
        let group = e2ee::group_id(&DocId::conv(&self.config.tenant, conv));
        let Some(epoch) = self.mls.as_ref().and_then(|m| m.device.epoch(&group)) else {
            let member = self
                .conversation(conv)
                .is_some_and(|c| c.active_member(&self.config.account).is_some());
            return if member {
                Unreadable::WaitingToJoin
            } else {
                Unreadable::NotMember
            };
        };
        if !self.online {
            return Unreadable::WaitingForConnection;
        }
        match e2ee::sealed_epoch(sealed) {
            Err(_) => Unreadable::Damaged,
            Ok((_, sent)) if sent > epoch => Unreadable::WaitingForKeys,
            Ok(_) => Unreadable::WaitingForEarlier,
        }
    }
}

/// `message` of `conv` with its content out of the clear and `sealed` in its place, naming in
/// the clear the hashes of the blobs of `conv` its attachments name (`blobs`, none when it
/// names none), so the server releases them with the message (docs/E2EE.md, "Encrypted
/// attachments").
fn out_of_clear(message: &NewMessage, conv: &ConvId, sealed: Vec<u8>) -> NewMessage {
    let blobs = message
        .attachments
        .as_deref()
        .map(|json| blobs_named(json, conv))
        .filter(|hashes| !hashes.is_empty())
        .map(|hashes| blob_hashes_to_json(&hashes));
    NewMessage {
        body: String::new(),
        caption: None,
        payload: None,
        attachments: None,
        sealed: Some(sealed),
        blobs,
        ..message.clone()
    }
}

/// The reason kept for a message a decryption error leaves unreadable.
pub(super) fn reason(e: &E2eeError) -> String {
    Unreadable::of_error(e).words().to_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ids::DeviceId;

    fn device(tenant: &str, account: &str) -> DeviceIdentity {
        DeviceIdentity::new(
            TenantId::new(tenant).unwrap(),
            AccountId::new(account).unwrap(),
            DeviceId::new("phone").unwrap(),
        )
    }

    #[test]
    fn a_message_opens_only_under_its_senders_account_of_this_tenant() {
        let acme = TenantId::new("acme").unwrap();
        let alice = AccountId::new("alice").unwrap();
        assert!(sent_by(&device("acme", "alice"), &acme, &alice));
        assert!(!sent_by(&device("acme", "carol"), &acme, &alice));
        assert!(!sent_by(&device("other", "alice"), &acme, &alice));
    }

    #[test]
    fn what_was_read_shows_only_under_the_account_that_sealed_it() {
        let alice = AccountId::new("alice").unwrap();
        let carol = AccountId::new("carol").unwrap();
        let content = SealedContent {
            body: "hi".into(),
            caption: None,
            payload: None,
            attachments: None,
        };
        let read = |sender: Option<AccountId>| Opened::Read {
            content: content.clone(),
            of: None,
            before: None,
            sender,
        };
        assert_eq!(read(Some(alice.clone())).read_for(&alice), Some(&content));
        assert_eq!(read(Some(alice.clone())).read_for(&carol), None);
        // A record kept before the sender was recorded is taken as the author's.
        assert_eq!(read(None).read_for(&carol), Some(&content));
        let refused = Opened::Undecryptable {
            reason: SENDER_MISMATCH.into(),
            of: None,
        };
        assert_eq!(refused.read_for(&alice), None);
    }
}
