//! A worker's counters for `runtime::metrics`: written by the worker's own kernel thread only, read
//! by anyone.
//!
//! Each counter is an atomic so that readers on other kernel threads see a value without a data
//! race, but its writer is one thread, so an increment is a relaxed load and a relaxed store
//! ([`bump`]): two plain moves, no locked instruction. The switch count and the queue depth are
//! not counted on the switch path at all: the worker publishes them on each pass through its
//! scheduler loop (at least every 61 switches), so readers see them that fresh.

use std::sync::atomic::{AtomicU64, Ordering};

/// One worker's counters (module doc).
#[derive(Default)]
pub(crate) struct WorkerStats {
    /// Switches between green threads (and into them from the scheduler context), as of the
    /// worker's last pass through its scheduler loop.
    pub(crate) switches: AtomicU64,
    /// Batches of fresh threads taken from other workers' queues.
    pub(crate) steals: AtomicU64,
    /// Times the worker went to sleep with nothing to run.
    pub(crate) sleeps: AtomicU64,
    /// Wake-ups received from other kernel threads (threads taken from its inbox).
    pub(crate) wakeups: AtomicU64,
    /// Threads in its local queues, as of its last pass through its scheduler loop.
    pub(crate) queued: AtomicU64,
    /// I/O operations submitted and completed by its driver, as of its last pass.
    pub(crate) io_submitted: AtomicU64,
    pub(crate) io_completed: AtomicU64,
}

/// Adds `n` to a counter only its owner writes (module doc).
#[inline]
pub(crate) fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// Reads a counter.
pub(crate) fn read(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}
