//! A change that only writes down what has lapsed (`doc::lapse::write_lapses`) changes no
//! right: every reader already takes the entry as it stands at its own time. So anyone may
//! write it, the server's lapse pass included; anything else in the entry keeps its rules.

use crate::model::conversation::Member;

/// Whether `after` is `before` with some of its lapsed grants (at server time `now`)
/// written down, and nothing else changed.
pub(super) fn only_lapses(now: i64, before: &Member, after: &Member) -> bool {
    let mut expected = before.clone();
    let role_lapsed = before.role_until.is_some_and(|t| t <= now);
    if role_lapsed && after.role_until.is_none() {
        expected.role = before.role_after.unwrap_or(before.role);
        expected.role_until = None;
        expected.role_after = None;
    }
    for (permission, until) in &before.overrides_until {
        if *until <= now && !after.overrides.contains_key(permission) {
            expected.overrides.remove(permission);
            expected.overrides_until.remove(permission);
        }
    }
    expected != *before && expected == *after
}
