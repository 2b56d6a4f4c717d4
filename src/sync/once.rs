//! The one-time initialisation protocol behind [`super::Once`], [`super::OnceLock`] and
//! [`super::LazyLock`].
//!
//! # The problem
//! std's `Once` blocks the kernel thread of every thread that finds the initialisation under way.
//! If the initialising green thread parks (it locks a hilos mutex, receives from a channel, sleeps),
//! and another green thread of its worker calls `get_or_init`, the worker blocks in the kernel and
//! the initialiser can never resume: a deadlock on a one-worker runtime.
//!
//! # Alternatives rejected
//! - A mutex around the initialisation: a lock on the read path after completion, and no clean
//!   answer for a panic inside the initialiser.
//!
//! # The design
//! A state byte: `INCOMPLETE`, `RUNNING`, `COMPLETE` or `POISONED` in the low two bits, and a
//! `QUEUED` bit meaning "someone may be parked in the [`WaitQueue`]". The first caller moves
//! `INCOMPLETE -> RUNNING` with a compare-exchange and runs the initialiser; others park (in
//! `validate` they check, under the queue lock, that the state is still the one they wait out, and
//! set `QUEUED`). The initialiser's end swaps in `COMPLETE` (or, if it panicked, `POISONED` for a
//! `LazyLock`, `INCOMPLETE` for a `OnceLock`, which std's `OnceLock` lets the next caller retry)
//! and, only if the swapped-out state had `QUEUED`, wakes every parked thread. The completed read
//! path is one `Acquire` load; an uncontended initialisation takes no lock.
//!
//! Why no wake-up is lost: a waiter sets `QUEUED` and queues itself in one critical section of the
//! queue lock; the finisher's swap either precedes the waiter's compare-exchange (which then fails,
//! and the waiter re-reads the new state) or follows it, in which case the finisher sees `QUEUED`
//! and takes the queue lock, after the waiter has queued, to wake it.
//!
//! # Memory orderings
//! The finisher's swap is `Release` (the value written by the initialiser is published with it);
//! every read of the state that may lead to reading the value is `Acquire`.

use std::panic::{RefUnwindSafe, UnwindSafe};
use std::sync::atomic::{AtomicU8, Ordering};

use super::waitq::{Pos, WaitQueue};

pub(crate) const INCOMPLETE: u8 = 0;
pub(crate) const RUNNING: u8 = 1;
pub(crate) const COMPLETE: u8 = 2;
pub(crate) const POISONED: u8 = 3;
const MASK: u8 = 3;
const QUEUED: u8 = 4;

/// Returned when the initialisation panicked and the cell poisons (LazyLock).
pub(crate) struct Poisoned;

pub(crate) struct OnceCore {
    state: AtomicU8,
    q: WaitQueue<()>,
}

impl UnwindSafe for OnceCore {}
impl RefUnwindSafe for OnceCore {}

/// Ends an initialisation: publishes `to` and wakes the parked threads. Runs on unwind too.
struct Finish<'a> {
    core: &'a OnceCore,
    to: u8,
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        let prev = self.core.state.swap(self.to, Ordering::Release);
        if prev & QUEUED != 0 {
            self.core.q.lock().wake_all(1);
        }
    }
}

impl OnceCore {
    pub(crate) const fn new() -> OnceCore {
        OnceCore {
            state: AtomicU8::new(INCOMPLETE),
            q: WaitQueue::new(()),
        }
    }

    /// A state made at construction (for `From` impls that start complete).
    pub(crate) const fn new_complete() -> OnceCore {
        OnceCore {
            state: AtomicU8::new(COMPLETE),
            q: WaitQueue::new(()),
        }
    }

    #[inline]
    pub(crate) fn is_complete(&self) -> bool {
        self.state.load(Ordering::Acquire) == COMPLETE
    }

    /// The state, with exclusive access.
    #[inline]
    pub(crate) fn state_mut(&mut self) -> u8 {
        *self.state.get_mut() & MASK
    }

    /// Sets the state, with exclusive access.
    #[inline]
    pub(crate) fn set_state_mut(&mut self, s: u8) {
        *self.state.get_mut() = s;
    }

    /// Runs `f` if no initialisation has completed, making the others wait for it. If `f`
    /// panics, the state becomes `POISONED` when `poison` is set, else `INCOMPLETE` again (and a
    /// waiting thread then runs its own initialiser).
    #[cold]
    pub(crate) fn call(&self, poison: bool, f: impl FnOnce()) -> Result<(), Poisoned> {
        let mut f = Some(f);
        loop {
            let s = self.state.load(Ordering::Acquire);
            match s & MASK {
                COMPLETE => return Ok(()),
                POISONED => return Err(Poisoned),
                INCOMPLETE => {
                    let on_panic = if poison { POISONED } else { INCOMPLETE };
                    if self.try_run(s, on_panic, || {
                        (f.take().expect("hilos: once initialiser ran twice"))()
                    }) {
                        return Ok(());
                    }
                }
                _ => self.wait_out(RUNNING),
            }
        }
    }

    /// As [`OnceCore::call`] with `poison` set, but also runs `f` on a poisoned cell: `f` is told
    /// whether it was poisoned, and completing clears the poison (std's `call_once_force`).
    #[cold]
    pub(crate) fn call_force(&self, f: impl FnOnce(bool)) {
        let mut f = Some(f);
        loop {
            let s = self.state.load(Ordering::Acquire);
            match s & MASK {
                COMPLETE => return,
                INCOMPLETE | POISONED => {
                    let poisoned = s & MASK == POISONED;
                    if self.try_run(s, POISONED, || {
                        (f.take().expect("hilos: once initialiser ran twice"))(poisoned)
                    }) {
                        return;
                    }
                }
                _ => self.wait_out(RUNNING),
            }
        }
    }

    /// From state `s` (not running, not complete): takes the initialisation (`RUNNING`) and runs
    /// `f`, ending in `COMPLETE`, or in `on_panic` if `f` panics; the parked threads are woken
    /// either way. Returns `false`, without running `f`, if the state moved on from `s`.
    fn try_run(&self, s: u8, on_panic: u8, f: impl FnOnce()) -> bool {
        if self
            .state
            .compare_exchange(
                s,
                RUNNING | (s & QUEUED),
                Ordering::Acquire,
                Ordering::Acquire,
            )
            .is_err()
        {
            return false;
        }
        let mut fin = Finish {
            core: self,
            to: on_panic,
        };
        f();
        fin.to = COMPLETE;
        drop(fin);
        true
    }

    /// Waits until an initialisation has completed (or the cell is poisoned).
    pub(crate) fn wait(&self) -> Result<(), Poisoned> {
        self.wait_until_complete(true)
    }

    /// Waits until an initialisation has completed, ignoring poisoning (std's
    /// `Once::wait_force`): a poisoned cell is waited out like a running one, until a forced call
    /// completes it.
    pub(crate) fn wait_force(&self) {
        let _ = self.wait_until_complete(false);
    }

    /// Parks until the state is `COMPLETE`, or returns `Err` at `POISONED` if `poison_ends`.
    fn wait_until_complete(&self, poison_ends: bool) -> Result<(), Poisoned> {
        loop {
            let s = self.state.load(Ordering::Acquire);
            match s & MASK {
                COMPLETE => return Ok(()),
                POISONED if poison_ends => return Err(Poisoned),
                st => self.wait_out(st),
            }
        }
    }

    /// Parks until the state is no longer `st` (or returns at once if it is not).
    fn wait_out(&self, st: u8) {
        self.q.park(
            crate::task::ThreadState::Once,
            0,
            None,
            None,
            |_| {
                let s = self.state.load(Ordering::Relaxed);
                if s & MASK != st {
                    return None;
                }
                if s & QUEUED == 0
                    && self
                        .state
                        .compare_exchange(s, s | QUEUED, Ordering::Relaxed, Ordering::Relaxed)
                        .is_err()
                {
                    return None;
                }
                Some(Pos::Back)
            },
            || {},
            |_| {},
        );
    }
}
