//! Support threads beyond their creation: the sender stamps of a message
//! (`senderRole`, `senderName`, `relatedLeadId`) and the lead's closure
//! (`closed_won | closed_lost`, `closureReason`). The rules are in `policy::support`.

use crate::error::{check_chars, ModelError};
use crate::ids::LeadId;
use crate::model::str_enum::str_enum;

/// A sender name and the thread's client and owner names: at most 120 characters.
pub const NAME_MAX_CHARS: usize = 120;
/// The reason a lead was closed with.
pub const REASON_MAX_CHARS: usize = 500;

str_enum!(
    /// What the author is in the thread. Derived from the thread
    /// (`policy::support::sender_role`), never chosen by the writer.
    SenderRole, "sender_role" {
        /// The resource's client.
        Client = "client",
        /// The resource's owner.
        Owner = "owner",
        /// Another member (the owner's staff).
        Staff = "staff",
        /// A service account (the platform).
        Root = "root",
    }
);

str_enum!(
    /// How the lead of a closed support thread ended.
    LeadOutcome, "outcome" {
        ClosedWon = "closed_won",
        ClosedLost = "closed_lost",
    }
);

/// The support stamps of a message; all absent outside support threads.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stamp {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_role: Option<SenderRole>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related_lead: Option<LeadId>,
}

impl Stamp {
    pub fn is_empty(&self) -> bool {
        *self == Stamp::default()
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        if let Some(name) = &self.sender_name {
            check_chars("sender_name", name, NAME_MAX_CHARS)?;
        }
        Ok(())
    }
}
