//! [`Condvar`]: a condition variable for [`Mutex`] that parks only the calling green thread.
//!
//! # The problem
//! A waiter must release the mutex and go to sleep as one step with respect to notifiers: a
//! `notify_one` issued after the waiter released the mutex must find it. A timed wait that expires
//! just as it is notified must not swallow the notification (someone else should get it, or the
//! wait must report it was notified). And `notify_*` with nobody waiting, the common case, should
//! cost no lock and no system call.
//!
//! # Alternatives rejected
//! - A sequence-number futex condvar (std's on Linux): needs a futex word per condvar and wakes
//!   kernel threads, not green ones; `notify_one` may wake a thread that then finds nothing.
//! - Requeueing waiters onto the mutex's queue on `notify_all` (parking_lot): saves a thundering
//!   herd, but couples the condvar to one mutex's internals; not worth it yet.
//!
//! # The design
//! A [`WaitQueue`] of waiters. `wait` queues the caller under the queue lock, *then* releases the
//! mutex (`before_sleep`), parks until its token is set, and re-locks the mutex. `notify_one`
//! unlinks the first waiter under the queue lock and wakes it; `notify_all` every waiter. A timed
//! wait that expires unlinks itself under the queue lock if no notifier chose it first; if one did,
//! the wait reports "not timed out": the notification is consumed by the thread it was given to,
//! never lost.
//!
//! Like std's, a `Condvar` may be used with several mutexes over its life (std says it *may*
//! panic then; this one does not check).
//!
//! # Memory orderings
//! `notify_*` first reads the queue length without the lock (`Relaxed`) and returns if it is zero.
//! That is enough: a waiter is queued before it releases the mutex, so a notifier that changed the
//! condition under the mutex afterwards (the only use std's contract supports) is ordered after the
//! queueing by the mutex's Release/Acquire and sees a non-zero length. Everything else is ordered by
//! the queue lock and the token (see `waitq`).

use std::fmt;
use std::time::{Duration, Instant};

use super::mutex::{Mutex, MutexGuard};
use super::poison::{self, LockResult, PoisonError};
use super::util;
use super::waitq::{Park, Pos, WaitQueue};

/// Token of a notified waiter.
const NOTIFIED: usize = 1;

/// Whether a timed wait on a [`Condvar`] returned because of a time-out, as
/// [`std::sync::WaitTimeoutResult`] (whose constructor is private to std).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use hilos::sync::{Condvar, Mutex};
///
/// let (lock, cvar) = (Mutex::new(false), Condvar::new());
/// // Nobody sets the flag: the wait ends by timing out.
/// let (ready, result) = cvar
///     .wait_timeout_while(lock.lock().unwrap(), Duration::from_millis(10), |r| !*r)
///     .unwrap();
/// assert!(result.timed_out());
/// assert!(!*ready);
/// ```
#[derive(Debug, PartialEq, Eq, Copy, Clone)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// Whether the wait is known to have timed out.
    #[must_use]
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

/// A condition variable, as [`std::sync::Condvar`], that parks only the calling green thread.
///
/// Works with [`hilos::sync::Mutex`](Mutex) from green and kernel threads alike. As std's, waits
/// may wake up spuriously; use [`wait_while`](Condvar::wait_while) or a loop.
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use hilos::sync::{Condvar, Mutex};
///
/// let pair = Arc::new((Mutex::new(false), Condvar::new()));
/// let pair2 = Arc::clone(&pair);
/// hilos::spawn(move || {
///     let (lock, cvar) = &*pair2;
///     *lock.lock().unwrap() = true;
///     cvar.notify_one();
/// });
/// let (lock, cvar) = &*pair;
/// let started = cvar.wait_while(lock.lock().unwrap(), |s| !*s).unwrap();
/// assert!(*started);
/// ```
pub struct Condvar {
    q: WaitQueue<()>,
}

impl Condvar {
    /// Creates a new condition variable ready to be waited on and notified.
    #[must_use]
    #[inline]
    pub const fn new() -> Condvar {
        Condvar {
            q: WaitQueue::new(()),
        }
    }

    /// Queues the caller, releases `m`, parks until notified or `deadline`, re-locks `m`.
    /// Returns whether it timed out.
    fn wait_raw<T: ?Sized>(&self, m: &Mutex<T>, deadline: Option<Instant>) -> bool {
        let r = self.q.park(
            crate::task::ThreadState::Condvar,
            0,
            None,
            deadline,
            |_| Some(Pos::Back),
            // SAFETY: the caller's guard holds `m`; it is re-locked below before the guard can
            // be used or dropped.
            || unsafe { m.raw.unlock() },
            |_| {},
        );
        m.raw.lock();
        r == Park::TimedOut
    }

    /// Blocks the current thread (only the green thread, on a green thread) until this condition
    /// variable receives a notification, releasing the mutex of `guard` meanwhile and re-acquiring
    /// it before returning. May wake up spuriously.
    ///
    /// # Errors
    /// If the mutex is poisoned when it is re-acquired, the error carries the guard.
    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> LockResult<MutexGuard<'a, T>> {
        let m = guard.lock;
        self.wait_raw(m, None);
        if m.poison.get() {
            Err(PoisonError::new(guard))
        } else {
            Ok(guard)
        }
    }

    /// Blocks while `condition` returns `true`, as [`std::sync::Condvar::wait_while`].
    ///
    /// # Errors
    /// If the mutex is poisoned when it is re-acquired, the error carries the guard.
    pub fn wait_while<'a, T, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: F,
    ) -> LockResult<MutexGuard<'a, T>>
    where
        F: FnMut(&mut T) -> bool,
    {
        while condition(&mut *guard) {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    /// As [`wait`](Condvar::wait), returning at the latest after about `dur`. The result tells
    /// whether the wait timed out; a notification that arrives as the time runs out is never lost:
    /// it either wakes this thread (not timed out) or goes to another waiter.
    ///
    /// # Errors
    /// If the mutex is poisoned when it is re-acquired, the error carries the guard and result.
    pub fn wait_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        dur: Duration,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        let m = guard.lock;
        let timed_out = self.wait_raw(m, util::deadline(dur));
        let r = (guard, WaitTimeoutResult(timed_out));
        if m.poison.get() {
            Err(PoisonError::new(r))
        } else {
            Ok(r)
        }
    }

    /// Waits for a notification for at most `ms` milliseconds, as std's deprecated
    /// [`std::sync::Condvar::wait_timeout_ms`]: the `bool` is `false` if the time ran out. Use
    /// [`Condvar::wait_timeout`].
    ///
    /// # Errors
    /// If the mutex is poisoned when it is re-acquired, the error carries the guard and result.
    ///
    /// # Examples
    /// ```
    /// #![allow(deprecated)]
    /// use hilos::sync::{Condvar, Mutex};
    ///
    /// let (m, cv) = (Mutex::new(()), Condvar::new());
    /// let (_guard, notified) = cv.wait_timeout_ms(m.lock().unwrap(), 5).unwrap();
    /// assert!(!notified); // nobody notifies
    /// ```
    #[deprecated(
        since = "0.1.0",
        note = "replaced by `Condvar::wait_timeout`, as in std"
    )]
    pub fn wait_timeout_ms<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        ms: u32,
    ) -> LockResult<(MutexGuard<'a, T>, bool)> {
        let r = self.wait_timeout(guard, Duration::from_millis(u64::from(ms)));
        poison::map_result(r, |(g, r)| (g, !r.timed_out()))
    }

    /// Waits while `condition` returns `true`, for at most `dur` in total, as
    /// [`std::sync::Condvar::wait_timeout_while`]. The result says whether the time ran out with
    /// the condition still `true`.
    ///
    /// # Errors
    /// If the mutex is poisoned when it is re-acquired, the error carries the guard and result.
    pub fn wait_timeout_while<'a, T, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        dur: Duration,
        mut condition: F,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)>
    where
        F: FnMut(&mut T) -> bool,
    {
        let start = Instant::now();
        loop {
            if !condition(&mut *guard) {
                return Ok((guard, WaitTimeoutResult(false)));
            }
            let Some(left) = dur.checked_sub(start.elapsed()) else {
                return Ok((guard, WaitTimeoutResult(true)));
            };
            guard = self.wait_timeout(guard, left)?.0;
        }
    }

    /// Wakes up one thread blocked on this condition variable, if any. Costs one load when nobody
    /// waits.
    #[inline]
    pub fn notify_one(&self) {
        if self.q.queued() == 0 {
            return;
        }
        self.q.lock().wake_front(NOTIFIED);
    }

    /// Wakes up all threads blocked on this condition variable. Costs one load when nobody waits.
    #[inline]
    pub fn notify_all(&self) {
        if self.q.queued() == 0 {
            return;
        }
        self.q.lock().wake_all(NOTIFIED);
    }
}

impl std::panic::UnwindSafe for Condvar {}
impl std::panic::RefUnwindSafe for Condvar {}

impl Default for Condvar {
    /// Creates a `Condvar` which is ready to be waited on and notified.
    fn default() -> Condvar {
        Condvar::new()
    }
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar").finish_non_exhaustive()
    }
}
