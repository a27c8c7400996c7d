//! Terms left without postings leave the dictionary (`sx/w/<term>`): a word of an edited,
//! deleted or expired message is not kept on the device by the index once no message it
//! may read holds it (docs/SEARCH.md, "On the device"). Whether a term that lost postings
//! still has one is a store read; it is asked after the write that deleted them (a host
//! carries outputs in order), and the postings that write deleted never count.

use super::super::engine::{ClientEngine, ClientError, Output};
use super::super::records::key_term;
use super::super::store::StoreOp;

impl ClientEngine {
    /// Asks for the first postings of every term that lost some since the last ask.
    pub(crate) fn check_lost_terms(&mut self) {
        let lost = self.dict.take_lost();
        if lost.is_empty() {
            return;
        }
        let load = self.loads.ask_term_check(lost);
        self.out.push(Output::Load(load));
    }

    /// The answer: a term none of whose postings is left, and which no posting wrote
    /// again since, leaves the dictionary. A failed read asks again with the next write.
    pub(crate) fn terms_checked(
        &mut self,
        terms: Vec<(String, Vec<String>)>,
        answer: Result<Vec<(String, Vec<u8>)>, ClientError>,
    ) {
        let Ok(entries) = answer else {
            for (term, deleted) in terms {
                self.dict.lost.entry(term).or_default().extend(deleted);
            }
            return;
        };
        let mut ops = Vec::new();
        for (term, deleted) in terms {
            let prefix = super::super::records::posting_prefix(&term, false);
            let held = entries
                .iter()
                .any(|(key, _)| key.starts_with(&prefix) && !deleted.contains(key));
            if !held && !self.dict.rewritten(&term) {
                ops.push(StoreOp::Delete(key_term(&term)));
            }
        }
        if !ops.is_empty() {
            self.out.push(Output::Persist(ops));
        }
    }
}
