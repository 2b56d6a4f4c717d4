//! [`Barrier`]: lets a group of threads wait for each other, parking only green threads.
//!
//! # The problem
//! `std::sync::Barrier` blocks the kernel thread: on a one-worker runtime the first green thread to
//! arrive would block the worker and the others could never arrive.
//!
//! # Alternatives rejected
//! - A mutex and condvar with a generation counter (std's design): correct, but two queues and a
//!   re-lock per waiter on release; the wait queue's own state does the job alone.
//!
//! # The design
//! The arrival count lives in the [`WaitQueue`]'s state, changed under its lock. An arrival that
//! does not complete the group queues itself (in `validate`, in the same critical section as the
//! increment); the arrival that completes it resets the count and wakes everyone queued, and is the
//! leader. Because the count is reset and the group woken in one critical section, threads that
//! arrive afterwards form the next group, so the barrier is reusable. No waiter has a deadline, so
//! every queued waiter is woken exactly by the leader of its group.
//!
//! # Memory orderings
//! All ordering comes from the queue lock (which every arrival takes) and the token
//! Release/Acquire: everything a thread did before `wait` happens-before everything any thread of
//! the same group does after it.

use std::fmt;

use super::waitq::{Park, Pos, WaitQueue};

/// A barrier, as [`std::sync::Barrier`]: `n` threads wait until all `n` have arrived. Parks only
/// the calling green thread. Reusable.
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use hilos::sync::Barrier;
///
/// let n = 10;
/// let barrier = Arc::new(Barrier::new(n));
/// let hs: Vec<_> = (0..n)
///     .map(|_| {
///         let b = Arc::clone(&barrier);
///         hilos::spawn(move || b.wait().is_leader())
///     })
///     .collect();
/// let leaders = hs.into_iter().map(|h| h.join().unwrap()).filter(|&l| l).count();
/// assert_eq!(leaders, 1);
/// ```
pub struct Barrier {
    q: WaitQueue<usize>,
    n: usize,
}

/// Returned by [`Barrier::wait`] when all threads have arrived, as
/// [`std::sync::BarrierWaitResult`] (whose constructor is private to std).
///
/// # Examples
/// ```
/// use hilos::sync::{Arc, Barrier};
///
/// let barrier = Arc::new(Barrier::new(2));
/// let b = Arc::clone(&barrier);
/// let h = hilos::spawn(move || b.wait().is_leader());
/// let mine = barrier.wait().is_leader();
/// // Exactly one of the two is the leader.
/// assert!(mine != h.join().unwrap());
/// ```
pub struct BarrierWaitResult(bool);

impl BarrierWaitResult {
    /// Whether this thread is the "leader": exactly one thread of each group is, the one whose
    /// arrival completed it.
    #[must_use]
    pub fn is_leader(&self) -> bool {
        self.0
    }
}

impl fmt::Debug for BarrierWaitResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BarrierWaitResult")
            .field("is_leader", &self.is_leader())
            .finish()
    }
}

const RELEASED: usize = 1;

impl Barrier {
    /// Creates a barrier that blocks a group of `n` threads. With `n` of 0 or 1, `wait` returns at
    /// once, as std's.
    #[must_use]
    pub const fn new(n: usize) -> Barrier {
        Barrier {
            q: WaitQueue::new(0),
            n,
        }
    }

    /// Blocks the current thread (only the green thread, on a green thread) until all `n` threads
    /// of its group have called `wait`. One thread of each group gets a result whose
    /// [`is_leader`](BarrierWaitResult::is_leader) is `true`.
    pub fn wait(&self) -> BarrierWaitResult {
        let mut leader = false;
        let r = self.q.park(
            crate::task::ThreadState::Barrier,
            0,
            None,
            None,
            |g| {
                let count = g.data();
                *count += 1;
                if *count < self.n {
                    return Some(Pos::Back);
                }
                *count = 0;
                g.wake_all(RELEASED);
                leader = true;
                None
            },
            || {},
            |_| {},
        );
        debug_assert!(matches!(r, Park::Invalid | Park::Woken(RELEASED)));
        BarrierWaitResult(leader)
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier").finish_non_exhaustive()
    }
}

impl std::panic::UnwindSafe for Barrier {}
impl std::panic::RefUnwindSafe for Barrier {}
