//! The JavaScript-facing types, one file per section of the API. Each mirrors a core type
//! (camelCase fields, enums spelled as the document schema spells them) and derives `Tsify`,
//! so the package's `.d.ts` is generated from these definitions; `From`/`TryFrom` convert to
//! and from core.

mod account;
mod e2ee;
mod events;
mod inputs;
mod intents;
mod options;
mod presence;
mod rest;
mod search;
mod views;

pub use account::*;
pub use e2ee::*;
pub use events::*;
pub use inputs::*;
pub use intents::*;
pub use options::*;
pub use presence::*;
pub use rest::*;
pub use search::*;
pub use views::*;

use std::collections::BTreeMap;

use confab_core::client as cc;
pub use confab_core::ids::Bucket;
use confab_core::ids::{AccountId, ConvId, MessageId, ResourceId};
use confab_core::model::account as ca;
use confab_core::model::conversation as cv;
use confab_core::model::message as cm;
use confab_core::model::proposal as cp;
use confab_core::ModelError;
use serde::{Deserialize, Serialize};
use tsify::Tsify;

/// A message bucket part, `"<period>"` or `"<period>.<part>"` (serialized by core; JavaScript
/// passes back what it was given).
#[wasm_bindgen::prelude::wasm_bindgen(typescript_custom_section)]
const BUCKET_TS: &str = r#"/** A message bucket part: "<period>" or "<period>.<part>". */
export type Bucket = string;"#;

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
        Requested = "requested",
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
    /// What a message's author is in its support thread.
    SenderRole => confab_core::model::support::SenderRole {
        Client = "client", Owner = "owner", Staff = "staff", Root = "root",
    }
);
mirror_enum!(
    /// How a closed support thread's lead ended.
    LeadOutcome => confab_core::model::support::LeadOutcome {
        ClosedWon = "closed_won", ClosedLost = "closed_lost",
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
    /// Who finds a group or channel through discovery (docs/POLICY.md, "Joining").
    Scope => confab_core::model::joining::Scope {
        Private = "private", Organization = "organization", Public = "public",
    }
);
mirror_enum!(
    /// Lifecycle of a conversation.
    Lifecycle => cv::Lifecycle { Active = "active", Archived = "archived", Closed = "closed", Deleted = "deleted" }
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
