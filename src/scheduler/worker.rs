//! A worker: its kernel thread's loop in the scheduler context, and where it finds work.
//!
//! The loop publishes its progress (for the monitor), fires due timers, polls the I/O driver
//! (flushing batched submissions and readying threads whose I/O completed), then runs the next
//! thread it finds: the worker's own queues first (with a fairness tick every
//! [`FAIRNESS_TICKS`] switches that looks at the injector and alternates local and fresh work),
//! then the runtime's injector, then other workers' fresh deques, stealing half. With nothing to
//! run it flushes its exit count and idles (`idle`). The green threads themselves switch among
//! one another through `park::local` without coming back here.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_deque::Steal;

use super::{Shared, WorkerSeed};
use crate::driver::{self, IoBackend};
use crate::park::local::{self, FAIRNESS_TICKS, Local, local_ptr};
use crate::stack;
use crate::task::TaskRef;
use crate::task::stats;

/// Every this many passes of the fairness tick, the worker takes its oldest fresh thread first
/// (`scheduler`, "Fresh threads"): so a fresh thread waits at most about
/// `OLDEST_EVERY * FAIRNESS_TICKS` switches for each older fresh thread of its worker.
const OLDEST_EVERY: u32 = 16;

/// A worker; lives on its kernel thread's own stack for as long as the worker runs.
pub(super) struct Worker {
    /// The worker-local context the green threads switch through; installed as this kernel
    /// thread's `park::local` pointer.
    pub(super) local: Local,
    pub(super) shared: Arc<Shared>,
    /// State of the xorshift that orders steal victims.
    rng: u32,
    /// `local.tick` when the switch count was last published (`publish_stats`).
    published_tick: u32,
}

/// The runtime whose worker runs on this kernel thread, if any.
pub(crate) fn current_shared() -> Option<Arc<Shared>> {
    let p = current_shared_ptr();
    if p.is_null() {
        return None;
    }
    // SAFETY: a non-null pointer is the runtime of this kernel thread's live worker, which keeps
    // an `Arc` of it (`Worker::shared`) while its context is installed; we take our own count.
    unsafe {
        Arc::increment_strong_count(p);
        Some(Arc::from_raw(p))
    }
}

/// The runtime of the worker running on this kernel thread, as a raw pointer (null elsewhere).
/// Valid while the caller runs on that worker; do not keep it across a switch.
#[inline]
pub(crate) fn current_shared_ptr() -> *const Shared {
    // SAFETY: a non-null pointer is this kernel thread's live worker context; a plain read.
    unsafe { local_ptr().as_ref() }.map_or(std::ptr::null(), |l| l.runtime.cast::<Shared>())
}

/// Whether the caller is a green thread of the runtime `shared`.
pub(crate) fn on_runtime(shared: &Shared) -> bool {
    crate::task::current_green().is_some() && std::ptr::eq(current_shared_ptr(), shared)
}

/// Runs a worker on the calling kernel thread until its runtime shuts down and drains.
///
/// First creates the worker's I/O driver on this kernel thread (io_uring's `SINGLE_ISSUER` ring
/// belongs to the thread that made it) and sends the outcome through `ready`: the backend in use,
/// or the error, in which case the worker returns at once.
pub(crate) fn run_worker(
    shared: Arc<Shared>,
    seed: WorkerSeed,
    ready: std::sync::mpsc::Sender<std::io::Result<IoBackend>>,
) {
    let home = shared.workers[seed.index].home.clone();
    // SAFETY: gettid has no preconditions.
    home.watch
        .tid
        .store(unsafe { libc::gettid() }, Ordering::Relaxed);
    match driver::Driver::new(shared.backend, home.parker.raw_fd()) {
        Ok(d) => {
            let _ = ready.send(Ok(d.backend()));
            driver::install(d);
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    }
    drop(ready);
    let _alt = stack::overflow::ensure_altstack();
    // Per-kernel-thread state that this worker's green threads share with it (`tls`).
    let sched_tp = crate::tls::worker_started();
    stack::worker_started();
    crate::task::small::worker_started();
    let runtime = Arc::as_ptr(&shared).cast::<()>();
    let mut w = Worker {
        local: Local::new(seed.index, runtime, home, seed.fresh, sched_tp),
        shared,
        rng: 0x9E37_79B9 ^ (seed.index as u32).wrapping_mul(0x85EB_CA6B) | 1,
        published_tick: 0,
    };
    let wp: *mut Worker = &mut w;
    // SAFETY: `w` outlives the loop and is removed before it goes; everything reaches it through
    // short borrows that never span a switch.
    unsafe {
        local::install(&raw mut (*wp).local);
        crate::tls::worker_ready();
        worker_loop(wp);
        local::install(std::ptr::null_mut());
    }
    crate::tls::worker_stopped();
    w.local.release_stacks();
    // No green thread is left, so no operation is in flight.
    driver::uninstall();
}

/// The scheduler context's loop.
///
/// # Safety
/// `w` is this kernel thread's worker, valid for the whole call.
unsafe fn worker_loop(w: *mut Worker) {
    loop {
        // SAFETY: per the function contract; the borrow ends before run_task switches.
        let next = unsafe {
            let wr = &mut *w;
            // Published here rather than at every switch: a worker passes through this loop at
            // least every `FAIRNESS_TICKS` switches, which is often enough for the monitor.
            wr.local
                .home
                .load
                .progress
                .store(wr.local.tick, Ordering::Relaxed);
            // The coarse clock parking threads stamp themselves with, and dumps (`dump`).
            crate::task::wait::tick_clock();
            wr.publish_stats();
            if wr.shared.workers[wr.local.index]
                .dump_posted
                .load(Ordering::Relaxed)
            {
                wr.answer_dumps();
            }
            wr.local.fire_timers();
            // Flush batched submissions and ready the threads whose I/O completed; so nothing
            // submitted waits longer than one pass through here.
            driver::poll();
            wr.find_work()
        };
        if let Some(t) = next {
            // SAFETY: per the function contract.
            unsafe { local::run_task(&raw mut (*w).local, t) };
            continue;
        }
        // SAFETY: per the function contract.
        let wr = unsafe { &mut *w };
        wr.flush_exits();
        if wr.shared.is_done() {
            return;
        }
        if let Some(t) = wr.idle() {
            // SAFETY: per the function contract.
            unsafe { local::run_task(&raw mut (*w).local, t) };
        }
    }
}

impl Worker {
    /// Publishes the counters kept off the switch path (`task::stats`): switches since the last
    /// pass, the local queue depth and the driver's I/O counts.
    fn publish_stats(&mut self) {
        let s = &self.local.home.stats;
        let ticks = self.local.tick.wrapping_sub(self.published_tick);
        self.published_tick = self.local.tick;
        stats::bump(&s.switches, ticks as u64);
        // SAFETY: we are on the worker's own kernel thread; the borrow is short.
        let local = unsafe { self.local.home.local() }.len();
        s.queued
            .store((local + self.local.fresh.len()) as u64, Ordering::Relaxed);
        let io = driver::counts();
        s.io_submitted.store(io.submitted, Ordering::Relaxed);
        s.io_completed.store(io.completed, Ordering::Relaxed);
    }

    /// Subtracts the batched exits from the runtime's live count.
    pub(super) fn flush_exits(&mut self) {
        if self.local.exits > 0 {
            self.shared
                .tasks_exited(std::mem::take(&mut self.local.exits));
        }
    }

    /// Next runnable thread for the scheduler context.
    fn find_work(&mut self) -> Option<TaskRef> {
        if self.local.tick.is_multiple_of(FAIRNESS_TICKS) {
            self.local.tick = self.local.tick.wrapping_add(1);
            if let Some(t) = self.pop_injector() {
                return Some(t);
            }
            // Skip the "next" slot, so that a ping-pong pair handing it to each other cannot
            // starve the local queue; every [`OLDEST_EVERY`]th pass take the oldest fresh thread
            // first, so that no fresh thread waits forever behind newer ones (`scheduler`,
            // "Fresh threads").
            // SAFETY: we are on the worker's own kernel thread.
            unsafe {
                self.local.home.drain_inbox();
                if (self.local.tick / FAIRNESS_TICKS).is_multiple_of(OLDEST_EVERY)
                    && let Some(t) = self.local.pop_oldest_fresh()
                {
                    return Some(t);
                }
                if let Some(t) = self.local.home.local().pop_front() {
                    return Some(t);
                }
            }
        }
        self.local
            .pick_local(false)
            .or_else(|| self.pop_injector())
            .or_else(|| self.steal())
    }

    pub(super) fn pop_injector(&mut self) -> Option<TaskRef> {
        loop {
            match self.shared.injector.steal_batch_and_pop(&self.local.fresh) {
                Steal::Success(t) => {
                    self.local.fresh_maybe = true;
                    return Some(t);
                }
                Steal::Empty => return None,
                Steal::Retry => continue,
            }
        }
    }

    pub(super) fn steal(&mut self) -> Option<TaskRef> {
        let n = self.shared.workers.len();
        if n <= 1 {
            return None;
        }
        // xorshift32: a different victim order each time.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 17;
        self.rng ^= self.rng << 5;
        let start = self.rng as usize % n;
        for k in 0..n {
            let i = (start + k) % n;
            if i == self.local.index {
                continue;
            }
            loop {
                match self.shared.workers[i]
                    .stealer
                    .steal_batch_and_pop(&self.local.fresh)
                {
                    Steal::Success(t) => {
                        self.local.fresh_maybe = true;
                        stats::bump(&self.local.home.stats.steals, 1);
                        return Some(t);
                    }
                    Steal::Empty => break,
                    Steal::Retry => continue,
                }
            }
        }
        None
    }
}
