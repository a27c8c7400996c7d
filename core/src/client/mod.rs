//! The client engine (DESIGN §6), sans-io: local store trait, intents, outbox, rebase on
//! rejection, derived views. The wasm crate and the native client are shells around it.

pub mod apply;
mod catchup;
pub mod engine;
pub mod intent;
mod persist;
mod retry;
pub mod store;
mod views;

pub use crate::doc::read::{ConvPrefs, PrivateData};
pub use engine::{ClientConfig, ClientEngine, ClientError, Event, IntentStatus, Output};
pub use intent::Intent;
pub use persist::DOCS_PREFIX;
pub use store::{LocalStore, MemoryStore, StoreError, StoreOp};
pub use views::{ConversationSummary, TimelineItem};
