//! IndexedDB primitives under the stores (`store`), the sealed state (`at_rest`), pending
//! uploads and loads: requests as futures, transactions' ends, key ranges, opening the
//! database with its one object store.

use confab_core::client::StoreError;
use js_sys::{Array, Function, Promise, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    IdbDatabase, IdbKeyRange, IdbObjectStore, IdbOpenDbRequest, IdbRequest, IdbTransaction,
};

use crate::error::describe_js;

pub(crate) const OBJECT_STORE: &str = "kv";
const DB_VERSION: u32 = 1;

pub(crate) fn js_store_error(what: &str, value: &JsValue) -> StoreError {
    let (_, message) = describe_js(value);
    StoreError(format!("{what}: {message}"))
}

/// A promise settled by the first of several DOM events, with the callback that settles it.
/// The callback must stay alive until the event fired, and be unset before it is dropped.
struct EventWait {
    promise: Promise,
    callback: Closure<dyn FnMut(web_sys::Event)>,
}

impl EventWait {
    /// Resolves on an event whose type is in `ok`, rejects on any other.
    fn new(ok: &'static [&'static str]) -> Self {
        let mut settle: Option<(Function, Function)> = None;
        let promise = Promise::new(&mut |resolve, reject| settle = Some((resolve, reject)));
        let callback = Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
            if let Some((resolve, reject)) = &settle {
                let target = if ok.contains(&event.type_().as_str()) {
                    resolve
                } else {
                    reject
                };
                let _ = target.call1(&JsValue::NULL, &event);
            }
        });
        EventWait { promise, callback }
    }

    fn function(&self) -> &Function {
        self.callback.as_ref().unchecked_ref()
    }

    async fn wait(&self) -> Result<JsValue, JsValue> {
        JsFuture::from(self.promise.clone()).await
    }
}

/// Waits for one request's `success` (its result) or `error`.
pub(crate) async fn request(req: &IdbRequest, what: &str) -> Result<JsValue, StoreError> {
    Watched::new(req.clone()).result(what).await
}

/// A request with its listener set as it is issued: its answer may come before it is awaited
/// (when the requests issued before it are awaited first).
pub(crate) struct Watched {
    req: IdbRequest,
    wait: EventWait,
}

impl Watched {
    pub(crate) fn new(req: IdbRequest) -> Self {
        let wait = EventWait::new(&["success"]);
        req.set_onsuccess(Some(wait.function()));
        req.set_onerror(Some(wait.function()));
        Watched { req, wait }
    }

    /// Its `success` (the result) or `error`.
    pub(crate) async fn result(self, what: &str) -> Result<JsValue, StoreError> {
        match self.wait.wait().await {
            Ok(_) => self.req.result().map_err(|e| js_store_error(what, &e)),
            Err(_) => Err(request_error(&self.req, what)),
        }
    }
}

impl Drop for Watched {
    /// Unset before the listener goes: also when an earlier request failed and this one is
    /// never awaited.
    fn drop(&mut self) {
        self.req.set_onsuccess(None);
        self.req.set_onerror(None);
    }
}

/// The two requests of a prefix scan (keys, values), issued together on one transaction.
pub(crate) struct Scan {
    keys: Watched,
    values: Watched,
}

impl Scan {
    pub(crate) fn issue(store: &IdbObjectStore, prefix: &str) -> Result<Self, StoreError> {
        let range: JsValue = prefix_range(prefix)?.into();
        let keys = store
            .get_all_keys_with_key(&range)
            .map_err(|e| js_store_error("scan", &e))?;
        let values = store
            .get_all_with_key(&range)
            .map_err(|e| js_store_error("scan", &e))?;
        Ok(Scan {
            keys: Watched::new(keys),
            values: Watched::new(values),
        })
    }

    /// A page: the first `limit` entries of the prefix from key `from` on (`Read::Page`).
    pub(crate) fn issue_page(
        store: &IdbObjectStore,
        prefix: &str,
        from: &str,
        limit: u32,
    ) -> Result<Self, StoreError> {
        let KeyScan(keys) = KeyScan::issue_page(store, prefix, from, limit)?;
        let values = store
            .get_all_with_key_and_limit(&page_range(prefix, from)?, limit)
            .map_err(|e| js_store_error("scan", &e))?;
        Ok(Scan {
            keys,
            values: Watched::new(values),
        })
    }

    /// Every entry found, in key order.
    pub(crate) async fn entries(self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let keys: Array = self.keys.result("scan keys").await?.unchecked_into();
        let values: Array = self.values.result("scan values").await?.unchecked_into();
        if keys.length() != values.length() {
            return Err(StoreError("scan: keys and values differ in number".into()));
        }
        let mut out = Vec::with_capacity(keys.length() as usize);
        for (key, value) in keys.iter().zip(values.iter()) {
            let key = key
                .as_string()
                .ok_or_else(|| StoreError("scan: a key is not a string".into()))?;
            out.push((key, to_bytes(&value)));
        }
        Ok(out)
    }
}

/// A page's keys alone (`Read::PageKeys`): one `getAllKeys`, no values read or copied.
pub(crate) struct KeyScan(Watched);

impl KeyScan {
    pub(crate) fn issue_page(
        store: &IdbObjectStore,
        prefix: &str,
        from: &str,
        limit: u32,
    ) -> Result<Self, StoreError> {
        let range = page_range(prefix, from)?;
        let keys = store
            .get_all_keys_with_key_and_limit(&range, limit)
            .map_err(|e| js_store_error("scan", &e))?;
        Ok(KeyScan(Watched::new(keys)))
    }

    /// The keys found, in key order.
    pub(crate) async fn keys(self) -> Result<Vec<String>, StoreError> {
        let keys: Array = self.0.result("scan keys").await?.unchecked_into();
        keys.iter()
            .map(|key| {
                key.as_string()
                    .ok_or_else(|| StoreError("scan: a key is not a string".into()))
            })
            .collect()
    }
}

fn request_error(req: &IdbRequest, what: &str) -> StoreError {
    match req.error() {
        Ok(Some(e)) => StoreError(format!("{what}: {}: {}", e.name(), e.message())),
        _ => StoreError(format!("{what}: request failed")),
    }
}

/// Waits for a transaction to commit (`complete`) or fail (`error`, `abort`).
pub(crate) async fn commit(tx: &IdbTransaction) -> Result<(), StoreError> {
    TxEnd::watch(tx).wait().await
}

/// A transaction's end, listened for from the moment the transaction is made: its
/// `complete` may fire before anyone awaits it (a write begun at once is awaited later,
/// behind the writes before it). Dropping it unsets the listeners.
pub struct TxEnd {
    tx: IdbTransaction,
    wait: EventWait,
}

impl TxEnd {
    pub(crate) fn watch(tx: &IdbTransaction) -> TxEnd {
        let wait = EventWait::new(&["complete"]);
        tx.set_oncomplete(Some(wait.function()));
        tx.set_onerror(Some(wait.function()));
        tx.set_onabort(Some(wait.function()));
        TxEnd {
            tx: tx.clone(),
            wait,
        }
    }

    /// Resolves once the transaction committed; fails if it was aborted.
    pub async fn wait(&self) -> Result<(), StoreError> {
        match self.wait.wait().await {
            Ok(_) => Ok(()),
            Err(_) => Err(match self.tx.error() {
                Some(e) => StoreError(format!("write: {}: {}", e.name(), e.message())),
                None => StoreError("write: transaction aborted".into()),
            }),
        }
    }
}

impl Drop for TxEnd {
    fn drop(&mut self) {
        self.tx.set_oncomplete(None);
        self.tx.set_onerror(None);
        self.tx.set_onabort(None);
    }
}

impl std::fmt::Debug for TxEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxEnd").finish_non_exhaustive()
    }
}

pub(crate) fn factory() -> Result<web_sys::IdbFactory, StoreError> {
    let value = js_sys::Reflect::get(&js_sys::global(), &"indexedDB".into())
        .map_err(|e| js_store_error("indexedDB", &e))?;
    if value.is_undefined() || value.is_null() {
        return Err(StoreError(
            "IndexedDB is not available here (use storage: \"memory\" or an adapter)".into(),
        ));
    }
    Ok(value.unchecked_into())
}

/// Opens (or creates, with its one object store `object_store`) the database `name`.
pub(crate) async fn open_database(
    name: &str,
    object_store: &'static str,
) -> Result<IdbDatabase, StoreError> {
    let req: IdbOpenDbRequest = factory()?
        .open_with_u32(name, DB_VERSION)
        .map_err(|e| js_store_error("open", &e))?;
    let upgrade = Closure::<dyn FnMut(web_sys::Event)>::new({
        let req = req.clone();
        move |_event: web_sys::Event| {
            if let Ok(db) = req.result() {
                let db: IdbDatabase = db.unchecked_into();
                // Version 1 is the only version: the store is made exactly once.
                let _ = db.create_object_store(object_store);
            }
        }
    });
    req.set_onupgradeneeded(Some(upgrade.as_ref().unchecked_ref()));
    let result = request(&req, "open").await;
    req.set_onupgradeneeded(None);
    Ok(result?.unchecked_into())
}

/// The keys under `prefix` from `from` on.
fn page_range(prefix: &str, from: &str) -> Result<JsValue, StoreError> {
    let start = if from > prefix { from } else { prefix };
    IdbKeyRange::bound(&start.into(), &format!("{prefix}\u{ffff}").into())
        .map(JsValue::from)
        .map_err(|e| js_store_error("key range", &e))
}

pub(crate) fn prefix_range(prefix: &str) -> Result<IdbKeyRange, StoreError> {
    IdbKeyRange::bound(&prefix.into(), &format!("{prefix}\u{ffff}").into())
        .map_err(|e| js_store_error("key range", &e))
}

pub(crate) fn to_bytes(value: &JsValue) -> Vec<u8> {
    Uint8Array::new(value).to_vec()
}
