//! Intents as data (`client.intent(...)`), the outbox, and what an intent call returns.

use super::*;

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
            // Support threads: the engine stamps the message when it writes it.
            stamp: Default::default(),
            // Sealed messages: the engine seals the content and names its blobs.
            sealed: None,
            blobs: None,
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
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        #[tsify(optional)]
        encrypted: bool,
    },
    OpenDirect {
        peer: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        #[tsify(optional)]
        encrypted: bool,
    },
    OpenSupport {
        resource: String,
        client: String,
        owner: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        #[tsify(optional)]
        encrypted: bool,
    },
    Send {
        conv: String,
        message: NewMessage,
    },
    Edit {
        conv: String,
        message: String,
        bucket: Bucket,
        body: String,
    },
    Delete {
        conv: String,
        message: String,
        bucket: Bucket,
    },
    React {
        conv: String,
        message: String,
        bucket: Bucket,
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
    MarkDelivered {
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
    /// The engine's own: keeps this account's devices in an encrypted conversation's group
    /// to the server's device list.
    SyncDevices {
        conv: String,
    },
    SetRole {
        conv: String,
        account: String,
        role: Role,
        /// A temporary role: until this server time (ms).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        until: Option<i64>,
    },
    /// A permission override set (`allowed`) or cleared (absent), for good or until
    /// `until` (server time, ms).
    SetOverride {
        conv: String,
        account: String,
        permission: Permission,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        allowed: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        until: Option<i64>,
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
    NameSupport {
        conv: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        title: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        client_name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        owner_name: Option<String>,
    },
    CloseLead {
        conv: String,
        outcome: LeadOutcome,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        reason: Option<String>,
    },
    SetLead {
        conv: String,
        lead: String,
    },
    Block {
        conv: String,
        on: bool,
    },
    /// The owner makes `account` the owner and becomes an admin.
    TransferOwnership {
        conv: String,
        account: String,
    },
    /// Hides (`on`) a direct conversation from your list, or shows it again.
    Hide {
        conv: String,
        on: bool,
    },
    AnswerProposal {
        conv: String,
        proposal: String,
        bucket: Bucket,
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
        contact: Option<Contact>,
    },
    /// A message the server posts at `at` (ms since the epoch) as you, if you may send then.
    Schedule {
        id: String,
        conv: String,
        body: String,
        at: i64,
    },
    EditScheduled {
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        body: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        at: Option<i64>,
    },
    CancelScheduled {
        id: String,
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
                encrypted,
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
                encrypted,
            },
            I::OpenDirect { peer, encrypted } => IntentData::OpenDirect {
                peer: peer.into(),
                encrypted,
            },
            I::OpenSupport {
                resource,
                client,
                owner,
                encrypted,
            } => IntentData::OpenSupport {
                resource: resource.into(),
                client: client.into(),
                owner: owner.into(),
                encrypted,
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
            // Written by the engine only (the outbox holds the `Edit`): its content is sealed.
            I::EditSealed {
                conv,
                message,
                bucket,
                ..
            } => IntentData::Edit {
                conv: conv.into(),
                message: message.into(),
                bucket,
                body: String::new(),
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
            I::MarkDelivered { conv, message } => IntentData::MarkDelivered {
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
            I::SyncDevices { conv } => IntentData::SyncDevices { conv: conv.into() },
            I::SetRole {
                conv,
                account,
                role,
                until,
            } => IntentData::SetRole {
                conv: conv.into(),
                account: account.into(),
                role: role.into(),
                until,
            },
            I::SetOverride {
                conv,
                account,
                permission,
                allowed,
                until,
            } => IntentData::SetOverride {
                conv: conv.into(),
                account: account.into(),
                permission: permission.into(),
                allowed,
                until,
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
            I::NameSupport {
                conv,
                title,
                client_name,
                owner_name,
            } => IntentData::NameSupport {
                conv: conv.into(),
                title,
                client_name,
                owner_name,
            },
            I::CloseLead {
                conv,
                outcome,
                reason,
            } => IntentData::CloseLead {
                conv: conv.into(),
                outcome: outcome.into(),
                reason,
            },
            I::SetLead { conv, lead } => IntentData::SetLead {
                conv: conv.into(),
                lead: lead.into(),
            },
            I::Block { conv, on } => IntentData::Block {
                conv: conv.into(),
                on,
            },
            I::TransferOwnership { conv, account } => IntentData::TransferOwnership {
                conv: conv.into(),
                account: account.into(),
            },
            I::Hide { conv, on } => IntentData::Hide {
                conv: conv.into(),
                on,
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
            I::Schedule { id, conv, body, at } => IntentData::Schedule {
                id: id.into(),
                conv: conv.into(),
                body,
                at,
            },
            I::EditScheduled { id, body, at } => IntentData::EditScheduled {
                id: id.into(),
                body,
                at,
            },
            I::CancelScheduled { id } => IntentData::CancelScheduled { id: id.into() },
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
                encrypted,
            } => I::CreateConversation {
                encrypted,
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
            IntentData::OpenDirect { peer, encrypted } => I::OpenDirect {
                peer: acc(peer)?,
                encrypted,
            },
            IntentData::OpenSupport {
                resource,
                client,
                owner,
                encrypted,
            } => I::OpenSupport {
                resource: ResourceId::new(resource)?,
                client: acc(client)?,
                owner: acc(owner)?,
                encrypted,
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
            IntentData::MarkDelivered { conv: c, message } => I::MarkDelivered {
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
            IntentData::SyncDevices { conv: c } => I::SyncDevices { conv: conv(c)? },
            IntentData::SetRole {
                conv: c,
                account,
                role,
                until,
            } => I::SetRole {
                conv: conv(c)?,
                account: acc(account)?,
                role: role.into(),
                until,
            },
            IntentData::SetOverride {
                conv: c,
                account,
                permission,
                allowed,
                until,
            } => I::SetOverride {
                conv: conv(c)?,
                account: acc(account)?,
                permission: permission.into(),
                allowed,
                until,
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
            IntentData::NameSupport {
                conv: c,
                title,
                client_name,
                owner_name,
            } => I::NameSupport {
                conv: conv(c)?,
                title,
                client_name,
                owner_name,
            },
            IntentData::CloseLead {
                conv: c,
                outcome,
                reason,
            } => I::CloseLead {
                conv: conv(c)?,
                outcome: outcome.into(),
                reason,
            },
            IntentData::SetLead { conv: c, lead } => I::SetLead {
                conv: conv(c)?,
                lead: confab_core::ids::LeadId::new(lead)?,
            },
            IntentData::Block { conv: c, on } => I::Block { conv: conv(c)?, on },
            IntentData::TransferOwnership { conv: c, account } => I::TransferOwnership {
                conv: conv(c)?,
                account: AccountId::new(account)?,
            },
            IntentData::Hide { conv: c, on } => I::Hide { conv: conv(c)?, on },
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
            IntentData::Schedule {
                id,
                conv: c,
                body,
                at,
            } => I::Schedule {
                id: MessageId::new(id)?,
                conv: conv(c)?,
                body,
                at,
            },
            IntentData::EditScheduled { id, body, at } => I::EditScheduled {
                id: MessageId::new(id)?,
                body,
                at,
            },
            IntentData::CancelScheduled { id } => I::CancelScheduled {
                id: MessageId::new(id)?,
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
    /// Every intent the call queued.
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
    pub bucket: Option<Bucket>,
}
