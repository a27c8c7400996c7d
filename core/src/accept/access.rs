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
            Some(c) => member_may_read(Standing::of(c.member(account)), parent, account),
        },
    }
}

/// The members' part of [`may_read`], for a reader that knows standings without the
/// documents (the server's search reads them from the projection): `own` is where the
/// account stands in the conversation, `parent` (threads) in its parent, active only if
/// active in every conversation above.
pub fn member_may_read(
    own: Standing,
    parent: Option<Standing>,
    account: &AccountId,
) -> Result<(), ReadDenied> {
    match own {
        Standing::Active => {}
        Standing::Out(None) => return Err(ReadDenied::NotMember(account.clone())),
        Standing::Out(Some(_)) => return Err(ReadDenied::Inactive(account.clone())),
    }
    if parent.is_some_and(|s| !s.is_active()) {
        return Err(ReadDenied::NotParentMember(account.clone()));
    }
    Ok(())
}
