//! How this device's MLS state lies in the store (docs/E2EE.md, "On the device"):
//! a small record under `HostKey::Mls` (the device's header and its commits in flight) and one
//! entry per openmls storage entry under `HostKey::Mls`'s key and `/`. A save writes only the
//! entries that changed and deletes those openmls deleted, so a message costs what it changed,
//! not the whole state (which grows with the group and the epochs kept).
//!
//! The key-change notices of each group (`key_changes`) lie beside them, one entry per group
//! under `HostKey::Mls`'s key and `/notices/`, written when a commit brings one; the contacts
//! the person marked verified (`verified`) in one entry under `/verified`.
//!
//! Earlier builds saved the whole state in the record (`Whole`): it loads, and the engine then
//! writes it in this layout.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use super::engine::ClientError;
use super::key_changes::{Kept, Stored};
use super::mls::Committing;
use super::records::{cbor, uncbor, HostKey};
use super::store::StoreOp;
use crate::e2ee::{Device, StateChange};

/// The record under `HostKey::Mls`.
#[derive(Serialize, Deserialize)]
pub(super) struct Record {
    /// `Device::header`.
    pub(super) header: ByteBuf,
    pub(super) committing: BTreeMap<u64, Committing>,
}

/// The record as earlier builds wrote it: the whole state (`Device::to_bytes`).
#[derive(Serialize, Deserialize)]
pub(super) struct Whole {
    pub(super) device: ByteBuf,
    pub(super) committing: BTreeMap<u64, Committing>,
}

/// One storage entry as stored: its storage key, its value, and the SHA-256 of both, which
/// refuses a damaged entry before openmls reads it.
#[derive(Serialize, Deserialize)]
struct Entry {
    key: ByteBuf,
    value: ByteBuf,
    digest: ByteBuf,
}

/// What a host's store held of the device, read back.
pub(super) struct Loaded {
    pub(super) device: Device,
    pub(super) committing: BTreeMap<u64, Committing>,
    /// The record as stored (`None`: to be written, with every entry: a migration).
    pub(super) record: Option<Vec<u8>>,
    /// Stored entries to delete (left beside a whole-state record).
    pub(super) stale: Vec<String>,
    /// Per group, its key-change notices.
    pub(super) notices: HashMap<Vec<u8>, Vec<Kept>>,
    /// The contacts marked verified, each with its devices' fingerprint then.
    pub(super) verified: BTreeMap<crate::ids::AccountId, String>,
}

fn corrupt(what: impl std::fmt::Display) -> ClientError {
    ClientError::Corrupt(format!("MLS device: {what}"))
}

/// The store key of the storage entry `key`: a digest of it (openmls's keys are long JSON),
/// under the prefix.
fn entry_key(key: &[u8]) -> String {
    let digest = Sha256::digest(key);
    format!("{}/{}", HostKey::Mls.key(), hex::encode(&digest[..16]))
}

/// The store key of `group`'s key-change notices.
pub(super) fn notices_key(group: &[u8]) -> String {
    format!("{}{}", notices_prefix(), hex::encode(group))
}

fn notices_prefix() -> String {
    format!("{}/notices/", HostKey::Mls.key())
}

/// The store key of the contacts marked verified.
pub(super) fn verified_key() -> String {
    format!("{}/verified", HostKey::Mls.key())
}

fn digest(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update((key.len() as u64).to_be_bytes());
    hasher.update(key);
    hasher.update(value);
    hasher.finalize().to_vec()
}

fn put_entry(key: &[u8], value: &[u8]) -> StoreOp {
    let entry = Entry {
        key: ByteBuf::from(key),
        value: ByteBuf::from(value),
        digest: ByteBuf::from(digest(key, value)),
    };
    StoreOp::Put(entry_key(key), cbor(&entry))
}

/// The ops that save `changes` (`Device::take_changes`).
pub(super) fn change_ops(changes: Vec<StateChange>) -> Vec<StoreOp> {
    changes
        .into_iter()
        .map(|(key, value)| match value {
            Some(value) => put_entry(&key, &value),
            None => StoreOp::Delete(entry_key(&key)),
        })
        .collect()
}

/// The ops that save every entry of `device` (after a migration).
pub(super) fn all_ops(device: &Device) -> Vec<StoreOp> {
    device
        .entries()
        .iter()
        .map(|(key, value)| put_entry(key, value))
        .collect()
}

pub(super) fn record(device: &Device, committing: &BTreeMap<u64, Committing>) -> Vec<u8> {
    cbor(&Record {
        header: ByteBuf::from(device.header()),
        committing: committing.clone(),
    })
}

/// The device from `saved`, the store's entries under `HostKey::Mls`'s key (its record and
/// the entries under the prefix); `None` if there are none.
pub(super) fn load(saved: &[(String, Vec<u8>)]) -> Result<Option<Loaded>, ClientError> {
    let prefix = format!("{}/", HostKey::Mls.key());
    let mut record = None;
    let mut entries = Vec::new();
    let mut notices = HashMap::new();
    let mut verified = BTreeMap::new();
    for (key, value) in saved {
        if key == HostKey::Mls.key() {
            record = Some(value);
        } else if *key == verified_key() {
            // A damaged entry costs the marks (they read "unverified"), not the device.
            verified = uncbor(value).unwrap_or_default();
        } else if let Some(group) = key.strip_prefix(&notices_prefix()) {
            // A damaged list costs its notices, not the device.
            if let (Ok(group), Ok(kept)) = (hex::decode(group), uncbor::<Vec<Stored>>(value)) {
                notices.insert(
                    group,
                    kept.into_iter().filter_map(Kept::from_stored).collect(),
                );
            }
        } else if key.starts_with(&prefix) {
            entries.push((key, value));
        }
    }
    let Some(record) = record else {
        return match entries.is_empty() && notices.is_empty() && verified.is_empty() {
            true => Ok(None),
            false => Err(corrupt("entries without their record")),
        };
    };
    if let Ok(whole) = uncbor::<Whole>(record) {
        let device = Device::from_bytes(&whole.device).map_err(corrupt)?;
        return Ok(Some(Loaded {
            device,
            committing: whole.committing,
            record: None,
            stale: entries.into_iter().map(|(k, _)| k.clone()).collect(),
            notices,
            verified,
        }));
    }
    let parsed: Record = uncbor(record)?;
    let mut storage = HashMap::with_capacity(entries.len());
    for (name, bytes) in entries {
        let entry: Entry = uncbor(bytes)?;
        if *name != entry_key(&entry.key) || entry.digest[..] != digest(&entry.key, &entry.value) {
            return Err(corrupt(format!("the entry {name} is damaged")));
        }
        storage.insert(entry.key.into_vec(), entry.value.into_vec());
    }
    let device = Device::from_parts(&parsed.header, storage).map_err(corrupt)?;
    Ok(Some(Loaded {
        device,
        committing: parsed.committing,
        record: Some(record.clone()),
        stale: Vec::new(),
        notices,
        verified,
    }))
}
