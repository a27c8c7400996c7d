//! One device of one account: its own actor, its own replicas, its sync cursors. It writes
//! through the real `doc::write` functions, as an app does.

use std::collections::HashMap;

use anyhow::{anyhow, Result};
use confab_core::automerge::{ActorId, Automerge, Change, ChangeHash};
use confab_core::doc::{self, DocError, IntentTag};
use confab_core::hub::Hub;
use confab_core::ids::{AccountId, DocId};
use confab_core::policy::Author;
use confab_core::protocol::SeqChange;

use crate::ids::acc;

/// The device every test connection names in its `hello`, and every test device's author is
/// on: an MLS commit must come from it.
pub const DEVICE: &str = "e2e";

/// A device: `account` and `author` name the same account (text for frames and tokens,
/// typed for the policy).
#[derive(Debug, Clone)]
pub struct Device {
    pub account: String,
    pub author: Author,
    pub actor: ActorId,
    pub docs: HashMap<DocId, Automerge>,
    /// Per document: the last seq this device caught up to (wire tests).
    pub cursors: HashMap<DocId, u64>,
    intents: u64,
}

impl Device {
    /// Device number `device` of `account`; the actor is the account's first 15 bytes and
    /// the device number, so the same (account, device) is the same actor in every test.
    pub fn new(account: &str, device: u8) -> Self {
        let mut bytes = [0u8; 16];
        for (i, b) in account.bytes().take(15).enumerate() {
            bytes[i] = b;
        }
        bytes[15] = device;
        Device {
            account: account.to_owned(),
            author: Author::user(acc(account))
                .on(confab_core::ids::DeviceId::new(DEVICE).expect("a valid device literal")),
            actor: ActorId::from(&bytes[..]),
            docs: HashMap::new(),
            cursors: HashMap::new(),
            intents: 0,
        }
    }

    /// A device of a service account.
    pub fn service(account: &str) -> Self {
        let mut d = Device::new(account, 0);
        d.author = Author::service(acc(account));
        d
    }

    pub fn account_id(&self) -> AccountId {
        self.author.account.clone()
    }

    /// The local replica, created from the genesis on first use.
    pub fn doc(&mut self, id: &DocId) -> &mut Automerge {
        let actor = self.actor.clone();
        self.docs.entry(id.clone()).or_insert_with(|| {
            doc::genesis(id)
                .expect("every valid document id has a genesis")
                .with_actor(actor)
        })
    }

    fn next_tag(&mut self) -> IntentTag {
        self.intents += 1;
        IntentTag::new(format!("{}-{}", self.account, self.intents), "test")
    }

    /// Runs one intent on the local replica and returns the change it produced.
    pub fn write(
        &mut self,
        id: &DocId,
        f: impl FnOnce(&mut Automerge, &IntentTag) -> Result<Option<ChangeHash>, DocError>,
    ) -> Result<Change> {
        let tag = self.next_tag();
        let doc = self.doc(id);
        f(doc, &tag).map_err(|e| anyhow!("{e}"))?;
        doc.get_last_local_change()
            .ok_or_else(|| anyhow!("the intent wrote nothing"))
    }

    /// Runs one intent; `None` when it fails locally or changes nothing.
    pub fn try_write(
        &mut self,
        id: &DocId,
        f: impl FnOnce(&mut Automerge, &IntentTag) -> Result<Option<ChangeHash>, DocError>,
    ) -> Option<Change> {
        let tag = self.next_tag();
        let doc = self.doc(id);
        let before = doc.get_heads();
        f(doc, &tag).ok()??;
        (doc.get_heads() != before)
            .then(|| doc.get_last_local_change())
            .flatten()
    }

    /// Pulls every change of `id` the in-memory acceptor holds.
    pub fn pull(&mut self, hub: &Hub, id: &DocId) {
        let changes: Vec<Change> = hub
            .changes_after(id, 0)
            .into_iter()
            .map(|(_, c)| c)
            .collect();
        self.doc(id)
            .apply_changes(changes)
            .expect("accepted changes apply to a replica");
    }

    /// Applies catch-up or pushed changes and moves the cursor.
    pub fn apply(&mut self, id: &DocId, changes: &[SeqChange]) -> Result<()> {
        let decoded = changes
            .iter()
            .map(|c| Change::try_from(&c.change[..]).map_err(|e| anyhow!("{e}")))
            .collect::<Result<Vec<_>>>()?;
        self.doc(id)
            .apply_changes(decoded)
            .map_err(|e| anyhow!("{e}"))?;
        if let Some(last) = changes.last() {
            let cursor = self.cursors.entry(id.clone()).or_insert(0);
            *cursor = (*cursor).max(last.seq);
        }
        Ok(())
    }
}
