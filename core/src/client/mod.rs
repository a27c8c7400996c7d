//! The client engine, sans-io: local replicas, intents, outbox, rebase on rejection, derived
//! views, and what it keeps in and asks of the local store. Hosts (the wasm crate, the native
//! client `confab-client`) carry out its outputs: frames to send, store writes, store reads,
//! events.

pub mod apply;
mod ask;
mod buckets;
mod cache;
mod catchup;
mod check;
mod delivery;
pub mod engine;
mod epochs;
mod error;
mod feed;
mod forward;
mod generation;
mod here;
pub mod host;
pub mod intent;
mod jobs;
mod key_changes;
mod load;
mod mls;
mod mls_devices;
mod mls_group;
mod mls_joining;
mod mls_owed;
mod mls_removed;
mod mls_saved;
mod opening;
mod outbox;
mod persist;
mod presence;
mod reads;
mod receive;
mod records;
pub mod refusal;
mod replica;
mod retention;
mod retry;
mod sealed;
pub mod search;
pub mod store;
mod timeline;
mod unreadable;
mod verdict;
mod verified;
mod views;

pub use crate::doc::read::{ConvPrefs, PrivateData};
pub use ask::{Load, LoadId, Outcome, Read, RequestId};
pub use cache::ReadStats;
pub use delivery::{AUTO_DELIVERED_MAX_MEMBERS, DELIVERED_DELAY_MS, DELIVERED_INTERVAL_MS};
pub use engine::{ClientConfig, ClientEngine, ClientError, Event, IntentStatus, Output, DUE_NOW};
pub use feed::MembershipChange;
pub use intent::Intent;
pub use key_changes::{KeyChange, KeyNotice, KEY_CHANGES_KEPT};
pub use mls::KEY_PACKAGES_TARGET;
pub use mls_devices::DeviceInfo;
pub use mls_joining::{JOIN_STEP_MS, WAIT_AGAIN_MS};
pub use mls_removed::PEERS_LISTED_MAX;
pub use presence::{presence_refresh_ms, MemberPresence, PresenceState};
pub use records::HostKey;
pub use sealed::Opened;
pub use search::{
    Partial, SearchError, SearchHit, SearchOptions, SearchPage, SearchPlan, SearchSource, Snippet,
    SnippetPart,
};
pub use store::{LocalStore, MemoryStore, StoreError, StoreOp};
pub use timeline::TimelineItem;
pub use unreadable::Unreadable;
pub use verified::Verification;
pub use views::ConversationSummary;
