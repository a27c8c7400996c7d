//! The bytes of an MLS state: openmls keeps a device's or a Delivery Service's state in a
//! key/value storage provider; a snapshot is the SHA-256 of its entries, then the entries in
//! key order as CBOR.
//!
//! openmls's memory storage panics on a value it cannot parse, so a damaged snapshot must be
//! refused before any entry reaches it: the digest catches every damage short of a state
//! rewritten on purpose, which only whoever owns the store can do.

use std::collections::{BTreeMap, HashMap};

use openmls_memory_storage::MemoryStorage;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

const DIGEST_BYTES: usize = 32;

#[derive(Serialize, Deserialize)]
struct Entries(BTreeMap<ByteBuf, ByteBuf>);

pub(crate) fn encode(storage: &MemoryStorage) -> Vec<u8> {
    let values = match storage.values.read() {
        Ok(values) => values,
        // A panic while another thread held the lock leaves the map as it was last written.
        Err(poisoned) => poisoned.into_inner(),
    };
    let entries = Entries(
        values
            .iter()
            .map(|(k, v)| (ByteBuf::from(k.clone()), ByteBuf::from(v.clone())))
            .collect(),
    );
    let mut cbor = Vec::new();
    // Writing CBOR into a Vec cannot fail.
    let _ = ciborium::into_writer(&entries, &mut cbor);
    let mut out = Sha256::digest(&cbor).to_vec();
    out.extend_from_slice(&cbor);
    out
}

pub(crate) fn decode(bytes: &[u8]) -> Option<MemoryStorage> {
    let (digest, cbor) = bytes.split_at_checked(DIGEST_BYTES)?;
    if Sha256::digest(cbor).as_slice() != digest {
        return None;
    }
    let Entries(entries) = ciborium::from_reader(cbor).ok()?;
    let values: HashMap<Vec<u8>, Vec<u8>> = entries
        .into_iter()
        .map(|(k, v)| (k.into_vec(), v.into_vec()))
        .collect();
    let storage = MemoryStorage::default();
    match storage.values.write() {
        Ok(mut map) => *map = values,
        Err(_) => return None,
    }
    Some(storage)
}
