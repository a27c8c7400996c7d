//! Nodes of a cluster on one Postgres learn what the others committed: every commit
//! notifies channel `confab_changes` with `<doc> <first seq> <last seq> <commit ms>` per
//! document (migration 0006), delivered at commit in commit order. This node listens on
//! one connection of its own and hands each notification to the unit of the document, if
//! that unit is in memory; the unit reads the change log after what it holds and pushes it
//! to its subscribers (`unit::remote`). A node that has no unit for a document ignores it:
//! it will load the document fresh when someone needs it.
//!
//! A lost listening connection loses notifications: the node connects again at once and
//! every unit in memory re-reads the log of every document it holds or serves (a resync).
//! While it cannot connect, the node reports not ready (`/readyz`,
//! `confab_cluster_listening`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use confab_core::ids::DocId;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::Notify;

use super::Engine;

/// The channel every commit notifies (migration 0006).
pub(crate) const CHANNEL: &str = "confab_changes";

/// How long the listener waits before connecting again after a failure.
const RECONNECT_PAUSE: Duration = Duration::from_millis(250);

/// What another node committed to one document, as a notification says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Committed {
    /// The first seq the commit took (1: the document's first change; a new bucket part).
    pub first_seq: u64,
    pub last_seq: u64,
    /// When it committed, by the database's clock (ms since the Unix epoch).
    pub commit_ms: i64,
}

/// Parses `<doc> <first> <last> <commit ms>`; `None` for anything else.
pub(crate) fn parse(payload: &str) -> Option<(DocId, Committed)> {
    let mut parts = payload.split(' ');
    let doc = DocId::parse(parts.next()?).ok()?;
    let first_seq = parts.next()?.parse().ok()?;
    let last_seq = parts.next()?.parse().ok()?;
    let commit_ms = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((
        doc,
        Committed {
            first_seq,
            last_seq,
            commit_ms,
        },
    ))
}

/// What waits for one unit: the newest commit notified per document (coalesced: a unit
/// that falls behind reads the log once for many notifications, and the inbox never holds
/// more than one entry per document), and whether it must re-read everything.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    waiting: Mutex<Waiting>,
    wake: Notify,
}

#[derive(Debug, Default)]
pub(crate) struct Waiting {
    pub docs: HashMap<DocId, Committed>,
    /// The listener lost notifications: re-read every document.
    pub resync: bool,
    /// Documents to re-read whatever they hold (a catch-up that failed).
    pub recheck: Vec<DocId>,
}

impl Inbox {
    pub fn note(&self, doc: DocId, committed: Committed) {
        if let Ok(mut waiting) = self.waiting.lock() {
            let entry = waiting.docs.entry(doc).or_insert(committed);
            let first_seq = entry.first_seq.min(committed.first_seq);
            if committed.last_seq > entry.last_seq {
                *entry = committed;
            }
            entry.first_seq = first_seq;
        }
        self.wake.notify_one();
    }

    pub fn recheck(&self, doc: DocId) {
        if let Ok(mut waiting) = self.waiting.lock() {
            if !waiting.recheck.contains(&doc) {
                waiting.recheck.push(doc);
            }
        }
        self.wake.notify_one();
    }

    pub fn resync(&self) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.resync = true;
        }
        self.wake.notify_one();
    }

    pub fn take(&self) -> Waiting {
        self.waiting
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default()
    }

    /// Resolves once something was noted since the last wait (a note made while nobody
    /// waited is kept).
    pub async fn wait(&self) {
        self.wake.notified().await;
    }
}

/// Whether the node listens (shared with `/readyz`).
#[derive(Debug, Default)]
pub(crate) struct Listening(AtomicBool);

impl Listening {
    pub fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Starts listening for the cluster's commits on a connection of its own, named
/// `confab-listen:<node>` (an operator can find it in `pg_stat_activity`).
///
/// A lost connection is made again at once; only if that fails is the node not ready. A
/// failure of the unavailable class (the database is down) also turns the storage health
/// down first, so `/readyz` answers 503 for the outage and submits fail fast, instead of
/// the listener noticing an outage before the store does.
pub(crate) fn spawn_listener(engine: Engine, options: PgConnectOptions) {
    let name = format!("confab-listen:{}", engine.inner.config.node);
    let options = options.application_name(&name);
    tokio::spawn(async move {
        loop {
            if engine.is_stopping() {
                return;
            }
            match connect(options.clone()).await {
                Ok(listener) => {
                    set_listening(&engine, true);
                    // Whatever was committed while nobody listened is read from the log.
                    engine.metrics().cluster.resyncs.inc();
                    engine.resync_all();
                    tracing::info!(channel = CHANNEL, "cluster listener ready");
                    if let Err(e) = receive(&engine, listener).await {
                        tracing::warn!(error = %e, "cluster listener lost; connecting again");
                    }
                }
                Err(e) => {
                    let _ = engine
                        .health()
                        .observe::<()>(Err(crate::store::StoreError::Database(e)));
                    set_listening(&engine, false);
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                }
            }
        }
    });
}

fn set_listening(engine: &Engine, on: bool) {
    let was = engine.inner.listening.0.swap(on, Ordering::SeqCst);
    engine.metrics().cluster.listening.set(i64::from(on));
    if was && !on {
        tracing::warn!("cluster listener cannot connect: not ready until it listens again");
    }
}

/// A listening connection.
async fn connect(options: PgConnectOptions) -> sqlx::Result<PgListener> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy_with(options);
    let mut listener = PgListener::connect_with(&pool).await?;
    // A lost connection ends `receive` instead of reconnecting inside `try_recv`: the
    // node must know, and resync.
    listener.eager_reconnect(false);
    listener
        .listen_all([CHANNEL, super::feed::CHANNEL, super::signals::CHANNEL])
        .await?;
    Ok(listener)
}

/// Hands every notification to its unit until the connection is lost.
async fn receive(engine: &Engine, mut listener: PgListener) -> sqlx::Result<()> {
    let metrics = engine.metrics().clone();
    while let Some(notification) = listener.try_recv().await? {
        metrics.cluster.notifications.inc();
        if notification.channel() == super::feed::CHANNEL {
            engine.membership_notified(notification.payload());
            continue;
        }
        if notification.channel() == super::signals::CHANNEL {
            engine.remote_signal(notification.payload());
            continue;
        }
        match parse(notification.payload()) {
            Some((doc, committed)) => engine.remote_commit(doc, committed),
            None => tracing::warn!(payload = notification.payload(), "unreadable notification"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_parse_or_are_refused() {
        let (doc, c) = parse("t1/conv/g1 3 5 1700000000000").expect("parses");
        assert_eq!(doc.to_string(), "t1/conv/g1");
        assert_eq!(c.last_seq, 5);
        assert_eq!(c.commit_ms, 1_700_000_000_000);
        for bad in [
            "",
            "t1/conv/g1 3 5",
            "t1/conv/g1 x 5 1",
            "nonsense 1 2 3",
            "t1/conv/g1 1 2 3 4",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
