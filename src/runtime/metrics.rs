//! Runtime metrics: counters read without stopping anything ([`Runtime::metrics`], [`metrics`]).
//!
//! The per-worker counters are written by their worker only, without a locked instruction, and
//! the switch count and queue depth are published on each pass of the worker through its
//! scheduler loop rather than counted on the switch path (see `task::stats`). A snapshot is
//! therefore a little behind a busy worker, never torn within one counter.
//!
//! The stacks' committed memory is not a counter: nothing on the spawn or exit path keeps it.
//! The snapshot measures it, with `mincore(2)` over the stack pool's chunks, whose address
//! ranges it copies under each size class's lock (`stack::pool`).

use std::fmt;

use super::Runtime;
use crate::scheduler::Shared;
use crate::task::stats::read;

/// A snapshot of a runtime's counters.
///
/// # Examples
///
/// ```
/// let rt = hilos::Runtime::builder().workers(2).build().unwrap();
/// for _ in 0..10 {
///     rt.spawn(|| hilos::yield_now()).join().unwrap();
/// }
/// let m = rt.metrics();
/// assert_eq!(m.total_threads, 10);
/// assert_eq!(m.workers.len(), 2);
/// assert!(m.stacks_mapped_bytes > 0);
/// // The threads ran on stacks that stay warm in the pool.
/// assert!(m.stacks_committed_bytes > 0);
/// assert!(m.stacks_committed_bytes <= m.stacks_mapped_bytes);
/// println!("{m}");
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RuntimeMetrics {
    /// Green threads spawned and not yet finished (exits are counted in batches, so this may
    /// briefly over-count).
    pub live_threads: usize,
    /// Green threads ever spawned on this runtime.
    pub total_threads: u64,
    /// One entry per worker.
    pub workers: Vec<WorkerMetrics>,
    /// Address space mapped for green stacks in this process (all runtimes; in use, pooled,
    /// cached, or mapped ahead for threads spawned and not yet run; guard pages and the workers'
    /// signal stacks included). Memory is committed only where a stack was touched: see
    /// `stacks_committed_bytes`.
    pub stacks_mapped_bytes: usize,
    /// Memory of the green stacks resident now, in this process (all runtimes): the pages of
    /// the stack pool's mappings that are in memory, by `mincore(2)` when the snapshot is
    /// taken. Counts stacks in use, and those pooled or cached warm for the next spawns (the
    /// pool releases the memory of stacks beyond a bound); each stack's thread-local area at
    /// its top included; guard pages never (they are never resident); the workers' signal
    /// stacks not. Pages swapped out are not counted; an untouched page a thread only read
    /// may be (the kernel's shared zero page). Costs a system call per 64 MiB of stack address
    /// space.
    pub stacks_committed_bytes: usize,
    /// Threads of the blocking pools ([`crate::unblock`], name resolution) running a job, in
    /// this process.
    pub blocking_busy: usize,
    /// Jobs waiting for a blocking-pool thread, in this process.
    pub blocking_queued: usize,
}

/// One worker's counters (see [`RuntimeMetrics`]).
///
/// # Examples
///
/// ```
/// let rt = hilos::Runtime::builder().workers(1).build().unwrap();
/// rt.block_on(|| {
///     for _ in 0..100 {
///         hilos::yield_now();
///     }
/// });
/// // Published on the worker's next pass through its scheduler loop: poll a little.
/// let mut seen = 0;
/// for _ in 0..1000 {
///     let w: &hilos::runtime::WorkerMetrics = &rt.metrics().workers[0];
///     seen = w.switches;
///     if seen >= 100 {
///         break;
///     }
///     std::thread::sleep(std::time::Duration::from_millis(1));
/// }
/// assert!(seen >= 100);
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct WorkerMetrics {
    /// Switches into green threads, as of the worker's last pass through its scheduler loop
    /// (at least every 61 switches).
    pub switches: u64,
    /// Batches of fresh threads stolen from other workers.
    pub steals: u64,
    /// Times the worker slept with nothing to run.
    pub sleeps: u64,
    /// Wake-ups of its threads that came from other kernel threads (through its inbox).
    pub wakeups: u64,
    /// Threads in its local queues (ready to run, or spawned here and not started).
    pub queued: u64,
    /// I/O operations its driver submitted (io_uring), or readiness waits it registered (epoll).
    pub io_submitted: u64,
    /// I/O completions its driver reaped, or readiness waits that fired (epoll).
    pub io_completed: u64,
    /// Started threads pinned to it.
    pub pinned: usize,
}

impl RuntimeMetrics {
    pub(super) fn new(shared: &Shared) -> RuntimeMetrics {
        let live = shared.live();
        let workers = shared
            .workers
            .iter()
            .map(|w| {
                let s = &w.home.stats;
                WorkerMetrics {
                    switches: read(&s.switches),
                    steals: read(&s.steals),
                    sleeps: read(&s.sleeps),
                    wakeups: read(&s.wakeups),
                    queued: read(&s.queued),
                    io_submitted: read(&s.io_submitted),
                    io_completed: read(&s.io_completed),
                    pinned: w
                        .home
                        .load
                        .pinned
                        .load(std::sync::atomic::Ordering::Relaxed),
                }
            })
            .collect();
        let (blocking_busy, blocking_queued) = crate::io::unblock::pool_counts();
        RuntimeMetrics {
            live_threads: live,
            total_threads: shared.spawned(),
            workers,
            stacks_mapped_bytes: crate::stack::mapped_bytes(),
            stacks_committed_bytes: crate::stack::committed_bytes(),
            blocking_busy,
            blocking_queued,
        }
    }
}

impl fmt::Display for RuntimeMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "threads: {} live, {} spawned; stacks: {} MiB mapped, {:.1} MiB committed; \
             blocking pool: {} busy, {} queued",
            self.live_threads,
            self.total_threads,
            self.stacks_mapped_bytes >> 20,
            self.stacks_committed_bytes as f64 / (1 << 20) as f64,
            self.blocking_busy,
            self.blocking_queued
        )?;
        for (i, w) in self.workers.iter().enumerate() {
            writeln!(
                f,
                "worker {i}: {} switches, {} steals, {} sleeps, {} wake-ups, {} queued, {} pinned, \
                 io {} submitted / {} completed",
                w.switches,
                w.steals,
                w.sleeps,
                w.wakeups,
                w.queued,
                w.pinned,
                w.io_submitted,
                w.io_completed
            )?;
        }
        Ok(())
    }
}

impl Runtime {
    /// A snapshot of this runtime's counters (see [`RuntimeMetrics`]). Stops nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = hilos::Runtime::builder().workers(1).build().unwrap();
    /// rt.spawn(|| ()).join().unwrap();
    /// assert_eq!(rt.metrics().total_threads, 1);
    /// ```
    pub fn metrics(&self) -> RuntimeMetrics {
        RuntimeMetrics::new(&self.shared)
    }
}

/// A snapshot of the global runtime's counters (see [`Runtime::metrics`]); starts the global
/// runtime if it has not started.
///
/// # Examples
///
/// ```
/// hilos::spawn(|| ()).join().unwrap();
/// let m = hilos::runtime::metrics();
/// assert!(m.total_threads >= 1);
/// assert!(!m.workers.is_empty());
/// ```
pub fn metrics() -> RuntimeMetrics {
    RuntimeMetrics::new(&super::global_shared())
}
