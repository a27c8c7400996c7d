//! The outbox's records: an intent with the changes it wrote and where it stands. The
//! engine owns the outbox (`ClientEngine::outbox`, by intent id, oldest first); the retry
//! part and the store records read and update its entries through these types.

use std::collections::BTreeMap;

use automerge::Change;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::intent::Intent;
use crate::ids::DocId;

/// Where an intent stands. Every intent ends accepted or rejected with a reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum IntentStatus {
    /// Written locally, not yet sent (offline, or held behind an earlier intent of the same
    /// conversation that waits for a resend).
    Pending,
    /// Sent, no answer yet.
    Sent,
    /// The server could not take it yet (a transient error, no answer in time, or it waits
    /// for an earlier intent of this device that could not be taken): it is resent in order
    /// with backoff until it is accepted or rejected for a reason about itself.
    Retrying,
    Accepted,
    /// `code` for programs (a `refusal::Code`), `reason` for people (a sentence with names
    /// and titles, `refusal`), `detail` the technical text (the server's or the policy's).
    Rejected {
        code: String,
        reason: String,
        #[serde(default)]
        detail: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct PendingChange {
    pub(super) doc: String,
    pub(super) hash: ByteBuf,
    pub(super) bytes: ByteBuf,
    pub(super) acked: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct OutboxEntry {
    pub(super) id: u64,
    pub(super) intent: Intent,
    pub(super) created_at: i64,
    pub(super) status: IntentStatus,
    pub(super) changes: Vec<PendingChange>,
    /// Waits for the next resend round (retry bookkeeping lives in memory only: a restart
    /// reconnects and resends everything anyway).
    #[serde(skip)]
    pub(super) resend: bool,
    /// Device time of the last send while no answer settled it (for the answer timeout).
    #[serde(skip)]
    pub(super) sent_at: Option<i64>,
}

impl OutboxEntry {
    pub(super) fn is_final(&self) -> bool {
        matches!(
            self.status,
            IntentStatus::Accepted | IntentStatus::Rejected { .. }
        )
    }
}

/// The outbox: entries by intent id, oldest first.
pub(super) type Outbox = BTreeMap<u64, OutboxEntry>;

/// The entry and the index of its change to `doc` whose hash is `hash`.
pub(super) fn find(outbox: &Outbox, doc: &str, hash: &[u8]) -> Option<(u64, usize)> {
    outbox.values().find_map(|e| {
        e.changes
            .iter()
            .position(|c| c.doc == doc && c.hash.as_slice() == hash)
            .map(|i| (e.id, i))
    })
}

/// This device's changes to `doc` the server has not accepted yet, oldest intent first
/// (a rejected intent's are not: they never return to the document).
pub(super) fn pending_changes(outbox: &Outbox, doc: &DocId) -> Vec<Change> {
    let doc = doc.to_string();
    outbox
        .values()
        .filter(|e| !e.is_final())
        .flat_map(|e| e.changes.iter())
        .filter(|c| c.doc == doc && !c.acked)
        .filter_map(|c| Change::try_from(&c.bytes[..]).ok())
        .collect()
}

/// Two documents whose changes are checked against each other: the same document, or
/// documents of one conversation (a message needs its conversation and the membership in it).
pub(super) fn related(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (DocId::parse(a), DocId::parse(b)) {
        (Ok(a), Ok(b)) => a.conv_id().is_some() && a.conv_id() == b.conv_id(),
        _ => false,
    }
}
