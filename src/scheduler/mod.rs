//! The work-stealing M:N scheduler: the runtime's shared state, the workers' loop, placement,
//! stealing and idling.
//!
//! # The problem
//! Many green threads run on a few kernel threads ("workers"). A switch must cost a few
//! nanoseconds; idle workers must sleep, not spin; no wake-up may be lost; and a green thread that
//! has run must stay on its worker (DESIGN-NOTES section 1: thread-locals and LLVM's cached TLS
//! addresses make migration unsound in safe Rust).
//!
//! # The design
//! - **Fresh threads are stealable.** A spawned thread that has not run holds only its `Send`
//!   closure: it goes to the spawning worker's crossbeam deque (FIFO), or to the runtime's injector
//!   when spawned from outside. Idle workers steal half a victim's deque.
//! - **Started threads are pinned.** At its first run a thread records the worker's `Home`; every
//!   later wake-up puts it back there (the "next" slot and local queue from the home worker itself,
//!   the inbox from anywhere else; see `task::runq` and `park`).
//! - **Placement** (`placement`): a spawner that spawns and carries on, such as an accept loop,
//!   has its children spread over the workers; `spawn(f).join()` stays on one worker.
//! - **Switching away** is not here: a green thread that yields, blocks or exits switches directly
//!   to the next runnable thread of its worker through `park::local`, and comes back to the
//!   scheduler context (the loop in `worker`) only when its worker has nothing local to run, on
//!   every 61st switch, or on exit.
//! - **Idle** (`idle`): spin a little, then announce, fence, re-check and sleep in the driver.
//!
//! # I/O
//! Each worker creates its I/O driver on its own kernel thread when it starts and reports the
//! outcome to `Builder::build`. On every pass through the scheduler context the worker calls
//! `driver::poll`, which hands the submissions batched by its green threads to the kernel and
//! reaps completions without blocking (readying their threads); so submissions are flushed before
//! the scheduler context switches into a green thread, and `driver::wait` flushes them before
//! sleeping.
//!
//! # Accessing per-worker state
//! The worker's state is reached through the thread-local pointer of `park::local` (the
//! worker-local context), read by `#[inline(never)]` accessors, and only through raw pointers and
//! short borrows that never span a switch. Its `runtime` field identifies the worker's [`Shared`].

mod dump;
mod idle;
mod monitor;
mod placement;
mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};

use crossbeam_deque::{Injector, Stealer, Worker as Deque};
use parking_lot::Mutex;

use crate::driver::IoBackend;
use crate::park::local::local_ptr;
use crate::task::TaskRef;
use crate::task::runq::Home;

pub use dump::ThreadInfo;
pub(crate) use dump::{Collected, DumpRequest, PATIENCE as DUMP_PATIENCE};
pub(crate) use monitor::start as start_monitor;
pub(crate) use worker::{
    current_shared, current_shared_ptr, on_runtime, run_worker, take_default_stack,
};

/// The scheduling state of one runtime, shared by its workers and every spawner.
pub(crate) struct Shared {
    pub(crate) workers: Box<[WorkerShared]>,
    injector: Injector<TaskRef>,
    idle: Mutex<Vec<usize>>,
    num_idle: AtomicUsize,
    spinning: AtomicUsize,
    /// Green threads spawned and not yet exited, give or take exits a worker has not yet
    /// flushed (`Local::exits`): it may over-count, never under-count, so no worker can take
    /// the runtime for finished while a thread is alive.
    live: AtomicUsize,
    /// Green threads that exited (counted in the workers' batches, as `live`).
    exited: std::sync::atomic::AtomicU64,
    shutdown: AtomicBool,
    /// Who waits for `live` to reach zero after shutdown (see `runtime`).
    shutdown_waiter: Mutex<Option<TaskRef>>,
    /// Default usable stack size for threads of this runtime.
    pub(crate) stack_size: usize,
    /// The I/O backend chosen for this runtime's workers (a worker may still fall back to epoll
    /// if its own ring cannot be had; see `run_worker`).
    pub(crate) backend: IoBackend,
    /// Wakes a sleeping worker when a busy one sits on threads nobody takes (`monitor`).
    pub(crate) monitor: monitor::Monitor,
}

/// What other threads may touch of a worker.
pub(crate) struct WorkerShared {
    pub(crate) home: Arc<Home>,
    stealer: Stealer<TaskRef>,
    /// Dumps posted to this worker and not yet answered (`dump`).
    dumps: Mutex<Vec<Arc<DumpRequest>>>,
    /// Set when a dump is posted; the worker's loop checks it on every pass.
    dump_posted: AtomicBool,
}

/// The local half of a worker, handed to its kernel thread.
pub(crate) struct WorkerSeed {
    index: usize,
    fresh: Deque<TaskRef>,
}

impl Shared {
    /// A runtime's scheduling state with `n` workers; returns the seeds to start them with.
    /// Fails if a worker's eventfd cannot be had.
    pub(crate) fn new(
        n: usize,
        stack_size: usize,
        backend: IoBackend,
    ) -> std::io::Result<(Arc<Shared>, Vec<WorkerSeed>)> {
        let mut seeds = Vec::with_capacity(n);
        let mut workers = Vec::with_capacity(n);
        for index in 0..n {
            let fresh = Deque::new_fifo();
            workers.push(WorkerShared {
                home: Arc::new(Home::new()?),
                stealer: fresh.stealer(),
                dumps: Mutex::new(Vec::new()),
                dump_posted: AtomicBool::new(false),
            });
            seeds.push(WorkerSeed { index, fresh });
        }
        let shared = Arc::new(Shared {
            workers: workers.into_boxed_slice(),
            injector: Injector::new(),
            idle: Mutex::new(Vec::with_capacity(n)),
            num_idle: AtomicUsize::new(0),
            spinning: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            exited: std::sync::atomic::AtomicU64::new(0),
            shutdown: AtomicBool::new(false),
            shutdown_waiter: Mutex::new(None),
            stack_size,
            backend,
            monitor: monitor::Monitor::new(),
        });
        Ok((shared, seeds))
    }

    /// Green threads that have exited (as of the workers' last flushes).
    pub(crate) fn exited(&self) -> u64 {
        self.exited.load(Ordering::Relaxed)
    }

    /// Green threads spawned on this runtime and not yet finished.
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Queues a fresh green thread (`t` is its scheduling reference).
    pub(crate) fn spawn(&self, t: TaskRef) {
        self.live.fetch_add(1, Ordering::Relaxed);
        let w = local_ptr();
        // SAFETY: a non-null context pointer is the live worker of this kernel thread; the borrow
        // ends before any switch.
        if let Some(w) = unsafe { w.as_mut() }
            && std::ptr::eq(w.runtime, (self as *const Shared).cast())
        {
            let Some(t) = self.place_if_spreading(w, t) else {
                return;
            };
            let had_work = !w.fresh.is_empty()
                // SAFETY: we are on the worker's own kernel thread.
                || !unsafe { w.home.local() }.is_empty();
            w.fresh.push(t);
            w.fresh_maybe = true;
            if had_work {
                fence(Ordering::SeqCst);
                self.wake_idle_if_none_spinning();
            }
            return;
        }
        self.injector.push(t);
        fence(Ordering::SeqCst);
        self.wake_idle();
    }

    /// Starts shutting down: workers exit once no green thread is left.
    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        self.wake_all();
    }

    /// Registers `t` to be woken (`sys` token) when shutdown is under way and no thread is left.
    pub(crate) fn set_shutdown_waiter(&self, t: Option<TaskRef>) {
        *self.shutdown_waiter.lock() = t;
    }

    fn is_done(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst) && self.live.load(Ordering::SeqCst) == 0
    }

    /// Counts `n` exits (a worker's batch).
    fn tasks_exited(&self, n: usize) {
        self.exited.fetch_add(n as u64, Ordering::Relaxed);
        if self.live.fetch_sub(n, Ordering::SeqCst) == n && self.shutdown.load(Ordering::SeqCst) {
            self.wake_all();
            if let Some(t) = self.shutdown_waiter.lock().take() {
                t.wake();
            }
        }
    }

    /// Work outside a worker's own inbox: the injector and every deque.
    fn has_other_work(&self) -> bool {
        !self.injector.is_empty() || self.workers.iter().any(|w| !w.stealer.is_empty())
    }
}
