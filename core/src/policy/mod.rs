//! Who may change what (docs/POLICY.md): a pure function
//! `(state before, author, effect) -> Allow | Deny(code, reason)`.
//!
//! The server runs it on every incoming change (through `validate`), clients run it before
//! they write, so a well-behaved client meets a denial only in a race.

use std::borrow::Cow;

mod conv;
pub use conv::encryption_allowed;
pub mod joining;
mod lapse;
mod msgs;
pub mod reopen;
pub mod support;

use crate::ids::AccountId;
use crate::model::conversation::{Conversation, Member, MemberStatus, Permission};
use crate::model::message::{Message, NewMessage};
use crate::model::proposal::ProposalStatus;

pub use conv::{join_role, may_grant_on_add, only_owner};

/// Who wrote a change: the session's account, and whether it is a service account
/// (from the token, never from a document).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Author {
    pub account: AccountId,
    pub service: bool,
    /// The device the change comes from (its connection's `hello`), which an MLS commit
    /// must come from. `None`: no device (REST, a service), which commits nothing.
    pub device: Option<crate::ids::DeviceId>,
}

impl Author {
    pub fn user(account: AccountId) -> Self {
        Author {
            account,
            service: false,
            device: None,
        }
    }
    pub fn service(account: AccountId) -> Self {
        Author {
            account,
            service: true,
            device: None,
        }
    }

    /// The same author on `device`.
    pub fn on(mut self, device: crate::ids::DeviceId) -> Self {
        self.device = Some(device);
        self
    }
}

macro_rules! deny_codes {
    ($($variant:ident = $text:literal: $doc:literal),+ $(,)?) => {
        /// Why the policy said no. `as_str` is stable: it goes on the wire and into the audit log.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum DenyCode { $(#[doc = $doc] $variant),+ }

        impl DenyCode {
            pub const ALL: &'static [DenyCode] = &[$(DenyCode::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $(DenyCode::$variant => $text),+ }
            }
            pub fn describe(self) -> &'static str {
                match self { $(DenyCode::$variant => $doc),+ }
            }
        }
    };
}

deny_codes! {
    NotCreated = "not_created": "the conversation has not been created",
    AlreadyCreated = "already_created": "the conversation exists already",
    InvalidCreation = "invalid_creation": "the creation change breaks a creation rule",
    NotMember = "not_member": "the account is not a member",
    MemberInactive = "member_inactive": "the account left, was removed or was banned",
    NoPermission = "no_permission": "the member's role and overrides do not allow this",
    RoleTooHigh = "role_too_high": "nobody changes a member or grants a role at or above their own rank, except adding at their own rank up to member",
    OwnerProtected = "owner_protected": "nobody but the owner changes the owner's entry: the owner cannot be demoted or restricted",
    AuthorMismatch = "author_mismatch": "the message's author is not the change's account",
    NotAuthor = "not_author": "only the author may do this to a message",
    NotOwnKey = "not_own_key": "an account writes only its own reactions, read markers and delivery markers",
    DirectFixedMembers = "direct_fixed_members": "a direct conversation has exactly its two members",
    GroupFull = "group_full": "a group has at most 1000 members",
    ChannelAdminsOnly = "channel_admins_only": "in a channel only admins post",
    AdminsOnly = "admins_only": "the send policy lets only admins post",
    ReactionsDisabled = "reactions_disabled": "reactions are turned off here",
    AttachmentsDisabled = "attachments_disabled": "attachments are turned off here",
    StickersDisabled = "stickers_disabled": "stickers are turned off here",
    ThreadTooDeep = "thread_too_deep": "the thread would be deeper than the parent allows",
    SubroomForbidden = "subroom_forbidden": "the sub-room policy does not let this member create threads",
    ServiceOnly = "service_only": "only service accounts write system messages or conversations",
    NotCounterparty = "not_counterparty": "only the proposal's counterparty answers it",
    ProposalExpired = "proposal_expired": "the proposal expired (server time)",
    ProposalTransition = "proposal_transition": "a proposal's status moves only from pending to accepted, rejected or reschedule_requested",
    ConversationClosed = "conversation_closed": "the conversation is closed",
    BucketMismatch = "bucket_mismatch": "the message belongs to another time bucket",
    ClockAhead = "clock_ahead": "the message's time is too far ahead of server time",
    SlowMode = "slow_mode": "slow mode: wait before posting again",
    RetentionExpired = "retention_expired": "the message is older than the retention period, or the change writes to a bucket the retention expired",
    MessageMissing = "message_missing": "no such message in this bucket",
    MessageDeleted = "message_deleted": "the message was deleted",
    IncompleteRedaction = "incomplete_redaction": "a delete is the whole tombstone in one change: deleted_at and deleted_by set, every other field of the message removed, nothing else written; content is removed only by such a delete",
    ForgedTombstone = "forged_tombstone": "a tombstone names as deleted_by the account of the change that writes it",
    NotOwner = "not_owner": "only the account itself writes its profile and private document",
    JoinNotAllowed = "join_not_allowed": "the join policy does not let this account join by itself",
    ImmutableField = "immutable_field": "this field is set once and never changed",
    PinsFull = "pins_full": "too many pinned messages",
    TooManyReactions = "too_many_reactions": "a member keeps at most 20 different reactions on one message",
    BucketFull = "bucket_full": "this part of the period holds its most messages: post in the next part",
    BucketNotOpen = "bucket_not_open": "the previous part of the period is not full enough to open this one: post there",
    ConversationLocked = "conversation_locked": "the conversation is locked: no new messages, edits, reactions or answers until an admin unlocks it",
    ConversationDeleted = "conversation_deleted": "the owner deleted the conversation: it takes no more changes",
    Blocked = "blocked": "a member of this direct conversation blocked the other: nothing new is posted until that is cleared",
    DirectOnly = "direct_only": "blocking and hiding are for direct conversations",
    ApprovalRequired = "approval_required": "joining here needs an admin's approval: ask to join instead",
    LinksDisabled = "links_disabled": "invite links need the join policy link_join",
    ScheduleTooMany = "schedule_too_many": "an account holds at most 100 pending scheduled messages",
    RequestsFull = "requests_full": "a conversation holds at most 500 unanswered join requests",
    SenderMismatch = "sender_mismatch": "a message's sender role, name or lead is not the one the support thread gives its author",
    SupportOnly = "support_only": "sender stamps, client and owner names and lead outcomes belong to support threads",
    OutcomeNeedsClose = "outcome_needs_close": "a lead outcome is written with the thread's closure, and only while it is closed",
    EncryptionNotAllowed = "encryption_not_allowed": "channels and system conversations are not end-to-end encrypted",
    NotEncrypted = "not_encrypted": "the conversation is not end-to-end encrypted: it has no MLS group",
    MlsGroupExists = "mls_group_exists": "the conversation's MLS group was made already",
    MlsNoGroup = "mls_no_group": "the conversation's MLS group has not been made yet",
    MlsCommitRequired = "mls_commit_required": "removing or banning a member of an encrypted conversation carries the commit that removes their devices",
    PlaintextInEncrypted = "plaintext_in_encrypted": "an encrypted conversation's messages carry their content sealed, never in the clear, and its drafts and scheduled messages are not kept in the clear",
    NotParentMember = "not_parent_member": "a thread is open only to active members of its parent conversation",
    ParentMessageMissing = "parent_message_missing": "a thread hangs on a message of its parent that exists and is not deleted",
    OwnerOnly = "owner_only": "only the owner transfers ownership",
    TargetNotMember = "target_not_member": "ownership goes only to a member (not to an account without an entry or with a join request)",
    TargetInactive = "target_inactive": "ownership goes only to an active member (not to one who left, was removed or was banned)",
    OwnerMustTransfer = "owner_must_transfer": "the only owner leaves, steps down, or is removed or banned only after transferring ownership",
    NewLeadRequired = "new_lead_required": "a client reopens a closed support thread only as a new request, naming the lead that follows the closure",
}

impl DenyCode {
    /// The code of a refusal that is about where a message was put, not about the
    /// message: the writer puts it in another part of the period and sends it again.
    pub fn moves_message(self) -> bool {
        matches!(self, DenyCode::BucketFull | DenyCode::BucketNotOpen)
    }

    /// The code named `text`.
    pub fn parse(text: &str) -> Option<DenyCode> {
        DenyCode::ALL.iter().copied().find(|c| c.as_str() == text)
    }
}

/// A denial: a stable code and a reason for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub code: DenyCode,
    pub reason: String,
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.reason)
    }
}

pub type Decision = Result<(), Denial>;

pub(crate) fn deny(code: DenyCode, reason: impl Into<String>) -> Decision {
    Err(Denial {
        code,
        reason: reason.into(),
    })
}

/// What the policy knows besides the effect: the state before the change.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The conversation (for `conv` and `msgs` documents).
    pub conv: Option<&'a Conversation>,
    /// The parent conversation of a thread, when the effect creates or joins one.
    pub parent: Option<&'a Conversation>,
    /// Server time (ms); clients pass their best estimate.
    pub now_ms: i64,
    /// When the author's last message in this conversation was accepted (slow mode).
    pub last_post_ms: Option<i64>,
    /// The bucket of the `msgs` document the effect writes to.
    pub bucket: Option<crate::ids::Bucket>,
    /// Where the author stands in the parent of the thread the effect writes to (and, for a
    /// thread of a thread, in every conversation above it). `None`: not known (a client
    /// that does not hold the parent; not a thread): the rule is left to the acceptor.
    pub parent_standing: Option<Standing>,
    /// What the acceptor found of the message a thread being created hangs on. `None`: not
    /// looked up (clients that do not hold it).
    pub parent_message: Option<ParentMessage>,
}

/// Where an account stands in a conversation, as a thread of that conversation sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// An active member (of it and of every conversation above it).
    Active,
    /// Not an active member: never one (`None`), or left, removed, banned, requested.
    Out(Option<MemberStatus>),
}

impl Standing {
    /// The standing an entry (or its absence) gives.
    pub fn of(member: Option<&Member>) -> Self {
        match member {
            Some(m) if m.is_active() => Standing::Active,
            Some(m) => Standing::Out(Some(m.status)),
            None => Standing::Out(None),
        }
    }

    pub fn is_active(self) -> bool {
        self == Standing::Active
    }
}

/// A message a thread is created on, as the acceptor found it in the parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParentMessage {
    Present,
    Deleted,
    Missing,
}

/// What a change does, in domain terms. `validate` derives these from a change's ops;
/// clients build them directly from intents.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// The creation change of a group, channel, thread or system conversation.
    CreateConversation(Box<Conversation>),
    /// A new member entry, or a former member made active again (`before` is its old entry).
    AddMember {
        before: Option<Member>,
        after: Member,
    },
    /// Changes to an existing member entry; `fields` lists the keys written.
    UpdateMember {
        before: Member,
        after: Member,
        fields: Vec<String>,
    },
    SetInfo {
        field: String,
    },
    SetSetting {
        key: String,
    },
    Pin {
        message: crate::ids::MessageId,
        by: AccountId,
    },
    Unpin {
        message: crate::ids::MessageId,
    },
    MarkRead {
        account: AccountId,
    },
    /// `members/<account>/delivered` moved.
    MarkDelivered {
        account: AccountId,
    },
    SetLifecycle {
        to: crate::model::conversation::Lifecycle,
        by: AccountId,
    },
    /// A support thread's lead fields (`lifecycle/{outcome, reason, lead}`) written:
    /// whether the outcome was, and whether the thread is closed after the change.
    SetLead {
        outcome: bool,
        closed_after: bool,
    },
    /// A closed support thread reopened (`lifecycle/state = active`, by `by`) with `lead`
    /// written in the same change: a new request opens a new lead.
    NewRequest {
        by: AccountId,
        lead: crate::ids::LeadId,
    },
    PostMessage(Box<NewMessage>),
    EditBody(Box<Message>),
    /// An encrypted conversation's message given a new sealed content (`sealed`, with
    /// `edited_at`) by its author's device.
    EditSealed {
        message: Box<Message>,
        sealed: Vec<u8>,
    },
    DeleteMessage(Box<Message>),
    SetReaction {
        message: Box<Message>,
        account: AccountId,
    },
    SetProposalStatus {
        proposal: Box<Message>,
        to: ProposalStatus,
    },
    /// Any write to the profile or private document of `owner`.
    WriteOwnDoc {
        owner: AccountId,
    },
    /// A write to the private document that stores text in the clear for these
    /// conversations: a draft, or a scheduled message's conversation or body. The acceptor
    /// refuses it for an encrypted one (`plaintext_in_encrypted`), which it asks the host
    /// about: the conversation is another unit's.
    PrivateText {
        convs: Vec<crate::ids::ConvId>,
    },
    /// An encrypted conversation's MLS group made by a member's device (`conv/mls`): the
    /// group info and ratchet tree at epoch 0.
    MlsInit {
        group_info: Vec<u8>,
        tree: Vec<u8>,
    },
    /// The commit that moves the group from `epoch` to the next, with the Welcome of the
    /// devices it adds.
    MlsCommit {
        epoch: u64,
        commit: Vec<u8>,
        welcome: Option<Vec<u8>>,
    },
    /// One change that gives one member entry the owner role and takes it from another
    /// (`validate` pairs the two writes; alone, each is refused).
    TransferOwnership(Box<Transfer>),
}

/// A member entry as a change writes it: before (`None`: the change makes it), after, and
/// the keys written.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryWrite {
    pub before: Option<Member>,
    pub after: Member,
    pub fields: Vec<String>,
}

/// An ownership transfer: `from` loses the owner role (to admin), `to` gets it.
#[derive(Debug, Clone, PartialEq)]
pub struct Transfer {
    pub from: EntryWrite,
    pub to: EntryWrite,
}

impl Effect {
    /// Whether the effect changes what the conversation allows others (its members, roles,
    /// settings or lifecycle, or the support names a sender stamp must match): the
    /// conversation's policy version moves, and changes to its message buckets validated
    /// against the old one are validated again (a cluster).
    pub fn moves_policy(&self) -> bool {
        match self {
            Effect::CreateConversation(_)
            | Effect::AddMember { .. }
            | Effect::UpdateMember { .. }
            | Effect::TransferOwnership(_)
            | Effect::SetSetting { .. }
            | Effect::SetLifecycle { .. }
            | Effect::SetLead { .. }
            | Effect::NewRequest { .. }
            // Ciphertext is checked against the group's epoch and devices.
            | Effect::MlsInit { .. }
            | Effect::MlsCommit { .. } => true,
            // `sender_mismatch` compares a stamped name with these: a node holding the
            // names before the change must not decide a stamped message against them.
            Effect::SetInfo { field } => {
                use crate::doc::schema::keys::{CLIENT_NAME, OWNER_NAME};
                field == CLIENT_NAME || field == OWNER_NAME
            }
            _ => false,
        }
    }
}

/// The policy.
pub fn check(ctx: &Context<'_>, author: &Author, effect: &Effect) -> Decision {
    match effect {
        Effect::WriteOwnDoc { owner } => {
            if *owner == author.account {
                Ok(())
            } else {
                deny(
                    DenyCode::NotOwner,
                    format!("{} writes the document of {owner}", author.account),
                )
            }
        }
        // Whether a conversation is encrypted is the acceptor's to ask (another unit's).
        Effect::PrivateText { .. } => Ok(()),
        Effect::CreateConversation(after) => conv::check_create(ctx, author, after),
        Effect::PostMessage(_)
        | Effect::EditBody(_)
        | Effect::EditSealed { .. }
        | Effect::DeleteMessage(_)
        | Effect::SetReaction { .. }
        | Effect::SetProposalStatus { .. } => {
            let conv = not_deleted(ctx, author)?;
            in_parent(ctx, conv, author, effect)?;
            msgs::check(ctx, conv, author, effect)
        }
        _ => {
            let conv = not_deleted(ctx, author)?;
            in_parent(ctx, conv, author, effect)?;
            conv::check(ctx, conv, author, effect)
        }
    }
}

/// A thread is open only to active members of its parent: whoever left, was removed from or
/// was banned from the parent (or any conversation above it) neither reads nor writes the
/// thread any more, whatever its entry in the thread says. Leaving the thread stays open
/// (it tidies up); service accounts are not members anywhere.
fn in_parent(ctx: &Context<'_>, conv: &Conversation, author: &Author, effect: &Effect) -> Decision {
    let Some(Standing::Out(status)) = ctx.parent_standing else {
        return Ok(());
    };
    let thread = conv.meta.as_ref().and_then(|m| m.thread.as_ref());
    let Some(link) = thread.filter(|_| !author.service) else {
        return Ok(());
    };
    if let Effect::UpdateMember { before, after, .. } = effect {
        let leaving = after.account == author.account
            && before.is_active()
            && after.status == MemberStatus::Left;
        if leaving {
            return Ok(());
        }
    }
    let how = status.map_or("not a member", MemberStatus::as_str);
    deny(
        DenyCode::NotParentMember,
        format!(
            "{} is {how} in {}, the parent of {}",
            author.account, link.parent, conv.id
        ),
    )
}

/// The created conversation, unless its owner deleted it: then nothing changes any more
/// (the history stays for the audit trail). Only its members learn that it was deleted.
fn not_deleted<'a>(ctx: &Context<'a>, author: &Author) -> Result<&'a Conversation, Denial> {
    let conv = created(ctx)?;
    if conv.lifecycle.state != crate::model::conversation::Lifecycle::Deleted {
        return Ok(conv);
    }
    if !author.service {
        active(ctx.now_ms, conv, author)?;
    }
    Err(Denial {
        code: DenyCode::ConversationDeleted,
        reason: "the conversation was deleted".into(),
    })
}

fn created<'a>(ctx: &Context<'a>) -> Result<&'a Conversation, Denial> {
    match ctx.conv {
        Some(conv) if conv.meta.is_some() => Ok(conv),
        _ => Err(Denial {
            code: DenyCode::NotCreated,
            reason: "the conversation has not been created".into(),
        }),
    }
}

/// The author's entry as it stands at server time `now` (a temporary role or override whose
/// time has come is gone: `Member::at`), which must be active.
pub(crate) fn active<'a>(
    now: i64,
    conv: &'a Conversation,
    author: &Author,
) -> Result<Cow<'a, Member>, Denial> {
    match conv.member(&author.account) {
        None => Err(Denial {
            code: DenyCode::NotMember,
            reason: format!("{} is not a member of {}", author.account, conv.id),
        }),
        Some(m) if !m.is_active() => Err(Denial {
            code: DenyCode::MemberInactive,
            reason: format!("{} is {} in {}", author.account, m.status.as_str(), conv.id),
        }),
        Some(m) => Ok(m.at(now)),
    }
}

pub(crate) fn require(member: &Member, permission: Permission) -> Decision {
    if member.has(permission) {
        Ok(())
    } else {
        deny(
            DenyCode::NoPermission,
            format!(
                "{} ({}) lacks {}",
                member.account,
                member.role.as_str(),
                permission.as_str()
            ),
        )
    }
}
