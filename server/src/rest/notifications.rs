//! `GET /v1/notifications` and `POST /v1/notifications/read`: the caller's notification
//! feed (docs/NOTIFICATIONS.md): its stored rows and the `message` entries derived from its
//! conversations' streams, those its settings hide now left out.

use axum::extract::{RawQuery, State};
use axum::Json;
use confab_core::model::time::format_rfc3339;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::{Caller, JsonBody};
use crate::engine::now_ms;
use crate::state::AppState;
use crate::store::notifications::Notification;

pub const PAGE_DEFAULT: usize = 50;
pub const PAGE_MAX: usize = 100;

/// `?cursor=&limit=&unread=`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedParams {
    /// The `next_cursor` of the previous page: notifications older than it.
    pub cursor: Option<i64>,
    pub limit: usize,
    pub unread_only: bool,
}

impl FeedParams {
    pub fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let mut out = FeedParams {
            cursor: None,
            limit: PAGE_DEFAULT,
            unread_only: false,
        };
        for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                "cursor" if !value.is_empty() => {
                    let cursor = value
                        .parse::<i64>()
                        .ok()
                        .filter(|c| *c > 0)
                        .ok_or_else(|| {
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
                    if !(1..=PAGE_MAX).contains(&limit) {
                        return Err(ApiError::invalid(
                            "out_of_range",
                            "limit",
                            format!("limit is 1..={PAGE_MAX}"),
                        ));
                    }
                    out.limit = limit;
                }
                "unread" => {
                    out.unread_only = match value.as_ref() {
                        "true" | "1" => true,
                        "false" | "0" | "" => false,
                        _ => {
                            return Err(ApiError::invalid(
                                "invalid_value",
                                "unread",
                                "unread is true or false",
                            ))
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// One notification as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct NotificationEntry {
    pub id: i64,
    /// `mention | reply | direct | proposal | join_request | message`.
    pub kind: &'static str,
    pub conversation: String,
    /// The message it is about (null for a join request).
    pub message: Option<String>,
    /// Who caused it: the message's author, or the account asking to join.
    pub from: String,
    /// The start of the message's text; empty once the message is deleted.
    pub preview: String,
    pub created_at: String,
    pub read: bool,
    /// How many messages it stands for: the new messages of a `message` entry (coalesced,
    /// one per conversation: its `message` is the newest), 1 for the other kinds.
    pub count: i64,
}

impl NotificationEntry {
    pub fn of(n: &Notification) -> Self {
        NotificationEntry {
            id: n.id,
            kind: n.kind.as_str(),
            conversation: n.conv.to_string(),
            message: n.message.as_ref().map(ToString::to_string),
            from: n.actor.to_string(),
            preview: n.preview.clone(),
            created_at: format_rfc3339(n.created_at),
            read: n.read_at.is_some(),
            count: n.count,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct FeedPage {
    pub notifications: Vec<NotificationEntry>,
    /// Unread notifications in all the caller's readable conversations.
    pub unread: i64,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The conversations whose `message` entries the caller's settings hide now.
async fn quiet(app: &AppState, caller: &Caller) -> Vec<confab_core::ids::ConvId> {
    crate::notify::quiet(&app.engine, &caller.tenant, &caller.account, now_ms()).await
}

async fn unread(app: &AppState, caller: &Caller) -> Result<i64, ApiError> {
    let quiet = quiet(app, caller).await;
    Ok(app
        .engine
        .store()
        .unread_notifications(&caller.tenant, &caller.account, &quiet)
        .await?)
}

/// `GET /v1/notifications?cursor=&limit=&unread=`: newest first.
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<FeedPage>, ApiError> {
    let params = FeedParams::parse(query.as_deref())?;
    let quiet = quiet(&app, &caller).await;
    let mut rows = app
        .engine
        .store()
        .notification_page(
            &caller.tenant,
            &caller.account,
            params.cursor,
            params.unread_only,
            // One more than asked: a cursor is given only when more follow.
            params.limit + 1,
            &quiet,
        )
        .await?;
    let more = rows.len() > params.limit;
    rows.truncate(params.limit);
    let next_cursor = more
        .then(|| rows.last().map(|n| n.id.to_string()))
        .flatten();
    Ok(Json(FeedPage {
        notifications: rows.iter().map(NotificationEntry::of).collect(),
        unread: unread(&app, &caller).await?,
        next_cursor,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkReadRequest {
    /// Marks notifications with ids up to this one; absent or null: all.
    #[serde(default)]
    up_to: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct MarkReadAnswer {
    /// Notifications this call marked read.
    pub marked: i64,
    pub unread: i64,
}

/// `POST /v1/notifications/read` `{up_to?}`: marks the caller's notifications read.
pub async fn mark_read(
    State(app): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<MarkReadRequest>,
) -> Result<Json<MarkReadAnswer>, ApiError> {
    if req.up_to.is_some_and(|id| id < 1) {
        return Err(ApiError::invalid(
            "out_of_range",
            "up_to",
            "up_to is a notification id (1 or more)",
        ));
    }
    let quiet = quiet(&app, &caller).await;
    let marked = app
        .engine
        .store()
        .mark_notifications_read(&caller.tenant, &caller.account, req.up_to, now_ms(), &quiet)
        .await?;
    Ok(Json(MarkReadAnswer {
        marked,
        unread: unread(&app, &caller).await?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_checked() {
        let p = FeedParams::parse(Some("cursor=12&limit=5&unread=true")).expect("ok");
        assert_eq!(p.cursor, Some(12));
        assert_eq!(p.limit, 5);
        assert!(p.unread_only);
        assert_eq!(FeedParams::parse(None).expect("ok").limit, PAGE_DEFAULT);
        for bad in [
            "cursor=x",
            "cursor=-1",
            "limit=0",
            "limit=101",
            "unread=maybe",
        ] {
            assert!(FeedParams::parse(Some(bad)).is_err(), "{bad}");
        }
    }
}
