//! End-to-end test support: start the real `confab-server` binary on SQLite or a fresh
//! Postgres database, mint tokens, and drive it with native clients over real WebSockets.

pub mod client;
pub mod file_store;
pub mod native;
pub mod native_support;
pub mod pg_cluster;
pub mod server;
pub mod text;

pub use client::{Client, Device};
pub use server::{Backend, TestServer};

/// The JWT secret every test server uses.
pub const SECRET: &str = "e2e-test-secret";

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    sub: &'a str,
    tenant: &'a str,
    exp: i64,
    kind: &'a str,
}

/// A token for `account` in `tenant`, valid for `ttl_s` seconds (negative: expired).
pub fn token(tenant: &str, account: &str, service: bool, ttl_s: i64) -> String {
    let claims = Claims {
        sub: account,
        tenant,
        exp: now_ms() / 1000 + ttl_s,
        kind: if service { "service" } else { "user" },
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap_or_default()
}
