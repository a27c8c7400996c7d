//! What this node last relayed of each person's presence in a conversation, so that a new
//! subscriber learns who is here at once instead of after everyone's next refresh (which is a
//! minute or more: docs/PROTOCOL.md, Presence). Only people with a connection subscribed here
//! are kept: an entry goes when the server sends their `offline`.

use std::collections::HashMap;

use confab_core::client::PresenceState;
use confab_core::ids::{AccountId, DocId};
use confab_core::protocol::{ServerFrame, SignalKind};

/// At most this many states go to a new subscriber (the most recently heard): in a large
/// channel the rest arrive with their refreshes.
pub(crate) const PRESENCE_SNAPSHOT_MAX: usize = 200;

#[derive(Debug, Default)]
pub(super) struct PresenceMemory {
    /// Per document and account: the last state relayed and a counter for recency.
    heard: HashMap<DocId, HashMap<AccountId, (PresenceState, u64)>>,
    tick: u64,
}

impl PresenceMemory {
    /// A relayed presence signal; anything but a known state is not remembered.
    pub(super) fn relayed(&mut self, doc: &DocId, from: &AccountId, data: Option<&str>) {
        match data.and_then(PresenceState::parse) {
            Some(PresenceState::Offline) => self.gone(doc, from),
            Some(state) => {
                self.tick += 1;
                self.heard
                    .entry(doc.clone())
                    .or_default()
                    .insert(from.clone(), (state, self.tick));
            }
            None => {}
        }
    }

    /// `account` has no connection subscribed to `doc` here any more.
    pub(super) fn gone(&mut self, doc: &DocId, account: &AccountId) {
        if let Some(states) = self.heard.get_mut(doc) {
            states.remove(account);
            if states.is_empty() {
                self.heard.remove(doc);
            }
        }
    }

    /// Nobody is subscribed to `doc` here any more.
    pub(super) fn forget(&mut self, doc: &DocId) {
        self.heard.remove(doc);
    }

    /// The presence frames a new subscriber `account` gets: the others' last states, the
    /// most recent first, at most `PRESENCE_SNAPSHOT_MAX`.
    pub(super) fn snapshot(&self, doc: &DocId, account: &AccountId) -> Vec<ServerFrame> {
        let Some(states) = self.heard.get(doc) else {
            return Vec::new();
        };
        let mut others: Vec<_> = states.iter().filter(|(a, _)| *a != account).collect();
        others.sort_unstable_by_key(|(_, (_, tick))| std::cmp::Reverse(*tick));
        others
            .into_iter()
            .take(PRESENCE_SNAPSHOT_MAX)
            .map(|(from, (state, _))| ServerFrame::Signal {
                doc: doc.to_string(),
                from: from.to_string(),
                kind: SignalKind::Presence,
                data: Some(state.as_str().to_owned()),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(name: &str) -> AccountId {
        AccountId::new(name).expect("account id")
    }

    fn states(frames: &[ServerFrame]) -> Vec<(String, String)> {
        frames
            .iter()
            .map(|f| match f {
                ServerFrame::Signal { from, data, .. } => {
                    (from.clone(), data.clone().unwrap_or_default())
                }
                other => panic!("not a signal: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_new_subscriber_hears_the_others_last_state_not_its_own() {
        let doc = DocId::parse("acme/conv/c1").expect("id");
        let mut memory = PresenceMemory::default();
        memory.relayed(&doc, &account("bob"), Some("online"));
        memory.relayed(&doc, &account("eve"), Some("online"));
        memory.relayed(&doc, &account("bob"), Some("away"));
        memory.relayed(&doc, &account("alice"), Some("online"));
        memory.relayed(&doc, &account("mallory"), Some("asleep"));
        let heard = states(&memory.snapshot(&doc, &account("alice")));
        assert_eq!(
            heard,
            vec![
                ("bob".into(), "away".into()),
                ("eve".into(), "online".into())
            ]
        );
        memory.relayed(&doc, &account("eve"), Some("offline"));
        memory.gone(&doc, &account("bob"));
        assert!(memory.snapshot(&doc, &account("alice")).is_empty());
        let other = DocId::parse("acme/conv/c2").expect("id");
        assert!(memory.snapshot(&other, &account("zed")).is_empty());
    }

    #[test]
    fn a_snapshot_is_bounded_and_keeps_the_most_recent() {
        let doc = DocId::parse("acme/conv/c1").expect("id");
        let mut memory = PresenceMemory::default();
        for i in 0..PRESENCE_SNAPSHOT_MAX + 50 {
            memory.relayed(&doc, &account(&format!("u{i}")), Some("online"));
        }
        let heard = states(&memory.snapshot(&doc, &account("newcomer")));
        assert_eq!(heard.len(), PRESENCE_SNAPSHOT_MAX);
        let newest = format!("u{}", PRESENCE_SNAPSHOT_MAX + 49);
        assert_eq!(heard[0].0, newest);
        memory.forget(&doc);
        assert!(memory.snapshot(&doc, &account("newcomer")).is_empty());
    }
}
