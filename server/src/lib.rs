//! Confab sync server: the hub protocol over WebSocket, the policy on every incoming change,
//! durable storage on SQLite (embedded default) or Postgres, REST for integrations.
//!
//! `app(state)` builds the router; the `confab-server` binary wires configuration, storage,
//! signals and logs around it.

pub mod auth;
pub mod blobs;
pub mod budget;
pub mod claims;
pub mod clock;
pub mod config;
pub mod cors;
pub mod engine;
pub mod forget;
pub mod maintenance;
pub mod memory;
pub mod metrics;
pub mod net;
pub mod notify;
pub mod ops;
pub mod rest;
pub mod state;
pub mod store;
pub mod ws;

pub use state::{AppState, DemoConfig};

use axum::routing::get;
use axum::Router;

/// Serves `app(state)` on `listener` until `shutdown` resolves (then stops taking
/// requests and lets those in progress finish; upgraded WebSockets end on their own when
/// `state.shutdown` turns true). `/ws` works only through this function: it hands each
/// request its connection's shared socket, into which pushes are written directly.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = net::socket::SharedListener(listener);
    let service = app(state).into_make_service_with_connect_info::<net::socket::Peer>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await
}

/// The server's routes.
pub fn app(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/ws", get(ws::upgrade))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .merge(cors(
            rest::routes().route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                rest::storage_gate,
            )),
            &state.cors,
        ));
    if state.demo.is_some() {
        router = router
            .route("/demo/token", get(ops::demo_token))
            .route("/demo/users", get(ops::demo_users));
    }
    if let Some(root) = &state.web_root {
        router = router.fallback_service(tower_http::services::ServeDir::new(root));
    }
    router.with_state(state)
}

/// The REST routes with the CORS layer of `--cors-origins`, if any (`cors`).
fn cors(rest: Router<AppState>, origins: &cors::CorsOrigins) -> Router<AppState> {
    match origins.layer() {
        Some(layer) => rest.layer(layer),
        None => rest,
    }
}
