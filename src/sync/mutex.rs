//! [`Mutex`]: a mutual-exclusion lock that parks only the calling green thread.
//!
//! # The problem
//! `std::sync::Mutex` blocks the kernel thread: on a hilos worker, a green thread waiting for a
//! lock held by another green thread of the same worker would block the very worker that must run
//! the holder, a deadlock on a one-worker runtime. The replacement must park only the green thread,
//! work for kernel threads too, cost one atomic instruction when uncontended, stay fast under
//! contention, and never let a waiter starve.
//!
//! # Alternatives rejected
//! - Strict FIFO hand-off on every contended unlock: fair, but the lock then stays held while the
//!   woken thread is scheduled (microseconds on another worker), collapsing throughput.
//! - Pure barging (wake a waiter and let it compete): fastest, but a waiter can lose forever.
//! - A ticket lock: FIFO again, and it cannot park.
//!
//! # The design
//! One state byte: `LOCKED` (held), `PARKED` (the wait queue may be non-empty) and `WOKEN` (a
//! waiter was woken to retry and has not run yet).
//! - `lock`: compare-exchange `0 -> LOCKED`; on failure, the slow path spins a little while nobody is
//!   parked, then queues in a [`WaitQueue`] (see `waitq`) whose `validate` re-checks, under the queue
//!   lock, that the mutex is still held and sets `PARKED`.
//! - `unlock`: compare-exchange `LOCKED -> 0`; it fails only if `PARKED` is set, and then the slow
//!   path, under the queue lock, looks at the first waiter. If it has waited at least
//!   `util::FAIR_AFTER` (0.5 ms), and the lock has not handed itself over in the last 0.5 ms
//!   (`util::FairClock`), the lock is *handed* to it: `LOCKED` stays set and the waiter returns
//!   owning it. Otherwise the lock is released and the waiter woken to compete ("retry"); a
//!   retrier that loses queues again at the *front*, keeping its original start time, so the first
//!   waiter is served within about 0.5 ms. This is eventual fairness: no starvation, and barging
//!   throughput the rest of the time (handing over on every release would convoy: each
//!   acquisition would wait for a parked thread to be scheduled).
//!
//! - While a waiter woken to retry has not run (`WOKEN`), releases just release: waking one waiter
//!   per release under heavy contention mostly wakes threads that lose again (as Go's mutex
//!   found). The retrier clears `WOKEN` when it runs, so the next release serves the queue again.
//!
//! Invariant: `PARKED` changes only under the queue lock, and is set exactly when the queue is
//! non-empty there. While `LOCKED` is set, only its holder (under the queue lock) changes
//! `LOCKED`; the other state changes are compare-exchanges, so no update is lost.
//!
//! # Memory orderings
//! `Acquire` on every successful lock, `Release` on every unlock (fast path, slow release), as any
//! lock. A hand-off does not clear `LOCKED`; the holder's critical section reaches the new owner
//! through the waiter's token (`Release` store, `Acquire` load, see `waitq`). `PARKED` changes need
//! no ordering of their own: they happen under the queue lock.

use crate::loom::sync::atomic::{AtomicU8, Ordering};
use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::time::Instant;

use super::poison::{self, LockResult, TryLockError, TryLockResult};
use super::util::{self, FairClock};
use super::waitq::{Park, Pos, WaitQueue};

#[cfg(all(test, loom))]
mod loom_models;

const LOCKED: u8 = 1;
const PARKED: u8 = 2;
/// A waiter has been woken to retry and has not run yet: releases need not wake another.
const WOKEN: u8 = 4;

/// Token: the lock was handed over; the waiter owns it.
const HANDOFF: usize = 1;
/// Token: the lock was released; the waiter should try again.
const RETRY: usize = 2;

/// The lock without data or poisoning (also used by [`super::Condvar`]).
pub(crate) struct RawMutex {
    state: AtomicU8,
    q: WaitQueue<FairClock>,
}

impl RawMutex {
    crate::loom::const_fn! {
        pub(crate) const fn new() -> RawMutex {
            RawMutex {
                state: AtomicU8::new(0),
                q: WaitQueue::new(FairClock::new()),
            }
        }
    }

    #[inline]
    pub(crate) fn lock(&self) {
        if self
            .state
            .compare_exchange_weak(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_slow();
        }
    }

    #[inline]
    pub(crate) fn try_lock(&self) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & LOCKED != 0 {
                return false;
            }
            match self.state.compare_exchange_weak(
                s,
                s | LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(x) => s = x,
            }
        }
    }

    /// # Safety
    /// The caller holds the lock.
    #[inline]
    pub(crate) unsafe fn unlock(&self) {
        if self
            .state
            .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.unlock_contended();
        }
    }

    /// Releases with waiters queued: if one was already woken to retry and has not run yet, it is
    /// enough to release; otherwise serve the queue.
    #[cold]
    fn unlock_contended(&self) {
        let mut s = self.state.load(Ordering::Relaxed);
        while s & PARKED == 0 || s & WOKEN != 0 {
            match self.state.compare_exchange_weak(
                s,
                s & !LOCKED,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(x) => s = x,
            }
        }
        self.unlock_slow();
    }

    #[cold]
    fn lock_slow(&self) {
        let mut spins = 0;
        let mut since: Option<Instant> = None;
        let mut pos = Pos::Back;
        loop {
            let s = self.state.load(Ordering::Relaxed);
            if s & LOCKED == 0 {
                if self
                    .state
                    .compare_exchange_weak(s, s | LOCKED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return;
                }
                continue;
            }
            if s & PARKED == 0 && spins < util::SPIN_ROUNDS {
                util::spin(spins);
                spins += 1;
                continue;
            }
            let started = *since.get_or_insert_with(Instant::now);
            let r = self.q.park(
                crate::task::ThreadState::Mutex,
                0,
                Some(started),
                None,
                |_| {
                    let s = self.state.load(Ordering::Relaxed);
                    if s & LOCKED == 0 {
                        return None;
                    }
                    if s & PARKED == 0
                        && self
                            .state
                            .compare_exchange(s, s | PARKED, Ordering::Relaxed, Ordering::Relaxed)
                            .is_err()
                    {
                        return None;
                    }
                    Some(pos)
                },
                || {},
                |_| {},
            );
            match r {
                Park::Woken(HANDOFF) => return,
                Park::Woken(_) => {
                    // Released for us to compete: later releases may wake someone again. If we
                    // lose, we keep our place at the front.
                    self.state.fetch_and(!WOKEN, Ordering::Relaxed);
                    pos = Pos::Front;
                    spins = 0;
                }
                Park::Invalid | Park::TimedOut => {}
            }
        }
    }

    #[cold]
    fn unlock_slow(&self) {
        let mut g = self.q.lock();
        // We hold LOCKED, and PARKED is set, so only we change LOCKED and PARKED now; WOKEN may be
        // cleared concurrently by a retrier, hence the compare-exchange loops.
        let Some((_, since)) = g.front() else {
            self.state.fetch_and(!(LOCKED | PARKED), Ordering::Release);
            return;
        };
        let more = if g.len() > 1 { PARKED } else { 0 };
        let handoff = g.data().handoff_due(since);
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            let new = if handoff {
                LOCKED | more | (s & WOKEN)
            } else {
                more | WOKEN
            };
            match self
                .state
                .compare_exchange_weak(s, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(x) => s = x,
            }
        }
        g.wake_front(if handoff { HANDOFF } else { RETRY });
    }
}

/// A mutual exclusion primitive useful for protecting shared data, as [`std::sync::Mutex`], that
/// parks only the calling green thread while it waits.
///
/// The API and semantics are std's, poisoning included: if a thread panics while holding the lock,
/// later calls to [`lock`](Mutex::lock) and [`try_lock`](Mutex::try_lock) return an `Err` that
/// still carries the guard.
///
/// It works from green threads and kernel threads alike, on any runtime: a kernel thread may wait
/// for a lock a green thread holds and the other way round. An uncontended `lock`/`unlock` is one
/// atomic instruction each. Under contention, a waiter that has waited for about half a millisecond
/// gets the lock handed to it, so no thread starves.
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use hilos::sync::Mutex;
///
/// let counter = Arc::new(Mutex::new(0));
/// let hs: Vec<_> = (0..10)
///     .map(|_| {
///         let c = Arc::clone(&counter);
///         hilos::spawn(move || *c.lock().unwrap() += 1)
///     })
///     .collect();
/// for h in hs {
///     h.join().unwrap();
/// }
/// assert_eq!(*counter.lock().unwrap(), 10);
/// ```
pub struct Mutex<T: ?Sized> {
    pub(crate) raw: RawMutex,
    pub(crate) poison: poison::Flag,
    data: UnsafeCell<T>,
}

// SAFETY: the mutex hands out access to `T` to one thread at a time, so `T: Send` suffices, as std.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

impl<T: ?Sized> UnwindSafe for Mutex<T> {}
impl<T: ?Sized> RefUnwindSafe for Mutex<T> {}

/// An RAII guard of a locked [`Mutex`]: the data is reachable through it, and the lock is released
/// when it is dropped, as [`std::sync::MutexGuard`].
///
/// # Examples
/// ```
/// use hilos::sync::Mutex;
///
/// let m = Mutex::new(vec![1]);
/// {
///     let mut guard = m.lock().unwrap();
///     guard.push(2); // the data, through the guard
///     assert!(m.try_lock().is_err()); // locked while the guard lives
/// } // unlocked here
/// assert_eq!(*m.try_lock().unwrap(), [1, 2]);
/// ```
#[must_use = "if unused the Mutex will immediately unlock"]
#[clippy::has_significant_drop]
pub struct MutexGuard<'a, T: ?Sized + 'a> {
    pub(crate) lock: &'a Mutex<T>,
    poison: poison::Guard,
    /// `!Send`, as std's guard.
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a shared guard only gives `&T`, as std.
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}

impl<T> Mutex<T> {
    crate::loom::const_fn! {
        /// Creates a new mutex in an unlocked state ready for use.
        ///
        /// # Examples
        /// ```
        /// let m = hilos::sync::Mutex::new(0);
        /// # let _ = m;
        /// ```
        #[inline]
        pub const fn new(t: T) -> Mutex<T> {
            Mutex {
                raw: RawMutex::new(),
                poison: poison::Flag::new(),
                data: UnsafeCell::new(t),
            }
        }
    }

    /// Consumes this mutex, returning the underlying data.
    ///
    /// # Errors
    /// If another user of this mutex panicked while holding it, the error carries the data.
    pub fn into_inner(self) -> LockResult<T>
    where
        T: Sized,
    {
        let data = self.data.into_inner();
        poison::map_result(self.poison.borrow(), |()| data)
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Acquires the mutex, parking the current thread (only the green thread, on a green thread)
    /// until it is able to do so.
    ///
    /// # Errors
    /// If another user of this mutex panicked while holding it, the lock is still acquired and the
    /// error carries the guard.
    ///
    /// # Panics
    /// Locking a mutex the current thread already holds deadlocks (it may panic in the future, as
    /// std says of its own).
    #[inline]
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        self.raw.lock();
        // SAFETY: we just took the lock.
        unsafe { MutexGuard::new(self) }
    }

    /// Attempts to acquire the lock without waiting.
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`] if the lock is held; [`TryLockError::Poisoned`], carrying the
    /// guard, if it was acquired but is poisoned.
    #[inline]
    pub fn try_lock(&self) -> TryLockResult<MutexGuard<'_, T>> {
        if self.raw.try_lock() {
            // SAFETY: we just took the lock.
            Ok(unsafe { MutexGuard::new(self) }?)
        } else {
            Err(TryLockError::WouldBlock)
        }
    }

    /// Whether the mutex is poisoned (a thread panicked while holding it). Another thread may
    /// change this at any time; do not trust a `false` without holding the lock.
    #[inline]
    pub fn is_poisoned(&self) -> bool {
        self.poison.get()
    }

    /// Clears the poisoned state, as [`std::sync::Mutex::clear_poison`].
    #[inline]
    pub fn clear_poison(&self) {
        self.poison.clear();
    }

    /// A mutable reference to the underlying data; no locking is needed since `&mut self` proves
    /// exclusive access.
    ///
    /// # Errors
    /// If the mutex is poisoned, the error carries the reference.
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        let data = self.data.get_mut();
        poison::map_result(self.poison.borrow(), |()| data)
    }
}

impl<T> From<T> for Mutex<T> {
    /// Creates a new mutex in an unlocked state ready for use (as [`Mutex::new`]).
    fn from(t: T) -> Self {
        Mutex::new(t)
    }
}

impl<T: Default> Default for Mutex<T> {
    /// Creates a `Mutex<T>`, with the `Default` value for `T`.
    fn default() -> Mutex<T> {
        Mutex::new(Default::default())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Ok(guard) => {
                d.field("data", &&*guard);
            }
            Err(TryLockError::Poisoned(err)) => {
                d.field("data", &&**err.get_ref());
            }
            Err(TryLockError::WouldBlock) => {
                d.field("data", &format_args!("<locked>"));
            }
        }
        d.field("poisoned", &self.poison.get());
        d.finish_non_exhaustive()
    }
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// # Safety
    /// The caller holds `lock.raw`.
    #[inline]
    unsafe fn new(lock: &'a Mutex<T>) -> LockResult<MutexGuard<'a, T>> {
        poison::map_result(lock.poison.guard(), |guard| MutexGuard {
            lock,
            poison: guard,
            _not_send: PhantomData,
        })
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.poison.done(&self.poison);
        // SAFETY: the guard holds the lock.
        unsafe { self.lock.raw.unlock() };
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}
