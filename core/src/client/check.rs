//! What an intent reads of the held documents before it writes: the policy's verdict on
//! this device's state (the conversation from its cached view, then `apply::check`), the
//! sender stamps of a support thread, the depth of a thread it creates, a conversation's
//! bucket width and lifecycle. Reads only: nothing here changes a document.

use super::apply;
use super::cache::Need;
use super::intent::Intent;
use super::replica::Docs;
use crate::doc::read;
use crate::ids::{AccountId, ConvId, DocId, DocTarget, TenantId};
use crate::model::conversation::{Conversation, Lifecycle, Role, DEFAULT_BUCKET_MS};
use crate::policy::{self, Denial};

/// The held documents as one account of one tenant reads them.
#[derive(Clone, Copy)]
pub(super) struct Held<'a> {
    pub(super) docs: &'a Docs,
    pub(super) tenant: &'a TenantId,
    pub(super) me: &'a AccountId,
}

impl Held<'_> {
    /// Runs `f` on `conv` as the policy needs it (`None` when it is not held or not
    /// created), from its document's cached view.
    fn policy_conv<T>(
        &self,
        conv: &ConvId,
        need: &Need,
        f: impl FnOnce(Option<&Conversation>) -> T,
    ) -> T {
        match self.docs.get(&DocId::conv(self.tenant, conv)) {
            Some(state) => state.view.policy_conv(&state.local, conv, need, f),
            None => f(None),
        }
    }

    /// The policy's verdict on `intent` writing `targets` at server time `now`.
    pub(super) fn policy_check(
        &self,
        intent: &Intent,
        targets: &[DocId],
        now: i64,
    ) -> Result<(), Denial> {
        let bucket = targets
            .iter()
            .find(|t| matches!(t.target(), DocTarget::Msgs(..)));
        let bucket_doc = bucket.and_then(|b| self.docs.get(b)).map(|d| &d.local);
        let bucket_id = bucket.and_then(|b| match b.target() {
            DocTarget::Msgs(_, n) => Some(*n),
            _ => None,
        });
        let me = self.me;
        let conv_id = targets.first().and_then(|t| t.conv_id());
        let standing = conv_id.and_then(|c| self.parent_standing(c, intent));
        let check = |conv: Option<&Conversation>| {
            apply::check(intent, me, conv, bucket_doc, now, bucket_id, standing)
        };
        match conv_id {
            Some(conv) => {
                let mut need = Need::of(intent, me);
                // Whether an owner is the only one reads every member: only for an owner.
                if let Some(who) = Need::departing(intent, me) {
                    let owner = self.policy_conv(conv, &need, |c| {
                        c.and_then(|c| c.member(who))
                            .is_some_and(|m| m.role == Role::Owner)
                    });
                    if owner {
                        need = need.with_all_members();
                    }
                }
                self.policy_conv(conv, &need, check)
            }
            None => check(None),
        }
    }

    /// Where this account stands above `conv` when it is a thread: out as soon as one
    /// held conversation above it says so (the server's rule, on what this device holds);
    /// `None` when `conv` is no thread or its parent is not held (the server decides).
    fn parent_standing(&self, conv: &ConvId, intent: &Intent) -> Option<policy::Standing> {
        let parent_of = |c: &ConvId| {
            self.policy_conv(c, &Need::default(), |c| {
                c.and_then(|c| c.meta.as_ref())
                    .and_then(|m| m.thread.as_ref())
                    .map(|t| t.parent.clone())
            })
        };
        let mut above = parent_of(conv)?;
        let mut standing = None;
        // Bounded: a thread is at most `SUBROOM_DEPTH_MAX` deep (a cycle is not followed on).
        for _ in 0..crate::limits::SUBROOM_DEPTH_MAX {
            if !self.docs.contains_key(&DocId::conv(self.tenant, &above)) {
                break;
            }
            // A parent held but not caught up yet (no creation) says nothing.
            let Some(here) = self.policy_conv(&above, &Need::of(intent, self.me), |c| {
                c.map(|c| policy::Standing::of(c.member(self.me)))
            }) else {
                break;
            };
            if !here.is_active() {
                return Some(here);
            }
            standing = Some(here);
            match parent_of(&above) {
                Some(next) => above = next,
                None => break,
            }
        }
        standing
    }

    /// `intent` as written: a message into a support thread carries the sender stamps the
    /// thread gives this account now (the acceptor refuses any other). `None`: written as
    /// it is.
    pub(super) fn stamped(&self, intent: &Intent) -> Option<Intent> {
        let Intent::Send { conv, message } = intent else {
            return None;
        };
        if !message.stamp.is_empty() {
            return None;
        }
        let me = self.me;
        let stamp = self.policy_conv(conv, &Need::of(intent, me), |c| {
            c.map(|c| {
                crate::policy::support::stamp_for(c, &crate::policy::Author::user(me.clone()))
            })
        })?;
        if stamp.is_empty() {
            return None;
        }
        let mut message = message.clone();
        message.stamp = stamp;
        Some(Intent::Send {
            conv: conv.clone(),
            message,
        })
    }

    /// The depth of a thread `intent` creates: one below its parent's, read from the parent's
    /// document (a thread of a thread is 2, ...); 1 when this device does not hold the
    /// parent, whose creation the server then checks.
    pub(super) fn thread_depth(&self, intent: &Intent) -> u32 {
        let Intent::CreateConversation {
            parent: Some((parent, _)),
            ..
        } = intent
        else {
            return 1;
        };
        let parent_depth = self
            .docs
            .get(&DocId::conv(self.tenant, parent))
            .and_then(|d| read::read_meta(&d.local))
            .and_then(|m| m.thread)
            .map_or(0, |t| t.depth);
        parent_depth + 1
    }

    /// The width of `conv`'s message buckets (the default until it is held).
    pub(super) fn bucket_ms(&self, conv: &ConvId) -> i64 {
        self.policy_conv(conv, &Need::default(), |c| {
            c.and_then(|c| c.meta.as_ref().map(|m| m.bucket_ms))
        })
        .unwrap_or(DEFAULT_BUCKET_MS)
    }

    /// Whether `conv` is archived, from the policy's cached view (no member list read).
    pub(super) fn is_archived(&self, conv: &ConvId) -> bool {
        self.policy_conv(conv, &Need::default(), |c| {
            c.is_some_and(|c| c.lifecycle.state == Lifecycle::Archived)
        })
    }
}
