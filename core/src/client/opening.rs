//! Opening sealed messages in the order they were sent (docs/E2EE.md, "Order of opening").
//!
//! A sender's ratchet (openmls) keeps the keys of only 5 messages behind the newest one a
//! device used, and refuses a jump of more than 1,000 ahead: a message opened early either
//! costs the ones sent before it or is refused. So a conversation's messages are opened part
//! by part in part order, each part's in server order, and a part waits while a part before
//! it that this device holds is still catching up. Each part keeps what waits to be opened
//! (`ToOpen`): what arrived, or "all of it" after a snapshot or a restore from the store, so
//! opening reads only the messages that arrived, never the whole history. Nothing is opened
//! offline: the device cannot tell then whether the parts it holds are complete.
//!
//! A message opens only under its MLS sender's account: the device decryption proves sealed
//! it must be of this tenant and of the account the message's clear `author` names, else it
//! is kept undecryptable (`sealed::SENDER_MISMATCH`) and its plaintext is dropped.

use std::collections::{HashMap, HashSet};

use crate::ids::{AccountId, MessageId};

/// What of one part waits to be opened.
#[derive(Debug, Default)]
pub(super) struct ToOpen {
    /// Messages that arrived (created or given new sealed content) and are not opened yet,
    /// or wait for the commits that bring this device to their epoch.
    pub(super) ids: HashSet<MessageId>,
    /// Every message of the part not read yet: after a snapshot, a new generation, a
    /// restore from the store, or an arrival while it was unknown whether the conversation
    /// is encrypted.
    pub(super) all: bool,
    /// Messages sealed in an epoch the group has not reached here yet, with that epoch: each
    /// is tried once the group is there (`ClientEngine::opens_at`).
    pub(super) ahead: HashMap<MessageId, u64>,
}

impl ToOpen {
    pub(super) fn all() -> Self {
        ToOpen {
            ids: HashSet::new(),
            all: true,
            ahead: HashMap::new(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        !self.all && self.ids.is_empty() && self.ahead.is_empty()
    }

    /// Whether something waits here that may open at `epoch`.
    pub(super) fn opens_at(&self, epoch: u64) -> bool {
        self.all || !self.ids.is_empty() || self.ahead.values().any(|e| *e <= epoch)
    }
}

/// One sealed message to open.
pub(super) struct Waiting {
    /// Its seq (0 when not known).
    pub(super) seq: u64,
    pub(super) created_at: i64,
    pub(super) id: MessageId,
    pub(super) sealed: Vec<u8>,
    /// The account its clear `author` names: the one its MLS sender must be of.
    pub(super) author: AccountId,
    /// Whether it is this account's own edit with what this device sealed kept.
    pub(super) mine: bool,
}
