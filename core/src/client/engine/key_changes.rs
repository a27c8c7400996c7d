//! The engine's side of key-change notices (`crate::client::key_changes` derives them): kept
//! per group as commits are processed, saved with the MLS state, and placed in timelines.

use crate::client::engine::{ClientEngine, Output};
use crate::client::key_changes::{derive, Kept, KeyNotice, Stored, KEY_CHANGES_KEPT};
use crate::client::records::cbor;
use crate::client::store::StoreOp;
use crate::client::timeline::{order, TimelineItem};
use crate::e2ee::{self, Leaf};
use crate::ids::{AccountId, ConvId, DocId};

impl ClientEngine {
    /// The leaves of `group` as this device holds them now (before a commit takes effect).
    pub(super) fn leaves_now(&self, group: &[u8]) -> Option<Vec<Leaf>> {
        self.mls.as_ref()?.device.leaves(group).ok()
    }

    /// A commit of `group` took effect here (another device's, processed, or this
    /// device's own, merged); `before`: the group's leaves before it. Keeps and saves the
    /// notices it brings. The commit out of epoch 0 completes the group its creator made
    /// alone and brings none; a device the commit removed keeps nothing of it.
    pub(super) fn note_key_changes(&mut self, group: &[u8], before: Option<Vec<Leaf>>) {
        let Some(before) = before else {
            return;
        };
        // The accounts of the conversation's active members, as this device holds it.
        let conversation = std::str::from_utf8(group)
            .ok()
            .and_then(|g| DocId::parse(g).ok())
            .and_then(|d| d.conv_id().cloned())
            .and_then(|c| self.conversation(&c));
        let staying: std::collections::BTreeSet<AccountId> = before
            .iter()
            .map(|l| l.device.account.clone())
            .filter(|a| {
                conversation
                    .as_ref()
                    .is_some_and(|c| c.active_member(a).is_some())
            })
            .collect();
        let Some(mls) = self.mls.as_mut() else {
            return;
        };
        let Some(epoch) = mls.device.epoch(group).filter(|e| *e > 1) else {
            return;
        };
        let Ok(after) = mls.device.leaves(group) else {
            return;
        };
        let kept = mls.notices.entry(group.to_vec()).or_default();
        let new = derive(&before, &after, epoch, kept, &|a| staying.contains(a));
        if new.is_empty() {
            return;
        }
        kept.extend(new);
        let over = kept.len().saturating_sub(KEY_CHANGES_KEPT);
        kept.drain(..over);
        let stored: Vec<Stored> = kept.iter().map(Kept::stored).collect();
        let op = StoreOp::Put(crate::client::mls_saved::notices_key(group), cbor(&stored));
        self.out.push(Output::Persist(vec![op]));
    }

    /// The key-change notices of `conv` this device derived from the commits it followed
    /// (from the one after it joined on; the last `KEY_CHANGES_KEPT`), oldest first, each
    /// with the message of the loaded parts it stands before.
    pub fn key_changes(&self, conv: &ConvId) -> Vec<KeyNotice> {
        let group = e2ee::group_id(&DocId::conv(&self.config.tenant, conv));
        let Some(kept) = self.mls.as_ref().and_then(|m| m.notices.get(&group)) else {
            return Vec::new();
        };
        let mut notices: Vec<KeyNotice> = kept
            .iter()
            .map(|k| KeyNotice {
                change: k.change.clone(),
                before: None,
            })
            .collect();
        // Kept in the order the commits came, so by epoch.
        let buckets = self.bucket_items(conv);
        let mut items: Vec<&TimelineItem> = buckets.iter().flat_map(|c| c.iter()).collect();
        items.sort_by(|a, b| order(a).cmp(&order(b)));
        let mut next = 0;
        for item in items {
            if next == notices.len() {
                break;
            }
            let message = &item.message;
            let Some(sealed) = message
                .sealed
                .as_ref()
                .filter(|_| message.edited_at.is_none())
            else {
                continue;
            };
            let Ok((_, sent)) = e2ee::sealed_epoch(sealed) else {
                continue;
            };
            // The first message sealed in an epoch is the first of every notice up to it.
            while notices.get(next).is_some_and(|n| n.change.epoch() <= sent) {
                notices[next].before = Some(message.id.clone());
                next += 1;
            }
        }
        notices
    }
}
