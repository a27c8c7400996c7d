//! Raw WebSocket writers that account for every change: a paced writer that moves to
//! another node when its connection dies and resubmits what was not acked, and a helper
//! that drives a few submits to a final answer (ack or rejection), retrying transient
//! errors.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use confab_core::automerge::Change;
use confab_core::ids::{ConvId, DocId};
use confab_core::protocol::{ErrorCode, ServerFrame};
use confab_e2e::{token, Client, Device};

use crate::common::{message, submit_frame, TENANT};

pub fn hash_of(change: &Change) -> [u8; 32] {
    change.hash().0
}

fn hash32(bytes: &[u8]) -> Option<[u8; 32]> {
    bytes.try_into().ok()
}

fn is_retryable(code: &str) -> bool {
    ErrorCode::parse(code).is_some_and(ErrorCode::is_retryable)
}

/// A connection of `account` to `url` (`None`: the node does not answer).
pub async fn try_connect(url: &str, account: &str) -> Option<Client> {
    let token = token(TENANT, account, false, 3600);
    tokio::time::timeout(Duration::from_secs(3), Client::connect(url, &token))
        .await
        .ok()?
        .ok()
}

/// Where and how a failover writer writes.
#[derive(Debug, Clone)]
pub struct Writer {
    /// Every node's WebSocket URL; it starts on `first` and moves to the next on a loss.
    pub urls: Vec<String>,
    pub first: usize,
    pub conv: ConvId,
    pub bucket: DocId,
    /// `created_at` of its first message (each next one 1 ms later).
    pub base: i64,
    /// One new message per `pace` while `producing`.
    pub pace: Duration,
    pub producing: Arc<AtomicBool>,
    /// It gives up (ended = "limit") after this long.
    pub limit: Duration,
    /// Its submits not answered yet, as it goes (a test may act when some are in flight).
    pub in_flight: Arc<AtomicUsize>,
}

/// What a failover writer did.
#[derive(Debug, Default)]
pub struct WriteLog {
    pub account: String,
    /// Every change written, in order (each depends on the one before).
    pub sent: Vec<Change>,
    pub acks: HashMap<[u8; 32], u64>,
    /// When each ack came and through which node.
    pub ack_times: Vec<(Instant, usize)>,
    /// Rejections (missing_dependency behind an unacked change of its own is resubmitted,
    /// not counted).
    pub rejects: Vec<(String, String)>,
    /// A change acked twice with different seqs.
    pub ack_conflicts: Vec<String>,
    /// When its connection was lost, and the node it reconnected to.
    pub moves: Vec<(Instant, usize)>,
    /// Changes in flight when a connection was lost (resubmitted on the next node).
    pub in_flight_at_loss: usize,
    pub ended: String,
}

/// Writes paced messages until production stops and everything is acked (or `limit`).
/// A lost connection moves it to the next node, where it resubmits, in order, everything
/// not acked (a change the dead node committed is acked again with its stored seq).
pub async fn write_with_failover(plan: Writer, mut device: Device) -> WriteLog {
    const WINDOW: usize = 4;
    let account = device.account.clone();
    let mut log = WriteLog {
        account: account.clone(),
        ..WriteLog::default()
    };
    let deadline = Instant::now() + plan.limit;
    let mut node = plan.first;
    let Some(mut client) = try_connect(&plan.urls[node], &account).await else {
        log.ended = format!("could not connect to {}", plan.urls[node]);
        return log;
    };
    // Indexes of changes to resubmit (in order: a set), one at a time.
    let mut queue: BTreeSet<usize> = BTreeSet::new();
    let mut in_flight: HashMap<[u8; 32], usize> = HashMap::new();
    let mut paused_until = Instant::now();
    let mut last_new = Instant::now() - plan.pace;
    loop {
        let now = Instant::now();
        if now > deadline {
            log.ended = "limit".into();
            break;
        }
        let producing = plan.producing.load(Ordering::SeqCst);
        if !producing && queue.is_empty() && in_flight.is_empty() {
            log.ended = "done".into();
            break;
        }
        plan.in_flight.store(in_flight.len(), Ordering::SeqCst);
        let mut lost = None;
        while in_flight.len() < WINDOW && now >= paused_until {
            let i = if !queue.is_empty() {
                // Resubmissions wait for every answer before them: they stay in order.
                if !in_flight.is_empty() {
                    break;
                }
                match queue.pop_first() {
                    Some(i) => i,
                    None => break,
                }
            } else if producing && last_new.elapsed() >= plan.pace {
                let i = log.sent.len();
                let (_, change) = message(
                    &mut device,
                    &plan.conv,
                    &format!("{account}-{i}"),
                    &format!("{account} says {i}"),
                    plan.base + i as i64,
                );
                log.sent.push(change);
                last_new = Instant::now();
                i
            } else {
                break;
            };
            let change = &log.sent[i];
            in_flight.insert(hash_of(change), i);
            plan.in_flight.store(in_flight.len(), Ordering::SeqCst);
            if let Err(e) = client
                .send(&submit_frame(&plan.bucket, std::slice::from_ref(change)))
                .await
            {
                lost = Some(e.to_string());
                break;
            }
        }
        if lost.is_none() {
            match client.recv(Duration::from_millis(20)).await {
                Ok(frame) => answer(
                    &mut log,
                    &mut in_flight,
                    &mut queue,
                    &mut paused_until,
                    node,
                    frame,
                ),
                Err(e) if e.to_string().starts_with("no frame within") => {}
                Err(e) => lost = Some(e.to_string()),
            }
        }
        if lost.is_some() {
            // Whatever was in flight may or may not be stored: resubmit it all, in order.
            log.in_flight_at_loss += in_flight.len();
            queue.extend(in_flight.drain().map(|(_, i)| i));
            let Some((next, c)) = reconnect(&plan.urls, node, &account, deadline).await else {
                log.ended = "no node answers".into();
                break;
            };
            node = next;
            client = c;
            log.moves.push((Instant::now(), node));
        }
    }
    client.close().await;
    log
}

/// A running failover writer.
pub struct Running {
    pub task: tokio::task::JoinHandle<WriteLog>,
    pub in_flight: Arc<AtomicUsize>,
}

/// Starts one failover writer per (account, first node), device 1 of each, on `plan`.
pub fn spawn_writers(plan: &Writer, who: &[(&str, usize)]) -> Vec<Running> {
    who.iter()
        .map(|(account, first)| {
            let in_flight = Arc::new(AtomicUsize::new(0));
            let plan = Writer {
                first: *first,
                in_flight: in_flight.clone(),
                ..plan.clone()
            };
            let task = tokio::spawn(write_with_failover(plan, Device::new(account, 1)));
            Running { task, in_flight }
        })
        .collect()
}

/// Waits for every writer's end.
pub async fn finished(writers: Vec<Running>) -> Result<Vec<WriteLog>> {
    let mut logs = Vec::new();
    for w in writers {
        logs.push(w.task.await?);
    }
    Ok(logs)
}

/// Checks that every writer finished with every change acked, at one seq, and nothing
/// rejected; returns hash → acked seq of all of them.
pub fn all_acked(logs: &[WriteLog]) -> Result<HashMap<[u8; 32], u64>> {
    let mut acked = HashMap::new();
    for l in logs {
        ensure!(l.ended == "done", "{}: ended {}", l.account, l.ended);
        ensure!(
            l.rejects.is_empty(),
            "{}: rejected {:?}",
            l.account,
            l.rejects
        );
        ensure!(
            l.ack_conflicts.is_empty(),
            "{}: {:?}",
            l.account,
            l.ack_conflicts
        );
        for change in &l.sent {
            let seq = l.acks.get(&hash_of(change)).with_context(|| {
                format!(
                    "{}: a change was never acked (ended {})",
                    l.account, l.ended
                )
            })?;
            acked.insert(hash_of(change), *seq);
        }
    }
    Ok(acked)
}

/// The longest time in `[from, to]` without any of `times`, when it began, and how many
/// of `times` fell in `[from, to]`.
pub fn longest_gap(
    times: impl Iterator<Item = Instant>,
    from: Instant,
    to: Instant,
) -> (Duration, Instant, usize) {
    let mut inside: Vec<Instant> = times.filter(|t| (from..=to).contains(t)).collect();
    inside.sort();
    let count = inside.len();
    let edges: Vec<Instant> = std::iter::once(from)
        .chain(inside)
        .chain(std::iter::once(to))
        .collect();
    let (gap, began) = edges
        .windows(2)
        .map(|w| (w[1].saturating_duration_since(w[0]), w[0]))
        .max()
        .unwrap_or((Duration::ZERO, from));
    (gap, began, count)
}

/// Connects to the next node after `from` that answers, round robin, until `deadline`.
async fn reconnect(
    urls: &[String],
    from: usize,
    account: &str,
    deadline: Instant,
) -> Option<(usize, Client)> {
    let mut node = from;
    while Instant::now() < deadline {
        node = (node + 1) % urls.len();
        if let Some(client) = try_connect(&urls[node], account).await {
            return Some((node, client));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

fn answer(
    log: &mut WriteLog,
    in_flight: &mut HashMap<[u8; 32], usize>,
    queue: &mut BTreeSet<usize>,
    paused_until: &mut Instant,
    node: usize,
    frame: ServerFrame,
) {
    let (hash, retry) = match frame {
        ServerFrame::Ack { hash, seq, .. } => {
            let Some(hash) = hash32(&hash) else { return };
            if let Some(before) = log.acks.insert(hash, seq) {
                if before != seq {
                    log.ack_conflicts
                        .push(format!("{} acked at {before} and {seq}", hex::encode(hash)));
                }
            }
            log.ack_times.push((Instant::now(), node));
            (hash, None)
        }
        ServerFrame::Reject {
            hash: Some(hash),
            code,
            reason,
            ..
        } => {
            let Some(hash) = hash32(&hash) else { return };
            if code == "missing_dependency" {
                (hash, Some(Duration::from_millis(50)))
            } else {
                log.rejects.push((code, reason));
                (hash, None)
            }
        }
        ServerFrame::Error {
            hash: Some(hash),
            code,
            message,
            retry_after_ms,
            ..
        } => {
            let Some(hash) = hash32(&hash) else { return };
            if is_retryable(&code) {
                let wait = Duration::from_millis(retry_after_ms.unwrap_or(200));
                (hash, Some(wait))
            } else {
                log.rejects.push((code, message));
                (hash, None)
            }
        }
        // Pushes, signals, request-level errors without a change: nothing to account.
        _ => return,
    };
    let Some(i) = in_flight.remove(&hash) else {
        return;
    };
    if let Some(wait) = retry {
        queue.insert(i);
        *paused_until = (*paused_until).max(Instant::now() + wait);
    }
}

/// The final answer to a submitted change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Final {
    Ack(u64),
    Reject { code: String, reason: String },
}

/// Submits each change (in its own frame) at its offset from now, and waits until each has
/// a final answer: transient errors are resubmitted after their `retry_after_ms`. Fails
/// when one has none within `bound` (stuck) or is answered with a non-retryable error.
pub async fn settle(
    client: &mut Client,
    doc: &DocId,
    changes: &[(Duration, Change)],
    bound: Duration,
) -> Result<Vec<Final>> {
    let start = Instant::now();
    let mut due: Vec<Option<Instant>> = changes.iter().map(|(at, _)| Some(start + *at)).collect();
    let index: HashMap<[u8; 32], usize> = changes
        .iter()
        .enumerate()
        .map(|(i, (_, c))| (hash_of(c), i))
        .collect();
    let mut finals: Vec<Option<Final>> = vec![None; changes.len()];
    let mut retries = 0usize;
    while finals.iter().any(Option::is_none) {
        let now = Instant::now();
        if now > start + bound {
            let stuck: Vec<usize> = (0..changes.len())
                .filter(|&i| finals[i].is_none())
                .collect();
            bail!(
                "changes {stuck:?} of {doc} have no final answer after {bound:?} \
                 ({retries} transient errors resubmitted)"
            );
        }
        for (i, slot) in due.iter_mut().enumerate() {
            if slot.is_some_and(|at| at <= now) {
                *slot = None;
                client
                    .send(&submit_frame(doc, std::slice::from_ref(&changes[i].1)))
                    .await
                    .context("sending a submit")?;
            }
        }
        let next_due = due.iter().flatten().min().copied();
        let wait = next_due.map_or(Duration::from_millis(50), |at| {
            at.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1))
        });
        let frame = match client.recv(wait).await {
            Ok(frame) => frame,
            Err(e) if e.to_string().starts_with("no frame within") => continue,
            Err(e) => return Err(e.context("the connection ended while waiting for answers")),
        };
        let (hash, outcome) = match frame {
            ServerFrame::Ack { hash, seq, .. } => (hash, Ok(Final::Ack(seq))),
            ServerFrame::Reject {
                hash: Some(hash),
                code,
                reason,
                ..
            } => (hash, Ok(Final::Reject { code, reason })),
            ServerFrame::Error {
                hash: Some(hash),
                code,
                message,
                retry_after_ms,
                ..
            } => (hash, Err((code, message, retry_after_ms))),
            ServerFrame::Error {
                hash: None,
                doc: Some(d),
                code,
                message,
                ..
            } if d == doc.to_string() => {
                bail!("a submit to {doc} refused as a whole: {code}: {message}")
            }
            _ => continue,
        };
        let Some(&i) = hash32(&hash).and_then(|h| index.get(&h)) else {
            continue;
        };
        match outcome {
            Ok(answer) => {
                if finals[i].is_none() {
                    finals[i] = Some(answer);
                }
            }
            Err((code, message, retry_after_ms)) => {
                if !is_retryable(&code) {
                    bail!("change {i} of {doc} answered {code}: {message} (not retryable)");
                }
                retries += 1;
                let wait = Duration::from_millis(retry_after_ms.unwrap_or(100));
                due[i] = Some(Instant::now() + wait);
            }
        }
    }
    Ok(finals.into_iter().flatten().collect())
}
