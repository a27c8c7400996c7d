//! The limits on key-package claims (docs/E2EE.md, "Claim"): how many `claim_key_packages`
//! one connection sends ([`ConnectionClaims`]), and how many ordinary key packages of one
//! account this node hands out, whoever claims ([`AccountClaims`]). Both are sliding
//! windows kept in memory: exact on one node, each node of a cluster keeping its own. Who
//! gets ordinary packages at all is read from the store (`Devices::co_members`), so that
//! rule holds across a cluster.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use confab_core::ids::{AccountId, TenantId};
use confab_core::protocol::{
    CLAIMED_PER_ACCOUNT, CLAIMED_PER_ACCOUNT_WINDOW_MS, CLAIMS_PER_CONNECTION, CLAIMS_WINDOW_MS,
};

/// The times of the last events (at most `max`) within `window_ms`, oldest first.
#[derive(Debug, Clone)]
struct Window {
    max: usize,
    window_ms: i64,
    times: VecDeque<i64>,
}

impl Window {
    fn new(max: usize, window_ms: i64) -> Self {
        Window {
            max,
            window_ms,
            times: VecDeque::new(),
        }
    }

    /// Forgets what is `window_ms` old or older.
    fn forget(&mut self, now_ms: i64) {
        while self
            .times
            .front()
            .is_some_and(|t| *t <= now_ms - self.window_ms)
        {
            self.times.pop_front();
        }
    }

    /// Counts one event at `now_ms`, or `Err(retry_after_ms)` when `max` are in the window:
    /// how long until the oldest leaves it.
    fn admit(&mut self, now_ms: i64) -> Result<(), u64> {
        self.forget(now_ms);
        if self.times.len() >= self.max {
            let oldest = self.times.front().copied().unwrap_or(now_ms);
            let wait = oldest.saturating_add(self.window_ms).saturating_sub(now_ms);
            return Err(u64::try_from(wait).unwrap_or(0).max(1));
        }
        // A clock that goes back keeps the times in order.
        let at = self.times.back().map_or(now_ms, |last| now_ms.max(*last));
        self.times.push_back(at);
        Ok(())
    }

    /// Takes back the latest event counted.
    fn undo(&mut self) {
        self.times.pop_back();
    }
}

/// One connection's claims: at most [`CLAIMS_PER_CONNECTION`] in any [`CLAIMS_WINDOW_MS`].
#[derive(Debug, Clone)]
pub struct ConnectionClaims(Window);

impl Default for ConnectionClaims {
    fn default() -> Self {
        ConnectionClaims::new(CLAIMS_PER_CONNECTION, CLAIMS_WINDOW_MS)
    }
}

impl ConnectionClaims {
    pub fn new(max: usize, window_ms: i64) -> Self {
        ConnectionClaims(Window::new(max, window_ms))
    }

    /// Counts a claim, or `Err(retry_after_ms)`: the claim is refused and not counted.
    pub fn admit(&mut self, now_ms: i64) -> Result<(), u64> {
        self.0.admit(now_ms)
    }
}

/// Accounts whose windows are kept before the empty ones are forgotten.
const KEEP_ACCOUNTS: usize = 10_000;

/// The ordinary key packages of each account this node handed out: at most
/// [`CLAIMED_PER_ACCOUNT`] in any [`CLAIMED_PER_ACCOUNT_WINDOW_MS`] (in `AppState`).
#[derive(Debug)]
pub struct AccountClaims {
    max: usize,
    window_ms: i64,
    /// By tenant, then account (looked up without building a key).
    accounts: Mutex<HashMap<TenantId, HashMap<AccountId, Window>>>,
}

impl Default for AccountClaims {
    fn default() -> Self {
        AccountClaims::new(CLAIMED_PER_ACCOUNT, CLAIMED_PER_ACCOUNT_WINDOW_MS)
    }
}

impl AccountClaims {
    pub fn new(max: usize, window_ms: i64) -> Self {
        AccountClaims {
            max,
            window_ms,
            accounts: Mutex::new(HashMap::new()),
        }
    }

    /// Whether one more ordinary package of `account` may be handed out at `now_ms`; `true`
    /// counts it.
    pub fn take(&self, tenant: &TenantId, account: &AccountId, now_ms: i64) -> bool {
        let mut accounts = self
            .accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(window) = accounts.get_mut(tenant).and_then(|a| a.get_mut(account)) {
            return window.admit(now_ms).is_ok();
        }
        if accounts.values().map(HashMap::len).sum::<usize>() >= KEEP_ACCOUNTS {
            // An empty window holds nothing worth keeping: a new one is the same.
            for windows in accounts.values_mut() {
                windows.retain(|_, w| {
                    w.forget(now_ms);
                    !w.times.is_empty()
                });
            }
            accounts.retain(|_, windows| !windows.is_empty());
        }
        accounts
            .entry(tenant.clone())
            .or_default()
            .entry(account.clone())
            .or_insert_with(|| Window::new(self.max, self.window_ms))
            .admit(now_ms)
            .is_ok()
    }

    /// A package `take` allowed was not handed out (the device had none): it is not counted.
    pub fn give_back(&self, tenant: &TenantId, account: &AccountId) {
        let mut accounts = self
            .accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(window) = accounts.get_mut(tenant).and_then(|a| a.get_mut(account)) {
            window.undo();
        }
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

    #[test]
    fn a_connection_gets_its_claims_then_waits_for_the_oldest_to_leave_the_window() {
        let mut c = ConnectionClaims::new(3, 10_000);
        assert_eq!(c.admit(0), Ok(()));
        assert_eq!(c.admit(1_000), Ok(()));
        assert_eq!(c.admit(2_000), Ok(()));
        // Full: the first leaves the window at 10 s.
        assert_eq!(c.admit(2_500), Err(7_500));
        assert_eq!(c.admit(9_999), Err(1));
        // A refused claim is not counted: at 10 s there is room for one.
        assert_eq!(c.admit(10_000), Ok(()));
        assert_eq!(c.admit(10_000), Err(1_000));
        assert_eq!(c.admit(12_000), Ok(()));
    }

    #[test]
    fn a_clock_going_back_neither_frees_room_nor_panics() {
        let mut c = ConnectionClaims::new(2, 10_000);
        assert_eq!(c.admit(50_000), Ok(()));
        assert_eq!(c.admit(40_000), Ok(()));
        assert!(c.admit(40_000).is_err());
        assert!(c.admit(59_999).is_err());
        assert_eq!(c.admit(60_000), Ok(()));
    }

    #[test]
    fn an_account_hands_out_its_share_per_window_whoever_claims() {
        let limits = AccountClaims::new(3, 60_000);
        let (t, alice) = ids("alice");
        let (_, bob) = ids("bob");
        assert!(limits.take(&t, &alice, 0));
        assert!(limits.take(&t, &alice, 1));
        // A device with nothing to hand out gives its count back.
        assert!(limits.take(&t, &alice, 2));
        limits.give_back(&t, &alice);
        assert!(limits.take(&t, &alice, 3));
        assert!(!limits.take(&t, &alice, 4));
        // Another account, and another tenant, count apart.
        assert!(limits.take(&t, &bob, 4));
        let other = TenantId::new("evil").expect("id");
        assert!(limits.take(&other, &alice, 4));
        // The first leaves the window a minute after it was handed out.
        assert!(!limits.take(&t, &alice, 59_999));
        assert!(limits.take(&t, &alice, 60_000));
        assert!(!limits.take(&t, &alice, 60_000));
    }

    #[test]
    fn empty_windows_are_forgotten_when_many_accounts_were_claimed() {
        let limits = AccountClaims::new(1, 1_000);
        let t = TenantId::new("acme").expect("id");
        for i in 0..KEEP_ACCOUNTS {
            let a = AccountId::new(format!("a{i}")).expect("id");
            assert!(limits.take(&t, &a, 0));
        }
        let late = AccountId::new("late").expect("id");
        assert!(limits.take(&t, &late, 5_000));
        let kept: usize = limits
            .accounts
            .lock()
            .expect("lock")
            .values()
            .map(HashMap::len)
            .sum();
        assert_eq!(kept, 1, "only the account within its window is kept");
    }
}
