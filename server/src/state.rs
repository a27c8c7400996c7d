//! What every request handler shares (`/ws`, REST, operations), built by the binary and
//! handed to the router by [`crate::app`].

use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use confab_core::protocol::Limits;
use tokio::sync::watch;

use crate::auth::Authenticator;
use crate::blobs::Blobs;
use crate::budget::Budgets;
use crate::claims::AccountClaims;
use crate::engine::Engine;

/// Everything a request handler needs.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub auth: Arc<Authenticator>,
    pub limits: Limits,
    /// Work budgets of accounts (shared by their connections) and the connections' settings.
    pub budgets: Arc<Budgets>,
    /// The ordinary key packages of each account this node handed out lately (the
    /// per-account claim limit; docs/E2EE.md, "Claim").
    pub claims: Arc<AccountClaims>,
    pub max_connections: usize,
    /// Bytes of unread pushes after which a connection is closed as `lagging`.
    pub push_backlog_bytes: usize,
    pub connections: Arc<AtomicUsize>,
    /// Turns true when the server is shutting down.
    pub shutdown: watch::Receiver<bool>,
    /// Demo mode: `/demo/token` mints tokens for demo users.
    pub demo: Option<DemoConfig>,
    /// Static files of the web demo, served at `/`.
    pub web_root: Option<PathBuf>,
    /// Attachments' bytes (docs/ATTACHMENTS.md).
    pub blobs: Arc<Blobs>,
    /// Browser origins other than the server's own that may call REST (`crate::cors`).
    pub cors: crate::cors::CorsOrigins,
}

/// Demo mode settings.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub tenant: String,
    pub users: Vec<String>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("limits", &self.limits)
            .field("max_connections", &self.max_connections)
            .field("push_backlog_bytes", &self.push_backlog_bytes)
            .finish_non_exhaustive()
    }
}
