//! Local stores for the client engine (`confab_core::client::LocalStore`):
//!
//! - [`IdbStore`]: IndexedDB, one object store `kv`, string keys, `Uint8Array` values; a scan
//!   is one key range `[prefix, prefix + '\uffff']`; a write batch is one `readwrite`
//!   transaction (all or nothing). The device's private state is sealed at rest
//!   (`at_rest`).
//! - [`JsStore`]: a storage adapter object from the host (`{get, scan, write}` returning
//!   promises), for mobile hosts over SQLite or files.
//! - [`AnyStore`]: what a `ConfabClient` holds (memory, IndexedDB or an adapter).
//!
//! All three pass `confab_core::client::store::conformance` (tests/browser.rs, and
//! `checkStorageAdapter` for adapters).

use std::cell::Cell;

use confab_core::client::{LocalStore, MemoryStore, StoreError, StoreOp};
use js_sys::{Array, Promise, Uint8Array};
use serde::{Deserialize, Serialize};
use tsify::Tsify;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{IdbDatabase, IdbTransaction};

use crate::at_rest::AtRest;
pub use crate::idb::TxEnd;
use crate::idb::{
    factory, js_store_error, open_database, prefix_range, request, to_bytes, KeyScan, Scan,
    OBJECT_STORE,
};

/// The IndexedDB store: one database per client, one object store.
pub struct IdbStore {
    db: IdbDatabase,
    name: String,
    /// Seals the device's private state at rest (`at_rest`; boxed: its key schedule is large).
    at_rest: Option<Box<AtRest>>,
    closed: std::rc::Rc<Cell<bool>>,
    /// Closes the connection when another one upgrades or deletes the database.
    _on_versionchange: Closure<dyn FnMut(web_sys::Event)>,
}

impl std::fmt::Debug for IdbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdbStore")
            .field("name", &self.name)
            .field("closed", &self.closed.get())
            .finish()
    }
}

impl IdbStore {
    /// Opens (or creates) the database `name`.
    pub async fn open(name: &str) -> Result<IdbStore, StoreError> {
        let db = open_database(name, OBJECT_STORE).await?;
        let at_rest = AtRest::open(name).await?.map(Box::new);
        let closed = std::rc::Rc::new(Cell::new(false));
        let on_versionchange = Closure::<dyn FnMut(web_sys::Event)>::new({
            let db = db.clone();
            let closed = closed.clone();
            move |_event: web_sys::Event| {
                closed.set(true);
                db.close();
            }
        });
        db.set_onversionchange(Some(on_versionchange.as_ref().unchecked_ref()));
        Ok(IdbStore {
            db,
            name: name.to_owned(),
            at_rest,
            closed,
            _on_versionchange: on_versionchange,
        })
    }

    /// Deletes the database `name` and its keys (close every client on it first).
    pub async fn delete_database(name: &str) -> Result<(), StoreError> {
        for db in [name.to_owned(), format!("{name}/keys")] {
            let req = factory()?
                .delete_database(&db)
                .map_err(|e| js_store_error("delete database", &e))?;
            request(&req, "delete database").await?;
        }
        Ok(())
    }

    /// A value as the client reads it (the device's private state opened).
    fn read_value(&self, key: &str, stored: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        match &self.at_rest {
            Some(at_rest) => at_rest.open_value(key, stored),
            None => Ok(stored),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Closes the connection; later calls fail.
    pub fn close(&self) {
        self.closed.set(true);
        self.db.set_onversionchange(None);
        self.db.close();
    }

    pub(crate) fn transaction(
        &self,
        mode: web_sys::IdbTransactionMode,
    ) -> Result<IdbTransaction, StoreError> {
        if self.closed.get() {
            return Err(StoreError("the store is closed".into()));
        }
        self.db
            .transaction_with_str_and_mode(OBJECT_STORE, mode)
            .map_err(|e| js_store_error("transaction", &e))
    }
}

impl LocalStore for IdbStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.transaction(web_sys::IdbTransactionMode::Readonly)?;
        let store = tx
            .object_store(OBJECT_STORE)
            .map_err(|e| js_store_error("get", &e))?;
        let req = store
            .get(&key.into())
            .map_err(|e| js_store_error("get", &e))?;
        let value = request(&req, "get").await?;
        (!value.is_undefined())
            .then(|| self.read_value(key, to_bytes(&value)))
            .transpose()
    }

    async fn scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let tx = self.transaction(web_sys::IdbTransactionMode::Readonly)?;
        let store = tx
            .object_store(OBJECT_STORE)
            .map_err(|e| js_store_error("scan", &e))?;
        // Both requests go out before any await: the transaction stays alive for both.
        Scan::issue(&store, prefix)?
            .entries()
            .await?
            .into_iter()
            .map(|(k, v)| self.read_value(&k, v).map(|v| (k, v)))
            .collect()
    }

    async fn write(&self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        self.begin_write(&ops)?.wait().await
    }

    async fn scan_page(
        &self,
        prefix: &str,
        from: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let tx = self.transaction(web_sys::IdbTransactionMode::Readonly)?;
        let store = tx
            .object_store(OBJECT_STORE)
            .map_err(|e| js_store_error("scan", &e))?;
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        Scan::issue_page(&store, prefix, from, limit)?
            .entries()
            .await?
            .into_iter()
            .map(|(k, v)| self.read_value(&k, v).map(|v| (k, v)))
            .collect()
    }

    async fn scan_page_keys(
        &self,
        prefix: &str,
        from: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let tx = self.transaction(web_sys::IdbTransactionMode::Readonly)?;
        let store = tx
            .object_store(OBJECT_STORE)
            .map_err(|e| js_store_error("scan", &e))?;
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        KeyScan::issue_page(&store, prefix, from, limit)?
            .keys()
            .await
    }
}

impl IdbStore {
    /// Starts one `readwrite` transaction with `ops` and asks it to commit, now, without
    /// waiting for any earlier write; await the returned end for the commit. IndexedDB runs
    /// `readwrite` transactions whose scopes overlap (here: all of them, one object store)
    /// one after the other in the order they were created, and a `readonly` one only after
    /// the `readwrite` ones created before it: so a write begun while another is in flight
    /// commits after it, and a read begun later sees both (the client's store queue relies on
    /// this; see `runtime` and wasm/README.md, "Store order and crash safety").
    pub fn begin_write(&self, ops: &[StoreOp]) -> Result<TxEnd, StoreError> {
        let tx = self.transaction(web_sys::IdbTransactionMode::Readwrite)?;
        // Listen before anything can end it.
        let end = TxEnd::watch(&tx);
        let store = tx
            .object_store(OBJECT_STORE)
            .map_err(|e| js_store_error("write", &e))?;
        // Requests of one transaction run in order: a delete-prefix after a put removes it.
        let queued: Result<(), StoreError> = ops.iter().try_for_each(|op| {
            let sent = match op {
                StoreOp::Put(key, value) => {
                    let value = match &self.at_rest {
                        Some(at_rest) => at_rest.seal(key, value)?,
                        None => value.clone(),
                    };
                    store.put_with_key(&Uint8Array::from(&value[..]).into(), &key.into())
                }
                StoreOp::Delete(key) => store.delete(&key.into()),
                StoreOp::DeletePrefix(prefix) => store.delete(&prefix_range(prefix)?.into()),
            };
            sent.map(|_| ()).map_err(|e| js_store_error("write", &e))
        });
        if let Err(e) = queued {
            let _ = tx.abort();
            return Err(e);
        }
        // Commit now rather than after the page's main thread has dispatched every request's
        // success event (on a busy page it gets to them late, and the frames behind this
        // write wait for the commit). Older browsers without `commit()` auto-commit
        // (web-sys marks it deprecated; Chromium 76+, Firefox 74+ and Safari 15+ have it).
        #[allow(deprecated)]
        let _ = tx.commit();
        Ok(end)
    }
}

/// One write of an adapter's batch, as the adapter's `write(ops)` receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum StoreOperation {
    /// Set `key` to `value`.
    Put {
        key: String,
        #[tsify(type = "Uint8Array")]
        value: serde_bytes::ByteBuf,
    },
    /// Remove `key`.
    Delete { key: String },
    /// Remove every key that starts with `prefix` (after the earlier ops of the batch).
    DeletePrefix { prefix: String },
}

impl From<StoreOp> for StoreOperation {
    fn from(op: StoreOp) -> Self {
        match op {
            StoreOp::Put(key, value) => StoreOperation::Put {
                key,
                value: serde_bytes::ByteBuf::from(value),
            },
            StoreOp::Delete(key) => StoreOperation::Delete { key },
            StoreOp::DeletePrefix(prefix) => StoreOperation::DeletePrefix { prefix },
        }
    }
}

#[wasm_bindgen(typescript_custom_section)]
const STORAGE_ADAPTER_TS: &'static str = r#"
/**
 * A key/value store provided by the host (SQLite or files on mobile, anything else).
 * Keys are strings, values bytes. `scan` returns every entry whose key starts with `prefix`,
 * in key order (compare keys as strings of UTF-16 code units, like JavaScript's `<`).
 * `write` applies all operations, in order, or none. Check an adapter with
 * `checkStorageAdapter(adapter)`.
 */
export interface StorageAdapter {
    get(key: string): Promise<Uint8Array | null | undefined>;
    scan(prefix: string): Promise<Array<[string, Uint8Array]>>;
    write(ops: StoreOperation[]): Promise<void>;
}
"#;

#[wasm_bindgen]
extern "C" {
    /// A storage adapter object from the host.
    #[wasm_bindgen(typescript_type = "StorageAdapter")]
    pub type StorageAdapter;

    #[wasm_bindgen(method, catch, js_name = get)]
    fn adapter_get(this: &StorageAdapter, key: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch, js_name = scan)]
    fn adapter_scan(this: &StorageAdapter, prefix: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch, js_name = write)]
    fn adapter_write(this: &StorageAdapter, ops: JsValue) -> Result<JsValue, JsValue>;
}

/// Awaits what an adapter method returned (a promise or a plain value).
async fn settle(returned: Result<JsValue, JsValue>, what: &str) -> Result<JsValue, StoreError> {
    let value = returned.map_err(|e| js_store_error(what, &e))?;
    JsFuture::from(Promise::resolve(&value))
        .await
        .map_err(|e| js_store_error(what, &e))
}

/// A store over a host's adapter object.
#[derive(Debug, Clone)]
pub struct JsStore {
    adapter: JsValue,
}

impl JsStore {
    /// Wraps an object with `get`, `scan` and `write` methods.
    pub fn new(adapter: JsValue) -> Result<JsStore, StoreError> {
        for method in ["get", "scan", "write"] {
            let f = js_sys::Reflect::get(&adapter, &method.into()).unwrap_or(JsValue::UNDEFINED);
            if !f.is_function() {
                return Err(StoreError(format!(
                    "the storage adapter has no {method}() method"
                )));
            }
        }
        Ok(JsStore { adapter })
    }

    fn adapter(&self) -> &StorageAdapter {
        self.adapter.unchecked_ref()
    }
}

impl LocalStore for JsStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let value = settle(self.adapter().adapter_get(key), "adapter get").await?;
        Ok((!value.is_undefined() && !value.is_null()).then(|| to_bytes(&value)))
    }

    async fn scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let value = settle(self.adapter().adapter_scan(prefix), "adapter scan").await?;
        if !Array::is_array(&value) {
            return Err(StoreError(
                "adapter scan: expected an array of [key, value] pairs".into(),
            ));
        }
        let entries: Array = value.unchecked_into();
        let mut out = Vec::with_capacity(entries.length() as usize);
        for entry in entries.iter() {
            let (key, value) = if Array::is_array(&entry) {
                let pair: Array = entry.unchecked_into();
                (pair.get(0), pair.get(1))
            } else {
                (
                    js_sys::Reflect::get(&entry, &"key".into()).unwrap_or_default(),
                    js_sys::Reflect::get(&entry, &"value".into()).unwrap_or_default(),
                )
            };
            let key = key
                .as_string()
                .ok_or_else(|| StoreError("adapter scan: a key is not a string".into()))?;
            out.push((key, to_bytes(&value)));
        }
        Ok(out)
    }

    async fn write(&self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        let array = Array::new();
        for op in ops {
            let op = StoreOperation::from(op);
            let value = op
                .serialize(&serde_wasm_bindgen::Serializer::new())
                .map_err(|e| StoreError(format!("adapter write: {e}")))?;
            array.push(&value);
        }
        settle(self.adapter().adapter_write(array.into()), "adapter write")
            .await
            .map(|_| ())
    }
}

/// The store a client runs on.
#[derive(Debug)]
pub enum AnyStore {
    Memory(MemoryStore),
    IndexedDb(IdbStore),
    Adapter(JsStore),
}

impl AnyStore {
    /// Releases what the store holds open (the IndexedDB connection).
    pub fn close(&self) {
        if let AnyStore::IndexedDb(db) = self {
            db.close();
        }
    }
}

impl LocalStore for AnyStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            AnyStore::Memory(s) => s.get(key).await,
            AnyStore::IndexedDb(s) => s.get(key).await,
            AnyStore::Adapter(s) => s.get(key).await,
        }
    }

    async fn scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        match self {
            AnyStore::Memory(s) => s.scan(prefix).await,
            AnyStore::IndexedDb(s) => s.scan(prefix).await,
            AnyStore::Adapter(s) => s.scan(prefix).await,
        }
    }

    async fn write(&self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        match self {
            AnyStore::Memory(s) => s.write(ops).await,
            AnyStore::IndexedDb(s) => s.write(ops).await,
            AnyStore::Adapter(s) => s.write(ops).await,
        }
    }

    async fn scan_page(
        &self,
        prefix: &str,
        from: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        match self {
            AnyStore::Memory(s) => s.scan_page(prefix, from, limit).await,
            AnyStore::IndexedDb(s) => s.scan_page(prefix, from, limit).await,
            AnyStore::Adapter(s) => s.scan_page(prefix, from, limit).await,
        }
    }

    async fn scan_page_keys(
        &self,
        prefix: &str,
        from: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        match self {
            AnyStore::Memory(s) => s.scan_page_keys(prefix, from, limit).await,
            AnyStore::IndexedDb(s) => s.scan_page_keys(prefix, from, limit).await,
            AnyStore::Adapter(s) => s.scan_page_keys(prefix, from, limit).await,
        }
    }
}

/// Runs the store conformance suite every store must pass against a host's adapter (use an
/// empty store: the suite writes and deletes keys). Rejects with `code = "storage"` and
/// the first failed expectation.
#[wasm_bindgen(js_name = checkStorageAdapter)]
pub async fn check_storage_adapter(adapter: StorageAdapter) -> Result<(), JsValue> {
    let store = JsStore::new(adapter.into()).map_err(crate::error::Failure::from)?;
    confab_core::client::store::conformance(&store)
        .await
        .map_err(|e| crate::error::js_error("storage", &e))
}
