//! The store's layout: every key the engine and its hosts use is named here, and nowhere
//! else, with the records under them and the reads that bring them back.
//!
//! Keys: `docs/<doc>` (the index of stored documents), `snap/<doc>` (a snapshot: the
//! accepted document, its cursor, its messages' seqs; its genesis from the document's first
//! write, absent in stores written before that), `chg/<doc>/<seq>` (accepted changes
//! since the snapshot), `chg/<doc>/<seq>-<hash>` (an ack record: this device's change,
//! accepted with that seq, whose seq has not arrived in order yet), `out/<id>` (the outbox),
//! `meta/…` (the host's identity records, see [`HostKey`]), `open/<doc>/<message>` (what
//! was read of a sealed message), `here/draft/<conv>` and `here/scheduled/<message>` (a draft
//! and a scheduled message of an encrypted conversation, kept on this device alone:
//! `here`), and the device's search index (`client::search`):
//! `sx/m/<doc>/<message>` (a message's record: its text and the fields filters read),
//! `sx/p/<term>/<when>/<bucket>/<message>` (a posting per distinct term, newest first in
//! key order, with the filters' fields), `sx/b/<number>` (a bucket's number in postings),
//! `sx/w/<term>` (the term dictionary), `sx/h/<doc>` (what a bucket's entries are as of)
//! and `sx/v` (the layout's version).

use std::collections::{BTreeSet, HashMap};

use automerge::ChangeHash;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::ask::Read;
use super::error::ClientError;
use crate::ids::{ConvId, DocId, MessageId};

/// Prefix of the index of stored documents (`docs/<doc id>` → empty value).
pub(super) const DOCS_PREFIX: &str = "docs/";
const OUTBOX_PREFIX: &str = "out/";
/// Prefix of what this device alone keeps (`here`): drafts and scheduled messages of
/// encrypted conversations.
const HERE_PREFIX: &str = "here/";
const HERE_DRAFTS: &str = "here/draft/";
const HERE_SCHEDULED: &str = "here/scheduled/";

/// This device's draft of encrypted conversation `conv`.
pub(super) fn key_here_draft(conv: &ConvId) -> String {
    format!("{HERE_DRAFTS}{conv}")
}

/// This device's scheduled message `id` of an encrypted conversation.
pub(super) fn key_here_scheduled(id: &MessageId) -> String {
    format!("{HERE_SCHEDULED}{id}")
}

/// Records a host keeps beside the engine's data, in the same store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKey {
    /// This device's actor: 16 random bytes chosen once.
    Actor,
    /// `<tenant>/<account>`: one store belongs to one account.
    Account,
    /// The device name sent in `hello`.
    Device,
    /// This device's MLS state: its signature key, key packages' private keys and the
    /// secrets of its groups, as a record here and one entry per openmls storage entry under
    /// this key and `/`, with each group's key-change notices under this key and
    /// `/notices/` (`client/mls_saved.rs`; hosts read the prefix for
    /// `ClientEngine::attach_device`).
    Mls,
}

impl HostKey {
    pub fn key(self) -> &'static str {
        match self {
            HostKey::Actor => "meta/actor",
            HostKey::Account => "meta/account",
            HostKey::Device => "meta/device",
            HostKey::Mls => "meta/mls",
        }
    }
}

/// A store entry: key and value.
pub(super) type Entry = (String, Vec<u8>);

/// What was read of a sealed message, by its id (`sealed::Opened`, as stored).
pub(super) type OpenedEntry = (MessageId, Vec<u8>);

/// The reads of the start-up load: the outbox, the index, what this device alone keeps.
pub(super) fn start_reads() -> Vec<Read> {
    vec![
        Read::Prefix(OUTBOX_PREFIX.to_owned()),
        Read::Prefix(HERE_PREFIX.to_owned()),
        Read::Prefix(DOCS_PREFIX.to_owned()),
        Read::Key(KEY_INDEX_VERSION.to_owned()),
        Read::Prefix(BUCKET_NUMBERS_PREFIX.to_owned()),
    ]
}

/// The reads that bring one stored document back (a message bucket with what this device
/// read of its sealed messages).
pub(super) fn doc_reads(doc: &DocId) -> Vec<Read> {
    let mut reads = vec![Read::Key(key_snapshot(doc)), Read::Prefix(key_changes(doc))];
    if matches!(doc.target(), crate::ids::DocTarget::Msgs(..)) {
        reads.push(Read::Prefix(opened_prefix(doc)));
        reads.push(Read::Prefix(search_records_prefix(doc)));
        reads.push(Read::Key(key_index_heads(doc)));
    }
    reads
}

const OPENED_PREFIX: &str = "open/";

fn opened_prefix(doc: &DocId) -> String {
    format!("{OPENED_PREFIX}{doc}/")
}

/// What this device read of sealed message `id` of bucket `doc` (`sealed::Opened`).
pub(super) fn key_opened(doc: &DocId, id: &MessageId) -> String {
    format!("{}{id}", opened_prefix(doc))
}

/// The search index's layout version (`sx/v`): a store whose index is older is migrated
/// from its records at start (`search::index::migrate`).
pub(super) const KEY_INDEX_VERSION: &str = "sx/v";
/// Prefix of the postings of the first layout (`sx/t/<term>/<doc>/<message>`), removed by
/// the migration.
pub(super) const OLD_POSTINGS_PREFIX: &str = "sx/t/";
/// Prefix of the search index's postings (`sx/p/<term>/<when>/<bucket>/<message>`).
pub(super) const POSTINGS_PREFIX: &str = "sx/p/";
/// Prefix of the bucket numbers (`sx/b/<number>` → the bucket's document id).
pub(super) const BUCKET_NUMBERS_PREFIX: &str = "sx/b/";
/// Prefix of the term dictionary (`sx/w/<term>`, empty values).
pub(super) const TERMS_PREFIX: &str = "sx/w/";

/// The postings of `term`, or (`prefix`) of every term that starts with it. Terms hold
/// letters and digits only, so the `/` after one ends it.
pub(super) fn posting_prefix(term: &str, prefix: bool) -> String {
    if prefix {
        format!("{POSTINGS_PREFIX}{term}")
    } else {
        format!("{POSTINGS_PREFIX}{term}/")
    }
}

/// A posting: `at` is its place in a term's postings (`search::index::place`: newest
/// first, then bucket number and message).
pub(super) fn key_posting(term: &str, at: &str) -> String {
    format!("{POSTINGS_PREFIX}{term}/{at}")
}

pub(super) fn key_bucket_number(number: u32) -> String {
    format!("{BUCKET_NUMBERS_PREFIX}{number}")
}

pub(super) fn key_term(term: &str) -> String {
    format!("{TERMS_PREFIX}{term}")
}

/// Prefix of every message's search record.
pub(super) const SEARCH_RECORDS_PREFIX: &str = "sx/m/";

/// The search records of bucket `doc`'s messages.
pub(super) fn search_records_prefix(doc: &DocId) -> String {
    format!("{SEARCH_RECORDS_PREFIX}{doc}/")
}

pub(super) fn key_search_record(doc: &DocId, id: &MessageId) -> String {
    format!("{}{id}", search_records_prefix(doc))
}

/// What bucket `doc`'s index entries are as of.
pub(super) fn key_index_heads(doc: &DocId) -> String {
    format!("sx/h/{doc}")
}

/// The start-up answer, split.
pub(super) struct StartEntries {
    pub(super) outbox: Vec<Entry>,
    /// The index of stored documents.
    pub(super) index: BTreeSet<DocId>,
    /// The search index's version and bucket numbers.
    pub(super) search: Vec<Entry>,
    /// This device's drafts and scheduled messages (`here`).
    pub(super) drafts: Vec<Vec<u8>>,
    pub(super) scheduled: Vec<Vec<u8>>,
}

pub(super) fn split_start(entries: Vec<Entry>) -> StartEntries {
    let mut outbox = Vec::new();
    let mut index = BTreeSet::new();
    let mut search = Vec::new();
    let (mut drafts, mut scheduled) = (Vec::new(), Vec::new());
    for (key, value) in entries {
        if key.starts_with("sx/") {
            search.push((key, value));
            continue;
        }
        if key.starts_with(HERE_DRAFTS) {
            drafts.push(value);
            continue;
        }
        if key.starts_with(HERE_SCHEDULED) {
            scheduled.push(value);
            continue;
        }
        if let Some(doc) = key.strip_prefix(DOCS_PREFIX) {
            // An index entry that is no document id is not ours: skipped, not fatal.
            if let Ok(id) = DocId::parse(doc) {
                index.insert(id);
            }
        } else if key.starts_with(OUTBOX_PREFIX) {
            outbox.push((key, value));
        }
    }
    outbox.sort_by(|a, b| a.0.cmp(&b.0));
    StartEntries {
        outbox,
        index,
        search,
        drafts,
        scheduled,
    }
}

/// A document's answer, split: its snapshot, its change records (in key order), what was
/// read of its sealed messages (by message id) and its search index entries.
pub(super) struct DocEntries {
    pub(super) snapshot: Option<Vec<u8>>,
    pub(super) changes: Vec<Entry>,
    pub(super) opened: Vec<OpenedEntry>,
    pub(super) search: Vec<Entry>,
}

pub(super) fn split_doc(doc: &DocId, entries: Vec<Entry>) -> DocEntries {
    let snap = key_snapshot(doc);
    let opened_at = opened_prefix(doc);
    let mut snapshot = None;
    let mut changes = Vec::new();
    let mut opened = Vec::new();
    let mut search = Vec::new();
    for (key, value) in entries {
        if key.starts_with("sx/") {
            search.push((key, value));
        } else if key == snap {
            snapshot = Some(value);
        } else if let Some(id) = key.strip_prefix(&opened_at) {
            if let Ok(id) = MessageId::new(id) {
                opened.push((id, value));
            }
        } else {
            changes.push((key, value));
        }
    }
    changes.sort_by(|a, b| a.0.cmp(&b.0));
    DocEntries {
        snapshot,
        changes,
        opened,
        search,
    }
}

/// Accepted changes are folded into a snapshot every this many.
pub(super) const SNAPSHOT_EVERY: usize = 256;

/// A stored snapshot: the accepted document, its cursor and its messages' server order.
#[derive(Serialize, Deserialize)]
pub(super) struct SnapshotRecord {
    pub(super) seq: u64,
    pub(super) data: ByteBuf,
    pub(super) message_seq: HashMap<MessageId, u64>,
}

pub(super) fn key_snapshot(doc: &DocId) -> String {
    format!("snap/{doc}")
}
pub(super) fn key_changes(doc: &DocId) -> String {
    format!("chg/{doc}/")
}
pub(super) fn key_change(doc: &DocId, seq: u64) -> String {
    format!("chg/{doc}/{seq:020}")
}
pub(super) fn key_ack(doc: &DocId, seq: u64, hash: &ChangeHash) -> String {
    format!("chg/{doc}/{seq:020}-{hash}")
}
pub(super) fn key_outbox(id: u64) -> String {
    format!("out/{id:020}")
}

/// The seq in a change key, and whether the key is an ack record.
pub(super) fn parse_change_key(key: &str) -> Option<(u64, bool)> {
    let last = key.rsplit('/').next()?;
    match last.split_once('-') {
        Some((seq, _)) => Some((seq.parse().ok()?, true)),
        None => Some((last.parse().ok()?, false)),
    }
}

pub(super) fn cbor<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    if ciborium::ser::into_writer(value, &mut out).is_err() {
        out.clear();
    }
    out
}

pub(super) fn uncbor<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ClientError> {
    ciborium::de::from_reader(bytes).map_err(|e| ClientError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ids::{ConvId, TenantId};

    #[test]
    fn change_keys_tell_ack_records_apart() {
        let tenant = TenantId::new("acme").unwrap();
        let doc = DocId::msgs(&tenant, &ConvId::new("g1").unwrap(), 20_000);
        let hash = ChangeHash([7; 32]);
        assert_eq!(parse_change_key(&key_change(&doc, 42)), Some((42, false)));
        assert_eq!(
            parse_change_key(&key_ack(&doc, 43, &hash)),
            Some((43, true))
        );
        assert!(key_ack(&doc, 43, &hash).starts_with(&key_changes(&doc)));
        // Ack records sort right after the change of the same seq, before the next seq.
        assert!(key_change(&doc, 43) < key_ack(&doc, 43, &hash));
        assert!(key_ack(&doc, 43, &hash) < key_change(&doc, 44));
    }
}
