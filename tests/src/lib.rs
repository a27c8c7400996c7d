//! End-to-end test support: start the real `confab-server` binary on SQLite or a fresh
//! Postgres database, mint tokens, and drive it with native clients over real WebSockets.
//! What the core suite shares (devices, ids, fixtures, `TestServer`) is in `confab-testkit`.

pub mod client;
pub mod delay_proxy;
pub mod file_store;
pub mod native;
pub mod native_support;
pub mod pg_cluster;
pub mod push_receiver;
pub mod server;
pub mod text;

pub use client::{Client, Device, DeviceSync};
pub use server::{now_ms, token, Backend, TestServer, SECRET};
