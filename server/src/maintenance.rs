//! Opening storage and compaction, shared by the binary, tests and benchmarks.

use std::sync::Arc;

use confab_core::automerge::Change;
use confab_core::doc::read;
use confab_core::ids::{ConvId, DocId, TenantId};
use confab_core::validate::AcceptedDoc;

use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{ChangeLog, Store, StoreError};

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
    project_discovery(store.as_ref()).await?;
    Ok(store)
}

/// Rows of a page of [`project_discovery`].
const PROJECT_PAGE: usize = 100;

/// Projects scope, description, member count and join route of the conversation summaries
/// written before those columns existed (Postgres migration 0014, SQLite 0009) from their
/// documents, at start; a row some commit wrote since keeps that commit's values. Nothing to
/// do (one empty range of a partial index) once it ran. Returns the rows it wrote.
pub async fn project_discovery(store: &dyn Store) -> Result<u64, StoreError> {
    let mut after: Option<(TenantId, ConvId)> = None;
    let mut written = 0;
    loop {
        let page = store
            .discovery_stale(after.as_ref().map(|(t, c)| (t, c)), PROJECT_PAGE)
            .await?;
        let Some(last) = page.last().cloned() else {
            if written > 0 {
                tracing::info!(
                    written,
                    "projected discovery columns of older conversations"
                );
            }
            return Ok(written);
        };
        let mut rows = Vec::with_capacity(page.len());
        for (tenant, conv) in &page {
            let accepted = load_accepted(store, &DocId::conv(tenant, conv)).await?;
            let state = read::read_conversation(accepted.doc(), conv.clone());
            // A row without its creation change yet stays unprojected (and unlisted).
            rows.extend(crate::engine::projection::conv_row(tenant, &state));
        }
        written += store.discovery_write(&rows).await?;
        after = Some(last);
    }
}

/// A stored document with all its changes applied.
async fn load_accepted(store: &dyn ChangeLog, doc: &DocId) -> Result<AcceptedDoc, StoreError> {
    let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("{doc}: {e}"));
    let stored = store.load_doc(doc).await?;
    let mut accepted = match &stored.snapshot {
        Some(bytes) => AcceptedDoc::load(doc.clone(), bytes),
        None => AcceptedDoc::new(doc.clone()),
    }
    .map_err(|e| corrupt(&e))?;
    let changes = stored
        .changes
        .iter()
        .map(|(_, bytes)| Change::try_from(&bytes[..]))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| corrupt(&e))?;
    accepted.apply_all(changes).map_err(|e| corrupt(&e))?;
    Ok(accepted)
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
pub async fn compact_all(store: &dyn ChangeLog) -> Result<CompactReport, StoreError> {
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
