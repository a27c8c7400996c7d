//! Work budgets, sans-io: a token bucket counted in units of validation work that can go
//! into debt. The server keeps one per connection and one per account: every submitted
//! change costs one unit when it is queued, and a rejected one costs more once its answer is
//! known (a rejection is what a flooder produces, and each one still had to be parsed,
//! validated and logged). While a budget is in debt, submits are refused before they are
//! decoded, with `rate_limited` and the time until the debt is paid back.
//!
//! An honest client is throttled, never rejected: `rate_limited` is retryable, so a phone
//! flushing a long outbox resubmits after `retry_after_ms` and gets through at the budget's
//! rate.

/// Settings of one budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetRate {
    /// Units regained per second.
    pub per_sec: f64,
    /// Units held when full (the largest burst), and the deepest debt.
    pub burst: f64,
}

/// A token bucket of work units that may go into debt (down to `-burst`).
#[derive(Debug, Clone)]
pub struct Budget {
    rate: BudgetRate,
    level: f64,
    last_ms: Option<i64>,
}

impl Budget {
    /// A full budget.
    pub fn new(rate: BudgetRate) -> Self {
        Budget {
            rate,
            level: rate.burst,
            last_ms: None,
        }
    }

    fn refill(&mut self, now_ms: i64) {
        if let Some(last) = self.last_ms {
            let elapsed = now_ms.saturating_sub(last).max(0) as f64 / 1000.0;
            self.level = (self.level + elapsed * self.rate.per_sec).min(self.rate.burst);
        }
        // A clock that goes back never refills twice.
        self.last_ms = Some(self.last_ms.map_or(now_ms, |last| last.max(now_ms)));
    }

    /// `Err(retry_after_ms)` while the budget is in debt (or exactly empty): how long until
    /// it is back above zero.
    pub fn check(&mut self, now_ms: i64) -> Result<(), u64> {
        self.refill(now_ms);
        if self.level > 0.0 {
            return Ok(());
        }
        if self.rate.per_sec <= 0.0 {
            return Err(u64::MAX);
        }
        // Back above zero (a hair over, so the retry finds it open).
        let wait_ms = ((-self.level + 1.0) / self.rate.per_sec * 1000.0).ceil();
        Err((wait_ms as u64).max(1))
    }

    /// Spends `units` (the level may go below zero, down to `-burst`).
    pub fn charge(&mut self, units: f64, now_ms: i64) {
        self.refill(now_ms);
        self.level = (self.level - units).max(-self.rate.burst);
    }

    /// True when the budget is full again (its owner may forget it).
    pub fn is_full(&mut self, now_ms: i64) -> bool {
        self.refill(now_ms);
        self.level >= self.rate.burst
    }

    pub fn level(&self) -> f64 {
        self.level
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: BudgetRate = BudgetRate {
        per_sec: 100.0,
        burst: 1000.0,
    };

    #[test]
    fn a_full_budget_takes_a_burst_then_refuses_until_paid_back() {
        let mut b = Budget::new(RATE);
        assert_eq!(b.check(0), Ok(()));
        b.charge(1000.0, 0);
        // Exactly empty: refused, about 10 ms until one unit is back.
        assert_eq!(b.check(0), Err(10));
        b.charge(500.0, 0);
        // 500 in debt at 100 per second: ~5 s.
        assert_eq!(b.check(0), Err(5010));
        assert!(b.check(4000).is_err());
        assert_eq!(b.check(5020), Ok(()));
    }

    #[test]
    fn debt_is_bounded_and_the_budget_refills_to_its_burst() {
        let mut b = Budget::new(RATE);
        b.charge(1_000_000.0, 0);
        assert_eq!(b.level(), -1000.0);
        assert!(!b.is_full(10_000));
        assert!(b.is_full(20_000));
        assert_eq!(b.level(), 1000.0);
    }

    #[test]
    fn a_clock_going_back_neither_refills_nor_panics() {
        let mut b = Budget::new(RATE);
        b.charge(1000.0, 10_000);
        assert!(b.check(5_000).is_err());
        assert!(b.check(10_000).is_err());
        assert_eq!(b.check(10_020), Ok(()));
    }
}
