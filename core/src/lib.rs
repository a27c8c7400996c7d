//! Confab's core: the domain model, its Automerge documents, the permission policy and the
//! validation of incoming changes. Sans-io: no network, storage, clock or randomness of its own;
//! time is always a parameter.

pub mod accept;
pub mod client;
pub mod doc;
pub mod error;
pub mod hub;
pub mod ids;
pub mod limits;
pub mod model;
pub mod policy;
pub mod protocol;
pub mod validate;

pub use automerge;
pub use error::ModelError;
