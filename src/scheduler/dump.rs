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
//! request. The last worker to answer wakes the dumper. (A worker about to sleep checks the flag
//! once more after its fence (`idle`): the eventfd write that came with a dump may have been
//! reaped by the pass's `driver::poll` after the pass checked the flag, and then would not end
//! the sleep; a dump then waited its full patience for a worker that was merely idle.) No thread
//! can exit during the walk (its exit would run on this very worker), and the fields read are
//! written only by the thread itself, on this worker, while it runs: no race, and nothing stops
//! the world; each worker pauses its own threads for the length of its walk (under a
//! microsecond per thread: 100,000 parked threads on 2 workers dump in 50-60 ms, release build,
//! 2-core VM).
//!
//! When the dumper is itself a green thread of the runtime, it takes its own worker's part
//! itself, right after posting the others: while it runs, none of its worker's other threads
//! does, which is all the walk needs (and a dump taken by the only thread of a one-worker
//! runtime then neither waits nor switches, so it lists that worker's threads exactly as they
//! were when it was called).
//!
//! # Threads not started
//! A fresh thread sits in a queue until its first run: its worker's deque (crossbeam, LIFO for
//! the owner, stealable from the other end), the runtime's injector (spawned from outside), or,
//! when a spawner placed it on another worker (`placement`), that worker's inbox and local
//! queue. Its id, name and spawn location are written before the queue push that publishes it
//! and never change; the thread cannot be freed while it is queued (the queue holds its
//! scheduling reference), and the dump reads nothing else of it (not its stack, which a thread
//! not started need not have). Each is listed as `runnable (not started)`:
//! - *A worker's deque*: nobody may walk it, but its owner may pop it. The answering worker
//!   pops every entry (newest to oldest), records it, and pushes them back oldest first, so its
//!   own scheduling order is unchanged; then, as a spawn does, it wakes an idle worker if none
//!   is spinning (a thief that found the deque empty meanwhile may have gone to sleep). Cost:
//!   a pop and a push per entry (tens of nanoseconds each: the LIFO pop has a fence); a
//!   one-worker runtime's only thread dumping 100,000 threads not started took 30-60 ms
//!   (release build, 2-core VM), about what 100,000 parked threads take.
//! - *The injector*: the dumper takes every entry (oldest first, from any kernel thread: the
//!   injector is a multi-consumer queue), records it and pushes them back in the same order,
//!   then wakes an idle worker, as a spawn from outside does. Threads spawned from outside
//!   during those microseconds are queued ahead of the ones taken; nothing else changes.
//!   (Rejected: a worker stealing the injector into its own deque to list it there, which would
//!   move the threads to that worker for good and change their order.)
//! - *A worker's inbox and local queue* (placed threads): the owner moves its inbox into its
//!   local queue (what its next pick does anyway) and reads the queue and its "next" slot in
//!   place; a queued thread whose `home` is still unset has not run.
//!
//! Entries taken by a thief while a worker or the dumper holds the rest are started elsewhere,
//! and may then be listed by both (as not started here, started there): the dump keeps one line
//! per id, the started one. A thread in flight between two queues (stolen and not yet pushed)
//! is in none, and is missing: the dump gives the number of threads it did not list (the live
//! count less the lines, approximate while threads start and exit).
//!
//! Limits, said in the dump:
//! - A worker that runs one green thread for a long time without switching (no preemption)
//!   answers late. The dumper waits at most a bounded time ([`PATIENCE`]) and then names the
//!   workers that did not answer; their threads are missing from the dump.
//! - Threads not started are listed from queues that others take from at the same time
//!   (above): approximate, as the rest of a dump.
//! - The time in a state is measured on the worker's coarse clock, which it reads on each pass
//!   through its scheduler loop (at least every 61 switches, and when it wakes): a thread that
//!   parked while a sibling computed for a long time is shown as waiting for longer than it did.

use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering, fence};
use std::time::{Duration, Instant};

use crossbeam_deque::Steal;
use parking_lot::Mutex;

use super::Shared;
use super::worker::{Worker, on_runtime};
use crate::park;
use crate::park::local::{Local, local_ptr};
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
/// assert!(me.started());
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
    started: bool,
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

    /// What the thread was doing when the dump was taken ([`ThreadState::Runnable`] for a
    /// thread not started).
    pub fn state(&self) -> ThreadState {
        self.state
    }

    /// Whether the thread had run when the dump was taken. A thread not started waits in a
    /// queue for its first run: its worker's, or the runtime's injector.
    pub fn started(&self) -> bool {
        self.started
    }

    /// How long the thread had been in its state, for a thread that waits (approximate: see
    /// [`crate::runtime::ThreadDump`]).
    pub fn waiting_for(&self) -> Option<Duration> {
        self.waiting
    }

    /// The worker the thread is pinned to; for a thread not started, the worker whose queue
    /// holds it, or `None` if it waits in the runtime's injector (spawned from outside the
    /// runtime).
    pub fn worker(&self) -> Option<usize> {
        self.worker
    }

    /// Where the thread was spawned.
    pub fn spawned_at(&self) -> &'static Location<'static> {
        self.spawned_at
    }

    /// A thread not started, held in a queue of `worker` (`None`: the injector).
    fn not_started(h: &Header, worker: Option<usize>) -> ThreadInfo {
        let g = h.green().expect("hilos: a kernel thread was queued");
        ThreadInfo {
            id: h.id(),
            name: h.name().map(String::from),
            state: ThreadState::Runnable,
            waiting: None,
            worker,
            spawned_at: g.spawned_at,
            started: false,
        }
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
    /// One per thread, sorted by id.
    pub(crate) threads: Vec<ThreadInfo>,
    /// Workers that did not answer in time.
    pub(crate) silent: Vec<usize>,
    /// Live threads not listed (approximate; module doc).
    pub(crate) unlisted: usize,
}

impl Shared {
    /// Asks every worker for its threads and waits up to [`PATIENCE`] for the answers.
    pub(crate) fn collect_dump(&self) -> Collected {
        // The caller's own worker, if it is a green thread of this runtime: answered here.
        let here = if on_runtime(self) {
            // SAFETY: a green thread's kernel thread has a live worker context; a plain read.
            unsafe { local_ptr().as_ref() }.map(|l| l.index)
        } else {
            None
        };
        let req = Arc::new(DumpRequest {
            threads: Mutex::new(Vec::new()),
            pending: AtomicUsize::new(self.workers.len() - usize::from(here.is_some())),
            dumper: crate::task::current(),
        });
        for (i, w) in self.workers.iter().enumerate() {
            if Some(i) == here {
                continue;
            }
            w.dumps.lock().push(req.clone());
            w.dump_posted.store(true, Ordering::Release);
            // Unconditional: an eventfd write to a worker that is not asleep ends its next wait
            // at once, which is harmless.
            w.home.parker.wake();
        }
        if here.is_some() {
            // SAFETY: we are `req.dumper`, a green thread running on this kernel thread's
            // worker, and do not switch before `answer` returns.
            unsafe { answer(self, &mut *local_ptr(), &req) };
        }
        self.list_injector(&req);
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
        let mut threads = std::mem::take(&mut *req.threads.lock());
        // A thread listed twice (not started in one queue, then started elsewhere: module doc)
        // keeps its started line.
        threads.sort_unstable_by_key(|t| (t.id(), !t.started));
        threads.dedup_by_key(|t| t.id());
        let unlisted = self.live().saturating_sub(threads.len());
        Collected {
            threads,
            silent,
            unlisted,
        }
    }

    /// Lists the threads waiting in the injector into `req` (module doc, "Threads not
    /// started"): takes them all, oldest first, and pushes them back in the same order.
    fn list_injector(&self, req: &DumpRequest) {
        let mut taken: Vec<TaskRef> = Vec::new();
        loop {
            match self.injector.steal() {
                Steal::Success(t) => taken.push(t),
                Steal::Empty => break,
                Steal::Retry => continue,
            }
        }
        if taken.is_empty() {
            return;
        }
        // We hold the threads' scheduling references: alive, and their header fields read
        // were written before the spawner's push, which the steal synchronised with.
        let mut part: Vec<ThreadInfo> = taken
            .iter()
            .map(|t| ThreadInfo::not_started(t, None))
            .collect();
        for t in taken {
            self.injector.push(t);
        }
        // As a spawn from outside: a worker that found the injector empty meanwhile may sleep.
        fence(Ordering::SeqCst);
        self.wake_idle();
        req.threads.lock().append(&mut part);
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
        for req in reqs {
            // SAFETY: we are this worker's scheduler context; no green thread of it runs.
            unsafe { answer(&self.shared, &mut self.local, &req) };
            if req.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
                req.dumper.wake();
            }
        }
    }
}

/// Appends to `req` one [`ThreadInfo`] per thread of the worker whose context is `l`: the
/// started threads of its list, then the threads not started in its queues (module doc).
///
/// # Safety
/// The caller runs on `l`'s kernel thread, as its scheduler context or as the green thread
/// `req.dumper` running on it, and does not switch during the call; so no other green thread of
/// that worker runs meanwhile.
unsafe fn answer(shared: &Shared, l: &mut Local, req: &DumpRequest) {
    if l.exits > 0 {
        shared.tasks_exited(std::mem::take(&mut l.exits));
    }
    let now = coarse_ms();
    let mut part = Vec::new();
    let mut p = l.threads;
    while let Some(h) = std::ptr::NonNull::new(p as *mut Header) {
        // SAFETY: a listed thread is alive until this worker unlinks it at its exit, which
        // cannot run while we walk (per the contract, no other thread of this worker runs); the
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
            worker: Some(l.index),
            spawned_at: g.spawned_at,
            started: true,
        });
        p = g.reg_next.get();
    }
    let index = Some(l.index);
    // Placed threads not started, in the inbox, local queue and "next" slot (module doc).
    // SAFETY: we are the owning worker's kernel thread (contract); the borrows are short.
    unsafe {
        l.home.drain_inbox();
        let next = l
            .home
            .next_slot()
            .as_ref()
            .map(|t| t.as_ptr().as_ptr().cast_const());
        for p in next.into_iter().chain(l.home.local().iter()) {
            // Queued: alive (the queue holds its scheduling reference). `home` is set only by
            // the worker that pins the thread at its first run: for a thread in our queues,
            // by us.
            let h = &*p;
            if h.green().is_some_and(|g| g.home.get().is_null()) {
                part.push(ThreadInfo::not_started(h, index));
            }
        }
    }
    // The fresh deque: pop all (newest first), push back oldest first (module doc).
    let mut taken: Vec<TaskRef> = Vec::new();
    while let Some(t) = l.fresh.pop() {
        taken.push(t);
    }
    if !taken.is_empty() {
        part.extend(taken.iter().map(|t| ThreadInfo::not_started(t, index)));
        let many = taken.len() > 1;
        for t in taken.into_iter().rev() {
            l.fresh.push(t);
        }
        l.fresh_maybe = true;
        if many {
            // As a spawn does: a thief that found the deque empty meanwhile may sleep.
            fence(Ordering::SeqCst);
            shared.wake_idle_if_none_spinning();
        }
    }
    req.threads.lock().append(&mut part);
}
