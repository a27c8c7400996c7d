//! The device's private MLS state at rest (docs/E2EE.md, "On the device"): the IndexedDB
//! store keeps its `meta/mls` record and every entry under `meta/mls/` sealed with
//! AES-256-GCM under a data key, and keeps the data key only wrapped under a non-extractable
//! WebCrypto key. That key lives in a database
//! of its own (`<dbName>/keys`) as a `CryptoKey`, which IndexedDB's structured clone keeps
//! non-extractable: the raw databases never hold a usable private key, and script can use the
//! key only through WebCrypto, in this origin.
//!
//! The data key is unwrapped once, when the store opens (WebCrypto is asynchronous); each
//! value is then sealed in Rust within the write that stores it, so a store write stays one
//! synchronous IndexedDB transaction begun in order (`IdbStore::begin_write`).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use confab_core::client::{HostKey, StoreError};
use js_sys::{Array, Object, Promise, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AesGcmParams, AesKeyGenParams, CryptoKey, IdbDatabase, IdbTransactionMode};

use crate::idb::{commit, js_store_error, open_database, request, to_bytes};

const STORE: &str = "keys";
const ENTRY: &str = "device";
/// What a sealed record starts with (a record without it is from before wrapping: read as
/// it is and sealed at its next write).
const MAGIC: &[u8; 4] = b"cfw1";
const NONCE: usize = 12;

/// The keys whose values are sealed at rest: the device's MLS record and every entry of its
/// state under the record's key and `/` (`core/src/client/mls_saved.rs`).
fn is_secret(key: &str) -> bool {
    let record = HostKey::Mls.key();
    key.strip_prefix(record)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The data key of one store.
pub struct AtRest {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for AtRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AtRest")
    }
}

fn fail(what: &str, e: &JsValue) -> StoreError {
    js_store_error(&format!("keys: {what}"), e)
}

fn random<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|e| StoreError(format!("keys: no randomness: {e}")))?;
    Ok(out)
}

async fn settle(
    promise: std::result::Result<Promise, JsValue>,
    what: &str,
) -> Result<JsValue, StoreError> {
    let promise = promise.map_err(|e| fail(what, &e))?;
    JsFuture::from(promise).await.map_err(|e| fail(what, &e))
}

fn subtle() -> Option<web_sys::SubtleCrypto> {
    let crypto = js_sys::Reflect::get(&js_sys::global(), &"crypto".into()).ok()?;
    let subtle = js_sys::Reflect::get(&crypto, &"subtle".into()).ok()?;
    // Outside a secure context there is no `crypto.subtle`.
    (!subtle.is_undefined() && !subtle.is_null()).then(|| subtle.unchecked_into())
}

fn gcm(iv: &[u8]) -> Object {
    AesGcmParams::new_with_u8_array("AES-GCM", &Uint8Array::from(iv)).into()
}

impl AtRest {
    /// The data key of the store `db_name`: unwrapped from `<db_name>/keys`, or made (with
    /// its wrapping key) on the first open. `None` where WebCrypto is missing (an insecure
    /// context): the record is then kept as it is.
    pub async fn open(db_name: &str) -> Result<Option<AtRest>, StoreError> {
        let Some(subtle) = subtle() else {
            return Ok(None);
        };
        let db = open_database(&format!("{db_name}/keys"), STORE).await?;
        let found = get(&db).await?;
        let (wrapping, wrapped, iv) = match found {
            Some(entry) => entry,
            None => {
                let made = make(&subtle).await?;
                // Another page of this store may have made one first: `add` keeps theirs.
                match add(&db, &made).await {
                    Ok(()) => made,
                    Err(_) => get(&db)
                        .await?
                        .ok_or_else(|| StoreError("keys: the wrapping key vanished".into()))?,
                }
            }
        };
        let data = settle(
            subtle.decrypt_with_object_and_u8_array(&gcm(&iv), &wrapping, &wrapped),
            "unwrap",
        )
        .await?;
        db.close();
        let data = to_bytes(&data);
        if data.len() != 32 {
            return Err(StoreError("keys: the data key does not unwrap".into()));
        }
        Ok(Some(AtRest {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&data)),
        }))
    }

    /// `value` as stored under `key`: sealed when it is a secret.
    pub fn seal(&self, key: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        if !is_secret(key) {
            return Ok(value.to_vec());
        }
        let nonce = random::<NONCE>()?;
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: value,
                    aad: key.as_bytes(),
                },
            )
            .map_err(|_| StoreError("keys: sealing failed".into()))?;
        Ok([&MAGIC[..], &nonce, &sealed].concat())
    }

    /// `stored` (the value under `key`) as the client reads it.
    pub fn open_value(&self, key: &str, stored: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        if !is_secret(key) || !stored.starts_with(MAGIC) || stored.len() < MAGIC.len() + NONCE {
            return Ok(stored);
        }
        let (nonce, sealed) = stored[MAGIC.len()..].split_at(NONCE);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: key.as_bytes(),
                },
            )
            .map_err(|_| StoreError(format!("{key} does not open with this browser's key")))
    }
}

/// A fresh non-extractable wrapping key, and a data key wrapped under it.
async fn make(subtle: &web_sys::SubtleCrypto) -> Result<(CryptoKey, Vec<u8>, Vec<u8>), StoreError> {
    let usages = Array::of2(&"encrypt".into(), &"decrypt".into());
    let algorithm: Object = AesKeyGenParams::new("AES-GCM", 256).into();
    let wrapping: CryptoKey = settle(
        subtle.generate_key_with_object(&algorithm, false, &usages),
        "make",
    )
    .await?
    .unchecked_into();
    let data = random::<32>()?;
    let iv = random::<NONCE>()?;
    let wrapped = settle(
        subtle.encrypt_with_object_and_u8_array(&gcm(&iv), &wrapping, &data),
        "wrap",
    )
    .await?;
    Ok((wrapping, to_bytes(&wrapped), iv.to_vec()))
}

async fn get(db: &IdbDatabase) -> Result<Option<(CryptoKey, Vec<u8>, Vec<u8>)>, StoreError> {
    let tx = db
        .transaction_with_str_and_mode(STORE, IdbTransactionMode::Readonly)
        .map_err(|e| fail("read", &e))?;
    let store = tx.object_store(STORE).map_err(|e| fail("read", &e))?;
    let req = store.get(&ENTRY.into()).map_err(|e| fail("read", &e))?;
    let entry = request(&req, "read keys").await?;
    if entry.is_undefined() || entry.is_null() {
        return Ok(None);
    }
    let field = |name: &str| js_sys::Reflect::get(&entry, &name.into()).unwrap_or_default();
    let key = field("key");
    if !key.is_instance_of::<CryptoKey>() {
        return Err(StoreError(
            "keys: the stored wrapping key is not a CryptoKey".into(),
        ));
    }
    Ok(Some((
        key.unchecked_into(),
        to_bytes(&field("wrapped")),
        to_bytes(&field("iv")),
    )))
}

async fn add(
    db: &IdbDatabase,
    (key, wrapped, iv): &(CryptoKey, Vec<u8>, Vec<u8>),
) -> Result<(), StoreError> {
    let entry = Object::new();
    let fields: [(&str, JsValue); 3] = [
        ("key", key.clone().into()),
        ("wrapped", Uint8Array::from(&wrapped[..]).into()),
        ("iv", Uint8Array::from(&iv[..]).into()),
    ];
    for (name, value) in fields {
        js_sys::Reflect::set(&entry, &name.into(), &value).map_err(|e| fail("write", &e))?;
    }
    let tx = db
        .transaction_with_str_and_mode(STORE, IdbTransactionMode::Readwrite)
        .map_err(|e| fail("write", &e))?;
    let store = tx.object_store(STORE).map_err(|e| fail("write", &e))?;
    store
        .add_with_key(&entry, &ENTRY.into())
        .map_err(|e| fail("write", &e))?;
    commit(&tx).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_and_every_entry_of_the_state_are_sealed() {
        for key in ["meta/mls", "meta/mls/0123456789abcdef0123456789abcdef"] {
            assert!(is_secret(key), "{key}");
        }
        for key in ["meta/mlsx", "meta/device", "meta/actor", "doc/meta/mls"] {
            assert!(!is_secret(key), "{key}");
        }
    }
}
