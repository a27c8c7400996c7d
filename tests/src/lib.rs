//! End-to-end test support: start the real `confab-server` binary on SQLite or a fresh
//! Postgres database, mint tokens, and drive it with clients over real WebSockets: the raw
//! protocol client ([`client`]) and the product client (`confab-client`, through
//! [`native_support`]). What the core suite and the load generators share (devices, ids,
//! fixtures, `TestServer`, the raw client) is in `confab-testkit`.

pub mod delay_proxy;
pub mod native_support;
pub mod pg_cluster;
pub mod push_receiver;
pub mod server;
pub mod store_probe;

/// Deterministic message content (it lives in `confab-testkit`).
pub use confab_testkit::text;
/// The raw protocol client (it lives in `confab-testkit`, shared with the load generators).
pub use confab_testkit::wire as client;

pub use client::{Client, Device, DeviceSync};
pub use server::{device_token, now_ms, token, Backend, TestServer, SECRET};
