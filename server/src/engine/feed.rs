//! The account's membership feed (docs/PROTOCOL.md, "Memberships"): which connections of
//! this node follow which account's memberships, and telling them when one changes.
//!
//! Where a change comes from depends on the store. On Postgres every node (the committing
//! one included) learns it from channel `confab_members`, which a trigger on `memberships`
//! notifies inside the commit (migration 0009): one ordered stream for the whole cluster, and
//! a node that lost its listening connection re-lists every feed it holds (`resync`). On
//! SQLite (one node) the unit tells the feed after its commit, from the batch's projection
//! rows. Either way a change costs one lookup per affected account and a push per
//! connection of that account: never the group's size, never the other connections.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use confab_core::ids::{AccountId, ConvId, TenantId};
use confab_core::model::conversation::{MemberStatus, Role};
use confab_core::protocol::{encode_server, Membership, ServerFrame};
use tokio::sync::{mpsc, Notify};

use super::Control;
use crate::net::frame::binary_frame;
use crate::net::outlet::{Outlet, Refused};
use crate::store::{NewChange, Projection};

/// The channel the `memberships` trigger notifies (migration 0009).
pub(crate) const CHANNEL: &str = "confab_members";

/// A connection that follows its account's memberships.
#[derive(Debug, Clone)]
pub struct FeedConn {
    pub id: u64,
    pub outlet: Arc<Outlet>,
    pub control: mpsc::Sender<Control>,
}

type Key = (TenantId, AccountId);

/// The connections following memberships on this node, by account.
#[derive(Debug, Default)]
pub(crate) struct Feeds {
    by_account: Mutex<HashMap<Key, Vec<FeedConn>>>,
    /// Accounts that got their first connection here (`true`) or lost their last one
    /// (`false`) since the last [`Feeds::take_comings`], the last word per account; `None`
    /// until someone tracks them (the push webhook's directory in a cluster), so nothing
    /// piles up unread.
    comings: Mutex<Option<HashMap<Key, bool>>>,
    comings_noted: Notify,
}

impl Feeds {
    pub fn follow(&self, tenant: TenantId, account: AccountId, conn: FeedConn) {
        if let Ok(mut map) = self.by_account.lock() {
            let key = (tenant, account);
            let conns = map.entry(key.clone()).or_default();
            conns.retain(|c| c.id != conn.id);
            let first = conns.is_empty();
            conns.push(conn);
            if first {
                self.note_coming(key, true);
            }
        }
    }

    /// Starts tracking which accounts come and go; answers the accounts connected now.
    /// (Taken under the map's lock, so no coming or going falls between the two.)
    pub fn track_comings(&self) -> Vec<Key> {
        let Ok(map) = self.by_account.lock() else {
            return Vec::new();
        };
        if let Ok(mut comings) = self.comings.lock() {
            *comings = Some(HashMap::new());
        }
        map.keys().cloned().collect()
    }

    /// The accounts that came (`true`) or went (`false`) since the last call.
    pub fn take_comings(&self) -> HashMap<Key, bool> {
        self.comings
            .lock()
            .ok()
            .and_then(|mut c| c.as_mut().map(std::mem::take))
            .unwrap_or_default()
    }

    /// Resolves once an account came or went since the last wait.
    pub async fn comings_noted(&self) {
        self.comings_noted.notified().await;
    }

    /// Called with the map's lock held.
    fn note_coming(&self, key: Key, came: bool) {
        let tracked = self
            .comings
            .lock()
            .ok()
            .and_then(|mut c| {
                c.as_mut().map(|c| {
                    c.insert(key, came);
                })
            })
            .is_some();
        if tracked {
            self.comings_noted.notify_one();
        }
    }

    pub fn has(&self, tenant: &TenantId, account: &AccountId) -> bool {
        self.by_account.lock().is_ok_and(|map| {
            map.get(&(tenant.clone(), account.clone()))
                .is_some_and(|conns| !conns.is_empty())
        })
    }

    pub fn unfollow(&self, tenant: &TenantId, account: &AccountId, conn: u64) {
        if let Ok(mut map) = self.by_account.lock() {
            let key = (tenant.clone(), account.clone());
            if let Some(conns) = map.get_mut(&key) {
                conns.retain(|c| c.id != conn);
                if conns.is_empty() {
                    map.remove(&key);
                    self.note_coming(key, false);
                }
            }
        }
    }

    /// Pushes `m` to every connection of `account` following its memberships here; returns
    /// how many got it. One that cannot take it is told it lags (it reconnects and lists).
    pub fn tell(&self, tenant: &TenantId, account: &AccountId, m: Membership) -> usize {
        let Ok(mut map) = self.by_account.lock() else {
            return 0;
        };
        let Some(conns) = map.get_mut(&(tenant.clone(), account.clone())) else {
            return 0;
        };
        let frame = binary_frame(&encode_server(&ServerFrame::Membership {
            conv: m.conv,
            role: m.role,
            status: m.status,
            seq: m.seq,
        }));
        let mut sent = 0;
        conns.retain(|conn| match conn.outlet.push(&frame) {
            Ok(()) => {
                sent += 1;
                true
            }
            Err(Refused::Lagging) => {
                let _ = conn.control.try_send(Control::FeedLagged);
                false
            }
            Err(Refused::Closed) => false,
        });
        if conns.is_empty() {
            let key = (tenant.clone(), account.clone());
            map.remove(&key);
            self.note_coming(key, false);
        }
        sent
    }

    /// Notifications were lost: every following connection lists its memberships again.
    pub fn resync(&self) {
        if let Ok(map) = self.by_account.lock() {
            for conn in map.values().flatten() {
                let _ = conn.control.try_send(Control::FeedResync);
            }
        }
    }
}

/// The memberships a committed change wrote (its projection rows), as of its seq.
pub(crate) fn changed_by(change: &NewChange) -> Vec<(TenantId, AccountId, Membership)> {
    change
        .projection
        .iter()
        .filter_map(|p| match p {
            Projection::Member {
                tenant,
                conv,
                account,
                role,
                status,
            } => Some((
                tenant.clone(),
                account.clone(),
                Membership {
                    conv: conv.clone(),
                    role: Role::parse(role).ok()?,
                    status: MemberStatus::parse(status).ok()?,
                    seq: change.seq,
                },
            )),
            _ => None,
        })
        .collect()
}

/// Parses `<tenant> <account> <conv> <role> <status> <seq>`; `None` for anything else.
pub(crate) fn parse(payload: &str) -> Option<(TenantId, AccountId, Membership)> {
    let mut parts = payload.split(' ');
    let tenant = TenantId::new(parts.next()?).ok()?;
    let account = AccountId::new(parts.next()?).ok()?;
    let conv = ConvId::new(parts.next()?).ok()?;
    let role = Role::parse(parts.next()?).ok()?;
    let status = MemberStatus::parse(parts.next()?).ok()?;
    let seq = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((
        tenant,
        account,
        Membership {
            conv,
            role,
            status,
            seq,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_parse_or_are_refused() {
        let (tenant, account, m) = parse("t1 bob g1 member removed 7").expect("parses");
        assert_eq!((tenant.as_str(), account.as_str()), ("t1", "bob"));
        assert_eq!(m.conv.as_str(), "g1");
        assert_eq!(
            (m.role, m.status, m.seq),
            (Role::Member, MemberStatus::Removed, 7)
        );
        for bad in [
            "",
            "t1 bob g1 member removed",
            "t1 bob g1 member gone 7",
            "t1 bob g1 chief active 7",
            "t1 bob g1 member active x",
            "t1 bob g1 member active 7 8",
            "t/1 bob g1 member active 7",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
