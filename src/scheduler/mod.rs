//! The work-stealing M:N scheduler: workers, run queues, switching away, idling.
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
//! - **Started threads are pinned.** At its first run a thread records the worker's [`Home`]; every
//!   later wake-up puts it back there (the "next" slot and local queue from the home worker itself,
//!   the inbox from anywhere else; see `task`).
//! - **Placement.** A fresh thread normally goes to its spawner's own deque, so that
//!   `spawn(f).join()` runs the child on the joiner's worker (about 150 ns; on another worker each
//!   join would be a cross-worker wake-up of microseconds). But a spawner that spawns and carries
//!   on, such as an accept loop, would then pin nearly all its children to its own worker: it
//!   parks (in `accept`) right after each spawn, its worker runs the child at once, and the other
//!   workers, asleep, are never asked to steal. Such children live long (connections), so how
//!   they are spread at their first run decides the load for good. The rule: a green thread that
//!   has spawned [`SPREAD_AFTER`] threads without joining one (`Green::spawned`, reset by every
//!   join) has each further child placed on the worker holding fewest threads, if that one holds
//!   more than [`SPREAD_SLACK`] fewer than its own: the child goes to that worker's inbox, which
//!   runs and pins it there. A worker's load (`Load`) counts the threads pinned to it and not
//!   exited (written by the worker alone, at first run and exit: no locked instruction on the
//!   spawn path) plus the threads placed on it and not yet run (so that a burst of spawns does not
//!   all go to the worker that was lightest before it started). Otherwise, or if no worker is
//!   lighter, the child goes to the spawner's deque as before. Rejected: round-robin over the
//!   workers once spreading (blind to threads' exits, and to load placed by other spawners);
//!   waking an idle worker at every spawn to steal (a cross-worker wake-up per spawn, and a race
//!   that the spawner's worker, already awake, mostly wins); migrating a thread at its first park
//!   (unsound, DESIGN-NOTES section 1). Load is not CPU time: a worker busy with one thread that
//!   never parks still gets its share of the placed children; and a spawner that collects its
//!   children's results through a channel rather than `join` counts as one that carries on.
//! - **Switching away.** A green thread that yields, blocks or exits calls [`switch_away`], which
//!   picks the next runnable thread of this worker and switches to it directly (one switch), or, if
//!   there is none, or on every 61st switch, or on exit, switches to the worker's own scheduler
//!   context (the kernel thread's original stack) that polls timers, the injector, the inbox, steals
//!   and sleeps. The 61-switch rule keeps the injector, timers and the local queue from being starved
//!   by two threads that keep handing the "next" slot to each other.
//! - **Exit.** A finished thread's stack cannot be freed while it is still running on it, so the
//!   context that runs next (another green thread, or the scheduler context) frees it right after
//!   the switch (`after_switch`).
//!
//! # Idle and wake-up ordering
//! A worker with nothing to do first spins a little, stealing (at most half the workers spin at
//! once), then announces itself asleep (`Home::sleeping`, the runtime's idle list), issues a
//! `SeqCst` fence, re-checks its inbox, the injector and every deque, and only then sleeps with the
//! earliest timer deadline as timeout, in its I/O driver's wait (`io::driver`), which its eventfd
//! ends. Producers push, fence, and then look at the announcements:
//! a remote wake-up, or a placed fresh thread, unparks the worker whose inbox it went to if that
//! worker sleeps (the inbox protocol of `task`); a spawn to the spawner's own deque wakes an idle
//! worker if there is
//! more queued work than the spawner itself is about to run and no worker is spinning. Either the
//! producer sees the announcement or the worker's re-check sees the work. A lone spawn therefore
//! wakes nobody (so `spawn(f).join()` stays on one worker); if its spawner then keeps its worker
//! busy without switching, the runtime's monitor thread (`monitor`) notices the untaken thread and
//! wakes a sleeper, within a few milliseconds. A wake-up is a write to
//! the worker's eventfd, made only when the worker announced it sleeps; a write that lands before
//! the worker enters its wait is kept in the eventfd's counter and ends that wait at once.
//!
//! # I/O
//! Each worker creates its I/O driver on its own kernel thread when it starts and reports the
//! outcome to `Builder::build`. On every pass through the scheduler context the worker calls
//! `io::driver::poll`, which hands the submissions batched by its green threads to the kernel and
//! reaps completions without blocking (readying their threads); so submissions are flushed before
//! the scheduler context switches into a green thread, and `io::driver::wait` flushes them before
//! sleeping.
//!
//! # Accessing per-worker state
//! The worker's state is reached through a thread-local pointer read by `#[inline(never)]`
//! accessors, and only through raw pointers and short borrows that never span a switch.

use std::cell::Cell;
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering, fence};
use std::time::{Duration, Instant};

use crossbeam_deque::{Injector, Steal, Stealer, Worker as Deque};
use parking_lot::Mutex;

use crate::arch;
use crate::io::driver::{self, IoBackend};
use crate::stack;
use crate::task::{
    self, Header, Home, PARKED, TaskRef, WAIT_NONE, WAIT_SLEEP, WAIT_SYS, WAIT_USER,
};
use crate::time::Timers;

mod monitor;

pub(crate) use monitor::start as start_monitor;

/// How many switches between two visits of the scheduler context.
const FAIRNESS_TICKS: u32 = 61;
/// How many rounds an idle worker tries to steal before it sleeps.
const SPIN_ROUNDS: u32 = 64;
/// Placement (module doc): a green thread that has spawned this many threads without joining
/// one may have its next spawns placed on another worker...
const SPREAD_AFTER: u32 = 4;
/// ...when that worker holds more than this many threads fewer than the spawner's.
const SPREAD_SLACK: usize = 4;

/// The scheduling state of one runtime, shared by its workers and every spawner.
pub(crate) struct Shared {
    pub(crate) workers: Box<[WorkerShared]>,
    injector: Injector<TaskRef>,
    idle: Mutex<Vec<usize>>,
    num_idle: AtomicUsize,
    spinning: AtomicUsize,
    /// Green threads spawned and not yet exited, give or take exits a worker has not yet
    /// flushed (`Worker::exits`): it may over-count, never under-count, so no worker can take
    /// the runtime for finished while a thread is alive.
    live: AtomicUsize,
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
    load: Load,
}

/// How many green threads a worker holds, read by spawners for placement (module doc). Padded:
/// the owner writes it at every first run and exit, and it should not share a cache line with
/// what the other workers read when they steal.
#[repr(align(128))]
struct Load {
    /// Threads pinned to the worker that have not exited. Written only by the owner, with a plain
    /// load and store (no locked instruction on the spawn path); read by spawners.
    pinned: AtomicUsize,
    /// Fresh threads placed on the worker's inbox that it has not run yet: added by the placer
    /// before the push, subtracted by the owner when it pins the thread.
    placed: AtomicUsize,
    /// The worker's switch count (`Worker::tick`), stored by the owner at every pass through its
    /// scheduler loop (at least every `FAIRNESS_TICKS` switches); read by the monitor to tell a
    /// worker stuck on one thread.
    progress: AtomicU32,
}

impl Load {
    fn get(&self) -> usize {
        self.pinned.load(Ordering::Relaxed) + self.placed.load(Ordering::Relaxed)
    }
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
                load: Load {
                    pinned: AtomicUsize::new(0),
                    placed: AtomicUsize::new(0),
                    progress: AtomicU32::new(0),
                },
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
            shutdown: AtomicBool::new(false),
            shutdown_waiter: Mutex::new(None),
            stack_size,
            backend,
            monitor: monitor::Monitor::new(),
        });
        Ok((shared, seeds))
    }

    /// Green threads spawned on this runtime and not yet finished.
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Queues a fresh green thread (`t` is its scheduling reference).
    pub(crate) fn spawn(&self, t: TaskRef) {
        self.live.fetch_add(1, Ordering::Relaxed);
        let w = worker_ptr();
        // SAFETY: a non-null worker pointer is the live worker of this kernel thread; the borrow
        // ends before any switch.
        if let Some(w) = unsafe { w.as_mut() }
            && ptr::eq(&*w.shared, self)
        {
            // SAFETY: a non-null `current` is the green thread running this code, alive while it
            // runs; its `spawned` cell is touched only by itself.
            if let Some(g) = unsafe { w.current.as_ref() }.and_then(Header::green) {
                let n = g.spawned.get();
                g.spawned.set(n.saturating_add(1));
                if n >= SPREAD_AFTER
                    && let Some(i) = self.lighter_worker(w.index)
                {
                    self.place(i, t);
                    return;
                }
            }
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

    /// Another worker holding more than [`SPREAD_SLACK`] threads fewer than worker `me`, the
    /// one holding fewest, if any.
    fn lighter_worker(&self, me: usize) -> Option<usize> {
        let mine = self.workers[me].load.get();
        if mine <= SPREAD_SLACK {
            return None;
        }
        let (i, least) = self
            .workers
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != me)
            .map(|(i, w)| (i, w.load.get()))
            .min_by_key(|&(_, l)| l)?;
        (least + SPREAD_SLACK < mine).then_some(i)
    }

    /// Places the fresh thread `t` on worker `i`'s inbox: `i` runs it and pins it (module doc,
    /// "Placement").
    #[cold]
    fn place(&self, i: usize, t: TaskRef) {
        let g = t.green().expect("hilos: spawned a kernel thread");
        // The thread has not run and we hold its only scheduling reference: its cells are ours
        // until the inbox push hands it over (Release, paired with the owner's Acquire drain).
        g.placed.set(true);
        // Counted before the push, so the owner's subtraction at the first run comes after it.
        self.workers[i].load.placed.fetch_add(1, Ordering::Relaxed);
        self.workers[i].home.push_remote(t);
    }

    fn wake_idle_if_none_spinning(&self) {
        if self.num_idle.load(Ordering::Relaxed) > 0 && self.spinning.load(Ordering::Relaxed) == 0 {
            self.wake_idle();
        }
    }

    /// Wakes one sleeping worker, if any.
    fn wake_idle(&self) {
        if self.num_idle.load(Ordering::Relaxed) == 0 {
            return;
        }
        let i = {
            let mut idle = self.idle.lock();
            let i = idle.pop();
            if i.is_some() {
                self.num_idle.fetch_sub(1, Ordering::Relaxed);
            }
            i
        };
        if let Some(i) = i {
            self.workers[i].home.parker.wake();
        }
    }

    /// Wakes every sleeping worker (shutdown). The callers' `SeqCst` store of the state the
    /// workers re-check, then this fence, pairs with the fence in `Worker::idle`.
    fn wake_all(&self) {
        fence(Ordering::SeqCst);
        for w in self.workers.iter() {
            if w.home.sleeping.load(Ordering::Relaxed) {
                w.home.parker.wake();
            }
        }
        self.monitor.unpark();
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
        if self.live.fetch_sub(n, Ordering::SeqCst) == n && self.shutdown.load(Ordering::SeqCst) {
            self.wake_all();
            if let Some(t) = self.shutdown_waiter.lock().take() {
                t.wake();
            }
        }
    }

    /// Whether any queue of the runtime visibly holds work for worker `me`.
    fn has_work(&self, me: usize) -> bool {
        self.workers[me].home.inbox_nonempty()
            || !self.injector.is_empty()
            || self.workers.iter().any(|w| !w.stealer.is_empty())
    }
}

/// The local state of a worker; lives on its kernel thread's own stack.
struct Worker {
    index: usize,
    shared: Arc<Shared>,
    home: Arc<Home>,
    fresh: Deque<TaskRef>,
    /// False only when `fresh` is known to be empty: set by every push into it (a spawn here, a
    /// batch stolen into it), cleared when a pop finds it empty. Stealers only take from it, so
    /// the flag never says "empty" of a deque that holds a thread. It spares a yield, which
    /// looks at `fresh` first, the deque's call and shared loads (5 ns of a 30 ns yield).
    fresh_maybe: bool,
    /// This worker's `Load::progress`, inside `shared` (which the worker keeps alive).
    progress: *const AtomicU32,
    /// The scheduler context's saved stack pointer while a green thread runs.
    sched_sp: *mut u8,
    /// The running green thread (it owns the thread's scheduling reference), or null.
    current: *const Header,
    /// A thread that exited and switched to the scheduler context, to be cleaned up there.
    exited: Option<TaskRef>,
    timers: Timers,
    tick: u32,
    rng: u32,
    /// Stacks of the runtime's default size, kept by the worker for its next spawns (in front of
    /// the stack pool, whose thread cache costs a class lookup and a `RefCell` per call).
    stacks: Vec<stack::Stack>,
    /// Exits not yet subtracted from `Shared::live`; flushed before the worker looks for the end
    /// of the runtime or sleeps (one locked instruction per batch instead of per thread).
    exits: usize,
}

/// How many default-size stacks a worker keeps for itself.
const WORKER_STACKS: usize = 32;

thread_local! {
    static WORKER: Cell<*mut Worker> = const { Cell::new(ptr::null_mut()) };
}

/// This kernel thread's worker, or null. Re-read after every switch.
#[inline(never)]
fn worker_ptr() -> *mut Worker {
    WORKER.with(|w| w.get())
}

/// The runtime whose worker runs on this kernel thread, if any.
pub(crate) fn current_shared() -> Option<Arc<Shared>> {
    // SAFETY: a non-null pointer is this kernel thread's live worker; we only clone an Arc.
    unsafe { worker_ptr().as_ref() }.map(|w| w.shared.clone())
}

/// Whether the caller is a green thread of the runtime `shared`.
pub(crate) fn on_runtime(shared: &Shared) -> bool {
    // SAFETY: as in current_shared.
    task::current_green().is_some()
        && unsafe { worker_ptr().as_ref() }.is_some_and(|w| ptr::eq(&*w.shared, shared))
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
    let progress: *const AtomicU32 = &shared.workers[seed.index].load.progress;
    let mut w = Worker {
        index: seed.index,
        shared,
        home,
        progress,
        fresh: seed.fresh,
        fresh_maybe: true,
        sched_sp: ptr::null_mut(),
        current: ptr::null(),
        exited: None,
        timers: Timers::new(),
        tick: 0,
        rng: 0x9E37_79B9 ^ (seed.index as u32).wrapping_mul(0x85EB_CA6B) | 1,
        stacks: Vec::with_capacity(WORKER_STACKS),
        exits: 0,
    };
    let wp: *mut Worker = &mut w;
    WORKER.with(|c| c.set(wp));
    task::set_current_home(Arc::as_ptr(&w.home));
    // SAFETY: `wp` points at `w`, which outlives the loop; the loop uses it only through short
    // borrows that never span a switch.
    unsafe { worker_loop(wp) };
    task::set_current_home(ptr::null());
    WORKER.with(|c| c.set(ptr::null_mut()));
    for s in w.stacks.drain(..) {
        stack::free(s);
    }
    // No green thread is left, so no operation is in flight.
    driver::uninstall();
}

/// The runtime of the worker running on this kernel thread, as a raw pointer (null elsewhere).
/// Valid while the caller runs on that worker; do not keep it across a switch.
#[inline]
pub(crate) fn current_shared_ptr() -> *const Shared {
    // SAFETY: a non-null pointer is this kernel thread's live worker.
    unsafe { worker_ptr().as_ref() }.map_or(ptr::null(), |w| Arc::as_ptr(&w.shared))
}

/// A stack of `shared`'s default size from this worker's own cache, if the caller runs on one of
/// `shared`'s workers and the cache has one.
#[inline]
pub(crate) fn take_default_stack(shared: &Shared) -> Option<stack::Stack> {
    // SAFETY: a non-null pointer is this kernel thread's live worker; the borrow is short.
    let w = unsafe { worker_ptr().as_mut() }?;
    if !ptr::eq(&*w.shared, shared) {
        return None;
    }
    w.stacks.pop()
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
            // SAFETY: `progress` points into `wr.shared`, which the worker keeps alive.
            (*wr.progress).store(wr.tick, Ordering::Relaxed);
            wr.fire_timers();
            // Flush batched submissions and ready the threads whose I/O completed; so nothing
            // submitted waits longer than one pass through here.
            driver::poll();
            wr.find_work()
        };
        if let Some(t) = next {
            // SAFETY: per the function contract.
            unsafe { run_task(w, t) };
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
            unsafe { run_task(w, t) };
        }
    }
}

/// Switches from the scheduler context to `t` and cleans up when control comes back.
///
/// # Safety
/// Called on the scheduler context of worker `w`; `t` is a runnable green thread's scheduling
/// reference.
unsafe fn run_task(w: *mut Worker, t: TaskRef) {
    let p = t.into_raw();
    // SAFETY: per the contract: `w` is our worker; `p` a live green thread we now run.
    unsafe {
        let (to, _) = (*w).prepare_run(p);
        arch::switch(&raw mut (*w).sched_sp, to);
        // Back on the scheduler context: whoever switched here cleared `current`.
        after_switch();
    }
}

/// Runs on every context right after a switch lands in it: an exited thread's stack can only be
/// released once nobody runs on it, i.e. by the next context of its worker.
#[inline]
fn after_switch() {
    let w = worker_ptr();
    // SAFETY: we run on a worker (a green thread or its scheduler context); the borrow is short.
    let wr = unsafe { &mut *w };
    if let Some(e) = wr.exited.take() {
        wr.finish_exit(e);
    }
}

impl Worker {
    /// Makes `p` the current thread (pinning it here at its first run); returns its stack pointer
    /// and how a green thread leaving through `switch_away` should resume it: by return if `p` has
    /// run before (it then left through `switch_away`'s one call site too), by jump to the
    /// trampoline if this is its first run (`home` is set exactly then).
    ///
    /// # Safety
    /// `p` carries the thread's scheduling reference, which moves into `self.current`.
    unsafe fn prepare_run(&mut self, p: NonNull<Header>) -> (*mut u8, arch::Resume) {
        // SAFETY: `p` is live (we hold its scheduling reference).
        let h = unsafe { p.as_ref() };
        let g = h.green().expect("hilos: a kernel thread was queued");
        // The thread is not running, and only the kernel thread that holds its scheduling
        // reference touches its context.
        let how = if g.home.get().is_null() {
            g.home.set(Arc::as_ptr(&self.home));
            let load = &self.shared.workers[self.index].load;
            // Only this worker writes `pinned`.
            load.pinned
                .store(load.pinned.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            if g.placed.get() {
                load.placed.fetch_sub(1, Ordering::Relaxed);
            }
            arch::Resume::Jump
        } else {
            arch::Resume::Return
        };
        self.current = p.as_ptr();
        task::set_current_green(p.as_ptr());
        // SAFETY: as above: the saved stack pointer is ours to read while the thread is not running.
        (unsafe { *g.sp.get() }, how)
    }

    /// Returns an exited thread's stack to the pool and drops its scheduling reference.
    fn finish_exit(&mut self, t: TaskRef) {
        let g = t.green().expect("hilos: a kernel thread exited");
        // SAFETY: the thread has exited and switched away for good; nothing else touches its
        // context or stack any more.
        if let Some(s) = unsafe { (*g.stack.get()).take() } {
            if g.default_stack && self.stacks.len() < WORKER_STACKS {
                self.stacks.push(s);
            } else {
                stack::free(s);
            }
        }
        drop(t);
        self.exits += 1;
        // A thread exits on the worker it is pinned to; only this worker writes `pinned`.
        let load = &self.shared.workers[self.index].load;
        load.pinned
            .store(load.pinned.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
    }

    /// Subtracts the batched exits from the runtime's live count.
    fn flush_exits(&mut self) {
        if self.exits > 0 {
            self.shared.tasks_exited(std::mem::take(&mut self.exits));
        }
    }

    fn fire_timers(&mut self) {
        if self.timers.is_empty() {
            return;
        }
        let now = Instant::now();
        while let Some((wait_no, t)) = self.timers.pop_due(now) {
            let g = t.green().expect("hilos: a timer for a kernel thread");
            if g.wait_gen.get() != wait_no {
                continue; // stale: the thread has moved on
            }
            let token = match g.wait_on.get() {
                WAIT_USER => &t.user,
                WAIT_SYS => &t.sys,
                WAIT_SLEEP => {
                    g.wait_on.set(WAIT_NONE);
                    // SAFETY: a sleeping thread is woken only by its timer, so its scheduling
                    // reference is ours to take; we are its home worker.
                    let r = unsafe { TaskRef::from_raw(t.as_ptr()) };
                    // SAFETY: on the home worker, with the scheduling reference.
                    unsafe { task::schedule_local_back(&self.home, r) };
                    continue;
                }
                _ => continue,
            };
            if token.cancel_park(PARKED) {
                // SAFETY: winning PARKED makes us the owner of the scheduling reference.
                let r = unsafe { TaskRef::from_raw(t.as_ptr()) };
                // SAFETY: on the home worker, with the scheduling reference.
                unsafe { task::schedule_local_back(&self.home, r) };
            }
        }
    }

    /// Next runnable thread for a green thread switching away: no blocking, no timers. A thread
    /// that yields lets unstarted threads go first (`fresh_first`); otherwise woken threads,
    /// which may hold resources others wait for, run before new ones start.
    fn pick_local(&mut self, fresh_first: bool) -> Option<TaskRef> {
        if fresh_first && self.fresh_maybe {
            match self.fresh.pop() {
                Some(t) => return Some(t),
                None => self.fresh_maybe = false,
            }
        }
        // SAFETY: we are on the worker's own kernel thread; the borrows are short.
        unsafe {
            if let Some(t) = self.home.next_slot().take() {
                return Some(t);
            }
            if let Some(t) = self.home.local().pop_front() {
                return Some(t);
            }
            if self.home.drain_inbox() > 0 {
                return self.home.local().pop_front();
            }
        }
        self.fresh.pop()
    }

    /// Next runnable thread for the scheduler context.
    fn find_work(&mut self) -> Option<TaskRef> {
        if self.tick.is_multiple_of(FAIRNESS_TICKS) {
            self.tick = self.tick.wrapping_add(1);
            if let Some(t) = self.pop_injector() {
                return Some(t);
            }
            // Skip the "next" slot, and alternate which of the local queue and the fresh deque
            // goes first, so neither a ping-pong pair nor a stream of spawns starves the other.
            // SAFETY: we are on the worker's own kernel thread.
            unsafe {
                self.home.drain_inbox();
                let fresh_first = (self.tick / FAIRNESS_TICKS) % 2 == 1;
                if fresh_first && let Some(t) = self.fresh.pop() {
                    return Some(t);
                }
                if let Some(t) = self.home.local().pop_front() {
                    return Some(t);
                }
                if let Some(t) = self.fresh.pop() {
                    return Some(t);
                }
            }
        }
        self.pick_local(false)
            .or_else(|| self.pop_injector())
            .or_else(|| self.steal())
    }

    fn pop_injector(&mut self) -> Option<TaskRef> {
        loop {
            match self.shared.injector.steal_batch_and_pop(&self.fresh) {
                Steal::Success(t) => {
                    self.fresh_maybe = true;
                    return Some(t);
                }
                Steal::Empty => return None,
                Steal::Retry => continue,
            }
        }
    }

    fn steal(&mut self) -> Option<TaskRef> {
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
            if i == self.index {
                continue;
            }
            loop {
                match self.shared.workers[i]
                    .stealer
                    .steal_batch_and_pop(&self.fresh)
                {
                    Steal::Success(t) => {
                        self.fresh_maybe = true;
                        return Some(t);
                    }
                    Steal::Empty => break,
                    Steal::Retry => continue,
                }
            }
        }
        None
    }

    /// Nothing to run: spin a little, then sleep until woken or the next timer. Returns work
    /// found while spinning.
    fn idle(&mut self) -> Option<TaskRef> {
        let n = self.shared.workers.len();
        if n > 1 && 2 * self.shared.spinning.load(Ordering::Relaxed) < n {
            self.shared.spinning.fetch_add(1, Ordering::SeqCst);
            for _ in 0..SPIN_ROUNDS {
                if let Some(t) = self.steal().or_else(|| self.pop_injector()) {
                    self.shared.spinning.fetch_sub(1, Ordering::SeqCst);
                    // We were the one looking: if there is more, let another look too.
                    if !self.fresh.is_empty() {
                        self.shared.wake_idle_if_none_spinning();
                    }
                    return Some(t);
                }
                if self.home.inbox_nonempty() || self.shared.is_done() {
                    break;
                }
                for _ in 0..32 {
                    std::hint::spin_loop();
                }
            }
            self.shared.spinning.fetch_sub(1, Ordering::SeqCst);
        }

        // Announce, fence, re-check, sleep (module doc).
        self.home.sleeping.store(true, Ordering::Relaxed);
        {
            let mut idle = self.shared.idle.lock();
            idle.push(self.index);
            self.shared.num_idle.fetch_add(1, Ordering::Relaxed);
        }
        fence(Ordering::SeqCst);
        if !self.shared.has_work(self.index) && !self.shared.is_done() {
            let timeout = self
                .timers
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()));
            if timeout != Some(Duration::ZERO) {
                // Sleeps in io_uring_enter / epoll_wait: an I/O completion, the eventfd (a remote
                // wake-up) or the next timer deadline ends it; completions are reaped after it.
                driver::wait(timeout);
            }
        }
        self.home.sleeping.store(false, Ordering::Relaxed);
        {
            let mut idle = self.shared.idle.lock();
            if let Some(pos) = idle.iter().position(|&i| i == self.index) {
                idle.swap_remove(pos);
                self.shared.num_idle.fetch_sub(1, Ordering::Relaxed);
            }
        }
        if n > 1 {
            self.shared.monitor.worker_woke();
        }
        None
    }
}

/// Why a green thread switches away.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Away {
    /// Still runnable: goes to the back of the local queue.
    Yield,
    /// Parked: some waker or timer owns its scheduling reference now.
    Block,
    /// Finished: never resumes.
    Exit,
}

/// Switches the running green thread away (see the module doc). Returns when it is resumed.
///
/// # Safety
/// Called on a green thread, with the worker in a consistent state for `why`: for `Block` the
/// thread's scheduling reference has been given up to a token or timer protocol.
unsafe fn switch_away(why: Away) {
    // SAFETY: per the contract; the worker pointer is read on this side of the switch.
    unsafe { switch_away_from(worker_ptr(), why) }
}

/// [`switch_away`], for a caller that has just read this kernel thread's worker pointer `w`.
///
/// # Safety
/// As for [`switch_away`]; `w` is `worker_ptr()`, read since the caller's last switch.
unsafe fn switch_away_from(w: *mut Worker, why: Away) {
    // SAFETY: we run on a green thread, so this kernel thread has a live worker; the borrow ends
    // before the switch.
    let (save, to, how) = unsafe {
        let wr = &mut *w;
        let cur = NonNull::new(wr.current as *mut Header).expect("hilos: no current green thread");
        let g = cur
            .as_ref()
            .green()
            .expect("hilos: current thread is not green");
        if why == Away::Yield {
            // The scheduling reference moves from `current` to the queue.
            wr.home.local().push_back(TaskRef::from_raw(cur));
        }
        wr.tick = wr.tick.wrapping_add(1);
        let next = if wr.tick.is_multiple_of(FAIRNESS_TICKS) {
            None
        } else {
            wr.pick_local(why == Away::Yield)
        };
        if why == Away::Exit {
            // Its stack is released by the next context, after the switch (`after_switch`).
            wr.exited = Some(TaskRef::from_raw(cur));
        }
        match next {
            Some(n) if n.as_ptr() == cur => {
                // Woken (or re-queued) before we left: keep running; the scheduling reference
                // goes back to `current`. (Never for Exit: an exiting thread is in no queue.)
                std::mem::forget(n);
                return;
            }
            Some(n) => {
                let (to, how) = wr.prepare_run(n.into_raw());
                (g.sp.get(), to, how)
            }
            None => {
                wr.current = ptr::null();
                task::set_current_green(ptr::null());
                (g.sp.get(), wr.sched_sp, arch::Resume::Jump)
            }
        }
    };
    // SAFETY: `save` is the running thread's own save slot; `to` a suspended context's stack
    // pointer, saved by `switch` or built by `init_stack`. After an Exit nothing resumes `save`.
    // This is the one place where green threads leave, so `Resume::Return` (set for a thread
    // that left through here before) is predicted right.
    unsafe { arch::switch_ret(save, to, how) };
    after_switch();
}

/// The entry point of every green thread, called by the trampoline `init_stack` sets up.
///
/// # Safety
/// `arg` is the thread's header; the thread's scheduling reference is `current`.
pub(crate) unsafe extern "C" fn green_entry(arg: *mut u8) -> ! {
    let h = NonNull::new(arg as *mut Header).expect("hilos: null thread argument");
    // A thread's first run is a landing after a switch, like any other.
    after_switch();
    // SAFETY: the header is alive while the thread runs; `run` does not unwind.
    unsafe { ((*h.as_ptr()).vtable_run())(h) };
    // SAFETY: the thread is done; Exit hands its scheduling reference to the scheduler context.
    unsafe { switch_away(Away::Exit) };
    // A thread that exited is never resumed.
    std::process::abort()
}

/// Blocks the caller on one of its tokens until woken, or until `deadline`. Works on green
/// threads (parks only the green thread) and kernel threads (blocks them). Returns `false` if it
/// returned because the deadline passed. May return spuriously; callers re-check their condition.
pub(crate) fn park(which: task::Which, deadline: Option<Instant>) -> bool {
    // One thread-local read for the test and the switch, as in `yield_now`.
    let w = worker_ptr();
    // SAFETY: a non-null pointer is this kernel thread's live worker, not borrowed while user
    // code runs; a plain read.
    let cur = unsafe { w.as_ref() }.and_then(|wr| NonNull::new(wr.current as *mut Header));
    let Some(cur) = cur else {
        return match which {
            task::Which::User => {
                match deadline {
                    None => std::thread::park(),
                    Some(d) => {
                        std::thread::park_timeout(d.saturating_duration_since(Instant::now()))
                    }
                }
                true
            }
            task::Which::Sys => task::wait_os(&task::current().sys, deadline),
        };
    };
    // SAFETY: the running green thread's header is alive while it runs.
    let h = unsafe { cur.as_ref() };
    let token = h.token(which);
    if std::thread::panicking() {
        // Switching away would carry this kernel thread's "panicking" state into another green
        // thread; block the worker instead (DESIGN-NOTES section 2).
        return task::wait_os(token, deadline);
    }
    let g = h.green().expect("hilos: current thread is not green");
    let wait_no = g.wait_gen.get().wrapping_add(1);
    g.wait_gen.set(wait_no);
    g.wait_on.set(match which {
        task::Which::User => WAIT_USER,
        task::Which::Sys => WAIT_SYS,
    });
    // One compare-exchange both consumes a pending wake-up and announces the park.
    if !token.begin_park(PARKED) {
        g.wait_on.set(WAIT_NONE);
        return true;
    }
    if let Some(d) = deadline {
        if d <= Instant::now() {
            g.wait_on.set(WAIT_NONE);
            if token.cancel_park(PARKED) {
                return false;
            }
            // A waker won the race and owns the scheduling reference: wait for it to run us.
            // SAFETY: the token holds our scheduling reference.
            unsafe { switch_away(Away::Block) };
            return token.finish_wait();
        }
        // SAFETY: on a green thread, so the worker is live; the borrow is short.
        let wr = unsafe { &mut *w };
        // SAFETY: the header is alive (we are running on it).
        wr.timers
            .push(d, wait_no, unsafe { TaskRef::clone_from_ptr(cur) });
    }
    // SAFETY: the token now holds our scheduling reference (PARKED); `w` was read on this side
    // of every switch.
    unsafe { switch_away_from(w, Away::Block) };
    g.wait_on.set(WAIT_NONE);
    // Woken by a waker (NOTIFIED) or by the timer (EMPTY); consume whatever is pending.
    token.finish_wait()
}

/// Switches the running green thread away until another party makes it runnable with
/// [`task::schedule`].
///
/// # Safety
/// Call on a green thread that is not panicking, after handing its scheduling reference to
/// exactly one party (by publishing it in some protocol's state word), which will schedule it
/// exactly once. Nothing else may wake it meanwhile.
pub(crate) unsafe fn block_current() {
    // SAFETY: per the contract.
    unsafe { switch_away(Away::Block) };
}

/// Puts the caller to sleep for `dur` (green: a timer on its worker; kernel: `std::thread::sleep`).
pub(crate) fn sleep(dur: Duration) {
    let Some(cur) = task::current_green() else {
        std::thread::sleep(dur);
        return;
    };
    if dur.is_zero() {
        yield_now();
        return;
    }
    if std::thread::panicking() {
        std::thread::sleep(dur);
        return;
    }
    let Some(deadline) = Instant::now().checked_add(dur) else {
        // Longer than the clock can express: sleep "forever", in the largest steps it can.
        loop {
            sleep(Duration::from_secs(u32::MAX as u64));
        }
    };
    // SAFETY: the running green thread's header is alive while it runs.
    let h = unsafe { cur.as_ref() };
    let g = h.green().expect("hilos: current thread is not green");
    loop {
        let wait_no = g.wait_gen.get().wrapping_add(1);
        g.wait_gen.set(wait_no);
        g.wait_on.set(WAIT_SLEEP);
        // SAFETY: on a green thread, so the worker is live; the borrow is short.
        let w = unsafe { &mut *worker_ptr() };
        // SAFETY: the header is alive (we are running on it).
        w.timers
            .push(deadline, wait_no, unsafe { TaskRef::clone_from_ptr(cur) });
        // SAFETY: only the timer wakes a sleeping thread; it owns our scheduling reference.
        unsafe { switch_away(Away::Block) };
        if Instant::now() >= deadline {
            return;
        }
    }
}

/// Lets other green threads of this worker run (kernel threads: `std::thread::yield_now`).
pub(crate) fn yield_now() {
    // One thread-local read serves both the "are we green" test and the switch: a worker's
    // `current` is non-null exactly while one of its green threads runs (`task::current_green`
    // mirrors it).
    let w = worker_ptr();
    // SAFETY: a non-null pointer is this kernel thread's live worker; nothing else borrows it
    // while user code runs; a plain read.
    let green = !w.is_null() && !unsafe { (*w).current }.is_null();
    if !green || std::thread::panicking() {
        std::thread::yield_now();
        return;
    }
    // SAFETY: on a green thread; the scheduling reference moves to the local queue; `w` was just
    // read.
    unsafe { switch_away_from(w, Away::Yield) };
}
