//! Opening storage and compaction, shared by the binary, tests and benchmarks.

use std::sync::Arc;

use confab_core::automerge::Change;
use confab_core::ids::DocId;
use confab_core::validate::AcceptedDoc;

use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};

/// Opens Postgres when a URL is given, otherwise the embedded SQLite store in `data_dir`,
/// and applies migrations.
pub async fn open_store(
    database_url: Option<&str>,
    data_dir: &std::path::Path,
) -> Result<Arc<dyn Store>, StoreError> {
    let store: Arc<dyn Store> = match database_url {
        Some(url) => Arc::new(PgStore::connect(url).await?),
        None => Arc::new(SqliteStore::open(&data_dir.join("confab.db")).await?),
    };
    store.migrate().await?;
    Ok(store)
}

/// What `compact` did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CompactReport {
    pub docs: usize,
    pub changes_folded: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Folds every document's change log into a snapshot. Safe while serving: changes committed
/// meanwhile have higher seqs and stay in the log.
pub async fn compact_all(store: &dyn Store) -> Result<CompactReport, StoreError> {
    let mut report = CompactReport::default();
    for id in store.doc_ids().await? {
        let doc = DocId::parse(&id).map_err(|e| StoreError::Corrupt(format!("{id}: {e}")))?;
        let stored = store.load_doc(&doc).await?;
        if stored.changes.is_empty() {
            continue;
        }
        report.bytes_before += store.stored_bytes(&doc).await?;
        let mut accepted = match &stored.snapshot {
            Some(bytes) => AcceptedDoc::load(doc.clone(), bytes),
            None => AcceptedDoc::new(doc.clone()),
        }
        .map_err(|e| StoreError::Corrupt(format!("{id}: {e}")))?;
        let changes = stored
            .changes
            .iter()
            .map(|(_, bytes)| Change::try_from(&bytes[..]))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Corrupt(format!("{id}: {e}")))?;
        accepted
            .apply_all(changes)
            .map_err(|e| StoreError::Corrupt(format!("{id}: {e}")))?;
        store
            .compact(&doc, &accepted.save(), stored.last_seq)
            .await?;
        report.docs += 1;
        report.changes_folded += stored.changes.len();
        report.bytes_after += store.stored_bytes(&doc).await?;
    }
    Ok(report)
}
