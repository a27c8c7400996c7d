//! Subscribers: the pushes one received, a follower that moves to another node when its
//! node dies, and the cut of a node's LISTEN connection with the node's recovery.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use confab_core::automerge::Change;
use confab_core::ids::DocId;
use confab_core::protocol::{ClientFrame, SeqChange, ServerFrame};
use confab_e2e::Client;

use crate::cluster_nodes::{cluster_metric, metric, metrics, Nodes};
use crate::cluster_sender::{hash_of, try_connect};
use crate::common::{readyz_until, submit_frame};

/// Pushes of one document a subscriber received: seq → hash; a seq pushed twice with a
/// different change is recorded in `conflicts`.
#[derive(Debug, Default)]
pub struct Received {
    pub seqs: BTreeMap<u64, [u8; 32]>,
    pub conflicts: Vec<u64>,
    pub duplicates: usize,
    /// Other frames about the document (a snapshot, a revocation, an error), which a live
    /// subscriber should not get here; named when seqs are missing.
    pub other: Vec<String>,
}

impl Received {
    pub fn take(&mut self, frame: &ServerFrame, doc: &str) {
        let changes = match frame {
            ServerFrame::Changes { doc: d, changes } if d == doc => changes,
            ServerFrame::Snapshot { doc: d, seq, .. } if d == doc => {
                self.other.push(format!("snapshot at {seq}"));
                return;
            }
            ServerFrame::Revoked { doc: d, code, .. } if d == doc => {
                self.other.push(format!("revoked {code}"));
                return;
            }
            ServerFrame::Error { code, doc: d, .. } if d.as_deref().is_none_or(|d| d == doc) => {
                self.other.push(format!("error {code}"));
                return;
            }
            _ => return,
        };
        self.take_changes(changes);
    }

    fn take_changes(&mut self, changes: &[SeqChange]) {
        for c in changes {
            let Ok(change) = confab_core::automerge::Change::try_from(&c.change[..]) else {
                self.conflicts.push(c.seq);
                continue;
            };
            match self.seqs.insert(c.seq, change.hash().0) {
                Some(before) if before != change.hash().0 => self.conflicts.push(c.seq),
                Some(_) => self.duplicates += 1,
                None => {}
            }
        }
    }

    /// The seq up to which it holds every change (a subscription's `after`).
    pub fn cursor(&self) -> u64 {
        let mut cursor = 0;
        while self.seqs.contains_key(&(cursor + 1)) {
            cursor += 1;
        }
        cursor
    }

    /// Whether it holds every seq 1..=last.
    pub fn complete_to(&self, last: u64) -> bool {
        (1..=last).all(|s| self.seqs.contains_key(&s))
    }
}

/// Where and for how long a follower follows.
#[derive(Debug, Clone)]
pub struct Follow {
    pub urls: Vec<String>,
    pub first: usize,
    pub account: &'static str,
    pub doc: DocId,
    /// It ends once it holds 1..=`until` (0: not known yet; the test sets it).
    pub until: Arc<AtomicU64>,
    pub limit: Duration,
}

/// Follows a document from node `first`; when its connection ends it subscribes on the
/// next node after its cursor, as a client resyncs. Returns what it received and the
/// nodes it moved to.
pub async fn follow_with_failover(plan: Follow) -> (Received, Vec<usize>) {
    let Follow {
        urls,
        first,
        account,
        doc,
        until,
        limit,
    } = plan;
    let text = doc.to_string();
    let deadline = Instant::now() + limit;
    let mut got = Received::default();
    let mut moves = Vec::new();
    let mut node = first;
    let done = |got: &Received| {
        let target = until.load(Ordering::SeqCst);
        target > 0 && got.complete_to(target)
    };
    'connect: while Instant::now() < deadline && !done(&got) {
        let Some(mut client) = try_connect(&urls[node], account).await else {
            node = (node + 1) % urls.len();
            moves.push(node);
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        match client.subscribe(&doc, got.cursor()).await {
            Ok(catch_up) => {
                if let Some((seq, _)) = catch_up.snapshot {
                    got.other.push(format!("catch-up snapshot at {seq}"));
                }
                got.take_changes(&catch_up.changes);
            }
            Err(e) => {
                got.other.push(format!("subscribe on node {node}: {e}"));
                node = (node + 1) % urls.len();
                moves.push(node);
                continue;
            }
        }
        while Instant::now() < deadline && !done(&got) {
            match client.recv(Duration::from_millis(100)).await {
                Ok(frame) => got.take(&frame, &text),
                Err(e) if e.to_string().starts_with("no frame within") => {}
                Err(_) => {
                    node = (node + 1) % urls.len();
                    moves.push(node);
                    continue 'connect;
                }
            }
        }
        client.close().await;
    }
    (got, moves)
}

/// A raw subscriber of one document on one node, and what it received.
pub struct Subscriber {
    client: Client,
    doc: String,
    pub got: Received,
}

impl Subscriber {
    /// `account` subscribed to `doc` from seq 0 through the node at `url`.
    pub async fn on(url: &str, account: &str, doc: &DocId) -> Result<Self> {
        let mut client = try_connect(url, account)
            .await
            .with_context(|| format!("{account}'s connection to {url}"))?;
        let catch_up = client.subscribe(doc, 0).await?;
        let mut got = Received::default();
        if let Some((seq, _)) = catch_up.snapshot {
            got.other.push(format!("catch-up snapshot at {seq}"));
        }
        got.take_changes(&catch_up.changes);
        Ok(Subscriber {
            client,
            doc: doc.to_string(),
            got,
        })
    }

    /// Reads pushes until it holds 1..=`last`; fails naming what it lacks after `bound`.
    pub async fn until(&mut self, last: u64, bound: Duration) -> Result<Duration> {
        let start = Instant::now();
        while !self.got.complete_to(last) {
            let left = bound.saturating_sub(start.elapsed());
            ensure!(
                !left.is_zero(),
                "the subscriber on the cut node lacks seqs {:?} of 1..={last} after {bound:?} \
                 (other frames: {:?})",
                (1..=last)
                    .filter(|s| !self.got.seqs.contains_key(s))
                    .collect::<Vec<_>>(),
                self.got.other
            );
            match self.client.recv(left.min(Duration::from_millis(200))).await {
                Ok(frame) => self.got.take(&frame, &self.doc),
                Err(e) if e.to_string().starts_with("no frame within") => {}
                Err(e) => return Err(e.context("the subscriber's connection ended")),
            }
        }
        Ok(start.elapsed())
    }

    /// Reads pushes for `span` (a socket left unread would make it lag).
    pub async fn read_for(&mut self, span: Duration) {
        let until = Instant::now() + span;
        while Instant::now() < until {
            if let Ok(frame) = self.client.recv(Duration::from_millis(50)).await {
                self.got.take(&frame, &self.doc);
            }
        }
    }

    pub async fn close(mut self) -> Result<()> {
        let doc = self.doc.clone();
        self.client.send(&ClientFrame::Unsubscribe { doc }).await?;
        self.client.close().await;
        Ok(())
    }
}

/// Cuts node `i`'s LISTEN backend and waits until it resynced and listens again (a new
/// backend, `confab_cluster_resyncs_total` one up, `/readyz` 200); whether `/readyz`
/// answered 503 meanwhile.
pub async fn cut_and_recover(nodes: &Nodes, i: usize) -> Result<bool> {
    let node = &nodes.nodes[i];
    let mut db = nodes.db().await?;
    let resyncs = cluster_metric(node, "confab_cluster_resyncs_total").await;
    let old = nodes.cut_listener(&mut db, i).await?;
    let cut_at = Instant::now();
    let mut saw_503 = false;
    loop {
        ensure!(
            cut_at.elapsed() < Duration::from_secs(15),
            "node {} did not listen again and resync within 15 s of the cut",
            nodes.ids[i]
        );
        let ready = node.readyz(Duration::from_secs(1)).await;
        saw_503 |= ready == Some(503);
        let text = metrics(node).await;
        let now_resyncs = metric(&text, "confab_cluster_resyncs_total").unwrap_or(0.0);
        let listening = metric(&text, "confab_cluster_listening").unwrap_or(0.0);
        let pid = nodes.listener_pid(&mut db, i).await?;
        if now_resyncs > resyncs
            && listening == 1.0
            && ready == Some(200)
            && pid.is_some_and(|p| p != old)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "listener_cut: node {} listening and resynced {:?} after the cut (503 seen: {saw_503})",
        nodes.ids[i],
        cut_at.elapsed()
    );
    Ok(saw_503)
}

/// Keeps node `i` out of the database (its role NOLOGIN), cuts its LISTEN backend, runs
/// `burst` (changes committed through other nodes; when each was acked, µs since the
/// epoch) while the node cannot listen, and lets it in again: `/readyz` is 503 meanwhile,
/// and `sub` on that node receives everything, which only the node's resync (reading the
/// log) can bring.
pub async fn cut_while_kept_out(
    nodes: &Nodes,
    i: usize,
    sub: &mut Subscriber,
    burst: impl std::future::Future<Output = Result<Vec<i64>>>,
) -> Result<()> {
    let node = &nodes.nodes[i];
    let mut db = nodes.db().await?;
    let resyncs = cluster_metric(node, "confab_cluster_resyncs_total").await;
    nodes.keep_out(&mut db, i, true).await?;
    let old = nodes.cut_listener(&mut db, i).await?;
    let to_503 = readyz_until(node, Duration::from_secs(1), 503, Duration::from_secs(5)).await;
    let acked_at = burst.await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    ensure!(
        node.readyz(Duration::from_secs(1)).await == Some(503),
        "/readyz of node {} is not 503 while it cannot listen",
        nodes.ids[i]
    );
    nodes.keep_out(&mut db, i, false).await?;
    let let_in = Instant::now();
    let listening_from = nodes
        .relistened(&mut db, i, old, Duration::from_secs(15))
        .await?;
    ensure!(
        acked_at.iter().all(|t| *t < listening_from),
        "a burst change was acked after the node listened again"
    );
    let last = nodes.stored_log(&sub.doc).await?.len() as u64;
    sub.until(last, Duration::from_secs(15))
        .await
        .context("after a burst while the node could not listen, then silence")?;
    let delivered = let_in.elapsed();
    let to_200 = readyz_until(node, Duration::from_secs(1), 200, Duration::from_secs(15)).await;
    let after = cluster_metric(node, "confab_cluster_resyncs_total").await;
    ensure!(
        after > resyncs,
        "no resync counted after the node was let in"
    );
    println!(
        "listener_cut: kept out: /readyz 503 {to_503:?} after the cut; {} changes committed \
         while the node could not listen reached its subscriber {delivered:?} after it was \
         let in again (/readyz 200 after {to_200:?}); resyncs {resyncs} -> {after}",
        acked_at.len()
    );
    Ok(())
}

/// Microseconds since the Unix epoch, this machine's clock.
fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Sends `changes` to `doc` at once (a submit each) and waits for all their acks; when
/// each ack was received (µs since the epoch).
pub async fn burst(client: &mut Client, doc: &DocId, changes: &[Change]) -> Result<Vec<i64>> {
    for change in changes {
        client
            .send(&submit_frame(doc, std::slice::from_ref(change)))
            .await?;
    }
    let mut acked_at = vec![None; changes.len()];
    let index: std::collections::HashMap<[u8; 32], usize> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| (hash_of(c), i))
        .collect();
    while acked_at.iter().any(Option::is_none) {
        let frame = client.recv(Duration::from_secs(20)).await?;
        let received = now_us();
        match frame {
            ServerFrame::Ack { hash, .. } => {
                let i = <[u8; 32]>::try_from(hash.as_slice())
                    .ok()
                    .and_then(|h| index.get(&h));
                if let Some(&i) = i {
                    acked_at[i] = Some(received);
                }
            }
            ServerFrame::Reject { code, reason, .. } => {
                anyhow::bail!("a burst change was rejected {code}: {reason}")
            }
            ServerFrame::Error { code, message, .. } => {
                anyhow::bail!("a burst change was answered {code}: {message}")
            }
            _ => {}
        }
    }
    Ok(acked_at.into_iter().flatten().collect())
}
