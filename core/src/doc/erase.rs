//! Clearing an account's own documents for its erasure (docs/OPERATIONS.md, "Account
//! erasure"): one tagged transaction each, through the acceptor like any intent.

use automerge::transaction::Transactable;
use automerge::{Automerge, ChangeHash, ReadDoc, ROOT};

use super::read::get_map;
use super::schema::keys::{AVATAR, BIO, CONTACTS, CONVS, DISPLAY_NAME, DRAFTS, SCHEDULED, STATUS};
use super::write::transact;
use super::{DocError, IntentTag};

/// Removes every field of a profile a person wrote (name, avatar, bio, status); its kind
/// stays. `None`: nothing was left to remove.
pub fn erase_profile(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
) -> Result<Option<ChangeHash>, DocError> {
    transact(doc, tag, now_ms, |tx| {
        for key in [DISPLAY_NAME, AVATAR, BIO, STATUS] {
            if tx.get(ROOT, key)?.is_some() {
                tx.delete(ROOT, key)?;
            }
        }
        Ok(())
    })
}

/// Removes every entry of a private document's maps (contacts, per-conversation settings,
/// drafts, scheduled messages); the maps themselves are the document's layout and stay.
pub fn erase_private(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
) -> Result<Option<ChangeHash>, DocError> {
    transact(doc, tag, now_ms, |tx| {
        for top in [CONTACTS, CONVS, DRAFTS, SCHEDULED] {
            let Some(map) = get_map(&*tx, &ROOT, top) else {
                continue;
            };
            let keys: Vec<String> = tx.keys(&map).collect();
            for key in keys {
                tx.delete(&map, key.as_str())?;
            }
        }
        Ok(())
    })
}
