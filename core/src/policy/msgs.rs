//! Rules for message buckets: posting, editing, deleting, reactions, proposal answers.

use super::{active, deny, require, Author, Context, Decision, DenyCode, Effect};
use crate::limits::MAX_CLOCK_AHEAD_MS;
use crate::model::conversation::*;
use crate::model::message::{Message, MessageKind, NewMessage};
use crate::model::proposal::ProposalPayload;

pub(super) fn check(
    ctx: &Context<'_>,
    conv: &Conversation,
    author: &Author,
    effect: &Effect,
) -> Decision {
    // A bucket past the retention is deleted, or about to be (docs/FEATURES.md, "Retention"):
    // nothing is written to it any more.
    if let Some(bucket) = ctx.bucket.filter(|b| conv.is_expired(*b, ctx.now_ms)) {
        return deny(
            DenyCode::RetentionExpired,
            format!("bucket {bucket} is past the retention"),
        );
    }
    match effect {
        Effect::PostMessage(message) => {
            sealed_where_encrypted(conv, message)?;
            check_post(ctx, conv, author, message)
        }
        Effect::EditBody(message) => {
            // A body edit writes the body in the clear.
            if conv.encrypted() {
                return deny(
                    DenyCode::PlaintextInEncrypted,
                    format!("{} is end-to-end encrypted: its bodies are sealed", conv.id),
                );
            }
            check_edit(ctx, conv, author, message)
        }
        Effect::EditSealed { message, .. } => {
            if !conv.encrypted() {
                return deny(
                    DenyCode::NotEncrypted,
                    format!("{} is not end-to-end encrypted: nothing is sealed", conv.id),
                );
            }
            check_edit(ctx, conv, author, message)
        }
        Effect::DeleteMessage(message) => {
            // A service account is no member: it redacts for the tenant (an account's
            // erasure, docs/OPERATIONS.md "Account erasure").
            if author.service {
                return not_deleted(message);
            }
            let member = active(ctx.now_ms, conv, author)?;
            not_deleted(message)?;
            if message.author == author.account {
                return Ok(());
            }
            if member.has(Permission::DeleteMessages) {
                Ok(())
            } else {
                deny(
                    DenyCode::NotAuthor,
                    "only the author or a holder of delete rights deletes a message",
                )
            }
        }
        Effect::SetReaction { message, account } => {
            if *account != author.account {
                return deny(
                    DenyCode::NotOwnKey,
                    format!("{} writes a reaction of {account}", author.account),
                );
            }
            active(ctx.now_ms, conv, author)?;
            open(conv)?;
            if !conv.settings.allow_reactions {
                return deny(DenyCode::ReactionsDisabled, "reactions are off");
            }
            not_deleted(message)
        }
        Effect::SetProposalStatus { proposal, to } => {
            check_proposal_status(ctx, conv, author, proposal, *to)
        }
        _ => deny(DenyCode::MessageMissing, "not a message effect"),
    }
}

/// New content is refused while the conversation is locked, or while a member of a direct
/// conversation blocks the other. Deleting messages stays possible (moderation).
fn open(conv: &Conversation) -> Decision {
    if conv.settings.locked {
        return deny(DenyCode::ConversationLocked, "the conversation is locked");
    }
    if conv.members.values().any(|m| m.blocked) {
        return deny(
            DenyCode::Blocked,
            "a member of this conversation blocked the other",
        );
    }
    Ok(())
}

/// An edit, in the clear or sealed: by the author, an active member, of a message not
/// deleted, in a conversation open to new content.
fn check_edit(
    ctx: &Context<'_>,
    conv: &Conversation,
    author: &Author,
    message: &Message,
) -> Decision {
    active(ctx.now_ms, conv, author)?;
    open(conv)?;
    if message.author != author.account {
        return deny(
            DenyCode::NotAuthor,
            format!("{} edits a message of {}", author.account, message.author),
        );
    }
    not_deleted(message)
}

fn not_deleted(message: &Message) -> Decision {
    if message.deleted_at.is_some() {
        deny(
            DenyCode::MessageDeleted,
            format!("{} was deleted", message.id),
        )
    } else {
        Ok(())
    }
}

fn check_post(
    ctx: &Context<'_>,
    conv: &Conversation,
    author: &Author,
    message: &NewMessage,
) -> Decision {
    if message.author != author.account {
        return deny(
            DenyCode::AuthorMismatch,
            format!("author {} is not {}", message.author, author.account),
        );
    }
    super::support::check_stamp(conv, author, message)?;
    if let Some(bucket) = ctx.bucket {
        let expected = conv.period_of(message.created_at);
        if expected != bucket.period {
            return deny(
                DenyCode::BucketMismatch,
                format!(
                    "created_at falls in period {expected}, not {}",
                    bucket.period
                ),
            );
        }
    }
    if message.created_at > ctx.now_ms.saturating_add(MAX_CLOCK_AHEAD_MS) {
        return deny(
            DenyCode::ClockAhead,
            "created_at is more than an hour ahead of server time",
        );
    }
    if let Some(days) = conv.settings.retention() {
        if message.created_at < ctx.now_ms.saturating_sub(i64::from(days) * 86_400_000) {
            return deny(
                DenyCode::RetentionExpired,
                format!("older than {days} days"),
            );
        }
    }
    let kind = conv.kind().unwrap_or(ConvKind::Group);
    // Integrations post system notices and proposals without being members.
    if author.service && matches!(message.kind, MessageKind::System | MessageKind::Proposal) {
        return open(conv);
    }
    if !author.service && (message.kind == MessageKind::System || kind == ConvKind::System) {
        return deny(
            DenyCode::ServiceOnly,
            "system messages come from service accounts",
        );
    }
    let member = active(ctx.now_ms, conv, author)?;
    open(conv)?;
    // The client writing into its closed support thread makes a new request, which
    // reopens the thread with a new lead (`policy::reopen`).
    if conv.lifecycle.state == Lifecycle::Closed
        && member.role.rank() < Role::Moderator.rank()
        && !super::support::new_request(conv, author)
    {
        return deny(DenyCode::ConversationClosed, "closed: reopen it first");
    }
    if kind == ConvKind::Channel && !member.role.is_admin() {
        return deny(
            DenyCode::ChannelAdminsOnly,
            format!("{} cannot post in a channel", member.role.as_str()),
        );
    }
    if conv.settings.send_policy == SendPolicy::AdminsOnly && !member.role.is_admin() {
        return deny(DenyCode::AdminsOnly, "only admins post here");
    }
    require(&member, Permission::SendMessages)?;
    // A sealed message's attachments are sealed: its blob hashes say it carries some.
    if message.kind.is_media() || message.attachments.is_some() || message.blobs.is_some() {
        if !conv.settings.allow_attachments {
            return deny(DenyCode::AttachmentsDisabled, "attachments are off");
        }
        require(&member, Permission::SendMedia)?;
    }
    if message.kind == MessageKind::Sticker && !conv.settings.allow_stickers {
        return deny(DenyCode::StickersDisabled, "stickers are off");
    }
    if message.kind == MessageKind::Proposal && super::support::is_client(conv, &author.account) {
        return deny(
            DenyCode::NotCounterparty,
            "proposals come from the resource's side",
        );
    }
    if conv.settings.slow_mode_seconds > 0 && member.role.rank() < Role::Moderator.rank() {
        if let Some(last) = ctx.last_post_ms {
            let wait = i64::from(conv.settings.slow_mode_seconds) * 1000;
            if ctx.now_ms < last.saturating_add(wait) {
                return deny(
                    DenyCode::SlowMode,
                    format!("{} s between messages", conv.settings.slow_mode_seconds),
                );
            }
        }
    }
    Ok(())
}

fn check_proposal_status(
    ctx: &Context<'_>,
    conv: &Conversation,
    author: &Author,
    proposal: &Message,
    to: crate::model::proposal::ProposalStatus,
) -> Decision {
    active(ctx.now_ms, conv, author)?;
    open(conv)?;
    // A tombstone takes nothing back: its status went with the rest of it.
    not_deleted(proposal)?;
    if proposal.kind != MessageKind::Proposal {
        return deny(DenyCode::ImmutableField, "only proposals have a status");
    }
    let from = proposal
        .status
        .unwrap_or(crate::model::proposal::ProposalStatus::Pending);
    if !from.can_move_to(to) {
        return deny(
            DenyCode::ProposalTransition,
            format!("{} -> {}", from.as_str(), to.as_str()),
        );
    }
    // The counterparty: in a support thread the other side, elsewhere anyone but the author.
    let counterparty = match conv.meta.as_ref().and_then(|m| m.resource.as_ref()) {
        Some(r) => (proposal.author == r.client) != (author.account == r.client),
        None => proposal.author != author.account,
    };
    if !counterparty {
        return deny(
            DenyCode::NotCounterparty,
            format!(
                "{} is not the counterparty of {}",
                author.account, proposal.id
            ),
        );
    }
    let expires = proposal
        .payload
        .as_deref()
        .and_then(|p| ProposalPayload::from_json(p).ok())
        .and_then(|p| p.expires_at);
    if let Some(expires) = expires {
        if ctx.now_ms >= expires {
            return deny(DenyCode::ProposalExpired, "the proposal expired");
        }
    }
    Ok(())
}

/// An encrypted conversation's messages carry their content sealed and nothing in the clear;
/// a plaintext conversation's carry nothing sealed, nor the blob hashes only a sealed
/// message names (`blobs`).
fn sealed_where_encrypted(
    conv: &Conversation,
    message: &crate::model::message::NewMessage,
) -> Decision {
    match (conv.encrypted(), message.sealed.is_some()) {
        (true, true) if !message.has_clear_content() => Ok(()),
        (true, _) => deny(
            DenyCode::PlaintextInEncrypted,
            format!(
                "{} is end-to-end encrypted: a message carries its content sealed, nothing in the clear",
                conv.id
            ),
        ),
        (false, true) => deny(
            DenyCode::NotEncrypted,
            format!("{} is not end-to-end encrypted: nothing is sealed", conv.id),
        ),
        (false, false) if message.blobs.is_some() => deny(
            DenyCode::NotEncrypted,
            format!(
                "{} is not end-to-end encrypted: its messages name blobs by their attachments",
                conv.id
            ),
        ),
        (false, false) => Ok(()),
    }
}
