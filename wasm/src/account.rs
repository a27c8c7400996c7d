//! Profiles, the account's private document (contacts, per-conversation preferences, drafts)
//! and sync cursors: their JavaScript types and the `ConfabClient` methods that read them
//! (and `setContact`, the one write the other intent methods do not cover).

use confab_core::client::{ConvPrefs, Intent};
use confab_core::ids::{ContactId, DocId};
use confab_core::model::contact as ck;
use confab_core::model::conversation as cv;
use js_sys::Promise;
use serde::{Deserialize, Serialize};
use tsify::{Ts, Tsify};
use wasm_bindgen::prelude::*;

use crate::client::{account_id, conv_id, promise, run, to_js, ConfabClient};
use crate::error::Failure;
use crate::runtime;
use crate::types::{mirror_enum, IntentResult, Profile};

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

#[wasm_bindgen]
impl ConfabClient {
    /// `account`'s public profile (yours is always loaded; load others with `openProfile`);
    /// `undefined` until it is loaded and written.
    #[wasm_bindgen(unchecked_return_type = "Profile | undefined")]
    pub fn profile(&self, account: &str) -> Result<JsValue, JsValue> {
        let account = account_id(account)?;
        match self.inner.read(None, |e| e.profile(&account)) {
            Some(profile) => Ok(to_js(&Profile::from(profile))?),
            None => Ok(JsValue::UNDEFINED),
        }
    }

    /// Loads `account`'s profile (from the store, then the server) and follows it: `profile`
    /// events tell when it changes.
    #[wasm_bindgen(js_name = openProfile, unchecked_return_type = "Promise<void>")]
    pub fn open_profile(&self, account: String) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            runtime::ready(&inner).await?;
            let doc = DocId::profile(&inner.tenant, &account_id(&account)?);
            let _lock = runtime::op_lock(&inner).await;
            runtime::load_doc(&inner, &doc).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Your preferences for `conv` (all off until you set one with `setPreference`).
    pub fn preferences(&self, conv: &str) -> Result<Ts<Preferences>, JsValue> {
        let conv = conv_id(conv)?;
        let prefs = self
            .inner
            .read(ConvPrefs::default(), |e| e.preferences(&conv));
        Ok(Ts::from_rust(&Preferences::from(prefs)).map_err(Failure::from)?)
    }

    /// Your draft for `conv` (`setDraft` saves it, on every device of yours).
    #[wasm_bindgen(unchecked_return_type = "string | undefined")]
    pub fn draft(&self, conv: &str) -> Result<JsValue, JsValue> {
        let conv = conv_id(conv)?;
        Ok(self
            .inner
            .read(None, |e| e.draft(&conv))
            .map_or(JsValue::UNDEFINED, JsValue::from))
    }

    /// Every saved draft.
    pub fn drafts(&self) -> Vec<Ts<Draft>> {
        let drafts = self
            .inner
            .read(Default::default(), |e| e.private_data().drafts);
        ts_list(drafts.into_iter().map(|(conv, text)| Draft {
            conv: conv.to_string(),
            text,
        }))
    }

    /// Your address book, by id.
    pub fn contacts(&self) -> Vec<Ts<ContactEntry>> {
        let contacts = self.inner.read(Default::default(), |e| e.contacts());
        ts_list(contacts.into_iter().map(|(id, contact)| ContactEntry {
            id: id.to_string(),
            contact: contact.into(),
        }))
    }

    /// Adds or replaces (`contact`) or removes (`null`) the contact `id` of your address book.
    #[wasm_bindgen(js_name = setContact, unchecked_return_type = "Promise<IntentResult>")]
    pub fn set_contact(&self, id: String, contact: Option<Ts<Contact>>) -> Promise {
        let inner = self.inner.clone();
        let contact = contact.map(|c| c.to_rust());
        promise(async move {
            let contact = match contact.transpose()? {
                Some(c) => Some(ck::Contact::try_from(c)?),
                None => None,
            };
            let intent = Intent::SetContact {
                id: ContactId::new(id)?,
                contact,
            };
            run(&inner, vec![intent], IntentResult::default()).await
        })
    }

    /// Every document this client follows, with the seq its catch-up resumes after.
    pub fn cursors(&self) -> Vec<Ts<Cursor>> {
        let cursors = self.inner.read(Vec::new(), |e| e.cursors());
        ts_list(cursors.into_iter().map(|(doc, seq)| Cursor {
            doc: doc.to_string(),
            seq,
        }))
    }
}

fn ts_list<T: Tsify + Serialize>(items: impl Iterator<Item = T>) -> Vec<Ts<T>> {
    items.filter_map(|item| Ts::from_rust(&item).ok()).collect()
}
