//! What a change names before it is validated, read from its ops: the parent of a thread
//! being created, the proposal a response answers.

use automerge::legacy::{Key, OpType};
use automerge::{Change, ScalarValue};

use crate::doc::schema::keys;
use crate::ids::{ConvId, MessageId};

/// The conversation a change puts under the `parent` key, if any. Hostile bytes can make
/// Automerge's decoding panic: that is caught here, and validation refuses them right after.
pub(super) fn named_parent(change: &Change) -> Option<ConvId> {
    let expanded =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| change.decode())).ok()?;
    expanded
        .operations
        .iter()
        .find_map(|op| match (&op.key, &op.action) {
            (Key::Map(k), OpType::Put(ScalarValue::Str(s))) if k.as_str() == keys::PARENT => {
                ConvId::new(s.as_str()).ok()
            }
            _ => None,
        })
}

/// The message a change puts under the `parent_message` key, if any (a thread's creation).
pub(super) fn named_message(change: &Change) -> Option<MessageId> {
    let expanded =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| change.decode())).ok()?;
    expanded
        .operations
        .iter()
        .find_map(|op| match (&op.key, &op.action) {
            (Key::Map(k), OpType::Put(ScalarValue::Str(s)))
                if k.as_str() == keys::PARENT_MESSAGE =>
            {
                MessageId::new(s.as_str()).ok()
            }
            _ => None,
        })
}

/// The proposal a change's new `proposal_response` message answers (its `reply_to`), if
/// the change posts one.
pub(super) fn answered_proposal(change: &Change) -> Option<MessageId> {
    // Most changes answer nothing; a canonical change holds its string values as they are
    // (validation refuses any other encoding), so one without the kind's name is not a
    // response and is not decoded.
    let kind = crate::model::message::MessageKind::ProposalResponse.as_str();
    if !change
        .raw_bytes()
        .windows(kind.len())
        .any(|w| w == kind.as_bytes())
    {
        return None;
    }
    let expanded =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| change.decode())).ok()?;
    let put = |key: &str| {
        expanded
            .operations
            .iter()
            .find_map(|op| match (&op.key, &op.action) {
                (Key::Map(k), OpType::Put(ScalarValue::Str(s))) if k.as_str() == key => {
                    Some(s.to_string())
                }
                _ => None,
            })
    };
    if put(keys::KIND)?.as_str() != crate::model::message::MessageKind::ProposalResponse.as_str() {
        return None;
    }
    MessageId::new(put(keys::REPLY_TO)?).ok()
}
