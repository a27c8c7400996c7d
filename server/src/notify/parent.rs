//! Threads follow their parent (docs/POLICY.md, "Rules"): a thread's message notifies only
//! accounts that are also active in its parent (and every conversation above it), as the
//! parent stands now, like every other read of the thread.

use std::collections::BTreeSet;

use confab_core::ids::{AccountId, ConvId, TenantId};

use crate::engine::Engine;
use crate::store::StoreError;

/// The parent of `conv` when it is a thread.
pub(super) async fn of(
    engine: &Engine,
    tenant: &TenantId,
    conv: &ConvId,
) -> Result<Option<ConvId>, StoreError> {
    Ok(engine
        .store()
        .conversation(tenant, conv)
        .await?
        .and_then(|row| row.parent))
}

/// Those of `accounts` who are active in `parent`. A parent that cannot answer is
/// unavailable, so the notifier tries again later rather than tell anyone.
pub(super) async fn active_in(
    engine: &Engine,
    tenant: &TenantId,
    parent: &ConvId,
    accounts: Vec<AccountId>,
) -> Result<BTreeSet<AccountId>, StoreError> {
    let answer = engine
        .standings(tenant, parent, accounts.clone())
        .await
        .map_err(|e| StoreError::Unavailable(format!("parent {parent} did not answer: {e}")))?;
    Ok(accounts
        .into_iter()
        .zip(answer.standings)
        .filter(|(_, standing)| standing.is_active())
        .map(|(account, _)| account)
        .collect())
}
