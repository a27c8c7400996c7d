//! Changes an accepted change calls for, written by the server as its author: a message
//! into an archived conversation reopens it, a client's new request reopens its closed
//! support thread with a new lead (`policy::reopen`). The host submits the follow-up right
//! after the change that called for it, through the same acceptance, so it is decided by
//! the same policy, lands in the same commit and reaches every subscriber as any change.
//! Every write path (a WebSocket client of any kind, REST, a scheduled post) shares it.

use automerge::ActorId;
use sha2::{Digest, Sha256};

use super::{AcceptError, Acceptor};
use crate::doc::{write, IntentTag};
use crate::ids::{AccountId, DocId, DocTarget, TenantId};
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
    /// The follow-up that `effects`, just accepted in `doc` from `author`, call for, built
    /// on the accepted state (`None`: none). Submit it as `author` before anything else.
    pub fn follow_up(
        &mut self,
        doc: &DocId,
        author: &Author,
        effects: &[Effect],
        now_ms: i64,
    ) -> Result<Option<FollowUp>, AcceptError> {
        if !matches!(doc.target(), DocTarget::Msgs(..)) {
            return Ok(None);
        }
        let Some(reopen) = self
            .conversation()
            .and_then(|conv| reopen::after(conv, author, effects, now_ms))
        else {
            return Ok(None);
        };
        let DocTarget::Msgs(conv, _) = doc.target() else {
            return Ok(None);
        };
        let conv_doc = DocId::conv(doc.tenant(), conv);
        let actor = host_actor(doc.tenant(), &author.account);
        let mut fork = self.fork(&conv_doc, actor)?;
        let tag = IntentTag::new(format!("reopen-{now_ms}"), "reopen");
        let by = &author.account;
        let written = match &reopen {
            Reopen { lead: Some(lead) } => {
                write::reopen_with_lead(&mut fork, &tag, now_ms, by, lead)
            }
            Reopen { lead: None } => write::set_lifecycle(
                &mut fork,
                &tag,
                now_ms,
                crate::model::conversation::Lifecycle::Active,
                by,
            ),
        };
        if !matches!(written, Ok(Some(_))) {
            return Ok(None);
        }
        Ok(fork.get_last_local_change().map(|change| FollowUp {
            doc: conv_doc,
            bytes: change.raw_bytes().to_vec(),
        }))
    }
}
