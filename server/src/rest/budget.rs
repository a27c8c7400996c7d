//! REST writes spend the account's work budget (`crate::budget`), the one its WebSocket
//! connections share, so a token cannot flood a conversation over REST instead.
//!
//! A write request costs 1 unit when it is admitted and `reject_cost` in all when the engine
//! rejects its change, the prices of a submitted change. While the account is in debt a
//! write is answered 429 `rate_limited` before anything of it is read (no body, no engine).
//! Service accounts pay like everyone, as on WebSocket. Reads are not charged: the
//! WebSocket side charges submits only, never subscriptions or catch-up.

use std::ops::Deref;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use confab_core::ids::DocId;

use super::error::ApiError;
use super::extract::Caller;
use crate::budget::{Cost, Spent};
use crate::clock::now_ms;
use crate::engine::{IntentFn, SubmitOutcome};
use crate::state::AppState;

/// A caller whose write was admitted by its account's budget (and charged its first unit).
/// Write handlers take this instead of [`Caller`], so no write can skip the budget.
#[derive(Debug, Clone)]
pub struct Writer(Caller);

impl Deref for Writer {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        &self.0
    }
}

impl FromRequestParts<AppState> for Writer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, app).await?;
        let now = now_ms();
        let budgets = &app.budgets;
        if let Err(retry_after_ms) = budgets.check_account(&caller.tenant, &caller.account, now) {
            app.engine
                .metrics()
                .submits_limited
                .get_or_create(&crate::metrics::ReasonLabel {
                    reason: Spent::Account.as_str().to_owned(),
                })
                .inc();
            return Err(ApiError::rate_limited(retry_after_ms));
        }
        budgets.charge_account(&caller.tenant, &caller.account, Cost::Queued, now);
        Ok(Writer(caller))
    }
}

impl Writer {
    /// Runs `intent` on `doc` through the engine and charges a rejection.
    pub async fn write(&self, app: &AppState, doc: DocId, intent: IntentFn) -> SubmitOutcome {
        let outcome = app.engine.write(doc, self.author(), intent).await;
        self.charged(app, outcome)
    }

    /// Charges the rest of a rejection's cost (an ack or a failure costs nothing more).
    pub fn charged(&self, app: &AppState, outcome: SubmitOutcome) -> SubmitOutcome {
        if matches!(outcome, SubmitOutcome::Reject { .. }) {
            app.budgets
                .charge_account(&self.tenant, &self.account, Cost::Rejected, now_ms());
        }
        outcome
    }
}
