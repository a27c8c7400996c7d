//! The client's local store: key/value with prefix scans, fallible, async-friendly and not
//! `Send`-bound (IndexedDB futures on wasm are not `Send`). Hosts implement it over
//! IndexedDB, SQLite or files; `MemoryStore` is the reference.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;

use super::ask::Read;

/// One write of an atomic batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOp {
    Put(String, Vec<u8>),
    Delete(String),
    /// Deletes every key that starts with the prefix.
    DeletePrefix(String),
}

/// A store error: what failed, in words (backends differ too much for more).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("local store: {0}")]
pub struct StoreError(pub String);

/// Key/value storage for one client.
pub trait LocalStore {
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>>;
    /// Every entry whose key starts with `prefix`, in key order.
    fn scan(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<(String, Vec<u8>)>, StoreError>>;
    /// Applies all ops or none.
    fn write(&self, ops: Vec<StoreOp>) -> impl Future<Output = Result<(), StoreError>>;
    /// The first `limit` entries whose key starts with `prefix` and is at or after `from`,
    /// in key order. The default scans the prefix; a store with ranges reads only the page.
    fn scan_page(
        &self,
        prefix: &str,
        from: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(String, Vec<u8>)>, StoreError>> {
        async move {
            let mut all = self.scan(prefix).await?;
            all.retain(|(k, _)| k.as_str() >= from);
            all.truncate(limit);
            Ok(all)
        }
    }

    /// The keys of `scan_page`'s entries. The default reads the page and drops its values;
    /// a store that can read keys alone (IndexedDB's `getAllKeys`) reads less.
    fn scan_page_keys(
        &self,
        prefix: &str,
        from: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> {
        async move {
            let page = self.scan_page(prefix, from, limit).await?;
            Ok(page.into_iter().map(|(k, _)| k).collect())
        }
    }
}

/// An in-memory store (tests, and hosts that persist nothing).
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: RefCell<BTreeMap<String, Vec<u8>>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl LocalStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.entries.borrow().get(key).cloned())
    }

    async fn scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Ok(self
            .entries
            .borrow()
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn write(&self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        let mut entries = self.entries.borrow_mut();
        for op in ops {
            match op {
                StoreOp::Put(k, v) => {
                    entries.insert(k, v);
                }
                StoreOp::Delete(k) => {
                    entries.remove(&k);
                }
                StoreOp::DeletePrefix(prefix) => {
                    entries.retain(|k, _| !k.starts_with(&prefix));
                }
            }
        }
        Ok(())
    }

    async fn scan_page(
        &self,
        prefix: &str,
        from: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let start = if from > prefix { from } else { prefix };
        Ok(self
            .entries
            .borrow()
            .range(start.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

/// The conformance suite every store implementation runs (memory here, IndexedDB in the
/// wasm crate, SQLite and files in `confab-client`). Returns the first failed expectation.
pub async fn conformance<S: LocalStore>(store: &S) -> Result<(), String> {
    let fail = |what: &str| Err(format!("store conformance: {what}"));
    let e = |err: StoreError| err.to_string();
    if store.get("missing").await.map_err(e)?.is_some() {
        return fail("a missing key reads as None");
    }
    store
        .write(vec![
            StoreOp::Put("doc/a".into(), vec![1]),
            StoreOp::Put("doc/b".into(), vec![2, 2]),
            StoreOp::Put("doc0".into(), vec![9]),
            StoreOp::Put("out/1".into(), Vec::new()),
        ])
        .await
        .map_err(e)?;
    if store.get("doc/b").await.map_err(e)? != Some(vec![2, 2]) {
        return fail("a put value reads back");
    }
    if store.get("out/1").await.map_err(e)? != Some(Vec::new()) {
        return fail("an empty value is a value");
    }
    let scanned = store.scan("doc/").await.map_err(e)?;
    if scanned
        != vec![
            ("doc/a".to_owned(), vec![1]),
            ("doc/b".to_owned(), vec![2, 2]),
        ]
    {
        return fail("scan returns exactly the prefix, in key order");
    }
    store
        .write(vec![
            StoreOp::Delete("doc/a".into()),
            StoreOp::Put("doc/b".into(), vec![3]),
        ])
        .await
        .map_err(e)?;
    if store.get("doc/a").await.map_err(e)?.is_some()
        || store.get("doc/b").await.map_err(e)? != Some(vec![3])
    {
        return fail("delete removes and put overwrites");
    }
    store
        .write(vec![
            StoreOp::Put("doc/c".into(), vec![4]),
            StoreOp::DeletePrefix("doc/".into()),
        ])
        .await
        .map_err(e)?;
    if !store.scan("doc/").await.map_err(e)?.is_empty()
        || store.get("doc0").await.map_err(e)? != Some(vec![9])
    {
        return fail("delete-prefix removes exactly the prefix, after the puts of the same batch");
    }
    store
        .write(vec![
            StoreOp::Put("pg/a".into(), vec![1]),
            StoreOp::Put("pg/b".into(), vec![2]),
            StoreOp::Put("pg/c".into(), vec![3]),
            StoreOp::Put("pg0".into(), vec![4]),
        ])
        .await
        .map_err(e)?;
    let keys = |page: Vec<(String, Vec<u8>)>| page.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    if keys(store.scan_page("pg/", "pg/b", 5).await.map_err(e)?) != ["pg/b", "pg/c"]
        || keys(store.scan_page("pg/", "", 2).await.map_err(e)?) != ["pg/a", "pg/b"]
        || !store
            .scan_page("pg/", "pg/d", 5)
            .await
            .map_err(e)?
            .is_empty()
    {
        return fail("a page is the prefix's keys from `from` on, in key order, at most `limit`");
    }
    if store.scan_page_keys("pg/", "pg/b", 5).await.map_err(e)? != ["pg/b", "pg/c"]
        || store.scan_page_keys("pg/", "", 2).await.map_err(e)? != ["pg/a", "pg/b"]
        || !store
            .scan_page_keys("pg/", "pg/d", 5)
            .await
            .map_err(e)?
            .is_empty()
    {
        return fail("a page's keys are the keys its entries have");
    }
    if !store.scan("nothing/").await.map_err(e)?.is_empty() {
        return fail("an empty scan is empty");
    }
    let big = vec![7u8; 1 << 20];
    store
        .write(vec![StoreOp::Put("big".into(), big.clone())])
        .await
        .map_err(e)?;
    if store.get("big").await.map_err(e)? != Some(big) {
        return fail("a 1 MiB value reads back");
    }
    let unicode = "doc/ü/💬";
    store
        .write(vec![StoreOp::Put(unicode.into(), vec![5])])
        .await
        .map_err(e)?;
    if store.scan("doc/ü").await.map_err(e)?.len() != 1 {
        return fail("unicode keys scan by prefix");
    }
    Ok(())
}

/// Carries out a load's reads on `store`: every entry they find, as the engine's `loaded`
/// takes them.
pub async fn read<S: LocalStore>(
    store: &S,
    reads: &[Read],
) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let mut entries = Vec::new();
    for read in reads {
        match read {
            Read::Key(key) => {
                if let Some(value) = store.get(key).await? {
                    entries.push((key.clone(), value));
                }
            }
            Read::Prefix(prefix) => entries.extend(store.scan(prefix).await?),
            Read::Page {
                prefix,
                from,
                limit,
            } => entries.extend(store.scan_page(prefix, from, *limit as usize).await?),
            Read::PageKeys {
                prefix,
                from,
                limit,
            } => entries.extend(
                store
                    .scan_page_keys(prefix, from, *limit as usize)
                    .await?
                    .into_iter()
                    .map(|k| (k, Vec::new())),
            ),
        }
    }
    Ok(entries)
}

/// Runs a future that never waits (memory stores, tests) to completion without a runtime;
/// `None` if it would have waited.
pub fn block_on_ready<F: Future>(future: F) -> Option<F::Output> {
    use std::task::{Context, Poll, Waker};
    let mut cx = Context::from_waker(Waker::noop());
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_passes_the_conformance_suite() {
        let store = MemoryStore::new();
        assert_eq!(block_on_ready(conformance(&store)), Some(Ok(())));
    }
}
