//! Carrying out the runtime's queue (`crate::queue` has the rules): frames sent after the
//! writes before them, writes begun early on IndexedDB or one per round on an adapter, a
//! failed write held and written again, loads read together.

use confab_core::client::{Load, LocalStore, Read, StoreOp};
use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::Runtime;
use crate::connection;
use crate::js;
use crate::loads;
use crate::queue::{self, Job, QueuedFrame};
use crate::store::AnyStore;
use crate::types::{ClientEvent, TraceStage};

impl Runtime {
    /// On IndexedDB, begins the writes that need not wait for the jobs ahead of them (see
    /// `queue`: a transaction created now still commits after the ones before it).
    pub(super) fn begin_writes(&self) {
        let Some(AnyStore::IndexedDb(db)) = self.store.get() else {
            return;
        };
        let mut state = self.state.borrow_mut();
        let wait = state.loading || state.write_failures > 0;
        if let Some((at, ops)) = queue::take_beginnable(&mut state.queue, wait) {
            let started = self.trace_start();
            let end = db.begin_write(&ops);
            let begun = queue::Begun { end, ops, started };
            state.queue.insert(at, Job::Commit(begun));
        }
    }

    pub(super) fn start_flush(&self) {
        {
            let mut state = self.state.borrow_mut();
            if state.flushing || state.queue.is_empty() {
                return;
            }
            state.flushing = true;
        }
        let Some(rt) = self.me.upgrade() else {
            return;
        };
        wasm_bindgen_futures::spawn_local(async move { rt.flush().await });
    }

    /// Carries out the queue in order: a frame is sent, a begun write awaited, an unbegun
    /// one begun (on a store that does not order its writes: merged with the writes behind
    /// it up to the next load, and the frames among them sent after it), a load read.
    pub(super) async fn flush(&self) {
        loop {
            if self.state.borrow().write_failures > 0 {
                self.wait_before_writing_again().await;
            }
            self.begin_writes();
            let job = self.state.borrow_mut().queue.pop_front();
            let Some(job) = job else {
                break;
            };
            match job {
                Job::Send(frame) => self.send(frame),
                Job::Commit(begun) => {
                    let ended = match begun.end {
                        Ok(end) => end.wait().await,
                        Err(e) => Err(e),
                    };
                    let count = begun.ops.len() as u32;
                    self.trace_end(TraceStage::Store, begun.started, Some(count));
                    self.written(ended, begun.ops, Vec::new());
                }
                Job::Persist(ops) => self.write_round(ops).await,
                Job::Load(load) => self.load(load).await,
            }
        }
        let waiters = {
            let mut state = self.state.borrow_mut();
            state.flushing = false;
            std::mem::take(&mut state.flush_waiters)
        };
        for resolve in waiters {
            let _ = resolve.call0(&JsValue::NULL);
        }
    }

    /// Reads `first` and the loads queued right behind it together (`loads`), and hands each
    /// answer to the engine in order; the writes behind them begin after.
    pub(super) async fn load(&self, first: Load) {
        let Some(store) = self.store.get() else {
            return;
        };
        let batch = {
            let mut state = self.state.borrow_mut();
            state.loading = true;
            let mut batch = vec![first];
            while matches!(state.queue.front(), Some(Job::Load(_))) {
                if let Some(Job::Load(load)) = state.queue.pop_front() {
                    batch.push(load);
                }
            }
            batch
        };
        let reads: Vec<&[Read]> = batch.iter().map(|l| l.reads.as_slice()).collect();
        // One answer per load, in order (`read_loads` answers every load, or fails them all).
        let answers: Vec<_> = match loads::read_loads(store, &reads).await {
            Ok(all) => all.into_iter().map(Ok).collect(),
            Err(e) => batch.iter().map(|_| Err(e.clone())).collect(),
        };
        self.state.borrow_mut().loading = false;
        for (load, answer) in batch.iter().zip(answers) {
            let refused = self.with_engine(|e| e.loaded(load.id, answer));
            if let Ok(Err(e)) = refused {
                self.emit(ClientEvent::Error {
                    code: e.code().to_owned(),
                    message: e.to_string(),
                });
            }
        }
        self.pump();
    }

    /// One write of a store without IndexedDB's ordering, at the front of the queue: it takes
    /// the writes queued behind it up to the next load (however many frames came between
    /// them: a busy client writes once per round, not once per message); the frames among
    /// them go after it.
    pub(super) async fn write_round(&self, mut ops: Vec<StoreOp>) {
        let frames = {
            let mut state = self.state.borrow_mut();
            ops.extend(queue::take_round(&mut state.queue, 0));
            let behind = state
                .queue
                .iter()
                .position(|job| !matches!(job, Job::Send(_)))
                .unwrap_or(state.queue.len());
            state.queue.drain(..behind).collect::<Vec<_>>()
        };
        let Some(store) = self.store.get() else {
            // No store (never installed): nothing to keep, as before a store existed.
            self.written(Ok(()), ops, frames);
            return;
        };
        let started = self.trace_start();
        let count = ops.len() as u32;
        // Kept until stored: a failed write is written again.
        let written = store.write(ops.clone()).await;
        self.trace_end(TraceStage::Store, started, Some(count));
        self.written(written, ops, frames);
    }

    /// The end of a write. Stored: the frames held behind it go (on IndexedDB they are still
    /// in the queue). Failed: it goes back to the front with the writes behind it, and the
    /// frames wait for the next try (`queue::requeue_failed`); the app hears `storage` once
    /// per run of failures.
    pub(super) fn written(
        &self,
        written: std::result::Result<(), confab_core::client::StoreError>,
        ops: Vec<StoreOp>,
        frames: Vec<Job>,
    ) {
        let error = match written {
            Ok(()) => {
                self.state.borrow_mut().write_failures = 0;
                for job in frames {
                    if let Job::Send(frame) = job {
                        self.send(frame);
                    }
                }
                return;
            }
            Err(e) => e,
        };
        let first = {
            let mut state = self.state.borrow_mut();
            if state.closing {
                // Disposed while the store fails: what is not stored is given up, and
                // nothing behind it leaves (the connection is closed already).
                state.queue.clear();
                state.write_failures = 0;
                true
            } else {
                for job in frames.into_iter().rev() {
                    state.queue.push_front(job);
                }
                queue::requeue_failed(&mut state.queue, ops);
                state.write_failures += 1;
                state.write_failures == 1
            }
        };
        if first {
            self.emit(ClientEvent::Error {
                code: "storage".into(),
                message: error.0,
            });
        }
    }

    /// The backoff before a failed write is written again (nothing behind it moves meanwhile).
    pub(super) async fn wait_before_writing_again(&self) {
        let (attempt, closing) = {
            let state = self.state.borrow();
            (state.write_failures, state.closing)
        };
        if closing {
            return; // one last try, then `written` gives up
        }
        let delay = connection::backoff_delay(
            attempt,
            queue::RETRY_MIN_MS,
            queue::RETRY_MAX_MS,
            js::random_unit(),
        );
        js::sleep(delay).await;
    }

    pub(super) fn send(&self, (epoch, bytes, expects_answer, queued): QueuedFrame) {
        connection::send_bytes(&self.conn, epoch, &bytes, expects_answer);
        self.trace_end(TraceStage::Send, self.trace.then_some(queued), None);
    }

    /// Resolves when every queued store write is done.
    pub async fn flushed(&self) {
        let promise = {
            let mut state = self.state.borrow_mut();
            if !state.flushing && state.queue.is_empty() {
                return;
            }
            let mut resolve_fn = None;
            let promise = Promise::new(&mut |resolve, _| resolve_fn = Some(resolve));
            if let Some(resolve) = resolve_fn {
                state.flush_waiters.push(resolve);
            }
            promise
        };
        let _ = JsFuture::from(promise).await;
    }
}
