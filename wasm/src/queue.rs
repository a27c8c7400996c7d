//! The runtime's queue of store writes, loads and frames, in the engine's order, and the rule
//! for when a write may begin before the jobs ahead of it are done.
//!
//! The guarantee kept: **a frame leaves only after every write queued before it has
//! committed** — in particular its own intent's writes. This device's Automerge actor is kept
//! across reloads (`startup`), so a change that was sent but not stored could be made again
//! after a crash with the same actor and seq and different content, which the server and
//! other devices would hold as two changes under one id.
//!
//! What a frame no longer waits for, on IndexedDB: the *begin* of its writes. A write
//! (`Persist`) with no load and no unbegun write ahead of it is begun at once, as a
//! transaction created while the ones before it may still be in flight (a received change's
//! write, an earlier round). IndexedDB runs `readwrite` transactions of one object store in
//! the order they were created, so that transaction commits only after every earlier one
//! ended (see `IdbStore::begin_write`), and the frame behind it waits only for its `complete`
//! event, not for an earlier transaction's `complete` to reach the page before its own can
//! even start. The queue still ends writes in order (each `Commit` is awaited in turn), so
//! frames also leave in the engine's order.
//!
//! Crash safety of beginning early: a crash (tab closed, browser killed) before a
//! transaction's `complete` loses that transaction and every later one (none of them could
//! have committed before it), and no frame behind any of them has left: the stored state is
//! a prefix of the queue's writes, as before.
//!
//! A write that *fails* (`error`, `abort`: a full disk, the quota, an adapter's rejection)
//! is written again, not skipped (`requeue_failed`): its ops and those of every write queued
//! behind it up to the next load, begun already or not, go back to the front as one write, in
//! order, and nothing begins or leaves until it is stored, retried with backoff. So a frame
//! still never leaves before its change is stored, whatever the store does. Later
//! transactions begun before the failure was known may have committed meanwhile; writing
//! them again after the failed one restores the queue's order for every key.
//!
//! A load keeps the old order: writes queued behind it begin only after its reads (a read
//! made later than a write would see it). Stores without IndexedDB's ordering (an adapter's
//! promises may settle in any order) begin a write only at the front of the queue, merged
//! with the writes queued behind it up to the next load: one write per round, as before.

use std::collections::VecDeque;

use confab_core::client::{Load, StoreOp};

use crate::idb::TxEnd;

/// The backoff between tries of a failed store write (ms, doubling, with jitter): a store
/// that is full waits for the user to free space, so the tries thin out to one every 10 s.
pub(crate) const RETRY_MIN_MS: u32 = 200;
pub(crate) const RETRY_MAX_MS: u32 = 10_000;

/// One thing to carry out, in order.
#[derive(Debug)]
pub(crate) enum Job {
    Persist(Vec<StoreOp>),
    /// An IndexedDB transaction begun already: the jobs behind it wait for its end.
    Commit(Begun),
    Load(Load),
    Send(QueuedFrame),
}

/// A write begun as an IndexedDB transaction (`Err` if it could not begin), with its ops,
/// kept until it commits (a failed one is written again), and the start of the step
/// (tracing).
#[derive(Debug)]
pub(crate) struct Begun {
    pub end: Result<TxEnd, confab_core::client::StoreError>,
    pub ops: Vec<StoreOp>,
    pub started: Option<f64>,
}

/// A frame for the connection of this epoch (dropped if that connection is gone), whether it
/// expects an answer (the connection's liveness check watches for one), and when it was
/// queued (`perf_now`, only when tracing).
pub(crate) type QueuedFrame = (u64, Vec<u8>, bool, f64);

/// The writes that may begin now on a store that orders its transactions (IndexedDB): the
/// first unbegun write and every write behind it up to the next load, merged, if no load is
/// ahead of it (nor being read: `loading`). They are taken out of the queue; the caller
/// begins them and puts the `Commit` at the returned index (the frames that were between
/// them stay behind it).
pub(crate) fn take_beginnable(
    queue: &mut VecDeque<Job>,
    loading: bool,
) -> Option<(usize, Vec<StoreOp>)> {
    if loading {
        return None;
    }
    let first = queue
        .iter()
        .position(|job| matches!(job, Job::Persist(_) | Job::Load(_)))?;
    if matches!(queue[first], Job::Load(_)) {
        return None;
    }
    Some((first, take_round(queue, first)))
}

/// A write failed: `failed` and every write queued behind it up to the next load (begun as a
/// transaction or not) are put back at the front as one unbegun write, in order; the frames
/// among them stay behind it.
pub(crate) fn requeue_failed(queue: &mut VecDeque<Job>, mut failed: Vec<StoreOp>) {
    let mut i = 0;
    while i < queue.len() {
        match &queue[i] {
            Job::Load(_) => break,
            Job::Send(_) => i += 1,
            Job::Persist(_) | Job::Commit(_) => match queue.remove(i) {
                Some(Job::Persist(more)) => failed.extend(more),
                Some(Job::Commit(begun)) => failed.extend(begun.ops),
                _ => {}
            },
        }
    }
    queue.push_front(Job::Persist(failed));
}

/// Takes the writes from `from` up to the next load, merged in order; frames stay.
pub(crate) fn take_round(queue: &mut VecDeque<Job>, from: usize) -> Vec<StoreOp> {
    let mut ops = Vec::new();
    let mut i = from;
    while i < queue.len() {
        match &queue[i] {
            Job::Load(_) => break,
            Job::Persist(_) => {
                if let Some(Job::Persist(more)) = queue.remove(i) {
                    ops.extend(more);
                }
            }
            Job::Send(_) | Job::Commit(_) => i += 1,
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str) -> Job {
        Job::Persist(vec![StoreOp::Put(key.into(), vec![1])])
    }

    /// A write begun already (as far as the queue can tell: its end is never awaited here).
    fn begun(key: &str) -> Job {
        Job::Commit(Begun {
            end: Err(confab_core::client::StoreError("not awaited".into())),
            ops: vec![StoreOp::Put(key.into(), vec![2])],
            started: None,
        })
    }

    fn keys(job: &Job) -> Vec<&str> {
        match job {
            Job::Persist(ops) => ops
                .iter()
                .map(|op| match op {
                    StoreOp::Put(key, _) | StoreOp::Delete(key) | StoreOp::DeletePrefix(key) => {
                        key.as_str()
                    }
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    fn frame(n: u8) -> Job {
        Job::Send((0, vec![n], false, 0.0))
    }

    fn load() -> Job {
        Job::Load(Load {
            id: confab_core::client::LoadId(0),
            reads: Vec::new(),
        })
    }

    fn shape(queue: &VecDeque<Job>) -> String {
        queue
            .iter()
            .map(|job| match job {
                Job::Persist(_) => "P".to_owned(),
                Job::Commit(_) => "C".to_owned(),
                Job::Load(_) => "L".to_owned(),
                Job::Send((_, bytes, _, _)) => format!("F{}", bytes[0]),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn writes_up_to_a_load_merge_and_frames_stay_behind_them() {
        let mut queue = VecDeque::from([frame(0), put("a"), frame(1), put("b"), load(), put("c")]);
        let (at, ops) = take_beginnable(&mut queue, false).expect("a write may begin");
        assert_eq!(at, 1);
        assert_eq!(ops.len(), 2);
        assert_eq!(shape(&queue), "F0 F1 L P");
        // Behind a load nothing begins, nor while one is read.
        assert!(take_beginnable(&mut queue, false).is_none());
        let mut queue = VecDeque::from([put("a")]);
        assert!(take_beginnable(&mut queue, true).is_none());
        assert_eq!(shape(&queue), "P");
    }

    #[test]
    fn a_failed_write_is_written_again_with_the_writes_behind_it_before_any_frame() {
        // The failed write (a) was popped; behind it: a frame, a begun write (b), a frame, an
        // unbegun write (c), a load, and a write behind the load (d).
        let mut queue =
            VecDeque::from([frame(1), begun("b"), frame(2), put("c"), load(), put("d")]);
        requeue_failed(&mut queue, vec![StoreOp::Put("a".into(), vec![0])]);
        assert_eq!(shape(&queue), "P F1 F2 L P");
        assert_eq!(keys(&queue[0]), ["a", "b", "c"], "in the queue's order");
        assert_eq!(keys(&queue[4]), ["d"], "nothing from behind the load");
        // It begins again as any unbegun write does, ahead of its frames.
        let (at, ops) = take_beginnable(&mut queue, false).expect("it may begin again");
        assert_eq!((at, ops.len()), (0, 3));
    }
}
