//! Confab's core: the domain model, its Automerge documents, the permission policy and the
//! validation of incoming changes. Sans-io: no network, storage or clock of its own; time is
//! always a parameter. The one source of randomness is the MLS key material of [`e2ee`].

pub mod accept;
pub mod client;
pub mod doc;
pub mod e2ee;
pub mod error;
pub mod hub;
pub mod ids;
pub mod limits;
pub mod model;
pub mod policy;
pub mod protocol;
pub mod search;
pub mod validate;

pub use automerge;
pub use error::ModelError;
