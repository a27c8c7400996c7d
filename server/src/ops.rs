//! Operations endpoints: health, readiness, metrics, demo users and tokens.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use crate::auth::Claims;
use crate::clock::now_ms;
use crate::state::AppState;

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the storage is up, the node hears the other nodes' commits (a cluster on
/// Postgres) and the server is not shutting down. Answered from the
/// health state (`store::health`), kept current by failed calls and a prober: never waits on
/// the database.
pub async fn readyz(State(app): State<AppState>) -> Response {
    if *app.shutdown.borrow() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    let health = app.engine.health();
    if health.is_down() {
        let retry = health.retry_after_ms().div_ceil(1000).max(1);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(axum::http::header::RETRY_AFTER, retry.to_string())],
            format!("storage unavailable: {}", health.reason()),
        )
            .into_response();
    }
    if !app.engine.is_listening() {
        // Its subscribers would miss what other nodes commit until it listens again.
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(axum::http::header::RETRY_AFTER, "1")],
            "not listening for other nodes' commits",
        )
            .into_response();
    }
    "ready".into_response()
}

pub async fn metrics(State(app): State<AppState>) -> Response {
    let metrics = app.engine.metrics();
    metrics
        .storage_up
        .set(i64::from(!app.engine.health().is_down()));
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.engine.metrics().render(),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct DemoQuery {
    pub user: String,
}

/// Demo mode only: the tenant and the users `/demo/token` serves (the web demo's sign-in).
pub async fn demo_users(State(app): State<AppState>) -> Response {
    match &app.demo {
        Some(demo) => {
            Json(serde_json::json!({ "tenant": demo.tenant, "users": demo.users })).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Demo mode only: a one-day token for one of the demo users.
pub async fn demo_token(State(app): State<AppState>, Query(q): Query<DemoQuery>) -> Response {
    let Some(demo) = &app.demo else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !demo.users.contains(&q.user) {
        return (StatusCode::NOT_FOUND, "not a demo user").into_response();
    }
    let claims = Claims {
        sub: q.user.clone(),
        tenant: demo.tenant.clone(),
        exp: now_ms() / 1000 + 24 * 3600,
        kind: "user".into(),
    };
    match app.auth.mint(&claims) {
        Ok(token) => {
            Json(serde_json::json!({ "token": token, "account": q.user, "tenant": demo.tenant }))
                .into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
