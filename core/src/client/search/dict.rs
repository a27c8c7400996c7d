//! The index's dictionary (docs/SEARCH.md, "On the device"): the numbers that stand for
//! buckets in postings (`sx/b/<number>`), a posting's place (`<when>/<bucket>/<message>`,
//! newest first in key order), the terms written (`sx/w/<term>`, which a prefix walks), the
//! layout's version (`sx/v`), and the migration of an older layout at start.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::super::records::{
    cbor, key_bucket_number, uncbor, BUCKET_NUMBERS_PREFIX, KEY_INDEX_VERSION,
};
use super::super::store::StoreOp;
use crate::ids::{DocId, MessageId};

/// The index's layout version: a store with another (or none) is migrated at start.
pub(crate) const LAYOUT: u32 = 2;

/// Characters of a posting's `<when>`, and the order-keeping digits they use (ASCII order).
const WHEN_CHARS: usize = 8;
const WHEN_DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// The latest time a `<when>` tells apart (62^8 - 1 ms, the year 8888); later and earlier
/// (before 1970) times sort as these bounds.
const WHEN_MAX: i64 = 218_340_105_584_895;

/// A time as a posting's `<when>`: fixed width, later times first in key order.
pub(crate) fn when(created_at: i64) -> String {
    let mut n = WHEN_MAX - created_at.clamp(0, WHEN_MAX);
    let mut out = [b'0'; WHEN_CHARS];
    for slot in out.iter_mut().rev() {
        *slot = WHEN_DIGITS[(n % 62) as usize];
        n /= 62;
    }
    out.iter().map(|b| char::from(*b)).collect()
}

/// The time a `<when>` stands for.
pub(crate) fn when_time(text: &str) -> Option<i64> {
    if text.len() != WHEN_CHARS {
        return None;
    }
    let mut n: i64 = 0;
    for b in text.bytes() {
        let digit = WHEN_DIGITS.iter().position(|d| *d == b)?;
        n = n * 62 + digit as i64;
    }
    Some(WHEN_MAX - n)
}

/// A message's place in every term's postings: `<when>/<bucket number>/<message>`.
pub(crate) fn place(created_at: i64, number: u32, message: &MessageId) -> String {
    format!("{}/{number}/{message}", when(created_at))
}

/// A place read back: time, bucket number, message.
pub(crate) fn parse_place(text: &str) -> Option<(i64, u32, MessageId)> {
    let mut parts = text.splitn(3, '/');
    let time = when_time(parts.next()?)?;
    let number = parts.next()?.parse().ok()?;
    let message = MessageId::new(parts.next()?).ok()?;
    Some((time, number, message))
}

/// What the engine knows of the index beside the buckets: the buckets' numbers, the terms
/// whose dictionary entry it wrote, and whether the store's layout is current.
#[derive(Debug, Default)]
pub(crate) struct Dictionary {
    /// The numbers are known and the layout current: upkeep and searches may run.
    pub(crate) ready: bool,
    /// `sx/v` is written (or was read) in this store.
    version_written: bool,
    numbers: HashMap<DocId, u32>,
    docs: HashMap<u32, DocId>,
    next: u32,
    /// Terms whose `sx/w/` entry was written since start (a put again is harmless).
    terms: HashSet<String>,
    /// Terms that lost postings since the last check, with the posting keys deleted
    /// (`ClientEngine::check_lost_terms`).
    pub(crate) lost: BTreeMap<String, Vec<String>>,
    /// Searches waiting for the index to be ready.
    pub(crate) waiting: Vec<super::SearchAsk>,
    /// The migration's read failed: the next search asks again.
    pub(crate) migration_failed: bool,
}

impl Dictionary {
    /// An empty store's (a fresh engine): ready at once.
    pub(crate) fn fresh() -> Self {
        Dictionary {
            ready: true,
            ..Dictionary::default()
        }
    }

    /// From the start-up load's `sx/` entries: whether the layout is current.
    pub(crate) fn started(&mut self, entries: &[(String, Vec<u8>)]) -> bool {
        let mut current = false;
        for (key, value) in entries {
            if key == KEY_INDEX_VERSION {
                current = uncbor::<u32>(value).ok() == Some(LAYOUT);
            } else if let Some(n) = key.strip_prefix(BUCKET_NUMBERS_PREFIX) {
                let doc = std::str::from_utf8(value)
                    .ok()
                    .and_then(|d| DocId::parse(d).ok());
                if let (Ok(n), Some(doc)) = (n.parse::<u32>(), doc) {
                    self.numbers.insert(doc.clone(), n);
                    self.docs.insert(n, doc);
                    self.next = self.next.max(n + 1);
                }
            }
        }
        self.version_written = current;
        current
    }

    pub(crate) fn doc(&self, number: u32) -> Option<&DocId> {
        self.docs.get(&number)
    }

    pub(crate) fn number(&self, doc: &DocId) -> Option<u32> {
        self.numbers.get(doc).copied()
    }

    /// Whether a search should ask for the migration again (its read failed).
    pub(crate) fn retry_migration(&mut self) -> bool {
        std::mem::take(&mut self.migration_failed)
    }

    /// Whether `term`'s dictionary entry is to be written (the first time since start, or
    /// since a check of it was asked).
    pub(crate) fn new_term(&mut self, term: &str) -> bool {
        !self.terms.contains(term) && self.terms.insert(term.to_owned())
    }

    /// Whether a term's entry was written again since its check was asked: it stays.
    pub(crate) fn rewritten(&self, term: &str) -> bool {
        self.terms.contains(term)
    }

    /// The terms to check, each forgotten as written (a posting of it from now on writes
    /// its entry again, which the check then keeps).
    pub(crate) fn take_lost(&mut self) -> Vec<(String, Vec<String>)> {
        let lost = std::mem::take(&mut self.lost);
        for term in lost.keys() {
            self.terms.remove(term);
        }
        lost.into_iter().collect()
    }

    /// `doc`'s number, given now (with its write) when it has none.
    pub(crate) fn number_for(&mut self, doc: &DocId, ops: &mut Vec<StoreOp>) -> u32 {
        if let Some(n) = self.numbers.get(doc) {
            return *n;
        }
        let n = self.next;
        self.next += 1;
        self.numbers.insert(doc.clone(), n);
        self.docs.insert(n, doc.clone());
        ops.push(StoreOp::Put(
            key_bucket_number(n),
            doc.to_string().into_bytes(),
        ));
        n
    }

    /// The version record, with the first write of an index entry.
    pub(crate) fn version(&mut self, ops: &mut Vec<StoreOp>) {
        if !self.version_written {
            self.version_written = true;
            ops.push(StoreOp::Put(KEY_INDEX_VERSION.into(), cbor(&LAYOUT)));
        }
    }
}
