//! The search indexer: SQLite's inverted index is written behind the commit (docs/SEARCH.md,
//! "Cost"; migration 0044). Every [`PAUSE`] the backlog the commits named meanwhile is moved
//! into FTS5, [`BATCH`] entries a transaction, until it is empty; searches read the backlog
//! until then. Postgres writes its index in the commit and has no backlog: each pass there
//! finds nothing without reading anything.

use std::time::Duration;

use super::Engine;
use crate::store::StoreError;

/// Entries a transaction moves: FTS5 writes them as one segment, and the writer is held for
/// tens of milliseconds at most.
pub const BATCH: usize = 2_048;
/// Between passes: how long a new message is read from the backlog before FTS5 has it.
const PAUSE: Duration = Duration::from_millis(250);

impl Engine {
    /// Empties the search backlog, a batch a transaction; how many entries it moved.
    pub async fn index_search_backlog(&self) -> Result<usize, StoreError> {
        let mut moved = 0;
        loop {
            let n = self.store().index_search_backlog(BATCH).await?;
            moved += n;
            if n < BATCH || self.is_stopping() {
                return Ok(moved);
            }
        }
    }

    /// Runs a pass every [`PAUSE`] until the engine stops (`serve`). A failed pass (the
    /// store down or full) leaves the backlog as it was for the next; it is logged once
    /// until a pass succeeds again.
    pub fn spawn_search_indexer(&self) {
        let engine = self.clone();
        tokio::spawn(async move {
            let mut failing = false;
            while !engine.is_stopping() {
                tokio::time::sleep(PAUSE).await;
                match engine.index_search_backlog().await {
                    Ok(_) if failing => {
                        tracing::info!("search indexer resumed");
                        failing = false;
                    }
                    Ok(_) => {}
                    Err(error) if !failing => {
                        tracing::warn!(%error, "search indexer paused");
                        failing = true;
                    }
                    Err(_) => {}
                }
            }
        });
    }
}
