//! Threads follow their parent (docs/POLICY.md, "Rules"): a thread's unit asks its
//! parent's unit where an account stands there, and whether the message a new thread hangs
//! on exists; the parent's unit tells the threads below it in memory when its policy moves
//! (here, or on another node: every commit to its `conv` document another node notifies),
//! so they ask again and end the subscriptions of who is out.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use confab_core::accept::ReadDenied;
use confab_core::ids::{AccountId, ConvId, DocId, MessageId, TenantId};
use confab_core::model::conversation::Conversation;
use confab_core::policy::{Author, ParentMessage, Standing};
use tokio::sync::oneshot;

use super::{Engine, Job, UnitKey};

/// How long a thread's unit waits for its parent's unit to answer (a cycle of units
/// waiting on each other ends here instead of hanging).
pub(crate) const PARENT_TIMEOUT: Duration = Duration::from_secs(2);

/// How many parents a list asks at once.
const PARENT_READS: usize = 16;

/// Where accounts stand in a conversation, read at its policy version.
#[derive(Debug, Clone)]
pub(crate) struct Standings {
    pub policy_seq: u64,
    pub standings: Vec<Standing>,
}

/// Why a read of a conversation's document is not answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadRefusal {
    #[error(transparent)]
    Denied(#[from] ReadDenied),
    /// A thread's parent did not answer where the reader stands there.
    #[error("{0}")]
    Unavailable(String),
}

/// Which threads in memory hang on which conversation (this node only).
#[derive(Default)]
pub(crate) struct Registry {
    children: Mutex<HashMap<(TenantId, ConvId), HashSet<ConvId>>>,
}

impl Registry {
    pub fn add(&self, tenant: &TenantId, parent: &ConvId, child: &ConvId) {
        if let Ok(mut map) = self.children.lock() {
            map.entry((tenant.clone(), parent.clone()))
                .or_default()
                .insert(child.clone());
        }
    }

    pub fn remove(&self, tenant: &TenantId, parent: &ConvId, child: &ConvId) {
        if let Ok(mut map) = self.children.lock() {
            let key = (tenant.clone(), parent.clone());
            if let Some(set) = map.get_mut(&key) {
                set.remove(child);
                if set.is_empty() {
                    map.remove(&key);
                }
            }
        }
    }

    fn of(&self, tenant: &TenantId, parent: &ConvId) -> Vec<ConvId> {
        self.children
            .lock()
            .ok()
            .and_then(|map| {
                map.get(&(tenant.clone(), parent.clone()))
                    .map(|s| s.iter().cloned().collect())
            })
            .unwrap_or_default()
    }
}

impl Engine {
    /// Where `accounts` stand in `conv` (active there and in every conversation above it),
    /// from its unit, with its policy version.
    pub(crate) async fn standings(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        accounts: Vec<AccountId>,
    ) -> Result<Standings, String> {
        let (reply, rx) = oneshot::channel();
        let key = UnitKey::Conv(tenant.clone(), conv.clone());
        let asked = async {
            self.dispatch(key, Job::Standing { accounts, reply })
                .await
                .map_err(|e| e.to_string())?;
            rx.await
                .map_err(|_| "the parent's unit stopped".to_owned())?
        };
        tokio::time::timeout(PARENT_TIMEOUT, asked)
            .await
            .map_err(|_| format!("{conv} did not answer in time"))?
    }

    /// Whether `message` exists in `conv` and is not deleted, from its unit (which answers
    /// once everything submitted to it before is committed, so a thread created right after
    /// its message finds it).
    pub(crate) async fn parent_message(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        message: MessageId,
    ) -> Result<ParentMessage, String> {
        let (reply, rx) = oneshot::channel();
        let key = UnitKey::Conv(tenant.clone(), conv.clone());
        let asked = async {
            self.dispatch(key, Job::ParentMessage { message, reply })
                .await
                .map_err(|e| e.to_string())?;
            rx.await
                .map_err(|_| "the parent's unit stopped".to_owned())?
        };
        tokio::time::timeout(PARENT_TIMEOUT, asked)
            .await
            .map_err(|_| format!("{conv} did not answer in time"))?
    }

    /// May `author` read `doc` of the accepted conversation `conv`: the one read rule
    /// (`confab_core::accept::may_read`) every read outside a unit applies (bucket lists,
    /// REST). A thread's parent is asked only for who is an active member of the thread.
    pub async fn may_read(
        &self,
        conv: Option<&Conversation>,
        doc: &DocId,
        author: &Author,
    ) -> Result<(), ReadRefusal> {
        let (account, service) = (&author.account, author.service);
        confab_core::accept::may_read(conv, doc, account, service, None)?;
        let Some(conv) = conv.filter(|_| !service) else {
            return Ok(());
        };
        let parent = self
            .thread_standing(doc.tenant(), conv, account)
            .await
            .map_err(ReadRefusal::Unavailable)?;
        Ok(confab_core::accept::may_read(
            Some(conv),
            doc,
            account,
            service,
            parent,
        )?)
    }

    /// Which of `parents` `account` may not read the threads of (not an active member
    /// there, or the parent did not answer: a list leaves such threads out rather than
    /// failing). One question per parent, a few at a time.
    pub async fn closed_parents(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        parents: HashSet<ConvId>,
    ) -> HashSet<ConvId> {
        use futures_util::StreamExt;
        let asks = parents.into_iter().map(|parent| async move {
            let asked = self.standings(tenant, &parent, vec![account.clone()]).await;
            let open = asked.is_ok_and(|a| a.standings.first().is_some_and(|s| s.is_active()));
            (!open).then_some(parent)
        });
        futures_util::stream::iter(asks)
            .buffer_unordered(PARENT_READS)
            .filter_map(|closed| async move { closed })
            .collect()
            .await
    }

    /// Where `account` stands in the parent of `conv`, when `conv` is a thread.
    pub(crate) async fn thread_standing(
        &self,
        tenant: &TenantId,
        conv: &Conversation,
        account: &AccountId,
    ) -> Result<Option<Standing>, String> {
        let Some(link) = conv.meta.as_ref().and_then(|m| m.thread.as_ref()) else {
            return Ok(None);
        };
        let answer = self
            .standings(tenant, &link.parent, vec![account.clone()])
            .await?;
        Ok(answer.standings.first().copied())
    }

    /// `conv`'s policy may have moved: the threads below it that are in memory ask again.
    /// Never starts a unit (a thread not in memory asks when it is loaded).
    pub(crate) fn parent_moved(&self, tenant: &TenantId, conv: &ConvId) {
        for child in self.inner.threads.of(tenant, conv) {
            let key = UnitKey::Conv(tenant.clone(), child);
            let tx = self
                .inner
                .units
                .lock()
                .ok()
                .and_then(|units| units.get(&key).map(|u| u.tx.clone()));
            if let Some(tx) = tx {
                // A full queue drops it: that unit is busy, and its next subscriber check
                // or write asks the parent anyway once its cache is cleared below.
                if tx.try_send(Job::ParentMoved).is_err() {
                    tracing::warn!(?key, "a thread missed its parent's move");
                }
            }
        }
    }

    pub(crate) fn threads(&self) -> &Registry {
        &self.inner.threads
    }
}
