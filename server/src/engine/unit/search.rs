//! A conversation unit's part of the search backfill (`engine::search_backfill`): the terms
//! of messages of one of its buckets, read as the projection reads them for a commit.

use confab_core::doc::read::read_message_fields;
use confab_core::ids::{DocId, MessageId};

use super::super::search_backfill::Terms;
use super::Unit;
use crate::engine::projection;
use crate::store::Projection;

impl Unit {
    /// The terms of `messages` of bucket `doc`, as a commit of each would index them (none
    /// in an encrypted conversation). Runs between jobs, after every earlier commit. A
    /// bucket loaded only for this is released again, so a backfill does not fill memory.
    pub(super) async fn search_terms(
        &mut self,
        doc: &DocId,
        messages: &[MessageId],
    ) -> Result<Terms, String> {
        let held = self.acceptor.doc(doc).is_some();
        self.prepare(doc).await.map_err(|e| e.to_string())?;
        // A bucket's unit holds its conversation; without it, nothing is indexed.
        let encrypted = self.acceptor.conversation().is_none_or(|c| c.encrypted());
        let terms = self.acceptor.doc(doc).map_or_else(Vec::new, |d| {
            messages
                .iter()
                .filter_map(|id| {
                    let m = read_message_fields(d.doc(), id)?;
                    match projection::search_terms(
                        doc,
                        encrypted,
                        id,
                        &m.body,
                        m.caption.as_deref(),
                    )? {
                        Projection::SearchTerms { message, terms, .. } => Some((message, terms)),
                        _ => None,
                    }
                })
                .collect()
        });
        if !held {
            self.acceptor.release(doc);
        }
        self.count_loaded();
        Ok(terms)
    }
}
