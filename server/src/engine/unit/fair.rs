//! Fair turns between connections inside a unit.
//!
//! Jobs wait in one lane per connection (REST writes and the engine's own lookups share lane
//! 0); a batch takes turns around the lanes, each turn at most `QUANTUM` changes of one lane
//! in its order. A submit of more than `QUANTUM` changes is cut into parts whose answers are
//! joined again, so a connection that queued 10,000 changes holds up another connection's
//! single change by one turn, not by its whole backlog. A batch ends with the round in
//! which a lane ran out of jobs, so that lane's changes are not committed behind the
//! validation of more rounds of the others' backlog (busy lanes that all have more go on
//! to the batch's size: a burst keeps its large, cheap batches).

use std::collections::{HashMap, VecDeque};

use confab_core::protocol::ErrorCode;
use tokio::sync::oneshot;

use super::job_changes;
use crate::engine::{Job, SubmitOutcome};

/// Changes of one lane per turn.
pub(super) const QUANTUM: usize = 64;

/// Changes the queue takes in from the unit's channel before it leaves the rest there
/// (where they push back on their connections).
pub(super) const MAX_QUEUED: usize = 16_384;

/// The lane of jobs that come from no connection (REST writes, lookups).
const NO_CONN: u64 = 0;

#[derive(Default)]
pub(super) struct FairQueue {
    lanes: HashMap<u64, VecDeque<Job>>,
    /// Lanes holding jobs, in turn order.
    ring: VecDeque<u64>,
    /// Changes queued in all lanes (a job without changes counts one).
    queued: usize,
    /// Barriers wait until every job queued before them has been taken.
    barriers: Vec<Job>,
}

fn lane_of(job: &Job) -> u64 {
    match job {
        Job::Submit { conn, .. } => conn.unwrap_or(NO_CONN),
        Job::Subscribe { conn, .. } => conn.id,
        Job::Unsubscribe { conn, .. } | Job::Signal { conn, .. } => *conn,
        Job::Write { .. }
        | Job::Conversation { .. }
        | Job::Private { .. }
        | Job::Barrier { .. }
        | Job::Standing { .. }
        | Job::ParentMessage { .. }
        | Job::ParentMoved
        | Job::Expire { .. }
        | Job::SearchTerms { .. }
        | Job::Cut { .. }
        | Job::RemoteSignal { .. } => NO_CONN,
    }
}

impl FairQueue {
    pub(super) fn is_empty(&self) -> bool {
        self.queued == 0 && self.barriers.is_empty()
    }

    /// Changes queued (jobs without changes count one).
    pub(super) fn queued(&self) -> usize {
        self.queued
    }

    pub(super) fn push(&mut self, job: Job) {
        if matches!(job, Job::Barrier { .. }) {
            self.barriers.push(job);
            return;
        }
        for part in split(job) {
            let lane = lane_of(&part);
            self.queued += job_changes(&part);
            let jobs = self.lanes.entry(lane).or_default();
            if jobs.is_empty() {
                self.ring.push_back(lane);
            }
            jobs.push_back(part);
        }
    }

    /// The next batch: turns around the lanes until `max_changes` or the end of the round
    /// in which a lane ran out of jobs. Barriers come once nothing else waits.
    pub(super) fn take_batch(&mut self, max_jobs: usize, max_changes: usize) -> Vec<Job> {
        let mut out = Vec::new();
        let mut changes = 0;
        let mut served: Vec<u64> = Vec::new();
        let mut emptied = false;
        while out.len() < max_jobs && changes < max_changes {
            let Some(lane) = self.ring.pop_front() else {
                break;
            };
            if served.contains(&lane) && emptied {
                self.ring.push_front(lane);
                break;
            }
            if !served.contains(&lane) {
                served.push(lane);
            }
            let Some(jobs) = self.lanes.get_mut(&lane) else {
                continue;
            };
            let mut turn = 0;
            while let Some(job) = jobs.front() {
                let n = job_changes(job);
                if turn > 0 && turn + n > QUANTUM {
                    break;
                }
                turn += n;
                if let Some(job) = jobs.pop_front() {
                    out.push(job);
                }
            }
            changes += turn;
            self.queued = self.queued.saturating_sub(turn);
            if jobs.is_empty() {
                self.lanes.remove(&lane);
                emptied = true;
            } else {
                self.ring.push_back(lane);
            }
        }
        if self.queued == 0 {
            out.append(&mut self.barriers);
        }
        out
    }
}

/// Cuts a submit of more than `QUANTUM` changes into parts of `QUANTUM`; a task joins the
/// parts' answers, in order, into the one answer the connection waits for.
fn split(job: Job) -> Vec<Job> {
    let Job::Submit {
        doc,
        author,
        changes,
        reply,
        received,
        conn,
    } = job
    else {
        return vec![job];
    };
    if changes.len() <= QUANTUM {
        return vec![Job::Submit {
            doc,
            author,
            changes,
            reply,
            received,
            conn,
        }];
    }
    let mut parts = Vec::with_capacity(changes.len().div_ceil(QUANTUM));
    let mut answers = Vec::with_capacity(parts.capacity());
    let mut rest = changes.into_iter().peekable();
    while rest.peek().is_some() {
        let part: Vec<Vec<u8>> = rest.by_ref().take(QUANTUM).collect();
        let (tx, rx) = oneshot::channel();
        answers.push((rx, part.len()));
        parts.push(Job::Submit {
            doc: doc.clone(),
            author: author.clone(),
            changes: part,
            reply: tx,
            received,
            conn,
        });
    }
    tokio::spawn(async move {
        let mut all = Vec::new();
        for (rx, count) in answers {
            match rx.await {
                Ok(outcomes) => all.extend(outcomes),
                Err(_) => all.extend(std::iter::repeat_n(
                    SubmitOutcome::Failed {
                        hash: None,
                        code: ErrorCode::Internal,
                        message: "the unit stopped".into(),
                        retry_after_ms: None,
                    },
                    count,
                )),
            }
        }
        let _ = reply.send(all);
    });
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_core::ids::{AccountId, DocId};
    use confab_core::policy::Author;

    fn submit(conn: u64, changes: usize) -> (Job, oneshot::Receiver<Vec<SubmitOutcome>>) {
        let (reply, rx) = oneshot::channel();
        let job = Job::Submit {
            doc: DocId::parse("acme/conv/c1").expect("id"),
            author: Author {
                account: AccountId::new("a").expect("id"),
                service: false,
                device: None,
            },
            changes: (0..changes).map(|i| vec![(i % 256) as u8]).collect(),
            reply,
            received: std::time::Instant::now(),
            conn: Some(conn),
        };
        (job, rx)
    }

    fn lanes(batch: &[Job]) -> Vec<(u64, usize)> {
        batch.iter().map(|j| (lane_of(j), job_changes(j))).collect()
    }

    #[tokio::test]
    async fn one_connections_backlog_waits_its_turn() {
        let mut q = FairQueue::default();
        let mut flood = Vec::new();
        for _ in 0..10 {
            let (job, rx) = submit(1, 1000);
            q.push(job);
            flood.push(rx);
        }
        let (member, _member_rx) = submit(2, 1);
        q.push(member);
        assert_eq!(q.queued(), 10_001);
        // The first batch: one turn of the flood, then the member's change.
        let first = q.take_batch(512, 512);
        assert_eq!(lanes(&first), vec![(1, QUANTUM), (2, 1)]);
        // With one lane left, a batch goes on to the change limit.
        let second = q.take_batch(512, 512);
        assert_eq!(second.iter().map(job_changes).sum::<usize>(), 512);
        assert!(second.iter().all(|j| lane_of(j) == 1));
        drop((first, second));
    }

    #[tokio::test]
    async fn busy_lanes_that_all_have_more_fill_the_batch() {
        let mut q = FairQueue::default();
        for _ in 0..20 {
            for conn in [1, 2] {
                q.push(submit(conn, 16).0);
            }
        }
        let batch = q.take_batch(512, 512);
        assert_eq!(batch.iter().map(job_changes).sum::<usize>(), 512);
        // In turns of 64 changes (four frames) per lane.
        let order: Vec<u64> = batch.iter().map(lane_of).collect();
        assert_eq!(&order[..8], &[1, 1, 1, 1, 2, 2, 2, 2]);
    }

    #[tokio::test]
    async fn the_parts_of_a_split_submit_answer_as_one_in_order() {
        let mut q = FairQueue::default();
        let (job, rx) = submit(7, 150);
        q.push(job);
        let batch = q.take_batch(512, 10_000);
        assert_eq!(
            batch.iter().map(job_changes).collect::<Vec<_>>(),
            vec![64, 64, 22]
        );
        let mut seq = 0;
        for part in batch {
            let Job::Submit { changes, reply, .. } = part else {
                panic!("a submit");
            };
            let outcomes = changes
                .iter()
                .map(|_| {
                    seq += 1;
                    SubmitOutcome::Ack { hash: [0; 32], seq }
                })
                .collect();
            let _ = reply.send(outcomes);
        }
        let all = rx.await.expect("joined");
        let seqs: Vec<u64> = all
            .iter()
            .map(|o| match o {
                SubmitOutcome::Ack { seq, .. } => *seq,
                _ => 0,
            })
            .collect();
        assert_eq!(seqs, (1..=150).collect::<Vec<u64>>());
    }

    #[tokio::test]
    async fn barriers_wait_for_everything_queued() {
        let mut q = FairQueue::default();
        let (job, _rx) = submit(1, 100);
        q.push(job);
        let (reply, _b) = oneshot::channel();
        q.push(Job::Barrier { reply });
        let first = q.take_batch(1, 10_000);
        assert!(first.iter().all(|j| !matches!(j, Job::Barrier { .. })));
        let second = q.take_batch(512, 10_000);
        assert!(matches!(second.last(), Some(Job::Barrier { .. })));
        assert!(q.is_empty());
    }
}
