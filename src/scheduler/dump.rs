//! Thread dumps: every worker lists its own green threads, at a safe point of its own.
//!
//! # The problem
//! A dump reads every live green thread's control block: name, what it waits on, since when. A
//! thread may exit and be freed at any moment on another kernel thread, and its `Cell` fields
//! are written by the thread itself while it runs; reading them from the dumping thread would be
//! a data race or a use-after-free. And the switch path, which every park and wake-up takes, must
//! not pay for dumps that are rarely taken.
//!
//! # Alternatives rejected
//! - A registry of all threads behind a per-worker lock, taken at spawn and exit and by the
//!   dumper: a locked instruction or two on every spawn and exit (spawn+join is ~170 ns), and a
//!   fresh thread spawned on one worker and stolen by another exits on a different worker than
//!   it was registered on, so the lock would be contended across workers.
//! - Stopping the world: no worker can be stopped while it runs a green thread (no preemption).
//!
//! # The design
//! A started green thread is pinned to its worker, which links it into its own intrusive list at
//! its first run and unlinks it at its exit (`park::local`, `Local::threads`): both on the
//! worker's kernel thread, so the list costs a few plain stores per thread and no locked
//! instruction. To dump, the dumper posts a request to every worker (a short-locked queue per
//! worker and a flag), and writes each worker's eventfd so that a sleeping one wakes. Each worker
//! checks the flag (one relaxed load) on every pass through its scheduler loop, where none of its
//! green threads runs, walks its own list and appends one [`ThreadInfo`] per thread to the
//! request. The last worker to answer wakes the dumper. No thread can exit during the walk (its
//! exit would run on this very worker), and the fields read are written only by the thread
//! itself, on this worker, while it runs: no race, and nothing stops the world; each worker
//! pauses its own threads for the length of its walk (under a microsecond per thread: 100,000
//! parked threads on 2 workers dump in about 60 ms, release build, 2-core VM).
//!
//! Limits, said in the dump:
//! - A worker that runs one green thread for a long time without switching (no preemption)
//!   answers late. The dumper waits at most a bounded time ([`PATIENCE`]) and then names the
//!   workers that did not answer; their threads are missing from the dump.
//! - Threads spawned and not yet started sit in stealable queues that nobody may walk; the dump
//!   gives their number (the runtime's live count less the threads listed: approximate while
//!   threads start and exit during the dump).
//! - The time in a state is measured on the worker's coarse clock, which it reads on each pass
//!   through its scheduler loop (at least every 61 switches, and when it wakes): a thread that
//!   parked while a sibling computed for a long time is shown as waiting for longer than it did.

use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::Shared;
use super::worker::Worker;
use crate::park;
use crate::task::wait::{coarse_ms, elapsed_ms};
use crate::task::{Header, TaskRef, ThreadId, ThreadState, Which};

/// How long a dump waits for the workers to answer.
pub(crate) const PATIENCE: Duration = Duration::from_secs(1);

/// One green thread in a dump (see [`crate::runtime::ThreadDump`]).
///
/// # Examples
///
/// ```
/// let rt = hilos::Runtime::builder().workers(1).build().unwrap();
/// let dump = rt.block_on(|| rt.dump());
/// let me: &hilos::runtime::ThreadInfo = dump.iter().next().unwrap();
/// assert_eq!(me.state(), hilos::runtime::ThreadState::Running);
/// assert_eq!(me.worker(), Some(0));
/// assert!(me.spawned_at().file().ends_with(".rs"));
/// ```
#[derive(Clone, Debug)]
pub struct ThreadInfo {
    id: ThreadId,
    name: Option<String>,
    state: ThreadState,
    waiting: Option<Duration>,
    worker: Option<usize>,
    spawned_at: &'static Location<'static>,
}

impl ThreadInfo {
    /// The thread's id.
    pub fn id(&self) -> ThreadId {
        self.id
    }

    /// The thread's name, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// What the thread was doing when the dump was taken.
    pub fn state(&self) -> ThreadState {
        self.state
    }

    /// How long the thread had been in its state, for a thread that waits (approximate: see
    /// [`crate::runtime::ThreadDump`]).
    pub fn waiting_for(&self) -> Option<Duration> {
        self.waiting
    }

    /// The worker the thread is pinned to.
    pub fn worker(&self) -> Option<usize> {
        self.worker
    }

    /// Where the thread was spawned.
    pub fn spawned_at(&self) -> &'static Location<'static> {
        self.spawned_at
    }
}

/// A dump in the making: what the workers answered so far.
pub(crate) struct DumpRequest {
    threads: Mutex<Vec<ThreadInfo>>,
    /// Workers yet to answer.
    pending: AtomicUsize,
    /// Who waits for the answers (shown as `Running` if it is one of the runtime's threads).
    dumper: TaskRef,
}

/// What [`Shared::collect_dump`] gathered.
pub(crate) struct Collected {
    pub(crate) threads: Vec<ThreadInfo>,
    /// Workers that did not answer in time.
    pub(crate) silent: Vec<usize>,
    /// Threads spawned and not yet started (approximate; module doc).
    pub(crate) unstarted: usize,
}

impl Shared {
    /// Asks every worker for its threads and waits up to [`PATIENCE`] for the answers.
    pub(crate) fn collect_dump(&self) -> Collected {
        let req = Arc::new(DumpRequest {
            threads: Mutex::new(Vec::new()),
            pending: AtomicUsize::new(self.workers.len()),
            dumper: crate::task::current(),
        });
        for w in self.workers.iter() {
            w.dumps.lock().push(req.clone());
            w.dump_posted.store(true, Ordering::Release);
            // Unconditional: an eventfd write to a worker that is not asleep ends its next wait
            // at once, which is harmless.
            w.home.parker.wake();
        }
        let deadline = Instant::now() + PATIENCE;
        while req.pending.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            park::park(Which::Sys, Some(deadline), ThreadState::Running);
        }
        let mut silent = Vec::new();
        for (i, w) in self.workers.iter().enumerate() {
            let mut q = w.dumps.lock();
            let before = q.len();
            q.retain(|r| !Arc::ptr_eq(r, &req));
            if q.len() != before {
                silent.push(i);
            }
        }
        let threads = std::mem::take(&mut *req.threads.lock());
        let unstarted = self.live().saturating_sub(threads.len());
        Collected {
            threads,
            silent,
            unstarted,
        }
    }
}

impl Worker {
    /// Answers the dumps posted to this worker, if any (module doc). Called by the scheduler
    /// loop, where none of this worker's green threads runs.
    #[cold]
    pub(super) fn answer_dumps(&mut self) {
        let me = &self.shared.workers[self.local.index];
        if !me.dump_posted.swap(false, Ordering::Acquire) {
            return;
        }
        let reqs = std::mem::take(&mut *me.dumps.lock());
        if reqs.is_empty() {
            return;
        }
        self.flush_exits();
        let now = coarse_ms();
        for req in reqs {
            let mut part = Vec::new();
            let mut p = self.local.threads;
            while let Some(h) = std::ptr::NonNull::new(p as *mut Header) {
                // SAFETY: a listed thread is alive until this worker unlinks it at its exit,
                // which cannot run while we walk (we are this worker's scheduler context); the
                // fields read are written only by the thread while it runs, here.
                let h = unsafe { h.as_ref() };
                let g = h
                    .green()
                    .expect("hilos: a kernel thread in a worker's list");
                let state = if std::ptr::eq(h, &*req.dumper) {
                    ThreadState::Running
                } else {
                    g.state.get()
                };
                let waiting = match state {
                    ThreadState::Running | ThreadState::Runnable => None,
                    _ => Some(elapsed_ms(now, g.since_ms.get())),
                };
                part.push(ThreadInfo {
                    id: h.id(),
                    name: h.name().map(String::from),
                    state,
                    waiting,
                    worker: Some(self.local.index),
                    spawned_at: g.spawned_at,
                });
                p = g.reg_next.get();
            }
            req.threads.lock().append(&mut part);
            if req.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
                req.dumper.wake();
            }
        }
    }
}
