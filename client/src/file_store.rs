//! A file store: a log of batches (each one length-prefixed and checksummed, so a torn write
//! at a crash is dropped whole), replayed into memory at open. A batch that only adds keys is
//! appended, and so is one that removes or replaces a value; after such a batch the store's
//! thread rewrites the log with the live entries only (write a new file, sync it, rename it
//! over the log, sync the folder) within [`FORGET_WITHIN`](crate::FORGET_WITHIN), so a deleted
//! body or a part's history replaced by its next generation is in no file after that
//! (docs/STORAGE.md, "What a delete removes"). Opening a log that holds dead values rewrites
//! it too.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use confab_core::client::{LocalStore, StoreError, StoreOp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::forgetter::Forgetter;
use crate::Error;

#[derive(Serialize, Deserialize)]
enum Rec {
    Put(String, serde_bytes::ByteBuf),
    Delete(String),
    DeletePrefix(String),
}

/// A durable key/value store in one file, `store.log` in its folder: every entry is held in
/// memory, so it suits stores of tens of megabytes (a bot, a test client); each write is
/// synced before it is visible. Within a second of a write that removes or replaces a value,
/// the store's thread rewrites the whole file (its cost grows with the store; a burst of such
/// writes pays for one), so that the old value is gone from disk; the rewrite goes through
/// `store.tmp`, which only exists during one.
#[derive(Debug)]
pub struct FileStore {
    log: Arc<Mutex<Log>>,
    forgetter: Forgetter,
}

/// The file and what it holds.
#[derive(Debug)]
struct Log {
    path: PathBuf,
    entries: BTreeMap<String, Vec<u8>>,
    bytes: u64,
    /// The size of the live entries (keys and values).
    live: u64,
    /// The file holds values that are deleted or replaced: the forgetter rewrites it.
    dead: bool,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

fn checksum(body: &[u8]) -> [u8; 4] {
    let digest = Sha256::digest(body);
    [digest[0], digest[1], digest[2], digest[3]]
}

/// The bytes an entry counts for when deciding to compact.
fn size(key: &str, value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

/// Applies `rec` to `entries` and their total `live` size; whether it dropped a value (a
/// delete that found its key, a put over other bytes, a prefix delete that matched).
fn apply(entries: &mut BTreeMap<String, Vec<u8>>, live: &mut u64, rec: Rec) -> bool {
    match rec {
        Rec::Put(k, v) => {
            let v = v.into_vec();
            let added = size(&k, &v);
            match entries.get_mut(&k) {
                Some(old) => {
                    let dropped = *old != v;
                    *live = *live + added - size(&k, old);
                    *old = v;
                    dropped
                }
                None => {
                    *live += added;
                    entries.insert(k, v);
                    false
                }
            }
        }
        Rec::Delete(k) => match entries.remove(&k) {
            Some(old) => {
                *live -= size(&k, &old);
                true
            }
            None => false,
        },
        Rec::DeletePrefix(p) => {
            let keys: Vec<String> = entries
                .range(p.clone()..)
                .take_while(|(k, _)| k.starts_with(&p))
                .map(|(k, _)| k.clone())
                .collect();
            for k in &keys {
                if let Some(old) = entries.remove(k) {
                    *live -= size(k, &old);
                }
            }
            !keys.is_empty()
        }
    }
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
        let mut dead = false;
        let mut live = 0;
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
                dead |= apply(&mut entries, &mut live, rec);
            }
            at += 8 + len;
            valid = at;
        }
        let mut log = Log {
            path: path.clone(),
            entries,
            bytes: valid as u64,
            live,
            dead,
        };
        if dead {
            // Closed before its thread rewrote it (a crash): the dead values go now, and the
            // torn tail, if any, with them.
            log.rewrite()
                .map_err(|e| failed(std::io::Error::other(e.0)))?;
        } else if valid < data.len() {
            // Drop the torn batch so later appends follow the last whole one.
            let file = OpenOptions::new().write(true).open(&path).map_err(failed)?;
            file.set_len(valid as u64).map_err(failed)?;
            file.sync_data().map_err(failed)?;
        }
        let log = Arc::new(Mutex::new(log));
        let held = Arc::clone(&log);
        let forgetter = Forgetter::start("confab-file-forget", move || {
            held.lock().is_ok_and(|mut log| log.forget().is_ok())
        })
        .map_err(failed)?;
        Ok(FileStore { log, forgetter })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Log>, StoreError> {
        // Poisoned only by a panic inside a store call; what it holds is what the file says.
        self.log
            .lock()
            .map_err(|_| err("the file store failed in an earlier call"))
    }

    /// Rewrites the log now if it holds deleted or replaced values (the store does it by
    /// itself within [`FORGET_WITHIN`](crate::FORGET_WITHIN)).
    pub fn forget_now(&self) -> Result<(), StoreError> {
        self.lock()?.forget()
    }
}

impl Log {
    fn forget(&mut self) -> Result<(), StoreError> {
        if self.dead {
            self.rewrite()?;
        }
        Ok(())
    }

    fn append(&mut self, recs: &[Rec]) -> Result<(), StoreError> {
        let frame = frame(recs)?;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(err)?;
        file.write_all(&frame).map_err(err)?;
        file.sync_data().map_err(err)?;
        self.bytes += frame.len() as u64;
        Ok(())
    }

    /// Replaces the log by one holding the live entries only: written beside it, synced,
    /// renamed over it, the folder synced. A crash leaves the old log or the new one, whole.
    fn rewrite(&mut self) -> Result<(), StoreError> {
        let recs: Vec<Rec> = self
            .entries
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
        self.bytes = frame.len() as u64;
        self.dead = false;
        Ok(())
    }
}

impl FileStore {
    /// The first `limit` entries under `prefix` from `from` on, each as `take` makes it: a
    /// range of the map, whose cost is the page's, not the prefix's.
    fn page<T>(
        &self,
        prefix: &str,
        from: &str,
        limit: usize,
        take: impl Fn(&String, &Vec<u8>) -> T,
    ) -> Result<Vec<T>, StoreError> {
        let start = if from > prefix { from } else { prefix };
        Ok(self
            .lock()?
            .entries
            .range(start.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| take(k, v))
            .collect())
    }
}

impl LocalStore for FileStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock()?.entries.get(key).cloned())
    }

    async fn scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Ok(self
            .lock()?
            .entries
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn scan_page(
        &self,
        prefix: &str,
        from: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.page(prefix, from, limit, |k, v| (k.clone(), v.clone()))
    }

    async fn scan_page_keys(
        &self,
        prefix: &str,
        from: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.page(prefix, from, limit, |k, _| k.clone())
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
        let mut log = self.lock()?;
        // Durable first, then visible.
        log.append(&recs)?;
        let mut dropped = false;
        let Log { entries, live, .. } = &mut *log;
        for rec in recs {
            dropped |= apply(entries, live, rec);
        }
        if dropped {
            log.dead = true;
            drop(log);
            self.forgetter.poke();
            return Ok(());
        }
        // Re-puts of the same bytes leave dead copies of live values: bounded by a rewrite
        // once they are most of the log.
        if log.bytes >= 1 << 20 && log.bytes >= log.live * 3 {
            log.rewrite()?;
        }
        Ok(())
    }
}
