//! Search on the device (docs/SEARCH.md, "On the device"): an inverted index the engine keeps
//! in the local store as messages arrive, are edited, deleted, opened and expire (`index`),
//! queried with the same terms as the server's (`crate::search`) through loads like every
//! other read (`find`), and the merge of a device's page with the server's (`plan`, `merge`).

pub(crate) mod dict;
mod find;
pub(crate) mod index;
mod merge;
mod orphans;
mod plan;
mod walk;

use serde::{Deserialize, Serialize};

use super::ask::{Load, Outcome, Read, RequestId};
use super::engine::{ClientEngine, ClientError, Output};
use super::records::{key_search_record, Entry};
use super::store::StoreOp;
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
    request: RequestId,
    query: Query,
    options: SearchOptions,
    stage: Stage,
    /// The walk stopped at its bound (`Partial::Bounded`).
    bounded: bool,
}

#[derive(Debug)]
enum Stage {
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

impl ClientEngine {
    /// Searches this device's index: `Event::Done` answers with `Outcome::Searched` (the
    /// device's page, `partial` since the server was not asked: the hosts merge its page,
    /// `search::merge`). A query that cannot be searched is refused here.
    pub fn search(
        &mut self,
        query: &str,
        options: &SearchOptions,
    ) -> Result<RequestId, SearchError> {
        let query = Query::parse(query)?;
        find::paging(options)?;
        // What the engine holds but has not written yet goes out before the reads.
        self.sync_search();
        let request = self.loads.next_request();
        let ask = SearchAsk {
            request,
            query,
            options: options.clone(),
            stage: Stage::Waiting,
            bounded: false,
        };
        if self.dict.ready {
            self.start_search(ask);
        } else {
            self.dict.waiting.push(ask);
            if self.dict.retry_migration() {
                let load = self.loads.ask_migrate();
                self.out.push(Output::Load(load));
            }
        }
        Ok(request)
    }

    /// A search's first reads.
    pub(crate) fn start_search(&mut self, mut ask: SearchAsk) {
        let reads = if ask.options.all_matches {
            ask.stage = Stage::Everything;
            find::posting_reads(&ask.query, &ask.options)
        } else {
            // Checked when asked.
            let (limit, after) = find::paging(&ask.options).unwrap_or((LIMIT_DEFAULT, None));
            let mut walk = walk::Walk::new(ask.query.clone(), ask.options.clone(), limit, after);
            let reads = walk.first();
            ask.stage = Stage::Walking(Box::new(walk));
            reads
        };
        let load = self.loads.ask_search(Box::new(ask), reads);
        self.out.push(Output::Load(load));
    }

    /// Searches waiting for the index fail with `error`.
    pub(crate) fn fail_waiting_searches(&mut self, error: &ClientError) {
        for ask in std::mem::take(&mut self.dict.waiting) {
            self.done(
                ask.request,
                Outcome::Failed {
                    code: error.code().to_owned(),
                    message: error.to_string(),
                },
            );
        }
    }

    /// The index is ready: waiting searches start.
    pub(crate) fn index_ready(&mut self) {
        self.dict.ready = true;
        self.index_due.every();
        for ask in std::mem::take(&mut self.dict.waiting) {
            self.start_search(ask);
        }
    }

    /// Whether a search with `options` may ask the server: not when the user keeps it on the
    /// device, nor when it is scoped to a conversation this device holds as encrypted (its
    /// terms must not reach the server, docs/SEARCH.md).
    pub fn search_asks_server(&self, options: &SearchOptions) -> bool {
        !options.local_only && options.conv.as_ref().is_none_or(|c| !self.is_encrypted(c))
    }

    /// The records of a page: those not read yet, then the hits. `matched` is every match
    /// when known, else the page's own.
    fn read_page(
        &mut self,
        ask: SearchAsk,
        page: Vec<find::Candidate>,
        next_cursor: Option<String>,
        matched: Option<std::collections::BTreeSet<(ConvId, MessageId)>>,
        known: std::collections::HashMap<String, index::IndexRecord>,
    ) {
        let matched = matched.unwrap_or_else(|| {
            page.iter()
                .filter_map(|c| Some((c.doc.conv_id()?.clone(), c.message.clone())))
                .collect()
        });
        let reads: Vec<Read> = page
            .iter()
            .map(|c| key_search_record(&c.doc, &c.message))
            .filter(|k| !known.contains_key(k))
            .map(Read::Key)
            .collect();
        let next = SearchAsk {
            stage: Stage::Records {
                page,
                next_cursor,
                matched,
                known,
            },
            ..ask
        };
        if reads.is_empty() {
            self.searched(next, Ok(Vec::new()));
        } else {
            let load: Load = self.loads.ask_search(Box::new(next), reads);
            self.out.push(Output::Load(load));
        }
    }

    /// A search's load answered.
    pub(crate) fn searched(&mut self, ask: SearchAsk, answer: Result<Vec<Entry>, ClientError>) {
        let entries = match answer {
            Ok(entries) => entries,
            Err(e) => {
                return self.done(
                    ask.request,
                    Outcome::Failed {
                        code: e.code().to_owned(),
                        message: e.to_string(),
                    },
                )
            }
        };
        // Checked when asked.
        let (limit, after) = find::paging(&ask.options).unwrap_or((LIMIT_DEFAULT, None));
        let SearchAsk {
            request,
            query,
            options,
            stage,
            bounded,
        } = ask;
        let ask = SearchAsk {
            request,
            query,
            options,
            stage: Stage::Waiting,
            bounded,
        };
        match stage {
            Stage::Waiting => {}
            Stage::Walking(mut walk) => match walk.answered(&self.dict, &entries) {
                walk::Step::Read(reads) => {
                    let next = SearchAsk {
                        stage: Stage::Walking(walk),
                        ..ask
                    };
                    let load = self.loads.ask_search(Box::new(next), reads);
                    self.out.push(Output::Load(load));
                }
                walk::Step::Everything => {
                    let reads = find::posting_reads(&ask.query, &ask.options);
                    let next = SearchAsk {
                        stage: Stage::Everything,
                        ..ask
                    };
                    let load = self.loads.ask_search(Box::new(next), reads);
                    self.out.push(Output::Load(load));
                }
                walk::Step::Done => {
                    let walk = *walk;
                    let bounded = walk.bounded.then(|| walk.bound_cursor());
                    if !walk.stale.is_empty() {
                        let stale = walk.stale.into_iter().map(StoreOp::Delete).collect();
                        self.out.push(Output::Persist(stale));
                    }
                    let (page, next_cursor) = find::page(walk.found, None, limit);
                    let ask = SearchAsk {
                        bounded: bounded.is_some(),
                        ..ask
                    };
                    // Stopped at its bound: the next page goes on from where it got to.
                    let next_cursor = next_cursor.or(bounded.flatten());
                    self.read_page(ask, page, next_cursor, None, walk.records);
                }
            },
            Stage::Everything => {
                let all = find::candidates(&self.dict, &ask.query, &ask.options, &entries);
                let matched = all
                    .iter()
                    .filter_map(|c| Some((c.doc.conv_id()?.clone(), c.message.clone())))
                    .collect();
                let (page, next_cursor) = find::page(all, after.as_ref(), limit);
                self.read_page(ask, page, next_cursor, Some(matched), Default::default());
            }
            Stage::Records {
                page,
                next_cursor,
                matched,
                mut known,
            } => {
                for (key, value) in entries {
                    if let Ok(r) = super::records::uncbor(&value) {
                        known.insert(key, r);
                    }
                }
                let mut hits = Vec::with_capacity(page.len());
                let mut stale = Vec::new();
                for c in &page {
                    let record = known.remove(&key_search_record(&c.doc, &c.message));
                    match record.and_then(|r| find::local_hit(c, r, &ask.query)) {
                        Some(hit) => hits.push(hit),
                        // Postings whose record left (a crash between the two writes of an
                        // expiry): dropped now.
                        None => stale.extend(c.keys.iter().cloned().map(StoreOp::Delete)),
                    }
                }
                if !stale.is_empty() {
                    self.out.push(Output::Persist(stale));
                }
                let page = SearchPage {
                    terms: ask.query.terms.clone(),
                    hits,
                    next_cursor,
                    partial: true,
                    partial_reason: ask.bounded.then_some(Partial::Bounded),
                    matched,
                };
                self.done(ask.request, Outcome::Searched(Box::new(page)));
            }
        }
    }
}
