//! Who may read a unit's documents.

use crate::ids::{AccountId, DocId, DocTarget};
use crate::model::conversation::Conversation;
use crate::policy::{DenyCode, Standing};

/// Why an account may not read a document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadDenied {
    #[error("private documents are their account's")]
    Private,
    #[error("no such conversation")]
    NoConversation,
    #[error("{0} is not a member")]
    NotMember(AccountId),
    #[error("{0} is not an active member")]
    Inactive(AccountId),
    #[error("{0} is not an active member of the thread's parent")]
    NotParentMember(AccountId),
}

impl ReadDenied {
    /// The policy code of a refusal to read a conversation (what REST answers); `None`
    /// for a document that is not a conversation's or a conversation that does not exist.
    pub fn code(&self) -> Option<DenyCode> {
        match self {
            Self::Private | Self::NoConversation => None,
            Self::NotMember(_) => Some(DenyCode::NotMember),
            Self::Inactive(_) => Some(DenyCode::MemberInactive),
            Self::NotParentMember(_) => Some(DenyCode::NotParentMember),
        }
    }
}

/// Anyone reads a profile; the owner its private document; an active member or a service
/// account a conversation that exists and its buckets. A thread also needs the member to be
/// active in its parent: `parent` is where the account stands there (`None`: not a thread,
/// or not known to this caller).
pub fn may_read(
    conv: Option<&Conversation>,
    doc: &DocId,
    account: &AccountId,
    service: bool,
    parent: Option<Standing>,
) -> Result<(), ReadDenied> {
    match doc.target() {
        DocTarget::Profile(_) => Ok(()),
        DocTarget::Private(owner) if owner == account => Ok(()),
        DocTarget::Private(_) => Err(ReadDenied::Private),
        DocTarget::Conv(_) | DocTarget::Msgs(..) => match conv.filter(|c| c.meta.is_some()) {
            None => Err(ReadDenied::NoConversation),
            Some(_) if service => Ok(()),
            Some(c) if c.member(account).is_none() => Err(ReadDenied::NotMember(account.clone())),
            Some(c) if c.active_member(account).is_none() => {
                Err(ReadDenied::Inactive(account.clone()))
            }
            Some(_) if parent.is_some_and(|s| !s.is_active()) => {
                Err(ReadDenied::NotParentMember(account.clone()))
            }
            Some(_) => Ok(()),
        },
    }
}
