//! The engine's side of search on the device (`crate::client::search`): running a query
//! through loads, page by page, and planning the merge of a page with the server's.

use crate::client::ask::{Load, Read, RequestId};
use crate::client::engine::Outcome;
use crate::client::engine::{ClientEngine, ClientError, Output};
use crate::client::records::{key_search_record, Entry};
use crate::client::search::merge::MergedCursor;
use crate::client::search::plan::{SearchPlan, Step};
use crate::client::search::{
    find, index, walk, Partial, SearchAsk, SearchError, SearchOptions, SearchPage, Stage,
    LIMIT_DEFAULT,
};
use crate::client::store::StoreOp;
use crate::ids::{ConvId, MessageId};
use crate::search::Query;

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
                    if let Ok(r) = crate::client::records::uncbor(&value) {
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

impl ClientEngine {
    /// The plan of the page `options` ask for (their `cursor` is a merged search's
    /// `next_cursor`). The server is asked only when online, and never when `local_only` or
    /// scoped to a conversation this device holds as encrypted: its terms must not reach the
    /// server, which holds no text of it to add either.
    pub fn plan_search(&self, options: &SearchOptions) -> Result<SearchPlan, SearchError> {
        let at = MergedCursor::decode(options.cursor.as_deref())?;
        let (mut local, show_local) = at.local_options(options);
        let server = match at.server_cursor() {
            None => Step::Over,
            Some(_) if options.local_only => Step::Skip(Partial::LocalOnly),
            Some(_) if !self.search_asks_server(options) => Step::Over,
            Some(_) if !self.is_online() => Step::Skip(Partial::Offline),
            Some(cursor) => Step::Ask(cursor.map(str::to_owned)),
        };
        // The server's duplicates are told by every message the device matches.
        local.all_matches = matches!(server, Step::Ask(_));
        Ok(SearchPlan {
            at,
            show_local,
            local,
            server,
        })
    }
}
