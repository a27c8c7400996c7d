//! Confab's native Rust client, for bots, services and native apps: the core client engine
//! (`confab_core::client`: local replicas, outbox, rebase on rejection, views) on a tokio
//! task, with a WebSocket transport and a durable local store.
//!
//! - [`Client`]: start it on a store, go online, write intents, read the engine, listen to
//!   events. It works offline: intents wait in the store's outbox and are sent in order on
//!   reconnect; the engine resubscribes from its cursors and catches up.
//! - Stores: [`SqliteStore`] (one SQLite file, entries on disk), [`FileStore`] (an
//!   append-only log held in memory), `MemoryStore` (nothing kept). Any
//!   [`LocalStore`] whose futures never wait works.
//! - [`device_config`]: the account and this device's actor, kept in the store.
//!
//! ```no_run
//! use confab_client::{device_config, Client, SqliteStore};
//! use confab_client::core::ids::{AccountId, ConvId, TenantId};
//!
//! # async fn run(token: String) -> Result<(), confab_client::Error> {
//! let store = SqliteStore::open("alice.db")?;
//! let tenant = TenantId::new("acme").expect("a valid tenant");
//! let account = AccountId::new("alice").expect("a valid account");
//! let config = device_config(&store, tenant, account).await?;
//! let client = Client::start(config, "ws://127.0.0.1:8080/ws", token, store)?;
//! client.set_online(true).await?;
//! let conv = ConvId::new("general").expect("a valid conversation id");
//! let id = client.send_text(&conv, "hello").await?;
//! client.settle(id, std::time::Duration::from_secs(10)).await?;
//! # Ok(()) }
//! ```
//!
//! The token is a JWT the application's backend issues (docs/PROTOCOL.md, "Authentication").

mod error;
mod file_store;
mod forgetter;
mod host;
mod identity;
mod search;
mod sqlite_store;

pub use confab_core as core;
pub use confab_core::client::{
    ClientConfig, ClientEngine, ClientError, Event, Intent, IntentStatus, LocalStore, MemoryStore,
    SearchHit, SearchOptions, SearchPage, SearchSource, StoreError, StoreOp,
};
pub use error::Error;
pub use file_store::FileStore;
pub use forgetter::FORGET_WITHIN;
pub use host::{new_id, now_ms, Client};
pub use identity::device_config;
pub use sqlite_store::SqliteStore;
