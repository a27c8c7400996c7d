//! The client engine, sans-io: local replicas, intents, outbox, rebase on rejection, derived
//! views, and what it keeps in and asks of the local store. Hosts (the wasm crate, the native
//! client `confab-client`) carry out its outputs: frames to send, store writes, store reads,
//! events.

pub mod apply;
mod ask;
mod buckets;
mod cache;
mod check;
mod delivery;
pub mod engine;
mod error;
mod feed;
mod here;
pub mod host;
pub mod intent;
mod key_changes;
mod load;
mod mls;
mod mls_saved;
mod opening;
mod outbox;
mod presence;
mod reads;
mod records;
pub mod refusal;
mod replica;
mod retry;
mod sealed;
pub mod search;
pub mod store;
mod timeline;
mod unreadable;
mod verdict;

pub use crate::doc::read::{ConvPrefs, PrivateData};
pub use ask::{Load, LoadId, Read, RequestId};
pub use cache::ReadStats;
pub use delivery::{AUTO_DELIVERED_MAX_MEMBERS, DELIVERED_DELAY_MS, DELIVERED_INTERVAL_MS};
pub use engine::mls_devices::DeviceInfo;
pub use engine::mls_joining::{JOIN_STEP_MS, WAIT_AGAIN_MS};
pub use engine::mls_removed::PEERS_LISTED_MAX;
pub use engine::verified::Verification;
pub use engine::views::ConversationSummary;
pub use engine::{
    ClientConfig, ClientEngine, ClientError, Event, IntentStatus, Outcome, Output, DUE_NOW,
};
pub use feed::MembershipChange;
pub use intent::Intent;
pub use key_changes::{KeyChange, KeyNotice, KEY_CHANGES_KEPT};
pub use mls::KEY_PACKAGES_TARGET;
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
