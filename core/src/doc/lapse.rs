//! Writing down what has lapsed (docs/POLICY.md, "Temporary roles and overrides"): every
//! reader already takes a member entry as it stands at its own time (`Member::at`); this
//! change makes the document say it too, so the membership feed and projection move at the
//! lapse. The policy takes a change that only does this from anyone (`policy::lapse`).

use automerge::transaction::Transactable;
use automerge::{Automerge, ChangeHash, ReadDoc, ROOT};

use super::read::{get_map, read_members};
use super::schema::keys::{MEMBERS, ROLE, ROLE_AFTER, ROLE_UNTIL};
use super::schema::override_until_key;
use super::write::transact;
use super::{DocError, IntentTag};

/// Rewrites every entry with a role or override lapsed by `now_ms` as it stands then: the
/// role it goes back to, the lapsed overrides and every lapsed expiry removed. `None`:
/// nothing had lapsed.
pub fn write_lapses(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
) -> Result<Option<ChangeHash>, DocError> {
    let lapsed: Vec<_> = read_members(doc)
        .into_values()
        .filter(|m| m.is_active() && m.next_lapse(i64::MIN).is_some_and(|t| t <= now_ms))
        .collect();
    if lapsed.is_empty() {
        return Ok(None);
    }
    transact(doc, tag, now_ms, |tx| {
        let members = get_map(&*tx, &ROOT, MEMBERS).ok_or(DocError::Missing(MEMBERS))?;
        for before in &lapsed {
            let obj = get_map(&*tx, &members, before.account.as_str())
                .ok_or_else(|| DocError::NotApplicable(format!("{} left", before.account)))?;
            let now = before.at(now_ms);
            if before.role_until.is_some() && now.role_until.is_none() {
                tx.put(&obj, ROLE, now.role.as_str())?;
                for key in [ROLE_UNTIL, ROLE_AFTER] {
                    if tx.get(&obj, key)?.is_some() {
                        tx.delete(&obj, key)?;
                    }
                }
            }
            for permission in before.overrides_until.keys() {
                if now.overrides.contains_key(permission) {
                    continue;
                }
                for key in [
                    permission.as_str().to_owned(),
                    override_until_key(*permission),
                ] {
                    if tx.get(&obj, key.as_str())?.is_some() {
                        tx.delete(&obj, key.as_str())?;
                    }
                }
            }
        }
        Ok(())
    })
}
