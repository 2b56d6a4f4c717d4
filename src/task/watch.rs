//! What a worker publishes for the watchdog (`scheduler::watchdog`): the green thread it runs,
//! how many spawns it made, its kernel thread id; and the protocol that lets the watchdog read
//! the running thread's id and name without that thread being freed under it.
//!
//! # The problem
//! The watchdog runs on its own kernel thread and must name a green thread that has held its
//! worker too long. The name lives in the thread's header, which is freed once the thread has
//! exited and its join handle is gone, at any moment, on any thread. Reading it after that would
//! be a use-after-free.
//!
//! # The design
//! The worker stores the header pointer of each thread it switches into in `running` (a plain
//! Relaxed store on the switch path; `Local::prepare_run`). A thread that exits stores null there
//! before it publishes its result, so before anything can free it ([`Watch::exiting`]). The
//! watchdog sets `reading`, then loads `running`, reads the id and name, and clears `reading`; an
//! exiting thread that sees `reading` set waits (spinning: the read is a few hundred
//! nanoseconds, once per stall episode) until it is cleared.
//!
//! # Orderings
//! A store-buffering pair with a `SeqCst` fence on each side: the watchdog stores `reading`,
//! fences, loads `running`; the exiting thread stores null into `running`, fences, loads
//! `reading`. If the watchdog loaded a thread's pointer (so before the thread's null store in
//! `running`'s modification order), the thread's load after its fence sees `reading` set, and it
//! waits; the watchdog's clearing store is `Release` and the thread's load `Acquire`, so every
//! read of the header happens before the thread goes on to publish its result. The switch
//! stores the pointer with `Release` and the watchdog loads it with `Acquire`: the header was
//! initialised before the worker had the thread, so its fields are visible. A stale pointer is
//! never seen: a thread's own store of its pointer precedes its null store in `running`'s
//! modification order, and a parked thread's pointer is replaced by the next one's.
//! `loom_watch_read_against_exit` (in `loom_models.rs`) checks this with the slot's real code.
//!
//! The exiting side's fence would cost every thread exit a full barrier (an `mfence`, 10-30 ns
//! on the development VM). Where Linux has `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` (4.14+;
//! registered once, [`asymmetric`]), the pair is made asymmetric, as the reader is rare and the
//! exit is hot: the exiting side keeps only a compiler fence, and the reader's fence becomes a
//! `membarrier`, which makes every running thread of the process execute a full barrier (and a
//! thread that is not running passes one when it is switched in). An exit that has not yet seen
//! the registration still fences (stronger than needed); the reader uses `membarrier` only
//! after it was registered. Under loom, and where the call is missing, both sides fence.
//!
//! The cost on the hot paths: one `Release` store per switch into a green thread (a plain store
//! on x86_64), one plain store per spawn, a load and a compiler fence per thread exit.

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
#[cfg(not(all(test, loom)))]
use std::sync::atomic::{AtomicU8, compiler_fence};

use super::{Header, ThreadId};
use crate::loom::sync::atomic::{AtomicBool, AtomicPtr, Ordering as LOrdering, fence};

/// The protocol of the module doc, for any `T` (a `Header` in hilos, a plain cell in the loom
/// model).
pub(crate) struct Slot<T> {
    /// The thread the worker last switched into, or null after it exited.
    running: AtomicPtr<T>,
    /// The watchdog is reading `running`'s thread.
    reading: AtomicBool,
}

impl<T> Slot<T> {
    crate::loom::const_fn! {
        pub(crate) const fn new() -> Slot<T> {
            Slot {
                running: AtomicPtr::new(std::ptr::null_mut()),
                reading: AtomicBool::new(false),
            }
        }
    }

    /// The worker switches into `t`.
    #[inline(always)]
    pub(crate) fn switch_in(&self, t: *mut T) {
        self.running.store(t, LOrdering::Release);
    }

    /// The running thread is about to publish its result (after which it may be freed): it
    /// stops being readable, and waits for a read under way.
    pub(crate) fn exiting(&self) {
        self.running.store(std::ptr::null_mut(), LOrdering::Relaxed);
        heavy_side_fence();
        while self.reading.load(LOrdering::Acquire) {
            #[cfg(not(all(test, loom)))]
            std::hint::spin_loop();
            #[cfg(all(test, loom))]
            crate::loom::hint::spin_loop();
        }
    }

    /// The pointer last stored, as a number, for telling that the worker switched (no access
    /// through it).
    pub(crate) fn current_addr(&self) -> usize {
        self.running.load(LOrdering::Relaxed) as usize
    }

    /// Runs `f` on the thread the worker runs, if it has not exited.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        self.reading.store(true, LOrdering::Relaxed);
        if !rare_side_fence() {
            self.reading.store(false, LOrdering::Release);
            return None;
        }
        let p = self.running.load(LOrdering::Acquire);
        // SAFETY: a non-null pointer loaded after `reading` was set (and fenced) is a thread
        // that has not passed `exiting`'s fence yet, and that waits there until `reading` is
        // cleared below (module doc, "Orderings"), so it is alive while `f` reads it.
        let r = unsafe { p.as_ref() }.map(f);
        self.reading.store(false, LOrdering::Release);
        r
    }
}

/// `membarrier` state: 0 not tried, 1 registered, 2 unavailable.
#[cfg(not(all(test, loom)))]
static ASYMMETRIC: AtomicU8 = AtomicU8::new(0);

#[cfg(not(all(test, loom)))]
const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
#[cfg(not(all(test, loom)))]
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

/// Registers the process for private expedited `membarrier` (once; called when a watchdog
/// starts, before it reads anything). Returns whether the asymmetric fences are in use.
#[cfg(not(all(test, loom)))]
pub(crate) fn asymmetric() -> bool {
    match ASYMMETRIC.load(Ordering::Acquire) {
        1 => return true,
        2 => return false,
        _ => {}
    }
    // SAFETY: membarrier takes no pointers; an unknown command fails with EINVAL.
    let ok = unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED,
            0,
        )
    } == 0;
    ASYMMETRIC.store(if ok { 1 } else { 2 }, Ordering::Release);
    ok
}

/// Under loom: both sides fence.
#[cfg(all(test, loom))]
pub(crate) fn asymmetric() -> bool {
    false
}

/// The exiting side's fence of the pair (module doc).
#[inline(always)]
fn heavy_side_fence() {
    #[cfg(not(all(test, loom)))]
    if ASYMMETRIC.load(Ordering::Relaxed) == 1 {
        // The reader's membarrier makes this thread run a full barrier if needed.
        compiler_fence(Ordering::SeqCst);
        return;
    }
    fence(LOrdering::SeqCst);
}

/// The reader's fence of the pair (module doc). False if the registered `membarrier` failed:
/// exits may then have passed with a compiler fence only, and the reader must not go on.
#[must_use]
fn rare_side_fence() -> bool {
    #[cfg(not(all(test, loom)))]
    if ASYMMETRIC.load(Ordering::Acquire) == 1 {
        // SAFETY: membarrier takes no pointers; the process registered for this command.
        let r = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0) };
        return r == 0;
    }
    fence(LOrdering::SeqCst);
    true
}

/// A worker's published state, for the watchdog.
#[repr(align(128))]
pub(crate) struct Watch {
    /// The running green thread (`Slot`).
    slot: Slot<Header>,
    /// Spawns made on the worker: a spawner that spawns without switching is making progress,
    /// not stuck (the watchdog), and the runtime's total of threads (metrics) adds them up.
    /// Written only by the worker.
    spawns: AtomicU64,
    /// The worker's kernel thread id (for `/proc/self/task/TID/syscall`), 0 until it starts.
    pub(crate) tid: AtomicI32,
}

/// The running thread's id and name, as the watchdog read them.
pub(crate) struct Running {
    pub(crate) id: ThreadId,
    pub(crate) name: Option<String>,
}

impl Watch {
    pub(crate) fn new() -> Watch {
        Watch {
            slot: Slot::new(),
            spawns: AtomicU64::new(0),
            tid: AtomicI32::new(0),
        }
    }

    /// The worker switches into `h`.
    #[inline(always)]
    pub(crate) fn switch_in(&self, h: *mut Header) {
        self.slot.switch_in(h);
    }

    /// The worker spawned a thread (owner only: a plain load and store).
    #[inline(always)]
    pub(crate) fn spawned(&self) {
        self.spawns.store(
            self.spawns.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }

    /// The address of the green thread the worker last switched into (0 after it exited): a
    /// change between two looks means the worker switched.
    pub(crate) fn running_addr(&self) -> usize {
        self.slot.current_addr()
    }

    /// Spawns made on the worker so far.
    pub(crate) fn spawns(&self) -> u64 {
        self.spawns.load(Ordering::Relaxed)
    }

    /// The running green thread is about to publish its result: see [`Slot::exiting`].
    pub(crate) fn exiting(&self) {
        self.slot.exiting();
    }

    /// The id and name of the green thread the worker runs, if it has not exited.
    pub(crate) fn read_running(&self) -> Option<Running> {
        self.slot.read(|h| Running {
            id: h.id(),
            name: h.name().map(str::to_owned),
        })
    }
}

#[cfg(all(test, loom))]
mod loom_models;
