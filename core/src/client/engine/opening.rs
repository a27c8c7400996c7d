//! The engine's side of opening sealed messages in the order they were sent
//! (`crate::client::opening` keeps what waits per part): which parts may open now, and
//! opening them under their MLS sender's account.

use crate::client::engine::{ClientEngine, Output};
use crate::client::opening::Waiting;
use crate::client::records::{cbor, key_opened};
use crate::client::sealed::{digest, reason, sent_by, Opened, SENDER_MISMATCH};
use crate::client::store::StoreOp;
use crate::client::unreadable::Unreadable;
use crate::doc::read;
use crate::e2ee::{self, E2eeError};
use crate::ids::{Bucket, ConvId, DocId, DocTarget, MessageId};
use crate::model::message::{aad_names, SealedContent};
use std::collections::{HashMap, HashSet};

impl ClientEngine {
    /// Whether `conv` is encrypted as the server accepted it: `None` while its conversation
    /// document is not held or holds no meta yet.
    fn accepted_encrypted(&self, conv: &ConvId) -> Option<bool> {
        self.docs
            .get(&DocId::conv(&self.config.tenant, conv))
            .and_then(|d| read::read_meta(&d.server))
            .map(|m| m.encrypted)
    }

    /// Notes the sealed messages of bucket `doc` to open (`ids`, or every one of it not read
    /// yet), then opens what is ready.
    pub(super) fn open_arrived(&mut self, doc: &DocId, ids: Option<Vec<MessageId>>) {
        let DocTarget::Msgs(conv, _) = doc.target() else {
            return;
        };
        let conv = conv.clone();
        let known = match self.accepted_encrypted(&conv) {
            Some(false) => return,
            Some(true) => self.mls.is_some(),
            None => false,
        };
        let Some(state) = self.docs.get_mut(doc) else {
            return;
        };
        match ids {
            // Not known to be opened here: one flag, not every id of a conversation that may
            // be in the clear.
            Some(_) if !known => state.to_open.all = true,
            Some(ids) => state.to_open.ids.extend(ids),
            None => state.to_open.all = true,
        }
        self.open_ready(&conv);
    }

    /// Opens what waits in `conv`'s held parts, in part order, up to and including the
    /// first part still catching up (the parts after it wait for its `synced`).
    pub(super) fn open_ready(&mut self, conv: &ConvId) {
        if !self.online || self.mls.is_none() || self.accepted_encrypted(conv) != Some(true) {
            return;
        }
        let mut ready: Vec<Bucket> = Vec::new();
        for (bucket, state) in
            crate::client::replica::buckets_of(&self.docs, &self.config.tenant, conv)
        {
            if !state.to_open.is_empty() {
                ready.push(bucket);
            }
            if state.catching_up {
                break;
            }
        }
        let mut changed = false;
        for bucket in ready {
            changed |= self.open_part(&DocId::msgs(&self.config.tenant, conv, bucket));
        }
        changed |= self.keep_usual_epochs(conv);
        if changed {
            self.save_device();
        }
    }

    /// Whether a held part of `conv` has messages waiting that may open at `epoch`: the
    /// group passing `epoch` is to open them first.
    pub(super) fn opens_at(&self, conv: &ConvId, epoch: u64) -> bool {
        crate::client::replica::buckets_of(&self.docs, &self.config.tenant, conv)
            .any(|(_, part)| part.to_open.opens_at(epoch))
    }

    /// The group of `conv` moved: messages that waited for it are opened.
    pub(super) fn open_waiting(&mut self, conv: &ConvId) {
        self.open_ready(conv);
    }

    /// Opens what waits in part `doc`, in the order it was sent (server order, else time);
    /// what was read of a message deleted since goes with its ciphertext. Answers whether
    /// the device's state moved (a message was decrypted or refused).
    fn open_part(&mut self, doc: &DocId) -> bool {
        let Some(conv) = doc.conv_id() else {
            return false;
        };
        let conv_doc = DocId::conv(&self.config.tenant, conv);
        let group = e2ee::group_id(&conv_doc);
        let behind = self.group_behind(&conv_doc, &group);
        let at = self.mls.as_ref().and_then(|m| m.device.epoch(&group));
        let account = self.config.account.clone();
        let tenant = self.config.tenant.clone();
        let Some(state) = self.docs.get_mut(doc) else {
            return false;
        };
        let mut to_open = std::mem::take(&mut state.to_open);
        // What is sealed in an epoch still ahead of the group waits on, untouched.
        let mut ahead = HashMap::new();
        let mut due = Vec::new();
        for (id, epoch) in to_open.ahead.drain() {
            if at.is_some_and(|at| epoch <= at) {
                due.push(id);
            } else {
                ahead.insert(id, epoch);
            }
        }
        let mut ids = if to_open.all {
            crate::client::timeline::message_ids(&state.server)
        } else {
            to_open.ids.into_iter().collect()
        };
        ids.extend(due);
        // Once each: a second decryption of one ciphertext fails.
        ids.sort_unstable();
        ids.dedup();
        let mut deleted = Vec::new();
        let mut waiting: Vec<Waiting> = Vec::new();
        for id in ids {
            let Some(message) = read::read_message_fields(&state.server, &id) else {
                continue;
            };
            let earlier = state.opened.get(&id);
            let sealed = match message.sealed {
                Some(sealed) if message.deleted_at.is_none() => sealed,
                _ => {
                    if earlier.is_some() {
                        deleted.push(id);
                    }
                    continue;
                }
            };
            // Read already, or read before an edit: this device's own were kept as read
            // when sealed.
            if earlier.is_some_and(|o| !o.is_stale(&sealed)) {
                continue;
            }
            // An edit of this account's whose ciphertext this device made: it keeps what it
            // sealed (a device cannot open its own).
            let mine = message.author == account && matches!(earlier, Some(Opened::Read { .. }));
            waiting.push(Waiting {
                seq: state.message_seq.get(&id).copied().unwrap_or(0),
                created_at: message.created_at,
                id,
                sealed,
                author: message.author,
                mine,
            });
        }
        waiting.sort_unstable_by(|a, b| {
            (a.seq, a.created_at, &a.id).cmp(&(b.seq, b.created_at, &b.id))
        });
        let mut ops: Vec<StoreOp> = deleted
            .iter()
            .map(|id| StoreOp::Delete(key_opened(doc, id)))
            .collect();
        for id in &deleted {
            state.opened.remove(id);
        }
        if !deleted.is_empty() {
            self.index_due.doc(doc);
        }
        let Some(mls) = self.mls.as_mut() else {
            return false;
        };
        let mut changed = false;
        let mut still = HashSet::new();
        let mut read = Vec::with_capacity(waiting.len());
        for Waiting {
            id,
            sealed,
            author,
            mine,
            ..
        } in waiting
        {
            // Sealed in an epoch the group has not reached: it waits for that epoch, with
            // no decryption tried (the commits may still be on their way: the server takes
            // no message of an epoch it has not accepted).
            if let Some(at) = at {
                if let Ok((of_group, epoch)) = e2ee::sealed_epoch(&sealed) {
                    if of_group == group && epoch > at {
                        ahead.insert(id, epoch);
                        continue;
                    }
                }
            }
            let of = Some(digest(&sealed));
            let opened = match mls.device.decrypt(&sealed) {
                // The server checked which content an edit replaced; here, that it is this
                // message's.
                Ok(d) if !aad_names(&d.aad, &id) => Opened::Undecryptable {
                    reason: Unreadable::Damaged.words().into(),
                    of,
                },
                // Sealed by a device of another account than the author the message names in
                // the clear (a post or an edit relabelled on the way): not opened, and its
                // plaintext dropped here. Its ratchet key is spent, as for any opened message,
                // so the sender's later messages still open.
                Ok(d) if !sent_by(&d.sender, &tenant, &author) => Opened::Undecryptable {
                    reason: SENDER_MISMATCH.into(),
                    of,
                },
                Ok(d) => match SealedContent::from_bytes(&d.plaintext) {
                    Some(content) => Opened::Read {
                        content,
                        of,
                        before: None,
                        sender: Some(d.sender.account),
                    },
                    None => Opened::Undecryptable {
                        reason: Unreadable::Damaged.words().into(),
                        of,
                    },
                },
                // Not in the group yet, or behind its epoch: it waits for the commits.
                Err(E2eeError::UnknownGroup) => {
                    still.insert(id);
                    continue;
                }
                Err(_) if behind || mine => {
                    still.insert(id);
                    continue;
                }
                Err(e) => Opened::Undecryptable {
                    reason: reason(&e),
                    of,
                },
            };
            changed = true;
            read.push((id, opened));
        }
        ops.extend(
            read.iter()
                .map(|(id, opened)| StoreOp::Put(key_opened(doc, id), cbor(opened))),
        );
        let Some(state) = self.docs.get_mut(doc) else {
            return changed;
        };
        state.opened.extend(read);
        state.to_open.ids.extend(still);
        state.to_open.ahead.extend(ahead);
        self.index_due.doc(doc);
        if !ops.is_empty() {
            // One write for the part: a catch-up opens thousands at once.
            self.out.push(Output::Persist(ops));
        }
        changed
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
}
