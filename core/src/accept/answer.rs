//! The proposal a `proposal_response` answers, found before the response is validated: the
//! response moves the proposal's status in the same acceptance (docs/POLICY.md,
//! "Proposals"), so validation checks that move as the response's own effect and the host
//! writes it right after (`accept::follow`).

use automerge::Change;

use super::{parent, AcceptError, Acceptor, Need, Submission};
use crate::doc::read;
use crate::ids::{DocId, DocTarget, MessageId};
use crate::model::message::Message;

impl Acceptor {
    /// The proposal `change` answers, as accepted in one of this conversation's buckets:
    /// `Ok(None)` when it posts no response or the message does not exist, `Err` what the
    /// host must answer first (where the message is, then its bucket).
    pub(super) fn answered(
        &mut self,
        sub: &Submission<'_>,
        change: &Change,
    ) -> Result<Result<Option<Message>, Need>, AcceptError> {
        let DocTarget::Msgs(conv, _) = sub.doc.target() else {
            return Ok(Ok(None));
        };
        let Some(id) = parent::answered_proposal(change) else {
            return Ok(Ok(None));
        };
        if let Some((_, found)) = self.find_message(&id)? {
            return Ok(Ok(Some(found)));
        }
        match sub.answered_bucket {
            None => Ok(Err(Need::MessageBucket { message: id })),
            Some(None) => Ok(Ok(None)),
            Some(Some(bucket)) => {
                let doc = DocId::msgs(sub.doc.tenant(), conv, bucket);
                if let Some(need) = self.touch(&doc) {
                    return Ok(Err(need));
                }
                Ok(Ok(self.find_message(&id)?.map(|(_, m)| m)))
            }
        }
    }

    /// Message `id` in a bucket in memory, with its bucket (staged changes included: a
    /// proposal may be answered in the batch that posted it).
    pub(super) fn find_message(
        &mut self,
        id: &MessageId,
    ) -> Result<Option<(DocId, Message)>, AcceptError> {
        let buckets: Vec<DocId> = self
            .docs
            .keys()
            .filter(|d| matches!(d.target(), DocTarget::Msgs(..)))
            .cloned()
            .collect();
        for doc in buckets {
            self.apply_staged_of(&doc)?;
            let found = self
                .docs
                .get(&doc)
                .and_then(|l| read::read_message_fields(l.accepted.doc(), id));
            if let Some(message) = found {
                return Ok(Some((doc, message)));
            }
        }
        Ok(None)
    }
}
