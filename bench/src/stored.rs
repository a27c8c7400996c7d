//! Changes written straight to a store, as a unit commits them, for the benchmarks that time
//! the store alone.

use confab_core::ids::{AccountId, DocId};
use confab_server::store::{NewChange, Projection};

/// Change `seq` of `doc` with `bytes` and `projection`, by the account `writer`; its hash is
/// made of the seq and the document's name (unique per document and seq).
pub fn change(doc: DocId, seq: u64, bytes: Vec<u8>, projection: Vec<Projection>) -> NewChange {
    let mut hash = [0u8; 32];
    hash[..8].copy_from_slice(&seq.to_le_bytes());
    let name = doc.to_string();
    hash[8..8 + name.len().min(24)].copy_from_slice(&name.as_bytes()[..name.len().min(24)]);
    NewChange {
        doc,
        hash,
        bytes,
        account: AccountId::new("writer").expect("account"),
        accepted_at: 0,
        seq,
        bind_actor: None,
        projection,
        moves_policy: false,
        fence: None,
        parent_fence: None,
    }
}
