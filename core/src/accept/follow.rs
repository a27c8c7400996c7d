//! Changes an accepted change calls for, written by the server as its author: a message
//! into an archived conversation reopens it, a client's new request reopens its closed
//! support thread with a new lead (`policy::reopen`), a response to a proposal moves the
//! proposal's status (`accept::answer`). The host submits the follow-ups right after the
//! change that called for them, through the same acceptance, so they are decided by the
//! same policy, land in the same commit and reach every subscriber as any change. Every
//! write path (a WebSocket client of any kind, REST, a scheduled post) shares them.

use automerge::ActorId;
use sha2::{Digest, Sha256};

use super::{AcceptError, Acceptor};
use crate::doc::{write, IntentTag};
use crate::ids::{AccountId, DocId, DocTarget, TenantId};
use crate::model::conversation::Lifecycle;
use crate::policy::reopen::{self, Reopen};
use crate::policy::{Author, Effect};

/// The actor the server writes changes with for `account` (REST intents and follow-ups):
/// one per account, so its seq simply continues in each document.
pub fn host_actor(tenant: &TenantId, account: &AccountId) -> ActorId {
    let digest = Sha256::new()
        .chain_update(b"confab/rest/v1\0")
        .chain_update(tenant.as_str().as_bytes())
        .chain_update(b"\0")
        .chain_update(account.as_str().as_bytes())
        .finalize();
    ActorId::from(&digest[..16])
}

/// A change the server writes after an accepted one: where, and its bytes.
#[derive(Debug, Clone)]
pub struct FollowUp {
    pub doc: DocId,
    pub bytes: Vec<u8>,
}

impl Acceptor {
    /// The follow-ups that `effects`, just accepted in `doc` from `author`, call for, built
    /// on the accepted state. Submit them as `author`, in order, before anything else.
    pub fn follow_up(
        &mut self,
        doc: &DocId,
        author: &Author,
        effects: &[Effect],
        now_ms: i64,
    ) -> Result<Vec<FollowUp>, AcceptError> {
        let DocTarget::Msgs(conv, _) = doc.target() else {
            return Ok(Vec::new());
        };
        let tag = IntentTag::new(format!("follow-{now_ms}"), "follow");
        let actor = host_actor(doc.tenant(), &author.account);
        let mut out = Vec::new();
        // The status a response gives its proposal, in the proposal's bucket.
        let answer = effects.iter().find_map(|e| match e {
            Effect::SetProposalStatus { proposal, to } => Some((proposal.id.clone(), *to)),
            _ => None,
        });
        if let Some((proposal, to)) = answer {
            if let Some((bucket, _)) = self.find_message(&proposal)? {
                let mut fork = self.fork(&bucket, actor.clone())?;
                let written = write::set_proposal_status(&mut fork, &tag, now_ms, &proposal, to);
                out.extend(built(bucket, &fork, written));
            }
        }
        let reopen = self
            .conversation()
            .and_then(|c| reopen::after(c, author, effects, now_ms));
        if let Some(reopen) = reopen {
            let conv_doc = DocId::conv(doc.tenant(), conv);
            let mut fork = self.fork(&conv_doc, actor)?;
            let by = &author.account;
            let written = match &reopen {
                Reopen { lead: Some(lead) } => {
                    write::reopen_with_lead(&mut fork, &tag, now_ms, by, lead)
                }
                Reopen { lead: None } => {
                    write::set_lifecycle(&mut fork, &tag, now_ms, Lifecycle::Active, by)
                }
            };
            out.extend(built(conv_doc, &fork, written));
        }
        Ok(out)
    }
}

/// The change a fork's write made, as a follow-up of `doc` (`None`: it wrote nothing).
fn built(
    doc: DocId,
    fork: &automerge::Automerge,
    written: Result<Option<automerge::ChangeHash>, crate::doc::DocError>,
) -> Option<FollowUp> {
    if !matches!(written, Ok(Some(_))) {
        return None;
    }
    fork.get_last_local_change().map(|change| FollowUp {
        doc,
        bytes: change.raw_bytes().to_vec(),
    })
}
