//! The engine's side of sealed messages (`crate::client::sealed` holds what was opened):
//! sealing a send, edit or attachment key for the group's epoch, opening what arrives, and
//! keeping what was read beside its bucket.

use crate::client::engine::{ClientEngine, ClientError, Output};
use crate::client::intent::Intent;
use crate::client::records::{cbor, key_opened, uncbor};
use crate::client::sealed::{digest, Opened, EDITS_PENDING_KEPT};
use crate::client::store::StoreOp;
use crate::client::timeline::TimelineItem;
use crate::client::unreadable::Unreadable;
use crate::doc::read;
use crate::e2ee::{self};
use crate::ids::{Bucket, ConvId, DocId, MessageId};
use crate::model::attachment::{blob_hashes_to_json, blobs_named};
use crate::model::message::{sealed_aad, Message, NewMessage, SealedContent};

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
            state.to_open = crate::client::opening::ToOpen::all();
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
