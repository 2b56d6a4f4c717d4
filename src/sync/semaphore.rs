//! [`Semaphore`]: a counting semaphore that parks only the calling green thread.
//!
//! # The problem
//! Servers bound their concurrency (open connections, in-flight requests) with a semaphore. With
//! green threads, waiting for a permit must park only the green thread; acquiring and releasing an
//! available permit should cost one atomic instruction; and a waiter must not starve while
//! newcomers keep taking the permits that are released.
//!
//! # Alternatives rejected
//! - A mutex-and-condvar counter: a lock on every acquire and release.
//! - Barging (a released permit goes back to the pool and waiters compete): newcomers can starve a
//!   waiter forever; the throughput gain matters less here than for a mutex, since permits are
//!   usually held for long.
//!
//! # The design
//! One state word: the number of available permits shifted left by one, and bit 0 `WAITERS` (the
//! [`WaitQueue`] may be non-empty). Invariant: `WAITERS` is set only while no permit is available,
//! changes only under the queue lock, and is set exactly when the queue is non-empty there.
//! - `acquire` fast path: while `WAITERS` is clear and a permit is available, subtract one permit
//!   (compare-exchange). Otherwise the slow path, under the queue lock, takes a permit if one is
//!   available and nobody waits, or sets `WAITERS` and queues.
//! - `release` fast path: while `WAITERS` is clear, add a permit (compare-exchange). Otherwise,
//!   under the queue lock, the permit is *handed* to the first waiter (FIFO) without ever
//!   appearing in the count, and `WAITERS` is cleared if that emptied the queue.
//! - A timed-out `acquire_timeout` unlinks itself under the queue lock (clearing `WAITERS` if it
//!   was the last); if a releaser chose it first, it was handed a permit and keeps it: a permit is
//!   never lost.
//!
//! # Memory orderings
//! `Acquire` when a permit is taken and `Release` when one is given back, so that what a holder did
//! before releasing is visible to the next holder (as with a lock); hand-offs publish through the
//! waiter token (see `waitq`).

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::util;
use super::waitq::{Park, Pos, WaitQueue};

const WAITERS: usize = 1;
const ONE: usize = 2;

/// Token: a permit was handed over.
const PERMIT: usize = 1;

/// The largest number of permits a semaphore can hold.
const MAX_PERMITS: usize = usize::MAX >> 1;

/// A counting semaphore that parks only the calling green thread while it waits for a permit.
///
/// Waiters are served first come, first served: a released permit goes to the longest waiter.
/// Acquiring an available permit, and releasing one nobody waits for, cost one atomic instruction.
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use hilos::sync::Semaphore;
///
/// // At most 3 "requests" at a time.
/// let limit = Arc::new(Semaphore::new(3));
/// let active = Arc::new(AtomicUsize::new(0));
/// let hs: Vec<_> = (0..20)
///     .map(|_| {
///         let (limit, active) = (limit.clone(), active.clone());
///         hilos::spawn(move || {
///             let _permit = limit.acquire();
///             assert!(active.fetch_add(1, Ordering::SeqCst) < 3);
///             hilos::yield_now();
///             active.fetch_sub(1, Ordering::SeqCst);
///         })
///     })
///     .collect();
/// for h in hs {
///     h.join().unwrap();
/// }
/// assert_eq!(limit.available_permits(), 3);
/// ```
pub struct Semaphore {
    state: AtomicUsize,
    q: WaitQueue<()>,
}

/// A permit of a [`Semaphore`]; the permit is released when the guard is dropped.
///
/// # Examples
/// ```
/// use hilos::sync::Semaphore;
///
/// let sem = Semaphore::new(2);
/// let permit = sem.acquire();
/// assert_eq!(sem.available_permits(), 1);
/// drop(permit); // released
/// assert_eq!(sem.available_permits(), 2);
/// sem.try_acquire().unwrap().forget(); // never released
/// assert_eq!(sem.available_permits(), 1);
/// ```
#[must_use = "if unused the permit is released at once"]
#[clippy::has_significant_drop]
pub struct SemaphoreGuard<'a> {
    sem: &'a Semaphore,
}

impl Semaphore {
    /// A semaphore with `permits` permits available.
    ///
    /// # Panics
    /// If `permits` exceeds `usize::MAX / 2`.
    #[must_use]
    pub const fn new(permits: usize) -> Semaphore {
        assert!(permits <= MAX_PERMITS, "too many permits for a Semaphore");
        Semaphore {
            state: AtomicUsize::new(permits << 1),
            q: WaitQueue::new(()),
        }
    }

    /// The number of permits available now (another thread may change it at any time).
    pub fn available_permits(&self) -> usize {
        self.state.load(Ordering::Relaxed) >> 1
    }

    /// Takes a permit, parking the current thread (only the green thread, on a green thread) until
    /// one is available. The permit is released when the returned guard is dropped.
    #[inline]
    pub fn acquire(&self) -> SemaphoreGuard<'_> {
        if !self.try_take() {
            self.acquire_slow(None);
        }
        SemaphoreGuard { sem: self }
    }

    /// Takes a permit if one is available now and nobody is waiting for one.
    #[inline]
    pub fn try_acquire(&self) -> Option<SemaphoreGuard<'_>> {
        // (Not `then_some`: it would build, and so drop, a guard even on failure.)
        if self.try_take() {
            Some(SemaphoreGuard { sem: self })
        } else {
            None
        }
    }

    /// As [`acquire`](Semaphore::acquire), giving up after about `timeout`: `None` if no permit
    /// could be had by then.
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphoreGuard<'_>> {
        if self.try_take() || self.acquire_slow(util::deadline(timeout)) {
            Some(SemaphoreGuard { sem: self })
        } else {
            None
        }
    }

    /// Adds one permit: hands it to the longest waiter if there is one. This is what dropping a
    /// [`SemaphoreGuard`] does; call it directly to pair with [`SemaphoreGuard::forget`] or to grow
    /// the semaphore.
    ///
    /// # Panics
    /// If the number of permits would exceed `usize::MAX / 2`.
    #[inline]
    pub fn release(&self) {
        let mut s = self.state.load(Ordering::Relaxed);
        while s & WAITERS == 0 {
            if s >> 1 >= MAX_PERMITS {
                panic!("too many permits for a Semaphore");
            }
            match self
                .state
                .compare_exchange_weak(s, s + ONE, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(x) => s = x,
            }
        }
        self.release_slow();
    }

    /// Adds `n` permits (see [`release`](Semaphore::release)).
    pub fn add_permits(&self, n: usize) {
        for _ in 0..n {
            self.release();
        }
    }

    #[inline]
    fn try_take(&self) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        while s & WAITERS == 0 && s >= ONE {
            match self
                .state
                .compare_exchange_weak(s, s - ONE, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(x) => s = x,
            }
        }
        false
    }

    /// Waits for a permit until `deadline`; `true` if one was had.
    #[cold]
    fn acquire_slow(&self, deadline: Option<Instant>) -> bool {
        let mut spins = 0;
        loop {
            if self.try_take() {
                return true;
            }
            let s = self.state.load(Ordering::Relaxed);
            if s & WAITERS == 0 && spins < util::SPIN_ROUNDS {
                util::spin(spins);
                spins += 1;
                continue;
            }
            let mut took = false;
            let r = self.q.park(
                crate::task::ThreadState::Semaphore,
                0,
                None,
                deadline,
                |_| {
                    let mut s = self.state.load(Ordering::Relaxed);
                    loop {
                        let new = if s >= ONE {
                            // Permits available means nobody waits (invariant): take one.
                            s - ONE
                        } else if s & WAITERS == 0 {
                            s | WAITERS
                        } else {
                            return Some(Pos::Back);
                        };
                        match self.state.compare_exchange(
                            s,
                            new,
                            Ordering::Acquire,
                            Ordering::Relaxed,
                        ) {
                            Ok(_) if s >= ONE => {
                                took = true;
                                return None;
                            }
                            Ok(_) => return Some(Pos::Back),
                            Err(x) => s = x,
                        }
                    }
                },
                || {},
                |g| {
                    if g.is_empty() {
                        self.state.fetch_and(!WAITERS, Ordering::Relaxed);
                    }
                },
            );
            match r {
                Park::Woken(_) => return true,
                Park::TimedOut => return false,
                Park::Invalid if took => return true,
                Park::Invalid => {}
            }
        }
    }

    #[cold]
    fn release_slow(&self) {
        let mut g = self.q.lock();
        if g.is_empty() {
            // WAITERS was cleared meanwhile (the last waiter timed out or was served): release
            // into the count.
            drop(g);
            self.release();
            return;
        }
        if g.len() == 1 {
            self.state.fetch_and(!WAITERS, Ordering::Release);
        }
        g.wake_front(PERMIT);
    }
}

impl SemaphoreGuard<'_> {
    /// Forgets the permit: it is not released when the guard goes (the semaphore shrinks by one).
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for SemaphoreGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.sem.release();
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("available_permits", &self.available_permits())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for SemaphoreGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreGuard").finish_non_exhaustive()
    }
}

impl std::panic::UnwindSafe for Semaphore {}
impl std::panic::RefUnwindSafe for Semaphore {}
