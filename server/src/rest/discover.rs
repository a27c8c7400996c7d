//! `GET /v1/conversations/discover`: the groups and channels of the caller's tenant that
//! its scope lets the caller find (docs/POLICY.md, "Joining"), from the projection only.

use axum::extract::{RawQuery, State};
use axum::Json;
use confab_core::ids::ConvId;
use confab_core::limits::TITLE_MAX_CHARS;
use confab_core::model::conversation::MemberStatus;
use confab_core::model::time::format_rfc3339;
use serde::Serialize;

use super::error::ApiError;
use super::extract::Caller;
use crate::state::AppState;
use crate::store::discovery::{DiscoverItem, DiscoverQuery};

pub const DISCOVER_DEFAULT: usize = 50;
pub const DISCOVER_MAX: usize = 100;

/// `?q=&cursor=&limit=`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoverParams {
    /// A title search; empty means none.
    pub q: Option<String>,
    /// The `next_cursor` of the previous page: the last conversation id it held.
    pub cursor: Option<ConvId>,
    pub limit: usize,
}

impl DiscoverParams {
    pub fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let mut out = DiscoverParams {
            q: None,
            cursor: None,
            limit: DISCOVER_DEFAULT,
        };
        for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                "q" => {
                    let q = value.trim();
                    if q.chars().count() > TITLE_MAX_CHARS {
                        return Err(ApiError::invalid(
                            "out_of_range",
                            "q",
                            format!("q is at most {TITLE_MAX_CHARS} characters (a title's limit)"),
                        ));
                    }
                    out.q = (!q.is_empty()).then(|| q.to_owned());
                }
                // An empty cursor is the first page.
                "cursor" if !value.is_empty() => {
                    let cursor = ConvId::new(value.as_ref()).map_err(|_| {
                        ApiError::invalid(
                            "invalid_value",
                            "cursor",
                            "cursor is the next_cursor of a previous page",
                        )
                    })?;
                    out.cursor = Some(cursor);
                }
                "limit" => {
                    let limit = value.parse::<usize>().map_err(|_| {
                        ApiError::invalid("invalid_value", "limit", "limit is an integer")
                    })?;
                    if !(1..=DISCOVER_MAX).contains(&limit) {
                        return Err(ApiError::invalid(
                            "out_of_range",
                            "limit",
                            format!("limit is 1..={DISCOVER_MAX}"),
                        ));
                    }
                    out.limit = limit;
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// One discoverable conversation.
#[derive(Debug, Clone, Serialize)]
pub struct DiscoverEntry {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub description: String,
    pub scope: String,
    /// Active members (for a channel, its subscribers are among them).
    pub member_count: i64,
    /// How the caller gets in if it is not a member: `open` (join: `POST …/members` with
    /// its own account), `request` (`POST …/join-requests`), `invite` (an invitation or a
    /// link only).
    pub join: String,
    /// The caller is an active member.
    pub is_member: bool,
    /// The caller's membership status if it has an entry (`active`, `requested`, `left`,
    /// `removed`, `banned`), else null.
    pub membership_status: Option<&'static str>,
    pub created_at: String,
}

impl DiscoverEntry {
    fn of(item: &DiscoverItem) -> Self {
        let c = &item.conv;
        DiscoverEntry {
            id: c.conv.to_string(),
            kind: c.kind.clone(),
            title: c.title.clone().unwrap_or_default(),
            description: c.description.clone().unwrap_or_default(),
            scope: c.scope.clone(),
            member_count: c.active_members,
            join: c.join_route.clone(),
            is_member: item.caller_status == Some(MemberStatus::Active),
            membership_status: item.caller_status.map(MemberStatus::as_str),
            created_at: format_rfc3339(c.created_at),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DiscoverPage {
    pub conversations: Vec<DiscoverEntry>,
    /// Pass as `cursor` for the next page; null on the last page (nothing follows).
    pub next_cursor: Option<String>,
}

/// `GET /v1/conversations/discover?q=&cursor=&limit=`.
pub async fn discover(
    State(app): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<DiscoverPage>, ApiError> {
    let params = DiscoverParams::parse(query.as_deref())?;
    let items = app
        .engine
        .store()
        .discover(&DiscoverQuery {
            tenant: &caller.tenant,
            account: &caller.account,
            service: caller.service,
            after: params.cursor.as_ref(),
            search: params.q.as_deref(),
            // One more than shown tells whether another page follows.
            limit: params.limit + 1,
        })
        .await?;
    let shown = &items[..items.len().min(params.limit)];
    let next_cursor = (items.len() > params.limit)
        .then(|| shown.last().map(|i| i.conv.conv.to_string()))
        .flatten();
    Ok(Json(DiscoverPage {
        conversations: shown.iter().map(DiscoverEntry::of).collect(),
        next_cursor,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn params_defaults_decoding_and_bounds() {
        assert_eq!(
            DiscoverParams::parse(None),
            Ok(DiscoverParams {
                q: None,
                cursor: None,
                limit: DISCOVER_DEFAULT
            })
        );
        let p =
            DiscoverParams::parse(Some("q=Caf%C3%A9+team&cursor=g-1&limit=3&x=1")).expect("valid");
        assert_eq!(p.q.as_deref(), Some("Café team"));
        assert_eq!(p.cursor.as_ref().map(ConvId::as_str), Some("g-1"));
        assert_eq!(p.limit, 3);
        assert_eq!(
            DiscoverParams::parse(Some("q=+&cursor=")).map(|p| (p.q, p.cursor)),
            Ok((None, None))
        );
        let long = format!("q={}", "a".repeat(TITLE_MAX_CHARS + 1));
        for (bad, code) in [
            ("limit=0", "out_of_range"),
            ("limit=101", "out_of_range"),
            ("limit=x", "invalid_value"),
            ("cursor=a%2Fb", "invalid_value"),
            (long.as_str(), "out_of_range"),
        ] {
            let err = DiscoverParams::parse(Some(bad)).expect_err(bad);
            assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
            assert_eq!(err.code, code, "{bad}");
        }
    }
}
