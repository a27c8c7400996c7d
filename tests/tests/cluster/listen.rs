//! Subscribers: the pushes one received, a follower that moves to another node when its
//! node dies, and the cut of a node's LISTEN connection with the node's recovery.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use confab_core::ids::DocId;
use confab_core::protocol::{SeqChange, ServerFrame};
use confab_e2e::Client;

use crate::cluster_nodes::{cluster_metric, metric, metrics, Nodes};
use crate::cluster_sender::try_connect;

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

/// Reads `sub`'s pushes of `doc` into `got` until it holds 1..=`last` or `bound` passes.
pub async fn receive_until(
    sub: &mut Client,
    doc: &str,
    got: &mut Received,
    last: u64,
    bound: Duration,
) -> Result<Duration> {
    let start = Instant::now();
    while !got.complete_to(last) {
        let left = bound.saturating_sub(start.elapsed());
        ensure!(
            !left.is_zero(),
            "the subscriber on the cut node lacks seqs {:?} of 1..={last} after {bound:?} \
             (other frames: {:?})",
            (1..=last)
                .filter(|s| !got.seqs.contains_key(s))
                .collect::<Vec<_>>(),
            got.other
        );
        match sub.recv(left.min(Duration::from_millis(200))).await {
            Ok(frame) => got.take(&frame, doc),
            Err(e) if e.to_string().starts_with("no frame within") => {}
            Err(e) => return Err(e.context("the subscriber's connection ended")),
        }
    }
    Ok(start.elapsed())
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
