//! The newest committed changes of each document a unit holds, kept in memory so that a
//! subscription's catch-up can be answered without the database: while the storage is down
//! (docs/STORAGE.md, "Storage health"), and otherwise to spare it a read. Bounded in bytes
//! per document (`--recent-log-bytes`); only documents the acceptor holds keep one.

use std::collections::VecDeque;

use confab_core::ids::DocId;

use super::Unit;

/// One document's newest committed changes, contiguous in seq.
#[derive(Debug, Default)]
pub(crate) struct RecentLog {
    changes: VecDeque<(u64, Vec<u8>)>,
    bytes: usize,
}

impl RecentLog {
    /// Adds the committed change `seq`. A change that does not continue the log starts it
    /// over (the log stays contiguous); older changes leave past `max_bytes`.
    pub fn push(&mut self, seq: u64, bytes: Vec<u8>, max_bytes: usize) {
        match self.last_seq() {
            Some(last) if seq <= last => return,
            Some(last) if seq != last + 1 => self.clear(),
            _ => {}
        }
        if bytes.len() > max_bytes {
            // Too big to keep: the log would no longer reach the document's newest seq.
            self.clear();
            return;
        }
        self.bytes += bytes.len();
        self.changes.push_back((seq, bytes));
        while self.bytes > max_bytes {
            match self.changes.pop_front() {
                Some((_, old)) => self.bytes -= old.len(),
                None => break,
            }
        }
    }

    fn clear(&mut self) {
        self.changes.clear();
        self.bytes = 0;
    }

    pub fn last_seq(&self) -> Option<u64> {
        self.changes.back().map(|(seq, _)| *seq)
    }

    /// The changes after `after` up to `last_seq`, at most `limit`: `None` unless the log
    /// holds every one of them (its newest is `last_seq` and it reaches back to `after + 1`).
    pub fn after(&self, after: u64, last_seq: u64, limit: usize) -> Option<Vec<(u64, Vec<u8>)>> {
        let (first, _) = self.changes.front()?;
        if self.last_seq() != Some(last_seq) || *first > after + 1 {
            return None;
        }
        let skip = usize::try_from(after + 1 - first).ok()?;
        Some(
            self.changes
                .iter()
                .skip(skip)
                .take(limit)
                .map(|(seq, bytes)| (*seq, bytes.clone()))
                .collect(),
        )
    }

    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Unit {
    fn recent_max(&self) -> usize {
        self.engine.inner.config.recent_log_bytes
    }

    /// Notes committed changes of `doc`, in seq order.
    pub(super) fn remember<'a>(
        &mut self,
        doc: &DocId,
        changes: impl IntoIterator<Item = (u64, &'a [u8])>,
    ) {
        let max = self.recent_max();
        if max == 0 {
            return;
        }
        let log = self.recent.entry(doc.clone()).or_default();
        for (seq, bytes) in changes {
            log.push(seq, bytes.to_vec(), max);
        }
    }

    /// Notes what a load read from storage: the newest of its changes that fit.
    pub(super) fn remember_loaded(&mut self, doc: &DocId, changes: Vec<(u64, Vec<u8>)>) {
        let max = self.recent_max();
        let mut room = max;
        let newest = changes
            .iter()
            .rev()
            .take_while(|(_, b)| match room.checked_sub(b.len()) {
                Some(left) => {
                    room = left;
                    true
                }
                None => false,
            })
            .count();
        let mut log = RecentLog::default();
        let skip = changes.len() - newest;
        for (seq, bytes) in changes.into_iter().skip(skip) {
            log.push(seq, bytes, max);
        }
        self.recent.insert(doc.clone(), log);
    }

    /// Forgets the logs of documents the acceptor no longer holds.
    pub(super) fn prune_recent(&mut self) {
        let acceptor = &self.acceptor;
        self.recent
            .retain(|doc, _| acceptor.known_seq(doc).is_some());
    }
}

#[cfg(test)]
mod tests {
    use super::RecentLog;

    fn log(seqs: std::ops::RangeInclusive<u64>, size: usize, max: usize) -> RecentLog {
        let mut log = RecentLog::default();
        for seq in seqs {
            log.push(seq, vec![0; size], max);
        }
        log
    }

    #[test]
    fn keeps_the_newest_changes_within_its_bytes() {
        let log = log(1..=10, 10, 35);
        assert_eq!(log.bytes(), 30);
        assert_eq!(log.last_seq(), Some(10));
        let seqs =
            |v: Option<Vec<(u64, Vec<u8>)>>| v.map(|v| v.iter().map(|c| c.0).collect::<Vec<_>>());
        assert_eq!(seqs(log.after(7, 10, 100)), Some(vec![8, 9, 10]));
        assert_eq!(seqs(log.after(8, 10, 1)), Some(vec![9]));
        assert_eq!(seqs(log.after(10, 10, 100)), Some(vec![]));
        assert_eq!(log.after(6, 10, 100), None, "seq 7 left");
        assert_eq!(log.after(7, 11, 100), None, "seq 11 is not held");
    }

    #[test]
    fn a_gap_or_an_oversized_change_starts_it_over() {
        let mut log = log(1..=5, 10, 100);
        log.push(7, vec![0; 10], 100);
        assert_eq!(log.after(5, 7, 10), None);
        assert!(log.after(6, 7, 10).is_some());
        log.push(8, vec![0; 101], 100);
        assert_eq!(log.last_seq(), None);
        assert_eq!(log.bytes(), 0);
        log.push(3, vec![0; 10], 100);
        assert_eq!(
            log.last_seq(),
            Some(3),
            "an older seq after a restart is kept"
        );
    }
}
