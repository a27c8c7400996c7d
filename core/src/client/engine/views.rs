//! Derived views, the engine's queries: timelines in server order, the conversation list,
//! profiles, the account's private document, cursors. Computed from the held documents
//! (through their cached cells) on every call, never stored: a stored derived value would
//! conflict between replicas.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::client::engine::ClientEngine;
use crate::client::replica::buckets_of;
use crate::client::timeline::{order, TimelineItem};
use crate::doc::read::{self, ConvPrefs, PrivateData};
use crate::ids::{AccountId, Bucket, ContactId, ConvId, DocId, DocTarget, MessageId};
use crate::model::account::Profile;
use crate::model::contact::Contact;
use crate::model::message::Message;

/// A row of the conversation list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationSummary {
    pub conv: ConvId,
    pub kind: Option<String>,
    pub title: Option<String>,
    pub lifecycle: String,
    pub unread: usize,
    pub last_message: Option<String>,
    /// The last message's author and the name the conversation gives them now
    /// (`Conversation::name_of`: a support thread's client or owner name, else their
    /// nickname here; `None` where it gives none).
    pub last_sender: Option<AccountId>,
    pub last_sender_name: Option<String>,
    pub last_activity: i64,
    /// Muted at the time asked (`ConvPrefs::is_muted`): while `muted_until` is in the
    /// future, or `muted` without a `muted_until`.
    pub muted: bool,
    pub muted_until: Option<i64>,
    pub pinned: bool,
    pub archived: bool,
}

impl ClientEngine {
    /// Messages of the loaded buckets of `conv`: server order, then pending ones.
    pub fn timeline(&self, conv: &ConvId) -> Vec<TimelineItem> {
        let mut items: Vec<TimelineItem> = self
            .bucket_items(conv)
            .iter()
            .flat_map(|cell| cell.iter().cloned())
            .map(|item| self.with_opened(conv, item))
            .collect();
        items.sort_by(|a, b| order(a).cmp(&order(b)));
        items
    }

    /// Each loaded bucket's items of `conv` (cached per bucket, unsorted).
    pub(super) fn bucket_items(&self, conv: &ConvId) -> Vec<Arc<Vec<TimelineItem>>> {
        buckets_of(&self.docs, &self.config.tenant, conv)
            .map(|(bucket, state)| state.timeline_items(bucket))
            .collect()
    }

    /// How often whole bucket documents were read out of Automerge for timelines (tests
    /// check that a push reads none, so the cost cannot grow back silently).
    pub fn timeline_reads(&self) -> u64 {
        self.docs.values().map(|s| s.timeline.reads()).sum()
    }

    /// `conv`'s timeline read whole out of its buckets, bypassing the cache (tests compare
    /// the patched items with it).
    #[doc(hidden)]
    pub fn timeline_read_whole(&self, conv: &ConvId) -> Vec<TimelineItem> {
        let mut items = Vec::new();
        for (id, state) in &self.docs {
            if let DocTarget::Msgs(c, bucket) = id.target() {
                if c == conv {
                    items.extend(state.timeline_read_whole(*bucket));
                }
            }
        }
        items.sort_by(|a, b| order(a).cmp(&order(b)));
        items
    }

    /// How many single messages timelines read again after changes touched them.
    pub fn timeline_messages_read(&self) -> u64 {
        self.docs.values().map(|s| s.timeline.messages_read()).sum()
    }

    /// One message of a loaded bucket of `conv` as this device sees it, without its
    /// reactions, and its bucket: a lookup per loaded bucket, not a timeline. A sealed
    /// message holds the content this device opened (a forward copies it); `cannot_open`
    /// says when there is none.
    pub fn message(&self, conv: &ConvId, id: &MessageId) -> Option<(Bucket, Message)> {
        let (bucket, mut message) = self.stored_message(conv, id)?;
        self.open_into(conv, bucket, &mut message);
        Some((bucket, message))
    }

    /// Why this device cannot read message `id` of `conv`: `None` when it can (in the
    /// clear, or opened) or does not hold it.
    pub fn cannot_open(&self, conv: &ConvId, id: &MessageId) -> Option<String> {
        let (bucket, mut message) = self.stored_message(conv, id)?;
        self.open_into(conv, bucket, &mut message)
            .map(|u| u.words().to_owned())
    }

    fn stored_message(&self, conv: &ConvId, id: &MessageId) -> Option<(Bucket, Message)> {
        self.docs
            .range(
                DocId::msgs(&self.config.tenant, conv, Bucket::new(i64::MIN, 0))
                    ..=DocId::msgs(&self.config.tenant, conv, Bucket::new(i64::MAX, u32::MAX)),
            )
            .rev()
            .find_map(|(doc, state)| match doc.target() {
                DocTarget::Msgs(c, bucket) if c == conv => {
                    read::read_message_fields(&state.local, id).map(|m| (*bucket, m))
                }
                _ => None,
            })
    }

    /// The conversation list: last activity first, unread counts from read markers. Deleted
    /// conversations are left out (`conversation()` still reads them), and so are direct
    /// conversations this account hid, until a message created after the hide arrives.
    /// `muted` is as of `device_now` (the device clock, turned into server time like every
    /// time the engine compares): a mute with a `muted_until` ends by itself.
    pub fn conversations(&self, device_now: i64) -> Vec<ConversationSummary> {
        let now = self.server_now(device_now);
        let private = self.private_data();
        let mut out = Vec::new();
        for (id, state) in &self.docs {
            let DocTarget::Conv(conv_id) = id.target() else {
                continue;
            };
            let conv = state.view.full(&state.local, conv_id);
            let Some(meta) = conv.meta.as_ref() else {
                continue;
            };
            if conv.lifecycle.state == crate::model::conversation::Lifecycle::Deleted {
                continue;
            }
            // From the cached bucket items, in timeline order, without copying or sorting
            // them: the list is asked after every change.
            let buckets = self.bucket_items(conv_id);
            let items = || buckets.iter().flat_map(|cell| cell.iter());
            let marker = conv.reads.get(&self.config.account);
            let read_upto = marker
                .and_then(|m| items().find(|i| i.message.id == *m))
                .map(order);
            let unread = items()
                .filter(|item| {
                    read_upto.is_none_or(|r| order(item) > r)
                        && item.message.author != self.config.account
                        && item.message.deleted_at.is_none()
                })
                .count();
            let last = items().max_by(|a, b| order(a).cmp(&order(b)));
            let prefs = private.convs.get(conv_id).cloned().unwrap_or_default();
            // A hidden direct conversation stays off the list until a newer message (the
            // last in timeline order, as the server's list reads it).
            if prefs.hides(last.map(|i| i.message.created_at)) {
                continue;
            }
            out.push(ConversationSummary {
                conv: conv_id.clone(),
                kind: Some(meta.kind.as_str().to_owned()),
                title: conv.info.title.clone(),
                lifecycle: conv.lifecycle.state.as_str().to_owned(),
                unread,
                last_message: last.map(|i| {
                    i.message
                        .body
                        .chars()
                        .take(crate::limits::PREVIEW_CHARS)
                        .collect()
                }),
                last_sender: last.map(|i| i.message.author.clone()),
                last_sender_name: last
                    .and_then(|i| conv.name_of(&i.message.author))
                    .map(str::to_owned),
                last_activity: last.map_or(meta.created_at, |i| i.message.created_at),
                muted: prefs.is_muted(now),
                muted_until: prefs.muted_until,
                pinned: prefs.pinned,
                archived: prefs.archived,
            });
        }
        out.sort_by_key(|s| std::cmp::Reverse((s.pinned, s.last_activity)));
        out
    }

    /// `account`'s public profile, once its document is loaded (`open(&DocId::profile(..))`;
    /// this account's own is) and the account has written one.
    pub fn profile(&self, account: &AccountId) -> Option<Profile> {
        let doc = self
            .docs
            .get(&DocId::profile(&self.config.tenant, account))?;
        read::read_profile(&doc.local)
    }

    /// This account's private document as this device sees it (accepted plus pending):
    /// contacts, per-conversation preferences, drafts, scheduled messages; with the drafts
    /// and scheduled messages of encrypted conversations this device keeps to itself
    /// (docs/E2EE.md, "Drafts and scheduled messages"). Empty until the document is loaded.
    pub fn private_data(&self) -> PrivateData {
        self.with_here(self.private_doc_data())
    }

    /// The private document alone, as this device sees it.
    pub(super) fn private_doc_data(&self) -> PrivateData {
        self.docs
            .get(&DocId::private(&self.config.tenant, &self.config.account))
            .map(|d| read::read_private(&d.local))
            .unwrap_or_default()
    }

    /// This account's preferences for `conv` (muted, pinned, archived, notification level).
    pub fn preferences(&self, conv: &ConvId) -> ConvPrefs {
        self.private_data().convs.remove(conv).unwrap_or_default()
    }

    /// This account's draft for `conv`.
    pub fn draft(&self, conv: &ConvId) -> Option<String> {
        self.private_data().drafts.remove(conv)
    }

    /// This account's address book.
    pub fn contacts(&self) -> BTreeMap<ContactId, Contact> {
        self.private_data().contacts
    }

    /// Every loaded document with its cursor: catch-up after a reconnect resumes after it.
    pub fn cursors(&self) -> Vec<(DocId, u64)> {
        self.docs
            .iter()
            .map(|(id, d)| (id.clone(), d.cursor))
            .collect()
    }
}
