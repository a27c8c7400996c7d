//! The notification feed (docs/NOTIFICATIONS.md): who is told about a committed
//! message or join request, decided after the commit and off its path.
//!
//! [`start`] installs a [`Notifier`] as the engine's commit observer; a unit calls it once
//! per committed change (`Engine::notify_committed`, in `engine/unit/pipeline.rs`): it copies
//! out the effects that can notify anyone (every new message, a join request, a deletion)
//! and hands them to one worker task through a bounded queue, one event per message whatever
//! the size of the group, never waiting. A full queue folds an ordinary group message into
//! a per-conversation count ([`overflow`]) and drops the rest (counted in
//! `confab_notifications_dropped`). The worker takes up to [`BATCH`] events at a time.
//!
//! Two phases per batch. First the accounts a message addresses (mentioned ones, the
//! author of the message replied to, the other member of a direct conversation, the
//! counterparty of a proposal, the owners and admins of a conversation someone asks to
//! join) get a row each, stored in one write. Then every message of a group or channel
//! fans out to its other active members at the level `all` ([`fanout`]): the batch's
//! messages of one conversation are taken together, its members read a page at a time
//! with their settings' version, and each member's count of new messages is added to one
//! coalesced row per conversation, one statement per page, with one webhook delivery per
//! few hundred recipients.
//!
//! The worker runs after the commit, so a message's conversation (or the message) may be
//! deleted by the time it writes: the store writes a row or delivery carrying a message's
//! text only while the message's row is live, ordered against a concurrent deletion
//! (docs/NOTIFICATIONS.md, "Deleted messages"), and the fan-out skips a deleted
//! conversation.

mod fanout;
mod overflow;
mod parent;
mod prefs;
mod reachable;
pub mod webhook;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use confab_core::doc::read::ConvPrefs;
use confab_core::ids::{AccountId, ConvId, DocTarget, MessageId, TenantId};
use confab_core::model::attachment::mentions_from_json;
use confab_core::model::conversation::{MemberStatus, NotificationLevel};
use confab_core::model::message::{MessageKind, NewMessage};
use confab_core::policy::Effect;
use tokio::sync::mpsc;

use std::sync::Arc;

use crate::engine::{CommitObserver, Engine, WeakEngine};
use crate::metrics::Metrics;
use crate::store::notifications::{Joined, NewNotification, NotificationKind, Quiet, QuietChange};
use crate::store::{NewChange, StoreError};

pub use overflow::FOLDED_MAX;

/// Events waiting for the worker by default (`--notify-queue`); beyond, a commit's events
/// are folded or dropped (counted).
pub const QUEUE: u64 = 16_384;
/// Events the worker decides and stores together.
pub const BATCH: usize = 256;
/// At most this many owners and admins hear of one join request (the first by account id),
/// and this many members of a support thread of one proposal.
pub const ADMINS_MAX: usize = 50;
/// How long a batch waits for unavailable storage before it is given up (counted).
const OUTAGE_MAX: Duration = Duration::from_secs(600);
/// The first and the longest pause between two attempts at a batch during an outage.
const OUTAGE_PAUSE_MIN: Duration = Duration::from_millis(250);
const OUTAGE_PAUSE_MAX: Duration = Duration::from_secs(5);

/// Something a commit did that may notify someone.
#[derive(Debug)]
pub(crate) enum Event {
    Posted {
        tenant: TenantId,
        conv: ConvId,
        message: Box<NewMessage>,
        at: i64,
    },
    /// Ordinary messages that found the queue full, counted per conversation and author.
    Folded(overflow::Folded),
    JoinRequested {
        tenant: TenantId,
        conv: ConvId,
        account: AccountId,
        seq: u64,
        at: i64,
    },
    Deleted {
        tenant: TenantId,
        conv: ConvId,
        message: MessageId,
    },
    /// An account's private document changed: its settings may have made conversations
    /// quiet or not.
    Prefs {
        tenant: TenantId,
        account: AccountId,
    },
    /// A member became active: its stream mark starts now.
    Joined {
        tenant: TenantId,
        conv: ConvId,
        account: AccountId,
    },
}

/// The units' side: hands events to the worker.
#[derive(Debug)]
pub struct Notifier {
    tx: mpsc::Sender<Event>,
    overflow: Arc<overflow::Overflow>,
    metrics: Arc<Metrics>,
}

/// Why the notifier did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the engine has a commit observer already")]
    Observed,
    #[error("webhook client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Whether a conversation's id is a direct conversation's (`d-`) or a support thread's
/// (`s-`; the kind is checked from the projection before anyone is told). Their messages
/// notify their other members one by one, never coalesced.
fn small_id(conv: &ConvId) -> bool {
    conv.as_str().starts_with("d-") || conv.as_str().starts_with("s-")
}

/// Whether a message may address someone beyond the level `all`: it mentions or replies,
/// or it is in a direct conversation or support thread. Only messages that do not may be
/// folded into a count when the queue is full.
fn addresses(conv: &ConvId, message: &NewMessage) -> bool {
    message.mentions.is_some() || message.reply_to.is_some() || small_id(conv)
}

/// A member entry that became a join request (not one already pending being edited).
fn asks(
    before: Option<&confab_core::model::conversation::Member>,
    after: &confab_core::model::conversation::Member,
) -> bool {
    after.status == MemberStatus::Requested
        && before.is_none_or(|b| b.status != MemberStatus::Requested)
}

/// A member entry that became active (joined, accepted, came back).
fn joins(
    before: Option<&confab_core::model::conversation::Member>,
    after: &confab_core::model::conversation::Member,
) -> bool {
    after.status == MemberStatus::Active && before.is_none_or(|b| b.status != MemberStatus::Active)
}

/// Starts the notification worker for `engine` with the default queue and installs its
/// notifier, with the push webhook's sender when `webhook` is given.
pub fn start(engine: &Engine, webhook: Option<webhook::WebhookConfig>) -> Result<(), StartError> {
    start_with(
        engine,
        webhook,
        usize::try_from(QUEUE).unwrap_or(usize::MAX),
    )
}

/// [`start`] with a queue of `queue` events (at least 1). Tasks hold the engine weakly:
/// they end when the engine is dropped.
pub fn start_with(
    engine: &Engine,
    webhook: Option<webhook::WebhookConfig>,
    queue: usize,
) -> Result<(), StartError> {
    let (tx, rx) = mpsc::channel(queue.max(1));
    let overflow = Arc::new(overflow::Overflow::default());
    let notifier = Notifier {
        tx,
        overflow: overflow.clone(),
        metrics: engine.metrics().clone(),
    };
    if !engine.observe_commits(Arc::new(notifier)) {
        return Err(StartError::Observed);
    }
    let hook = webhook.map(|w| webhook::spawn(engine, w)).transpose()?;
    spawn(rx, overflow, engine.downgrade(), hook);
    Ok(())
}

impl CommitObserver for Notifier {
    /// A change was committed: queues what of it may notify someone. O(its effects) and
    /// O(1) in the size of the group, never waits.
    fn committed(&self, change: &NewChange, effects: &[Effect]) {
        let tenant = change.doc.tenant();
        let conv = match change.doc.target() {
            DocTarget::Conv(conv) | DocTarget::Msgs(conv, _) => conv,
            DocTarget::Private(account) => {
                let event = Event::Prefs {
                    tenant: tenant.clone(),
                    account: account.clone(),
                };
                if self.tx.try_send(event).is_err() {
                    self.metrics.notify.dropped.inc();
                }
                return;
            }
            DocTarget::Profile(_) => return,
        };
        for effect in effects {
            let event = match effect {
                Effect::PostMessage(message) => Event::Posted {
                    tenant: tenant.clone(),
                    conv: conv.clone(),
                    message: message.clone(),
                    at: change.accepted_at,
                },
                Effect::AddMember { before, after } if asks(before.as_ref(), after) => {
                    Event::JoinRequested {
                        tenant: tenant.clone(),
                        conv: conv.clone(),
                        account: after.account.clone(),
                        seq: change.seq,
                        at: change.accepted_at,
                    }
                }
                Effect::UpdateMember { before, after, .. } if asks(Some(before), after) => {
                    Event::JoinRequested {
                        tenant: tenant.clone(),
                        conv: conv.clone(),
                        account: after.account.clone(),
                        seq: change.seq,
                        at: change.accepted_at,
                    }
                }
                Effect::AddMember { before, after } if joins(before.as_ref(), after) => {
                    Event::Joined {
                        tenant: tenant.clone(),
                        conv: conv.clone(),
                        account: after.account.clone(),
                    }
                }
                Effect::UpdateMember { before, after, .. } if joins(Some(before), after) => {
                    Event::Joined {
                        tenant: tenant.clone(),
                        conv: conv.clone(),
                        account: after.account.clone(),
                    }
                }
                Effect::DeleteMessage(message) => Event::Deleted {
                    tenant: tenant.clone(),
                    conv: conv.clone(),
                    message: message.id.clone(),
                },
                _ => continue,
            };
            let Err(full) = self.tx.try_send(event) else {
                continue;
            };
            // The queue is full (or the worker gone): fold what can be counted.
            let folded = match full.into_inner() {
                Event::Posted {
                    tenant,
                    conv,
                    message,
                    at,
                } if !addresses(&conv, &message) => {
                    self.overflow
                        .fold(&tenant, &conv, &message.author, &message.id, at)
                }
                _ => false,
            };
            match folded {
                true => self.metrics.notify.folded.inc(),
                false => self.metrics.notify.dropped.inc(),
            };
        }
    }
}

fn spawn(
    mut rx: mpsc::Receiver<Event>,
    overflow: Arc<overflow::Overflow>,
    engine: WeakEngine,
    hook: Option<Arc<webhook::Hook>>,
) {
    tokio::spawn(async move {
        let mut prefs = prefs::Prefs::default();
        let mut events = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                n = rx.recv_many(&mut events, BATCH) => if n == 0 { break },
                () = overflow.wake.notified() => {}
            }
            events.extend(overflow.take().into_iter().map(Event::Folded));
            if events.is_empty() {
                continue;
            }
            let Some(engine) = engine.upgrade() else {
                break;
            };
            run_batch(
                &engine,
                hook.as_deref(),
                &mut prefs,
                std::mem::take(&mut events),
            )
            .await;
        }
    });
}

/// Waits out unavailable storage: `true` to try again (after a pause that grows from
/// [`OUTAGE_PAUSE_MIN`] to [`OUTAGE_PAUSE_MAX`]), `false` once [`OUTAGE_MAX`] has passed
/// since `started`.
async fn wait_out(
    engine: &Engine,
    started: std::time::Instant,
    pause: &mut Duration,
    e: &StoreError,
) -> bool {
    if started.elapsed() >= OUTAGE_MAX {
        return false;
    }
    engine.metrics().notify.deferred.inc();
    tracing::debug!(error = %e, "notifications wait for the storage");
    tokio::time::sleep(*pause).await;
    *pause = (*pause * 2).min(OUTAGE_PAUSE_MAX);
    true
}

/// Decides and stores one batch of events. While the storage is unavailable (down, full,
/// a lost connection) the work is kept and tried again, with backoff, for up to
/// [`OUTAGE_MAX`]: the addressed rows from the start (storing them is idempotent: one row
/// per account and source), the fan-out from the first page not yet stored (adding to a
/// count is not idempotent). Meanwhile later events wait in the queue (beyond it they are
/// folded or dropped and counted). Any other error loses only its own event or page
/// (`confab_notifications_failed_total`).
async fn run_batch(
    engine: &Engine,
    hook: Option<&webhook::Hook>,
    prefs: &mut prefs::Prefs,
    events: Vec<Event>,
) {
    let started = std::time::Instant::now();
    let mut pause = OUTAGE_PAUSE_MIN;
    let groups = loop {
        match try_addressed(engine, hook, &events).await {
            Ok(groups) => break groups,
            Err(e) if wait_out(engine, started, &mut pause, &e).await => {}
            Err(e) => {
                engine.metrics().notify.failed.inc_by(events.len() as u64);
                tracing::warn!(error = %e, events = events.len(), "notifications given up after an outage");
                return;
            }
        }
    };
    for mut group in groups {
        loop {
            match fanout::run(engine, hook, prefs, &mut group).await {
                Ok(()) => break,
                Err(e) if e.is_unavailable() => {
                    if !wait_out(engine, started, &mut pause, &e).await {
                        engine.metrics().notify.failed.inc();
                        tracing::warn!(error = %e, conv = %group.conv, "fan-out given up after an outage");
                        break;
                    }
                }
                Err(e) => {
                    engine.metrics().notify.failed.inc();
                    tracing::warn!(error = %e, conv = %group.conv, "fan-out not computed");
                    break;
                }
            }
        }
    }
}

/// The first phase of a batch: the addressed rows, stored in one write, and the messages
/// to fan out, grouped by conversation in commit order. `Err` only if the storage was
/// unavailable (the phase is to be tried again); an event that fails for another reason is
/// counted and skipped.
async fn try_addressed(
    engine: &Engine,
    hook: Option<&webhook::Hook>,
    events: &[Event],
) -> Result<Vec<fanout::Group>, StoreError> {
    let mut rows = Vec::new();
    let mut groups = fanout::Groups::default();
    let mut joined = Vec::new();
    let mut quiet = Vec::new();
    for event in events {
        let result = match event {
            Event::Posted {
                tenant,
                conv,
                message,
                at,
            } => posted(engine, tenant, conv, message, *at, &mut rows)
                .await
                .map(|addressed| {
                    if let Some(addressed) = addressed {
                        groups.post(tenant, conv, fanout::Post::one(message, *at, addressed));
                    }
                }),
            Event::Folded(f) => {
                groups.post(&f.tenant, &f.conv, fanout::Post::folded(f));
                Ok(())
            }
            Event::JoinRequested {
                tenant,
                conv,
                account,
                seq,
                at,
            } => join_requested(engine, tenant, conv, account, *seq, *at, &mut rows).await,
            Event::Deleted {
                tenant,
                conv,
                message,
            } => engine
                .store()
                .forget_notified(tenant, conv, message)
                .await
                .map(drop),
            Event::Prefs { tenant, account } => {
                prefs_changed(engine, tenant, account, &groups, &mut quiet).await
            }
            Event::Joined {
                tenant,
                conv,
                account,
            } => {
                joined.push(Joined {
                    tenant: tenant.clone(),
                    conv: conv.clone(),
                    account: account.clone(),
                    already: groups.so_far(tenant, conv),
                });
                Ok(())
            }
        };
        match result {
            Err(e) if e.is_unavailable() => return Err(e),
            Err(e) => {
                engine.metrics().notify.failed.inc();
                tracing::warn!(error = %e, "notification not computed");
            }
            Ok(()) => {}
        }
    }
    // Before the batch's posts reach their streams (the next phase): `already` counts
    // those of them that came first.
    match engine.store().join_streams(&joined).await {
        Err(e) if e.is_unavailable() => return Err(e),
        Err(e) => {
            engine.metrics().notify.failed.inc_by(joined.len() as u64);
            tracing::warn!(error = %e, "stream marks of new members not stored");
        }
        Ok(()) => {}
    }
    match engine.store().set_quiet(&quiet).await {
        Err(e) if e.is_unavailable() => return Err(e),
        Err(e) => {
            engine.metrics().notify.failed.inc_by(quiet.len() as u64);
            tracing::warn!(error = %e, "settings' changes not stored");
        }
        Ok(()) => {}
    }
    if rows.is_empty() {
        return Ok(groups.into_vec());
    }
    match engine.store().insert_notifications(&rows).await {
        Ok(new) => {
            engine.metrics().notify.created.inc_by(new.len() as u64);
            if let Some(hook) = hook {
                webhook::enqueue(engine, hook, &rows, &new).await;
            }
            Ok(groups.into_vec())
        }
        Err(e) if e.is_unavailable() => Err(e),
        Err(e) => {
            engine.metrics().notify.failed.inc_by(rows.len() as u64);
            tracing::warn!(error = %e, rows = rows.len(), "notifications not stored");
            Ok(groups.into_vec())
        }
    }
}

/// Who a new message addresses, each once, in order of precedence: mentioned, replied
/// to, proposed to, written to directly. Never the author. Answers the accounts it
/// addressed (whatever their settings: they are not counted again by the fan-out), or
/// `None` in a direct conversation or support thread, which does not fan out.
async fn posted(
    engine: &Engine,
    tenant: &TenantId,
    conv: &ConvId,
    message: &NewMessage,
    at: i64,
    rows: &mut Vec<NewNotification>,
) -> Result<Option<BTreeSet<AccountId>>, StoreError> {
    let store = engine.store();
    let mut to: BTreeMap<AccountId, NotificationKind> = BTreeMap::new();
    let mut add = |account: AccountId, kind: NotificationKind| {
        if account != message.author {
            to.entry(account).or_insert(kind);
        }
    };
    // Already checked by validation; a malformed list notifies nobody rather than failing.
    if let Some(json) = &message.mentions {
        for account in mentions_from_json(json).unwrap_or_default() {
            add(account, NotificationKind::Mention);
        }
    }
    if let Some(reply_to) = &message.reply_to {
        if let Some(author) = store.author_of(tenant, conv, reply_to).await? {
            add(author, NotificationKind::Reply);
        }
    }
    // Only direct conversations and support threads notify their other members one by
    // one; their ids say which they may be, the projection says which they are.
    let kind = match small_id(conv) {
        true => store
            .conversation(tenant, conv)
            .await?
            .map(|c| c.kind)
            .unwrap_or_default(),
        false => String::new(),
    };
    let small = kind == "direct" || kind == "support";
    let proposal = message.kind == MessageKind::Proposal;
    if small && (proposal || kind == "direct") {
        let members = store
            .active_members(tenant, conv, false, ADMINS_MAX)
            .await?;
        let kind = match proposal {
            true => NotificationKind::Proposal,
            false => NotificationKind::Direct,
        };
        for account in members {
            add(account, kind);
        }
    }
    if !to.is_empty() {
        if let Some(parent) = parent::of(engine, tenant, conv).await? {
            let readers =
                parent::active_in(engine, tenant, &parent, to.keys().cloned().collect()).await?;
            to.retain(|account, _| readers.contains(account));
        }
    }
    let preview = crate::engine::projection::preview(match message.body.is_empty() {
        true => message.caption.as_deref().unwrap_or_default(),
        false => &message.body,
    });
    let addressed: BTreeSet<AccountId> = to.keys().cloned().collect();
    for (account, kind) in to {
        if !reads(engine, tenant, conv, &account).await?
            || !wants(engine, tenant, conv, &account, kind, at).await
        {
            continue;
        }
        rows.push(NewNotification {
            tenant: tenant.clone(),
            account,
            kind,
            conv: conv.clone(),
            source: message.id.to_string(),
            message: Some(message.id.clone()),
            actor: message.author.clone(),
            preview: preview.clone(),
            created_at: at,
        });
    }
    Ok((!small).then_some(addressed))
}

/// An account's settings changed: each conversation they make quiet now gets its entry
/// frozen as it stands (what comes while quiet is not counted), each that is no longer
/// quiet thawed, each whose mute got a new end re-timed. Compared with the frozen marks as
/// stored, so computing it twice changes nothing.
async fn prefs_changed(
    engine: &Engine,
    tenant: &TenantId,
    account: &AccountId,
    groups: &fanout::Groups,
    out: &mut Vec<Quiet>,
) -> Result<(), StoreError> {
    let now = crate::engine::now_ms();
    let convs = engine
        .private_data(tenant, account)
        .await
        .map(|p| p.convs)
        .unwrap_or_default();
    let frozen: BTreeMap<ConvId, Option<i64>> = engine
        .store()
        .quiet_marks(tenant, account)
        .await?
        .into_iter()
        .collect();
    let mut change = |conv: &ConvId, change: QuietChange| {
        out.push(Quiet {
            tenant: tenant.clone(),
            account: account.clone(),
            conv: conv.clone(),
            already: groups.so_far(tenant, conv),
            change,
        })
    };
    for (conv, prefs) in &convs {
        let quiet = !wanted(Some(prefs), NotificationKind::Message, now);
        // A level below `all` is quiet for good; a mute until its end.
        let until = match prefs.notifications.unwrap_or(NotificationLevel::All) {
            NotificationLevel::All => prefs.muted_until,
            _ => None,
        };
        // A frozen entry whose mute ran out is still frozen until the stream's next step
        // (nothing came since): thawing it now skips the muted time's messages all the same.
        let live = frozen.get(conv).map(|u| u.is_none_or(|u| u > now));
        match (live, quiet) {
            (None, true) => change(conv, QuietChange::Freeze { until }),
            (Some(false), true) => {
                change(conv, QuietChange::Thaw);
                change(conv, QuietChange::Freeze { until });
            }
            (Some(true), true) if frozen.get(conv) != Some(&until) => {
                change(conv, QuietChange::Until { until })
            }
            (Some(_), false) => change(conv, QuietChange::Thaw),
            _ => {}
        }
    }
    for conv in frozen.keys() {
        if !convs.contains_key(conv) {
            change(conv, QuietChange::Thaw);
        }
    }
    Ok(())
}

async fn join_requested(
    engine: &Engine,
    tenant: &TenantId,
    conv: &ConvId,
    account: &AccountId,
    seq: u64,
    at: i64,
    rows: &mut Vec<NewNotification>,
) -> Result<(), StoreError> {
    let admins = engine
        .store()
        .active_members(tenant, conv, true, ADMINS_MAX)
        .await?;
    for admin in admins {
        if admin == *account
            || !wants(
                engine,
                tenant,
                conv,
                &admin,
                NotificationKind::JoinRequest,
                at,
            )
            .await
        {
            continue;
        }
        rows.push(NewNotification {
            tenant: tenant.clone(),
            account: admin,
            kind: NotificationKind::JoinRequest,
            conv: conv.clone(),
            source: format!("join/{account}/{seq}"),
            message: None,
            actor: account.clone(),
            preview: String::new(),
            created_at: at,
        });
    }
    Ok(())
}

/// Whether `account` reads the conversation now (an active member): a mention of someone
/// outside, or removed, tells them nothing.
async fn reads(
    engine: &Engine,
    tenant: &TenantId,
    conv: &ConvId,
    account: &AccountId,
) -> Result<bool, StoreError> {
    let membership = engine.store().membership(tenant, conv, account).await?;
    Ok(membership.is_some_and(|(_, status)| status == MemberStatus::Active.as_str()))
}

/// The account's own settings for the conversation (its private document).
async fn wants(
    engine: &Engine,
    tenant: &TenantId,
    conv: &ConvId,
    account: &AccountId,
    kind: NotificationKind,
    now: i64,
) -> bool {
    let private = engine.private_data(tenant, account).await;
    wanted(private.as_ref().and_then(|p| p.convs.get(conv)), kind, now)
}

/// The conversations whose `message` entries `account`'s settings keep out of its feed and
/// unread count now (`none`, `mentions`, muted): the feed's reads take them
/// (`Outboxes::notification_page`). No private document: none.
pub async fn quiet(
    engine: &Engine,
    tenant: &TenantId,
    account: &AccountId,
    now: i64,
) -> Vec<ConvId> {
    let Some(private) = engine.private_data(tenant, account).await else {
        return Vec::new();
    };
    private
        .convs
        .iter()
        .filter(|(_, prefs)| !wanted(Some(prefs), NotificationKind::Message, now))
        .map(|(conv, _)| conv.clone())
        .collect()
}

/// The rule (docs/NOTIFICATIONS.md, "Settings"): `none` wants nothing; `mentions` wants
/// mentions and replies only; `all` (the default) wants everything, among it every new
/// message of a group or channel (`Message`), except that while the conversation is muted
/// only mentions and replies get through. Muted means `muted_until` is in the future (by
/// server time, `now`), or `muted` is set without a `muted_until`.
pub fn wanted(prefs: Option<&ConvPrefs>, kind: NotificationKind, now: i64) -> bool {
    let addressed = matches!(kind, NotificationKind::Mention | NotificationKind::Reply);
    let level = prefs
        .and_then(|p| p.notifications)
        .unwrap_or(NotificationLevel::All);
    let muted = prefs.is_some_and(|p| p.is_muted(now));
    match level {
        NotificationLevel::None => false,
        NotificationLevel::Mentions => addressed,
        NotificationLevel::All => addressed || !muted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::{
        change, conv_doc, conv_row, message_change, p_conv, p_member, room, with, Seqs,
    };

    /// The worker's batch for a message of `acme/room` by alice that mentions bob, computed
    /// (as the worker does) after the commits so far.
    async fn notify_of(engine: &Engine, id: &str) {
        let mut message = NewMessage::text(
            MessageId::new(id).expect("message"),
            AccountId::new("alice").expect("account"),
            format!("{id} marker"),
            1_000,
        );
        message.mentions = Some(r#"["bob"]"#.into());
        let event = Event::Posted {
            tenant: TenantId::new("acme").expect("tenant"),
            conv: ConvId::new("room").expect("conv"),
            message: Box::new(message),
            at: 1_000,
        };
        run_batch(engine, None, &mut prefs::Prefs::default(), vec![event]).await;
    }

    /// A message committed in the batch that deletes its conversation, and one committed
    /// before that batch: the worker gets to both after the deletion and writes nothing of
    /// either; bob's feed (what REST lists) stays empty. A message of a live conversation
    /// notifies him (the same batch, before the deletion).
    #[tokio::test]
    async fn the_worker_writes_nothing_of_a_deleted_conversation() {
        let store: Arc<dyn crate::store::Store> = Arc::new(
            crate::store::sqlite::SqliteStore::memory()
                .await
                .expect("store"),
        );
        store.migrate().await.expect("migrate");
        let mut seqs = Seqs::default();
        let bob = p_member("acme", "room", "bob", "member", "active");
        room(store.as_ref(), &mut seqs, vec![bob]).await;
        let cd = conv_doc("acme", "room");
        let post = |seqs: &mut Seqs, id: &str| {
            message_change(seqs, "acme", "room", id, "alice", 1_000, id)
        };
        store
            .commit(&[post(&mut seqs, "before"), post(&mut seqs, "live")])
            .await
            .expect("posts");
        let engine = Engine::new(
            store.clone(),
            Arc::new(Metrics::new()),
            crate::engine::EngineConfig::default(),
        );
        let (tenant, bob) = (
            TenantId::new("acme").expect("tenant"),
            AccountId::new("bob").expect("account"),
        );
        notify_of(&engine, "live").await;
        let feed = store
            .notification_page(&tenant, &bob, None, false, 10, &[])
            .await
            .expect("feed");
        assert_eq!(feed.len(), 1, "{feed:?}");
        assert_eq!(feed[0].preview, "live marker");

        let seq = seqs.next(&cd);
        let mut deleted = conv_row("acme", "room", "group", None, 100);
        deleted.lifecycle = "deleted".into();
        store
            .commit(&[
                post(&mut seqs, "same"),
                with(change(&cd, seq, "alice"), vec![p_conv(deleted)]),
            ])
            .await
            .expect("a post and the deletion");
        notify_of(&engine, "same").await;
        notify_of(&engine, "before").await;
        let feed = store
            .notification_page(&tenant, &bob, None, false, 10, &[])
            .await
            .expect("feed");
        let shown: Vec<(Option<&str>, &str)> = feed
            .iter()
            .map(|n| {
                (
                    n.message.as_ref().map(MessageId::as_str),
                    n.preview.as_str(),
                )
            })
            .collect();
        assert_eq!(shown, [(Some("live"), "")], "the deletion cleared the rest");
    }

    fn prefs(level: Option<NotificationLevel>, muted: bool, until: Option<i64>) -> ConvPrefs {
        ConvPrefs {
            muted,
            muted_until: until,
            notifications: level,
            ..ConvPrefs::default()
        }
    }

    #[test]
    fn only_plain_group_messages_may_be_folded() {
        let id = |s: &str| MessageId::new(s).expect("message id");
        let author = AccountId::new("alice").expect("account");
        let plain = NewMessage::text(id("m1"), author, "hello", 1);
        let group = ConvId::new("team").expect("conv");
        assert!(!addresses(&group, &plain));
        let mut mention = plain.clone();
        mention.mentions = Some(r#"["bob"]"#.into());
        assert!(addresses(&group, &mention));
        let mut reply = plain.clone();
        reply.reply_to = Some(id("m0"));
        assert!(addresses(&group, &reply));
        for conv in ["d-0123", "s-0123"] {
            assert!(
                addresses(&ConvId::new(conv).expect("conv"), &plain),
                "{conv}"
            );
        }
    }

    #[test]
    fn levels_and_mutes_decide() {
        use NotificationKind::*;
        let now = 1_000;
        assert!(wanted(None, Direct, now));
        assert!(wanted(None, JoinRequest, now));
        let none = prefs(Some(NotificationLevel::None), false, None);
        assert!(!wanted(Some(&none), Mention, now));
        let mentions = prefs(Some(NotificationLevel::Mentions), false, None);
        assert!(wanted(Some(&mentions), Mention, now));
        assert!(wanted(Some(&mentions), Reply, now));
        assert!(!wanted(Some(&mentions), Direct, now));
        assert!(!wanted(Some(&mentions), Proposal, now));
        let muted = prefs(None, true, None);
        assert!(!wanted(Some(&muted), Direct, now));
        assert!(wanted(Some(&muted), Mention, now));
        let until_later = prefs(None, false, Some(now + 1));
        assert!(!wanted(Some(&until_later), JoinRequest, now));
        let expired = prefs(None, true, Some(now));
        assert!(wanted(Some(&expired), Direct, now));
        // The level `all`: every message, unless muted (until a future instant) or lower.
        assert!(wanted(None, Message, now));
        assert!(wanted(
            Some(&prefs(Some(NotificationLevel::All), false, None)),
            Message,
            now
        ));
        assert!(!wanted(Some(&until_later), Message, now));
        assert!(wanted(
            Some(&prefs(None, false, Some(now - 1))),
            Message,
            now
        ));
        assert!(
            wanted(Some(&expired), Message, now),
            "muted_until now is over"
        );
        assert!(!wanted(Some(&muted), Message, now));
        assert!(!wanted(Some(&mentions), Message, now));
        assert!(!wanted(Some(&none), Message, now));
    }
}
