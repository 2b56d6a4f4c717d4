//! Loom model of the mutex's hand-off and its `WOKEN` bit (module doc of `mutex`), run with
//! `RUSTFLAGS="--cfg loom" cargo test --lib loom_` (see `crate::loom`).
//!
//! `loom_mutex_handoff_woken`: three kernel threads lock and unlock one real [`RawMutex`] (two
//! once, one twice, so a thread also meets the lock again after serving it);
//! contended lockers park through the real wait queue, `park::park` and `park::wait_os`, on
//! loom's model of the futex. The fairness clock (`util::FairClock`) is driven by a pattern
//! (`crate::loom::fair`): the model runs with "never hand off", "always hand off" and the
//! alternations, so the retry branch, the hand-off branch and a hand-off while a retrier is
//! still `WOKEN` are all explored. Checked: mutual exclusion (the protected counter is a loom
//! cell: two holders at once, or a holder that does not see the previous holder's write, is a
//! reported race); no waiter is left parked while the lock is free (loom reports the deadlock);
//! and at the end the state is 0: no `LOCKED`, `PARKED` or `WOKEN` left over.
//!
//! Bugs injected to see it fail (each reverted):
//! - the retrier's `fetch_and(!WOKEN)` in `lock_slow` removed (a logic bug: later releases
//!   believe a retrier is on its way and only release): fails with "WOKEN left set".
//! - the hand-off keeping `PARKED` cleared with waiters still queued (`more = 0` in
//!   `unlock_slow`, a logic bug): the next release takes the fast path and wakes nobody; loom
//!   reports a deadlock (a waiter parked for ever while the lock is free).
//! - `unlock`'s fast path weakened from `Release` to `Relaxed` (an ordering bug): loom reports a
//!   causality violation on the counter (the next holder reads it without synchronisation).
//! - the waiter's token load in `WaitQueue::park` weakened from `Acquire` to `Relaxed`, with the
//!   hand-off pattern (an ordering bug: a hand-off passes the critical section through the
//!   token): a causality violation on the counter.
//!   Not caught: orderings that only matter under `SeqCst` total order (the mutex uses none), and
//!   anything about time: which waiter is "old enough" is the pattern's choice, not a clock's.

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

use super::{LOCKED, PARKED, RawMutex, WOKEN};
use crate::loom::sync::atomic::Ordering;

struct Guarded {
    m: RawMutex,
    count: UnsafeCell<usize>,
}

// SAFETY: `count` is touched only while `m` is held; loom checks that.
unsafe impl Sync for Guarded {}
// SAFETY: as above.
unsafe impl Send for Guarded {}

impl Guarded {
    fn add_one(&self) {
        self.m.lock();
        // SAFETY: we hold the lock.
        self.count.with_mut(|c| unsafe { *c += 1 });
        // SAFETY: we hold the lock.
        unsafe { self.m.unlock() };
    }
}

#[test]
fn loom_mutex_handoff_woken() {
    // Bit n: whether the n-th release that serves the queue finds its first waiter old enough.
    for pattern in [0b000, 0b111, 0b010, 0b101] {
        crate::loom::fair::set_pattern(pattern);
        crate::loom::model(3, || {
            let g = Arc::new(Guarded {
                m: RawMutex::new(),
                count: UnsafeCell::new(0),
            });
            let others: Vec<_> = (0..2)
                .map(|_| {
                    let g = g.clone();
                    thread::spawn(move || g.add_one())
                })
                .collect();
            g.add_one();
            g.add_one();
            for t in others {
                t.join().unwrap();
            }
            // SAFETY: every thread is done.
            let n = g.count.with(|c| unsafe { *c });
            assert_eq!(n, 4, "an increment was lost");
            let s = g.m.state.load(Ordering::Relaxed);
            assert_eq!(s & WOKEN, 0, "WOKEN left set");
            assert_eq!(s & (LOCKED | PARKED), 0, "state {s:#b} left over");
        });
    }
}
