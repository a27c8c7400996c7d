//! Whether an account has a connected client on another node of a cluster, for the push
//! webhook: a notification is pushed only to an account with no client anywhere
//! (docs/OPERATIONS.md, "Push webhooks"). Each node writes the accounts that get a first
//! client or lose their last one on it, gathered for [`GATHER`], with a heartbeat every
//! [`HEARTBEAT`] (`store::clients`); a node whose heartbeat is older than [`ALIVE`] is taken
//! for gone. The cost is one small write per gathered batch of comings and goings, and one
//! indexed read per batch of notifications: never the number of connections.
//!
//! Errors lean towards pushing: a node that cannot read the directory pushes (a push to an
//! account that had a client is a duplicate the phone shows; a missed one is lost), and a
//! node that cannot write it keeps what it owes and writes it all, afresh, once it can.

use std::collections::HashMap;
use std::time::Duration;

use confab_core::ids::{AccountId, TenantId};

use crate::engine::{Engine, WeakEngine};
use crate::store::clients::Key;

/// How often a node says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A node not heard of for this long is taken for gone (its clients with it).
pub const ALIVE: Duration = Duration::from_secs(5);
/// Comings and goings within this time go in one write.
const GATHER: Duration = Duration::from_millis(50);

/// Starts writing this node's connected accounts, on a store that other nodes share.
pub(super) fn spawn(engine: &Engine) {
    if !engine.is_clustered() {
        return;
    }
    let first: HashMap<Key, bool> = engine
        .track_clients()
        .into_iter()
        .map(|k| (k, true))
        .collect();
    tokio::spawn(run(engine.downgrade(), first));
}

async fn run(weak: WeakEngine, mut owed: HashMap<Key, bool>) {
    let mut reset = true;
    loop {
        let Some(engine) = weak.upgrade() else {
            return;
        };
        let (came, went): (Vec<_>, Vec<_>) = owed.iter().partition(|(_, came)| **came);
        let came: Vec<Key> = came.into_iter().map(|(k, _)| k.clone()).collect();
        let went: Vec<Key> = match reset {
            // A reset forgets every row of this node: what went is gone already.
            true => Vec::new(),
            false => went.into_iter().map(|(k, _)| k.clone()).collect(),
        };
        let synced = engine
            .store()
            .sync_clients(engine.node(), &came, &went, reset)
            .await;
        match synced {
            Ok(_) => {
                owed.clear();
                reset = false;
            }
            Err(e) => {
                // Rows may be stale now, and what failed is not known: start afresh.
                if !reset {
                    tracing::warn!(error = %e, "connected accounts not written; writing all again");
                }
                reset = true;
                owed = engine
                    .track_clients()
                    .into_iter()
                    .map(|k| (k, true))
                    .collect();
            }
        }
        if tokio::time::timeout(HEARTBEAT, engine.client_comings_noted())
            .await
            .is_ok()
        {
            tokio::time::sleep(GATHER).await;
        }
        owed.extend(engine.take_client_comings());
    }
}

/// Of `accounts`, those with a client on another live node; on a store of one node, none.
/// A failed read answers none (the caller pushes).
pub(super) async fn elsewhere(
    engine: &Engine,
    accounts: &[(TenantId, AccountId)],
) -> Vec<(TenantId, AccountId)> {
    if !engine.is_clustered() || accounts.is_empty() {
        return Vec::new();
    }
    let alive_ms = i64::try_from(ALIVE.as_millis()).unwrap_or(i64::MAX);
    let found = engine
        .store()
        .clients_elsewhere(engine.node(), accounts, alive_ms)
        .await;
    match found {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %e, "connected accounts of other nodes not read; pushing");
            Vec::new()
        }
    }
}
