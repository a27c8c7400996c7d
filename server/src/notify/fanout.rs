//! The level `all`: every new message of a group or channel notifies every other active
//! member who wants it (`super::wanted` with `NotificationKind::Message`), coalesced.
//!
//! The cost is the worker's, never the commit's, and it does not grow with the group: the
//! batch's messages of one conversation are taken together ([`Groups`]) and stored as one
//! step of the conversation's stream (one row, plus a mark per author or addressed account;
//! migration 0047). Each member's entry and count are derived from the stream and its mark
//! when its feed is read (`store::notifications`), its settings applied then. Only with a
//! push webhook are the members read, [`PAGE`] at a time with their private documents'
//! seqs, for those not connected who want the messages (settings from the worker's cache,
//! `super::prefs`): one delivery per page part of at most `webhook::RECIPIENTS_MAX`
//! recipients, merged into one still waiting for the same part
//! (`webhook::enqueue_coalesced`).

use std::collections::{BTreeSet, HashMap};

use confab_core::ids::{AccountId, ConvId, MessageId, TenantId};
use confab_core::model::conversation::Lifecycle;
use confab_core::model::message::NewMessage;

use super::overflow::Folded;
use super::prefs::Prefs;
use super::webhook;
use crate::engine::Engine;
use crate::store::notifications::{
    Coalesced, CoalescedRow, Mark, NotificationKind, Skip, StreamPost, StreamRow,
};
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
    /// The stream once the posts are stored in it (not again on a retry).
    stream: Option<StreamRow>,
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
                stream: None,
            });
            self.groups.len() - 1
        });
        if let Some(g) = self.groups.get_mut(i) {
            g.posts.push(post);
        }
    }

    /// The messages of `conv` so far in the batch: a member that joins after them does
    /// not count them.
    pub fn so_far(&self, tenant: &TenantId, conv: &ConvId) -> i64 {
        self.index
            .get(&(tenant.clone(), conv.clone()))
            .and_then(|i| self.groups.get(*i))
            .map_or(0, |g| g.posts.iter().map(|p| p.count).sum())
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

/// What a group's posts add to its stream: how many, the newest, and per author or
/// addressed account how many of them it is not told of and the newest it is.
fn stream_post(g: &Group) -> Option<StreamPost> {
    let newest = g.posts.last()?;
    let mut skipped: BTreeSet<&AccountId> = BTreeSet::new();
    for post in &g.posts {
        skipped.insert(&post.author);
        skipped.extend(post.addressed.iter());
    }
    let skips = skipped
        .into_iter()
        .map(|account| {
            let theirs = |p: &&Post| p.author == *account || p.addressed.contains(account);
            let count = g.posts.iter().filter(theirs).map(|p| p.count).sum();
            let newest = g
                .posts
                .iter()
                .rev()
                .find(|p| !theirs(p))
                .map(|p| (p.message.clone(), p.author.clone(), p.at));
            Skip {
                account: account.clone(),
                count,
                newest,
            }
        })
        .collect();
    Some(StreamPost {
        tenant: g.tenant.clone(),
        conv: g.conv.clone(),
        message: newest.message.clone(),
        actor: newest.author.clone(),
        count: g.posts.iter().map(|p| p.count).sum(),
        created_at: newest.at,
        skips,
    })
}

/// Fans out a group's posts from where it stopped: first its stream (one write, whatever
/// the size of the group: the members' entries are derived when read), then, only with a
/// push webhook, the members' pages for those who want a push. `Err` when the storage is
/// unavailable (the caller waits and calls again, and it goes on from the first step not
/// done) or a setting could not be read for that reason; a page whose deliveries fail for
/// another reason is counted and skipped.
pub(crate) async fn run(
    engine: &Engine,
    hook: Option<&webhook::Hook>,
    prefs: &mut Prefs,
    g: &mut Group,
) -> Result<(), StoreError> {
    let store = engine.store();
    let metrics = &engine.metrics().notify;
    // A deleted conversation tells no one of its messages (nor lists its entries). The
    // stream carries no text, so a deletion that commits after this read leaves at most a
    // count behind, which reads no longer show.
    let row = store.conversation(&g.tenant, &g.conv).await?;
    if row.is_some_and(|c| c.lifecycle == Lifecycle::Deleted.as_str()) {
        return Ok(());
    }
    if g.stream.is_none() {
        let Some(post) = stream_post(g) else {
            return Ok(());
        };
        match store.advance_stream(&post).await {
            Ok(stored) => {
                metrics.created.inc();
                g.stream = Some(stored);
            }
            Err(e) if e.is_unavailable() => return Err(e),
            Err(e) => {
                metrics.failed.inc();
                tracing::warn!(error = %e, conv = %g.conv, "stream not stored");
                return Ok(());
            }
        }
    }
    let (Some(hook), Some(stream)) = (hook, g.stream) else {
        return Ok(());
    };
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
            // Authors, addressed accounts and accounts connected here skip the settings
            // read altogether: none of them is pushed this.
            if engine.has_client(&g.tenant, account)
                || g.posts
                    .iter()
                    .all(|p| p.author == *account || p.addressed.contains(account))
            {
                continue;
            }
            let mine = prefs.of(engine, &g.tenant, account, *seq, &g.conv).await?;
            if let Some((_, newest)) = tally(&g.posts, account, mine.as_ref()) {
                rows.push(Coalesced {
                    tenant: g.tenant.clone(),
                    account: account.clone(),
                    conv: g.conv.clone(),
                    message: newest.message.clone(),
                    actor: newest.author.clone(),
                    count: 0,
                    created_at: newest.at,
                });
            }
        }
        if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
            // The push carries the whole count, as the feed derives it: one read of the
            // page's marks.
            let marks: HashMap<AccountId, Mark> = store
                .stream_marks(&g.tenant, &g.conv, &first.account, &last.account)
                .await?
                .into_iter()
                .collect();
            let stored: Vec<CoalescedRow> = rows
                .iter()
                .enumerate()
                .map(|(index, r)| CoalescedRow {
                    id: stream.id,
                    index,
                    count: marks
                        .get(&r.account)
                        .copied()
                        .unwrap_or_default()
                        .count(stream.n),
                })
                .filter(|r| r.count > 0)
                .collect();
            let since = g.posts.iter().map(|p| p.first_at).min().unwrap_or(0);
            let part = webhook::Part {
                tenant: &g.tenant,
                conv: &g.conv,
                page: g.page,
                since,
            };
            webhook::enqueue_coalesced(engine, hook, &part, &rows, &stored).await;
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
    fn a_step_skips_each_authors_and_addressed_accounts_own() {
        let t = TenantId::new("acme").expect("tenant");
        let c = ConvId::new("team").expect("conv");
        let mut groups = Groups::default();
        groups.post(&t, &c, post("m1", "alice", 10, &[]));
        groups.post(&t, &c, post("m2", "bob", 20, &[]));
        groups.post(&t, &c, post("m3", "alice", 30, &["bob"]));
        assert_eq!(groups.so_far(&t, &c), 3);
        let group = groups.into_vec().remove(0);
        let step = stream_post(&group).expect("a step");
        assert_eq!((step.count, step.message.as_str()), (3, "m3"));
        let shape: Vec<(&str, i64, Option<&str>)> = step
            .skips
            .iter()
            .map(|s| {
                (
                    s.account.as_str(),
                    s.count,
                    s.newest.as_ref().map(|n| n.0.as_str()),
                )
            })
            .collect();
        // Alice's newest to count is bob's m2; bob wrote m2 and m3 addressed him: m1.
        assert_eq!(shape, [("alice", 2, Some("m2")), ("bob", 2, Some("m1"))]);
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
