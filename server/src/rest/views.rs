//! JSON shapes of the REST answers (the conversation body integrations expect). Times are
//! RFC 3339 strings. A view never depends on who asks: both sides of a direct conversation
//! see the same body.

use std::collections::BTreeMap;

use confab_core::model::conversation::{ConvKind, Conversation, Lifecycle, Member, Settings};
use confab_core::model::message::Message;
use confab_core::model::time::format_rfc3339;
use serde::Serialize;

use crate::store::{ConvListItem, MessageRow};

fn time(ms: i64) -> String {
    format_rfc3339(ms)
}

pub(super) fn opt_time(ms: Option<i64>) -> Option<String> {
    ms.map(format_rfc3339)
}

/// A conversation.
#[derive(Debug, Clone, Serialize)]
pub struct ConversationView {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: String,
    pub description: String,
    pub avatar_url: String,
    pub created_by: Option<String>,
    pub is_archived: bool,
    /// The `locked` setting.
    pub is_locked: bool,
    pub lifecycle: &'static str,
    /// When the owner deleted it (lifecycle `deleted`).
    pub deleted_at: Option<String>,
    /// `null` for direct conversations and support threads: their deterministic creation
    /// change carries no time.
    pub created_at: Option<String>,
    pub settings: SettingsView,
    pub members: Vec<MemberView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceView>,
    pub encryption: EncryptionView,
}

/// Whether and how the conversation is end-to-end encrypted (docs/E2EE.md).
#[derive(Debug, Clone, Serialize)]
pub struct EncryptionView {
    pub enabled: bool,
    /// `mls` where enabled.
    pub protocol: Option<&'static str>,
    /// The MLS group id: the conversation document's id.
    pub group_id: Option<String>,
    /// The group's epoch; `null` until a member's device made the group.
    pub key_version: Option<u64>,
    /// When the group was made or last committed to.
    pub last_key_rotation: Option<String>,
}

impl EncryptionView {
    fn of(conv: &Conversation, tenant: &confab_core::ids::TenantId) -> Self {
        let enabled = conv.encrypted();
        EncryptionView {
            enabled,
            protocol: enabled.then_some("mls"),
            group_id: enabled.then(|| confab_core::ids::DocId::conv(tenant, &conv.id).to_string()),
            key_version: conv.mls.map(|m| m.epoch),
            last_key_rotation: conv.mls.map(|m| time(m.at)),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SettingsView {
    pub send_policy: &'static str,
    pub join_policy: &'static str,
    pub info_edit_policy: &'static str,
    pub subroom_policy: &'static str,
    pub max_subroom_depth: u32,
    pub message_retention_days: Option<u32>,
    pub allow_reactions: bool,
    pub allow_stickers: bool,
    pub allow_attachments: bool,
    pub slow_mode_seconds: u32,
    pub join_approval_required: bool,
    pub locked: bool,
    pub add_members_policy: &'static str,
    pub scope: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemberView {
    pub user_id: String,
    /// The role now: a temporary role whose time came shows the role it lapsed to.
    pub base_role: &'static str,
    /// When the role lapses (a temporary role), and to what; `null` for a lasting one.
    pub role_expires_at: Option<String>,
    pub role_after: Option<&'static str>,
    /// The member's permission overrides now, by permission (a lapsed one is gone).
    pub permissions: BTreeMap<&'static str, OverrideView>,
    pub display_name: String,
    pub status: &'static str,
    pub joined_at: Option<String>,
    pub left_at: Option<String>,
    pub invited_by: Option<String>,
    pub is_active: bool,
    /// In a direct conversation, this member blocks the other.
    pub is_blocked: bool,
    /// The member's read marker (`reads/<account>`).
    pub last_read_message_id: Option<String>,
    /// When the stored read marker last moved (server time).
    pub last_read_at: Option<String>,
    /// The last message delivered to the member's device
    /// (`members/<account>/delivered`).
    pub delivered_message_id: Option<String>,
}

/// One permission override: it replaces the role default, until `expires_at` if set.
#[derive(Debug, Clone, Serialize)]
pub struct OverrideView {
    pub allowed: bool,
    pub expires_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ParentView {
    pub conversation: String,
    pub message: String,
    pub depth: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResourceView {
    pub resource: String,
    pub client: String,
    pub owner: String,
    /// The client's and the owner's names (the thread's `info`), if set.
    pub client_name: Option<String>,
    pub owner_name: Option<String>,
    /// The lead the thread is about now.
    pub lead: Option<String>,
    /// `closed_won | closed_lost` while the thread is closed with an outcome.
    pub outcome: Option<&'static str>,
    pub closure_reason: Option<String>,
}

impl SettingsView {
    pub fn of(s: &Settings) -> Self {
        SettingsView {
            send_policy: s.send_policy.as_str(),
            join_policy: s.join_policy.as_str(),
            info_edit_policy: s.info_edit_policy.as_str(),
            subroom_policy: s.subroom_policy.as_str(),
            max_subroom_depth: s.max_subroom_depth,
            message_retention_days: s.retention_days,
            allow_reactions: s.allow_reactions,
            allow_stickers: s.allow_stickers,
            allow_attachments: s.allow_attachments,
            slow_mode_seconds: s.slow_mode_seconds,
            join_approval_required: s.join_approval_required,
            locked: s.locked,
            add_members_policy: s.add_members_policy.as_str(),
            scope: s.scope.as_str(),
        }
    }
}

impl MemberView {
    /// `m` as it stands at server time `now` (`Member::at`).
    pub fn of(conv: &Conversation, m: &Member, now: i64) -> Self {
        let m = m.at(now);
        let marker = |map: &BTreeMap<_, confab_core::ids::MessageId>| {
            map.get(&m.account).map(ToString::to_string)
        };
        MemberView {
            last_read_message_id: marker(&conv.reads),
            last_read_at: None,
            delivered_message_id: marker(&conv.delivered),
            user_id: m.account.to_string(),
            base_role: m.role.as_str(),
            role_expires_at: opt_time(m.role_until),
            role_after: m.role_after.map(|r| r.as_str()),
            permissions: m
                .overrides
                .iter()
                .map(|(p, allowed)| {
                    let expires_at = opt_time(m.overrides_until.get(p).copied());
                    let view = OverrideView {
                        allowed: *allowed,
                        expires_at,
                    };
                    (p.as_str(), view)
                })
                .collect(),
            display_name: m.nickname.clone().unwrap_or_default(),
            status: m.status.as_str(),
            joined_at: opt_time(m.joined_at),
            left_at: opt_time(m.left_at.or(m.removed_at)),
            invited_by: m.invited_by.as_ref().map(ToString::to_string),
            is_active: m.is_active(),
            is_blocked: m.blocked,
        }
    }
}

impl ConversationView {
    /// Each member's `last_read_at`, from the projection's read times
    /// (`Projections::read_times`).
    pub fn with_read_times(mut self, times: &BTreeMap<confab_core::ids::AccountId, i64>) -> Self {
        for m in &mut self.members {
            let at = confab_core::ids::AccountId::new(m.user_id.as_str())
                .ok()
                .and_then(|a| times.get(&a).copied());
            m.last_read_at = at.map(time);
        }
        self
    }

    /// `None` for a conversation whose creation change has not arrived. Members as they
    /// stand at server time `now`.
    pub fn of(conv: &Conversation, tenant: &confab_core::ids::TenantId, now: i64) -> Option<Self> {
        let meta = conv.meta.as_ref()?;
        let deterministic = matches!(meta.kind, ConvKind::Direct | ConvKind::Support);
        Some(ConversationView {
            id: conv.id.to_string(),
            kind: meta.kind.as_str(),
            title: conv.info.title.clone().unwrap_or_default(),
            description: conv.info.description.clone().unwrap_or_default(),
            avatar_url: conv.info.avatar.clone().unwrap_or_default(),
            created_by: meta.created_by.as_ref().map(ToString::to_string),
            is_archived: conv.lifecycle.state == Lifecycle::Archived,
            is_locked: conv.settings.locked,
            lifecycle: conv.lifecycle.state.as_str(),
            deleted_at: (conv.lifecycle.state == Lifecycle::Deleted)
                .then_some(conv.lifecycle.at)
                .flatten()
                .map(time),
            created_at: if deterministic && meta.created_at == 0 {
                None
            } else {
                Some(time(meta.created_at))
            },
            settings: SettingsView::of(&conv.settings),
            members: conv
                .members
                .values()
                .map(|m| MemberView::of(conv, m, now))
                .collect(),
            parent: meta.thread.as_ref().map(|t| ParentView {
                conversation: t.parent.to_string(),
                message: t.message.to_string(),
                depth: t.depth,
            }),
            resource: meta.resource.as_ref().map(|r| {
                // The closure describes the thread while it is closed (a reopen keeps it).
                let closed = conv.lifecycle.state == Lifecycle::Closed;
                ResourceView {
                    resource: r.resource.to_string(),
                    client: r.client.to_string(),
                    owner: r.owner.to_string(),
                    client_name: conv.info.client_name.clone(),
                    owner_name: conv.info.owner_name.clone(),
                    lead: conv.lifecycle.lead.as_ref().map(ToString::to_string),
                    outcome: conv
                        .lifecycle
                        .outcome
                        .filter(|_| closed)
                        .map(|o| o.as_str()),
                    closure_reason: conv.lifecycle.reason.clone().filter(|_| closed),
                }
            }),
            encryption: EncryptionView::of(conv, tenant),
        })
    }
}

/// The last message of a conversation in the list (from the projection).
#[derive(Debug, Clone, Serialize)]
pub struct MessageSummaryView {
    pub id: String,
    pub author: String,
    pub kind: String,
    pub preview: String,
    pub created_at: String,
    pub deleted: bool,
    pub pos: i64,
    /// The name the conversation gives the author now (`Conversation::name_of`): a support
    /// thread's client or owner name, else the author's nickname in it; `None` where it
    /// gives none.
    pub sender_name: Option<String>,
    /// The conversation is end-to-end encrypted: the content is sealed on the devices and
    /// `preview` is empty (docs/E2EE.md, "Sealed messages").
    pub is_encrypted: bool,
}

impl MessageSummaryView {
    pub fn of(row: &MessageRow, sender_name: Option<String>, is_encrypted: bool) -> Self {
        MessageSummaryView {
            sender_name,
            is_encrypted,
            id: row.message.to_string(),
            author: row.author.to_string(),
            kind: row.kind.clone(),
            preview: row.preview.clone(),
            created_at: time(row.created_at),
            deleted: row.deleted,
            pos: row.pos,
        }
    }
}

/// One conversation of the caller's list.
#[derive(Debug, Clone, Serialize)]
pub struct ConversationListEntry {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub lifecycle: String,
    pub parent: Option<String>,
    pub created_at: Option<String>,
    /// The caller's role now (a lapsed temporary role shows the role it lapsed to), and
    /// when it lapses.
    pub role: String,
    pub role_expires_at: Option<String>,
    pub unread_count: i64,
    pub last_message: Option<MessageSummaryView>,
}

impl ConversationListEntry {
    /// `sender_name` and `is_encrypted`: the last message's, as `MessageSummaryView` answers
    /// them; `role`: the caller's role now and when it lapses, where the conversation was
    /// read (else the projection's role).
    pub fn of(
        item: &ConvListItem,
        sender_name: Option<String>,
        is_encrypted: bool,
        role: Option<(&'static str, Option<i64>)>,
    ) -> Self {
        let c = &item.conv;
        let deterministic =
            c.kind == ConvKind::Direct.as_str() || c.kind == ConvKind::Support.as_str();
        ConversationListEntry {
            id: c.conv.to_string(),
            kind: c.kind.clone(),
            title: c.title.clone().unwrap_or_default(),
            lifecycle: c.lifecycle.clone(),
            parent: c.parent.as_ref().map(ToString::to_string),
            created_at: if deterministic && c.created_at == 0 {
                None
            } else {
                Some(time(c.created_at))
            },
            role: role.map_or_else(|| item.role.clone(), |(r, _)| r.to_owned()),
            role_expires_at: opt_time(role.and_then(|(_, until)| until)),
            unread_count: item.unread,
            last_message: item
                .last_message
                .as_ref()
                .map(|m| MessageSummaryView::of(m, sender_name, is_encrypted)),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ConversationList {
    pub conversations: Vec<ConversationListEntry>,
}

/// A message of a page: the projection row plus the content read from its bucket.
#[derive(Debug, Clone, Serialize)]
pub struct MessageView {
    pub id: String,
    pub pos: i64,
    pub seq: u64,
    pub doc: String,
    pub author: String,
    pub kind: String,
    pub body: String,
    pub payload: Option<serde_json::Value>,
    pub caption: Option<String>,
    pub reply_to: Option<String>,
    /// The attachments, as the message holds them (a forward's: copies stored here).
    pub attachments: Vec<serde_json::Value>,
    /// `<conversation>/<message>` this message forwards.
    pub forwarded_from: Option<String>,
    pub created_at: String,
    pub edited_at: Option<String>,
    pub deleted: bool,
    /// A deleted message is its tombstone only: id, author, kind, times, these two; its
    /// content fields are empty (docs/SCHEMA.md, "Tombstones").
    pub deleted_at: Option<String>,
    pub deleted_by: Option<String>,
    /// Proposals: `pending`, `accepted`, `rejected` or `reschedule_requested`.
    pub status: Option<&'static str>,
    /// `{emoji: {account: time}}`.
    pub reactions: BTreeMap<String, BTreeMap<String, String>>,
    /// Views: the accounts whose read marker has reached this message (stored). `None`
    /// where views are not counted: only channels count them.
    pub views: Option<i64>,
    /// Support threads: what the author is in the thread, the name it gave them
    /// and the lead, as stamped and checked on acceptance.
    pub sender_role: Option<&'static str>,
    pub sender_name: Option<String>,
    pub related_lead: Option<String>,
    /// The conversation is end-to-end encrypted: body, caption and payload are sealed on the
    /// devices and answered empty here (docs/E2EE.md, "Sealed messages").
    pub is_encrypted: bool,
}

/// A payload is stored as JSON text; it is answered as JSON.
pub fn payload_value(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
}

impl MessageView {
    /// `views_counted`: the conversation counts views (a channel), so the row's count is
    /// answered; elsewhere `views` is `null`, not a 0 that reads as "nobody saw it".
    pub fn of(
        row: &MessageRow,
        message: Option<&Message>,
        views_counted: bool,
        is_encrypted: bool,
    ) -> Self {
        let mut view = MessageView {
            id: row.message.to_string(),
            pos: row.pos,
            seq: row.seq,
            doc: row.doc.clone(),
            author: row.author.to_string(),
            kind: row.kind.clone(),
            body: row.preview.clone(),
            payload: None,
            caption: None,
            reply_to: None,
            attachments: Vec::new(),
            forwarded_from: None,
            created_at: time(row.created_at),
            edited_at: None,
            deleted: row.deleted,
            deleted_at: None,
            deleted_by: None,
            status: None,
            reactions: BTreeMap::new(),
            views: views_counted.then_some(row.views),
            sender_role: None,
            sender_name: None,
            related_lead: None,
            is_encrypted,
        };
        if let Some(m) = message.filter(|m| m.deleted_at.is_none()) {
            view.body = m.body.clone();
            view.payload = m.payload.as_deref().map(payload_value);
            view.caption = m.caption.clone();
            view.reply_to = m.reply_to.as_ref().map(ToString::to_string);
            view.attachments = m
                .attachments
                .as_deref()
                .and_then(|json| serde_json::from_str(json).ok())
                .unwrap_or_default();
            view.forwarded_from = m.forwarded_from.as_ref().map(|f| f.encode());
            view.edited_at = opt_time(m.edited_at);
            view.status = m.status.map(|s| s.as_str());
            view.sender_role = m.stamp.sender_role.map(|r| r.as_str());
            view.sender_name = m.stamp.sender_name.clone();
            view.related_lead = m.stamp.related_lead.as_ref().map(ToString::to_string);
            view.reactions = m
                .reactions
                .iter()
                .map(|(emoji, by)| {
                    let by = by
                        .iter()
                        .map(|(a, at)| (a.to_string(), time(*at)))
                        .collect();
                    (emoji.clone(), by)
                })
                .collect();
        }
        if let Some(m) = message.filter(|m| m.deleted_at.is_some()) {
            view.deleted = true;
            view.deleted_at = opt_time(m.deleted_at);
            view.deleted_by = m.deleted_by.as_ref().map(ToString::to_string);
        }
        if view.deleted {
            // Also where the bucket was not read: the row's preview is emptied on delete,
            // and this keeps the answer a tombstone whatever the row holds.
            view.body.clear();
        }
        view
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct MessagePage {
    pub messages: Vec<MessageView>,
    /// Pass as `before` for the next (older) page; `null` at the start of the conversation.
    pub next_before: Option<i64>,
}

/// `GET /v1/conversations/{id}/stats` (docs/SCHEMA.md, "Projection: stats and views").
#[derive(Debug, Clone, Serialize)]
pub struct StatsView {
    pub message_count: i64,
    pub media_count: i64,
    pub file_count: i64,
    pub participant_count: i64,
}

impl StatsView {
    pub fn of(s: &crate::store::stats::ConvStats) -> Self {
        StatsView {
            message_count: s.messages,
            media_count: s.media,
            file_count: s.files,
            participant_count: s.members,
        }
    }
}

/// The answer to a posted message.
#[derive(Debug, Clone, Serialize)]
pub struct PostedMessage {
    pub id: String,
    pub seq: u64,
    pub doc: String,
    pub created_at: String,
}

impl PostedMessage {
    pub fn new(id: String, seq: u64, doc: String, created_at: i64) -> Self {
        PostedMessage {
            id,
            seq,
            doc,
            created_at: time(created_at),
        }
    }
}

/// The answer to a proposal status change.
#[derive(Debug, Clone, Serialize)]
pub struct ProposalStatusView {
    pub id: String,
    pub status: &'static str,
    pub seq: u64,
    pub doc: String,
}

/// The answer to an edited message (`PATCH …/messages/{message}`).
#[derive(Debug, Clone, Serialize)]
pub struct EditedMessage {
    pub id: String,
    pub seq: u64,
    pub doc: String,
    pub edited_at: String,
}

/// The answer to a message deleted for everyone (`DELETE …/messages/{message}`).
#[derive(Debug, Clone, Serialize)]
pub struct DeletedMessage {
    pub id: String,
    pub seq: u64,
    pub doc: String,
    pub deleted_at: String,
}

impl EditedMessage {
    pub fn new(id: String, seq: u64, doc: String, edited_at: i64) -> Self {
        EditedMessage {
            id,
            seq,
            doc,
            edited_at: time(edited_at),
        }
    }
}

impl DeletedMessage {
    pub fn new(id: String, seq: u64, doc: String, deleted_at: i64) -> Self {
        DeletedMessage {
            id,
            seq,
            doc,
            deleted_at: time(deleted_at),
        }
    }
}
