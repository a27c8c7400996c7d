//! Pending uploads, kept until they complete or are cancelled: with IndexedDB storage in a
//! database of their own (`<dbName>/uploads`, object store `uploads`, key = the server's
//! upload id, value = the record with the `Blob` itself, which IndexedDB keeps), so a
//! reload resumes without the app picking the file again; with other storage in memory
//! (an adapter stores bytes by key, not Blobs: those uploads do not outlive the page).

use std::cell::RefCell;
use std::collections::BTreeMap;

use js_sys::Array;
use wasm_bindgen::JsCast;
use web_sys::{Blob, IdbDatabase, IdbTransactionMode};

use crate::error::{Failure, Result};
use crate::idb::{commit, open_database, request};
use crate::types::PendingUpload;

const STORE: &str = "uploads";

/// Where pending uploads live.
#[derive(Debug)]
pub struct Pending {
    /// The IndexedDB database's name, or `None` for memory.
    db_name: Option<String>,
    db: RefCell<Option<IdbDatabase>>,
    memory: RefCell<BTreeMap<String, (PendingUpload, Blob)>>,
}

fn fail(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::new("storage", format!("pending uploads: {what}: {e}"))
}

impl Pending {
    pub fn new(db_name: Option<String>) -> Pending {
        Pending {
            db_name: db_name.map(|n| format!("{n}/uploads")),
            db: RefCell::new(None),
            memory: RefCell::default(),
        }
    }

    /// The database, opened on first use.
    async fn db(&self) -> Result<Option<IdbDatabase>> {
        let Some(name) = &self.db_name else {
            return Ok(None);
        };
        if let Some(db) = self.db.borrow().as_ref() {
            return Ok(Some(db.clone()));
        }
        let db = open_database(name, STORE)
            .await
            .map_err(|e| fail("open", e.0))?;
        *self.db.borrow_mut() = Some(db.clone());
        Ok(Some(db))
    }

    pub async fn put(&self, record: &PendingUpload, blob: &Blob) -> Result<()> {
        let Some(db) = self.db().await? else {
            self.memory
                .borrow_mut()
                .insert(record.upload.clone(), (record.clone(), blob.clone()));
            return Ok(());
        };
        let value = serde_wasm_bindgen::to_value(record).map_err(|e| fail("put", e))?;
        js_sys::Reflect::set(&value, &"blob".into(), blob).map_err(|_| fail("put", "blob"))?;
        let tx = db
            .transaction_with_str_and_mode(STORE, IdbTransactionMode::Readwrite)
            .map_err(|e| fail("put", crate::error::describe_js(&e).1))?;
        let store = tx
            .object_store(STORE)
            .map_err(|e| fail("put", crate::error::describe_js(&e).1))?;
        store
            .put_with_key(&value, &record.upload.as_str().into())
            .map_err(|e| fail("put", crate::error::describe_js(&e).1))?;
        Ok(commit(&tx).await?)
    }

    pub async fn delete(&self, upload: &str) -> Result<()> {
        let Some(db) = self.db().await? else {
            self.memory.borrow_mut().remove(upload);
            return Ok(());
        };
        let tx = db
            .transaction_with_str_and_mode(STORE, IdbTransactionMode::Readwrite)
            .map_err(|e| fail("delete", crate::error::describe_js(&e).1))?;
        let store = tx
            .object_store(STORE)
            .map_err(|e| fail("delete", crate::error::describe_js(&e).1))?;
        store
            .delete(&upload.into())
            .map_err(|e| fail("delete", crate::error::describe_js(&e).1))?;
        Ok(commit(&tx).await?)
    }

    /// Every pending upload with its bytes, oldest id first.
    pub async fn all(&self) -> Result<Vec<(PendingUpload, Blob)>> {
        let Some(db) = self.db().await? else {
            return Ok(self.memory.borrow().values().cloned().collect());
        };
        let tx = db
            .transaction_with_str_and_mode(STORE, IdbTransactionMode::Readonly)
            .map_err(|e| fail("read", crate::error::describe_js(&e).1))?;
        let store = tx
            .object_store(STORE)
            .map_err(|e| fail("read", crate::error::describe_js(&e).1))?;
        let req = store
            .get_all()
            .map_err(|e| fail("read", crate::error::describe_js(&e).1))?;
        let values: Array = request(&req, "read uploads").await?.unchecked_into();
        let mut out = Vec::with_capacity(values.length() as usize);
        for value in values.iter() {
            let blob = js_sys::Reflect::get(&value, &"blob".into()).unwrap_or_default();
            // A record this version cannot read is skipped, not fatal to the others.
            let (Ok(record), Ok(blob)) = (
                serde_wasm_bindgen::from_value::<PendingUpload>(value),
                blob.dyn_into::<Blob>(),
            ) else {
                continue;
            };
            out.push((record, blob));
        }
        Ok(out)
    }

    /// Releases the database connection (the client is disposed).
    pub fn close(&self) {
        if let Some(db) = self.db.borrow_mut().take() {
            db.close();
        }
    }
}
