//! The conversation as the policy reads it, cached per conversation document: O(1) in the
//! group's size per intent and per `verdict`.
//!
//! Reading a whole conversation costs in proportion to its members (docs/BENCHMARKS.md),
//! and the policy needs much less: `meta`,
//! settings, lifecycle, the author's member entry (and for member changes the target's),
//! pins for a pin. The cache keeps those, read on first use, as of the local document's
//! heads: any change to the document (an intent's own write, a push, a rebase, a catch-up)
//! moves the heads, and the next use reads them again (a few map lookups, not the member
//! list). Keyed by heads, it cannot go stale. Adding a member to a group is the one check
//! that reads every entry (the policy counts the active members).

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;

use automerge::{Automerge, ChangeHash, ROOT};

use super::intent::Intent;
use crate::doc::read;
use crate::doc::schema::keys;
use crate::ids::{AccountId, ConvId};
use crate::model::conversation::{ConvKind, Conversation};

/// How often the engine read (parts of) conversations: tests check that intents do not read
/// the member list, so the cost cannot grow back silently.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReadStats {
    /// Cached views (re)built after the document moved: `meta`, settings, lifecycle.
    pub views: u64,
    /// Single member entries read.
    pub members: u64,
    /// Whole conversations read: every member, marker and pin (`conversation()`, adding a
    /// member to a group).
    pub full: u64,
}

/// The cached view of one conversation document (in its `ClientDoc`).
#[derive(Default)]
pub(super) struct ViewCell {
    view: RefCell<Option<View>>,
    stats: Cell<ReadStats>,
    /// A bucket's message count as of its heads (the part a send goes to depends on it).
    messages: RefCell<Option<(Vec<ChangeHash>, usize)>>,
    /// The whole conversation as of the heads it was read at: a page asks `conversation()`
    /// and the list several times per redraw, and only a change of the document moves it.
    full: RefCell<Option<(Vec<ChangeHash>, Conversation)>>,
}

impl Need {
    /// The member whose leaving or losing the owner role `intent` is about, when it is
    /// one the policy asks "the only owner?" of (which reads every member, so the check
    /// asks it only of an owner).
    pub(super) fn departing<'a>(intent: &'a Intent, me: &'a AccountId) -> Option<&'a AccountId> {
        match intent {
            Intent::Leave { .. } => Some(me),
            Intent::RemoveMember { account, .. } => Some(account),
            Intent::SetRole { account, .. } if account == me => Some(me),
            _ => None,
        }
    }

    /// The same, reading every member as well.
    pub(super) fn with_all_members(mut self) -> Need {
        self.all_members = true;
        self
    }
}

impl ViewCell {
    /// How many messages the bucket document `doc` holds (`read::message_count`, O(shards)),
    /// counted again only after the document moved: `can()` asks it on every call.
    pub(super) fn message_count(&self, doc: &Automerge) -> usize {
        let heads = doc.get_heads();
        let Ok(mut slot) = self.messages.try_borrow_mut() else {
            return read::message_count(doc);
        };
        match slot.as_ref() {
            Some((at, count)) if *at == heads => *count,
            _ => {
                let count = read::message_count(doc);
                *slot = Some((heads, count));
                count
            }
        }
    }

    /// What this cell read so far.
    pub(super) fn stats(&self) -> ReadStats {
        self.stats.get()
    }

    fn count(&self, f: impl FnOnce(&mut ReadStats)) {
        let mut stats = self.stats.get();
        f(&mut stats);
        self.stats.set(stats);
    }

    /// The whole conversation, counted.
    pub(super) fn read_full(&self, doc: &Automerge, conv: &ConvId) -> Conversation {
        self.count(|s| s.full += 1);
        read::read_conversation(doc, conv.clone())
    }

    /// The whole conversation, read again only after the document moved.
    pub(super) fn full(&self, doc: &Automerge, conv: &ConvId) -> Conversation {
        let heads = doc.get_heads();
        let Ok(mut slot) = self.full.try_borrow_mut() else {
            return self.read_full(doc, conv);
        };
        match slot.as_ref() {
            Some((at, full)) if *at == heads => full.clone(),
            _ => {
                let full = self.read_full(doc, conv);
                *slot = Some((heads, full.clone()));
                full
            }
        }
    }
}

struct View {
    heads: Vec<ChangeHash>,
    /// `meta`, settings and lifecycle; `members` holds only the accounts in `read`, `pins`
    /// only once `pins_read`; no info, no read markers (the policy reads neither).
    conv: Conversation,
    /// Accounts looked up (whether or not they have an entry).
    read: BTreeSet<AccountId>,
    pins_read: bool,
    all_members: bool,
}

/// What a check reads besides `meta`, settings and lifecycle.
#[derive(Debug, Default)]
pub(super) struct Need {
    accounts: Vec<AccountId>,
    pins: bool,
    all_members: bool,
}

impl Need {
    /// What the policy reads for `intent` by `me` (see `apply::check` and `policy`).
    pub(super) fn of(intent: &Intent, me: &AccountId) -> Need {
        let mut need = Need {
            accounts: vec![me.clone()],
            ..Need::default()
        };
        match intent {
            // The policy counts the active members of a group.
            Intent::AddMember { account, .. } => {
                need.accounts.push(account.clone());
                need.all_members = true;
            }
            Intent::RemoveMember { account, .. }
            | Intent::SetRole { account, .. }
            | Intent::SetOverride { account, .. }
            | Intent::TransferOwnership { account, .. } => need.accounts.push(account.clone()),
            Intent::Pin { .. } => need.pins = true,
            _ => {}
        }
        need
    }
}

impl ViewCell {
    /// Runs `f` on the conversation `doc` holds as the policy needs it (`None` when it is not
    /// created), from the cache. Reads only what `need` adds to the cached view.
    pub(super) fn policy_conv<T>(
        &self,
        doc: &Automerge,
        conv: &ConvId,
        need: &Need,
        f: impl FnOnce(Option<&Conversation>) -> T,
    ) -> T {
        // Re-entered from `f` (nothing does so today): read without the cache.
        let Ok(mut slot) = self.view.try_borrow_mut() else {
            let full = self.read_full(doc, conv);
            return f(Some(&full).filter(|c| c.meta.is_some()));
        };
        let heads = doc.get_heads();
        if slot.as_ref().is_none_or(|v| v.heads != heads) {
            self.count(|s| s.views += 1);
            let meta = read::read_meta(doc);
            let kind = meta.as_ref().map_or(ConvKind::Group, |m| m.kind);
            *slot = Some(View {
                heads,
                conv: Conversation {
                    id: conv.clone(),
                    settings: read::read_settings(doc, kind),
                    meta,
                    // Small and fixed: support threads' rules read the names and title.
                    info: read::read_info(doc),
                    members: Default::default(),
                    pins: Default::default(),
                    reads: Default::default(),
                    delivered: Default::default(),
                    lifecycle: read::read_lifecycle(doc),
                    mls: read::read_mls(doc),
                },
                read: BTreeSet::new(),
                pins_read: false,
                all_members: false,
            });
        }
        let Some(view) = slot.as_mut() else {
            return f(None);
        };
        if need.all_members && !view.all_members {
            let full = self.read_full(doc, conv);
            view.read.extend(full.members.keys().cloned());
            view.conv.members = full.members;
            view.all_members = true;
        }
        let members = read::get_map(doc, &ROOT, keys::MEMBERS);
        for account in &need.accounts {
            if view.all_members || !view.read.insert(account.clone()) {
                continue;
            }
            self.count(|s| s.members += 1);
            if let Some(m) = members
                .as_ref()
                .and_then(|obj| read::read_member(doc, obj, account))
            {
                view.conv.members.insert(account.clone(), m);
            }
        }
        if need.pins && !view.pins_read {
            view.conv.pins = read::read_pins(doc);
            view.pins_read = true;
        }
        f(Some(&view.conv).filter(|c| c.meta.is_some()))
    }
}
