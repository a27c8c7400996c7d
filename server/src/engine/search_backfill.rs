//! The search backfill (docs/SEARCH.md, "Backfill"): messages projected before their
//! store's search index existed have no entry. A walk over every message row, a page at a
//! time from a marker in the store, asks each bucket's conversation unit for the terms of
//! the page's rows without an entry (the unit reads them as a commit would, so encrypted
//! conversations get none) and has the store write them and move the marker together. It
//! resumes where the marker stands after a restart; nodes of a cluster may walk at once
//! (a page written twice changes nothing, the marker moves only forward).

use std::collections::BTreeMap;
use std::time::Duration;

use confab_core::accept::UnitId;
use confab_core::ids::{DocId, MessageId};
use tokio::sync::oneshot;

use super::{Engine, Job};
use crate::store::search::backfill::{Entry, Page};
use crate::store::StoreError;

/// A unit's answer: each message's terms, space-separated.
pub type Terms = Vec<(MessageId, String)>;

/// Message rows per page: a page's buckets are read in one pass, its entries written in
/// one transaction.
pub const PAGE: usize = 500;
/// After a failed page, the walk waits this long before it tries the page again.
const RETRY: Duration = Duration::from_secs(30);

/// What a walk did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillReport {
    pub pages: usize,
    pub visited: usize,
    pub indexed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("search backfill: {0}")]
    Store(#[from] StoreError),
    #[error("search backfill: {doc}: {reason}")]
    Unit { doc: DocId, reason: String },
}

impl Engine {
    /// Walks from the store's marker to the end (at once if it is done), a page at a time.
    pub async fn backfill_search(&self) -> Result<BackfillReport, BackfillError> {
        let mut report = BackfillReport::default();
        while let Some(page) = self.store().search_backfill_page(PAGE).await? {
            if self.is_stopping() {
                break;
            }
            let entries = self.page_entries(&page).await?;
            self.store().search_backfill_write(&page, &entries).await?;
            report.pages += 1;
            report.visited += page.rows.len();
            report.indexed += entries.len();
            if page.last {
                break;
            }
        }
        Ok(report)
    }

    /// The terms of a page's wanted rows, asked of their units a bucket at a time.
    async fn page_entries(&self, page: &Page) -> Result<Vec<Entry>, BackfillError> {
        let mut buckets: BTreeMap<DocId, Vec<(MessageId, i64, i64)>> = BTreeMap::new();
        for r in page.rows.iter().filter(|r| r.wanted) {
            let doc = DocId::msgs(&r.tenant, &r.conv, r.bucket);
            buckets
                .entry(doc)
                .or_default()
                .push((r.message.clone(), r.cid, r.pos));
        }
        let mut entries = Vec::new();
        for (doc, rows) in buckets {
            let Some(conv) = doc.conv_id().cloned() else {
                continue;
            };
            let (reply, rx) = oneshot::channel();
            let messages = rows.iter().map(|(m, _, _)| m.clone()).collect();
            let unit = UnitId::Conv(doc.tenant().clone(), conv);
            let job = Job::SearchTerms {
                doc: doc.clone(),
                messages,
                reply,
            };
            let asked = match self.dispatch(unit, job).await {
                Ok(()) => rx.await.unwrap_or_else(|_| Err("the unit stopped".into())),
                Err(e) => Err(e.to_string()),
            };
            let terms = asked.map_err(|reason| BackfillError::Unit {
                doc: doc.clone(),
                reason,
            })?;
            let terms: BTreeMap<MessageId, String> = terms.into_iter().collect();
            entries.extend(rows.into_iter().filter_map(|(m, cid, pos)| {
                let terms = terms.get(&m)?.clone();
                Some(Entry { cid, pos, terms })
            }));
        }
        Ok(entries)
    }

    /// Runs the walk in the background until it is done (`serve`), trying a failed page
    /// again after a pause (the store down, a unit busy stopping).
    pub fn spawn_search_backfill(&self) {
        let engine = self.clone();
        tokio::spawn(async move {
            loop {
                if engine.is_stopping() {
                    return;
                }
                match engine.backfill_search().await {
                    Ok(report) => {
                        if report.pages > 0 {
                            tracing::info!(?report, "search backfill done");
                        }
                        return;
                    }
                    Err(error) => tracing::warn!(%error, "search backfill paused"),
                }
                tokio::time::sleep(RETRY).await;
            }
        });
    }
}
