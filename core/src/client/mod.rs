//! The client engine (DESIGN §6), sans-io: local store trait, intents, outbox, rebase on
//! rejection, derived views. The wasm crate and the native client are shells around it.

pub mod apply;
pub mod engine;
pub mod intent;
pub mod store;

pub use engine::{
    ClientConfig, ClientEngine, ClientError, ConversationSummary, Event, IntentStatus, Output,
    TimelineItem,
};
pub use intent::Intent;
pub use store::{LocalStore, MemoryStore, StoreError, StoreOp};
