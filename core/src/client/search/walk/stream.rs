//! One term's postings read a page at a time (`Stream`), and a term's first page kept to
//! check other terms' messages against (`Known`).

use std::collections::BTreeMap;
use std::collections::VecDeque;

use super::super::super::ask::Read;
use super::super::super::records::posting_prefix;

/// Postings read per page of a term.
pub(super) const PAGE: u32 = 128;

/// The smallest key after `key`.
pub(super) fn after(key: &str) -> String {
    format!("{key}\0")
}

/// One term's postings, read page by page from a place on.
#[derive(Debug)]
pub(super) struct Stream {
    pub(super) term: String,
    /// Read and not yet taken, in order: place and value.
    pub(super) buffered: VecDeque<(String, Vec<u8>)>,
    /// The place its next page starts at; `None` once read to the end.
    pub(super) next: Option<String>,
    /// Where its reads began, and the last place read.
    pub(super) from: String,
    pub(super) last: Option<String>,
    /// A page of it is out.
    pub(super) reading: bool,
    /// Postings per page.
    pub(super) limit: u32,
}

impl Stream {
    pub(super) fn new(term: &str, from: &str) -> Self {
        Stream {
            term: term.to_owned(),
            buffered: VecDeque::new(),
            next: Some(from.to_owned()),
            from: from.to_owned(),
            last: None,
            reading: false,
            limit: PAGE,
        }
    }

    pub(super) fn read(&mut self) -> Option<Read> {
        let next = self.next.as_ref()?;
        self.reading = true;
        let prefix = posting_prefix(&self.term, false);
        Some(Read::Page {
            from: format!("{prefix}{next}"),
            prefix,
            limit: self.limit,
        })
    }

    /// Its page from a load's answer (entries under its prefix at or after its start).
    pub(super) fn take(&mut self, entries: &[(String, Vec<u8>)]) {
        if !std::mem::take(&mut self.reading) {
            return;
        }
        let prefix = posting_prefix(&self.term, false);
        let Some(start) = self.next.clone() else {
            return;
        };
        let mut page: Vec<(String, Vec<u8>)> = entries
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(prefix.as_str())?.to_owned(), v.clone())))
            .filter(|(place, _)| *place >= start)
            .collect();
        page.sort_by(|a, b| a.0.cmp(&b.0));
        let full = page.len() >= self.limit as usize;
        if let Some((place, _)) = page.last() {
            self.last = Some(place.clone());
        }
        self.next = match (full, &self.last) {
            (true, Some(last)) => Some(after(last)),
            _ => None,
        };
        self.buffered.extend(page);
    }

    pub(super) fn done(&self) -> bool {
        self.next.is_none() && self.buffered.is_empty()
    }
}

/// A term's first page, read to check the driver's messages against.
#[derive(Debug)]
pub(super) struct Known {
    pub(super) stream: Stream,
    pub(super) places: BTreeMap<String, Vec<u8>>,
}

impl Known {
    /// Whether `place` is a posting of this term, if its page tells.
    pub(super) fn holds(&self, place: &str) -> Option<bool> {
        let s = &self.stream;
        if place < s.from.as_str() {
            return None;
        }
        let covered = s.next.is_none() || s.last.as_deref().is_some_and(|l| place <= l);
        covered.then(|| self.places.contains_key(place))
    }
}
