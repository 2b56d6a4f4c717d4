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
//!   closure: it goes to the spawning worker's crossbeam deque, or to the runtime's injector
//!   when spawned from outside. Idle workers steal half a victim's deque, oldest first.
//! - **Fresh threads run newest first** (below, "Fresh threads").
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
//! # Fresh threads
//! A worker runs its own fresh threads newest first (its deque is LIFO for it; thieves take the
//! oldest), so a fan-out tree is walked depth-first: a node that spawns its children and blocks
//! for their results is followed by its newest child, which does the same, down to a leaf, whose
//! exit frees a stack that the next first run on that worker takes back at once, hot (the
//! worker's own stack cache is LIFO too; a thread takes its stack at its first run: "Spawn
//! bursts"). Threads alive at once then stay near depth x fan-out instead of
//! the whole tree. Three guarantees are kept:
//! - **No fresh thread starves.** Every `worker::OLDEST_EVERY`th pass of the fairness tick
//!   (every 61 switches the worker's scheduler loop runs) takes the worker's *oldest* fresh
//!   thread first. A fresh thread therefore waits at most about `16 x 61 = 976` switches of its
//!   worker per older fresh thread of that worker, whatever its spawner keeps doing (the test
//!   `a_continuous_spawner_cannot_starve_its_first_child`: the first child of a spawner that
//!   spawns two threads and yields, forever, on one worker, runs after 480 rounds). The price:
//!   each such pick starts another subtree of a tree, so the live threads of a tree are a few
//!   times depth x fan-out rather than exactly that (below).
//! - **`spawn(f).join()` stays on one worker**: the child is the newest fresh thread when its
//!   joiner blocks, so it runs next, on the joiner's worker.
//! - **An accept loop's children spread** (`placement`), and a spawner that spawns a burst and
//!   then blocks (a skynet node) is not taken for one.
//!
//! Measured on skynet (1,111,111 threads, fan-out 10; `examples/skynet.rs`), 2 workers, this
//! 2-core VM, loaded by other builds: threads of a 10,000-leaf tree alive at once on one worker
//! (`a_fan_out_tree_is_walked_depth_first`), and skynet 1,000,000's time and peak RSS, by how
//! often the oldest fresh thread goes first:
//!
//! | oldest first every    | tree alive | skynet 1M ms | peak RSS |
//! |-----------------------|-----------:|-------------:|---------:|
//! | FIFO (before)         |     11,111 |       12,731 |   2.7 GB |
//! | 1 pass (61 switches)  |        856 |        1,612 |   178 MB |
//! | 2 passes              |        443 |        1,356 |   123 MB |
//! | 4 passes              |        311 |          989 |    88 MB |
//! | 8 passes              |        271 |          936 |    35 MB |
//! | 16 passes (chosen)    |        201 |          476 |    21 MB |
//! | never (starves)       |         41 |          755 |     4 MB |
//!
//! (One run each, same hour, noisy: Go 1.19 took 1,390-2,800 ms and tokio 1,450-2,540 ms for
//! skynet 1M in the same hour.) Then, with 16 passes, `benches/peers/run.sh 3 2` (hilos, Go 1.19
//! with GOMAXPROCS=2 and tokio 1.54 with 2 workers interleaved, machine load 6-10): skynet 1M
//! hilos 433-616 ms and 24 MB, Go 2,023-2,321 ms and 195-240 MB, tokio 1,782-2,128 ms and 148-151
//! MB (hilos/Go 0.19-0.30); skynet 100k hilos 55-85 ms, Go 160-225, tokio 161-265.
//!
//! Alternatives: a single LIFO "next fresh" slot in front of the FIFO deque (Go's `runnext`),
//! considered and not built: only the newest child goes first and its siblings queue behind
//! every older fresh thread, so the tree is still walked breadth-first below the newest path (Go
//! gets away with that because a goroutine costs 2 KiB; a hilos thread costs a stack page and its
//! TLS area). Taking the oldest on every fairness pass (first rows of the table): the extra
//! subtrees it opens cost memory and time for no guarantee a program can observe. Never taking
//! the oldest (last row): starves a continuous spawner's first child.
//!
//! # Spawn bursts
//! Spawning N threads and then joining each used to be slower than Go whenever the spawner
//! outran the threads' runs (a loaded machine, or one worker), because every fresh thread took
//! its stack at spawn and wrote its first frame and TLS area there: all the threads spawned and
//! not yet run held a stack page each, and the pool handed out untouched stacks (freshly carved
//! slots, or stacks whose memory it had released beyond its warm bound) for them. Measured then
//! (`examples/skynet.rs 1000000 W burst`, which prints the pool's count of untouched stacks):
//! on 2 workers 3,953-9,182 ms against Go's 1,708-2,462, with 450,000 to 534,000 of the
//! 1,000,000 stacks untouched; 613,000 page faults (`tls::prepare`'s `memset` of the TLS area
//! 56%, malloc's `sysmalloc` for the cells 35%), 142,000 `madvise` calls (guard installs of new
//! slots, releases beyond the warm bound); on one worker all 1,000,000 stacks untouched, 13-20 s
//! and 4.3 GB peak RSS.
//!
//! **The design: a thread takes its stack at its first run.** A fresh thread is its cell only
//! (`spawner`); its first run, on the worker that runs it after any steal
//! (`park::local::Local::bind_stack`), takes the newest stack of that worker's own cache (the one
//! its last exit left hot), else the kernel thread's cache, else the pool, and builds the TLS area
//! and the first frame there before switching in. A burst then runs on a handful of hot stacks
//! whatever the spawner's lead. Spawn keeps its synchronous `OutOfMemory`: it *reserves* a stack
//! (`stack::reserve`): the pool counts, per class, the stacks it could hand out without mapping
//! (pooled, and never-carved slots of mapped chunks) against those promised, maps address space
//! ahead when a reservation finds too few (a `MAP_NORESERVE` chunk, untouched: no memory, no
//! page tables, no guard markers until a slot is carved; this mapping is where spawn fails), and
//! every other taker leaves the promised ones alone, so the first run's take cannot fail for want
//! of a stack. Thread caches keep a batch of reservation credits, so neither spawn nor first run
//! touches the shared count most of the time; spare chunks a burst mapped ahead and never carved
//! are unmapped once the units pile up again. The one failure left at a first run is the kernel
//! failing to allocate a page-table page for a fresh slot's guard marker: it aborts, as a failed
//! allocation does (classes with one mapping per slot, the `mprotect` fallback and stacks over
//! 8 MiB, install the guard when the reservation maps the slot, so their first run cannot fail).
//! A thread with a stack size of its own (`Builder::stack_size`) binds late the same way, with a
//! reservation of its own class; only the worker's hot cache is for the runtime's default size
//! (a custom-size first run takes from the kernel thread's cache or the pool).
//!
//! Alternatives: *reserving slots* (carving the slot at spawn and touching it only at the first
//! run) keeps a guard marker, and so page-table pages, per unstarted thread, and hands the burst
//! a million different stacks again instead of the hot one. *Counting reserved bytes against a
//! limit* without mapping: the limits that matter (`ulimit -v`, strict overcommit,
//! `vm.max_map_count`) move under the process, so only a mapping proves the address space is
//! there. *A lazy first-run error* (spawn never fails, the thread panics at its first run when no
//! stack can be had) breaks std's contract that `Builder::spawn` reports the failure.
//!
//! Measured with late binding (and the 280-byte cells of then, below; 2-core VM shared with other
//! builds; before/after binaries, Go 1.19 with GOMAXPROCS=W and tokio 1.54 with W workers
//! interleaved in the same run; load from /proc/loadavg):
//!
//! | 1,000,000 threads, workers | load  | before ms     | after ms    | Go ms       | tokio ms    |
//! |----------------------------|-------|--------------:|------------:|------------:|------------:|
//! | burst, 2                   | 2-3   | 886-6,156     | 650-964     | 1,100-1,612 | 988-1,280   |
//! | burst, 2, two CPU hogs     | 3-29  | 7,067-15,591  | 1,289-3,518 | 2,445-3,974 | 1,204-1,825 |
//! | burst, 1                   | 17-27 | 10,986-14,211 | 607-701     | 2,028-2,221 | 787-1,069   |
//! | skynet, 2                  | 15-17 | 365-535       | 323-576     | 1,243-1,745 | 1,122-1,295 |
//!
//! Peak RSS: burst 340 MB before and after on 2 workers (the 1,000,000 cells, which live until
//! joined; Go 142-163 MB, tokio 318 MB), 4.35 GB -> 350 MB on one worker; skynet 24-25 MB -> 8-9
//! MB (Go 190-229 MB, tokio 148-151 MB). Untouched stacks per burst: 187-1,000,001 -> 4. `perf
//! stat` of a 2-worker burst: page faults 1,375,737 -> 84,205, `madvise` 633,710 -> 110, `mmap`
//! 45 -> 140 (chunks mapped ahead; `munmap` 27 -> 122, trimmed again). What was left was the
//! cells: 89% of the remaining page faults were malloc's `sysmalloc` growing its arena for them
//! (with 82,000 `mprotect`s: glibc grows a worker's arena a page at a time, the first time). So
//! the cell of a small closure was brought from 280 bytes (the 320-byte class of `task::small`)
//! to 256: the header no longer keeps a copy of the guard range (the overflow handler reads the
//! bound stack) and the cell no longer a `started` flag (a thread that has run is pinned). Burst,
//! 2 workers, interleaved (load 18): 666-954 ms against 944-2,721 with 280-byte cells, peak RSS
//! 276-278 MB against 339-341, page faults 68,579 against 84,138, `mprotect`s 66,242 against
//! 81,833.
//! `benches/peers/run.sh 3 2` with all of this (22:38 UTC, load 10-11): skynet 1M hilos 310-359
//! ms and 8 MB, Go 1,179-2,514 ms and 202-223 MB, tokio 1,062-1,664 ms and 148-151 MB (hilos/Go
//! 0.13-0.29); burst 1M hilos 596-649 ms and 276 MB, Go 884-1,658 ms and 164-174 MB, tokio
//! 914-1,178 ms and 318 MB. One burst in about 40 on 2 workers at load 6-12 took 2.7 s where Go's
//! took 1.8 s in the same round; its CPU time was 0.7 s, as in the others, and it took no
//! untouched stack. Caught again with each worker's `/proc/.../schedstat` (a 3,174 ms burst): its
//! workers ran 383 and 259 ms and waited 2,794 and 2,702 ms on the kernel's run queue, runnable
//! but without a CPU: the other builds on the machine, not a wait in hilos.
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
mod watchdog;
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
pub(crate) use watchdog::threshold_from_env as watchdog_from_env;
pub(crate) use worker::{current_shared, current_shared_ptr, on_runtime, run_worker};

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
    /// Green threads spawned from outside its workers (those spawned on a worker are counted
    /// by it: `Watch::spawns`).
    spawned_outside: std::sync::atomic::AtomicU64,
    shutdown: AtomicBool,
    /// Who waits for `live` to reach zero after shutdown (see `runtime`).
    shutdown_waiter: Mutex<Option<TaskRef>>,
    /// The stack class of a default-size thread (the runtime's default usable size and the TLS
    /// area), which spawn
    /// reserves and the first run takes (see "Spawn bursts").
    pub(crate) stack_class: crate::stack::Class,
    /// The I/O backend chosen for this runtime's workers (a worker may still fall back to epoll
    /// if its own ring cannot be had; see `run_worker`).
    pub(crate) backend: IoBackend,
    /// Wakes a sleeping worker when a busy one sits on threads nobody takes (`monitor`).
    pub(crate) monitor: monitor::Monitor,
    /// The watchdog's threshold (`watchdog`), or `None` when it is off.
    pub(crate) watchdog: Option<std::time::Duration>,
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
        watchdog: Option<std::time::Duration>,
    ) -> std::io::Result<(Arc<Shared>, Vec<WorkerSeed>)> {
        let mut seeds = Vec::with_capacity(n);
        let mut workers = Vec::with_capacity(n);
        for index in 0..n {
            let fresh = Deque::new_lifo();
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
            spawned_outside: std::sync::atomic::AtomicU64::new(0),
            shutdown: AtomicBool::new(false),
            shutdown_waiter: Mutex::new(None),
            stack_class: crate::stack::class_of(
                stack_size.saturating_add(crate::tls::area_size()),
            )?,
            backend,
            monitor: monitor::Monitor::new(),
            watchdog,
        });
        Ok((shared, seeds))
    }

    /// Green threads ever spawned on this runtime: exact for spawns that happened before the
    /// call (each is counted before `spawn` returns), with no locked instruction on a worker's
    /// spawn path (its own count is a plain load and store).
    pub(crate) fn spawned(&self) -> u64 {
        let on_workers: u64 = self.workers.iter().map(|w| w.home.watch.spawns()).sum();
        self.spawned_outside.load(Ordering::Relaxed) + on_workers
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
            w.home.watch.spawned();
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
        self.spawned_outside.fetch_add(1, Ordering::Relaxed);
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
