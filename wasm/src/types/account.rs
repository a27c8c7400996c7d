//! The account's own data: contacts, per-conversation preferences, drafts, and sync cursors.

use confab_core::client::ConvPrefs;
use confab_core::model::contact as ck;

use super::*;

mirror_enum!(
    /// What a contact is.
    ContactKind => ck::ContactKind { Person = "person", Service = "service", Bot = "bot" }
);
mirror_enum!(
    /// Which messages of a conversation notify you.
    NotificationLevel => cv::NotificationLevel { All = "all", Mentions = "mentions", None = "none" }
);

/// An address-book entry: at least one of `phone` (E.164, e.g. `+5215512345678`), `email`,
/// `account` says who it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    pub kind: ContactKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub nickname: Option<String>,
}

impl From<ck::Contact> for Contact {
    fn from(c: ck::Contact) -> Self {
        Contact {
            kind: c.kind.into(),
            phone: c.phone,
            email: c.email,
            account: c.account.map(String::from),
            nickname: c.nickname,
        }
    }
}

impl TryFrom<Contact> for ck::Contact {
    type Error = confab_core::ModelError;
    fn try_from(c: Contact) -> Result<Self, Self::Error> {
        let contact = ck::Contact {
            kind: c.kind.into(),
            phone: c.phone,
            email: c.email,
            account: c
                .account
                .map(confab_core::ids::AccountId::new)
                .transpose()?,
            nickname: c.nickname,
        };
        contact.validate()?;
        Ok(contact)
    }
}

/// A contact with its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
pub struct ContactEntry {
    pub id: String,
    #[serde(flatten)]
    pub contact: Contact,
}

/// Your preferences for one conversation (private document).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct Preferences {
    pub muted: bool,
    /// Milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub muted_until: Option<i64>,
    pub pinned: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub pinned_at: Option<i64>,
    pub archived: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub archived_at: Option<i64>,
    /// Direct conversations: when you hid it (`hide`), in server time; it stays off
    /// `conversations()` until a message created after that arrives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub hidden_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub notifications: Option<NotificationLevel>,
}

impl From<ConvPrefs> for Preferences {
    fn from(p: ConvPrefs) -> Self {
        Preferences {
            muted: p.muted,
            muted_until: p.muted_until,
            pinned: p.pinned,
            pinned_at: p.pinned_at,
            archived: p.archived,
            archived_at: p.archived_at,
            hidden_at: p.hidden_at,
            notifications: p.notifications.map(Into::into),
        }
    }
}

/// A saved draft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
pub struct Draft {
    pub conv: String,
    pub text: String,
}

/// A document this client follows and the seq its catch-up resumes after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
pub struct Cursor {
    pub doc: String,
    pub seq: u64,
}
