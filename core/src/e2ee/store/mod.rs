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
//! and its secrets under keys of their own, written when they change and deleted with the last
//! value that refers to them, and the rest as one value with the holes' places, its runs of
//! zeros packed (`pack_zeros`).
//!
//! The store remembers which keys it wrote or deleted since it was last asked
//! (`take_changes`), so a host saves only those entries, not the whole state.

mod provider;
mod split;

use split::Piece;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openmls_traits::storage::CURRENT_VERSION;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A value's first byte: how the rest is encoded.
const POSTCARD: u8 = 0;
const JSON: u8 = 1;
/// postcard of `(holes, body)`: `split`'s body and each hole's (offset, epoch); each epoch's
/// member list is a postcard value at `piece_key`. Written by earlier builds, read still.
const SPLIT: u8 = 2;
/// postcard of `(holes, body)`: `split`'s body with its runs of zeros packed (`pack_zeros`)
/// and each hole's (offset in the unpacked body, epoch, piece: 0 the member list, 1 the
/// secrets); each piece is a postcard value at `piece_key`.
const SPLIT_PIECES: u8 = 3;

/// The most bytes a packed body unpacks to: a damaged run length must not allocate more.
const MAX_UNPACKED: usize = 1 << 28;

/// The labels whose values are written split.
const SPLIT_LABELS: &[&[u8]] = &[provider::MESSAGE_SECRETS_LABEL];

/// The labels of a kept epoch's member list and of its secrets, under the key of the value
/// they belong to.
const LEAVES_LABEL: &[u8] = b"MessageSecretsLeaves";
const SECRETS_LABEL: &[u8] = b"MessageSecretsEpoch";

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
    /// The keys written or deleted since the last `take_changes`.
    changed: Mutex<BTreeSet<Vec<u8>>>,
}

/// A changed entry: its storage key and its tagged value, or `None` if it was deleted.
pub(crate) type Change = (Vec<u8>, Option<Vec<u8>>);

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

/// Where `piece` of `epoch` of the split value at `key` is held.
fn piece_key(key: &[u8], piece: Piece, epoch: u64) -> Vec<u8> {
    let mut part = key.to_vec();
    part.extend_from_slice(&epoch.to_be_bytes());
    let label = match piece {
        Piece::Leaves => LEAVES_LABEL,
        Piece::Secrets => SECRETS_LABEL,
    };
    storage_key(label, &part)
}

/// A split value's holes (offset, epoch, piece) and its body.
type SplitValue<'a> = (Vec<(u64, u64, Piece)>, std::borrow::Cow<'a, [u8]>);

/// `bytes` with each run of zeros written as one zero and the run's length (a LEB128
/// varint). The current epoch's secrets hold a byte for each empty node of the secret tree
/// and each device without a ratchet, mostly zeros (postcard's `None`), which a message
/// would otherwise write, a few bytes a device, on every message.
fn pack_zeros(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() / 2 + 8);
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != 0 {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let run = bytes[i..].iter().take_while(|&&b| b == 0).count();
        out.push(0);
        let mut n = run as u64;
        loop {
            let low = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(low);
                break;
            }
            out.push(low | 0x80);
        }
        i += run;
    }
    out
}

/// The bytes `pack_zeros` packed; `None` if they are damaged.
fn unpack_zeros(packed: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(packed.len() * 2);
    let mut bytes = packed.iter();
    while let Some(&b) = bytes.next() {
        if b != 0 {
            out.push(b);
            continue;
        }
        let mut run: u64 = 0;
        for shift in (0..64).step_by(7) {
            let next = *bytes.next()?;
            run |= u64::from(next & 0x7f) << shift;
            if next & 0x80 == 0 {
                break;
            }
        }
        let run = usize::try_from(run).ok()?;
        if run == 0 || out.len().saturating_add(run) > MAX_UNPACKED {
            return None;
        }
        out.resize(out.len() + run, 0);
    }
    Some(out)
}

fn is_split(tagged: &[u8]) -> bool {
    matches!(tagged.first(), Some(&(SPLIT | SPLIT_PIECES)))
}

fn decode_split(tagged: &[u8]) -> Result<SplitValue<'_>, StoreError> {
    let bad = |e: postcard::Error| StoreError::Decode(e.to_string());
    match tagged.split_first() {
        Some((&SPLIT, bytes)) => {
            let (holes, body): (Vec<(u64, u64)>, &serde_bytes::Bytes) =
                postcard::from_bytes(bytes).map_err(bad)?;
            let holes = holes
                .into_iter()
                .map(|(at, epoch)| (at, epoch, Piece::Leaves))
                .collect();
            Ok((holes, std::borrow::Cow::Borrowed(&body[..])))
        }
        Some((&SPLIT_PIECES, bytes)) => {
            let (holes, body): (Vec<(u64, u64, u8)>, &serde_bytes::Bytes) =
                postcard::from_bytes(bytes).map_err(bad)?;
            let holes = holes
                .into_iter()
                .map(|(at, epoch, piece)| match piece {
                    0 => Ok((at, epoch, Piece::Leaves)),
                    1 => Ok((at, epoch, Piece::Secrets)),
                    _ => Err(StoreError::Decode("an unknown piece".into())),
                })
                .collect::<Result<_, _>>()?;
            let body = unpack_zeros(body)
                .ok_or_else(|| StoreError::Decode("a split value's body is damaged".into()))?;
            Ok((holes, std::borrow::Cow::Owned(body)))
        }
        _ => Err(StoreError::Decode("not a split value".into())),
    }
}

/// The pieces the value `tagged` refers to (none unless it is split).
fn split_pieces(tagged: Option<&Vec<u8>>) -> Vec<(Piece, u64)> {
    match tagged {
        Some(tagged) if is_split(tagged) => decode_split(tagged)
            .map(|(holes, _)| {
                holes
                    .into_iter()
                    .map(|(_, epoch, piece)| (piece, epoch))
                    .collect()
            })
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

    /// A store of tagged entries (as `with_entries` gave them), with no changes to save.
    pub(crate) fn from_entries(entries: HashMap<Vec<u8>, Vec<u8>>) -> Self {
        Self {
            values: RwLock::new(entries),
            changed: Mutex::default(),
        }
    }

    fn changed(&self) -> std::sync::MutexGuard<'_, BTreeSet<Vec<u8>>> {
        self.changed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that `key` was written or deleted (called with the map's write lock held, so
    /// a `take_changes` sees the value the change left).
    fn touch(&self, key: &[u8]) {
        self.changed().insert(key.to_vec());
    }

    /// The entries written or deleted since the last call, each with its value now (`None`:
    /// deleted), in key order; the store then has no changes to save.
    pub(crate) fn take_changes(&self) -> Vec<Change> {
        let map = self.read_map();
        let keys = std::mem::take(&mut *self.changed());
        keys.into_iter()
            .map(|key| {
                let value = map.get(&key).cloned();
                (key, value)
            })
            .collect()
    }

    /// Forgets the changes not yet taken (the whole state was saved some other way).
    pub(crate) fn clear_changes(&self) {
        self.changed().clear();
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
        self.touch(&key);
        map.insert(key, tagged);
        Ok(())
    }

    /// Writes `value` split (see `split`), or whole if it is not shaped for that; the pieces
    /// of epochs it no longer keeps are deleted. Every encoding is done before the map
    /// changes, so a failure leaves the value as it was.
    fn put_split(
        &self,
        label: &[u8],
        key: &[u8],
        value: &impl Serialize,
    ) -> Result<(), StoreError> {
        let main = storage_key(label, key);
        let mut map = self.write_map();
        let before = split_pieces(map.get(&main));
        // Only a piece the value held before is reused: a member list openmls archives again
        // is written again, so a stale list cannot outlive its epoch's first write.
        let held = &*map;
        let stored = |piece: Piece, epoch: u64| -> Option<&[u8]> {
            if !before.contains(&(piece, epoch)) {
                return None;
            }
            match held.get(&piece_key(key, piece, epoch))?.split_first() {
                Some((&POSTCARD, bytes)) => Some(bytes),
                _ => None,
            }
        };
        let (tagged, holes) = match split::split(value, &stored) {
            Ok(split) => {
                let places: Vec<(u64, u64, u8)> = split
                    .holes
                    .iter()
                    .map(|h| (h.at as u64, h.epoch, h.piece as u8))
                    .collect();
                let mut tagged = vec![SPLIT_PIECES];
                let body = pack_zeros(&split.body);
                encode_into(
                    POSTCARD,
                    &(&places, serde_bytes::Bytes::new(&body)),
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
        for (piece, epoch) in before {
            if !holes.iter().any(|h| h.piece == piece && h.epoch == epoch) {
                let at = piece_key(key, piece, epoch);
                self.touch(&at);
                map.remove(&at);
            }
        }
        for hole in holes {
            if let Some(fresh) = hole.fresh {
                let mut bytes = Vec::with_capacity(fresh.len() + 1);
                bytes.push(POSTCARD);
                bytes.extend_from_slice(&fresh);
                let at = piece_key(key, hole.piece, hole.epoch);
                self.touch(&at);
                map.insert(at, bytes);
            }
        }
        self.touch(&main);
        map.insert(main, tagged);
        Ok(())
    }

    fn get<V: DeserializeOwned>(&self, label: &[u8], key: &[u8]) -> Result<Option<V>, StoreError> {
        let main = storage_key(label, key);
        let map = self.read_map();
        let Some(tagged) = map.get(&main) else {
            return Ok(None);
        };
        if !is_split(tagged) {
            return decode_tagged(tagged).map(Some);
        }
        let (holes, body) = decode_split(tagged)?;
        let pieces = holes
            .iter()
            .map(|&(at, epoch, piece)| {
                let piece =
                    map.get(&piece_key(key, piece, epoch))
                        .and_then(|p| match p.split_first() {
                            Some((&POSTCARD, bytes)) => Some(bytes),
                            _ => None,
                        });
                let at = usize::try_from(at).ok();
                at.zip(piece)
                    .ok_or_else(|| StoreError::Decode("a kept epoch's piece is missing".into()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let whole = split::assemble(&body, pieces)
            .ok_or_else(|| StoreError::Decode("a split value's holes are out of place".into()))?;
        decode(POSTCARD, &whole).map(Some)
    }

    /// Deletes the value at `key`, with the member lists it refers to if it is split.
    fn delete(&self, label: &[u8], key: &[u8]) -> Result<(), StoreError> {
        let main = storage_key(label, key);
        let mut map = self.write_map();
        for (piece, epoch) in split_pieces(map.get(&main)) {
            let at = piece_key(key, piece, epoch);
            self.touch(&at);
            map.remove(&at);
        }
        if map.remove(&main).is_some() {
            self.touch(&main);
        }
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
        self.touch(&key);
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
    fn runs_of_zeros_pack_and_unpack() {
        let mut bytes = vec![0u8; 1000];
        bytes.extend_from_slice(&[1, 2, 0, 3]);
        bytes.extend(vec![0u8; 200]);
        bytes.push(9);
        for case in [bytes, Vec::new(), vec![0], vec![5, 6], vec![0; 128]] {
            let packed = pack_zeros(&case);
            assert_eq!(unpack_zeros(&packed), Some(case.clone()));
        }
        assert_eq!(pack_zeros(&[0u8; 1000]).len(), 3);
        // A run cut short, a run of none, and one too long to unpack, are refused.
        assert_eq!(unpack_zeros(&[7, 0]), None);
        assert_eq!(unpack_zeros(&[0, 0x80]), None);
        assert_eq!(unpack_zeros(&[0, 0]), None);
        assert_eq!(unpack_zeros(&[0, 0xff, 0xff, 0xff, 0xff, 0x7f]), None);
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
