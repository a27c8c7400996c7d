//! The crate's one error type.

use std::path::PathBuf;
use std::time::Duration;

use confab_core::client::{ClientError, IntentStatus, SearchError, StoreError};

/// What can go wrong in the client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A store could not be opened or created at `path` (a missing or read-only folder, a
    /// file that is not a store, no permission).
    #[error("cannot open the local store at {}: {source}", path.display())]
    OpenStore {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The store belongs to another account (`owner`, as `tenant/account`).
    #[error("this store belongs to {owner}, not {wanted}")]
    StoreMismatch { owner: String, wanted: String },
    /// A read or write of the local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine refused: an intent the policy denies (the code is the policy's, e.g.
    /// `not_member`), a document it cannot open, stored data it cannot read.
    /// `ClientError::code` gives the code for programs.
    #[error(transparent)]
    Engine(#[from] ClientError),
    /// A search the engine refuses: a query with no words, too long or with too many
    /// terms, a cursor this search did not answer, a limit outside 1..=200.
    #[error(transparent)]
    Search(#[from] SearchError),
    /// `Client::start` was called outside a tokio runtime.
    #[error("the client must start inside a tokio runtime")]
    NoRuntime,
    /// The client's task has ended (its runtime shut down, or it panicked).
    #[error("the client stopped")]
    Stopped,
    /// A request the server answers ([`Client::read_times`](crate::Client::read_times))
    /// failed: `code` is the server's (`forbidden`, `unavailable`) or `offline`.
    #[error("{code}: {message}")]
    Failed { code: String, message: String },
    /// [`Client::settle`](crate::Client::settle) gave up: the intent is neither accepted
    /// nor rejected after `waited`.
    #[error("intent {id} still {status:?} after {waited:?}")]
    Unsettled {
        id: u64,
        status: Option<IntentStatus>,
        waited: Duration,
    },
}
