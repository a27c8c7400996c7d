//! Sealed messages on the device (docs/E2EE.md, "On the device"): a send into an encrypted
//! conversation seals its content (`SealedContent`, bound to the message id) for the group's
//! current epoch; a message of another device is opened once when it arrives (MLS deletes
//! each key after use, and a sender cannot open its own). What was read is kept with its
//! bucket document, in memory and in the store (`open/<doc>/<message>`), and timelines show
//! it; a message that cannot be opened is shown `undecryptable` with its reason.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::engine::{ClientEngine, ClientError, Output};
use super::intent::Intent;
use super::records::{cbor, key_opened, uncbor};
use super::store::StoreOp;
use super::timeline::TimelineItem;
use crate::doc::read;
use crate::e2ee::{self, E2eeError};
use crate::ids::{ConvId, DocId, DocTarget, MessageId};
use crate::model::message::{NewMessage, SealedContent};

/// What this device read of one sealed message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Opened {
    Read {
        content: SealedContent,
    },
    /// It cannot be read here: `reason` says why (sent before this device joined, an epoch
    /// outside the window of past epochs, corrupt).
    Undecryptable {
        reason: String,
    },
}

/// Per bucket document: what was read of its sealed messages.
pub(super) type OpenedBook = HashMap<MessageId, Opened>;

impl ClientEngine {
    /// Whether `conv` is end-to-end encrypted, as this device holds it.
    pub(super) fn is_encrypted(&self, conv: &ConvId) -> bool {
        self.docs
            .get(&DocId::conv(&self.config.tenant, conv))
            .and_then(|d| read::read_meta(&d.local))
            .is_some_and(|m| m.encrypted)
    }

    /// The encrypted conversation a `Send` seals its message for.
    pub(super) fn sealed_conv(&self, intent: &Intent) -> Option<ConvId> {
        let Intent::Send { conv, .. } = intent else {
            return None;
        };
        // Its meta alone, not the conversation: a send never reads the member list.
        self.is_encrypted(conv).then(|| conv.clone())
    }

    /// `intent` as the policy sees it once sealed (its content out of the clear), for the
    /// checks made before it is written; `None` when it is not sealed.
    pub(super) fn as_sealed(&self, intent: &Intent) -> Option<Intent> {
        let (Some(conv), Intent::Send { message, .. }) = (self.sealed_conv(intent), intent) else {
            return None;
        };
        Some(Intent::Send {
            conv,
            message: out_of_clear(message, vec![0]),
        })
    }

    /// The message `intent` sends, sealed for its conversation's group (its content kept
    /// here as read: the sender cannot open its own), or `None` when it is not sealed.
    pub(super) fn seal(
        &mut self,
        intent: &Intent,
        bucket: &DocId,
    ) -> Result<Option<Intent>, ClientError> {
        let (Some(conv), Intent::Send { message, .. }) = (self.sealed_conv(intent), intent) else {
            return Ok(None);
        };
        let group = e2ee::group_id(&DocId::conv(&self.config.tenant, &conv));
        let content = SealedContent {
            body: message.body.clone(),
            caption: message.caption.clone(),
            payload: message.payload.clone(),
            attachments: message.attachments.clone(),
        };
        let mls = self
            .mls
            .as_mut()
            .ok_or_else(|| ClientError::E2ee("no device attached".into()))?;
        let sealed = mls
            .device
            .encrypt(&group, message.id.as_str().as_bytes(), &content.to_bytes())
            .map_err(|e| ClientError::E2ee(e.to_string()))?;
        self.save_device();
        self.keep_opened(bucket, &message.id, Opened::Read { content });
        Ok(Some(Intent::Send {
            conv,
            message: out_of_clear(message, sealed),
        }))
    }

    /// What was read of bucket `doc`'s sealed messages, back from the store (an entry that
    /// does not read back is left out: the message shows as not opened).
    pub(super) fn restore_opened(&mut self, doc: &DocId, opened: Vec<(MessageId, Vec<u8>)>) {
        if let Some(state) = self.docs.get_mut(doc) {
            for (id, bytes) in opened {
                if let Ok(o) = uncbor::<Opened>(&bytes) {
                    state.opened.insert(id, o);
                }
            }
        }
    }

    fn keep_opened(&mut self, bucket: &DocId, id: &MessageId, opened: Opened) {
        self.out.push(Output::Persist(vec![StoreOp::Put(
            key_opened(bucket, id),
            cbor(&opened),
        )]));
        if let Some(state) = self.docs.get_mut(bucket) {
            state.opened.insert(id.clone(), opened);
        }
    }

    /// Opens the sealed messages of bucket `doc` not read here yet (`ids`, or all of them
    /// after a catch-up from a snapshot). A message of an epoch this device has not reached
    /// waits for the commits that bring it there.
    pub(super) fn open_arrived(&mut self, doc: &DocId, ids: Option<Vec<MessageId>>) {
        let DocTarget::Msgs(conv, _) = doc.target() else {
            return;
        };
        let conv_doc = DocId::conv(&self.config.tenant, conv);
        let encrypted = self
            .docs
            .get(&conv_doc)
            .and_then(|d| read::read_meta(&d.server))
            .is_some_and(|m| m.encrypted);
        if !encrypted || self.mls.is_none() {
            return;
        }
        let Some(state) = self.docs.get(doc) else {
            return;
        };
        let ids = ids.unwrap_or_else(|| super::timeline::message_ids(&state.server));
        let waiting: Vec<(MessageId, Vec<u8>)> = ids
            .into_iter()
            .filter(|id| !state.opened.contains_key(id))
            .filter_map(|id| {
                // This device's own were kept as read when sealed.
                let sealed = read::read_message_fields(&state.server, &id)?.sealed?;
                Some((id, sealed))
            })
            .collect();
        let group = e2ee::group_id(&conv_doc);
        let mut changed = false;
        for (id, sealed) in waiting {
            let Some(mls) = self.mls.as_mut() else {
                return;
            };
            let opened = match mls.device.decrypt(&sealed) {
                Ok(d) if d.aad != id.as_str().as_bytes() => Opened::Undecryptable {
                    reason: "bound to another message".into(),
                },
                Ok(d) => match SealedContent::from_bytes(&d.plaintext) {
                    Some(content) => Opened::Read { content },
                    None => Opened::Undecryptable {
                        reason: "not a message's content".into(),
                    },
                },
                // Not in the group yet, or behind its epoch: it waits for the commits.
                Err(E2eeError::UnknownGroup) => continue,
                Err(e) if self.group_behind(&conv_doc, &group) => {
                    let _ = e;
                    continue;
                }
                Err(e) => Opened::Undecryptable { reason: reason(&e) },
            };
            changed = true;
            self.keep_opened(doc, &id, opened);
        }
        if changed {
            self.save_device();
        }
    }

    /// Whether this device's group of `conv_doc` is behind the accepted epoch.
    fn group_behind(&self, conv_doc: &DocId, group: &[u8]) -> bool {
        let accepted = self
            .docs
            .get(conv_doc)
            .and_then(|d| read::read_mls(&d.server))
            .map_or(0, |m| m.epoch);
        self.mls
            .as_ref()
            .and_then(|m| m.device.epoch(group))
            .is_some_and(|e| e < accepted)
    }

    /// The group of `conv` moved: its loaded buckets' messages that waited are opened.
    pub(super) fn open_waiting(&mut self, conv: &ConvId) {
        let buckets: Vec<DocId> = super::replica::buckets_of(&self.docs, &self.config.tenant, conv)
            .map(|(b, _)| DocId::msgs(&self.config.tenant, conv, b))
            .collect();
        for doc in buckets {
            self.open_arrived(&doc, None);
        }
    }

    /// A timeline item as this device reads it: a sealed message with the content read here,
    /// or marked undecryptable (a sealed message of another device not opened yet is
    /// `undecryptable` with the reason that it waits).
    pub(super) fn with_opened(&self, conv: &ConvId, mut item: TimelineItem) -> TimelineItem {
        if item.message.sealed.is_none() {
            return item;
        }
        let doc = DocId::msgs(&self.config.tenant, conv, item.bucket);
        match self
            .docs
            .get(&doc)
            .and_then(|d| d.opened.get(&item.message.id))
        {
            Some(Opened::Read { content }) => {
                item.message.body = content.body.clone();
                item.message.caption = content.caption.clone();
                item.message.payload = content.payload.clone();
                item.message.attachments = content.attachments.clone();
            }
            Some(Opened::Undecryptable { reason }) => item.undecryptable = Some(reason.clone()),
            None => item.undecryptable = Some("not opened on this device yet".into()),
        }
        item
    }
}

/// `message` with its content out of the clear and `sealed` in its place.
fn out_of_clear(message: &NewMessage, sealed: Vec<u8>) -> NewMessage {
    NewMessage {
        body: String::new(),
        caption: None,
        payload: None,
        attachments: None,
        sealed: Some(sealed),
        ..message.clone()
    }
}

fn reason(e: &E2eeError) -> String {
    match e {
        E2eeError::EpochTooOld => "sent in an epoch outside the window this device keeps".into(),
        E2eeError::BeforeJoin => "sent before this device joined".into(),
        E2eeError::AlreadyDecrypted => "read once already and not kept".into(),
        E2eeError::Malformed(_) | E2eeError::TooLarge(_) => "corrupt".into(),
        other => other.to_string(),
    }
}
