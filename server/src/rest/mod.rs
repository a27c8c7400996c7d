//! REST for integrations, described by the OpenAPI document at `/openapi.json`.
//!
//! Every request carries `Authorization: Bearer <JWT>`; the tenant and the account come from
//! the token. Every write is built on the server by a `confab_core::doc::write` intent (or is
//! the deterministic creation change of a direct conversation or support thread) and goes
//! through `Engine::write` / `Engine::submit`: the same validation, policy and commit as a
//! change that arrives over WebSocket. Nothing here writes around the policy.
//!
//! Reads come from the engine (a conversation's typed state) and from the storage projection
//! (conversation lists, message pages); full message content is read from the committed
//! message buckets.

mod attachments;
mod budget;
mod contacts;
mod conversations;
mod devices;
mod discover;
mod edits;
mod erasure;
mod error;
mod extract;
mod forwarding;
mod joining;
mod manage;
mod messages;
mod notifications;
mod roles;
mod scheduled;
mod search;
mod views;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::routing::MethodRouter;
use axum::Router;

pub use error::ApiError;

use crate::state::AppState;

/// The OpenAPI 3.1 document of these routes.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Declares the REST routes once: the router and the `(method, path)` list the OpenAPI
/// test compares with the document come from the same lines.
macro_rules! rest_routes {
    ($($path:literal => $($method:ident($handler:path)),+;)+) => {
        /// Every REST route as `(method, path)`, `path` in the router's (and OpenAPI's)
        /// `{param}` syntax.
        pub const ROUTES: &[(&str, &str)] = &[$($((stringify!($method), $path)),+),+];

        /// The REST routes.
        pub fn routes() -> Router<AppState> {
            Router::new()$(.route($path, MethodRouter::new()$(.$method($handler))+))+
        }
    };
}

rest_routes! {
    "/openapi.json" => get(openapi);
    "/v1/conversations" => get(conversations::list), post(conversations::create);
    "/v1/conversations/direct" => post(conversations::direct);
    "/v1/conversations/discover" => get(discover::discover);
    "/v1/conversations/support" => post(conversations::support);
    "/v1/conversations/{id}" => get(conversations::get), delete(manage::delete);
    "/v1/conversations/{id}/settings" => patch(manage::patch_settings);
    "/v1/conversations/{id}/lead" => post(manage::lead);
    "/v1/conversations/{id}/can" => get(manage::can);
    "/v1/conversations/{id}/owner" => post(manage::transfer);
    "/v1/conversations/{id}/hide" => post(manage::hide), delete(manage::unhide);
    "/v1/conversations/{id}/members" => post(conversations::add_member);
    "/v1/conversations/{id}/members/{account}" => delete(conversations::remove_member), patch(roles::set_role);
    "/v1/conversations/{id}/members/{account}/permissions/{permission}" => put(roles::set_permission);
    "/v1/conversations/{id}/messages" => get(messages::page), post(messages::post);
    "/v1/conversations/{id}/stats" => get(messages::stats);
    "/v1/conversations/{id}/messages/{message}" => patch(edits::edit), delete(edits::delete);
    "/v1/conversations/{id}/messages/{message}/reactions/{emoji}" => put(edits::react), delete(edits::unreact);
    "/v1/conversations/{id}/messages/{message}/status" => post(messages::set_status);
    "/v1/conversations/{id}/pins/{message}" => put(edits::pin), delete(edits::unpin);
    "/v1/conversations/{id}/attachments/{hash}" => put(attachments::put), get(attachments::get);
    "/v1/conversations/{id}/attachments/{hash}/thumbnail" => get(attachments::thumbnail);
    "/v1/conversations/{id}/attachments/{hash}/copy" => post(forwarding::copy);
    "/v1/conversations/{id}/uploads" => post(attachments::open);
    "/v1/conversations/{id}/uploads/{upload}" => get(attachments::progress), patch(attachments::chunk), delete(attachments::abandon);
    "/v1/scheduled" => get(scheduled::list), post(scheduled::create);
    "/v1/scheduled/{id}" => patch(scheduled::edit), delete(scheduled::cancel);
    "/v1/conversations/{id}/join-requests" => get(joining::list_requests), post(joining::ask);
    "/v1/conversations/{id}/join-requests/{account}" => delete(joining::withdraw);
    "/v1/conversations/{id}/join-requests/{account}/approve" => post(joining::approve);
    "/v1/conversations/{id}/join-requests/{account}/decline" => post(joining::decline);
    "/v1/conversations/{id}/invites" => get(joining::list_invites), post(joining::create_invite);
    "/v1/conversations/{id}/invites/{invite}" => delete(joining::revoke_invite);
    "/v1/invites/join" => post(joining::join_by_link);
    "/v1/notifications" => get(notifications::list);
    "/v1/contacts/match" => post(contacts::match_contacts);
    "/v1/accounts/{account}/identifiers" => put(contacts::register);
    "/v1/accounts/{account}/devices" => get(devices::list);
    "/v1/accounts/{account}/erasure" => post(erasure::start), get(erasure::progress);
    "/v1/notifications/read" => post(notifications::mark_read);
    "/v1/search" => get(search::search);
}

/// Answers 503 `unavailable` (with `Retry-After`) at once while the storage is down: every
/// REST route but the OpenAPI document needs the database (writes, and reads of the
/// projection), and none should wait on a pool for it.
pub async fn storage_gate(
    State(app): State<AppState>,
    request: Request,
    next: Next,
) -> axum::response::Response {
    let health = app.engine.health();
    if health.is_down() && request.uri().path() != "/openapi.json" {
        return ApiError::unavailable(format!("storage unavailable: {}", health.reason()))
            .into_response();
    }
    next.run(request).await
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}
