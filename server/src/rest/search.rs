//! `GET /v1/search`: messages of plaintext conversations the account may read
//! (docs/SEARCH.md).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use confab_core::ids::{AccountId, ConvId};
use confab_core::model::message::MessageKind;
use confab_core::model::time::parse_rfc3339;
use confab_core::policy::DenyCode;
use confab_core::search::Query as Terms;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::{Caller, PAGE_DEFAULT, PAGE_MAX};
use super::views::MessageView;
use crate::state::AppState;
use crate::store::search::{SearchCursor, SearchQuery};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    q: String,
    /// Service tokens: the account searched for (required); user tokens: their own, if any.
    account: Option<String>,
    conversation: Option<String>,
    author: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    has_attachment: bool,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

/// One match: where it came from, its conversation and the message as the projection holds
/// it (`body` is the preview: the full message is in the conversation's pages).
#[derive(Debug, Serialize)]
pub struct SearchResult {
    pub source: &'static str,
    pub conversation: String,
    pub message: MessageView,
}

#[derive(Debug, Serialize)]
pub struct SearchPage {
    /// The folded terms searched for (the last one as a prefix from two characters), for
    /// highlighting.
    pub terms: Vec<String>,
    pub results: Vec<SearchResult>,
    /// The next page's `cursor`, or null after the last page.
    pub next_cursor: Option<String>,
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid("invalid_value", field, message)
}

/// Whose reading rights the search uses: a user token's own account; a service token's
/// named account of its tenant.
fn searcher(caller: &Caller, named: Option<&str>) -> Result<AccountId, ApiError> {
    let named = named
        .map(|a| AccountId::new(a).map_err(|e| invalid("account", e.to_string())))
        .transpose()?;
    match (caller.service, named) {
        (true, Some(account)) => Ok(account),
        (true, None) => Err(ApiError::invalid(
            "missing",
            "account",
            "a service token searches on behalf of the account it names",
        )),
        (false, Some(account)) if account != caller.account => Err(ApiError::forbidden(
            DenyCode::NotOwnKey,
            "a user token searches as its own account",
        )),
        (false, _) => Ok(caller.account.clone()),
    }
}

/// `GET /v1/search?q=…[&conversation=&author=&kind=&has_attachment=&since=&until=&cursor=&limit=&account=]`.
pub async fn search(
    State(app): State<AppState>,
    caller: Caller,
    params: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SearchPage>, ApiError> {
    let Query(p) = params.map_err(|e| invalid("query", e.body_text()))?;
    let account = searcher(&caller, p.account.as_deref())?;
    let terms = Terms::parse(&p.q).map_err(|e| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.code(), e.to_string()).with_field("q")
    })?;
    let conv = p
        .conversation
        .as_deref()
        .map(|c| ConvId::new(c).map_err(|e| invalid("conversation", e.to_string())))
        .transpose()?;
    let author = p
        .author
        .as_deref()
        .map(|a| AccountId::new(a).map_err(|e| invalid("author", e.to_string())))
        .transpose()?;
    let kind = p
        .kind
        .as_deref()
        .map(|k| MessageKind::parse(k).map_err(|e| invalid("kind", e.to_string())))
        .transpose()?;
    let since = p
        .since
        .as_deref()
        .map(|t| parse_rfc3339("since", t))
        .transpose()?;
    let until = p
        .until
        .as_deref()
        .map(|t| parse_rfc3339("until", t))
        .transpose()?;
    let after = p
        .cursor
        .as_deref()
        .map(|c| {
            SearchCursor::decode(c)
                .ok_or_else(|| invalid("cursor", "a cursor is a next_cursor this search answered"))
        })
        .transpose()?;
    let limit = p.limit.unwrap_or(PAGE_DEFAULT);
    if !(1..=PAGE_MAX).contains(&limit) {
        return Err(ApiError::invalid(
            "out_of_range",
            "limit",
            format!("limit is 1..={PAGE_MAX}"),
        ));
    }
    let query = SearchQuery {
        tenant: &caller.tenant,
        account: &account,
        query: &terms,
        conv: conv.as_ref(),
        author: author.as_ref(),
        kind: kind.map(MessageKind::as_str),
        has_attachment: p.has_attachment,
        since,
        until,
        after,
        limit,
    };
    let hits = app.engine.store().search(&query).await?;
    let next_cursor = (hits.len() == limit)
        .then(|| hits.last().map(|h| h.cursor.encode()))
        .flatten();
    let results = hits
        .iter()
        .map(|h| SearchResult {
            source: "server",
            conversation: h.row.conv.to_string(),
            // Only plaintext conversations are indexed; views are the message page's.
            message: MessageView::of(&h.row, None, false, false),
        })
        .collect();
    Ok(Json(SearchPage {
        terms: terms.terms,
        results,
        next_cursor,
    }))
}
