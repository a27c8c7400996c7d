//! Confab for JavaScript and TypeScript: `ConfabClient` (wasm-bindgen) around the sans-io
//! client engine of `confab-core`, with an IndexedDB store, a storage adapter interface for
//! mobile hosts, and a WebSocket transport that reconnects with backoff. README.md documents
//! the JavaScript API; the `.d.ts` is generated from the types in [`types`].

pub mod account;
mod api;
mod at_rest;
mod client;
mod connection;
pub mod error;
mod events;
mod feed;
mod http;
mod idb;
mod intents;
mod joining;
mod js;
mod loads;
pub mod policy;
mod proposals;
mod queue;
mod reads;
mod runtime;
mod schedule;
mod search;
mod startup;
pub mod store;
mod timeline;
pub mod types;
mod uploads;

pub use client::ConfabClient;
pub use connection::backoff_delay;
pub use store::{AnyStore, IdbStore, JsStore};
