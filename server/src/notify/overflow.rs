//! What the notifier does when its queue is full: an ordinary message of a group or channel
//! (one that mentions and replies to nobody) is folded into a count per conversation and
//! author instead of being dropped, so its readers still hear "n new messages"; the worker
//! takes the counts with its next batch. Folding is O(1) under a short lock and never
//! waits; beyond [`FOLDED_MAX`] distinct conversations and authors a message is dropped
//! (counted in `confab_notifications_dropped`).

use std::collections::HashMap;
use std::sync::Mutex;

use confab_core::ids::{AccountId, ConvId, MessageId, TenantId};
use tokio::sync::Notify;

/// Distinct (conversation, author) counts kept while the queue is full.
pub const FOLDED_MAX: usize = 4_096;

/// Messages of one author in one conversation that found the queue full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Folded {
    pub tenant: TenantId,
    pub conv: ConvId,
    pub author: AccountId,
    /// The newest of them.
    pub message: MessageId,
    pub count: i64,
    /// The commit time of the first and of the newest.
    pub first_at: i64,
    pub at: i64,
}

type Key = (TenantId, ConvId, AccountId);

/// The counts, and the worker's wake-up.
#[derive(Debug, Default)]
pub(crate) struct Overflow {
    folded: Mutex<HashMap<Key, Folded>>,
    pub wake: Notify,
}

impl Overflow {
    /// Counts one message; false when it could not be kept (too many distinct counts, or a
    /// poisoned lock): the caller drops it.
    pub fn fold(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        author: &AccountId,
        message: &MessageId,
        at: i64,
    ) -> bool {
        let Ok(mut folded) = self.folded.lock() else {
            return false;
        };
        let key = (tenant.clone(), conv.clone(), author.clone());
        let full = folded.len() >= FOLDED_MAX;
        match folded.get_mut(&key) {
            Some(f) => {
                f.count = f.count.saturating_add(1);
                f.message = message.clone();
                f.at = at;
            }
            None if full => return false,
            None => {
                folded.insert(
                    key,
                    Folded {
                        tenant: tenant.clone(),
                        conv: conv.clone(),
                        author: author.clone(),
                        message: message.clone(),
                        count: 1,
                        first_at: at,
                        at,
                    },
                );
            }
        }
        drop(folded);
        self.wake.notify_one();
        true
    }

    /// Everything folded so far, oldest first.
    pub fn take(&self) -> Vec<Folded> {
        let mut out: Vec<Folded> = match self.folded.lock() {
            Ok(mut folded) => folded.drain().map(|(_, f)| f).collect(),
            Err(_) => Vec::new(),
        };
        out.sort_by_key(|f| f.first_at);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_per_conversation_and_author_up_to_a_bound() {
        let o = Overflow::default();
        let t = TenantId::new("acme").expect("tenant");
        let c = ConvId::new("team").expect("conv");
        let a = AccountId::new("alice").expect("account");
        let m = |i: usize| MessageId::new(format!("m{i}")).expect("message");
        for i in 0..10 {
            assert!(o.fold(&t, &c, &a, &m(i), i as i64));
        }
        let taken = o.take();
        assert_eq!(taken.len(), 1);
        assert_eq!(
            (
                taken[0].count,
                taken[0].message.as_str(),
                taken[0].first_at,
                taken[0].at
            ),
            (10, "m9", 0, 9)
        );
        assert!(o.take().is_empty(), "taken once");
        for i in 0..FOLDED_MAX {
            let author = AccountId::new(format!("a{i}")).expect("account");
            assert!(o.fold(&t, &c, &author, &m(i), 1));
        }
        let one_more = AccountId::new("late").expect("account");
        assert!(!o.fold(&t, &c, &one_more, &m(0), 1), "bounded");
        assert!(
            o.fold(&t, &c, &AccountId::new("a0").expect("a"), &m(1), 2),
            "known key"
        );
        assert_eq!(o.take().len(), FOLDED_MAX);
    }
}
