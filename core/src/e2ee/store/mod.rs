//! openmls's storage provider for Confab: a key/value map in memory whose bytes the host saves
//! (`snapshot`), with values encoded compactly.
//!
//! openmls writes its whole message-secrets store (every kept past epoch with its member list)
//! on every encrypt, decrypt and merge. JSON, which openmls's own memory storage uses, writes
//! each byte of a key or a secret as a decimal number; postcard writes it as one byte, which
//! makes those writes several times smaller and faster.
//!
//! Keys are built as openmls's memory storage builds them (label, the key as JSON, the storage
//! version) so that states saved by earlier builds, whose values are JSON, load as they are.
//! Each value starts with a byte naming its encoding: values read from such a state stay JSON
//! until openmls rewrites them, and the few types whose serde form needs a self-describing
//! format stay JSON always (`JSON_LABELS`).
//!
//! The message-secrets store is written split (`split`): each kept past epoch's member list
//! under a key of its own, written when the epoch is archived and deleted with the last value
//! that refers to it, and the rest as one value with the holes' places.

mod provider;
mod split;

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openmls_traits::storage::CURRENT_VERSION;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A value's first byte: how the rest is encoded.
const POSTCARD: u8 = 0;
const JSON: u8 = 1;
/// postcard of `(holes, body)`: `split`'s body and each hole's (offset, epoch); each epoch's
/// member list is a postcard value at `piece_key`.
const SPLIT: u8 = 2;

/// The labels whose values are written split.
const SPLIT_LABELS: &[&[u8]] = &[provider::MESSAGE_SECRETS_LABEL];

/// The label of a kept epoch's member list, under the key of the value it belongs to.
const LEAVES_LABEL: &[u8] = b"MessageSecretsLeaves";

/// `MlsGroupJoinConfig` holds a `PastEpochDeletionPolicy`, whose `Deserialize` accepts two
/// forms through `#[serde(untagged)]`, which only a self-describing format can read.
const JSON_LABELS: &[&[u8]] = &[provider::JOIN_CONFIG_LABEL];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("an MLS value could not be encoded: {0}")]
    Encode(String),
    #[error("a stored MLS value could not be decoded: {0}")]
    Decode(String),
}

/// The storage: storage key → tagged value.
#[derive(Debug, Default)]
pub(crate) struct Store {
    values: RwLock<HashMap<Vec<u8>, Vec<u8>>>,
}

/// A key's part of a storage key: the key as JSON.
fn json(key: &impl Serialize) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(key).map_err(|e| StoreError::Encode(e.to_string()))
}

/// The storage key: label, then the key's part, then the storage version (big-endian).
fn storage_key(label: &[u8], key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(label.len() + key.len() + 2);
    out.extend_from_slice(label);
    out.extend_from_slice(key);
    out.extend_from_slice(&CURRENT_VERSION.to_be_bytes());
    out
}

/// Where the member list of `epoch` of the split value at `key` is held.
fn piece_key(key: &[u8], epoch: u64) -> Vec<u8> {
    let mut part = key.to_vec();
    part.extend_from_slice(&epoch.to_be_bytes());
    storage_key(LEAVES_LABEL, &part)
}

/// A split value's holes (offset, epoch) and its body.
type SplitValue<'a> = (Vec<(u64, u64)>, &'a [u8]);

fn decode_split(tagged: &[u8]) -> Result<SplitValue<'_>, StoreError> {
    match tagged.split_first() {
        Some((&SPLIT, bytes)) => {
            let (holes, body): (Vec<(u64, u64)>, &serde_bytes::Bytes) =
                postcard::from_bytes(bytes).map_err(|e| StoreError::Decode(e.to_string()))?;
            Ok((holes, body))
        }
        _ => Err(StoreError::Decode("not a split value".into())),
    }
}

/// The epochs whose member lists the value `tagged` refers to (none unless it is split).
fn split_epochs(tagged: Option<&Vec<u8>>) -> Vec<u64> {
    match tagged {
        Some(tagged) if tagged.first() == Some(&SPLIT) => decode_split(tagged)
            .map(|(holes, _)| holes.into_iter().map(|(_, epoch)| epoch).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn codec_for(label: &[u8]) -> u8 {
    if JSON_LABELS.contains(&label) {
        JSON
    } else {
        POSTCARD
    }
}

/// Appends `value` to `out` in the encoding `codec` names (without the tag).
fn encode_into(codec: u8, value: &impl Serialize, out: &mut Vec<u8>) -> Result<(), StoreError> {
    let result = if codec == JSON {
        serde_json::to_writer(&mut *out, value).map_err(|e| e.to_string())
    } else {
        postcard::to_extend(value, std::mem::take(out))
            .map(|written| *out = written)
            .map_err(|e| e.to_string())
    };
    result.map_err(StoreError::Encode)
}

fn decode<V: DeserializeOwned>(codec: u8, bytes: &[u8]) -> Result<V, StoreError> {
    let result = if codec == JSON {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    } else {
        postcard::from_bytes(bytes).map_err(|e| e.to_string())
    };
    result.map_err(StoreError::Decode)
}

fn decode_tagged<V: DeserializeOwned>(tagged: &[u8]) -> Result<V, StoreError> {
    match tagged.split_first() {
        Some((&codec @ (POSTCARD | JSON), bytes)) => decode(codec, bytes),
        _ => Err(StoreError::Decode("unknown value encoding".into())),
    }
}

impl Store {
    fn read_map(&self) -> RwLockReadGuard<'_, HashMap<Vec<u8>, Vec<u8>>> {
        // A panic while another thread held the lock leaves the map as it was last written.
        self.values.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_map(&self) -> RwLockWriteGuard<'_, HashMap<Vec<u8>, Vec<u8>>> {
        self.values.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The store's entries, tagged values as they are held (for `snapshot`).
    pub(crate) fn with_entries<R>(&self, f: impl FnOnce(&HashMap<Vec<u8>, Vec<u8>>) -> R) -> R {
        f(&self.read_map())
    }

    /// A store of tagged entries (as `with_entries` gave them).
    pub(crate) fn from_entries(entries: HashMap<Vec<u8>, Vec<u8>>) -> Self {
        Self {
            values: RwLock::new(entries),
        }
    }

    /// A store of the entries of openmls's memory storage, whose values are all JSON.
    pub(crate) fn from_json_entries(entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) -> Self {
        let values = entries
            .into_iter()
            .map(|(k, v)| {
                let mut tagged = Vec::with_capacity(v.len() + 1);
                tagged.push(JSON);
                tagged.extend_from_slice(&v);
                (k, tagged)
            })
            .collect();
        Self::from_entries(values)
    }

    fn put(&self, label: &[u8], key: &[u8], value: &impl Serialize) -> Result<(), StoreError> {
        if SPLIT_LABELS.contains(&label) {
            return self.put_split(label, key, value);
        }
        let key = storage_key(label, key);
        let codec = codec_for(label);
        let mut map = self.write_map();
        // Sized as the value it replaces: the message secrets are megabytes in big groups, and
        // growing a buffer to that size copies it several times over.
        let mut tagged = Vec::with_capacity(map.get(&key).map_or(64, Vec::len));
        tagged.push(codec);
        encode_into(codec, value, &mut tagged)?;
        map.insert(key, tagged);
        Ok(())
    }

    /// Writes `value` split (see `split`), or whole if it is not shaped for that; the member
    /// lists of epochs it no longer keeps are deleted. Every encoding is done before the map
    /// changes, so a failure leaves the value as it was.
    fn put_split(
        &self,
        label: &[u8],
        key: &[u8],
        value: &impl Serialize,
    ) -> Result<(), StoreError> {
        let main = storage_key(label, key);
        let mut map = self.write_map();
        let before = split_epochs(map.get(&main));
        // Only a member list the value held before is reused: one openmls archives again is
        // written again, so a stale list cannot outlive its epoch's first write.
        let stored =
            |epoch: u64| before.contains(&epoch) && map.contains_key(&piece_key(key, epoch));
        let (tagged, pieces) = match split::split(value, &stored) {
            Ok(split) => {
                let holes: Vec<(u64, u64)> =
                    split.holes.iter().map(|h| (h.at as u64, h.epoch)).collect();
                let mut tagged = vec![SPLIT];
                encode_into(
                    POSTCARD,
                    &(&holes, serde_bytes::Bytes::new(&split.body)),
                    &mut tagged,
                )?;
                (tagged, split.holes)
            }
            Err(_) => {
                let mut tagged = vec![POSTCARD];
                encode_into(POSTCARD, value, &mut tagged)?;
                (tagged, Vec::new())
            }
        };
        for epoch in before {
            if !pieces.iter().any(|h| h.epoch == epoch) {
                map.remove(&piece_key(key, epoch));
            }
        }
        for hole in pieces {
            if let Some(fresh) = hole.fresh {
                let mut piece = Vec::with_capacity(fresh.len() + 1);
                piece.push(POSTCARD);
                piece.extend_from_slice(&fresh);
                map.insert(piece_key(key, hole.epoch), piece);
            }
        }
        map.insert(main, tagged);
        Ok(())
    }

    fn get<V: DeserializeOwned>(&self, label: &[u8], key: &[u8]) -> Result<Option<V>, StoreError> {
        let main = storage_key(label, key);
        let map = self.read_map();
        let Some(tagged) = map.get(&main) else {
            return Ok(None);
        };
        if tagged.first() != Some(&SPLIT) {
            return decode_tagged(tagged).map(Some);
        }
        let (holes, body) = decode_split(tagged)?;
        let pieces = holes
            .iter()
            .map(|&(at, epoch)| {
                let piece = map
                    .get(&piece_key(key, epoch))
                    .and_then(|p| match p.split_first() {
                        Some((&POSTCARD, bytes)) => Some(bytes),
                        _ => None,
                    });
                let at = usize::try_from(at).ok();
                at.zip(piece).ok_or_else(|| {
                    StoreError::Decode("a kept epoch's member list is missing".into())
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let whole = split::assemble(body, pieces)
            .ok_or_else(|| StoreError::Decode("a split value's holes are out of place".into()))?;
        decode(POSTCARD, &whole).map(Some)
    }

    /// Deletes the value at `key`, with the member lists it refers to if it is split.
    fn delete(&self, label: &[u8], key: &[u8]) -> Result<(), StoreError> {
        let main = storage_key(label, key);
        let mut map = self.write_map();
        for epoch in split_epochs(map.get(&main)) {
            map.remove(&piece_key(key, epoch));
        }
        map.remove(&main);
        Ok(())
    }

    /// A list value: its encoding and its items, each encoded the same way.
    fn items(tagged: Option<&Vec<u8>>) -> Result<(u8, Vec<Vec<u8>>), StoreError> {
        match tagged {
            None => Ok((POSTCARD, Vec::new())),
            Some(tagged) => {
                let codec = *tagged.first().unwrap_or(&POSTCARD);
                Ok((codec, decode_tagged(tagged)?))
            }
        }
    }

    fn list<V: DeserializeOwned>(&self, label: &[u8], key: &[u8]) -> Result<Vec<V>, StoreError> {
        let key = storage_key(label, key);
        let map = self.read_map();
        let (codec, items) = Self::items(map.get(&key))?;
        items.iter().map(|item| decode(codec, item)).collect()
    }

    /// Adds `item` to the list at `key`, or takes it out (its first equal item) if `remove`.
    fn edit_list(
        &self,
        label: &[u8],
        key: &[u8],
        item: &impl Serialize,
        remove: bool,
    ) -> Result<(), StoreError> {
        let key = storage_key(label, key);
        let mut map = self.write_map();
        // A list keeps the encoding it was written in, so its items stay alike.
        let (codec, mut items) = Self::items(map.get(&key))?;
        let mut encoded = Vec::new();
        encode_into(codec, item, &mut encoded)?;
        if remove {
            if let Some(at) = items.iter().position(|i| *i == encoded) {
                items.remove(at);
            }
        } else {
            items.push(encoded);
        }
        let mut tagged = vec![codec];
        encode_into(codec, &items, &mut tagged)?;
        map.insert(key, tagged);
        Ok(())
    }
}

#[cfg(test)]
mod split_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(store: &Store, label: &[u8], key: &[u8]) -> Option<u8> {
        store.with_entries(|m| m.get(&storage_key(label, key)).map(|v| v[0]))
    }

    #[test]
    fn values_read_as_json_stay_readable_and_are_rewritten_compact() {
        let key = json(&"group").unwrap();
        let old = serde_json::to_vec(&(7u64, vec![1u8, 2, 3])).unwrap();
        let store = Store::from_json_entries([(storage_key(b"Tree", &key), old)]);
        let read: Option<(u64, Vec<u8>)> = store.get(b"Tree", &key).unwrap();
        assert_eq!(read, Some((7, vec![1, 2, 3])));
        assert_eq!(tag(&store, b"Tree", &key), Some(JSON));

        store.put(b"Tree", &key, &(8u64, vec![4u8; 100])).unwrap();
        assert_eq!(tag(&store, b"Tree", &key), Some(POSTCARD));
        let read: Option<(u64, Vec<u8>)> = store.get(b"Tree", &key).unwrap();
        assert_eq!(read, Some((8, vec![4; 100])));
        // One byte each for the tag, the number, the length and every byte.
        store.with_entries(|m| assert_eq!(m[&storage_key(b"Tree", &key)].len(), 103));

        store.put(JSON_LABELS[0], &key, &1u8).unwrap();
        assert_eq!(tag(&store, JSON_LABELS[0], &key), Some(JSON));
        store.delete(b"Tree", &key).unwrap();
        assert_eq!(store.get::<(u64, Vec<u8>)>(b"Tree", &key).unwrap(), None);
    }

    #[test]
    fn lists_keep_the_encoding_they_were_written_in() {
        let key = json(&"group").unwrap();
        let old_items = vec![serde_json::to_vec(&1u32).unwrap()];
        let old = serde_json::to_vec(&old_items).unwrap();
        let store = Store::from_json_entries([(storage_key(b"L", &key), old)]);
        store.edit_list(b"L", &key, &2u32, false).unwrap();
        store.edit_list(b"L", &key, &3u32, false).unwrap();
        store.edit_list(b"L", &key, &2u32, true).unwrap();
        assert_eq!(store.list::<u32>(b"L", &key).unwrap(), vec![1, 3]);
        assert_eq!(tag(&store, b"L", &key), Some(JSON));

        let fresh = json(&"other").unwrap();
        assert!(store.list::<u32>(b"L", &fresh).unwrap().is_empty());
        store.edit_list(b"L", &fresh, &9u32, false).unwrap();
        assert_eq!(store.list::<u32>(b"L", &fresh).unwrap(), vec![9]);
        assert_eq!(tag(&store, b"L", &fresh), Some(POSTCARD));
    }

    #[test]
    fn damaged_values_are_errors() {
        let key = json(&"group").unwrap();
        let entries = [
            (storage_key(b"A", &key), vec![9, 1, 2]),
            (storage_key(b"B", &key), vec![]),
            (storage_key(b"C", &key), vec![POSTCARD, 0xff]),
            (storage_key(b"D", &key), vec![JSON, b'{']),
        ];
        let store = Store::from_entries(entries.into_iter().collect());
        for label in [b"A", b"B", b"C", b"D"] {
            assert!(store.get::<(u64, Vec<u8>)>(label, &key).is_err());
            assert!(store.list::<u32>(label, &key).is_err());
        }
    }
}
