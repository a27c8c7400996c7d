//! The stores' deferred forgetting: a write that deletes or replaces a value is durable when
//! it returns, and the bytes it made dead are wiped from the store's files by a thread of the
//! store's own shortly after (docs/STORAGE.md, "What a delete removes"), so a burst of such
//! writes (a catch-up folding part after part) pays for one wipe, not one each.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The wipe waits for this long without another dropping write...
const QUIET: Duration = Duration::from_millis(200);
/// ...but never longer than this after the first one: how long dead bytes stay on disk
/// while the store is open.
pub const FORGET_WITHIN: Duration = Duration::from_secs(1);
/// A wipe that could not finish (a busy database, a full disk) is tried again after this.
const RETRY: Duration = Duration::from_millis(500);

/// Takes pokes until `until`; whether the store went away meanwhile.
fn drain_until(pokes: &Receiver<()>, until: Instant) -> bool {
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        match pokes.recv_timeout(left) {
            Ok(()) => {}
            Err(RecvTimeoutError::Timeout) => return false,
            Err(RecvTimeoutError::Disconnected) => return true,
        }
    }
}

/// The thread that wipes; dropping it wipes what is pending, then joins the thread.
#[derive(Debug)]
pub(crate) struct Forgetter {
    poke: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Forgetter {
    /// Starts the thread. `wipe` returns whether it finished; it is called again later when
    /// it did not.
    pub(crate) fn start(
        name: &str,
        mut wipe: impl FnMut() -> bool + Send + 'static,
    ) -> std::io::Result<Self> {
        let (poke, pokes) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                // Each turn: wait for a dropping write, gather the ones that follow it until
                // a quiet spell or the deadline, then wipe until it finishes (or the store
                // goes away).
                while pokes.recv().is_ok() {
                    let deadline = Instant::now() + FORGET_WITHIN;
                    let mut closed = false;
                    loop {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        match pokes.recv_timeout(QUIET.min(left)) {
                            Ok(()) => {}
                            Err(RecvTimeoutError::Timeout) => break,
                            Err(RecvTimeoutError::Disconnected) => {
                                closed = true;
                                break;
                            }
                        }
                    }
                    while !wipe() && !closed {
                        closed = drain_until(&pokes, Instant::now() + RETRY);
                    }
                    if closed {
                        return;
                    }
                }
            })?;
        Ok(Forgetter {
            poke: Some(poke),
            thread: Some(thread),
        })
    }

    /// A write made bytes dead: wipe them soon.
    pub(crate) fn poke(&self) {
        if let Some(poke) = &self.poke {
            // The thread only ends when this sender is dropped.
            let _ = poke.send(());
        }
    }
}

impl Drop for Forgetter {
    fn drop(&mut self) {
        drop(self.poke.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
