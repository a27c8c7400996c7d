//! Giving freed memory back to the operating system.
//!
//! glibc's malloc keeps what the program freed in its arenas (one per thread that
//! allocates, up to 8 per core) and returns only the top of each to the system. A
//! conversation's unit holds its message buckets as Automerge documents; when the unit
//! leaves memory they are freed, but without a trim the process stays near its peak
//! (measured in docs/BENCHMARKS.md, "Memory"). So once units leave
//! memory, the engine asks for a trim: one `malloc_trim(0)` a few seconds later (a burst of
//! units leaving makes one trim), on a blocking thread, since it walks and locks every
//! arena.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long a trim waits after it is asked for: units that leave together share it, and
/// the unit that asked has dropped its documents by then.
const DELAY: Duration = Duration::from_secs(5);

static SCHEDULED: AtomicBool = AtomicBool::new(false);

/// Asks for freed memory to go back to the system soon (see the module documentation).
/// Needs a Tokio runtime; does nothing off glibc.
pub fn release_soon() {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return;
    }
    if SCHEDULED.swap(true, Ordering::SeqCst) {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        SCHEDULED.store(false, Ordering::SeqCst);
        return;
    };
    runtime.spawn(async {
        tokio::time::sleep(DELAY).await;
        // Cleared first: memory freed during the trim asks for the next one.
        SCHEDULED.store(false, Ordering::SeqCst);
        let _ = tokio::task::spawn_blocking(release_now).await;
    });
}

/// Returns the memory malloc holds free to the system now (`malloc_trim(0)`); true if any
/// went back. Blocks while it walks the heap: call it off the async workers.
pub fn release_now() -> bool {
    trim()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() -> bool {
    // SAFETY: malloc_trim takes a plain integer and only touches malloc's own state, under
    // its locks; it has no precondition on the caller.
    unsafe { libc::malloc_trim(0) != 0 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resident memory of this process, in bytes.
    fn rss() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn freed_small_allocations_go_back_to_the_system() {
        // 64 MiB in small blocks (below the mmap threshold, so they live in the heap), every
        // other one freed: a fragmented heap a plain free() cannot shrink.
        let mut blocks: Vec<Vec<u8>> = (0..64 * 1024).map(|i| vec![i as u8; 1024]).collect();
        let full = rss();
        let mut i = 0;
        blocks.retain(|_| {
            i += 1;
            i % 64 == 0
        });
        let before = rss();
        assert!(release_now(), "malloc_trim released something");
        let after = rss();
        assert!(
            after + 32 * 1024 * 1024 < before,
            "resident memory went back: {full} with every block, {before} after freeing most, {after} after the trim"
        );
        drop(blocks);
    }
}
