//! A file store: an append-only log of batches (each one length-prefixed and checksummed, so
//! a torn write at a crash is dropped whole), replayed into memory at open and rewritten when
//! it holds mostly dead entries.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use confab_core::client::{LocalStore, StoreError, StoreOp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;

#[derive(Serialize, Deserialize)]
enum Rec {
    Put(String, serde_bytes::ByteBuf),
    Delete(String),
    DeletePrefix(String),
}

/// A durable key/value store in one file, `store.log` in its folder: every entry is held in
/// memory, so it suits stores of tens of megabytes (a bot, a test client); each write is
/// appended and synced before it is visible.
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    entries: RefCell<BTreeMap<String, Vec<u8>>>,
    log_bytes: RefCell<u64>,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

fn checksum(body: &[u8]) -> [u8; 4] {
    let digest = Sha256::digest(body);
    [digest[0], digest[1], digest[2], digest[3]]
}

fn apply(entries: &mut BTreeMap<String, Vec<u8>>, rec: Rec) {
    match rec {
        Rec::Put(k, v) => {
            entries.insert(k, v.into_vec());
        }
        Rec::Delete(k) => {
            entries.remove(&k);
        }
        Rec::DeletePrefix(p) => entries.retain(|k, _| !k.starts_with(&p)),
    }
}

impl FileStore {
    /// Opens (or creates) the store file `dir/store.log`, creating `dir` if needed.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        let path = dir.join("store.log");
        let failed = |source: std::io::Error| Error::OpenStore {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(failed)?;
        let mut entries = BTreeMap::new();
        let mut data = Vec::new();
        if path.exists() {
            File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut data))
                .map_err(failed)?;
        }
        let mut at = 0;
        let mut valid = 0;
        while at + 8 <= data.len() {
            let len =
                u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
            let Some(body) = data.get(at + 8..at + 8 + len) else {
                break; // torn tail
            };
            if checksum(body) != data[at + 4..at + 8] {
                break;
            }
            let recs: Vec<Rec> = ciborium::de::from_reader(body)
                .map_err(|e| failed(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
            for rec in recs {
                apply(&mut entries, rec);
            }
            at += 8 + len;
            valid = at;
        }
        if valid < data.len() {
            // Drop the torn batch so later appends follow the last whole one.
            let file = OpenOptions::new().write(true).open(&path).map_err(failed)?;
            file.set_len(valid as u64).map_err(failed)?;
        }
        Ok(FileStore {
            path,
            entries: RefCell::new(entries),
            log_bytes: RefCell::new(valid as u64),
        })
    }

    fn append(&self, recs: &[Rec]) -> Result<(), StoreError> {
        let mut body = Vec::new();
        ciborium::ser::into_writer(recs, &mut body).map_err(err)?;
        let mut frame = Vec::with_capacity(body.len() + 8);
        frame.extend((body.len() as u32).to_be_bytes());
        frame.extend(checksum(&body));
        frame.extend(body);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(err)?;
        file.write_all(&frame).map_err(err)?;
        file.sync_data().map_err(err)?;
        *self.log_bytes.borrow_mut() += frame.len() as u64;
        Ok(())
    }

    /// Rewrites the log with only live entries once it is mostly dead weight.
    fn maybe_rewrite(&self) -> Result<(), StoreError> {
        let live: u64 = self
            .entries
            .borrow()
            .iter()
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum();
        if *self.log_bytes.borrow() < 1 << 20 || *self.log_bytes.borrow() < live * 3 {
            return Ok(());
        }
        let recs: Vec<Rec> = self
            .entries
            .borrow()
            .iter()
            .map(|(k, v)| Rec::Put(k.clone(), serde_bytes::ByteBuf::from(v.clone())))
            .collect();
        let tmp = self.path.with_extension("tmp");
        let _ = std::fs::remove_file(&tmp);
        let rewritten = FileStore {
            path: tmp.clone(),
            entries: RefCell::new(BTreeMap::new()),
            log_bytes: RefCell::new(0),
        };
        rewritten.append(&recs)?;
        std::fs::rename(&tmp, &self.path).map_err(err)?;
        *self.log_bytes.borrow_mut() = *rewritten.log_bytes.borrow();
        Ok(())
    }
}

impl LocalStore for FileStore {
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
        let recs: Vec<Rec> = ops
            .into_iter()
            .map(|op| match op {
                StoreOp::Put(k, v) => Rec::Put(k, serde_bytes::ByteBuf::from(v)),
                StoreOp::Delete(k) => Rec::Delete(k),
                StoreOp::DeletePrefix(p) => Rec::DeletePrefix(p),
            })
            .collect();
        // Durable first, then visible.
        self.append(&recs)?;
        let mut entries = self.entries.borrow_mut();
        for rec in recs {
            apply(&mut entries, rec);
        }
        drop(entries);
        self.maybe_rewrite()
    }
}
