//! Temporary roles and overrides at their lapse (docs/POLICY.md, "Temporary roles and
//! overrides"). Every reader takes a member entry as it stands at its own time, so rights end
//! on time without this; what this adds is a change at the lapse that writes it down, so the
//! membership feed pushes it, the projection (REST lists, `memberships`) shows it and
//! webhooks and devices see a change like any other.
//!
//! The timer is the scheduler's hint (`schedule_hints`): a commit that writes an expiry
//! first marks the conversation document due at it (`hints`, before the commit is sent, so
//! an acked grant always has its hint); the scheduler's pass claims it (one node of a
//! cluster), writes the lapse through the conversation's unit as the service author
//! [`LAPSE_AUTHOR`], and keeps the hint for the next expiry.

use std::collections::BTreeMap;

use confab_core::doc::lapse::write_lapses;
use confab_core::ids::{AccountId, DocId, DocTarget};
use confab_core::model::conversation::Conversation;
use confab_core::policy::{Author, Effect};

use super::{Engine, SubmitOutcome};
use crate::store::schedule::Claim;
use crate::store::StoreError;

/// The service account a lapse is written as (the change log's and audit's author).
pub const LAPSE_AUTHOR: &str = "confab-lapses";

/// When something an accepted change granted for a while lapses, per conversation
/// document: the earliest expiry it wrote in an active member's entry.
pub(crate) fn hints<'a>(
    changes: impl Iterator<Item = (&'a DocId, &'a [Effect], i64)>,
) -> BTreeMap<String, i64> {
    let mut due: BTreeMap<String, i64> = BTreeMap::new();
    for (doc, effects, now) in changes {
        let lapse = effects
            .iter()
            .filter_map(|e| match e {
                Effect::AddMember { after, .. } | Effect::UpdateMember { after, .. } => {
                    after.is_active().then(|| after.next_lapse(now)).flatten()
                }
                _ => None,
            })
            .min();
        if let Some(at) = lapse {
            let slot = due.entry(doc.to_string()).or_insert(at);
            *slot = (*slot).min(at);
        }
    }
    due
}

/// The next lapse of an active member's grant after `now`.
fn next_lapse(conv: &Conversation, now: i64) -> Option<i64> {
    conv.members
        .values()
        .filter(|m| m.is_active())
        .filter_map(|m| m.next_lapse(now))
        .min()
}

/// What one conversation's pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lapsed {
    Written,
    Nothing,
    /// Not decided (storage, shutdown): tried again later.
    Transient,
}

impl Engine {
    /// Writes down what lapsed in the claimed conversation by `now`, then keeps its hint
    /// for the next expiry (or drops it).
    pub(super) async fn settle_lapses(
        &self,
        claim: &Claim,
        doc: &DocId,
        now: i64,
    ) -> Result<Lapsed, StoreError> {
        let DocTarget::Conv(conv) = doc.target() else {
            return Ok(Lapsed::Nothing);
        };
        let lapsed_by = |c: &Conversation| {
            c.members
                .values()
                .any(|m| m.is_active() && m.next_lapse(i64::MIN).is_some_and(|t| t <= now))
        };
        let due = self.conversation(doc.tenant(), conv).await;
        if !due.as_ref().is_some_and(lapsed_by) {
            let next = due.and_then(|c| next_lapse(&c, now));
            self.store()
                .finish_scheduled(&claim.doc, claim.gen, next)
                .await?;
            return Ok(Lapsed::Nothing);
        }
        let author = AccountId::new(LAPSE_AUTHOR)
            .map_err(|e| StoreError::Corrupt(format!("lapse author: {e}")))?;
        let written = self
            .write(
                doc.clone(),
                Author::service(author),
                Box::new(move |d, tag| write_lapses(d, tag, now)),
            )
            .await;
        let lapsed = match written {
            SubmitOutcome::Ack { .. } => Lapsed::Written,
            SubmitOutcome::Reject { code, reason, .. } => {
                // A deleted conversation, say: readers still take the entry at their time.
                tracing::info!(%doc, code = code.as_str(), %reason, "lapse not written");
                Lapsed::Nothing
            }
            SubmitOutcome::Failed { message, .. } => {
                tracing::warn!(%doc, %message, "lapse not written; tried again");
                return Ok(Lapsed::Transient);
            }
        };
        let next = self
            .conversation(doc.tenant(), conv)
            .await
            .and_then(|c| next_lapse(&c, now));
        self.store()
            .finish_scheduled(&claim.doc, claim.gen, next)
            .await?;
        Ok(lapsed)
    }
}
