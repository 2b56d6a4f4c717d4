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
//! The cost on the hot paths: one `Release` store per switch into a green thread (a plain store
//! on x86_64), one plain store per spawn, a fence per thread exit.

use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

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
        fence(LOrdering::SeqCst);
        while self.reading.load(LOrdering::Acquire) {
            #[cfg(not(all(test, loom)))]
            std::hint::spin_loop();
            #[cfg(all(test, loom))]
            crate::loom::hint::spin_loop();
        }
    }

    /// Runs `f` on the thread the worker runs, if it has not exited.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        self.reading.store(true, LOrdering::Relaxed);
        fence(LOrdering::SeqCst);
        let p = self.running.load(LOrdering::Acquire);
        // SAFETY: a non-null pointer loaded after `reading` was set (and fenced) is a thread
        // that has not passed `exiting`'s fence yet, and that waits there until `reading` is
        // cleared below (module doc, "Orderings"), so it is alive while `f` reads it.
        let r = unsafe { p.as_ref() }.map(f);
        self.reading.store(false, LOrdering::Release);
        r
    }
}

/// A worker's published state, for the watchdog.
#[repr(align(128))]
pub(crate) struct Watch {
    /// The running green thread (`Slot`).
    slot: Slot<Header>,
    /// Spawns made on the worker (wrapping): a spawner that spawns without switching is making
    /// progress, not stuck. Written only by the worker.
    spawns: AtomicU32,
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
            spawns: AtomicU32::new(0),
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

    /// Spawns made on the worker so far (wrapping).
    pub(crate) fn spawns(&self) -> u32 {
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
