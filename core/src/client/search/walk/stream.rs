//! One term's postings read a page at a time (`Stream`), and a term's first page kept to
//! check other terms' messages against (`Known`).

use std::collections::BTreeMap;
use std::collections::VecDeque;

use super::super::super::ask::Read;
use super::super::super::records::posting_prefix;

/// Postings read per page of a term: the first page, and at most once a walk goes on (each
/// page it reads further is twice the last, so a long walk costs few loads).
pub(super) const PAGE: u32 = 128;
pub(super) const PAGE_MAX: u32 = 2048;
/// A term's first page read from a message's place on: small, since a rare driver's
/// messages are far apart (it grows as the walk keeps reading the term).
const SEEK_FIRST: u32 = 32;

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
    /// Each page read doubles the next (to `PAGE_MAX`).
    pub(super) grows: bool,
    /// Its pages are read as keys alone (`Read::PageKeys`): its values are not needed.
    pub(super) keys_only: bool,
    /// The size of the page out.
    asked: u32,
}

impl Stream {
    pub(super) fn new(term: &str, from: &str, keys_only: bool) -> Self {
        Stream {
            term: term.to_owned(),
            buffered: VecDeque::new(),
            next: Some(from.to_owned()),
            from: from.to_owned(),
            last: None,
            reading: false,
            limit: PAGE,
            grows: false,
            keys_only,
            asked: PAGE,
        }
    }

    pub(super) fn read(&mut self) -> Option<Read> {
        let next = self.next.as_ref()?;
        self.reading = true;
        let prefix = posting_prefix(&self.term, false);
        let limit = self.limit;
        self.asked = limit;
        if self.grows {
            self.limit = (self.limit * 2).min(PAGE_MAX);
        }
        let from = format!("{prefix}{next}");
        Some(if self.keys_only {
            Read::PageKeys {
                from,
                prefix,
                limit,
            }
        } else {
            Read::Page {
                from,
                prefix,
                limit,
            }
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
        let full = page.len() >= self.asked as usize;
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

/// A term's postings read to check the drivers' messages against: its first page, then
/// a page from the first message it must tell of on (what came before is settled).
#[derive(Debug)]
pub(super) struct Known {
    pub(super) stream: Stream,
    pub(super) places: BTreeMap<String, Vec<u8>>,
}

impl Known {
    /// Its page from a load's answer, if one was out: it replaces the last.
    pub(super) fn took(&mut self, entries: &[(String, Vec<u8>)]) {
        if !self.stream.reading {
            return;
        }
        self.stream.take(entries);
        self.places = self.stream.buffered.drain(..).collect();
    }

    /// The read of a page from `place` on, unless one is out or its pages tell already.
    /// Keys alone: a page read to check messages against tells only which it holds.
    pub(super) fn seek(&mut self, place: &str) -> Option<Read> {
        if self.stream.reading || self.holds(place).is_some() {
            return None;
        }
        self.stream.keys_only = true;
        self.stream.from = place.to_owned();
        self.stream.next = Some(place.to_owned());
        self.stream.last = None;
        if !self.stream.grows {
            self.stream.limit = SEEK_FIRST;
            self.stream.grows = true;
        }
        self.stream.read()
    }

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
