//! The runtime's queue of store writes, loads and frames, in the engine's order, and the rule
//! for when a write may begin before the jobs ahead of it are done.
//!
//! The guarantee kept (issue 16): **a frame leaves only after every write queued before it has
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
//! a prefix of the queue's writes, as before. A write that *fails* (`error`, `abort`) is
//! reported as a `storage` error and the frames behind it still go, also as before: the
//! order of later transactions does not depend on it.
//!
//! A load keeps the old order: writes queued behind it begin only after its reads (a read
//! made later than a write would see it). Stores without IndexedDB's ordering (an adapter's
//! promises may settle in any order) begin a write only at the front of the queue, merged
//! with the writes queued behind it up to the next load: one write per round, as before.

use std::collections::VecDeque;

use confab_core::client::{Load, StoreOp};

use crate::store::TxEnd;

/// One thing to carry out, in order.
#[derive(Debug)]
pub(crate) enum Job {
    Persist(Vec<StoreOp>),
    /// An IndexedDB transaction begun already: the jobs behind it wait for its end. The start
    /// of the step (tracing) and how many ops it holds. `Err` if it could not begin.
    Commit(
        Result<TxEnd, confab_core::client::StoreError>,
        Option<f64>,
        u32,
    ),
    Load(Load),
    Send(QueuedFrame),
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
            Job::Send(_) | Job::Commit(..) => i += 1,
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
                Job::Commit(..) => "C".to_owned(),
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
}
