//! Actor bindings known to be committed, shared by every unit of the node.
//!
//! Why: each unit's acceptor asks storage once for every actor new to it, so a device that
//! writes in many conversations cost one query per conversation, on the submit path. With
//! 1,000 conversations busy at once those lookups held the 8-connection pool (each one as
//! long as the runtime took to resume its unit, not as long as the query) until submits
//! timed out waiting for a connection (docs/BENCHMARKS.md, "Many at once"). A binding is
//! never changed or deleted once committed (the `actors` table's key refuses a second
//! one), so a committed binding can be kept anywhere, on every node of a cluster.
//!
//! Only committed bindings enter: those storage answered, and those of changes this node
//! committed. An acceptor's own bindings from changes not yet committed stay in the
//! acceptor (they are forgotten if the commit fails); "no binding" is never kept (the next
//! commit may make one).

use std::collections::HashMap;
use std::sync::Mutex;

use confab_core::ids::{AccountId, TenantId};

/// Bindings kept, at most twice this (two generations: the older is dropped whole when the
/// newer fills, so what is in use stays without an LRU's bookkeeping). 100,000 devices
/// writing at once are ~20 MiB.
const GENERATION: usize = 100_000;

type Key = (TenantId, Vec<u8>);

#[derive(Debug, Default)]
struct Generations {
    newer: HashMap<Key, AccountId>,
    older: HashMap<Key, AccountId>,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Bindings {
    kept: Mutex<Generations>,
}

impl Bindings {
    /// The account `actor` is bound to, if a committed binding is kept.
    pub(crate) fn get(&self, tenant: &TenantId, actor: &[u8]) -> Option<AccountId> {
        let mut kept = self.lock();
        let key = (tenant.clone(), actor.to_vec());
        if let Some(account) = kept.newer.get(&key) {
            return Some(account.clone());
        }
        // Still in use: moves to the newer generation so it outlives the older one.
        let account = kept.older.remove(&key)?;
        kept.insert(key, account.clone());
        Some(account)
    }

    /// Keeps a committed binding.
    pub(crate) fn remember(&self, tenant: &TenantId, actor: &[u8], account: &AccountId) {
        self.lock()
            .insert((tenant.clone(), actor.to_vec()), account.clone());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // Every step leaves the maps consistent, so a poisoned lock is still usable.
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Generations {
    fn insert(&mut self, key: Key, account: AccountId) {
        if self.newer.len() >= GENERATION && !self.newer.contains_key(&key) {
            self.older = std::mem::take(&mut self.newer);
        }
        self.newer.insert(key, account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantId {
        TenantId::new("t1").expect("tenant id")
    }

    fn account(name: &str) -> AccountId {
        AccountId::new(name).expect("account id")
    }

    #[test]
    fn a_binding_is_kept_per_tenant() {
        let b = Bindings::default();
        b.remember(&tenant(), b"actor", &account("alice"));
        assert_eq!(b.get(&tenant(), b"actor"), Some(account("alice")));
        assert_eq!(b.get(&tenant(), b"other"), None);
        let t2 = TenantId::new("t2").expect("tenant id");
        assert_eq!(b.get(&t2, b"actor"), None);
    }

    #[test]
    fn what_is_in_use_outlives_a_full_generation_and_the_rest_goes() {
        let b = Bindings::default();
        let filler = |from: usize| {
            for i in from..from + GENERATION {
                b.remember(&tenant(), &i.to_be_bytes(), &account("carol"));
            }
        };
        b.remember(&tenant(), b"used", &account("alice"));
        b.remember(&tenant(), b"unused", &account("bob"));
        filler(0);
        // Both are in the older generation now; reading one moves it to the newer.
        assert_eq!(b.get(&tenant(), b"used"), Some(account("alice")));
        filler(GENERATION);
        assert_eq!(b.get(&tenant(), b"used"), Some(account("alice")));
        assert_eq!(b.get(&tenant(), b"unused"), None);
        let kept = b.lock();
        assert!(kept.newer.len() + kept.older.len() <= 2 * GENERATION);
    }
}
