//! A search that stays on the device reads its postings a page at a time (docs/SEARCH.md,
//! "On the device"): a term's postings are in time order in the keys (newest first), so
//! it reads until its page is full, not every match. Whole-word matches of every term come
//! first: the first pages of every term's postings are read, the one reaching furthest
//! back drives, and a message it names is checked against the others' pages; beyond them,
//! another term's postings are read by a page from that message's place on (a sorted-stream
//! intersection: one page answers every message it spans, and a page grows as the walk goes
//! on). Then, when the last term is a prefix, the postings of the terms that start with it
//! (the dictionary's, at most `WALK_TERMS_MAX`) merged newest first, each message checked
//! the same way (it holds every other term and not the last whole). The walk reads at most
//! `WALK_READ_MAX` postings: past that it stops, and its page says where it got to.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use stream::{after, Known, Stream, PAGE};

mod stream;

use super::super::ask::Read;
use super::super::records::{
    key_posting, uncbor, POSTINGS_PREFIX, SEARCH_RECORDS_PREFIX, TERMS_PREFIX,
};
use super::dict::{parse_place, when, Dictionary};
use super::find::{posting_candidate, Candidate, Rank};
use super::index::IndexRecord;
use super::SearchOptions;
use crate::client::records::key_search_record;
use crate::search::Query;

/// Candidates taken per round at most, and of those checked against their record.
const BATCH: usize = stream::PAGE_MAX as usize;
const BATCH_RECORDS: usize = 256;
/// Postings a walk reads at most: terms that are each common and seldom (or never) found
/// together would otherwise read every posting of both.
pub(crate) const WALK_READ_MAX: usize = 50_000;
/// Terms a prefix walks at most; past this many the search reads every posting instead.
pub(crate) const WALK_TERMS_MAX: usize = 256;

/// A message taken from the drivers, waiting for its record or confirmed.
#[derive(Debug)]
struct Taken {
    candidate: Candidate,
    /// Its record must show it matches (a term being walked by pages cannot be read by
    /// another page of it beside them: the answer could not tell the two apart).
    check: bool,
    /// Terms (of `known`) whose pages do not tell yet whether they hold it, and whether
    /// they must.
    pending: Vec<(usize, bool)>,
    /// No term read so far rules it out.
    agrees: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    /// The first load: every term's first page (and the dictionary, for a prefix).
    Start,
    /// Whole-word matches of every term.
    Whole,
    /// Prefix-only matches of the last term.
    Prefix,
    Over,
}

/// What the walk wants next.
pub(crate) enum Step {
    Read(Vec<Read>),
    /// It cannot walk (a prefix matching too many terms): read every posting instead.
    Everything,
    Done,
}

/// A search walking the postings (see the module's comment).
#[derive(Debug)]
pub(crate) struct Walk {
    query: Query,
    options: SearchOptions,
    /// Matches wanted: the page and one more (so the page knows whether another follows).
    want: usize,
    after: Option<Rank>,
    phase: Phase,
    drivers: Vec<Stream>,
    known: Vec<Known>,
    prefix_terms: Vec<String>,
    /// The last place taken from the drivers in this phase.
    taken_to: Option<String>,
    taken: VecDeque<Taken>,
    /// Matches, in rank order.
    pub(crate) found: Vec<Candidate>,
    /// Records read, by key.
    pub(crate) records: HashMap<String, IndexRecord>,
    /// Records asked for, and those the store did not have.
    asked: HashSet<String>,
    missing: HashSet<String>,
    /// Postings whose record is gone.
    pub(crate) stale: Vec<String>,
    /// Postings read so far.
    read: usize,
    /// The place of the last message taken and settled in this phase: every match up to it
    /// is in `found`.
    settled_to: Option<String>,
    /// It stopped at `WALK_READ_MAX`: `found` holds the matches up to `settled_to`.
    pub(crate) bounded: bool,
}

impl Walk {
    pub(crate) fn new(
        query: Query,
        options: SearchOptions,
        limit: usize,
        after: Option<Rank>,
    ) -> Self {
        Walk {
            query,
            options,
            want: limit + 1,
            after,
            phase: Phase::Start,
            drivers: Vec::new(),
            known: Vec::new(),
            prefix_terms: Vec::new(),
            taken_to: None,
            taken: VecDeque::new(),
            found: Vec::new(),
            records: HashMap::new(),
            asked: HashSet::new(),
            missing: HashSet::new(),
            stale: Vec::new(),
            read: 0,
            settled_to: None,
            bounded: false,
        }
    }

    /// Where a phase's reads begin: after the cursor when it is in that phase, and not
    /// before `until`.
    fn start(&self, prefix_only: bool) -> String {
        let top = self
            .options
            .until
            .map(|u| when(u.saturating_sub(1)))
            .unwrap_or_default();
        match &self.after {
            Some(a) if a.prefix_only == prefix_only => after(&a.place).max(top),
            _ => top,
        }
    }

    /// The first load's reads.
    pub(crate) fn first(&mut self) -> Vec<Read> {
        let from = self.start(false);
        // Any term's first page may drive, and a driver's values are read when a filter
        // needs them.
        let keys_only = !self.options.filters_postings();
        let mut reads = Vec::new();
        for t in &self.query.terms {
            let mut stream = Stream::new(t, &from, keys_only);
            reads.extend(stream.read());
            self.known.push(Known {
                stream,
                places: BTreeMap::new(),
            });
        }
        if self.query.last_is_prefix() {
            let last = &self.query.terms[self.query.terms.len() - 1];
            let prefix = format!("{TERMS_PREFIX}{last}");
            reads.push(Read::Page {
                from: prefix.clone(),
                prefix,
                limit: WALK_TERMS_MAX as u32 + 2,
            });
        }
        reads
    }

    /// A load's answer: the next reads, or the end.
    pub(crate) fn answered(&mut self, dict: &Dictionary, entries: &[(String, Vec<u8>)]) -> Step {
        let last = self.query.terms[self.query.terms.len() - 1].clone();
        let mut postings = Vec::new();
        for (key, value) in entries {
            if key.starts_with(SEARCH_RECORDS_PREFIX) {
                if let Ok(r) = uncbor::<IndexRecord>(value) {
                    self.records.insert(key.clone(), r);
                }
            } else if let Some(term) = key.strip_prefix(TERMS_PREFIX) {
                if term != last && term.starts_with(last.as_str()) {
                    self.prefix_terms.push(term.to_owned());
                }
            } else if key.starts_with(POSTINGS_PREFIX) {
                postings.push((key.clone(), value.clone()));
            }
        }
        self.read += postings.len();
        for key in self.asked.drain() {
            if !self.records.contains_key(&key) {
                self.missing.insert(key);
            }
        }
        for d in &mut self.drivers {
            d.take(&postings);
        }
        for k in &mut self.known {
            k.took(&postings);
        }
        if self.phase == Phase::Start {
            if self.prefix_terms.len() > WALK_TERMS_MAX {
                return Step::Everything;
            }
            if self.after.as_ref().is_some_and(|a| a.prefix_only) {
                self.begin_prefix();
            } else {
                self.begin_whole();
            }
        }
        // Each turn takes messages or ends a phase; the bound only guards against a bug.
        for _ in 0..100_000 {
            self.settle();
            self.resolve();
            if self.found.len() >= self.want || self.phase == Phase::Over {
                return Step::Done;
            }
            if self.read >= WALK_READ_MAX && self.settled_to.is_some() {
                self.bounded = true;
                return Step::Done;
            }
            self.take_more(dict);
            self.settle();
            self.resolve();
            if self.found.len() >= self.want {
                return Step::Done;
            }
            let reads = self.reads();
            if !reads.is_empty() {
                return Step::Read(reads);
            }
            if self.taken.is_empty() && self.drivers.iter().all(Stream::done) {
                if self.phase == Phase::Whole && self.query.last_is_prefix() {
                    self.begin_prefix();
                } else {
                    self.phase = Phase::Over;
                }
            }
        }
        Step::Done
    }

    /// Where the next page starts when the walk stopped at its bound: after the last
    /// message it settled (`None`: it settled none, so no page can follow).
    pub(crate) fn bound_cursor(&self) -> Option<String> {
        let place = self.settled_to.clone()?;
        Some(
            Rank {
                prefix_only: self.phase == Phase::Prefix,
                place,
            }
            .encode(),
        )
    }

    /// What the terms' pages now tell of the taken messages.
    fn settle(&mut self) {
        for t in &mut self.taken {
            let place = &t.candidate.rank.place;
            let known = &self.known;
            let keys = &mut t.candidate.keys;
            let mut agrees = t.agrees;
            t.pending
                .retain(|(i, wanted)| match known[*i].holds(place) {
                    None => true,
                    Some(held) => {
                        if held {
                            keys.push(key_posting(&known[*i].stream.term, place));
                        }
                        agrees &= held == *wanted;
                        false
                    }
                });
            t.agrees = agrees;
        }
    }

    /// Whole words: the term whose first page reaches furthest back drives, the others'
    /// pages check.
    fn begin_whole(&mut self) {
        self.phase = Phase::Whole;
        // A term read to its end with the fewest postings, else the one whose page
        // reaches furthest back (the rarest).
        let reach = |k: &Known| {
            let whole = k.stream.next.is_none();
            let fewest = std::cmp::Reverse(if whole { k.places.len() } else { 0 });
            (whole, fewest, k.stream.last.clone())
        };
        let Some(best) = (0..self.known.len()).max_by_key(|i| reach(&self.known[*i])) else {
            self.phase = Phase::Over;
            return;
        };
        let known = &self.known[best];
        let mut driver = Stream::new(
            &known.stream.term,
            &known.stream.from,
            known.stream.keys_only,
        );
        driver.buffered = known
            .places
            .iter()
            .map(|(p, v)| (p.clone(), v.clone()))
            .collect();
        driver.next = known.stream.next.clone();
        driver.last = known.stream.last.clone();
        driver.limit = PAGE * 2;
        driver.grows = true;
        self.drivers = vec![driver];
        self.taken_to = None;
    }

    /// Prefix-only matches: the dictionary's terms that start with the last, merged.
    fn begin_prefix(&mut self) {
        self.phase = Phase::Prefix;
        let from = self.start(true);
        // Pages in proportion to the terms: a short prefix's many terms read little each.
        let each = (self.want * 2 / self.prefix_terms.len().max(1) + 1).clamp(8, 128) as u32;
        let keys_only = !self.options.filters_postings();
        self.drivers = self
            .prefix_terms
            .iter()
            .map(|t| {
                let mut s = Stream::new(t, &from, keys_only);
                s.limit = each;
                // A prefix-only match is as rare as its terms are: a walk that goes on reads
                // each further page twice the last, not a load per few postings.
                s.grows = true;
                s
            })
            .collect();
        self.taken_to = None;
        self.settled_to = None;
        if self.drivers.is_empty() {
            self.phase = Phase::Over;
        }
    }

    /// Takes messages from the drivers, newest first, up to the place every unfinished
    /// driver has read to.
    fn take_more(&mut self, dict: &Dictionary) {
        let prefix_only = self.phase == Phase::Prefix;
        let frontier: Option<String> = self
            .drivers
            .iter()
            .filter(|d| d.next.is_some())
            .map(|d| d.last.clone().unwrap_or_default())
            .min();
        let mut count = 0;
        let mut checks = 0;
        while self.found.len() + self.taken.len() < self.want
            && count < BATCH
            && checks < BATCH_RECORDS
        {
            // The driver holding the newest buffered place.
            let Some(i) = (0..self.drivers.len())
                .filter(|i| !self.drivers[*i].buffered.is_empty())
                .min_by(|a, b| {
                    self.drivers[*a].buffered[0]
                        .0
                        .cmp(&self.drivers[*b].buffered[0].0)
                })
            else {
                return;
            };
            if frontier
                .as_ref()
                .is_some_and(|f| self.drivers[i].buffered[0].0 > *f)
            {
                return;
            }
            let Some((place, value)) = self.drivers[i].buffered.pop_front() else {
                return;
            };
            if self.taken_to.as_ref() == Some(&place) {
                continue;
            }
            self.taken_to = Some(place.clone());
            // Settled here unless it is taken below (then once it is resolved).
            let settled = self.settled_to.clone();
            if self.taken.is_empty() {
                self.settled_to = Some(place.clone());
            }
            count += 1;
            let Some((time, _, _)) = parse_place(&place) else {
                continue;
            };
            if self.options.since.is_some_and(|s| time < s) {
                // Everything after is older.
                for d in &mut self.drivers {
                    d.buffered.clear();
                    d.next = None;
                }
                return;
            }
            let term = self.drivers[i].term.clone();
            let Some(mut c) = posting_candidate(dict, &self.options, &place, &value, prefix_only)
            else {
                continue;
            };
            c.keys.push(key_posting(&term, &place));
            // Whole words: every other term; prefix-only: every term but the last, and
            // the last not as a whole word.
            let (last, rest) = match self.query.terms.split_last() {
                Some((last, rest)) => (last.as_str(), rest),
                None => return,
            };
            let mut check = false;
            let mut pending = Vec::new();
            let mut out = false;
            for (index, k) in self.known.iter().enumerate() {
                let t = k.stream.term.as_str();
                let wanted = if prefix_only {
                    if t == last {
                        false
                    } else {
                        rest.iter().any(|r| r == t)
                    }
                } else if t == term {
                    continue;
                } else {
                    true
                };
                match k.holds(&place) {
                    Some(held) if held == wanted => {
                        if held {
                            c.keys.push(key_posting(t, &place));
                        }
                    }
                    Some(_) => out = true,
                    None if self.drivers.iter().any(|d| d.term == t) => check = true,
                    None => pending.push((index, wanted)),
                }
            }
            if out {
                continue;
            }
            if check {
                pending.clear();
                checks += 1;
            }
            self.settled_to = settled;
            self.taken.push_back(Taken {
                candidate: c,
                check,
                pending,
                agrees: true,
            });
        }
    }

    /// The reads the walk waits for: a page of each term that must tell of a taken
    /// message, from the first such message on; records of the messages to check; and the
    /// next page of each driver that has none buffered when more messages are wanted.
    fn reads(&mut self) -> Vec<Read> {
        let mut reads = Vec::new();
        for (index, k) in self.known.iter_mut().enumerate() {
            let first = self
                .taken
                .iter()
                .filter(|t| t.agrees && t.pending.iter().any(|(i, _)| *i == index))
                .map(|t| t.candidate.rank.place.as_str())
                .min();
            if let Some(place) = first {
                reads.extend(k.seek(place));
            }
        }
        for t in self.taken.iter().filter(|t| t.check) {
            let key = key_search_record(&t.candidate.doc, &t.candidate.message);
            if !self.records.contains_key(&key)
                && !self.missing.contains(&key)
                && self.asked.insert(key.clone())
            {
                reads.push(Read::Key(key));
            }
        }
        let blocked = self
            .drivers
            .iter()
            .any(|d| d.buffered.is_empty() && d.next.is_some());
        if blocked && self.found.len() + self.taken.len() < self.want {
            // Every driver not read to its end, not only those out of postings: the walk
            // takes only up to where all have read, so the others would each block it next,
            // in a load of their own.
            for d in self.drivers.iter_mut().filter(|d| d.next.is_some()) {
                reads.extend(d.read());
            }
        }
        reads
    }

    /// Moves the taken messages whose match is known into `found`, in order.
    fn resolve(&mut self) {
        while let Some(front) = self.taken.front() {
            let matches = if !front.agrees {
                Some(false)
            } else if !front.pending.is_empty() {
                return;
            } else if front.check {
                let key = key_search_record(&front.candidate.doc, &front.candidate.message);
                match self.records.get(&key) {
                    Some(record) => {
                        Some(self.record_matches(&record.terms(), front.candidate.rank.prefix_only))
                    }
                    None if self.missing.contains(&key) => None,
                    None => return,
                }
            } else {
                Some(true)
            };
            let Some(t) = self.taken.pop_front() else {
                return;
            };
            self.settled_to = Some(t.candidate.rank.place.clone());
            match matches {
                Some(true) => self.found.push(t.candidate),
                Some(false) => {}
                // Postings whose record left (a crash between the writes of an expiry).
                None => self.stale.extend(t.candidate.keys),
            }
        }
    }

    /// Whether a record's terms match: every term but the last whole; the last whole (a
    /// whole-word match) or only as a prefix (a prefix-only one).
    fn record_matches(&self, holds: &BTreeSet<String>, prefix_only: bool) -> bool {
        let Some((last, rest)) = self.query.terms.split_last() else {
            return false;
        };
        rest.iter().all(|t| holds.contains(t))
            && if prefix_only {
                !holds.contains(last) && holds.iter().any(|w| w.starts_with(last.as_str()))
            } else {
                holds.contains(last)
            }
    }
}

#[cfg(test)]
mod tests;
