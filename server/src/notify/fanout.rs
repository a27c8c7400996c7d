//! The level `all`: every new message of a group or channel notifies every other active
//! member who wants it (`super::wanted` with `NotificationKind::Message`), coalesced.
//!
//! The cost is the worker's, never the commit's, and it is paid per conversation and
//! batch, not per message: the batch's messages of one conversation are taken together
//! ([`Groups`]); its members are read [`PAGE`] at a time with their private documents'
//! seqs (one statement per page), their settings come from the worker's cache
//! (`super::prefs`), and each member's count of the messages it wants is added to its one
//! coalesced row of the conversation (one statement per page on Postgres). The webhook
//! gets one delivery per page part of at most `webhook::RECIPIENTS_MAX` recipients, merged
//! into one still waiting for the same part (`webhook::enqueue_coalesced`).

use std::collections::{BTreeSet, HashMap};

use confab_core::ids::{AccountId, ConvId, MessageId, TenantId};
use confab_core::model::conversation::Lifecycle;
use confab_core::model::message::NewMessage;

use super::overflow::Folded;
use super::prefs::Prefs;
use super::webhook;
use crate::engine::Engine;
use crate::store::notifications::{Coalesced, NotificationKind};
use crate::store::StoreError;

/// Members read and stored per statement.
pub const PAGE: usize = 2_000;

/// A message (or messages folded on a full queue) to fan out.
#[derive(Debug, Clone)]
pub(crate) struct Post {
    pub message: MessageId,
    pub author: AccountId,
    /// Messages it stands for (1, or more when folded).
    pub count: i64,
    /// The commit time of the first and of the newest of them.
    pub first_at: i64,
    pub at: i64,
    /// Accounts told of it already as mentioned, replied to, ...: not counted again.
    pub addressed: BTreeSet<AccountId>,
}

impl Post {
    pub fn one(message: &NewMessage, at: i64, addressed: BTreeSet<AccountId>) -> Post {
        Post {
            message: message.id.clone(),
            author: message.author.clone(),
            count: 1,
            first_at: at,
            at,
            addressed,
        }
    }

    pub fn folded(f: &Folded) -> Post {
        Post {
            message: f.message.clone(),
            author: f.author.clone(),
            count: f.count,
            first_at: f.first_at,
            at: f.at,
            addressed: BTreeSet::new(),
        }
    }
}

/// One conversation's posts of a batch, in commit order, and how far its fan-out got.
#[derive(Debug)]
pub(crate) struct Group {
    pub tenant: TenantId,
    pub conv: ConvId,
    pub posts: Vec<Post>,
    /// The last member whose count is stored (the next page starts after it).
    after: Option<AccountId>,
    /// Pages stored so far (names the webhook deliveries' parts).
    page: usize,
}

/// A batch's groups, in the order their conversations first appear.
#[derive(Debug, Default)]
pub(crate) struct Groups {
    index: HashMap<(TenantId, ConvId), usize>,
    groups: Vec<Group>,
}

impl Groups {
    pub fn post(&mut self, tenant: &TenantId, conv: &ConvId, post: Post) {
        let key = (tenant.clone(), conv.clone());
        let i = *self.index.entry(key).or_insert_with(|| {
            self.groups.push(Group {
                tenant: tenant.clone(),
                conv: conv.clone(),
                posts: Vec::new(),
                after: None,
                page: 0,
            });
            self.groups.len() - 1
        });
        if let Some(g) = self.groups.get_mut(i) {
            g.posts.push(post);
        }
    }

    pub fn into_vec(self) -> Vec<Group> {
        self.groups
    }
}

/// What one member is told of a group's posts: how many it wants, and the newest.
fn tally<'a>(
    posts: &'a [Post],
    account: &AccountId,
    prefs: Option<&confab_core::doc::read::ConvPrefs>,
) -> Option<(i64, &'a Post)> {
    let mut count = 0i64;
    let mut newest = None;
    for post in posts {
        if post.author == *account
            || post.addressed.contains(account)
            || !super::wanted(prefs, NotificationKind::Message, post.at)
        {
            continue;
        }
        count = count.saturating_add(post.count);
        newest = Some(post);
    }
    newest.map(|p| (count, p))
}

/// Fans out a group's posts from where it stopped. `Err` when a page could not be read
/// (unavailable storage: the caller waits and calls again, and it goes on from the first
/// page not stored) or a setting could not be read for that reason; a page whose rows
/// fail to store for another reason is counted and skipped.
pub(crate) async fn run(
    engine: &Engine,
    hook: Option<&webhook::Hook>,
    prefs: &mut Prefs,
    g: &mut Group,
) -> Result<(), StoreError> {
    let store = engine.store();
    let metrics = &engine.metrics().notify;
    // A deleted conversation tells no one of its messages. Its coalesced rows carry no
    // text, so a deletion that commits after this read leaves at most a count behind.
    let row = store.conversation(&g.tenant, &g.conv).await?;
    if row.is_some_and(|c| c.lifecycle == Lifecycle::Deleted.as_str()) {
        return Ok(());
    }
    let parent = super::parent::of(engine, &g.tenant, &g.conv).await?;
    loop {
        let members = store
            .fanout_members(&g.tenant, &g.conv, g.after.as_ref(), PAGE)
            .await?;
        let readers = match &parent {
            Some(parent) => {
                let page = members.iter().map(|(account, _)| account.clone()).collect();
                Some(super::parent::active_in(engine, &g.tenant, parent, page).await?)
            }
            None => None,
        };
        let mut rows = Vec::new();
        for (account, seq) in &members {
            if readers.as_ref().is_some_and(|r| !r.contains(account)) {
                continue;
            }
            // Authors and addressed accounts skip the settings read altogether.
            if g.posts
                .iter()
                .all(|p| p.author == *account || p.addressed.contains(account))
            {
                continue;
            }
            let mine = prefs.of(engine, &g.tenant, account, *seq, &g.conv).await?;
            if let Some((count, newest)) = tally(&g.posts, account, mine.as_ref()) {
                rows.push(Coalesced {
                    tenant: g.tenant.clone(),
                    account: account.clone(),
                    conv: g.conv.clone(),
                    message: newest.message.clone(),
                    actor: newest.author.clone(),
                    count,
                    created_at: newest.at,
                });
            }
        }
        if !rows.is_empty() {
            match store.coalesce_notifications(&rows).await {
                Ok(stored) => {
                    metrics.created.inc_by(stored.len() as u64);
                    if let Some(hook) = hook {
                        let since = g.posts.iter().map(|p| p.first_at).min().unwrap_or(0);
                        let part = webhook::Part {
                            tenant: &g.tenant,
                            conv: &g.conv,
                            page: g.page,
                            since,
                        };
                        webhook::enqueue_coalesced(engine, hook, &part, &rows, &stored).await;
                    }
                }
                Err(e) if e.is_unavailable() => return Err(e),
                Err(e) => {
                    metrics.failed.inc_by(rows.len() as u64);
                    tracing::warn!(error = %e, rows = rows.len(), "coalesced notifications not stored");
                }
            }
        }
        g.page += 1;
        match members.last() {
            Some((last, _)) if members.len() == PAGE => g.after = Some(last.clone()),
            _ => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_core::doc::read::ConvPrefs;
    use confab_core::model::conversation::NotificationLevel;

    fn post(id: &str, author: &str, at: i64, addressed: &[&str]) -> Post {
        Post {
            message: MessageId::new(id).expect("message"),
            author: AccountId::new(author).expect("account"),
            count: 1,
            first_at: at,
            at,
            addressed: addressed
                .iter()
                .map(|a| AccountId::new(*a).expect("account"))
                .collect(),
        }
    }

    #[test]
    fn a_member_counts_what_it_wants_of_others_and_not_what_addressed_it() {
        let posts = [
            post("m1", "alice", 10, &[]),
            post("m2", "bob", 20, &[]),
            post("m3", "alice", 30, &["bob"]),
            post("m4", "carol", 40, &[]),
        ];
        let bob = AccountId::new("bob").expect("account");
        let (count, newest) = tally(&posts, &bob, None).expect("told");
        assert_eq!((count, newest.message.as_str()), (2, "m4"));
        let alice = AccountId::new("alice").expect("account");
        let (count, newest) = tally(&posts, &alice, None).expect("told");
        assert_eq!((count, newest.message.as_str()), (2, "m4"));
        // Muted until 25: only what came after counts.
        let muted = ConvPrefs {
            muted_until: Some(25),
            ..ConvPrefs::default()
        };
        let (count, newest) = tally(&posts, &bob, Some(&muted)).expect("told");
        assert_eq!((count, newest.message.as_str()), (1, "m4"));
        let mentions = ConvPrefs {
            notifications: Some(NotificationLevel::Mentions),
            ..ConvPrefs::default()
        };
        assert!(tally(&posts, &bob, Some(&mentions)).is_none());
        let only_own = [post("m1", "bob", 10, &[])];
        assert!(tally(&only_own, &bob, None).is_none());
    }

    #[test]
    fn groups_keep_conversations_apart_in_first_seen_order() {
        let t = TenantId::new("acme").expect("tenant");
        let (a, b) = (
            ConvId::new("a").expect("conv"),
            ConvId::new("b").expect("conv"),
        );
        let mut groups = Groups::default();
        groups.post(&t, &b, post("m1", "x", 1, &[]));
        groups.post(&t, &a, post("m2", "x", 2, &[]));
        groups.post(&t, &b, post("m3", "x", 3, &[]));
        let groups = groups.into_vec();
        let shape: Vec<(&str, usize)> = groups
            .iter()
            .map(|g| (g.conv.as_str(), g.posts.len()))
            .collect();
        assert_eq!(shape, [("b", 2), ("a", 1)]);
    }
}
