//! A file store: a log of batches (each one length-prefixed and checksummed, so a torn write
//! at a crash is dropped whole), replayed into memory at open. A batch that only adds keys is
//! appended; one that removes or replaces a value rewrites the log with the live entries only
//! (write a new file, sync it, rename it over the log, sync the folder), so a deleted body or
//! a part's history replaced by its next generation is in no file once the write returns
//! (docs/STORAGE.md, "What a delete removes").

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
/// synced before it is visible. A write that removes or replaces a value rewrites the whole
/// file (its cost grows with the store), so that the old value is gone from disk; the
/// rewrite goes through `store.tmp`, which only exists during one.
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

/// Whether the batch `recs`, applied to `entries`, drops a value the log would hold: a
/// delete that finds its key, a put over different bytes, or either on a key the batch put
/// before (an appended batch would carry that value too).
fn drops_a_value(entries: &BTreeMap<String, Vec<u8>>, recs: &[Rec]) -> bool {
    let mut put: Vec<&str> = Vec::new();
    for rec in recs {
        let drops = match rec {
            Rec::Put(k, v) => {
                put.contains(&k.as_str()) || entries.get(k).is_some_and(|old| old[..] != v[..])
            }
            Rec::Delete(k) => put.contains(&k.as_str()) || entries.contains_key(k),
            Rec::DeletePrefix(p) => {
                put.iter().any(|k| k.starts_with(p.as_str()))
                    || entries
                        .range(p.clone()..)
                        .next()
                        .is_some_and(|(k, _)| k.starts_with(p.as_str()))
            }
        };
        if drops {
            return true;
        }
        if let Rec::Put(k, _) = rec {
            put.push(k);
        }
    }
    false
}

/// One frame: length, checksum, the batch in CBOR.
fn frame(recs: &[Rec]) -> Result<Vec<u8>, StoreError> {
    let mut body = Vec::new();
    ciborium::ser::into_writer(recs, &mut body).map_err(err)?;
    let len = u32::try_from(body.len()).map_err(|_| err("a batch of 4 GiB or more"))?;
    let mut frame = Vec::with_capacity(body.len() + 8);
    frame.extend(len.to_be_bytes());
    frame.extend(checksum(&body));
    frame.extend(body);
    Ok(frame)
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
        // A rewrite cut short by a crash: the log it was to replace is whole.
        match std::fs::remove_file(path.with_extension("tmp")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(failed(e)),
            _ => {}
        }
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
            file.sync_data().map_err(failed)?;
        }
        Ok(FileStore {
            path,
            entries: RefCell::new(entries),
            log_bytes: RefCell::new(valid as u64),
        })
    }

    fn append(&self, recs: &[Rec]) -> Result<(), StoreError> {
        let frame = frame(recs)?;
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

    /// Replaces the log by one holding `entries` only: written beside it, synced, renamed
    /// over it, the folder synced. A crash leaves the old log or the new one, whole.
    fn rewrite(&self, entries: &BTreeMap<String, Vec<u8>>) -> Result<(), StoreError> {
        let recs: Vec<Rec> = entries
            .iter()
            .map(|(k, v)| Rec::Put(k.clone(), serde_bytes::ByteBuf::from(v.clone())))
            .collect();
        let frame = frame(&recs)?;
        let tmp = self.path.with_extension("tmp");
        let mut file = File::create(&tmp).map_err(err)?;
        file.write_all(&frame).map_err(err)?;
        file.sync_all().map_err(err)?;
        drop(file);
        std::fs::rename(&tmp, &self.path).map_err(err)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(err)?;
        }
        *self.log_bytes.borrow_mut() = frame.len() as u64;
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
        if drops_a_value(&self.entries.borrow(), &recs) {
            let mut next = self.entries.borrow().clone();
            for rec in recs {
                apply(&mut next, rec);
            }
            self.rewrite(&next)?;
            *self.entries.borrow_mut() = next;
            return Ok(());
        }
        self.append(&recs)?;
        let mut entries = self.entries.borrow_mut();
        for rec in recs {
            apply(&mut entries, rec);
        }
        // Re-puts of the same bytes leave dead copies of live values: bounded by a rewrite
        // once they are most of the log.
        let live: u64 = entries
            .iter()
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum();
        let log = *self.log_bytes.borrow();
        if log >= 1 << 20 && log >= live * 3 {
            self.rewrite(&entries)?;
        }
        Ok(())
    }
}
