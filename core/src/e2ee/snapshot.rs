//! The bytes of an MLS state: openmls keeps a device's or a Delivery Service's state in a
//! key/value storage provider ([`Store`]); a snapshot is the SHA-256 of its entries, then the
//! entries in key order as CBOR: the pair (format, map), each value tagged with its encoding.
//!
//! Snapshots of earlier builds hold openmls's memory storage instead: a bare CBOR map whose
//! values are all JSON. They load as such, and are saved in the current form from then on.
//!
//! A damaged snapshot must be refused before any entry reaches the store: the digest catches
//! every damage short of a state rewritten on purpose, which only whoever owns the store can do.

use std::collections::{BTreeMap, HashMap};

use serde_bytes::{ByteBuf, Bytes};
use sha2::{Digest, Sha256};

use super::store::Store;

const DIGEST_BYTES: usize = 32;

/// The snapshot form with tagged values.
const FORMAT: u8 = 2;

pub(crate) fn encode(store: &Store) -> Vec<u8> {
    let mut cbor = Vec::new();
    store.with_entries(|values| {
        let entries: BTreeMap<&Bytes, &Bytes> = values
            .iter()
            .map(|(k, v)| (Bytes::new(k), Bytes::new(v)))
            .collect();
        // Writing CBOR into a Vec cannot fail.
        let _ = ciborium::into_writer(&(FORMAT, entries), &mut cbor);
    });
    let mut out = Sha256::digest(&cbor).to_vec();
    out.extend_from_slice(&cbor);
    out
}

pub(crate) fn decode(bytes: &[u8]) -> Option<Store> {
    let (digest, cbor) = bytes.split_at_checked(DIGEST_BYTES)?;
    if Sha256::digest(cbor).as_slice() != digest {
        return None;
    }
    if let Ok((FORMAT, entries)) = ciborium::from_reader::<(u8, Entries), _>(cbor) {
        return Some(Store::from_entries(entries.into_values()));
    }
    let old: Entries = ciborium::from_reader(cbor).ok()?;
    Some(Store::from_json_entries(old.into_values()))
}

#[derive(serde::Deserialize)]
struct Entries(BTreeMap<ByteBuf, ByteBuf>);

impl Entries {
    fn into_values(self) -> HashMap<Vec<u8>, Vec<u8>> {
        self.0
            .into_iter()
            .map(|(k, v)| (k.into_vec(), v.into_vec()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(store: &Store) -> HashMap<Vec<u8>, Vec<u8>> {
        store.with_entries(Clone::clone)
    }

    #[test]
    fn a_snapshot_loads_as_it_was_saved() {
        let store = Store::from_entries(
            [(b"k".to_vec(), vec![0, 5]), (b"j".to_vec(), vec![1, b'7'])].into(),
        );
        let bytes = encode(&store);
        assert_eq!(entries(&decode(&bytes).unwrap()), entries(&store));
        // The digest, then the CBOR pair: an array of two, the format first.
        assert_eq!(&bytes[DIGEST_BYTES..DIGEST_BYTES + 2], &[0x82, FORMAT]);

        let mut damaged = bytes.clone();
        *damaged.last_mut().unwrap() ^= 1;
        assert!(decode(&damaged).is_none());
        assert!(decode(&bytes[..DIGEST_BYTES - 1]).is_none());
    }

    #[test]
    fn a_snapshot_of_json_values_loads_with_its_values_tagged_json() {
        // As earlier builds wrote openmls's memory storage: a bare map of JSON values.
        let old: BTreeMap<ByteBuf, ByteBuf> = [(
            ByteBuf::from(b"k".to_vec()),
            ByteBuf::from(b"[1,2]".to_vec()),
        )]
        .into();
        let mut cbor = Vec::new();
        ciborium::into_writer(&old, &mut cbor).unwrap();
        let mut bytes = Sha256::digest(&cbor).to_vec();
        bytes.extend_from_slice(&cbor);
        let store = decode(&bytes).unwrap();
        assert_eq!(
            entries(&store),
            [(b"k".to_vec(), b"\x01[1,2]".to_vec())].into()
        );
    }
}
