//! Rules for conversation documents: creation, members, info, settings, pins, read markers,
//! lifecycle.

use super::{active, deny, require, Author, Context, Decision, Denial, DenyCode, Effect, Transfer};
use crate::doc::schema::keys::{
    BLOCKED, COLOR, INVITED_BY, JOINED_AT, LEFT_AT, NICKNAME, REMOVED_AT, ROLE, ROLE_AFTER,
    ROLE_UNTIL, STATUS,
};
use crate::ids::AccountId;
use crate::limits::{GROUP_MAX_MEMBERS, PINS_MAX};
use crate::model::conversation::*;

/// The role an account gets when it joins by itself.
pub fn join_role(kind: ConvKind) -> Role {
    if kind == ConvKind::Channel {
        Role::Subscriber
    } else {
        Role::Member
    }
}

fn kind_of(conv: &Conversation) -> ConvKind {
    conv.kind().unwrap_or(ConvKind::Group)
}

pub(super) fn check_create(ctx: &Context<'_>, author: &Author, after: &Conversation) -> Decision {
    if ctx.conv.is_some_and(|c| c.meta.is_some()) {
        return deny(DenyCode::AlreadyCreated, format!("{} exists", after.id));
    }
    let Some(meta) = &after.meta else {
        return deny(DenyCode::InvalidCreation, "no kind");
    };
    if meta.created_by.as_ref() != Some(&author.account) {
        return deny(
            DenyCode::InvalidCreation,
            "created_by must be the creating account",
        );
    }
    // `d-` and `s-` ids belong to deterministic direct and support conversations.
    let id = after.id.as_str();
    if id.starts_with("d-") || id.starts_with("s-") {
        return deny(
            DenyCode::InvalidCreation,
            "ids starting with d- or s- are reserved for direct conversations and support threads",
        );
    }
    match meta.kind {
        ConvKind::Direct | ConvKind::Support => {
            return deny(
                DenyCode::InvalidCreation,
                "direct conversations and support threads are created by their deterministic creation change",
            )
        }
        ConvKind::System if !author.service => {
            return deny(DenyCode::ServiceOnly, "system conversations are created by service accounts")
        }
        _ => {}
    }
    if meta.resource.is_some() {
        return deny(
            DenyCode::InvalidCreation,
            "only support threads have a resource",
        );
    }
    if meta.encrypted {
        encryption_allowed(meta.kind)?;
    }
    // The creator is the one owner; everyone else was invited by it.
    match after.members.get(&author.account) {
        Some(m) if m.role == Role::Owner && m.is_active() => {}
        _ => {
            return deny(
                DenyCode::InvalidCreation,
                "the creator must be an active owner member",
            )
        }
    }
    for m in after.members.values() {
        if m.account == author.account {
            if m.has_expiry() {
                return deny(DenyCode::RoleTooHigh, "the owner role is never temporary");
            }
            continue;
        }
        if m.role == Role::Owner || m.role_after == Some(Role::Owner) {
            return deny(DenyCode::RoleTooHigh, "only the creator is owner");
        }
        if !m.is_active() || m.invited_by.as_ref() != Some(&author.account) {
            return deny(
                DenyCode::InvalidCreation,
                "invited members are active and invited by the creator",
            );
        }
    }
    if meta.kind == ConvKind::Group && after.members.len() > GROUP_MAX_MEMBERS {
        return deny(
            DenyCode::GroupFull,
            format!("{} members", after.members.len()),
        );
    }
    match (meta.kind, &meta.thread) {
        (ConvKind::Thread, Some(link)) => check_thread_parent(ctx, author, link),
        (ConvKind::Thread, None) => deny(DenyCode::InvalidCreation, "a thread needs its parent"),
        (_, Some(_)) => deny(DenyCode::InvalidCreation, "only threads have a parent"),
        (_, None) => Ok(()),
    }
}

fn check_thread_parent(ctx: &Context<'_>, author: &Author, link: &ThreadLink) -> Decision {
    let Some(parent) = ctx
        .parent
        .filter(|p| p.id == link.parent && p.meta.is_some())
    else {
        return deny(
            DenyCode::InvalidCreation,
            format!("parent {} is not known", link.parent),
        );
    };
    let member = active(ctx.now_ms, parent, author)?;
    // A thread is new content under the parent's message.
    if parent.lifecycle.state == Lifecycle::Deleted {
        return deny(DenyCode::ConversationDeleted, "the parent was deleted");
    }
    if parent.settings.locked {
        return deny(DenyCode::ConversationLocked, "the parent is locked");
    }
    // The message it hangs on, where the acceptor looked it up (clients leave that to it).
    match ctx.parent_message {
        Some(super::ParentMessage::Missing) => {
            return deny(
                DenyCode::ParentMessageMissing,
                format!("{} holds no message {}", link.parent, link.message),
            )
        }
        Some(super::ParentMessage::Deleted) => {
            return deny(
                DenyCode::ParentMessageMissing,
                format!("message {} of {} was deleted", link.message, link.parent),
            )
        }
        Some(super::ParentMessage::Present) | None => {}
    }
    if parent.settings.subroom_policy == EditPolicy::AdminsOnly && !member.role.is_admin() {
        return deny(
            DenyCode::SubroomForbidden,
            "only admins of the parent create threads",
        );
    }
    let parent_depth = parent
        .meta
        .as_ref()
        .and_then(|m| m.thread.as_ref())
        .map_or(0, |t| t.depth);
    if link.depth != parent_depth + 1 {
        return deny(
            DenyCode::InvalidCreation,
            format!("depth must be {}", parent_depth + 1),
        );
    }
    if link.depth > parent.settings.max_subroom_depth {
        return deny(
            DenyCode::ThreadTooDeep,
            format!(
                "depth {} > {}",
                link.depth, parent.settings.max_subroom_depth
            ),
        );
    }
    Ok(())
}

pub(super) fn check(
    ctx: &Context<'_>,
    conv: &Conversation,
    author: &Author,
    effect: &Effect,
) -> Decision {
    match effect {
        Effect::AddMember { before, after } => check_add(ctx, conv, author, before.as_ref(), after),
        Effect::UpdateMember {
            before,
            after,
            fields,
        } => check_update(ctx.now_ms, conv, author, before, after, fields),
        Effect::SetInfo { field } => {
            if let Some(decision) = super::support::check_info(ctx.now_ms, conv, author, field) {
                return decision;
            }
            let member = active(ctx.now_ms, conv, author)?;
            let allowed = match conv.settings.info_edit_policy {
                EditPolicy::AllMembers => member.role.rank() >= Role::Member.rank(),
                EditPolicy::AdminsOnly => member.role.is_admin(),
            };
            // An explicit override wins both ways; otherwise the policy decides.
            let allowed = member
                .overrides
                .get(&Permission::ChangeInfo)
                .copied()
                .unwrap_or(allowed);
            if allowed {
                Ok(())
            } else {
                deny(
                    DenyCode::NoPermission,
                    format!("the info edit policy keeps {field} to admins"),
                )
            }
        }
        Effect::SetSetting { key } => {
            let member = active(ctx.now_ms, conv, author)?;
            if member.role.is_admin() && member.has(Permission::ChangeInfo) {
                Ok(())
            } else {
                deny(DenyCode::NoPermission, format!("only admins change {key}"))
            }
        }
        Effect::Pin { by, message } => {
            let member = active(ctx.now_ms, conv, author)?;
            require(&member, Permission::PinMessages)?;
            if *by != author.account {
                return deny(DenyCode::NotOwnKey, "a pin names its own pinner");
            }
            if conv.pins.len() >= PINS_MAX && !conv.pins.contains_key(message) {
                return deny(DenyCode::PinsFull, format!("at most {PINS_MAX} pins"));
            }
            Ok(())
        }
        Effect::Unpin { .. } => {
            require(&*active(ctx.now_ms, conv, author)?, Permission::PinMessages)
        }
        Effect::MarkRead { account } => {
            if *account != author.account {
                return deny(
                    DenyCode::NotOwnKey,
                    format!("{} moves the read marker of {account}", author.account),
                );
            }
            active(ctx.now_ms, conv, author).map(|_| ())
        }
        Effect::MarkDelivered { account } => {
            if *account != author.account {
                return deny(
                    DenyCode::NotOwnKey,
                    format!("{} moves the delivery marker of {account}", author.account),
                );
            }
            active(ctx.now_ms, conv, author).map(|_| ())
        }
        // A member's device makes the group and commits to it; which devices the commit
        // may add or must remove is the Delivery Service's check (`e2ee::GroupView`).
        Effect::MlsInit { .. } | Effect::MlsCommit { .. } => {
            if author.service {
                return deny(
                    DenyCode::NotMember,
                    "service accounts have no devices in MLS groups",
                );
            }
            active(ctx.now_ms, conv, author).map(|_| ())
        }
        Effect::SetLifecycle { to, by } => {
            if *by != author.account {
                return deny(DenyCode::NotOwnKey, "the lifecycle names who moved it");
            }
            let member = active(ctx.now_ms, conv, author)?;
            if *to == Lifecycle::Deleted {
                return if member.role == Role::Owner {
                    Ok(())
                } else {
                    deny(
                        DenyCode::NoPermission,
                        "only the owner deletes the conversation",
                    )
                };
            }
            let staff = member.role.rank() >= Role::Moderator.rank();
            if !staff && *to == Lifecycle::Active && super::support::new_request(conv, author) {
                return deny(
                    DenyCode::NewLeadRequired,
                    format!(
                        "a new request reopens the thread with lead {}",
                        super::support::next_lead(conv)
                    ),
                );
            }
            let allowed = match (conv.lifecycle.state, to) {
                // A new message reopens an archived thread: senders may reopen.
                // Two devices reopening at once: the later finds it active and changes
                // nothing but who moved it and when.
                (Lifecycle::Archived | Lifecycle::Active, Lifecycle::Active) => {
                    staff || member.has(Permission::SendMessages)
                }
                _ => staff,
            };
            if allowed {
                Ok(())
            } else {
                deny(
                    DenyCode::NoPermission,
                    format!(
                        "{} cannot move the conversation to {}",
                        member.role.as_str(),
                        to.as_str()
                    ),
                )
            }
        }
        Effect::SetLead {
            outcome,
            closed_after,
        } => super::support::check_lead(ctx.now_ms, conv, author, *outcome, *closed_after),
        Effect::NewRequest { by, lead } => {
            super::support::check_new_request(ctx.now_ms, conv, author, by, lead)
        }
        Effect::TransferOwnership(transfer) => check_transfer(ctx.now_ms, conv, author, transfer),
        _ => deny(DenyCode::InvalidCreation, "not a conversation effect"),
    }
}

fn check_add(
    ctx: &Context<'_>,
    conv: &Conversation,
    author: &Author,
    before: Option<&Member>,
    after: &Member,
) -> Decision {
    let kind = kind_of(conv);
    // A member who left a direct conversation may come back; nobody else joins it.
    let returning = before.is_some_and(|b| {
        b.account == author.account && b.status == MemberStatus::Left && b.role == after.role
    });
    if kind == ConvKind::Direct && !returning {
        return deny(
            DenyCode::DirectFixedMembers,
            "direct conversations take no new members",
        );
    }
    if kind == ConvKind::Direct {
        return Ok(());
    }
    if after.status == MemberStatus::Requested {
        return super::joining::check_request(conv, author, before, after);
    }
    if !after.is_active() {
        return deny(DenyCode::InvalidCreation, "an added member is active");
    }
    if kind == ConvKind::Group && conv.active_count() + 1 > GROUP_MAX_MEMBERS {
        return deny(
            DenyCode::GroupFull,
            format!("{} active members", conv.active_count()),
        );
    }
    if let Some(before) = before {
        if before.role == Role::Owner && before.account != author.account {
            return deny(DenyCode::OwnerProtected, "the owner's entry is the owner's");
        }
    }
    if after.account == author.account {
        return check_self_join(ctx, conv, before, after);
    }
    let member = active(ctx.now_ms, conv, author)?;
    super::joining::may_add(conv, &member)?;
    // A temporary role is granted like a lasting one, and so is the role it lapses to.
    let granted = std::iter::once(after.role).chain(after.role_after);
    if let Some(role) = granted
        .into_iter()
        .find(|r| !may_grant_on_add(member.role, *r))
    {
        return deny(
            DenyCode::RoleTooHigh,
            format!("{} cannot add a {}", member.role.as_str(), role.as_str()),
        );
    }
    if before.is_some_and(|b| b.status == MemberStatus::Banned) {
        require(&member, Permission::RemoveMembers)?;
    }
    if after.invited_by.as_ref() != Some(&author.account) {
        return deny(DenyCode::NotOwnKey, "invited_by names the inviting account");
    }
    Ok(())
}

/// The role an adder may give a member it adds (or a request it approves): at most its own,
/// and strictly below it unless that is `member` or lower, so members add members (the role
/// default says they add) while staff roles only multiply through someone above them. Only
/// the owner adds admins; nobody adds an owner.
pub fn may_grant_on_add(adder: Role, added: Role) -> bool {
    added != Role::Owner
        && (added.rank() < adder.rank()
            || added.rank() == adder.rank() && added.rank() <= Role::Member.rank())
}

fn check_self_join(
    ctx: &Context<'_>,
    conv: &Conversation,
    before: Option<&Member>,
    after: &Member,
) -> Decision {
    let kind = kind_of(conv);
    if let Some(b) = before {
        if matches!(b.status, MemberStatus::Removed | MemberStatus::Banned) {
            return deny(
                DenyCode::MemberInactive,
                format!("{} was {}", b.account, b.status.as_str()),
            );
        }
        if b.is_active() {
            return deny(DenyCode::JoinNotAllowed, "already a member");
        }
    }
    if after.role != join_role(kind) || after.role_until.is_some() {
        return deny(
            DenyCode::RoleTooHigh,
            format!(
                "joining gives the {} role, for good",
                join_role(kind).as_str()
            ),
        );
    }
    let parent_member = || {
        ctx.parent
            .filter(|p| {
                conv.meta
                    .as_ref()
                    .and_then(|m| m.thread.as_ref())
                    .is_some_and(|t| t.parent == p.id)
            })
            .and_then(|p| p.active_member(&after.account))
            .is_some()
    };
    let open = super::joining::join_route(conv) == crate::model::joining::JoinRoute::Open;
    if open || (kind == ConvKind::Thread && parent_member()) {
        Ok(())
    } else if super::joining::takes_requests(conv) {
        deny(
            DenyCode::ApprovalRequired,
            format!("{} reviews joins: ask to join", conv.id),
        )
    } else {
        deny(
            DenyCode::JoinNotAllowed,
            format!("join policy is {}", conv.settings.join_policy.as_str()),
        )
    }
}

fn check_update(
    now: i64,
    conv: &Conversation,
    author: &Author,
    before: &Member,
    after: &Member,
    fields: &[String],
) -> Decision {
    if super::lapse::only_lapses(now, before, after) {
        return Ok(());
    }
    let touched = |f: &str| fields.iter().any(|x| x == f);
    // The target as it stands now: a lapsed temporary role ranks as the role it lapsed to.
    let now_before = before.at(now);
    if touched(INVITED_BY) || touched(JOINED_AT) && after.status == before.status {
        return deny(
            DenyCode::ImmutableField,
            "invited_by and joined_at change only on (re)joining",
        );
    }
    // Timestamps travel with the status change they record.
    let status_to = |s: &[MemberStatus]| after.status != before.status && s.contains(&after.status);
    if touched(LEFT_AT) && !status_to(&[MemberStatus::Left])
        || touched(REMOVED_AT) && !status_to(&[MemberStatus::Removed, MemberStatus::Banned])
    {
        return deny(
            DenyCode::ImmutableField,
            "left_at and removed_at are written with their status",
        );
    }
    // Asking again after leaving (or being removed) rewrites the old entry.
    if after.status == MemberStatus::Requested && before.status != MemberStatus::Requested {
        return super::joining::check_request(conv, author, Some(before), after);
    }
    if before.account == author.account {
        return check_self_update(conv, &now_before, before, after, fields);
    }
    if touched(BLOCKED) {
        return deny(
            DenyCode::NotOwnKey,
            format!("{} writes the block of {}", author.account, before.account),
        );
    }
    let member = active(now, conv, author)?;
    if before.role == Role::Owner {
        let gone = matches!(after.status, MemberStatus::Removed | MemberStatus::Banned);
        if gone && after.status != before.status && only_owner(conv, &before.account) {
            return deny(
                DenyCode::OwnerMustTransfer,
                format!(
                    "{} is the only owner: ownership must be transferred before the owner is {}",
                    before.account,
                    after.status.as_str()
                ),
            );
        }
        return deny(
            DenyCode::OwnerProtected,
            "nobody changes the owner's entry but the owner",
        );
    }
    if now_before.role.rank() >= member.role.rank() {
        return deny(
            DenyCode::RoleTooHigh,
            format!(
                "{} cannot change a {}",
                member.role.as_str(),
                now_before.role.as_str()
            ),
        );
    }
    if kind_of(conv) == ConvKind::Direct {
        return deny(
            DenyCode::DirectFixedMembers,
            "direct conversation members are fixed",
        );
    }
    // A role with its expiry is one grant: who may grant the role grants it for a while,
    // and the role it lapses to is granted as well.
    if role_changed(before, after) {
        if !member.role.is_admin() {
            return deny(DenyCode::NoPermission, "only admins change roles");
        }
        let granted = std::iter::once(after.role).chain(after.role_after);
        if let Some(role) = granted.into_iter().find(|r| r.rank() >= member.role.rank()) {
            return deny(
                DenyCode::RoleTooHigh,
                format!("{} cannot grant {}", member.role.as_str(), role.as_str()),
            );
        }
    }
    if after.status != before.status {
        match after.status {
            // Declining a request is answering it: the right to add, not to remove.
            MemberStatus::Removed if before.status == MemberStatus::Requested => {
                super::joining::may_add(conv, &member)?
            }
            MemberStatus::Removed | MemberStatus::Banned => {
                require(&member, Permission::RemoveMembers)?
            }
            _ => {
                return deny(
                    DenyCode::NoPermission,
                    format!(
                        "only {} sets their status to {}",
                        before.account,
                        after.status.as_str()
                    ),
                )
            }
        }
    }
    if overrides_changed(before, after) && !member.role.is_admin() {
        return deny(
            DenyCode::NoPermission,
            "only admins set permission overrides",
        );
    }
    if (touched(NICKNAME) || touched(COLOR))
        && !(member.role.is_admin() && member.has(Permission::ChangeInfo))
    {
        return deny(
            DenyCode::NoPermission,
            "a member's nickname and color are their own",
        );
    }
    Ok(())
}

/// Whether a change moves the role, its expiry or the role it lapses to.
fn role_changed(before: &Member, after: &Member) -> bool {
    (after.role, after.role_until, after.role_after)
        != (before.role, before.role_until, before.role_after)
}

/// Whether a change moves an override or an override's expiry.
fn overrides_changed(before: &Member, after: &Member) -> bool {
    after.overrides != before.overrides || after.overrides_until != before.overrides_until
}

/// `now_before`: the entry as it stands at server time (`Member::at`).
fn check_self_update(
    conv: &Conversation,
    now_before: &Member,
    before: &Member,
    after: &Member,
    fields: &[String],
) -> Decision {
    if overrides_changed(before, after) {
        return deny(
            DenyCode::RoleTooHigh,
            "nobody sets their own permission overrides",
        );
    }
    // The only owner neither steps down nor leaves: nobody would be left to add admins or
    // delete the conversation. It transfers ownership first (`check_transfer`).
    let stepping_down = after.role != before.role || after.status != before.status;
    if before.role == Role::Owner && stepping_down && only_owner(conv, &before.account) {
        return deny(
            DenyCode::OwnerMustTransfer,
            format!(
                "{} is the only owner: transfer ownership to another member first",
                before.account
            ),
        );
    }
    if role_changed(before, after) {
        // Stepping down is fine (the only owner was answered above), for good and never
        // above what the entry gives now or after its expiry: nobody extends or
        // keeps their own temporary role.
        let not_above = |have: Role| after.role == have || after.role.rank() < have.rank();
        let kept_expiry = now_before.role_until.is_some() && after.role == now_before.role;
        let down = not_above(now_before.role)
            && now_before.role_after.is_none_or(not_above)
            && after.role_until.is_none()
            && !kept_expiry;
        if !down {
            return deny(
                DenyCode::RoleTooHigh,
                format!(
                    "{} cannot promote itself to {} or set its own role's expiry",
                    now_before.role.as_str(),
                    after.role.as_str()
                ),
            );
        }
    }
    if after.status != before.status {
        // Anyone may leave, or withdraw a request; coming back is a join (see
        // `check_self_join`).
        let leaving = before.is_active() || before.status == MemberStatus::Requested;
        if !(leaving && after.status == MemberStatus::Left) {
            return deny(
                DenyCode::NoPermission,
                format!(
                    "{} cannot set its own status to {}",
                    before.account,
                    after.status.as_str()
                ),
            );
        }
    } else if !before.is_active() {
        return deny(
            DenyCode::MemberInactive,
            format!("{} is {}", before.account, before.status.as_str()),
        );
    }
    if fields.iter().any(|f| f == BLOCKED) && kind_of(conv) != ConvKind::Direct {
        return deny(
            DenyCode::DirectOnly,
            "blocking is for direct conversations; in a group, leave or ask an admin",
        );
    }
    let allowed = [
        ROLE, ROLE_UNTIL, ROLE_AFTER, STATUS, LEFT_AT, NICKNAME, COLOR, BLOCKED,
    ];
    if let Some(f) = fields.iter().find(|f| !allowed.contains(&f.as_str())) {
        let code = if f == REMOVED_AT {
            DenyCode::NoPermission
        } else {
            DenyCode::ImmutableField
        };
        return deny(code, format!("{f} is not the member's to write"));
    }
    Ok(())
}

/// Whether `account` is the conversation's only active owner. Creation makes one owner and
/// a transfer moves the role, so today every owner is the only one; the rule still reads
/// "no other active owner", so with several owners each could go.
pub fn only_owner(conv: &Conversation, account: &AccountId) -> bool {
    conv.member(account)
        .is_some_and(|m| m.role == Role::Owner && m.is_active())
        && !conv
            .members
            .values()
            .any(|m| m.account != *account && m.role == Role::Owner && m.is_active())
}

/// An ownership transfer: only the owner makes it, to an active member, in one change that
/// writes the new owner's role (dropping its overrides: nobody restricts an owner) and the
/// old owner's, which becomes admin.
fn check_transfer(now: i64, conv: &Conversation, author: &Author, transfer: &Transfer) -> Decision {
    let member = active(now, conv, author)?;
    if member.role != Role::Owner {
        return deny(
            DenyCode::OwnerOnly,
            format!(
                "{} ({}) is not the owner: only the owner transfers ownership",
                author.account,
                member.role.as_str()
            ),
        );
    }
    let (from, to) = (&transfer.from, &transfer.to);
    if to.after.account == author.account {
        return deny(DenyCode::NoPermission, "ownership goes to another member");
    }
    if from.after.account != author.account {
        return deny(
            DenyCode::OwnerProtected,
            "nobody changes the owner's entry but the owner",
        );
    }
    match &to.before {
        None => {
            return deny(
                DenyCode::TargetNotMember,
                format!("{} is not a member of {}", to.after.account, conv.id),
            )
        }
        Some(b) if b.status == MemberStatus::Requested => {
            return deny(
                DenyCode::TargetNotMember,
                format!("{} only asked to join {}", b.account, conv.id),
            )
        }
        Some(b) if !b.is_active() => {
            return deny(
                DenyCode::TargetInactive,
                format!("{} is {} in {}", b.account, b.status.as_str(), conv.id),
            )
        }
        Some(_) => {}
    }
    let override_key = |f: &String| {
        Permission::parse(f).is_ok() || crate::doc::schema::override_until_of(f).is_some()
    };
    let expiry_key = |f: &String| f == ROLE_UNTIL || f == ROLE_AFTER;
    if from.after.role != Role::Admin || from.fields.iter().any(|f| f != ROLE) {
        return deny(
            DenyCode::NoPermission,
            "a transfer makes the old owner an admin and changes nothing else of its entry",
        );
    }
    if !to.after.is_active()
        || !to.after.overrides.is_empty()
        || to.after.has_expiry()
        || to
            .fields
            .iter()
            .any(|f| f != ROLE && !override_key(f) && !expiry_key(f))
    {
        return deny(
            DenyCode::NoPermission,
            "a transfer writes the new owner's role and drops its overrides, nothing else",
        );
    }
    Ok(())
}

/// Whether a conversation of `kind` may be created encrypted: a broadcast to any number of
/// subscribers is not a group MLS can serve. Clients ask it before they write a creation.
pub fn encryption_allowed(kind: ConvKind) -> Result<(), Denial> {
    if matches!(kind, ConvKind::Channel | ConvKind::System) {
        return Err(Denial {
            code: DenyCode::EncryptionNotAllowed,
            reason: format!("a {} is not end-to-end encrypted", kind.as_str()),
        });
    }
    Ok(())
}
