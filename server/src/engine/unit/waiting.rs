//! Devices that said they wait to be added to a conversation's MLS group (`device_waiting`
//! signals, docs/E2EE.md "Joining"), kept so that a member's device that subscribes later
//! hears of them too: the waiting device and the members' devices need not be online at the
//! same time. Bounded per document; lost when the unit unloads (the waiting device says it
//! again within 30 s, `confab_core::client::WAIT_AGAIN_MS`).

use std::collections::HashMap;

use confab_core::ids::{AccountId, DocId};
use confab_core::protocol::{ServerFrame, SignalKind};

/// At most this many waiting devices are kept per conversation (the most recent).
pub(crate) const WAITING_MAX: usize = 64;

#[derive(Debug, Default)]
pub(super) struct WaitingDevices {
    /// Per document: (account, device) and a counter for recency.
    heard: HashMap<DocId, HashMap<(AccountId, String), u64>>,
    tick: u64,
}

impl WaitingDevices {
    pub(super) fn heard(&mut self, doc: &DocId, account: &AccountId, device: &str) {
        self.tick += 1;
        let devices = self.heard.entry(doc.clone()).or_default();
        devices.insert((account.clone(), device.to_owned()), self.tick);
        if devices.len() > WAITING_MAX {
            if let Some(oldest) = devices
                .iter()
                .min_by_key(|(_, tick)| **tick)
                .map(|(k, _)| k.clone())
            {
                devices.remove(&oldest);
            }
        }
    }

    /// The signals a new subscriber gets: every waiting device kept, the most recent first.
    pub(super) fn snapshot(&self, doc: &DocId) -> Vec<ServerFrame> {
        let Some(devices) = self.heard.get(doc) else {
            return Vec::new();
        };
        let mut all: Vec<_> = devices.iter().collect();
        all.sort_unstable_by_key(|(_, tick)| std::cmp::Reverse(**tick));
        all.into_iter()
            .map(|((account, device), _)| ServerFrame::Signal {
                doc: doc.to_string(),
                from: account.to_string(),
                kind: SignalKind::DeviceWaiting,
                data: Some(device.clone()),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_recent_are_kept_and_replayed_first() {
        let doc = DocId::parse("acme/conv/c").expect("doc id");
        let mut waiting = WaitingDevices::default();
        for i in 0..WAITING_MAX + 3 {
            let account = AccountId::new(format!("a{i}")).expect("account id");
            waiting.heard(&doc, &account, "phone");
        }
        let frames = waiting.snapshot(&doc);
        assert_eq!(frames.len(), WAITING_MAX);
        let ServerFrame::Signal { from, .. } = &frames[0] else {
            panic!("a signal");
        };
        assert_eq!(from, &format!("a{}", WAITING_MAX + 2));
        assert!(waiting
            .snapshot(&DocId::parse("acme/conv/d").expect("doc id"))
            .is_empty());
    }
}
