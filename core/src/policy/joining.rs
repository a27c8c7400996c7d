//! Joining (docs/POLICY.md, "Joining"): who may add members under `add_members_policy`,
//! join requests (ask, approve, decline, withdraw) and who may make invite links.
//!
//! A request is a member entry with status `requested`, written by the account itself into
//! the conversation document: admins (every active member) see it there and are pushed the
//! change; the requester, not being active, reads nothing of the conversation and learns the
//! outcome from its membership feed. Approving is adding (the entry becomes active, with
//! `invited_by` the approver); declining is removing (`removed`, by a member who may add:
//! `conv::check_update`), after which the account cannot ask again by itself; withdrawing is
//! leaving (`left`), after which it may.

use super::{active, deny, Author, Decision, DenyCode};
use crate::limits::JOIN_REQUESTS_MAX;
use crate::model::conversation::*;

/// Whether `member` may add others and answer requests: `can_add_members` (role default or
/// override), narrowed to admins by `add_members_policy = admins_only`. An explicit
/// override wins both ways, as for `info_edit_policy`.
pub fn may_add(conv: &Conversation, member: &Member) -> Decision {
    let by_role = member.role.default_allows(Permission::AddMembers)
        && (conv.settings.add_members_policy == EditPolicy::AllMembers || member.role.is_admin());
    let allowed = member
        .overrides
        .get(&Permission::AddMembers)
        .copied()
        .unwrap_or(by_role);
    if allowed {
        Ok(())
    } else if conv.settings.add_members_policy == EditPolicy::AdminsOnly
        && member.role.default_allows(Permission::AddMembers)
    {
        deny(
            DenyCode::NoPermission,
            format!("only admins add members to {}", conv.id),
        )
    } else {
        deny(
            DenyCode::NoPermission,
            format!(
                "{} ({}) lacks can_add_members",
                member.account,
                member.role.as_str()
            ),
        )
    }
}

/// Where joins are reviewed: approval required under `open` or `link_join`.
pub fn takes_requests(conv: &Conversation) -> bool {
    conv.settings.join_approval_required && conv.settings.join_policy != JoinPolicy::InviteOnly
}

/// How a non-member gets in: joins itself (`open` without approval), asks (approval
/// required under `open` or `link_join`), or needs an invitation or a link.
pub fn join_route(conv: &Conversation) -> crate::model::joining::JoinRoute {
    use crate::model::joining::JoinRoute;
    if conv.settings.join_policy == JoinPolicy::Open && !conv.settings.join_approval_required {
        JoinRoute::Open
    } else if takes_requests(conv) {
        JoinRoute::Request
    } else {
        JoinRoute::Invite
    }
}

fn joinable_kind(conv: &Conversation) -> Decision {
    match conv.kind() {
        Some(ConvKind::Group | ConvKind::Channel) => Ok(()),
        other => deny(
            DenyCode::JoinNotAllowed,
            format!(
                "{} conversations take no requests or links",
                other.map_or("uncreated", |k| k.as_str())
            ),
        ),
    }
}

/// A new request: `after` has status `requested` (an `AddMember` effect).
pub(super) fn check_request(
    conv: &Conversation,
    author: &Author,
    before: Option<&Member>,
    after: &Member,
) -> Decision {
    if after.account != author.account {
        return deny(
            DenyCode::NotOwnKey,
            format!("{} asks to join for {}", author.account, after.account),
        );
    }
    joinable_kind(conv)?;
    if let Some(b) = before {
        match b.status {
            MemberStatus::Active => return deny(DenyCode::JoinNotAllowed, "already a member"),
            MemberStatus::Requested => return deny(DenyCode::JoinNotAllowed, "already asked"),
            MemberStatus::Removed | MemberStatus::Banned => {
                return deny(
                    DenyCode::MemberInactive,
                    format!("{} was {}", b.account, b.status.as_str()),
                )
            }
            MemberStatus::Left => {}
        }
    }
    if !takes_requests(conv) {
        return deny(
            DenyCode::JoinNotAllowed,
            format!(
                "{} takes no join requests (join policy {}, approval {})",
                conv.id,
                conv.settings.join_policy.as_str(),
                if conv.settings.join_approval_required {
                    "required"
                } else {
                    "not required"
                }
            ),
        );
    }
    // Counted only when someone asks: answering and posting never pay for it.
    let waiting = conv
        .members
        .values()
        .filter(|m| m.status == MemberStatus::Requested)
        .count();
    if waiting >= JOIN_REQUESTS_MAX {
        return deny(
            DenyCode::RequestsFull,
            format!(
                "{} has {waiting} unanswered join requests, at most {JOIN_REQUESTS_MAX}",
                conv.id
            ),
        );
    }
    let role = super::join_role(conv.kind().unwrap_or(ConvKind::Group));
    if after.role != role || !after.overrides.is_empty() {
        return deny(
            DenyCode::RoleTooHigh,
            format!(
                "a request asks for the {} role, no overrides",
                role.as_str()
            ),
        );
    }
    if after.invited_by.is_some() {
        return deny(DenyCode::NotOwnKey, "a request names no inviter");
    }
    Ok(())
}

/// Whether `author` may make (or still stand behind) an invite link: the join policy is
/// `link_join`, a group or channel, not deleted, and an active member who may add. The
/// server checks it again, for the link's creator, whenever the link is used, so a link is
/// worth no more than its creator's rights at that time.
pub fn may_invite(now: i64, conv: &Conversation, author: &Author) -> Decision {
    if conv.meta.is_none() {
        return deny(
            DenyCode::NotCreated,
            "the conversation has not been created",
        );
    }
    let member = active(now, conv, author)?;
    if conv.lifecycle.state == Lifecycle::Deleted {
        return deny(
            DenyCode::ConversationDeleted,
            "the conversation was deleted",
        );
    }
    joinable_kind(conv)?;
    if conv.settings.join_policy != JoinPolicy::Link {
        return deny(
            DenyCode::LinksDisabled,
            format!(
                "join policy is {}: invite links need link_join",
                conv.settings.join_policy.as_str()
            ),
        );
    }
    may_add(conv, &member)
}

/// Whether `author` may see and answer the conversation's join requests.
pub fn may_review(now: i64, conv: &Conversation, author: &Author) -> Decision {
    may_add(conv, &*active(now, conv, author)?)
}
