//! Support threads after their creation: the sender stamps of messages, the
//! names and title the thread is opened with, and the lead's closure (docs/POLICY.md,
//! "Support threads").
//!
//! Sender stamps are checked, not trusted: the writer stamps what the thread says about
//! it (`stamp_for`), and the acceptor refuses any other role, name or lead
//! (`sender_mismatch`), so nobody posts as the owner or under another's name.

use super::{active, deny, Author, Decision, DenyCode};
use crate::doc::schema::keys::{CLIENT_NAME, OWNER_NAME, TITLE};
use crate::ids::{AccountId, LeadId};
use crate::model::conversation::{ConvKind, Conversation, Lifecycle, Role};
use crate::model::message::NewMessage;
use crate::model::support::{SenderRole, Stamp};

fn is_support(conv: &Conversation) -> bool {
    conv.kind() == Some(ConvKind::Support)
}

/// What `author` is in the support thread `conv`.
pub fn sender_role(conv: &Conversation, author: &Author) -> SenderRole {
    let link = conv.meta.as_ref().and_then(|m| m.resource.as_ref());
    if author.service {
        SenderRole::Root
    } else if link.is_some_and(|r| r.client == author.account) {
        SenderRole::Client
    } else if link.is_some_and(|r| r.owner == author.account) {
        SenderRole::Owner
    } else {
        SenderRole::Staff
    }
}

/// The name the thread gives an author of `role`: the thread's client or owner name, a
/// staff member's nickname in it, none for the platform.
pub fn sender_name<'a>(
    conv: &'a Conversation,
    author: &Author,
    role: SenderRole,
) -> Option<&'a str> {
    // The same name lists show (`Conversation::name_of`), the platform aside.
    match role {
        SenderRole::Root => None,
        SenderRole::Client | SenderRole::Owner | SenderRole::Staff => conv.name_of(&author.account),
    }
}

/// Whether `account` is the support thread's client.
pub fn is_client(conv: &Conversation, account: &AccountId) -> bool {
    conv.meta
        .as_ref()
        .and_then(|m| m.resource.as_ref())
        .is_some_and(|r| r.client == *account)
}

/// Whether a message by `author` is a new request: the client writing into its closed
/// support thread, which reopens it with a new lead (`next_lead`).
pub fn new_request(conv: &Conversation, author: &Author) -> bool {
    is_support(conv)
        && conv.lifecycle.state == Lifecycle::Closed
        && !author.service
        && is_client(conv, &author.account)
}

/// The lead a new request opens after the thread's last closure (`ids::next_lead_id`).
pub fn next_lead(conv: &Conversation) -> LeadId {
    let closure = &conv.lifecycle;
    crate::ids::next_lead_id(&conv.id, closure.lead.as_ref(), closure.at)
}

/// The lead a message by `author` is about: the thread's current one, or the one its new
/// request opens.
pub fn lead_for(conv: &Conversation, author: &Author) -> Option<LeadId> {
    if new_request(conv, author) {
        Some(next_lead(conv))
    } else {
        conv.lifecycle.lead.clone()
    }
}

/// The stamps a message by `author` carries in `conv` (empty outside support threads).
pub fn stamp_for(conv: &Conversation, author: &Author) -> Stamp {
    if !is_support(conv) {
        return Stamp::default();
    }
    let role = sender_role(conv, author);
    Stamp {
        sender_role: Some(role),
        sender_name: sender_name(conv, author, role).map(str::to_owned),
        related_lead: lead_for(conv, author),
    }
}

/// A new message's stamps: absent outside support threads; in one, each stamp present is
/// the one the thread gives the author (an absent stamp is allowed: older writers).
pub(super) fn check_stamp(conv: &Conversation, author: &Author, message: &NewMessage) -> Decision {
    let s = &message.stamp;
    if s.is_empty() {
        return Ok(());
    }
    if !is_support(conv) {
        return deny(
            DenyCode::SupportOnly,
            "sender stamps are for support threads",
        );
    }
    let role = sender_role(conv, author);
    if s.sender_role.is_some_and(|r| r != role) {
        return deny(
            DenyCode::SenderMismatch,
            format!("{} is the thread's {}", author.account, role.as_str()),
        );
    }
    if let Some(name) = &s.sender_name {
        if sender_name(conv, author, role) != Some(name.as_str()) {
            return deny(
                DenyCode::SenderMismatch,
                format!("the thread does not call {} {name:?}", author.account),
            );
        }
    }
    if s.related_lead.is_some() && s.related_lead != lead_for(conv, author) {
        return deny(
            DenyCode::SenderMismatch,
            "the message names another lead than the thread's",
        );
    }
    Ok(())
}

/// Info edits that support threads add to the usual rules: `client_name` and `owner_name`
/// exist only there; while one of them or the title is unset, the client or the owner may
/// set it (the values the platform gives when the thread is opened: the resource's title,
/// the client's and the owner's names). `None`: the usual rules decide.
pub(super) fn check_info(
    now: i64,
    conv: &Conversation,
    author: &Author,
    field: &str,
) -> Option<Decision> {
    let names = field == CLIENT_NAME || field == OWNER_NAME;
    if !is_support(conv) {
        return names.then(|| {
            deny(
                DenyCode::SupportOnly,
                format!("{field} is for support threads"),
            )
        });
    }
    let unset = match field {
        TITLE => conv.info.title.is_none(),
        CLIENT_NAME => conv.info.client_name.is_none(),
        OWNER_NAME => conv.info.owner_name.is_none(),
        _ => return None,
    };
    let party = matches!(
        sender_role(conv, author),
        SenderRole::Client | SenderRole::Owner
    );
    if unset && party {
        return Some(active(now, conv, author).map(|_| ()));
    }
    None
}

/// The lead fields: support threads only, moderators and above (the owner's side), and an
/// outcome only with the thread closed.
pub(super) fn check_lead(
    now: i64,
    conv: &Conversation,
    author: &Author,
    outcome: bool,
    closed_after: bool,
) -> Decision {
    if !is_support(conv) {
        return deny(DenyCode::SupportOnly, "leads belong to support threads");
    }
    let member = active(now, conv, author)?;
    if member.role.rank() < Role::Moderator.rank() {
        return deny(
            DenyCode::NoPermission,
            format!("{} cannot close or name the lead", member.role.as_str()),
        );
    }
    if outcome && !closed_after {
        return deny(
            DenyCode::OutcomeNeedsClose,
            "an outcome is written with the closure",
        );
    }
    Ok(())
}

/// A closed support thread reopened with a lead in one change: the owner's side reopens
/// and names leads as always; the client reopens only with its new request's lead
/// (`next_lead`), so a new request is a new lead and never revives the closed one.
pub(super) fn check_new_request(
    now: i64,
    conv: &Conversation,
    author: &Author,
    by: &AccountId,
    lead: &LeadId,
) -> Decision {
    if !is_support(conv) {
        return deny(DenyCode::SupportOnly, "leads belong to support threads");
    }
    if *by != author.account {
        return deny(DenyCode::NotOwnKey, "the lifecycle names who moved it");
    }
    let member = active(now, conv, author)?;
    if member.role.rank() >= Role::Moderator.rank() {
        return Ok(());
    }
    if !new_request(conv, author) {
        return deny(
            DenyCode::NoPermission,
            format!("{} cannot reopen or name the lead", member.role.as_str()),
        );
    }
    let next = next_lead(conv);
    if *lead != next {
        return deny(
            DenyCode::NewLeadRequired,
            format!("a new request opens lead {next}, not {lead}"),
        );
    }
    Ok(())
}
