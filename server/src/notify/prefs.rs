//! Members' per-conversation settings for the fan-out, cached by the seq of their private
//! document. The fan-out's member query answers each member's private-document seq with
//! the member (one statement per page); a member with no private document has the
//! defaults (`all`, not muted) and costs nothing, one whose seq matches the cache costs a
//! map lookup, and only a changed document is read (from storage, not through its unit,
//! so a channel of 10,000 subscribers never loads 10,000 account units). The seq comes
//! from the database, so a setting changed on another node of a cluster is seen too.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use confab_core::doc::read::{read_private, ConvPrefs};
use confab_core::ids::{AccountId, ConvId, DocId, TenantId};

use crate::engine::Engine;
use crate::store::StoreError;

/// Accounts whose settings are kept; beyond, the cache starts afresh (a rare reread).
const CACHED_MAX: usize = 100_000;

type Convs = Arc<BTreeMap<ConvId, ConvPrefs>>;

/// The worker's cache (owned by its task: no lock).
#[derive(Debug, Default)]
pub(crate) struct Prefs {
    by_account: HashMap<(TenantId, AccountId), (u64, Convs)>,
}

impl Prefs {
    /// The account's settings for `conv` as of its private document's `seq` (0: it has
    /// none, the defaults). `Err` only if the storage is unavailable; a document that
    /// cannot be read has the defaults (the member is notified rather than forgotten).
    pub async fn of(
        &mut self,
        engine: &Engine,
        tenant: &TenantId,
        account: &AccountId,
        seq: u64,
        conv: &ConvId,
    ) -> Result<Option<ConvPrefs>, StoreError> {
        if seq == 0 {
            return Ok(None);
        }
        let key = (tenant.clone(), account.clone());
        if let Some((cached, convs)) = self.by_account.get(&key) {
            if *cached == seq {
                return Ok(convs.get(conv).cloned());
            }
        }
        let convs: Convs = match engine.committed(&DocId::private(tenant, account)).await {
            Ok(doc) => Arc::new(read_private(&doc).convs),
            Err(e) if e.is_unavailable() => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, %account, "private document not read; defaults");
                Arc::default()
            }
        };
        if self.by_account.len() >= CACHED_MAX {
            self.by_account.clear();
        }
        let found = convs.get(conv).cloned();
        self.by_account.insert(key, (seq, convs));
        Ok(found)
    }
}
