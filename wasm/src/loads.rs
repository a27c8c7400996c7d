//! The reads of several engine loads at once. A start-up restore asks for every stored
//! document (a conversation and its newest part each): one load apiece, two reads each. Read
//! one after the other, each an IndexedDB transaction whose requests are answered through
//! the page's task queue, a phone in 50 conversations spent over a second before `ready`.
//! On IndexedDB the reads of all the loads waiting together at the head of the queue go out
//! in one `readonly` transaction, every request issued before the first answer is awaited;
//! other stores read load by load (`confab_core::client::store::read`).

use confab_core::client::store::read;
use confab_core::client::{Read, StoreError};

use crate::idb::{js_store_error, to_bytes, KeyScan, Scan, Watched, OBJECT_STORE};
use crate::store::{AnyStore, IdbStore};

/// What each load found (`loads[i]`'s entries at `[i]`), or the error of all of them.
pub(crate) type Answers = Result<Vec<Vec<(String, Vec<u8>)>>, StoreError>;

/// The reads of `loads`, each load's entries apart.
pub(crate) async fn read_loads(store: &AnyStore, loads: &[&[Read]]) -> Answers {
    match store {
        AnyStore::IndexedDb(db) => db.read_loads(loads).await,
        _ => {
            let mut answers = Vec::with_capacity(loads.len());
            for reads in loads {
                answers.push(read(store, reads).await?);
            }
            Ok(answers)
        }
    }
}

/// One read's requests, issued.
enum Issued {
    Key(String, Watched),
    Prefix(Scan),
    Keys(KeyScan),
}

impl IdbStore {
    async fn read_loads(&self, loads: &[&[Read]]) -> Answers {
        let tx = self.transaction(web_sys::IdbTransactionMode::Readonly)?;
        let store = tx
            .object_store(OBJECT_STORE)
            .map_err(|e| js_store_error("read", &e))?;
        let mut issued: Vec<Vec<Issued>> = Vec::with_capacity(loads.len());
        for reads in loads {
            let mut these = Vec::with_capacity(reads.len());
            for one in *reads {
                these.push(match one {
                    Read::Key(key) => {
                        let req = store
                            .get(&key.into())
                            .map_err(|e| js_store_error("get", &e))?;
                        Issued::Key(key.clone(), Watched::new(req))
                    }
                    Read::Prefix(prefix) => Issued::Prefix(Scan::issue(&store, prefix)?),
                    Read::Page {
                        prefix,
                        from,
                        limit,
                    } => Issued::Prefix(Scan::issue_page(&store, prefix, from, *limit)?),
                    Read::PageKeys {
                        prefix,
                        from,
                        limit,
                    } => Issued::Keys(KeyScan::issue_page(&store, prefix, from, *limit)?),
                });
            }
            issued.push(these);
        }
        let mut answers = Vec::with_capacity(issued.len());
        for these in issued {
            let mut entries = Vec::new();
            for one in these {
                match one {
                    Issued::Key(key, watched) => {
                        let value = watched.result("get").await?;
                        if !value.is_undefined() {
                            entries.push((key, to_bytes(&value)));
                        }
                    }
                    Issued::Prefix(scan) => entries.extend(scan.entries().await?),
                    Issued::Keys(scan) => {
                        entries.extend(scan.keys().await?.into_iter().map(|k| (k, Vec::new())));
                    }
                }
            }
            answers.push(entries);
        }
        Ok(answers)
    }
}
