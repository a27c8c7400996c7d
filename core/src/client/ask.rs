//! What the engine asks of its host's store, as data: loads (store reads under an id), the
//! requests that end with `Event::Done`, and the work that waits for loads (`Job`). The
//! loads' state machine is `load`; the engine runs the jobs (`jobs`).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

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
    /// The first `limit` entries, in key order, whose key starts with `prefix` and is at or
    /// after `from`: a page of a range read in key order (the search's postings).
    Page {
        prefix: String,
        from: String,
        limit: u32,
    },
    /// The keys `Page` would find with the same fields: the search reads postings this way
    /// where only which messages a term holds matters. A host answers each with an empty
    /// value (values it reads anyway may stand; the engine ignores them).
    PageKeys {
        prefix: String,
        from: String,
        limit: u32,
    },
}

impl Read {
    /// Whether the entry under `key` answers this read.
    pub fn covers(&self, key: &str) -> bool {
        match self {
            Read::Key(k) => k == key,
            Read::Prefix(p) => key.starts_with(p.as_str()),
            Read::Page { prefix, from, .. } | Read::PageKeys { prefix, from, .. } => {
                key.starts_with(prefix.as_str()) && key >= from.as_str()
            }
        }
    }
}

/// Store reads the engine waits for. The answer is every entry the reads find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Load {
    pub id: LoadId,
    pub reads: Vec<Read>,
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
