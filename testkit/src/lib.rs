//! Dev-only test support shared by the core suite (`core/tests`, `core/benches`) and the
//! end-to-end crate (`tests/`): written once here instead of once per suite.
//!
//! - [`ids`]: the test tenant and id constructors.
//! - [`device`]: a device of an account (actor, replicas, cursors) writing real changes.
//! - [`fixture`]: the one conversation creation fixture ([`fixture::ConvFixture`]) and the
//!   text message.
//! - [`group`]: a group of n members and its newest bucket as a client receives them
//!   (client-operation benchmarks and cost tests).
//! - [`hub`]: the in-memory acceptor at a fixed server time ([`hub::NOW`]).
//! - [`net`]: one in-memory network: client engines ([`net::Peer`]) wired to a fake server
//!   ([`net::HubServer`], or a suite's own [`net::Server`] around it), pumped until quiet.
//! - [`craft`]: adversarial changes (raw transactions, tampered changes).
//! - [`attack`]: the attack cases as one table, run by the in-memory driver
//!   ([`attack::HubLab`]) and by the wire driver of `tests/tests/attacks.rs`. How to add a
//!   case: see [`attack`].
//! - [`pg`] (feature `pg`, in `server`): a fresh database on the system Postgres
//!   ([`pg::fresh_database`], [`pg::on_fresh_database`]).
//! - [`server`] (feature `server`): the real server binary as a child process
//!   ([`server::TestServer`]), tokens; the e2e suites and the bench binaries use it.
//! - [`http`] (feature `server`): one raw HTTP request ([`http::request`]).
//! - [`wire`] (feature `server`): a raw protocol client over a real WebSocket
//!   ([`wire::Client`]), for the e2e suites and the bench binaries.
//! - [`text`]: deterministic chat-like bodies and message ids for load.
#![allow(clippy::missing_panics_doc)] // Test support: a panic is the test's failure.

pub mod answer;
pub mod attack;
pub mod craft;
pub mod device;
pub mod fixture;
pub mod forward;
pub mod group;
#[cfg(feature = "server")]
pub mod http;
pub mod hub;
pub mod ids;
pub mod net;
#[cfg(feature = "pg")]
pub mod pg;
#[cfg(feature = "server")]
pub mod server;
pub mod text;
#[cfg(feature = "server")]
pub mod wire;

pub use answer::Answer;
pub use device::Device;
