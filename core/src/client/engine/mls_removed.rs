//! Other accounts' devices the directory removed (docs/E2EE.md, "Every leaf is a registered
//! device"): a device removed from the directory leaves every group it is in at that group's
//! next commit, whoever makes it (the server refuses a commit that leaves it in,
//! `mls_keeps_removed_device`). This account's removed devices come with its own list
//! (`mls_devices`); those of the other accounts with a device in this device's groups are
//! asked on every connection, on `refresh_devices` and after such a refusal, one
//! `list_devices` each, `PEERS_LISTED_MAX` at a time; a commit refused for keeping one waits
//! for the answers and is made again. A group holding one owes its removal like a departed member's
//! (`mls_owed`): its head commits it, a send commits it first, and every commit this device
//! builds carries it (`commit_part`).

use crate::client::engine::ClientEngine;

/// At most this many other accounts are asked per connection (or `refresh_devices`); the
/// next asks the following ones, round the list: a device with many contacts costs the
/// directory a bounded number of requests each time.
pub const PEERS_LISTED_MAX: usize = 32;
use crate::e2ee::DeviceIdentity;
use crate::ids::AccountId;
use crate::protocol::ClientFrame;

impl ClientEngine {
    /// Whether the directory's last answer for `device`'s account listed it removed.
    pub(super) fn listed_removed(&self, device: &DeviceIdentity) -> bool {
        let Some(mls) = self.mls.as_ref() else {
            return false;
        };
        if device == mls.device.identity() {
            // This device cannot take itself out; its account's other devices do.
            return false;
        }
        let name = device.device.as_str();
        if device.account == self.config.account {
            return mls.removed.contains(name);
        }
        mls.peers_removed
            .get(&device.account)
            .is_some_and(|r| r.contains(name))
    }

    /// Every device the directory's last answers listed removed, by account and name.
    pub(super) fn listed_removed_names(&self) -> std::collections::BTreeSet<(AccountId, String)> {
        let Some(mls) = self.mls.as_ref() else {
            return std::collections::BTreeSet::new();
        };
        let own = mls
            .removed
            .iter()
            .map(|d| (self.config.account.clone(), d.clone()));
        let peers = mls
            .peers_removed
            .iter()
            .flat_map(|(a, ds)| ds.iter().map(move |d| (a.clone(), d.clone())));
        own.chain(peers).collect()
    }

    /// Asks the directory for the devices of the other accounts with a device in one of
    /// this device's groups (online; one `list_devices` each, none twice while out): the
    /// `PEERS_LISTED_MAX` after those asked last time, round the list.
    pub(super) fn list_peers(&mut self) {
        if !self.online {
            return;
        }
        let me = self.config.account.clone();
        let Some(mls) = self.mls.as_mut() else {
            return;
        };
        let mut peers = std::collections::BTreeSet::new();
        let groups: Vec<Vec<u8>> = mls.device.groups().map(<[u8]>::to_vec).collect();
        for group in &groups {
            for device in mls.device.members(group).unwrap_or_default() {
                if device.account != me {
                    peers.insert(device.account);
                }
            }
        }
        let after: Vec<AccountId> = match &mls.peers_cursor {
            Some(cursor) => peers
                .range::<AccountId, _>((
                    std::ops::Bound::Excluded(cursor),
                    std::ops::Bound::Unbounded,
                ))
                .chain(peers.range::<AccountId, _>(..=cursor))
                .cloned()
                .collect(),
            None => peers.iter().cloned().collect(),
        };
        let asking: Vec<AccountId> = after
            .into_iter()
            .filter(|a| !mls.peers_listing.values().any(|out| out == a))
            .take(PEERS_LISTED_MAX)
            .collect();
        if let Some(last) = asking.last() {
            mls.peers_cursor = Some(last.clone());
        }
        for account in asking {
            let id = mls.request_id();
            let frame = ClientFrame::ListDevices {
                id,
                account: account.to_string(),
            };
            mls.peers_listing.insert(id, account);
            self.out.push(crate::client::engine::Output::Send(frame));
        }
    }

    /// A `devices_changed` signal: the directory changed `account`'s devices (the server
    /// sends it to each conversation of the account when one is removed). This account's
    /// list is asked again (its groups follow it); another account's is asked if a group of
    /// this device holds one of its devices. At most one `list_devices` per account is out,
    /// so the signals of one removal (one per conversation) ask once.
    pub(super) fn on_devices_changed(&mut self, account: AccountId) {
        if !self.online {
            return;
        }
        let me = account == self.config.account;
        let Some(mls) = self.mls.as_mut() else {
            return;
        };
        if me {
            if mls.listing.is_none() {
                let id = mls.request_id();
                mls.listing = Some(id);
                self.out.push(crate::client::engine::Output::Send(
                    ClientFrame::ListDevices {
                        id,
                        account: account.to_string(),
                    },
                ));
            }
            return;
        }
        if mls.peers_listing.values().any(|out| *out == account) {
            return;
        }
        let groups: Vec<Vec<u8>> = mls.device.groups().map(<[u8]>::to_vec).collect();
        let holds = groups.iter().any(|group| {
            mls.device
                .members(group)
                .unwrap_or_default()
                .iter()
                .any(|d| d.account == account)
        });
        if !holds {
            return;
        }
        let id = mls.request_id();
        let frame = ClientFrame::ListDevices {
            id,
            account: account.to_string(),
        };
        mls.peers_listing.insert(id, account);
        self.out.push(crate::client::engine::Output::Send(frame));
    }

    /// `devices` answering [`ClientEngine::list_peers`]: the account's removed devices are
    /// kept, and each group holding one owes its removal. `false`: not such an answer.
    pub(super) fn on_peer_devices(&mut self, id: u64, account: &str, removed: &[String]) -> bool {
        let Some(mls) = self.mls.as_mut() else {
            return false;
        };
        let Some(asked) = mls.peers_listing.remove(&id) else {
            return false;
        };
        if asked.as_str() != account {
            return true;
        }
        let removed: std::collections::BTreeSet<String> = removed.iter().cloned().collect();
        let moved = mls.peers_removed.get(&asked) != Some(&removed);
        if removed.is_empty() {
            mls.peers_removed.remove(&asked);
        } else {
            mls.peers_removed.insert(asked.clone(), removed);
        }
        if moved {
            self.removals_moved(&asked);
        }
        self.listed_all();
        true
    }

    /// Once every answer is in, the commits that waited for them go on.
    fn listed_all(&mut self) {
        let Some(mls) = self.mls.as_mut() else {
            return;
        };
        if mls.peers_listing.is_empty() && !mls.relisting.is_empty() {
            mls.relisting.clear();
            self.advance();
        }
    }

    /// A `list_devices` of [`ClientEngine::list_peers`] was refused: it is asked again at the
    /// next connection. `false`: not one.
    pub(super) fn on_peer_list_refused(&mut self, id: u64) -> bool {
        let ours = self
            .mls
            .as_mut()
            .is_some_and(|m| m.peers_listing.remove(&id).is_some());
        if ours {
            self.listed_all();
        }
        ours
    }

    /// The directory's removed devices of `account` moved: whether a group owes a removal is
    /// found again, and the groups holding a device of `account` are looked at after this
    /// frame (`settle_owed`).
    pub(super) fn removals_moved(&mut self, account: &AccountId) {
        let convs: Vec<_> = self
            .encrypted_convs()
            .into_iter()
            .filter(|c| {
                self.group_devices(c)
                    .is_some_and(|ds| ds.iter().any(|d| &d.account == account))
            })
            .collect();
        let Some(mls) = self.mls.as_mut() else {
            return;
        };
        mls.owes_seen.clear();
        mls.touched.extend(convs);
    }
}
