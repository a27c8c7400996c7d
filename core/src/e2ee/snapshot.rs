//! The bytes of an MLS state: openmls keeps a device's or a Delivery Service's state in a
//! key/value storage provider; a snapshot is its entries, in key order, as CBOR.

use std::collections::{BTreeMap, HashMap};

use openmls_memory_storage::MemoryStorage;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

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
    let mut out = Vec::new();
    // Writing CBOR into a Vec cannot fail.
    let _ = ciborium::into_writer(&entries, &mut out);
    out
}

pub(crate) fn decode(bytes: &[u8]) -> Option<MemoryStorage> {
    let Entries(entries) = ciborium::from_reader(bytes).ok()?;
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
