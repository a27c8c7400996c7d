//! Drafts and scheduled messages of encrypted conversations, kept on this device alone
//! (docs/E2EE.md, "Drafts and scheduled messages"). The account's private document, where
//! those of a conversation in the clear live, is stored by the server as it is: these never
//! go there, nor anywhere off this device. The same intents write them (`SetDraft`,
//! `Schedule`, `EditScheduled`, `CancelScheduled`) and the same views read them
//! (`private_data`, `draft`); they are stored under `here/` (`records`).
//!
//! A scheduled one is posted by this engine once its time has come and the engine is online
//! (`tick`, woken by `next_wakeup`): as an ordinary send, sealed when it is written, through
//! the outbox. It leaves the list in the same store write that puts its send in the outbox,
//! so a crash at any point neither drops it nor posts it twice.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::doc::read::Scheduled;
use crate::ids::{ConvId, MessageId};

/// What this device alone keeps.
#[derive(Debug, Default)]
pub(super) struct Here {
    pub(super) drafts: BTreeMap<ConvId, String>,
    pub(super) scheduled: BTreeMap<MessageId, Scheduled>,
    /// Scheduled messages whose send is made but not yet in the outbox (it waits for loads),
    /// by the send's intent id. Never stored: after a restart the message is still listed
    /// and due, and is posted then.
    pub(super) posting: HashMap<u64, MessageId>,
}

/// A stored draft.
#[derive(Serialize, Deserialize)]
pub(super) struct DraftRecord {
    pub(super) conv: ConvId,
    pub(super) text: String,
}

impl Here {
    pub(super) fn is_posting(&self, id: &MessageId) -> bool {
        self.posting.values().any(|p| p == id)
    }

    /// The scheduled messages still listed: not yet handed to the outbox.
    pub(super) fn listed(&self) -> impl Iterator<Item = (&MessageId, &Scheduled)> {
        self.scheduled.iter().filter(|(id, _)| !self.is_posting(id))
    }
}
