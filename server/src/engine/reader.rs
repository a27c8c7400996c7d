//! The units' reads of storage (a document to load, an actor's binding, a stored seq, a
//! log tail) run on a thread and runtime of their own, with connections of their own.
//!
//! Why: a read holds its pool connection from the acquire until the reading task has taken
//! the answer, and on the shared runtime that task waits its turn behind thousands of
//! connection tasks and units. With 1,000 busy conversations the 8 connections were
//! checked out most of the time while Postgres showed them idle, and submits failed
//! `unavailable` ("pool timed out") although the database had nothing to do
//! (docs/BENCHMARKS.md, "Many at once"). Here a read's answer is taken as soon as it
//! arrives and its connection goes back at once; the unit waits for a oneshot, which
//! holds nothing. The committer does the same for commits (`committer`).
//!
//! A store without a handle for a thread of its own (SQLite: its reads go to its own
//! connection threads already) is read on the caller's runtime, as before.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::store::{Result, Store, StoreError};

type Job = Box<dyn FnOnce(Arc<dyn Store>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Reads waiting for the reader thread, at most; beyond, callers wait to hand theirs over
/// (their units stall, as they would waiting for a connection).
const QUEUE: usize = 4096;

/// See the module documentation.
pub(crate) enum Reader {
    Thread(mpsc::Sender<Job>),
    Inline(Arc<dyn Store>),
}

impl Reader {
    /// Starts the reader thread for `store` (or reads inline, see the module
    /// documentation). The thread ends when the reader is dropped.
    pub(crate) fn spawn(store: Arc<dyn Store>, node: &str) -> Reader {
        let Some(own) = store.for_read_thread() else {
            return Reader::Inline(store);
        };
        let (tx, mut rx) = mpsc::channel::<Job>(QUEUE);
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                tracing::warn!(error = %e, "no reader runtime; reading on the shared one");
                return Reader::Inline(store);
            }
        };
        // The pool is lazy: its connections are opened, and their I/O driven, by the
        // runtime of their first user, this thread's.
        let spawned = std::thread::Builder::new()
            .name(format!("{node}-read"))
            .spawn(move || {
                runtime.block_on(async move {
                    while let Some(job) = rx.recv().await {
                        tokio::spawn(job(own.clone()));
                    }
                });
            });
        match spawned {
            Ok(_) => Reader::Thread(tx),
            Err(e) => {
                tracing::warn!(error = %e, "no reader thread; reading on the shared runtime");
                Reader::Inline(store)
            }
        }
    }

    /// Runs `read` against the store on the reader thread and returns its answer.
    pub(crate) async fn read<T, F, Fut>(&self, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Arc<dyn Store>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        let tx = match self {
            Reader::Inline(store) => return read(store.clone()).await,
            Reader::Thread(tx) => tx,
        };
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |store| {
            Box::pin(async move {
                let _ = reply.send(read(store).await);
            })
        });
        let gone = || StoreError::Unavailable("the reader thread has stopped".into());
        tx.send(job).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}
