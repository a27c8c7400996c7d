//! Which accounts have a client connected to which node of a cluster (Postgres migration
//! 0021): the push webhook posts only for an account with no connected client anywhere
//! (`crate::notify::reachable`), and nodes never talk to each other, so each writes here
//! the accounts that come and go on it, with a heartbeat. SQLite runs one node: it stores
//! nothing and knows no other node. The statements: `postgres/cluster.rs`.

use confab_core::ids::{AccountId, TenantId};

/// One account of one tenant.
pub type Key = (TenantId, AccountId);
