//! What the engine asks of its host's store, as data: loads (store reads under an id), the
//! requests that end with `Event::Done`, and the bookkeeping of the work that waits for
//! loads. The behaviour is in `load` (answers) and `jobs` (the work).

use std::collections::{BTreeSet, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::error::ClientError;
use super::intent::Intent;
use crate::ids::{ConvId, DocId};

/// Names one load; its answer goes to `ClientEngine::loaded` under the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LoadId(pub u64);

/// Names a request that ends with `Event::Done`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequestId(pub u64);

impl RequestId {
    /// The start-up restore of `ClientEngine::restoring`.
    pub const RESTORE: RequestId = RequestId(0);
}

/// One store read of a load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// The entry under this key, if there is one (none is a valid answer).
    Key(String),
    /// Every entry whose key starts with this prefix.
    Prefix(String),
}

impl Read {
    /// Whether the entry under `key` answers this read.
    pub fn covers(&self, key: &str) -> bool {
        match self {
            Read::Key(k) => k == key,
            Read::Prefix(p) => key.starts_with(p.as_str()),
        }
    }
}

/// Store reads the engine waits for. The answer is every entry the reads find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Load {
    pub id: LoadId,
    pub reads: Vec<Read>,
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Outcome {
    /// Start-up restore: the outbox and the documents a start shows are in memory.
    Restored,
    /// `open_conversation`: the conversation and enough of its newest buckets are in memory.
    Opened,
    /// `load_older`: `more` is false once the conversation's first bucket was reached.
    Older { more: bool },
    /// A document it needed could not be read.
    Failed { code: String, message: String },
}

/// What a load is for.
#[derive(Debug)]
pub(super) enum Wanted {
    Start,
    Doc(DocId),
}

#[derive(Debug)]
pub(super) struct Asked {
    pub(super) wanted: Wanted,
    pub(super) reads: Vec<Read>,
}

/// Work that waits for loads, in call order (an intent never overtakes an earlier one).
#[derive(Debug)]
pub(super) enum Job {
    Restore {
        request: RequestId,
        /// Documents that failed to load (reported; start-up goes on without them).
        skipped: BTreeSet<DocId>,
    },
    Intent {
        id: u64,
        intent: Box<Intent>,
        device_now: i64,
    },
    Open {
        doc: DocId,
        /// Set when the caller waits for `Event::Done` (`open_document`).
        request: Option<RequestId>,
    },
    OpenConversation {
        request: RequestId,
        conv: ConvId,
        limit: usize,
        device_now: i64,
    },
    Older {
        request: RequestId,
        conv: ConvId,
        device_now: i64,
        /// The bucket chosen (once: loading it changes what "the next older" is).
        target: Option<DocId>,
    },
}

/// Loads out and the work waiting for them.
#[derive(Debug)]
pub(super) struct Loads {
    pub(super) next_load: u64,
    pub(super) next_request: u64,
    pub(super) asked: HashMap<LoadId, Asked>,
    /// Documents being read (one load each, however many jobs wait).
    pub(super) reading: HashMap<DocId, LoadId>,
    /// Documents whose load failed: the next job that needs one learns why.
    pub(super) failed: HashMap<DocId, ClientError>,
    /// The store's index of documents; `None` until the start-up load is answered.
    pub(super) stored: Option<BTreeSet<DocId>>,
    pub(super) queue: VecDeque<Job>,
}

/// Whether a document is there to use.
pub(super) enum Ready {
    /// In memory, or stored nowhere (it starts fresh from its genesis).
    Yes,
    /// Its load is out.
    Wait,
    Failed(ClientError),
}

impl Loads {
    fn new(stored: Option<BTreeSet<DocId>>) -> Self {
        Loads {
            next_load: 1,
            next_request: 1,
            asked: HashMap::new(),
            reading: HashMap::new(),
            failed: HashMap::new(),
            stored,
            queue: VecDeque::new(),
        }
    }

    /// A store known to be empty: nothing is ever loaded.
    pub(super) fn empty_store() -> Self {
        Self::new(Some(BTreeSet::new()))
    }

    /// A store whose contents the start-up load tells.
    pub(super) fn unknown_store() -> Self {
        Self::new(None)
    }

    pub(super) fn note_stored(&mut self, id: &DocId) {
        if let Some(stored) = &mut self.stored {
            stored.insert(id.clone());
        }
    }

    pub(super) fn stored(&self) -> impl Iterator<Item = &DocId> {
        self.stored.iter().flatten()
    }

    /// The stored documents in `range` (in key order), without walking the others.
    pub(super) fn stored_in(
        &self,
        range: std::ops::RangeInclusive<DocId>,
    ) -> impl DoubleEndedIterator<Item = &DocId> {
        self.stored.iter().flat_map(move |s| s.range(range.clone()))
    }

    pub(super) fn next_request(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request - 1)
    }

    pub(super) fn holds(&self, id: u64) -> bool {
        self.held_intents().any(|(held, _)| held == id)
    }

    pub(super) fn held_intents(&self) -> impl Iterator<Item = (u64, &Intent)> {
        self.queue.iter().filter_map(|job| match job {
            Job::Intent { id, intent, .. } => Some((*id, &**intent)),
            _ => None,
        })
    }
}
