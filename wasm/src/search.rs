//! `search(query, options)` (docs/SEARCH.md, "On the device"): this device's index through
//! the engine, then, when online, the server's `GET /v1/search` merged in. Which sides a
//! page asks, the server's query and the merge are core's (`SearchPlan`), shared with the
//! Rust client; this file waits for the engine, fetches, and makes the JavaScript page.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use confab_core::client::search::{SearchError, ServerPage};
use confab_core::client::{self as cc, Outcome, Partial};
use confab_core::ids::{ConvId, MessageId};
use confab_core::model::message::Message;
use js_sys::Promise;
use tsify::Ts;
use wasm_bindgen::prelude::*;

use crate::api::{from_js, promise, to_js};
use crate::client::ConfabClient;
use crate::error::{Failure, Result};
use crate::http::Body;
use crate::runtime::Runtime;
use crate::types::{SearchOptions, SearchPage, SearchResult};
use crate::uploads::rest::Rest;

impl From<SearchError> for Failure {
    fn from(e: SearchError) -> Self {
        Failure::new(e.code(), e.to_string())
    }
}

#[wasm_bindgen]
impl ConfabClient {
    /// Searches the messages this account may read: this device's index first (found
    /// offline too, encrypted conversations included), then, when online, the server's
    /// results this device does not hold. Every word must match, the last as a prefix from
    /// two letters (the word being typed); case and accents are ignored ("cafe" finds "Café"). The server is
    /// never asked with `localOnly`, nor for a search scoped (`conv`) to an encrypted
    /// conversation. Offline, or when the server fails, the page is the device's alone with
    /// `partial: true` and `partialReason`. Rejects with `query_empty`,
    /// `query_too_long`, `query_too_many_terms`, `invalid_value` (a cursor or id),
    /// `invalid_format` (a time that is not whole milliseconds) or `out_of_range` (a limit).
    #[wasm_bindgen(unchecked_return_type = "Promise<SearchPage>")]
    pub fn search(&self, query: String, options: Option<Ts<SearchOptions>>) -> Promise {
        let rt = self.rt.clone();
        let rest = self.rest.clone();
        let options: Option<JsValue> = options.map(Into::into);
        promise(async move {
            let options = match options {
                Some(o) if !o.is_undefined() && !o.is_null() => from_js::<SearchOptions>(o)?,
                _ => SearchOptions::default(),
            };
            let options = cc::SearchOptions::try_from(options)?;
            rt.ready().await?;
            let plan = rt.with_engine(|e| e.plan_search(&options))??;
            let local = plan.local.clone();
            let outcome = rt.try_request(|e, _| Ok(e.search(&query, &local)?)).await?;
            let Outcome::Searched(page) = outcome else {
                return Err(Failure::new("internal", "a search answered something else"));
            };
            let server = match plan.server_query(&query, &options) {
                Some(params) => Some(server_page(&rest, &params).await),
                None => None,
            };
            to_js(&view(&rt, plan.finish(*page, server)))
        })
    }
}

/// The server's page, or why there is none (the page is then partial, not failed).
async fn server_page(rest: &Rc<Rest>, params: &[(&str, String)]) -> Result<ServerPage, Partial> {
    let failed = |f: Failure| Partial::Server {
        code: f.code,
        message: f.message,
    };
    let query: Vec<String> = params
        .iter()
        .map(|(name, value)| {
            let value: String = js_sys::encode_uri_component(value).into();
            format!("{name}={value}")
        })
        .collect();
    let path = format!("/v1/search?{}", query.join("&"));
    let got = rest
        .http()
        .map_err(failed)?
        .call("GET", &path, Body::None, None)
        .await
        .map_err(failed)?;
    serde_wasm_bindgen::from_value(got.json).map_err(|e| Partial::Server {
        code: "invalid_answer".into(),
        message: format!("search: {e}"),
    })
}

/// The JavaScript page: each result with its message as the timeline shows it when this
/// device holds its bucket open (one timeline per conversation of the page, computed once
/// per engine change), else as indexed.
fn view(rt: &Runtime, page: cc::SearchPage) -> SearchPage {
    let mut wanted: HashMap<&ConvId, HashSet<&MessageId>> = HashMap::new();
    for hit in &page.hits {
        wanted.entry(&hit.conv).or_default().insert(&hit.message);
    }
    let mut held: HashMap<(ConvId, MessageId), Message> = HashMap::new();
    for (conv, ids) in wanted {
        for item in rt.timeline(conv).iter() {
            if ids.contains(&item.message.id) {
                let key = (conv.clone(), item.message.id.clone());
                held.insert(key, item.message.clone());
            }
        }
    }
    SearchPage {
        terms: page.terms,
        results: page
            .hits
            .into_iter()
            .map(|hit| {
                let message = held.remove(&(hit.conv.clone(), hit.message.clone()));
                SearchResult::new(hit, message)
            })
            .collect(),
        next_cursor: page.next_cursor,
        partial: page.partial,
        partial_reason: page.partial_reason.map(Into::into),
    }
}
