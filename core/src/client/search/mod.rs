//! Search on the device (docs/SEARCH.md, "On the device"): an inverted index the engine keeps
//! in the local store as messages arrive, are edited, deleted, opened and expire (`index`),
//! queried with the same terms as the server's (`crate::search`) through loads like every
//! other read (`find`), and the merge of a device's page with the server's (`plan`, `merge`).

pub(crate) mod dict;
pub(crate) mod find;
pub(crate) mod index;
pub(crate) mod merge;
pub(crate) mod plan;
pub(crate) mod walk;

use serde::{Deserialize, Serialize};

use super::ask::RequestId;
use crate::ids::{AccountId, Bucket, ConvId, MessageId};
use crate::model::message::MessageKind;
use crate::search::{Query, QueryError};

pub use find::{snippets, LIMIT_DEFAULT, LIMIT_MAX, PREFIX_MIN_CHARS};
pub use merge::{merge, MergedCursor, ServerHit, ServerPage, ServerSide};
pub use plan::SearchPlan;

/// What a search looks for besides its terms, and which page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchOptions {
    pub conv: Option<ConvId>,
    pub author: Option<AccountId>,
    pub kind: Option<MessageKind>,
    /// Image, video, voice and file messages only (the server's rule).
    #[serde(default)]
    pub has_attachment: bool,
    /// `created_at` at or after (ms).
    pub since: Option<i64>,
    /// `created_at` before (ms).
    pub until: Option<i64>,
    /// A `next_cursor` this search answered.
    pub cursor: Option<String>,
    /// Results per page, 1..=200 (default 50).
    pub limit: Option<usize>,
    /// This device only: the server is not asked (nor told the terms).
    #[serde(default)]
    pub local_only: bool,
    /// The page's `matched` must hold every message the device matches, not only the
    /// page's (set by `plan_search` when the server is asked: its duplicates are dropped).
    /// Such a search reads every posting of its terms instead of pages of them.
    #[serde(skip)]
    pub all_matches: bool,
}

impl SearchOptions {
    /// Whether a filter reads a posting's value (the message's kind and author); without
    /// one, postings are read as keys alone.
    pub(crate) fn filters_postings(&self) -> bool {
        self.author.is_some() || self.kind.is_some() || self.has_attachment
    }
}

/// Where a result came from: this device's index, the server's, or both (a device hit the
/// server's answer of the same page also holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchSource {
    Device,
    Server,
    Both,
}

/// Why a page is the device's alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Partial {
    /// Not connected: the server was not asked.
    Offline,
    /// The search was kept on the device (`local_only`).
    LocalOnly,
    /// The server was asked and did not answer with a page: its error code (REST's, or
    /// `network` when nothing came back) and message.
    Server { code: String, message: String },
    /// The device's index read as many postings as one page may (terms common each and
    /// seldom together) and stopped: the page holds what it found so far, and its
    /// `next_cursor` goes on from there.
    Bounded,
}

/// A run of a snippet's text, highlighted or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnippetPart {
    pub text: String,
    pub hit: bool,
}

/// A piece of a message's body (or caption) around its first matching word, cut at word
/// bounds (`cut_start`/`cut_end`: text left out before or after).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snippet {
    pub caption: bool,
    pub parts: Vec<SnippetPart>,
    pub cut_start: bool,
    pub cut_end: bool,
}

/// One message found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchHit {
    pub source: SearchSource,
    pub conv: ConvId,
    pub message: MessageId,
    /// Its bucket (where its timeline page is), when known.
    pub bucket: Option<Bucket>,
    pub author: AccountId,
    pub kind: MessageKind,
    pub created_at: i64,
    /// As indexed (a server hit's is the projection's preview).
    pub body: String,
    pub caption: Option<String>,
    pub snippets: Vec<Snippet>,
}

/// A page of results.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SearchPage {
    /// The folded terms searched for (the last one as a prefix).
    pub terms: Vec<String>,
    /// The device's hits first, then the server's it does not hold.
    pub hits: Vec<SearchHit>,
    /// The next page's `cursor`, `None` after the last.
    pub next_cursor: Option<String>,
    /// The server was not asked (offline, unreachable, or `local_only`) though it could
    /// hold more: the results are the device's alone.
    pub partial: bool,
    /// Why, when `partial` after a merge (the engine's own page is partial with none, or
    /// `Bounded`).
    #[serde(default)]
    pub partial_reason: Option<Partial>,
    /// Every message the device's index matched (all pages): a server hit among them is
    /// a duplicate.
    #[serde(skip)]
    pub matched: std::collections::BTreeSet<(ConvId, MessageId)>,
}

/// Why a search cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("a cursor is a next_cursor this search answered")]
    Cursor,
    #[error("limit is 1..={LIMIT_MAX}, not {0}")]
    Limit(usize),
}

impl SearchError {
    /// The code, as REST answers the same mistakes (docs/SEARCH.md).
    pub fn code(&self) -> &'static str {
        match self {
            SearchError::Query(e) => e.code(),
            SearchError::Cursor => "invalid_value",
            SearchError::Limit(_) => "out_of_range",
        }
    }
}

/// A search waiting for the store: its postings, then the records of its page.
#[derive(Debug)]
pub(crate) struct SearchAsk {
    pub(crate) request: RequestId,
    pub(crate) query: Query,
    pub(crate) options: SearchOptions,
    pub(crate) stage: Stage,
    /// The walk stopped at its bound (`Partial::Bounded`).
    pub(crate) bounded: bool,
}

#[derive(Debug)]
pub(crate) enum Stage {
    /// Waiting for the index (the start-up load, a migration).
    Waiting,
    /// Reading pages of postings.
    Walking(Box<walk::Walk>),
    /// Reading every posting of the terms.
    Everything,
    Records {
        page: Vec<find::Candidate>,
        next_cursor: Option<String>,
        matched: std::collections::BTreeSet<(ConvId, MessageId)>,
        /// Records read already (by the walk).
        known: std::collections::HashMap<String, index::IndexRecord>,
    },
}
