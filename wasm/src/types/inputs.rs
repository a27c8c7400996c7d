//! The inputs of the convenience methods (`createGroup`, `send`, `propose`, ...).

use super::*;

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
    /// End-to-end encrypted (MLS; needs every member's device to have connected once). Chosen
    /// at creation, never turned off; channels cannot be (`encryption_not_allowed`).
    #[serde(default)]
    #[tsify(optional)]
    pub encrypted: Option<bool>,
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
    /// End-to-end encrypted, as `createGroup`'s.
    #[serde(default)]
    #[tsify(optional)]
    pub encrypted: Option<bool>,
}

/// `openSupport`: the support thread of `client` about `resource`, run by `owner`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct SupportInput {
    pub resource: String,
    pub client: String,
    pub owner: String,
    /// The resource's title, the client's and the owner's names: applied where the thread has
    /// none yet (the thread's first opener sets them; later ones change nothing).
    #[serde(default)]
    #[tsify(optional)]
    pub title: Option<String>,
    #[serde(default)]
    #[tsify(optional)]
    pub client_name: Option<String>,
    #[serde(default)]
    #[tsify(optional)]
    pub owner_name: Option<String>,
    /// Their end-to-end encrypted thread, as `openDirect`'s option.
    #[serde(default)]
    #[tsify(optional)]
    pub encrypted: Option<bool>,
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
    /// An encrypted conversation's attachment: how its file was sealed (`url` holds the
    /// ciphertext; `name`, `mime` and `size` are the plaintext's). It travels inside the
    /// message's sealed content only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub encryption: Option<AttachmentSeal>,
}

/// How a file was sealed (AES-256-GCM): its key and nonce, and the SHA-256 of the
/// ciphertext, all hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
pub struct AttachmentSeal {
    pub key: String,
    pub nonce: String,
    pub sha256: String,
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
            // Support threads: the engine stamps the message when it writes it.
            stamp: Default::default(),
            // Sealed messages: the engine seals the content and names its blobs.
            sealed: None,
            blobs: None,
        })
    }
}

/// A proposal (a `proposal` message's payload). Times are milliseconds since the epoch.
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
    /// The payload's JSON text, validated as a new proposal.
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

/// The answer to a proposal (a `proposal_response` message's payload).
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
    /// The payload's JSON text, validated.
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

/// `openDirect` options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(default)]
pub struct DirectOptions {
    /// The pair's end-to-end encrypted direct conversation (docs/E2EE.md, "Direct
    /// conversations and support threads"), apart from the plaintext one; needs this
    /// device's MLS state, which every client has.
    #[tsify(optional)]
    pub encrypted: Option<bool>,
}

/// `removeMember` options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(default)]
pub struct RemoveOptions {
    /// Ban: the account may not come back.
    #[tsify(optional)]
    pub ban: Option<bool>,
}
