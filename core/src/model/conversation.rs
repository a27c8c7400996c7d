//! Conversations, members, roles, permissions and settings (docs/SCHEMA.md, "`conv`";
//! who may change them: docs/POLICY.md).

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::ids::{AccountId, ConvId, MessageId, ResourceId};
use crate::limits::SUBROOM_DEPTH_MAX;

use super::str_enum::str_enum;

str_enum!(
    /// What a conversation is: direct, group, channel, thread, system, or a client's support
    /// thread about a resource.
    ConvKind, "kind" {
        Direct = "direct",
        Group = "group",
        Channel = "channel",
        Thread = "thread",
        System = "system",
        Support = "support",
    }
);

str_enum!(
    /// A member's base role; `rank` orders them.
    Role, "role" {
        Owner = "owner",
        Admin = "admin",
        Moderator = "moderator",
        Member = "member",
        Guest = "guest",
        Readonly = "readonly",
        Subscriber = "subscriber",
    }
);

impl Role {
    /// Owner > admin > moderator > member > guest > readonly = subscriber.
    pub fn rank(self) -> u8 {
        match self {
            Role::Owner => 6,
            Role::Admin => 5,
            Role::Moderator => 4,
            Role::Member => 3,
            Role::Guest => 2,
            Role::Readonly | Role::Subscriber => 1,
        }
    }

    /// Admins and above manage a conversation (send policy "admins only", settings).
    pub fn is_admin(self) -> bool {
        self.rank() >= Role::Admin.rank()
    }

    /// What the role may do when no override says otherwise.
    pub fn default_allows(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Owner | Role::Admin => true,
            Role::Moderator => !matches!(permission, ChangeInfo),
            Role::Member => matches!(permission, SendMessages | SendMedia | AddMembers),
            Role::Guest => matches!(permission, SendMessages),
            Role::Readonly | Role::Subscriber => false,
        }
    }
}

str_enum!(
    /// Granular permissions; each can be overridden per member.
    Permission, "permission" {
        SendMessages = "can_send_messages",
        SendMedia = "can_send_media",
        AddMembers = "can_add_members",
        RemoveMembers = "can_remove_members",
        ChangeInfo = "can_change_info",
        PinMessages = "can_pin_messages",
        DeleteMessages = "can_delete_messages",
    }
);

str_enum!(
    /// Participation status.
    MemberStatus, "status" {
        Active = "active",
        Left = "left",
        Removed = "removed",
        Banned = "banned",
        /// Asked to join where approval is required; not a member until approved (declined:
        /// `removed`).
        Requested = "requested",
    }
);

str_enum!(
    /// Who may send.
    SendPolicy, "send_policy" { AllMembers = "all_members", AdminsOnly = "admins_only" }
);

str_enum!(
    /// How accounts join.
    JoinPolicy, "join_policy" {
        InviteOnly = "invite_only",
        // serde's snake_case would say `link`: one spelling everywhere (REST took only `link`).
        #[serde(rename = "link_join")]
        Link = "link_join",
        Open = "open",
    }
);

str_enum!(
    /// Who edits title/description/avatar/theme, or creates sub-rooms.
    EditPolicy, "policy" { AllMembers = "all_members", AdminsOnly = "admins_only" }
);

str_enum!(
    /// Lifecycle of a conversation: archiving only files it away (it still takes messages,
    /// and a new one reopens it), closing finalizes it.
    Lifecycle, "lifecycle" {
        Active = "active",
        Archived = "archived",
        Closed = "closed",
        // Soft delete by the owner (the lifecycle's `at` is when); final.
        Deleted = "deleted",
    }
);

str_enum!(
    /// Per-conversation notification level.
    NotificationLevel, "notifications" { All = "all", Mentions = "mentions", None = "none" }
);

/// Conversation settings (docs/SCHEMA.md, "Enumerated values").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Settings {
    pub send_policy: SendPolicy,
    pub join_policy: JoinPolicy,
    pub join_approval_required: bool,
    pub info_edit_policy: EditPolicy,
    pub subroom_policy: EditPolicy,
    pub max_subroom_depth: u32,
    pub slow_mode_seconds: u32,
    /// As written; read it with [`Settings::retention`] (`None` and 0 keep forever).
    pub retention_days: Option<u32>,
    pub allow_reactions: bool,
    pub allow_stickers: bool,
    pub allow_attachments: bool,
    /// Locked: no new messages, edits, reactions or answers until unlocked.
    pub locked: bool,
    /// Who may add members and approve requests.
    pub add_members_policy: EditPolicy,
    /// Who can find the conversation through discovery.
    pub scope: super::joining::Scope,
}

impl Settings {
    /// The retention in days, `None` to keep messages forever: absent, or 0 (integrations
    /// write `message_retention_days: 0` for a group that keeps everything; 0 days would
    /// otherwise delete every message as it is written).
    pub fn retention(&self) -> Option<u32> {
        self.retention_days.filter(|days| *days > 0)
    }

    /// The defaults (docs/SCHEMA.md, "Enumerated values"); channels only let admins post.
    pub fn defaults_for(kind: ConvKind) -> Self {
        Settings {
            send_policy: if kind == ConvKind::Channel {
                SendPolicy::AdminsOnly
            } else {
                SendPolicy::AllMembers
            },
            join_policy: JoinPolicy::InviteOnly,
            join_approval_required: false,
            info_edit_policy: EditPolicy::AdminsOnly,
            subroom_policy: EditPolicy::AllMembers,
            max_subroom_depth: SUBROOM_DEPTH_MAX,
            slow_mode_seconds: 0,
            retention_days: None,
            allow_reactions: true,
            allow_stickers: true,
            allow_attachments: true,
            locked: false,
            add_members_policy: EditPolicy::AllMembers,
            scope: super::joining::Scope::Private,
        }
    }
}

/// A member of a conversation (docs/SCHEMA.md, "Member entries").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Member {
    pub account: AccountId,
    pub role: Role,
    pub status: MemberStatus,
    pub joined_at: Option<i64>,
    pub invited_by: Option<AccountId>,
    pub left_at: Option<i64>,
    pub removed_at: Option<i64>,
    pub nickname: Option<String>,
    pub color: Option<String>,
    /// Per-member overrides; they replace the role default for that permission.
    pub overrides: BTreeMap<Permission, bool>,
    /// Blocked, direct conversations only: this member blocks the other, and
    /// neither posts, edits or reacts there until it is cleared.
    pub blocked: bool,
    /// A temporary role: `role` holds until this server time (ms), `role_after` from then
    /// on. Both or neither; read the role through [`Member::at`].
    #[serde(default)]
    pub role_until: Option<i64>,
    #[serde(default)]
    pub role_after: Option<Role>,
    /// Temporary overrides: the override of a permission named here is gone from this
    /// server time (ms) on, and the role default applies again.
    #[serde(default)]
    pub overrides_until: BTreeMap<Permission, i64>,
}

impl Member {
    pub fn new(account: AccountId, role: Role) -> Self {
        Member {
            account,
            role,
            status: MemberStatus::Active,
            joined_at: None,
            invited_by: None,
            left_at: None,
            removed_at: None,
            nickname: None,
            color: None,
            overrides: BTreeMap::new(),
            blocked: false,
            role_until: None,
            role_after: None,
            overrides_until: BTreeMap::new(),
        }
    }

    /// The entry as it stands at server time `now`: a role whose `role_until` has come is
    /// replaced by its `role_after`, and overrides whose time has come are gone. Nothing is
    /// written when a time comes: every reader judges the entry by the time it reads it
    /// (docs/POLICY.md, "Temporary roles and overrides"). Borrowed when nothing lapsed.
    pub fn at(&self, now: i64) -> Cow<'_, Member> {
        let role_lapsed = self.role_until.is_some_and(|t| t <= now);
        let overrides_lapsed = self.overrides_until.values().any(|t| *t <= now);
        if !role_lapsed && !overrides_lapsed {
            return Cow::Borrowed(self);
        }
        let mut m = self.clone();
        if role_lapsed {
            m.role = m.role_after.take().unwrap_or(m.role);
            m.role_until = None;
        }
        let lapsed: Vec<Permission> = m
            .overrides_until
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(p, _)| *p)
            .collect();
        for p in lapsed {
            m.overrides.remove(&p);
            m.overrides_until.remove(&p);
        }
        Cow::Owned(m)
    }

    /// The next time after `now` at which something of this entry lapses, if any: what a
    /// view computed from the entry is good until.
    pub fn next_lapse(&self, now: i64) -> Option<i64> {
        self.role_until
            .into_iter()
            .chain(self.overrides_until.values().copied())
            .filter(|t| *t > now)
            .min()
    }

    /// This entry given `role` at server time `now`: for good (`until` `None`), or until
    /// `until`, after which it goes back to the role it would have had without this grant
    /// (the end of a temporary role it holds now, else its role now). Extending "moderator
    /// until Friday" to Monday still goes back to member.
    pub fn granted(&self, role: Role, until: Option<i64>, now: i64) -> Member {
        let current = self.at(now);
        let back = current.role_after.unwrap_or(current.role);
        let mut m = self.clone();
        m.role = role;
        m.role_until = until;
        m.role_after = until.map(|_| back);
        m
    }

    /// Whether the entry holds any expiry (lapsed or not).
    pub fn has_expiry(&self) -> bool {
        self.role_until.is_some() || self.role_after.is_some() || !self.overrides_until.is_empty()
    }

    pub fn is_active(&self) -> bool {
        self.status == MemberStatus::Active
    }

    /// The role default, replaced by an override where one is set. Settings narrow this
    /// further; see `policy`.
    pub fn has(&self, permission: Permission) -> bool {
        self.overrides
            .get(&permission)
            .copied()
            .unwrap_or_else(|| self.role.default_allows(permission))
    }
}

/// Where a thread hangs: a message of a parent conversation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ThreadLink {
    pub parent: ConvId,
    pub message: MessageId,
    /// 1 for a thread of a top-level conversation.
    pub depth: u32,
}

/// What a resource support thread is bound to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResourceLink {
    pub resource: ResourceId,
    pub client: AccountId,
    pub owner: AccountId,
}

/// A pinned message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pin {
    pub message: MessageId,
    pub by: AccountId,
    pub at: i64,
}

/// Title, description, avatar and theme: the editable face of a conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Info {
    pub title: Option<String>,
    pub description: Option<String>,
    pub avatar: Option<String>,
    pub theme_color: Option<String>,
    pub theme_background: Option<String>,
    /// Support threads: the names the thread gives
    /// its client and owner, which their messages' `sender_name` must carry.
    #[serde(default)]
    pub client_name: Option<String>,
    #[serde(default)]
    pub owner_name: Option<String>,
}

/// Set once when the conversation is created, never changed after.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Meta {
    pub kind: ConvKind,
    pub created_by: Option<AccountId>,
    pub created_at: i64,
    /// Width of a message bucket in milliseconds (docs/SCHEMA.md, "`msgs`").
    pub bucket_ms: i64,
    pub thread: Option<ThreadLink>,
    pub resource: Option<ResourceLink>,
    /// End-to-end encrypted (MLS): chosen in the creation change, never turned off.
    #[serde(default)]
    pub encrypted: bool,
}

/// Default message bucket width: one UTC day.
pub const DEFAULT_BUCKET_MS: i64 = 24 * 3600 * 1000;
/// Narrowest and widest bucket a conversation may choose.
pub const BUCKET_MS_RANGE: (i64, i64) = (60 * 1000, 366 * 24 * 3600 * 1000);

/// Lifecycle state and who moved it last.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LifecycleState {
    pub state: Lifecycle,
    pub by: Option<AccountId>,
    pub at: Option<i64>,
    /// Support threads: how the lead ended at the last closure (won or lost). It
    /// describes the thread while it is closed; a reopen leaves it until the next closure.
    #[serde(default)]
    pub outcome: Option<crate::model::support::LeadOutcome>,
    #[serde(default)]
    pub reason: Option<String>,
    /// Support threads: the lead the thread is about now.
    #[serde(default)]
    pub lead: Option<crate::ids::LeadId>,
}

/// A conversation read out of its document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Conversation {
    pub id: ConvId,
    /// `None` until the creation change is in.
    pub meta: Option<Meta>,
    pub info: Info,
    pub settings: Settings,
    pub members: BTreeMap<AccountId, Member>,
    pub pins: BTreeMap<MessageId, Pin>,
    /// Last message each account has read.
    pub reads: BTreeMap<AccountId, MessageId>,
    /// Last message delivered to each account's device (`members/<account>/delivered`).
    #[serde(default)]
    pub delivered: BTreeMap<AccountId, MessageId>,
    pub lifecycle: LifecycleState,
    /// The MLS group of an encrypted conversation, once a member's device made it.
    #[serde(default)]
    pub mls: Option<MlsState>,
}

/// Where an encrypted conversation's MLS group stands (`conv/mls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MlsState {
    /// The group's epoch: 0 when made, one more per accepted commit. Clients show it as the
    /// key version.
    pub epoch: u64,
    /// When the group was made or last committed to (ms since the epoch).
    pub at: i64,
}

impl Conversation {
    /// A conversation whose creation change has not arrived.
    pub fn uncreated(id: ConvId) -> Self {
        Conversation {
            id,
            meta: None,
            info: Info::default(),
            settings: Settings::defaults_for(ConvKind::Group),
            members: BTreeMap::new(),
            pins: BTreeMap::new(),
            reads: BTreeMap::new(),
            delivered: BTreeMap::new(),
            lifecycle: LifecycleState {
                state: Lifecycle::Active,
                by: None,
                at: None,
                outcome: None,
                reason: None,
                lead: None,
            },
            mls: None,
        }
    }

    /// Whether the conversation is end-to-end encrypted.
    pub fn encrypted(&self) -> bool {
        self.meta.as_ref().is_some_and(|m| m.encrypted)
    }

    pub fn kind(&self) -> Option<ConvKind> {
        self.meta.as_ref().map(|m| m.kind)
    }

    pub fn member(&self, account: &AccountId) -> Option<&Member> {
        self.members.get(account)
    }

    /// The name this conversation gives `account` now, as lists show a message's sender: in
    /// a support thread its client's or owner's name (the thread's `info`, which the
    /// messages' `sender_name` stamp carries), otherwise the member's nickname here. `None`
    /// where it gives none (the caller may fall back to the profile's display name).
    pub fn name_of(&self, account: &AccountId) -> Option<&str> {
        let link = self.meta.as_ref().and_then(|m| m.resource.as_ref());
        match link {
            Some(r) if r.client == *account => self.info.client_name.as_deref(),
            Some(r) if r.owner == *account => self.info.owner_name.as_deref(),
            _ => self.member(account).and_then(|m| m.nickname.as_deref()),
        }
    }

    /// The conversation as it stands at server time `now` (every entry through
    /// [`Member::at`]), for views; only entries that lapsed are copied.
    pub fn at(mut self, now: i64) -> Conversation {
        for m in self.members.values_mut() {
            if let Cow::Owned(lapsed) = m.at(now) {
                *m = lapsed;
            }
        }
        self
    }

    /// The next time after `now` at which an entry's role or override lapses: a view of
    /// the conversation at `now` holds until then.
    pub fn next_lapse(&self, now: i64) -> Option<i64> {
        self.members
            .values()
            .filter_map(|m| m.next_lapse(now))
            .min()
    }

    pub fn active_member(&self, account: &AccountId) -> Option<&Member> {
        self.members.get(account).filter(|m| m.is_active())
    }

    pub fn active_count(&self) -> usize {
        self.members.values().filter(|m| m.is_active()).count()
    }

    /// The bucket period of a message created at `created_at` (ms since the epoch); which
    /// part of the period it goes to is the writer's choice (docs/FEATURES.md, "Bounded
    /// buckets").
    pub fn period_of(&self, created_at: i64) -> i64 {
        let width = self
            .meta
            .as_ref()
            .map_or(DEFAULT_BUCKET_MS, |m| m.bucket_ms);
        created_at.div_euclid(width.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_rank_and_defaults() {
        assert!(Role::Owner.rank() > Role::Admin.rank());
        assert!(Role::Admin.rank() > Role::Moderator.rank());
        assert!(Role::Member.rank() > Role::Guest.rank());
        assert!(Role::Member.default_allows(Permission::SendMessages));
        assert!(!Role::Member.default_allows(Permission::RemoveMembers));
        assert!(!Role::Subscriber.default_allows(Permission::SendMessages));
        assert!(!Role::Moderator.default_allows(Permission::ChangeInfo));
    }

    #[test]
    fn overrides_replace_role_defaults() {
        let mut m = Member::new(AccountId::new("a").expect("id"), Role::Member);
        assert!(m.has(Permission::SendMessages));
        m.overrides.insert(Permission::SendMessages, false);
        assert!(!m.has(Permission::SendMessages));
        m.overrides.insert(Permission::PinMessages, true);
        assert!(m.has(Permission::PinMessages));
    }

    #[test]
    fn a_temporary_role_and_override_lapse_exactly_at_their_time() {
        let mut m = Member::new(AccountId::new("a").expect("id"), Role::Moderator);
        m.role_until = Some(1_000);
        m.role_after = Some(Role::Guest);
        m.overrides.insert(Permission::PinMessages, false);
        m.overrides_until.insert(Permission::PinMessages, 500);
        assert_eq!(m.at(499).role, Role::Moderator);
        assert!(!m.at(499).has(Permission::PinMessages));
        assert!(matches!(m.at(499), Cow::Borrowed(_)));
        assert!(
            m.at(500).has(Permission::PinMessages),
            "the override lapsed"
        );
        assert_eq!(m.at(999).role, Role::Moderator);
        assert_eq!(m.at(1_000).role, Role::Guest);
        assert_eq!(m.at(1_000).role_until, None);
        assert!(!m.at(1_000).has(Permission::PinMessages));
        assert_eq!(m.next_lapse(0), Some(500));
        assert_eq!(m.next_lapse(500), Some(1_000));
        assert_eq!(m.next_lapse(1_000), None);
    }

    #[test]
    fn enums_parse_their_own_spelling_only() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Ok(*r));
        }
        assert_eq!(Role::parse("god").unwrap_err().code(), "unknown_value");
        assert_eq!(JoinPolicy::parse("link_join"), Ok(JoinPolicy::Link));
    }

    #[test]
    fn buckets_floor_negative_times() {
        let c = Conversation::uncreated(ConvId::new("c").expect("id"));
        assert_eq!(c.period_of(0), 0);
        assert_eq!(c.period_of(DEFAULT_BUCKET_MS - 1), 0);
        assert_eq!(c.period_of(-1), -1);
    }
}
