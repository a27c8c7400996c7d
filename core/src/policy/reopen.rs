//! What a new message does to its conversation's lifecycle (docs/POLICY.md, "Lifecycle"):
//! a message into an archived conversation reopens it, and the client's message into its
//! closed support thread (a new request) reopens it with a new lead. The reopen is written
//! as the message's author and decided by the same policy as any change; the acceptor's
//! hosts write it after the message whoever sent it (`accept::Acceptor::follow_up`).

use super::{check, support, Author, Context, Effect};
use crate::ids::LeadId;
use crate::model::conversation::{Conversation, Lifecycle};

/// The reopen a message calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reopen {
    /// The lead a new request opens (closed support threads); `None`: the state alone.
    pub lead: Option<LeadId>,
}

impl Reopen {
    /// The effect the reopen's change has.
    pub fn effect(&self, author: &Author) -> Effect {
        let by = author.account.clone();
        match &self.lead {
            Some(lead) => Effect::NewRequest {
                by,
                lead: lead.clone(),
            },
            None => Effect::SetLifecycle {
                to: Lifecycle::Active,
                by,
            },
        }
    }
}

/// The reopen `effects` (a change accepted against `conv`, by `author`) call for: a
/// message posted while the conversation is archived, or a new request while its support
/// thread is closed, and only where the policy lets the author reopen (a service's notice
/// or a moderator's note in a closed thread reopens nothing).
pub fn after(
    conv: &Conversation,
    author: &Author,
    effects: &[Effect],
    now_ms: i64,
) -> Option<Reopen> {
    if !effects.iter().any(|e| matches!(e, Effect::PostMessage(_))) {
        return None;
    }
    let reopen = match conv.lifecycle.state {
        Lifecycle::Archived => Reopen { lead: None },
        Lifecycle::Closed if support::new_request(conv, author) => Reopen {
            lead: Some(support::next_lead(conv)),
        },
        _ => return None,
    };
    let ctx = Context {
        conv: Some(conv),
        parent: None,
        now_ms,
        last_post_ms: None,
        bucket: None,
        parent_standing: None,
        parent_message: None,
    };
    check(&ctx, author, &reopen.effect(author)).ok()?;
    Some(reopen)
}
