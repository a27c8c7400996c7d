//! A connection's side of the work budgets (`crate::budget`): refusing submits while a
//! budget is spent, and charging what was queued and what was rejected. Signals are charged
//! too (1 unit each, never rejected: a refused one costs nothing more), since each loads its
//! conversation to check the sender may read it, and so are directory requests (one unit,
//! and one per key package or account: `directory::units`).

use confab_core::ids::DocId;
use confab_core::protocol::{peek, Action, Budget, ErrorCode, ServerFrame, Session};
use futures_util::FutureExt;

use super::Answers;
use crate::budget::Spent;
use crate::clock::now_ms;
use crate::engine::SubmitOutcome;
use crate::state::AppState;

/// The answer to a refused submit frame: one `rate_limited` error for all its changes,
/// sent in order with the answers of the connection's earlier submits (a client matches
/// answers to its submits of a document by their order).
fn refusal(app: &AppState, doc: DocId, retry_after_ms: u64, spent: Spent) -> Answers {
    app.engine
        .metrics()
        .submits_limited
        .get_or_create(&crate::metrics::ReasonLabel {
            reason: spent.as_str().to_owned(),
        })
        .inc();
    let outcome = SubmitOutcome::Failed {
        hash: None,
        code: ErrorCode::RateLimited,
        message: format!(
            "the {} has spent its change budget; none of this submit's changes was looked at",
            spent.as_str()
        ),
        retry_after_ms: Some(retry_after_ms),
    };
    std::future::ready((doc, vec![outcome])).boxed()
}

/// The answer to a submit frame that arrives while a budget is spent, found without
/// decoding the frame (`None`: not a submit, or the budgets have room; decode as usual).
pub(super) fn refuse_undecoded(
    app: &AppState,
    session: &Session,
    budget: &mut Budget,
    bytes: &[u8],
) -> Option<Answers> {
    let identity = session.identity()?;
    let (retry, spent) = app
        .budgets
        .check(budget, &identity.tenant, &identity.account, now_ms())
        .err()?;
    // A document of another tenant or a bad id goes the usual way (its own error).
    let doc = DocId::parse(peek::submit_doc(bytes)?)
        .ok()
        .filter(|d| d.tenant() == &identity.tenant)?;
    Some(refusal(app, doc, retry, spent))
}

/// Admits a decoded submit of `changes` changes and charges them, or refuses it (a frame
/// whose header `refuse_undecoded` could not read).
pub(super) fn admit(
    app: &AppState,
    session: &Session,
    budget: &mut Budget,
    doc: &DocId,
    changes: usize,
) -> Result<(), Answers> {
    let Some(identity) = session.identity() else {
        return Ok(());
    };
    let now = now_ms();
    let budgets = &app.budgets;
    if let Err((retry, spent)) = budgets.check(budget, &identity.tenant, &identity.account, now) {
        return Err(refusal(app, doc.clone(), retry, spent));
    }
    budgets.queued(budget, &identity.tenant, &identity.account, changes, now);
    Ok(())
}

/// Charges the extra cost of the rejections among a submit's answers.
pub(super) fn answered(
    app: &AppState,
    session: &Session,
    budget: &mut Budget,
    outcomes: &[SubmitOutcome],
) {
    let Some(identity) = session.identity() else {
        return;
    };
    let rejected = outcomes
        .iter()
        .filter(|o| matches!(o, SubmitOutcome::Reject { .. }))
        .count();
    app.budgets.rejected(
        budget,
        &identity.tenant,
        &identity.account,
        rejected,
        now_ms(),
    );
}

/// Admits a signal and charges its unit, or refuses it with a non-fatal `rate_limited`
/// error naming its doc, with `retry_after_ms` (docs/PROTOCOL.md, Signals).
pub(super) fn admit_signal(
    app: &AppState,
    session: &Session,
    budget: &mut Budget,
    doc: &DocId,
) -> Result<(), Box<ServerFrame>> {
    let Some(identity) = session.identity() else {
        return Ok(());
    };
    let now = now_ms();
    let budgets = &app.budgets;
    if let Err((retry, spent)) = budgets.check(budget, &identity.tenant, &identity.account, now) {
        return Err(Box::new(ServerFrame::Error {
            code: ErrorCode::RateLimited.as_str().to_owned(),
            message: format!(
                "the {} has spent its work budget; the signal was not sent",
                spent.as_str()
            ),
            doc: Some(doc.to_string()),
            fatal: false,
            hash: None,
            retry_after_ms: Some(retry),
            id: None,
        }));
    }
    budgets.queued(budget, &identity.tenant, &identity.account, 1, now);
    Ok(())
}

/// Admits a directory request and charges its units, or refuses it with a non-fatal
/// `rate_limited` error naming its id, with `retry_after_ms`.
pub(super) fn admit_request(
    app: &AppState,
    session: &Session,
    budget: &mut Budget,
    request: &Action,
) -> Result<(), Box<ServerFrame>> {
    let Some(identity) = session.identity() else {
        return Ok(());
    };
    let now = now_ms();
    let budgets = &app.budgets;
    if let Err((retry, spent)) = budgets.check(budget, &identity.tenant, &identity.account, now) {
        let mut frame = super::directory::refusal(
            super::directory::request_id(request).unwrap_or(0),
            ErrorCode::RateLimited.as_str(),
            format!(
                "the {} has spent its work budget; the request was not looked at",
                spent.as_str()
            ),
        );
        if let ServerFrame::Error { retry_after_ms, .. } = &mut frame {
            *retry_after_ms = Some(retry);
        }
        return Err(Box::new(frame));
    }
    let units = super::directory::units(request);
    budgets.queued(budget, &identity.tenant, &identity.account, units, now);
    Ok(())
}
