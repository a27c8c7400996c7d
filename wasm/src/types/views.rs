//! What the client shows: messages, timelines, the conversation list, conversations with
//! their members and settings, profiles.

use super::*;
use confab_core::ids::TenantId;

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
    /// JSON text (proposals carry their payload; `JSON.parse` it).
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
    /// Set when the message was deleted: the message is then its tombstone (id, author,
    /// kind, times, `deleted_by`), every content field empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub deleted_at: Option<i64>,
    /// Set when the message was deleted: the account that deleted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub deleted_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub scheduled_at: Option<i64>,
    /// A proposal's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub status: Option<ProposalStatus>,
    /// `{emoji: {account: time}}`.
    pub reactions: BTreeMap<String, BTreeMap<String, i64>>,
    /// Support threads: what the author is in the thread, as the
    /// server checked it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub sender_role: Option<SenderRole>,
    /// Support threads: the name the thread gave the author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub sender_name: Option<String>,
    /// Support threads: the lead the thread was about when the message was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub related_lead: Option<String>,
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
            deleted_by: m.deleted_by.map(Into::into),
            scheduled_at: m.scheduled_at,
            status: m.status.map(Into::into),
            reactions: m
                .reactions
                .into_iter()
                .map(|(emoji, by)| (emoji, by.into_iter().map(|(a, t)| (a.into(), t)).collect()))
                .collect(),
            sender_role: m.stamp.sender_role.map(Into::into),
            sender_name: m.stamp.sender_name,
            related_lead: m.stamp.related_lead.map(Into::into),
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
    pub bucket: Bucket,
    /// Written on this device and not yet accepted by the server.
    pub pending: bool,
    /// Sealed end to end (an encrypted conversation's message): `message` holds what this
    /// device read of it.
    pub is_encrypted: bool,
    /// A sealed message this device cannot read, and why in words: `message` has no content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub undecryptable: Option<String>,
    /// The same as a case (docs/E2EE.md, "Why a message is unreadable"): `before_join`,
    /// `outside_window`, `sender_mismatch`, `damaged`, `read_once`, `not_member` never open
    /// here; `waiting_to_join`, `waiting_for_keys`, `waiting_for_earlier`,
    /// `waiting_for_connection` are on their way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub unreadable: Option<String>,
    /// Whether `unreadable` is for good (`false`: it waits for what `unreadable` names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub unreadable_for_good: Option<bool>,
}

impl From<cc::TimelineItem> for TimelineItem {
    fn from(item: cc::TimelineItem) -> Self {
        TimelineItem {
            is_encrypted: item.message.sealed.is_some(),
            message: item.message.into(),
            seq: item.seq,
            bucket: item.bucket,
            pending: item.pending,
            undecryptable: item.undecryptable,
            unreadable: item.unreadable.map(|u| {
                serde_json::to_value(u)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            }),
            unreadable_for_good: item.unreadable.map(|u| u.is_permanent()),
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
    /// The last message's author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub last_sender: Option<String>,
    /// The name the conversation gives the last message's author now: a support thread's
    /// client or owner name, else the author's nickname in it (absent where it gives none:
    /// show their profile's display name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub last_sender_name: Option<String>,
    pub last_activity: i64,
    /// Muted now: while `mutedUntil` is in the future, or `muted` is set without one.
    pub muted: bool,
    /// Milliseconds since the epoch (server time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub muted_until: Option<i64>,
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
            last_sender: s.last_sender.map(Into::into),
            last_sender_name: s.last_sender_name,
            last_activity: s.last_activity,
            muted: s.muted,
            muted_until: s.muted_until,
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
    /// `code` for programs (docs/PROTOCOL.md, docs/POLICY.md), `reason` a sentence for
    /// people with names and titles ("You were removed from Weekend plans"), `detail` the
    /// technical text (the server's or the policy's own words, with ids).
    Rejected {
        code: String,
        reason: String,
        detail: String,
    },
}

impl From<cc::IntentStatus> for IntentStatus {
    fn from(s: cc::IntentStatus) -> Self {
        match s {
            cc::IntentStatus::Pending => IntentStatus::Pending,
            cc::IntentStatus::Sent => IntentStatus::Sent,
            cc::IntentStatus::Retrying => IntentStatus::Retrying,
            cc::IntentStatus::Accepted => IntentStatus::Accepted,
            cc::IntentStatus::Rejected {
                code,
                reason,
                detail,
            } => IntentStatus::Rejected {
                code,
                reason,
                detail,
            },
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
    /// Direct conversations: this member blocks the other (`block()`).
    #[serde(default)]
    pub blocked: bool,
    /// A temporary role: `role` holds until this server time (ms), then `roleAfter`.
    /// Absent once it lapsed (`role` is then the role it lapsed to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub role_until: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub role_after: Option<Role>,
    /// When temporary overrides end (server time, ms); `overrides` holds only live ones.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[tsify(optional, type = "Partial<Record<Permission, number>>")]
    pub overrides_until: BTreeMap<Permission, i64>,
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
            blocked: m.blocked,
            role_until: m.role_until,
            role_after: m.role_after.map(Into::into),
            overrides_until: m
                .overrides_until
                .into_iter()
                .map(|(p, t)| (p.into(), t))
                .collect(),
        }
    }
}

/// A member's read marker and when it last moved (server time, ms): `readTimes()`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
pub struct ReadTime {
    pub account: String,
    pub message: String,
    /// Absent for a marker the server stored before it kept read times, until it moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub at: Option<i64>,
}

impl From<confab_core::protocol::ReadTime> for ReadTime {
    fn from(r: confab_core::protocol::ReadTime) -> Self {
        ReadTime {
            account: r.account,
            message: r.message,
            at: r.at,
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
    /// Locked: nothing new is posted until an admin unlocks.
    #[serde(default)]
    pub locked: bool,
    /// Who may add members and answer join requests.
    #[serde(default = "all_members")]
    pub add_members_policy: EditPolicy,
    /// Who finds the conversation through discovery.
    #[serde(default = "private")]
    pub scope: Scope,
}

fn all_members() -> EditPolicy {
    EditPolicy::AllMembers
}

fn private() -> Scope {
    Scope::Private
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
            locked: s.locked,
            add_members_policy: s.add_members_policy.into(),
            scope: s.scope.into(),
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
            locked: s.locked,
            add_members_policy: s.add_members_policy.into(),
            scope: s.scope.into(),
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
    /// Named as the REST API names it (`message_retention_days`).
    #[tsify(optional)]
    pub message_retention_days: Option<u32>,
    #[tsify(optional)]
    pub allow_reactions: Option<bool>,
    #[tsify(optional)]
    pub allow_stickers: Option<bool>,
    #[tsify(optional)]
    pub allow_attachments: Option<bool>,
    #[tsify(optional)]
    pub add_members_policy: Option<EditPolicy>,
    #[tsify(optional)]
    pub scope: Option<Scope>,
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
        if self.message_retention_days.is_some() {
            s.retention_days = self.message_retention_days;
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
        if let Some(v) = self.add_members_policy {
            s.add_members_policy = v.into();
        }
        if let Some(v) = self.scope {
            s.scope = v.into();
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
    /// Support threads: the client's and the owner's names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub client_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub owner_name: Option<String>,
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
    /// Support threads: how the lead ended at the last closure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub outcome: Option<LeadOutcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub reason: Option<String>,
    /// Support threads: the lead the thread is about now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub lead: Option<String>,
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
    /// The last message delivered to each account's device (`markDelivered`).
    pub delivered: BTreeMap<String, String>,
    pub lifecycle: LifecycleState,
    pub encryption: Encryption,
}

impl Conversation {
    /// `None` while the conversation's creation has not arrived.
    pub fn from_core(c: cv::Conversation, tenant: &TenantId) -> Option<Self> {
        let encryption = Encryption::of(&c, tenant);
        let meta = c.meta?;
        Some(Conversation {
            encryption,
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
                client_name: c.info.client_name,
                owner_name: c.info.owner_name,
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
            delivered: c
                .delivered
                .into_iter()
                .map(|(a, m)| (a.into(), m.into()))
                .collect(),
            lifecycle: LifecycleState {
                state: c.lifecycle.state.into(),
                by: c.lifecycle.by.map(Into::into),
                at: c.lifecycle.at,
                outcome: c.lifecycle.outcome.map(Into::into),
                reason: c.lifecycle.reason,
                lead: c.lifecycle.lead.map(Into::into),
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
