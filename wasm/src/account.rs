//! Profiles, the account's private document (contacts, per-conversation preferences, drafts)
//! and sync cursors: the `ConfabClient` methods that read them (and `setContact`, the one
//! write the other intent methods do not cover). Their types are in `types::account`.

use confab_core::client::{ConvPrefs, Intent};
use confab_core::ids::{ContactId, DocId};
use confab_core::model::contact as ck;
use js_sys::Promise;
use serde::Serialize;
use tsify::{Ts, Tsify};
use wasm_bindgen::prelude::*;

use crate::api::{account_id, conv_id, promise, to_js};
use crate::client::ConfabClient;
use crate::error::Failure;
use crate::intents::run;
use crate::types::{IntentResult, Profile};

// Their types live with the other JavaScript types; here too, where they were.
pub use crate::types::{
    Contact, ContactEntry, ContactKind, Cursor, Draft, NotificationLevel, Preferences,
};

#[wasm_bindgen]
impl ConfabClient {
    /// `account`'s public profile (yours is always loaded; load others with `openProfile`);
    /// `undefined` until it is loaded and written.
    #[wasm_bindgen(unchecked_return_type = "Profile | undefined")]
    pub fn profile(&self, account: &str) -> Result<JsValue, JsValue> {
        let account = account_id(account)?;
        match self.rt.read(None, |e| e.profile(&account)) {
            Some(profile) => Ok(to_js(&Profile::from(profile))?),
            None => Ok(JsValue::UNDEFINED),
        }
    }

    /// Loads `account`'s profile (from the store, then the server) and follows it: `profile`
    /// events tell when it changes.
    #[wasm_bindgen(js_name = openProfile, unchecked_return_type = "Promise<void>")]
    pub fn open_profile(&self, account: String) -> Promise {
        let rt = self.rt.clone();
        promise(async move {
            let doc = DocId::profile(rt.tenant(), &account_id(&account)?);
            rt.request(|e, _| e.open_document(&doc)).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Your preferences for `conv` (all off until you set one with `setPreference`).
    pub fn preferences(&self, conv: &str) -> Result<Ts<Preferences>, JsValue> {
        let conv = conv_id(conv)?;
        let prefs = self.rt.read(ConvPrefs::default(), |e| e.preferences(&conv));
        Ok(Ts::from_rust(&Preferences::from(prefs)).map_err(Failure::from)?)
    }

    /// Your draft for `conv` (`setDraft` saves it, on every device of yours; of an encrypted
    /// conversation, on this device only).
    #[wasm_bindgen(unchecked_return_type = "string | undefined")]
    pub fn draft(&self, conv: &str) -> Result<JsValue, JsValue> {
        let conv = conv_id(conv)?;
        Ok(self
            .rt
            .read(None, |e| e.draft(&conv))
            .map_or(JsValue::UNDEFINED, JsValue::from))
    }

    /// Every saved draft.
    pub fn drafts(&self) -> Vec<Ts<Draft>> {
        let drafts = self
            .rt
            .read(Default::default(), |e| e.private_data().drafts);
        ts_list(drafts.into_iter().map(|(conv, text)| Draft {
            conv: conv.to_string(),
            text,
        }))
    }

    /// Your address book, by id.
    pub fn contacts(&self) -> Vec<Ts<ContactEntry>> {
        let contacts = self.rt.read(Default::default(), |e| e.contacts());
        ts_list(contacts.into_iter().map(|(id, contact)| ContactEntry {
            id: id.to_string(),
            contact: contact.into(),
        }))
    }

    /// Adds or replaces (`contact`) or removes (`null`) the contact `id` of your address book.
    #[wasm_bindgen(js_name = setContact, unchecked_return_type = "Promise<IntentResult>")]
    pub fn set_contact(&self, id: String, contact: Option<Ts<Contact>>) -> Promise {
        let rt = self.rt.clone();
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
            run(&rt, vec![intent], IntentResult::default()).await
        })
    }

    /// Every document this client follows, with the seq its catch-up resumes after.
    pub fn cursors(&self) -> Vec<Ts<Cursor>> {
        let cursors = self.rt.read(Vec::new(), |e| e.cursors());
        ts_list(cursors.into_iter().map(|(doc, seq)| Cursor {
            doc: doc.to_string(),
            seq,
        }))
    }
}

fn ts_list<T: Tsify + Serialize>(items: impl Iterator<Item = T>) -> Vec<Ts<T>> {
    items.filter_map(|item| Ts::from_rust(&item).ok()).collect()
}
