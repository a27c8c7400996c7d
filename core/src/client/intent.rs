//! User intents as data: what the outbox keeps, so a rejected change can be dropped and the
//! intents after it re-applied on the accepted state; and the documents each one writes.

use serde::{Deserialize, Serialize};

use crate::doc::schema::keys::{CLIENT_NAME, OWNER_NAME, TITLE};
use crate::ids::{direct_conv_id, encrypted_direct_conv_id, DocId, TenantId};
use crate::ids::{encrypted_support_conv_id, support_conv_id};
use crate::ids::{AccountId, Bucket, ContactId, ConvId, MessageId, ResourceId};
use crate::model::account::Profile;
use crate::model::contact::Contact;
use crate::model::conversation::{Lifecycle, Role, Settings};
use crate::model::message::NewMessage;
use crate::model::proposal::ProposalStatus;

/// One user action. Each becomes one change (two where it touches two documents).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
// `Send` (a whole message) is the common intent; boxing it would cost every send an
// allocation to save bytes on the rarer ones, which the outbox holds a few of at a time.
#[allow(clippy::large_enum_variant)]
pub enum Intent {
    /// A group, channel or thread (with `parent`), the author as owner.
    CreateConversation {
        conv: ConvId,
        kind: crate::model::conversation::ConvKind,
        title: Option<String>,
        members: Vec<(AccountId, Role)>,
        #[serde(default)]
        settings: Option<Settings>,
        #[serde(default)]
        parent: Option<(ConvId, MessageId)>,
        /// End-to-end encrypted (docs/E2EE.md): the creation carries this device's new MLS
        /// group. Needs a device (`ClientEngine::attach_device`).
        #[serde(default)]
        encrypted: bool,
    },
    /// Find-or-create the direct conversation with `peer` (works offline). `encrypted`: the
    /// pair's end-to-end encrypted one instead (`ids::encrypted_direct_conv_id`), whose
    /// creation carries this device's MLS group and the commit adding the pair's other
    /// devices, as an encrypted `CreateConversation` does (docs/E2EE.md, "Direct
    /// conversations and support threads").
    OpenDirect {
        peer: AccountId,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        encrypted: bool,
    },
    /// Find-or-create the support thread of `client` about `resource`. `encrypted`: their
    /// end-to-end encrypted one instead (`ids::encrypted_support_conv_id`), made like an
    /// encrypted `OpenDirect` with the devices of the client and the owner (docs/E2EE.md,
    /// "Direct conversations and support threads").
    OpenSupport {
        resource: ResourceId,
        client: AccountId,
        owner: AccountId,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        encrypted: bool,
    },
    /// Any new message: text, media, system, proposal, proposal response, forward, scheduled.
    Send {
        conv: ConvId,
        message: NewMessage,
    },
    Edit {
        conv: ConvId,
        message: MessageId,
        bucket: Bucket,
        body: String,
    },
    /// An `Edit` in an encrypted conversation as the engine writes it: the new content
    /// sealed by this device, bound to the message and the ciphertext it replaces.
    EditSealed {
        conv: ConvId,
        message: MessageId,
        bucket: Bucket,
        sealed: Vec<u8>,
    },
    Delete {
        conv: ConvId,
        message: MessageId,
        bucket: Bucket,
    },
    React {
        conv: ConvId,
        message: MessageId,
        bucket: Bucket,
        emoji: String,
        on: bool,
    },
    Pin {
        conv: ConvId,
        message: MessageId,
    },
    Unpin {
        conv: ConvId,
        message: MessageId,
    },
    MarkRead {
        conv: ConvId,
        message: MessageId,
    },
    /// Moves the account's delivery marker (`delivered`): the device holds
    /// the conversation up to `message`.
    MarkDelivered {
        conv: ConvId,
        message: MessageId,
    },
    /// Support threads: the title and names the platform gives the thread,
    /// written where the thread has none yet (the client or the owner, when opening it).
    NameSupport {
        conv: ConvId,
        title: Option<String>,
        client_name: Option<String>,
        owner_name: Option<String>,
    },
    /// Support threads: close with the lead's outcome and an optional reason.
    CloseLead {
        conv: ConvId,
        outcome: crate::model::support::LeadOutcome,
        reason: Option<String>,
    },
    /// Support threads: the lead the thread is about now.
    SetLead {
        conv: ConvId,
        lead: crate::ids::LeadId,
    },
    AddMember {
        conv: ConvId,
        account: AccountId,
        role: Role,
    },
    RemoveMember {
        conv: ConvId,
        account: AccountId,
        #[serde(default)]
        ban: bool,
    },
    Leave {
        conv: ConvId,
    },
    /// Brings this account's devices in `conv`'s group in line with the directory's list: a
    /// commit adding its listed devices the group lacks and removing its devices the list no
    /// longer names (docs/E2EE.md, "The account's devices"). The engine queues it itself.
    SyncDevices {
        conv: ConvId,
    },
    SetRole {
        conv: ConvId,
        account: AccountId,
        role: Role,
        /// A temporary role: it holds until this server time (ms), then the member goes
        /// back to the role it had (`Member::granted`). `None`: for good.
        #[serde(default)]
        until: Option<i64>,
    },
    /// Sets (`Some`) or clears (`None`) a member's permission override, for good or, set,
    /// until the server time `until` (ms), after which the role default applies again.
    SetOverride {
        conv: ConvId,
        account: AccountId,
        permission: crate::model::conversation::Permission,
        allowed: Option<bool>,
        #[serde(default)]
        until: Option<i64>,
    },
    SetInfo {
        conv: ConvId,
        field: String,
        value: Option<String>,
    },
    /// One setting, as the JSON value the schema stores (string, integer or boolean).
    SetSetting {
        conv: ConvId,
        key: String,
        value: serde_json::Value,
    },
    SetLifecycle {
        conv: ConvId,
        state: Lifecycle,
    },
    /// Blocks (`on`) or unblocks the other member of a direct conversation.
    Block {
        conv: ConvId,
        on: bool,
    },
    /// The owner hands ownership to `account` (an active member) and becomes an admin, in
    /// one change.
    TransferOwnership {
        conv: ConvId,
        account: AccountId,
    },
    /// Takes a direct conversation off this account's list (`on`), or puts it back. A
    /// message created after the hide brings it back by itself. Private document.
    Hide {
        conv: ConvId,
        on: bool,
    },
    /// The counterparty's answer: the proposal's new status (the response message is a `Send`).
    AnswerProposal {
        conv: ConvId,
        proposal: MessageId,
        bucket: Bucket,
        status: ProposalStatus,
    },
    /// A per-conversation preference in the private document (muted, pinned, archived, ...).
    SetConvPref {
        conv: ConvId,
        key: String,
        value: serde_json::Value,
    },
    SetDraft {
        conv: ConvId,
        text: Option<String>,
    },
    SetProfile {
        profile: Profile,
    },
    /// Adds or replaces (`Some`) or removes (`None`) a contact in the private document.
    SetContact {
        id: ContactId,
        contact: Option<Contact>,
    },
    /// A message the server posts at `at` (in the private document until then:
    /// `doc::schedule`).
    Schedule {
        id: MessageId,
        conv: ConvId,
        body: String,
        at: i64,
    },
    /// A new body and/or time for a pending scheduled message.
    EditScheduled {
        id: MessageId,
        body: Option<String>,
        at: Option<i64>,
    },
    /// Cancels a scheduled message (or dismisses a refused one).
    CancelScheduled {
        id: MessageId,
    },
}

impl Intent {
    /// A short name for tags and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Intent::CreateConversation { .. } => "create_conversation",
            Intent::OpenDirect { .. } => "open_direct",
            Intent::OpenSupport { .. } => "open_support",
            Intent::Send { .. } => "send",
            Intent::Edit { .. } => "edit",
            Intent::EditSealed { .. } => "edit_sealed",
            Intent::Delete { .. } => "delete",
            Intent::React { .. } => "react",
            Intent::Pin { .. } => "pin",
            Intent::Unpin { .. } => "unpin",
            Intent::MarkRead { .. } => "mark_read",
            Intent::MarkDelivered { .. } => "mark_delivered",
            Intent::NameSupport { .. } => "name_support",
            Intent::CloseLead { .. } => "close_lead",
            Intent::SetLead { .. } => "set_lead",
            Intent::AddMember { .. } => "add_member",
            Intent::RemoveMember { .. } => "remove_member",
            Intent::Leave { .. } => "leave",
            Intent::SyncDevices { .. } => "sync_devices",
            Intent::SetRole { .. } => "set_role",
            Intent::SetOverride { .. } => "set_override",
            Intent::SetInfo { .. } => "set_info",
            Intent::SetSetting { .. } => "set_setting",
            Intent::SetLifecycle { .. } => "set_lifecycle",
            Intent::Block { .. } => "block",
            Intent::TransferOwnership { .. } => "transfer_ownership",
            Intent::Hide { .. } => "hide",
            Intent::AnswerProposal { .. } => "answer_proposal",
            Intent::SetConvPref { .. } => "set_conv_pref",
            Intent::SetDraft { .. } => "set_draft",
            Intent::SetProfile { .. } => "set_profile",
            Intent::SetContact { .. } => "set_contact",
            Intent::Schedule { .. } => "schedule",
            Intent::EditScheduled { .. } => "edit_scheduled",
            Intent::CancelScheduled { .. } => "cancel_scheduled",
        }
    }
}

/// The documents an intent writes, in the order it writes them.
pub fn targets(
    intent: &Intent,
    tenant: &TenantId,
    me: &AccountId,
    place: impl Fn(&ConvId, i64) -> Bucket,
) -> Vec<DocId> {
    use Intent::*;
    let conv = |c| DocId::conv(tenant, c);
    match intent {
        CreateConversation { conv: c, .. } => vec![conv(c)],
        OpenDirect { peer, encrypted } => vec![conv(&direct_id(tenant, me, peer, *encrypted))],
        OpenSupport {
            resource,
            client,
            encrypted,
            ..
        } => vec![conv(&support_id(tenant, client, resource, *encrypted))],
        Send { conv: c, message } => vec![DocId::msgs(tenant, c, place(c, message.created_at))],
        Edit {
            conv: c, bucket, ..
        }
        | EditSealed {
            conv: c, bucket, ..
        }
        | Delete {
            conv: c, bucket, ..
        }
        | React {
            conv: c, bucket, ..
        }
        | AnswerProposal {
            conv: c, bucket, ..
        } => {
            vec![DocId::msgs(tenant, c, *bucket)]
        }
        Pin { conv: c, .. }
        | Unpin { conv: c, .. }
        | MarkRead { conv: c, .. }
        | MarkDelivered { conv: c, .. }
        | NameSupport { conv: c, .. }
        | CloseLead { conv: c, .. }
        | SetLead { conv: c, .. }
        | AddMember { conv: c, .. }
        | RemoveMember { conv: c, .. }
        | Leave { conv: c }
        | SyncDevices { conv: c }
        | SetRole { conv: c, .. }
        | SetOverride { conv: c, .. }
        | SetInfo { conv: c, .. }
        | SetSetting { conv: c, .. }
        | SetLifecycle { conv: c, .. }
        | Block { conv: c, .. }
        | TransferOwnership { conv: c, .. } => vec![conv(c)],
        SetConvPref { .. }
        | Hide { .. }
        | SetDraft { .. }
        | SetContact { .. }
        | Schedule { .. }
        | EditScheduled { .. }
        | CancelScheduled { .. } => {
            vec![DocId::private(tenant, me)]
        }
        SetProfile { .. } => vec![DocId::profile(tenant, me)],
    }
}

/// The conversation an intent is about, if any (known without loading anything: message
/// buckets depend on the conversation's width, the conversation does not).
pub fn conv_of(intent: &Intent, tenant: &TenantId, me: &AccountId) -> Option<ConvId> {
    targets(intent, tenant, me, |_, at| Bucket::first(at))
        .first()
        .and_then(|d| d.conv_id().cloned())
}

/// The direct conversation of `me` and `peer`, plaintext or end-to-end encrypted.
pub fn direct_id(tenant: &TenantId, me: &AccountId, peer: &AccountId, encrypted: bool) -> ConvId {
    if encrypted {
        encrypted_direct_conv_id(tenant, me, peer)
    } else {
        direct_conv_id(tenant, me, peer)
    }
}

/// The support thread of `client` about `resource`, plaintext or end-to-end encrypted.
pub fn support_id(
    tenant: &TenantId,
    client: &AccountId,
    resource: &ResourceId,
    encrypted: bool,
) -> ConvId {
    if encrypted {
        encrypted_support_conv_id(tenant, client, resource)
    } else {
        support_conv_id(tenant, client, resource)
    }
}

/// The (field, value) pairs a `NameSupport` intent writes where unset.
pub(super) fn support_names(intent: &Intent) -> Vec<(&'static str, &str)> {
    let Intent::NameSupport {
        title,
        client_name,
        owner_name,
        ..
    } = intent
    else {
        return Vec::new();
    };
    [
        (TITLE, title),
        (CLIENT_NAME, client_name),
        (OWNER_NAME, owner_name),
    ]
    .into_iter()
    .filter_map(|(field, value)| value.as_deref().map(|v| (field, v)))
    .collect()
}
