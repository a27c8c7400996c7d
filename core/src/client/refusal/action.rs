//! What an intent tried to do, as words: "pin messages", "remove Carol".

use crate::ids::{AccountId, ConvId};
use crate::model::conversation::Lifecycle;
use crate::model::message::MessageKind;

use super::super::intent::Intent;

/// An intent as a verb phrase and the thing it made or touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// After "may not": "pin messages", "remove Carol", "answer this proposal".
    pub doing: String,
    /// What it wrote, as a subject: "Your message", "Your reaction", "This change".
    pub what: String,
    /// The intent's kind (`Intent::kind`), to pick a sentence by.
    pub kind: &'static str,
}

impl Action {
    pub fn of(intent: &Intent, name: &dyn Fn(&AccountId) -> String) -> Action {
        let (doing, what): (String, &str) = match intent {
            Intent::CreateConversation { kind, .. } => (
                format!("create this {}", kind.as_str()),
                "This conversation",
            ),
            Intent::OpenDirect { peer, .. } => {
                (format!("start a chat with {}", name(peer)), "This chat")
            }
            Intent::OpenSupport { .. } => {
                ("open this support thread".into(), "This support thread")
            }
            Intent::Send { message, .. } => (send_phrase(message.kind).into(), "Your message"),
            Intent::Edit { .. } | Intent::EditSealed { .. } => {
                ("edit this message".into(), "Your edit")
            }
            Intent::Delete { .. } => ("delete this message".into(), "Your deletion"),
            Intent::React { .. } => ("react to messages".into(), "Your reaction"),
            Intent::Pin { .. } => ("pin messages".into(), "Your pin"),
            Intent::Unpin { .. } => ("unpin messages".into(), "Your unpin"),
            Intent::MarkRead { .. } => ("mark messages as read".into(), "Your read marker"),
            Intent::MarkDelivered { .. } => {
                ("mark messages as delivered".into(), "Your delivery marker")
            }
            Intent::NameSupport { .. } => ("name the support thread".into(), "The thread's names"),
            Intent::CloseLead { .. } => ("close the lead".into(), "The lead's closure"),
            Intent::SetLead { .. } => ("set the thread's lead".into(), "The thread's lead"),
            Intent::AddMember { account, .. } => {
                (format!("add {}", name(account)), "This addition")
            }
            Intent::RemoveMember { account, ban, .. } => (
                format!("{} {}", if *ban { "ban" } else { "remove" }, name(account)),
                "This removal",
            ),
            Intent::Leave { .. } => ("leave".into(), "Leaving"),
            Intent::SyncDevices { .. } => (
                "update your devices in this conversation".into(),
                "This device update",
            ),
            Intent::SetRole { account, .. } => (
                format!("change {}'s role", name(account)),
                "This role change",
            ),
            Intent::SetOverride { account, .. } => (
                format!("change {}'s permissions", name(account)),
                "This permission change",
            ),
            Intent::SetInfo { field, .. } => (format!("change the {field}"), "This change"),
            Intent::SetSetting { .. } => ("change the settings".into(), "This setting"),
            Intent::SetLifecycle { state, .. } => (
                match state {
                    Lifecycle::Active => "reopen the conversation",
                    Lifecycle::Archived => "archive the conversation",
                    Lifecycle::Closed => "close the conversation",
                    Lifecycle::Deleted => "delete the conversation",
                }
                .into(),
                "This change",
            ),
            Intent::Block { on, .. } => (
                if *on {
                    "block this person"
                } else {
                    "unblock this person"
                }
                .into(),
                "This block",
            ),
            Intent::TransferOwnership { account, .. } => {
                (format!("make {} the owner", name(account)), "This transfer")
            }
            Intent::Hide { on, .. } => (
                if *on {
                    "hide this chat"
                } else {
                    "show this chat again"
                }
                .into(),
                "This change",
            ),
            Intent::AnswerProposal { .. } => ("answer this proposal".into(), "Your answer"),
            Intent::SetConvPref { .. } => ("change your preferences".into(), "This preference"),
            Intent::SetDraft { .. } => ("save a draft".into(), "Your draft"),
            Intent::SetProfile { .. } => ("change your profile".into(), "Your profile"),
            Intent::SetContact { .. } => ("change your contacts".into(), "This contact"),
            Intent::Schedule { .. } => ("schedule a message".into(), "Your scheduled message"),
            Intent::EditScheduled { .. } | Intent::CancelScheduled { .. } => (
                "change a scheduled message".into(),
                "Your scheduled message",
            ),
        };
        Action {
            doing,
            what: what.to_owned(),
            kind: intent.kind(),
        }
    }
}

fn send_phrase(kind: MessageKind) -> &'static str {
    match kind {
        k if k.is_media() => "send photos, files or voice messages",
        MessageKind::Sticker => "send stickers",
        MessageKind::System => "post system messages",
        MessageKind::Proposal => "send proposals",
        MessageKind::ProposalResponse => "answer this proposal",
        _ => "send messages",
    }
}

/// The conversation an intent is about, if any.
pub(crate) fn conv_of(intent: &Intent) -> Option<&ConvId> {
    match intent {
        Intent::CreateConversation { conv, .. }
        | Intent::Send { conv, .. }
        | Intent::Edit { conv, .. }
        | Intent::EditSealed { conv, .. }
        | Intent::Delete { conv, .. }
        | Intent::React { conv, .. }
        | Intent::Pin { conv, .. }
        | Intent::Unpin { conv, .. }
        | Intent::MarkRead { conv, .. }
        | Intent::MarkDelivered { conv, .. }
        | Intent::NameSupport { conv, .. }
        | Intent::CloseLead { conv, .. }
        | Intent::SetLead { conv, .. }
        | Intent::AddMember { conv, .. }
        | Intent::RemoveMember { conv, .. }
        | Intent::Leave { conv }
        | Intent::SyncDevices { conv }
        | Intent::SetRole { conv, .. }
        | Intent::SetOverride { conv, .. }
        | Intent::SetInfo { conv, .. }
        | Intent::SetSetting { conv, .. }
        | Intent::SetLifecycle { conv, .. }
        | Intent::Block { conv, .. }
        | Intent::TransferOwnership { conv, .. }
        | Intent::Hide { conv, .. }
        | Intent::AnswerProposal { conv, .. }
        | Intent::SetConvPref { conv, .. }
        | Intent::SetDraft { conv, .. }
        | Intent::Schedule { conv, .. } => Some(conv),
        Intent::OpenDirect { .. }
        | Intent::OpenSupport { .. }
        | Intent::SetProfile { .. }
        | Intent::SetContact { .. }
        | Intent::EditScheduled { .. }
        | Intent::CancelScheduled { .. } => None,
    }
}

/// The other member an intent is about, if any.
pub(crate) fn target_of(intent: &Intent) -> Option<&AccountId> {
    match intent {
        Intent::AddMember { account, .. }
        | Intent::RemoveMember { account, .. }
        | Intent::SetRole { account, .. }
        | Intent::SetOverride { account, .. }
        | Intent::TransferOwnership { account, .. } => Some(account),
        Intent::OpenDirect { peer, .. } => Some(peer),
        _ => None,
    }
}
