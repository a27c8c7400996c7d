//! The JavaScript-facing types. Each mirrors a core type (camelCase fields, enums spelled as
//! the document schema spells them) and derives `Tsify`, so the package's `.d.ts` is generated
//! from these definitions; `From`/`TryFrom` convert to and from core.

use std::collections::BTreeMap;

use confab_core::client as cc;
use confab_core::ids::{AccountId, ConvId, MessageId, ResourceId};
use confab_core::model::account as ca;
use confab_core::model::conversation as cv;
use confab_core::model::message as cm;
use confab_core::model::proposal as cp;
use confab_core::ModelError;
use serde::{Deserialize, Serialize};
use tsify::Tsify;

/// Mirrors a core string enum: same variants, spelled as the core's `as_str`.
macro_rules! mirror_enum {
    ($(#[$doc:meta])* $name:ident => $core:ty { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Tsify)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl From<$core> for $name {
            fn from(value: $core) -> Self {
                type Core = $core;
                match value { $(Core::$variant => $name::$variant),+ }
            }
        }

        impl From<$name> for $core {
            fn from(value: $name) -> Self {
                type Core = $core;
                match value { $($name::$variant => Core::$variant),+ }
            }
        }
    };
}

pub(crate) use mirror_enum;

mirror_enum!(
    /// What a conversation is.
    ConvKind => cv::ConvKind {
        Direct = "direct", Group = "group", Channel = "channel", Thread = "thread",
        System = "system", Support = "support",
    }
);
mirror_enum!(
    /// A member's role: owner > admin > moderator > member > guest > readonly = subscriber.
    Role => cv::Role {
        Owner = "owner", Admin = "admin", Moderator = "moderator", Member = "member",
        Guest = "guest", Readonly = "readonly", Subscriber = "subscriber",
    }
);
mirror_enum!(
    /// A member's participation status.
    MemberStatus => cv::MemberStatus {
        Active = "active", Left = "left", Removed = "removed", Banned = "banned",
    }
);
mirror_enum!(
    /// A permission a member override can grant or take away.
    Permission => cv::Permission {
        SendMessages = "can_send_messages", SendMedia = "can_send_media",
        AddMembers = "can_add_members", RemoveMembers = "can_remove_members",
        ChangeInfo = "can_change_info", PinMessages = "can_pin_messages",
        DeleteMessages = "can_delete_messages",
    }
);
mirror_enum!(
    /// Who may send.
    SendPolicy => cv::SendPolicy { AllMembers = "all_members", AdminsOnly = "admins_only" }
);
mirror_enum!(
    /// How accounts join.
    JoinPolicy => cv::JoinPolicy { InviteOnly = "invite_only", Link = "link_join", Open = "open" }
);
mirror_enum!(
    /// Who edits the info or creates sub-rooms.
    EditPolicy => cv::EditPolicy { AllMembers = "all_members", AdminsOnly = "admins_only" }
);
mirror_enum!(
    /// Lifecycle of a conversation.
    Lifecycle => cv::Lifecycle { Active = "active", Archived = "archived", Closed = "closed" }
);
mirror_enum!(
    /// What a message is.
    MessageKind => cm::MessageKind {
        Text = "text", Image = "image", File = "file", Voice = "voice", Video = "video",
        Sticker = "sticker", System = "system", Proposal = "proposal",
        ProposalResponse = "proposal_response",
    }
);
mirror_enum!(
    /// Where a proposal stands.
    ProposalStatus => cp::ProposalStatus {
        Pending = "pending", Accepted = "accepted", Rejected = "rejected",
        RescheduleRequested = "reschedule_requested",
    }
);
mirror_enum!(
    /// What is proposed.
    ProposalType => cp::ProposalType { Visit = "visit", BookingManual = "booking_manual" }
);
mirror_enum!(
    /// How a visit happens.
    MeetingType => cp::MeetingType { OnSite = "on_site", VideoCall = "video_call" }
);
mirror_enum!(
    /// Who sent a proposal.
    CreatedByRole => cp::CreatedByRole { Owner = "owner", Staff = "staff", Root = "root" }
);
mirror_enum!(
    /// A client's answer to a proposal.
    ProposalAnswer => cp::ProposalResponse {
        Accept = "accept", Reject = "reject", RequestChange = "request_change",
    }
);
mirror_enum!(
    /// What kind of identity an account is.
    AccountKind => ca::AccountKind {
        Personal = "personal", Bot = "bot", Service = "service", Organization = "organization",
    }
);
mirror_enum!(
    /// What an attachment is.
    AttachmentKind => confab_core::model::attachment::AttachmentKind {
        Image = "image", File = "file", Voice = "voice", Video = "video", Sticker = "sticker",
    }
);

fn ids<T>(
    parse: impl Fn(String) -> Result<T, ModelError>,
    values: Vec<String>,
) -> Result<Vec<T>, ModelError> {
    values.into_iter().map(parse).collect()
}

fn opt<T>(
    parse: impl Fn(String) -> Result<T, ModelError>,
    value: Option<String>,
) -> Result<Option<T>, ModelError> {
    value.map(parse).transpose()
}

// ---------- views ----------

/// Where a forwarded message came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
pub struct ForwardedFrom {
    pub conv: String,
    pub message: String,
}

impl From<cm::ForwardedFrom> for ForwardedFrom {
    fn from(f: cm::ForwardedFrom) -> Self {
        ForwardedFrom {
            conv: f.conv.into(),
            message: f.message.into(),
        }
    }
}

impl TryFrom<ForwardedFrom> for cm::ForwardedFrom {
    type Error = ModelError;
    fn try_from(f: ForwardedFrom) -> Result<Self, ModelError> {
        Ok(cm::ForwardedFrom {
            conv: ConvId::new(f.conv)?,
            message: MessageId::new(f.message)?,
        })
    }
}

/// A message as the timeline shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
#[tsify(hashmap_as_object)]
pub struct Message {
    pub id: String,
    pub author: String,
    pub kind: MessageKind,
    pub body: String,
    /// JSON text (proposals carry the seed's payload; `JSON.parse` it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub payload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub caption: Option<String>,
    /// JSON text: an array of attachment references.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub attachments: Option<String>,
    /// JSON text: an array of account ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub mentions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub reply_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub forwarded_from: Option<ForwardedFrom>,
    /// Author's clock, milliseconds since the epoch.
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub edited_at: Option<i64>,
    /// Set when the message was deleted (its body is then empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub deleted_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub scheduled_at: Option<i64>,
    /// A proposal's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub status: Option<ProposalStatus>,
    /// `{emoji: {account: time}}`.
    pub reactions: BTreeMap<String, BTreeMap<String, i64>>,
}

impl From<cm::Message> for Message {
    fn from(m: cm::Message) -> Self {
        Message {
            id: m.id.into(),
            author: m.author.into(),
            kind: m.kind.into(),
            body: m.body,
            payload: m.payload,
            caption: m.caption,
            attachments: m.attachments,
            mentions: m.mentions,
            reply_to: m.reply_to.map(Into::into),
            forwarded_from: m.forwarded_from.map(Into::into),
            created_at: m.created_at,
            edited_at: m.edited_at,
            deleted_at: m.deleted_at,
            scheduled_at: m.scheduled_at,
            status: m.status.map(Into::into),
            reactions: m
                .reactions
                .into_iter()
                .map(|(emoji, by)| (emoji, by.into_iter().map(|(a, t)| (a.into(), t)).collect()))
                .collect(),
        }
    }
}

/// A message in a timeline: server order (`seq`), then this device's pending messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
#[tsify(hashmap_as_object)]
pub struct TimelineItem {
    pub message: Message,
    /// Server order; absent while pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub seq: Option<u64>,
    /// The message's time bucket.
    pub bucket: i64,
    /// Written on this device and not yet accepted by the server.
    pub pending: bool,
}

impl From<cc::TimelineItem> for TimelineItem {
    fn from(item: cc::TimelineItem) -> Self {
        TimelineItem {
            message: item.message.into(),
            seq: item.seq,
            bucket: item.bucket,
            pending: item.pending,
        }
    }
}

/// A row of the conversation list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct ConversationSummary {
    pub conv: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub title: Option<String>,
    pub lifecycle: String,
    /// Messages of others after this account's read marker (in the loaded buckets).
    pub unread: usize,
    /// Preview of the last message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub last_message: Option<String>,
    pub last_activity: i64,
    pub muted: bool,
    pub pinned: bool,
    pub archived: bool,
}

impl From<cc::ConversationSummary> for ConversationSummary {
    fn from(s: cc::ConversationSummary) -> Self {
        ConversationSummary {
            conv: s.conv.into(),
            kind: s.kind,
            title: s.title,
            lifecycle: s.lifecycle,
            unread: s.unread,
            last_message: s.last_message,
            last_activity: s.last_activity,
            muted: s.muted,
            pinned: s.pinned,
            archived: s.archived,
        }
    }
}

/// Where an intent stands. Every intent ends accepted or rejected with a reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum IntentStatus {
    /// Written locally, not yet sent (offline, or held behind an earlier intent of the same
    /// conversation that waits for a resend).
    Pending,
    /// Sent, no answer yet.
    Sent,
    /// The server could not take it yet (a transient error, no answer in time, or it waits
    /// for an earlier intent of this device): resent in order with backoff, by itself.
    Retrying,
    Accepted,
    Rejected {
        code: String,
        reason: String,
    },
}

impl From<cc::IntentStatus> for IntentStatus {
    fn from(s: cc::IntentStatus) -> Self {
        match s {
            cc::IntentStatus::Pending => IntentStatus::Pending,
            cc::IntentStatus::Sent => IntentStatus::Sent,
            cc::IntentStatus::Retrying => IntentStatus::Retrying,
            cc::IntentStatus::Accepted => IntentStatus::Accepted,
            cc::IntentStatus::Rejected { code, reason } => IntentStatus::Rejected { code, reason },
        }
    }
}

/// A conversation member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
#[tsify(hashmap_as_object)]
pub struct Member {
    pub account: String,
    pub role: Role,
    pub status: MemberStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub joined_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub invited_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub left_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub removed_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub nickname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub color: Option<String>,
    /// Per-member overrides of the role's defaults.
    #[tsify(type = "Partial<Record<Permission, boolean>>")]
    pub overrides: BTreeMap<Permission, bool>,
}

impl From<cv::Member> for Member {
    fn from(m: cv::Member) -> Self {
        Member {
            account: m.account.into(),
            role: m.role.into(),
            status: m.status.into(),
            joined_at: m.joined_at,
            invited_by: m.invited_by.map(Into::into),
            left_at: m.left_at,
            removed_at: m.removed_at,
            nickname: m.nickname,
            color: m.color,
            overrides: m
                .overrides
                .into_iter()
                .map(|(p, v)| (p.into(), v))
                .collect(),
        }
    }
}

/// Conversation settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub send_policy: SendPolicy,
    pub join_policy: JoinPolicy,
    pub join_approval_required: bool,
    pub info_edit_policy: EditPolicy,
    pub subroom_policy: EditPolicy,
    pub max_subroom_depth: u32,
    pub slow_mode_seconds: u32,
    /// Absent: keep forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub retention_days: Option<u32>,
    pub allow_reactions: bool,
    pub allow_stickers: bool,
    pub allow_attachments: bool,
}

impl From<cv::Settings> for Settings {
    fn from(s: cv::Settings) -> Self {
        Settings {
            send_policy: s.send_policy.into(),
            join_policy: s.join_policy.into(),
            join_approval_required: s.join_approval_required,
            info_edit_policy: s.info_edit_policy.into(),
            subroom_policy: s.subroom_policy.into(),
            max_subroom_depth: s.max_subroom_depth,
            slow_mode_seconds: s.slow_mode_seconds,
            retention_days: s.retention_days,
            allow_reactions: s.allow_reactions,
            allow_stickers: s.allow_stickers,
            allow_attachments: s.allow_attachments,
        }
    }
}

impl From<Settings> for cv::Settings {
    fn from(s: Settings) -> Self {
        cv::Settings {
            send_policy: s.send_policy.into(),
            join_policy: s.join_policy.into(),
            join_approval_required: s.join_approval_required,
            info_edit_policy: s.info_edit_policy.into(),
            subroom_policy: s.subroom_policy.into(),
            max_subroom_depth: s.max_subroom_depth,
            slow_mode_seconds: s.slow_mode_seconds,
            retention_days: s.retention_days,
            allow_reactions: s.allow_reactions,
            allow_stickers: s.allow_stickers,
            allow_attachments: s.allow_attachments,
        }
    }
}

/// Settings to change from the kind's defaults when creating a conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase", default)]
pub struct SettingsPatch {
    #[tsify(optional)]
    pub send_policy: Option<SendPolicy>,
    #[tsify(optional)]
    pub join_policy: Option<JoinPolicy>,
    #[tsify(optional)]
    pub join_approval_required: Option<bool>,
    #[tsify(optional)]
    pub info_edit_policy: Option<EditPolicy>,
    #[tsify(optional)]
    pub subroom_policy: Option<EditPolicy>,
    #[tsify(optional)]
    pub max_subroom_depth: Option<u32>,
    #[tsify(optional)]
    pub slow_mode_seconds: Option<u32>,
    #[tsify(optional)]
    pub retention_days: Option<u32>,
    #[tsify(optional)]
    pub allow_reactions: Option<bool>,
    #[tsify(optional)]
    pub allow_stickers: Option<bool>,
    #[tsify(optional)]
    pub allow_attachments: Option<bool>,
}

impl SettingsPatch {
    /// The kind's defaults with this patch applied.
    pub fn apply(&self, kind: cv::ConvKind) -> cv::Settings {
        let mut s = cv::Settings::defaults_for(kind);
        if let Some(v) = self.send_policy {
            s.send_policy = v.into();
        }
        if let Some(v) = self.join_policy {
            s.join_policy = v.into();
        }
        if let Some(v) = self.join_approval_required {
            s.join_approval_required = v;
        }
        if let Some(v) = self.info_edit_policy {
            s.info_edit_policy = v.into();
        }
        if let Some(v) = self.subroom_policy {
            s.subroom_policy = v.into();
        }
        if let Some(v) = self.max_subroom_depth {
            s.max_subroom_depth = v;
        }
        if let Some(v) = self.slow_mode_seconds {
            s.slow_mode_seconds = v;
        }
        if self.retention_days.is_some() {
            s.retention_days = self.retention_days;
        }
        if let Some(v) = self.allow_reactions {
            s.allow_reactions = v;
        }
        if let Some(v) = self.allow_stickers {
            s.allow_stickers = v;
        }
        if let Some(v) = self.allow_attachments {
            s.allow_attachments = v;
        }
        s
    }
}

/// A pinned message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
pub struct Pin {
    pub message: String,
    pub by: String,
    pub at: i64,
}

/// Title, description, avatar and theme.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct ConversationInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub avatar: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub theme_color: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub theme_background: Option<String>,
}

/// Where a thread hangs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
pub struct ThreadLink {
    pub parent: String,
    pub message: String,
    pub depth: u32,
}

/// The resource a support thread is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
pub struct ResourceLink {
    pub resource: String,
    pub client: String,
    pub owner: String,
}

/// Lifecycle state and who moved it last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
pub struct LifecycleState {
    pub state: Lifecycle,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub at: Option<i64>,
}

/// A conversation as this device sees it (accepted plus pending).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
#[tsify(hashmap_as_object)]
pub struct Conversation {
    pub id: String,
    pub kind: ConvKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub created_by: Option<String>,
    pub created_at: i64,
    /// Width of a message bucket in milliseconds.
    pub bucket_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub thread: Option<ThreadLink>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub resource: Option<ResourceLink>,
    pub info: ConversationInfo,
    pub settings: Settings,
    pub members: Vec<Member>,
    pub pins: Vec<Pin>,
    /// The last message each account has read.
    pub reads: BTreeMap<String, String>,
    pub lifecycle: LifecycleState,
}

impl Conversation {
    /// `None` while the conversation's creation has not arrived.
    pub fn from_core(c: cv::Conversation) -> Option<Self> {
        let meta = c.meta?;
        Some(Conversation {
            id: c.id.into(),
            kind: meta.kind.into(),
            created_by: meta.created_by.map(Into::into),
            created_at: meta.created_at,
            bucket_ms: meta.bucket_ms,
            thread: meta.thread.map(|t| ThreadLink {
                parent: t.parent.into(),
                message: t.message.into(),
                depth: t.depth,
            }),
            resource: meta.resource.map(|r| ResourceLink {
                resource: r.resource.into(),
                client: r.client.into(),
                owner: r.owner.into(),
            }),
            info: ConversationInfo {
                title: c.info.title,
                description: c.info.description,
                avatar: c.info.avatar,
                theme_color: c.info.theme_color,
                theme_background: c.info.theme_background,
            },
            settings: c.settings.into(),
            members: c.members.into_values().map(Into::into).collect(),
            pins: c
                .pins
                .into_values()
                .map(|p| Pin {
                    message: p.message.into(),
                    by: p.by.into(),
                    at: p.at,
                })
                .collect(),
            reads: c
                .reads
                .into_iter()
                .map(|(a, m)| (a.into(), m.into()))
                .collect(),
            lifecycle: LifecycleState {
                state: c.lifecycle.state.into(),
                by: c.lifecycle.by.map(Into::into),
                at: c.lifecycle.at,
            },
        })
    }
}

/// An account's public profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub kind: AccountKind,
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub avatar: Option<String>,
    /// At most 160 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub bio: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub status: Option<String>,
}

impl From<ca::Profile> for Profile {
    fn from(p: ca::Profile) -> Self {
        Profile {
            kind: p.kind.into(),
            display_name: p.display_name,
            avatar: p.avatar,
            bio: p.bio,
            status: p.status,
        }
    }
}

impl From<Profile> for ca::Profile {
    fn from(p: Profile) -> Self {
        ca::Profile {
            kind: p.kind.into(),
            display_name: p.display_name,
            avatar: p.avatar,
            bio: p.bio,
            status: p.status,
        }
    }
}

// ---------- intents ----------

/// A message as its author writes it (the engine's `NewMessage`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct NewMessage {
    pub id: String,
    pub author: String,
    pub kind: MessageKind,
    pub body: String,
    /// JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub payload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub caption: Option<String>,
    /// JSON text: an array of attachment references.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub attachments: Option<String>,
    /// JSON text: an array of account ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub mentions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub reply_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub forwarded_from: Option<ForwardedFrom>,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub scheduled_at: Option<i64>,
}

impl From<cm::NewMessage> for NewMessage {
    fn from(m: cm::NewMessage) -> Self {
        NewMessage {
            id: m.id.into(),
            author: m.author.into(),
            kind: m.kind.into(),
            body: m.body,
            payload: m.payload,
            caption: m.caption,
            attachments: m.attachments,
            mentions: m.mentions,
            reply_to: m.reply_to.map(Into::into),
            forwarded_from: m.forwarded_from.map(Into::into),
            created_at: m.created_at,
            scheduled_at: m.scheduled_at,
        }
    }
}

impl TryFrom<NewMessage> for cm::NewMessage {
    type Error = ModelError;
    fn try_from(m: NewMessage) -> Result<Self, ModelError> {
        Ok(cm::NewMessage {
            id: MessageId::new(m.id)?,
            author: AccountId::new(m.author)?,
            kind: m.kind.into(),
            body: m.body,
            payload: m.payload,
            caption: m.caption,
            attachments: m.attachments,
            mentions: m.mentions,
            reply_to: opt(MessageId::new, m.reply_to)?,
            forwarded_from: m.forwarded_from.map(TryInto::try_into).transpose()?,
            created_at: m.created_at,
            scheduled_at: m.scheduled_at,
        })
    }
}

/// An account and its role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
pub struct MemberRole {
    pub account: String,
    pub role: Role,
}

/// A thread's parent: a message of another conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
pub struct ParentMessage {
    pub conv: String,
    pub message: String,
}

/// One user action, exactly as the engine's outbox keeps it (`type` names the action).
/// `ConfabClient.intent(data)` takes it; the convenience methods build it for you.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Tsify)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum IntentData {
    CreateConversation {
        conv: String,
        kind: ConvKind,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        title: Option<String>,
        #[serde(default)]
        members: Vec<MemberRole>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        settings: Option<Settings>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        parent: Option<ParentMessage>,
    },
    OpenDirect {
        peer: String,
    },
    OpenSupport {
        resource: String,
        client: String,
        owner: String,
    },
    Send {
        conv: String,
        message: NewMessage,
    },
    Edit {
        conv: String,
        message: String,
        bucket: i64,
        body: String,
    },
    Delete {
        conv: String,
        message: String,
        bucket: i64,
    },
    React {
        conv: String,
        message: String,
        bucket: i64,
        emoji: String,
        on: bool,
    },
    Pin {
        conv: String,
        message: String,
    },
    Unpin {
        conv: String,
        message: String,
    },
    MarkRead {
        conv: String,
        message: String,
    },
    AddMember {
        conv: String,
        account: String,
        role: Role,
    },
    RemoveMember {
        conv: String,
        account: String,
        #[serde(default)]
        ban: bool,
    },
    Leave {
        conv: String,
    },
    SetRole {
        conv: String,
        account: String,
        role: Role,
    },
    SetInfo {
        conv: String,
        field: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        value: Option<String>,
    },
    SetSetting {
        conv: String,
        key: String,
        #[tsify(type = "string | number | boolean")]
        value: serde_json::Value,
    },
    SetLifecycle {
        conv: String,
        state: Lifecycle,
    },
    AnswerProposal {
        conv: String,
        proposal: String,
        bucket: i64,
        status: ProposalStatus,
    },
    SetConvPref {
        conv: String,
        key: String,
        #[tsify(type = "string | number | boolean")]
        value: serde_json::Value,
    },
    SetDraft {
        conv: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        text: Option<String>,
    },
    SetProfile {
        profile: Profile,
    },
    /// Adds or replaces (`contact`) or removes (no `contact`) an address-book entry.
    SetContact {
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        contact: Option<crate::account::Contact>,
    },
}

impl From<cc::Intent> for IntentData {
    fn from(intent: cc::Intent) -> Self {
        use cc::Intent as I;
        match intent {
            I::CreateConversation {
                conv,
                kind,
                title,
                members,
                settings,
                parent,
            } => IntentData::CreateConversation {
                conv: conv.into(),
                kind: kind.into(),
                title,
                members: members
                    .into_iter()
                    .map(|(a, r)| MemberRole {
                        account: a.into(),
                        role: r.into(),
                    })
                    .collect(),
                settings: settings.map(Into::into),
                parent: parent.map(|(c, m)| ParentMessage {
                    conv: c.into(),
                    message: m.into(),
                }),
            },
            I::OpenDirect { peer } => IntentData::OpenDirect { peer: peer.into() },
            I::OpenSupport {
                resource,
                client,
                owner,
            } => IntentData::OpenSupport {
                resource: resource.into(),
                client: client.into(),
                owner: owner.into(),
            },
            I::Send { conv, message } => IntentData::Send {
                conv: conv.into(),
                message: message.into(),
            },
            I::Edit {
                conv,
                message,
                bucket,
                body,
            } => IntentData::Edit {
                conv: conv.into(),
                message: message.into(),
                bucket,
                body,
            },
            I::Delete {
                conv,
                message,
                bucket,
            } => IntentData::Delete {
                conv: conv.into(),
                message: message.into(),
                bucket,
            },
            I::React {
                conv,
                message,
                bucket,
                emoji,
                on,
            } => IntentData::React {
                conv: conv.into(),
                message: message.into(),
                bucket,
                emoji,
                on,
            },
            I::Pin { conv, message } => IntentData::Pin {
                conv: conv.into(),
                message: message.into(),
            },
            I::Unpin { conv, message } => IntentData::Unpin {
                conv: conv.into(),
                message: message.into(),
            },
            I::MarkRead { conv, message } => IntentData::MarkRead {
                conv: conv.into(),
                message: message.into(),
            },
            I::AddMember {
                conv,
                account,
                role,
            } => IntentData::AddMember {
                conv: conv.into(),
                account: account.into(),
                role: role.into(),
            },
            I::RemoveMember { conv, account, ban } => IntentData::RemoveMember {
                conv: conv.into(),
                account: account.into(),
                ban,
            },
            I::Leave { conv } => IntentData::Leave { conv: conv.into() },
            I::SetRole {
                conv,
                account,
                role,
            } => IntentData::SetRole {
                conv: conv.into(),
                account: account.into(),
                role: role.into(),
            },
            I::SetInfo { conv, field, value } => IntentData::SetInfo {
                conv: conv.into(),
                field,
                value,
            },
            I::SetSetting { conv, key, value } => IntentData::SetSetting {
                conv: conv.into(),
                key,
                value,
            },
            I::SetLifecycle { conv, state } => IntentData::SetLifecycle {
                conv: conv.into(),
                state: state.into(),
            },
            I::AnswerProposal {
                conv,
                proposal,
                bucket,
                status,
            } => IntentData::AnswerProposal {
                conv: conv.into(),
                proposal: proposal.into(),
                bucket,
                status: status.into(),
            },
            I::SetConvPref { conv, key, value } => IntentData::SetConvPref {
                conv: conv.into(),
                key,
                value,
            },
            I::SetDraft { conv, text } => IntentData::SetDraft {
                conv: conv.into(),
                text,
            },
            I::SetProfile { profile } => IntentData::SetProfile {
                profile: profile.into(),
            },
            I::SetContact { id, contact } => IntentData::SetContact {
                id: id.into(),
                contact: contact.map(Into::into),
            },
        }
    }
}

impl TryFrom<IntentData> for cc::Intent {
    type Error = ModelError;
    fn try_from(data: IntentData) -> Result<Self, ModelError> {
        use cc::Intent as I;
        let conv = ConvId::new;
        let msg = MessageId::new;
        let acc = AccountId::new;
        Ok(match data {
            IntentData::CreateConversation {
                conv: c,
                kind,
                title,
                members,
                settings,
                parent,
            } => I::CreateConversation {
                conv: conv(c)?,
                kind: kind.into(),
                title,
                members: members
                    .into_iter()
                    .map(|m| Ok((acc(m.account)?, m.role.into())))
                    .collect::<Result<_, ModelError>>()?,
                settings: settings.map(Into::into),
                parent: parent
                    .map(|p| Ok::<_, ModelError>((conv(p.conv)?, msg(p.message)?)))
                    .transpose()?,
            },
            IntentData::OpenDirect { peer } => I::OpenDirect { peer: acc(peer)? },
            IntentData::OpenSupport {
                resource,
                client,
                owner,
            } => I::OpenSupport {
                resource: ResourceId::new(resource)?,
                client: acc(client)?,
                owner: acc(owner)?,
            },
            IntentData::Send { conv: c, message } => I::Send {
                conv: conv(c)?,
                message: message.try_into()?,
            },
            IntentData::Edit {
                conv: c,
                message,
                bucket,
                body,
            } => I::Edit {
                conv: conv(c)?,
                message: msg(message)?,
                bucket,
                body,
            },
            IntentData::Delete {
                conv: c,
                message,
                bucket,
            } => I::Delete {
                conv: conv(c)?,
                message: msg(message)?,
                bucket,
            },
            IntentData::React {
                conv: c,
                message,
                bucket,
                emoji,
                on,
            } => I::React {
                conv: conv(c)?,
                message: msg(message)?,
                bucket,
                emoji,
                on,
            },
            IntentData::Pin { conv: c, message } => I::Pin {
                conv: conv(c)?,
                message: msg(message)?,
            },
            IntentData::Unpin { conv: c, message } => I::Unpin {
                conv: conv(c)?,
                message: msg(message)?,
            },
            IntentData::MarkRead { conv: c, message } => I::MarkRead {
                conv: conv(c)?,
                message: msg(message)?,
            },
            IntentData::AddMember {
                conv: c,
                account,
                role,
            } => I::AddMember {
                conv: conv(c)?,
                account: acc(account)?,
                role: role.into(),
            },
            IntentData::RemoveMember {
                conv: c,
                account,
                ban,
            } => I::RemoveMember {
                conv: conv(c)?,
                account: acc(account)?,
                ban,
            },
            IntentData::Leave { conv: c } => I::Leave { conv: conv(c)? },
            IntentData::SetRole {
                conv: c,
                account,
                role,
            } => I::SetRole {
                conv: conv(c)?,
                account: acc(account)?,
                role: role.into(),
            },
            IntentData::SetInfo {
                conv: c,
                field,
                value,
            } => I::SetInfo {
                conv: conv(c)?,
                field,
                value,
            },
            IntentData::SetSetting {
                conv: c,
                key,
                value,
            } => I::SetSetting {
                conv: conv(c)?,
                key,
                value,
            },
            IntentData::SetLifecycle { conv: c, state } => I::SetLifecycle {
                conv: conv(c)?,
                state: state.into(),
            },
            IntentData::AnswerProposal {
                conv: c,
                proposal,
                bucket,
                status,
            } => I::AnswerProposal {
                conv: conv(c)?,
                proposal: msg(proposal)?,
                bucket,
                status: status.into(),
            },
            IntentData::SetConvPref {
                conv: c,
                key,
                value,
            } => I::SetConvPref {
                conv: conv(c)?,
                key,
                value,
            },
            IntentData::SetDraft { conv: c, text } => I::SetDraft {
                conv: conv(c)?,
                text,
            },
            IntentData::SetProfile { profile } => I::SetProfile {
                profile: profile.into(),
            },
            IntentData::SetContact { id, contact } => I::SetContact {
                id: confab_core::ids::ContactId::new(id)?,
                contact: contact.map(TryInto::try_into).transpose()?,
            },
        })
    }
}

/// An intent in the outbox (not yet accepted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Tsify)]
pub struct OutboxItem {
    pub id: u64,
    pub status: IntentStatus,
    pub intent: IntentData,
}

/// What an intent method returns: the intent's id (follow it with `status(id)` or the
/// `intent` event) and what it made or touched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct IntentResult {
    /// The intent's id.
    pub id: u64,
    /// Every intent the call queued (two for `respond`).
    pub ids: Vec<u64>,
    /// The conversation (new for `createGroup`, found for `openDirect`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub conv: Option<String>,
    /// The message written (send, forward, schedule, propose, respond).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub message: Option<String>,
    /// The message's time bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub bucket: Option<i64>,
}

// ---------- convenience inputs ----------

/// A member to add: an account id (role `member`) or an account with a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(untagged)]
pub enum MemberInput {
    Account(String),
    WithRole {
        account: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        role: Option<Role>,
    },
}

impl MemberInput {
    pub fn into_core(self) -> Result<(AccountId, cv::Role), ModelError> {
        match self {
            MemberInput::Account(a) => Ok((AccountId::new(a)?, cv::Role::Member)),
            MemberInput::WithRole { account, role } => Ok((
                AccountId::new(account)?,
                role.map_or(cv::Role::Member, Into::into),
            )),
        }
    }
}

/// `createGroup` / `createChannel` options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase", default)]
pub struct CreateConversationInput {
    /// The conversation id; a fresh one when absent.
    #[tsify(optional)]
    pub id: Option<String>,
    #[tsify(optional)]
    pub title: Option<String>,
    /// Members besides you (you are the owner).
    #[tsify(optional)]
    pub members: Option<Vec<MemberInput>>,
    #[tsify(optional)]
    pub settings: Option<SettingsPatch>,
}

/// `createThread` options: a sub-room of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct CreateThreadInput {
    /// The parent conversation.
    pub parent: String,
    /// The parent message the thread hangs on.
    pub message: String,
    #[serde(default)]
    #[tsify(optional)]
    pub id: Option<String>,
    #[serde(default)]
    #[tsify(optional)]
    pub title: Option<String>,
    #[serde(default)]
    #[tsify(optional)]
    pub members: Option<Vec<MemberInput>>,
    #[serde(default)]
    #[tsify(optional)]
    pub settings: Option<SettingsPatch>,
}

/// `openSupport`: the support thread of `client` about `resource`, run by `owner`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
pub struct SupportInput {
    pub resource: String,
    pub client: String,
    pub owner: String,
}

/// An attachment reference (never the bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
pub struct Attachment {
    pub id: String,
    pub kind: AttachmentKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub mime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub size: Option<u64>,
    pub url: String,
}

/// A message to send: `send(conv, "text")` or `send(conv, { body, ... })`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase", default)]
pub struct MessageInput {
    /// The message id; a fresh one when absent.
    #[tsify(optional)]
    pub id: Option<String>,
    /// Default `text`.
    #[tsify(optional)]
    pub kind: Option<MessageKind>,
    #[tsify(optional)]
    pub body: Option<String>,
    /// Any JSON value (or JSON text).
    #[tsify(optional, type = "unknown")]
    pub payload: Option<serde_json::Value>,
    #[tsify(optional)]
    pub caption: Option<String>,
    #[tsify(optional)]
    pub attachments: Option<Vec<Attachment>>,
    /// Account ids.
    #[tsify(optional)]
    pub mentions: Option<Vec<String>>,
    #[tsify(optional)]
    pub reply_to: Option<String>,
    #[tsify(optional)]
    pub forwarded_from: Option<ForwardedFrom>,
    /// Default: now.
    #[tsify(optional)]
    pub created_at: Option<i64>,
    /// Post later: the time to show it at.
    #[tsify(optional)]
    pub scheduled_at: Option<i64>,
}

fn json_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl MessageInput {
    /// The engine's message; `id` and `created_at` must be filled in.
    pub fn into_core(
        self,
        author: &AccountId,
        id: String,
        created_at: i64,
    ) -> Result<cm::NewMessage, ModelError> {
        Ok(cm::NewMessage {
            id: MessageId::new(id)?,
            author: author.clone(),
            kind: self.kind.map_or(cm::MessageKind::Text, Into::into),
            body: self.body.unwrap_or_default(),
            payload: self.payload.as_ref().map(json_text),
            caption: self.caption,
            attachments: self
                .attachments
                .map(|a| serde_json::to_string(&a).unwrap_or_default()),
            mentions: self
                .mentions
                .map(|m| {
                    ids(AccountId::new, m).map(|m| serde_json::to_string(&m).unwrap_or_default())
                })
                .transpose()?,
            reply_to: opt(MessageId::new, self.reply_to)?,
            forwarded_from: self.forwarded_from.map(TryInto::try_into).transpose()?,
            created_at,
            scheduled_at: self.scheduled_at,
        })
    }
}

/// A proposal (seed 002 `proposal` payload). Times are milliseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct ProposalInput {
    pub proposal_type: ProposalType,
    pub time_start: i64,
    pub time_end: i64,
    /// IANA zone, e.g. `America/Mexico_City`.
    pub timezone: String,
    #[serde(default)]
    #[tsify(optional)]
    pub meeting_type: Option<MeetingType>,
    #[serde(default)]
    #[tsify(optional)]
    pub location: Option<String>,
    #[serde(default)]
    #[tsify(optional)]
    pub from_resource_address: Option<bool>,
    #[serde(default)]
    #[tsify(optional)]
    pub expires_at: Option<i64>,
    pub created_by_role: CreatedByRole,
}

impl ProposalInput {
    /// The seed's JSON text, validated as a new proposal.
    pub fn to_payload(&self) -> Result<String, ModelError> {
        let payload = cp::ProposalPayload {
            proposal_type: self.proposal_type.into(),
            time_start: self.time_start,
            time_end: self.time_end,
            timezone: self.timezone.clone(),
            meeting_type: self.meeting_type.map(Into::into),
            location: self.location.clone(),
            from_resource_address: self.from_resource_address,
            status: cp::ProposalStatus::Pending,
            expires_at: self.expires_at,
            created_by_role: self.created_by_role.into(),
        };
        payload.validate_new()?;
        Ok(payload.to_json())
    }
}

/// A time a client offers instead (with `request_change`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct SlotInput {
    pub start: i64,
    pub end: i64,
    pub timezone: String,
}

/// The answer to a proposal (seed 002 `proposal_response` payload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct ResponseInput {
    pub response: ProposalAnswer,
    #[serde(default)]
    #[tsify(optional)]
    pub comment: Option<String>,
    #[serde(default)]
    #[tsify(optional)]
    pub suggested_slots: Option<Vec<SlotInput>>,
    /// Text shown with the response; default empty.
    #[serde(default)]
    #[tsify(optional)]
    pub body: Option<String>,
}

impl ResponseInput {
    /// The seed's JSON text, validated.
    pub fn to_payload(&self) -> Result<String, ModelError> {
        let payload = cp::ProposalResponsePayload {
            response: self.response.into(),
            comment: self.comment.clone(),
            suggested_slots: self.suggested_slots.as_ref().map(|slots| {
                slots
                    .iter()
                    .map(|s| cp::SuggestedSlot {
                        start_date_time: s.start,
                        end_date_time: s.end,
                        timezone: s.timezone.clone(),
                    })
                    .collect()
            }),
        };
        payload.validate()?;
        Ok(payload.to_json())
    }
}

/// `timeline(conv, options)` and `openConversation(conv, options)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase", default)]
pub struct TimelineOptions {
    /// Only the newest `limit` messages (for `openConversation`: load stored buckets until at
    /// least this many messages are there; default 50).
    #[tsify(optional)]
    pub limit: Option<usize>,
}

/// `removeMember` options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(default)]
pub struct RemoveOptions {
    /// Ban: the account may not come back.
    #[tsify(optional)]
    pub ban: Option<bool>,
}

// ---------- events ----------

/// The names `on(name, callback)` accepts; `"*"` receives every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "snake_case")]
pub enum EventName {
    Online,
    Offline,
    Reconnecting,
    Intent,
    Doc,
    Conversation,
    Timeline,
    Conversations,
    Profile,
    Typing,
    Revoked,
    Error,
    #[serde(rename = "*")]
    All,
}

/// What a subscription callback receives; `type` is the event's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientEvent {
    /// The server welcomed the client: sync runs.
    Online,
    /// The connection is gone; intents keep working and wait in the outbox.
    #[serde(rename_all = "camelCase")]
    Offline { will_retry: bool },
    /// The next connection attempt is scheduled.
    #[serde(rename_all = "camelCase")]
    Reconnecting { attempt: u32, delay_ms: u32 },
    /// An intent changed state (accepted, or rejected with the server's code and reason).
    Intent { id: u64, status: IntentStatus },
    /// A document changed (any kind).
    Doc { doc: String },
    /// A conversation's info, settings, members, pins, reads or lifecycle changed.
    Conversation { conv: String },
    /// A conversation's messages changed.
    Timeline { conv: String },
    /// The conversation list may have changed.
    Conversations,
    /// An account's profile changed.
    Profile { account: String },
    /// Who types in `conv` changed.
    Typing { conv: String, accounts: Vec<String> },
    /// The account lost read access to a document.
    Revoked {
        doc: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        conv: Option<String>,
        reason: String,
    },
    /// Something failed in the background (storage, the server, the token provider).
    Error { code: String, message: String },
}

impl ClientEvent {
    pub fn name(&self) -> EventName {
        match self {
            ClientEvent::Online => EventName::Online,
            ClientEvent::Offline { .. } => EventName::Offline,
            ClientEvent::Reconnecting { .. } => EventName::Reconnecting,
            ClientEvent::Intent { .. } => EventName::Intent,
            ClientEvent::Doc { .. } => EventName::Doc,
            ClientEvent::Conversation { .. } => EventName::Conversation,
            ClientEvent::Timeline { .. } => EventName::Timeline,
            ClientEvent::Conversations => EventName::Conversations,
            ClientEvent::Profile { .. } => EventName::Profile,
            ClientEvent::Typing { .. } => EventName::Typing,
            ClientEvent::Revoked { .. } => EventName::Revoked,
            ClientEvent::Error { .. } => EventName::Error,
        }
    }
}

// ---------- options ----------

/// Reconnect backoff: exponential from `minDelayMs`, capped at `maxDelayMs`, with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase", default)]
pub struct ReconnectOptions {
    #[tsify(optional)]
    pub min_delay_ms: u32,
    #[tsify(optional)]
    pub max_delay_ms: u32,
}

impl Default for ReconnectOptions {
    fn default() -> Self {
        ReconnectOptions {
            min_delay_ms: 500,
            max_delay_ms: 30_000,
        }
    }
}

/// `new ConfabClient(options)`.
#[derive(Debug, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct ClientOptions {
    /// The server's WebSocket URL, e.g. `wss://chat.example.com/ws`.
    pub url: String,
    /// Returns a fresh token (JWT) for each connection attempt.
    #[serde(with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "() => Promise<string> | string")]
    pub token_provider: js_sys::Function,
    /// `"indexeddb"` (default), `"memory"`, or an adapter object.
    #[serde(default = "undefined", with = "serde_wasm_bindgen::preserve")]
    #[tsify(optional, type = "\"indexeddb\" | \"memory\" | StorageAdapter")]
    pub storage: wasm_bindgen::JsValue,
    pub tenant: String,
    pub account: String,
    /// Free text the server logs for this device; default `web-<random>` kept in the store.
    #[serde(default)]
    #[tsify(optional)]
    pub device_id: Option<String>,
    /// IndexedDB database name; default `confab/<tenant>/<account>`.
    #[serde(default)]
    #[tsify(optional)]
    pub db_name: Option<String>,
    #[serde(default)]
    #[tsify(optional)]
    pub reconnect: Option<ReconnectOptions>,
    /// Keep-alive ping interval; a connection silent for 2.5 intervals is dropped. Default 20000.
    #[serde(default)]
    #[tsify(optional)]
    pub ping_interval_ms: Option<u32>,
}

fn undefined() -> wasm_bindgen::JsValue {
    wasm_bindgen::JsValue::UNDEFINED
}
