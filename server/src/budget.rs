//! Work budgets of connections and accounts (core's [`Budget`], counted in changes and in
//! the work they cost).
//!
//! Every submitted change costs one unit when it is queued, and a rejected one
//! `reject_cost` units in all once its answer is known: rejections are what a flooder
//! produces, and each one was still parsed, checked and logged. Each connection has its
//! own budget and shares its account's (every connection of the account draws on it).
//! While either is in debt, the connection's submits are refused before they are decoded,
//! with `rate_limited`, the document and `retry_after_ms` (docs/PROTOCOL.md). The defaults
//! let a phone flush a long outbox at full speed for many thousands of changes and then
//! throttle it; `rate_limited` is retryable, so it is never a rejection.

use std::collections::HashMap;
use std::sync::Mutex;

use confab_core::ids::{AccountId, TenantId};
use confab_core::protocol::{Budget, BudgetRate};

/// Budget settings (`--rate-changes-*` flags).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetConfig {
    /// Each connection's own budget.
    pub connection: BudgetRate,
    /// The budget all connections of one account share.
    pub account: BudgetRate,
    /// Units a rejected change costs in all (an accepted one costs 1).
    pub reject_cost: f64,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            connection: BudgetRate {
                per_sec: 2_000.0,
                burst: 20_000.0,
            },
            account: BudgetRate {
                per_sec: 5_000.0,
                burst: 50_000.0,
            },
            reject_cost: 10.0,
        }
    }
}

/// Which budget refused a submit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spent {
    Connection,
    Account,
}

impl Spent {
    pub fn as_str(self) -> &'static str {
        match self {
            Spent::Connection => "connection",
            Spent::Account => "account",
        }
    }
}

/// What a piece of work costs: one unit when queued, the rest of `reject_cost` once it is
/// known to be rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cost {
    Queued,
    Rejected,
}

/// Accounts whose budgets are kept before full ones are forgotten.
const KEEP_ACCOUNTS: usize = 10_000;

/// The accounts' shared budgets (in `AppState`); connections keep their own.
#[derive(Debug)]
pub struct Budgets {
    config: BudgetConfig,
    /// By tenant, then account (looked up on every frame without building a key).
    accounts: Mutex<HashMap<TenantId, HashMap<AccountId, Budget>>>,
}

impl Budgets {
    pub fn new(config: BudgetConfig) -> Self {
        Budgets {
            config,
            accounts: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &BudgetConfig {
        &self.config
    }

    /// A new connection's own budget (full).
    pub fn connection(&self) -> Budget {
        Budget::new(self.config.connection)
    }

    /// `Err((retry_after_ms, which))` while the connection's or the account's budget is in
    /// debt.
    pub fn check(
        &self,
        conn: &mut Budget,
        tenant: &TenantId,
        account: &AccountId,
        now_ms: i64,
    ) -> Result<(), (u64, Spent)> {
        let own = conn.check(now_ms);
        let shared = self.with_account(tenant, account, |b| b.check(now_ms));
        match (own, shared) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(a), Err(b)) if b > a => Err((b, Spent::Account)),
            (Err(a), _) => Err((a, Spent::Connection)),
            (Ok(()), Err(b)) => Err((b, Spent::Account)),
        }
    }

    /// `changes` were queued.
    pub fn queued(
        &self,
        conn: &mut Budget,
        tenant: &TenantId,
        account: &AccountId,
        changes: usize,
        now_ms: i64,
    ) {
        self.charge(conn, tenant, account, changes as f64, now_ms);
    }

    /// `rejected` changes were answered with a rejection (their first unit is paid).
    pub fn rejected(
        &self,
        conn: &mut Budget,
        tenant: &TenantId,
        account: &AccountId,
        rejected: usize,
        now_ms: i64,
    ) {
        if rejected > 0 {
            let extra = self.reject_extra(rejected);
            self.charge(conn, tenant, account, extra, now_ms);
        }
    }

    /// `Err(retry_after_ms)` while the account's budget is in debt (REST writes, which have
    /// no connection: they draw on the account's budget alone).
    pub fn check_account(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        now_ms: i64,
    ) -> Result<(), u64> {
        self.with_account(tenant, account, |b| b.check(now_ms))
    }

    /// A REST write was queued (`rejected`: and answered with a rejection), charged to the
    /// account alone, at the same prices as a submitted change.
    pub fn charge_account(&self, tenant: &TenantId, account: &AccountId, cost: Cost, now_ms: i64) {
        let units = match cost {
            Cost::Queued => 1.0,
            Cost::Rejected => self.reject_extra(1),
        };
        self.with_account(tenant, account, |b| b.charge(units, now_ms));
    }

    /// What `rejected` rejections cost beyond the unit each paid when queued.
    fn reject_extra(&self, rejected: usize) -> f64 {
        (self.config.reject_cost - 1.0).max(0.0) * rejected as f64
    }

    fn charge(
        &self,
        conn: &mut Budget,
        tenant: &TenantId,
        account: &AccountId,
        units: f64,
        now_ms: i64,
    ) {
        conn.charge(units, now_ms);
        self.with_account(tenant, account, |b| b.charge(units, now_ms));
    }

    fn with_account<T>(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        f: impl FnOnce(&mut Budget) -> T,
    ) -> T {
        let mut accounts = self
            .accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(budget) = accounts.get_mut(tenant).and_then(|a| a.get_mut(account)) {
            return f(budget);
        }
        if accounts.values().map(HashMap::len).sum::<usize>() >= KEEP_ACCOUNTS {
            // Full budgets hold nothing worth keeping: a new one is the same.
            let now = crate::clock::now_ms();
            for budgets in accounts.values_mut() {
                budgets.retain(|_, b| !b.is_full(now));
            }
            accounts.retain(|_, budgets| !budgets.is_empty());
        }
        let budget = accounts
            .entry(tenant.clone())
            .or_default()
            .entry(account.clone())
            .or_insert_with(|| Budget::new(self.config.account));
        f(budget)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(account: &str) -> (TenantId, AccountId) {
        (
            TenantId::new("acme").expect("id"),
            AccountId::new(account).expect("id"),
        )
    }

    fn small() -> Budgets {
        Budgets::new(BudgetConfig {
            connection: BudgetRate {
                per_sec: 100.0,
                burst: 1_000.0,
            },
            account: BudgetRate {
                per_sec: 100.0,
                burst: 1_500.0,
            },
            reject_cost: 10.0,
        })
    }

    #[test]
    fn rejections_spend_the_budget_faster_than_acceptances() {
        let budgets = small();
        let (t, a) = ids("eve");
        let mut conn = budgets.connection();
        budgets.queued(&mut conn, &t, &a, 900, 0);
        assert_eq!(budgets.check(&mut conn, &t, &a, 0), Ok(()));
        // 100 of them rejected: 900 more units, the connection is 800 in debt.
        budgets.rejected(&mut conn, &t, &a, 100, 0);
        assert_eq!(
            budgets.check(&mut conn, &t, &a, 0),
            Err((8_010, Spent::Connection))
        );
    }

    #[test]
    fn rest_writes_draw_on_the_account_budget_its_connections_share() {
        let budgets = small();
        let (t, a) = ids("eve");
        let mut conn = budgets.connection();
        budgets.queued(&mut conn, &t, &a, 900, 0);
        for _ in 0..60 {
            budgets.charge_account(&t, &a, Cost::Queued, 0);
            budgets.charge_account(&t, &a, Cost::Rejected, 0);
        }
        // 900 + 60 * 10 = the whole burst: spent for the REST side and the connections.
        assert_eq!(budgets.check_account(&t, &a, 0), Err(10));
        assert_eq!(
            budgets.check(&mut conn, &t, &a, 0),
            Err((10, Spent::Account))
        );
        let (t, b) = ids("bob");
        assert_eq!(budgets.check_account(&t, &b, 0), Ok(()));
    }

    #[test]
    fn an_accounts_connections_share_its_budget() {
        let budgets = small();
        let (t, a) = ids("eve");
        let (mut c1, mut c2, mut c3) = (
            budgets.connection(),
            budgets.connection(),
            budgets.connection(),
        );
        budgets.queued(&mut c1, &t, &a, 800, 0);
        budgets.queued(&mut c2, &t, &a, 800, 0);
        // Neither connection is spent, the account is (100 in debt).
        assert_eq!(
            budgets.check(&mut c3, &t, &a, 0),
            Err((1_010, Spent::Account))
        );
        // Another account is untouched.
        let (t, b) = ids("bob");
        assert_eq!(budgets.check(&mut c3, &t, &b, 0), Ok(()));
    }
}
