//! Loom models of the park/wake token protocol (`task::Token`), run with
//! `RUSTFLAGS="--cfg loom" cargo test --lib loom_` (see `crate::loom`).
//!
//! What they check, per wait: exactly one party (the waker that replaced `PARKED`, or the timer,
//! or the waiter itself cancelling an expired park) gets the scheduling reference, so the waiter
//! is made runnable once and never twice; a wake-up is never lost (the waiter either returns
//! "woken" and the token is `EMPTY`, or returns "timed out" and the wake-up is still pending as
//! `NOTIFIED` for its next wait); and what the waker wrote before waking is visible to a woken
//! waiter.
//!
//! - `loom_token_green_park_waker_timer`: the green waiter's token steps as `park::park` takes
//!   them (`begin_park(PARKED)`, switch away, `finish_wait`), against the real `Token::wake` that
//!   `TaskRef::wake` uses and a timer that cancels as `Local::fire_timers` does
//!   (`cancel_park(PARKED)`). The switch itself cannot run under loom: "switched away until
//!   scheduled" is a loom park until a scheduler (the waker's or the timer's) counted a run.
//! - `loom_token_green_park_expired`: the same waiter whose deadline passed before it could
//!   switch: it cancels its own park, or, if the waker won, waits to be scheduled.
//! - `loom_token_wait_os`: the real `park::wait_os` of a kernel thread, first with a passed
//!   deadline (its cancel path, `cancel_park(PARKED_OS)`/`end_park`), then, if that timed out,
//!   with none (`begin_park(PARKED_OS)` and the futex), against the real `TaskRef::wake`.
//!
//! Bugs injected to see them fail (each reverted):
//! - `Token::cancel_park` as a load then a store instead of a compare-exchange (a logic bug: the
//!   timer and the waker can both take the scheduling reference): the green models fail with
//!   "scheduled twice".
//! - `Token::begin_park` not consuming the `NOTIFIED` it found (a logic bug): fails with the token
//!   left `NOTIFIED` after a "woken" return (a stale wake-up for the next wait).
//! - `Token::notify`'s swap weakened from `AcqRel` to `Relaxed` (an ordering bug): loom reports a
//!   causality violation on the waker's message, read by a waiter that found `NOTIFIED` in
//!   `begin_park` or `try_consume` without any other synchronisation.
//!   Not caught: weakening `begin_park`'s success ordering; in these models the waker's
//!   read of the waiter's data goes through no cell, and loom does not model `SeqCst` beyond
//!   `AcqRel` for single accesses, so the token's orderings are checked only as far as a message
//!   from waker to waiter goes.

use std::time::Instant;

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

use crate::loom::sync::atomic::{AtomicUsize, Ordering};
use crate::task::{self, EMPTY, NOTIFIED, PARKED, Token};

/// A model's shared state: the token, how many times the waiter was made runnable, and the
/// waker's message.
struct Shared {
    token: Token,
    runs: AtomicUsize,
    msg: UnsafeCell<u32>,
}

// SAFETY: `msg` is written by the waker before its wake-up and read by the waiter after it; loom
// checks that order on every access.
unsafe impl Sync for Shared {}
// SAFETY: as above.
unsafe impl Send for Shared {}

impl Shared {
    fn new() -> Arc<Shared> {
        Arc::new(Shared {
            token: Token::new(),
            runs: AtomicUsize::new(0),
            msg: UnsafeCell::new(0),
        })
    }

    /// What a scheduler does with the scheduling reference it won: make the waiter runnable.
    fn schedule(&self, waiter: &thread::Thread) {
        let prev = self.runs.fetch_add(1, Ordering::Release);
        assert_eq!(prev, 0, "scheduled twice");
        waiter.unpark();
    }

    /// The waiter's switch away: it runs again once scheduled.
    fn switch_away(&self) {
        while self.runs.load(Ordering::Acquire) == 0 {
            thread::park();
        }
    }

    /// The waiter, taking the token's steps as `park::park` does on a green thread; `expired`: its
    /// deadline passed before it could switch away (no timer is filed; it cancels its own park).
    /// Returns whether it was woken (not timed out).
    fn green_park(&self, expired: bool) -> bool {
        if !self.token.begin_park(PARKED) {
            return true;
        }
        if expired && self.token.cancel_park(PARKED) {
            return false;
        }
        self.switch_away();
        self.token.finish_wait()
    }

    /// The waker: writes its message, then wakes as `TaskRef::wake` does.
    fn spawn_waker(this: &Arc<Self>) -> thread::JoinHandle<()> {
        let (s, waiter) = (this.clone(), thread::current());
        thread::spawn(move || {
            // SAFETY: only the waker writes `msg`.
            s.msg.with_mut(|m| unsafe { *m = 1 });
            s.token.wake(|| s.schedule(&waiter));
        })
    }

    /// The waiter, as soon as it returned `woken`: it sees what the waker wrote (before any
    /// join, which would order the accesses by itself).
    fn check_message(&self, woken: bool) {
        if woken {
            // SAFETY: a read; loom checks it is ordered after the waker's write.
            let m = self.msg.with(|m| unsafe { *m });
            assert_eq!(m, 1, "woken before the wake-up's writes");
        }
    }

    /// After the waiter returned `woken` and everyone finished: no wake-up lost or left stale.
    fn check(&self, woken: bool) {
        let left = self.token.word().load(Ordering::Relaxed);
        let expected = if woken { EMPTY } else { NOTIFIED };
        assert_eq!(
            left, expected,
            "woken: {woken}: a wake-up was lost or left stale"
        );
    }
}

#[test]
fn loom_token_green_park_waker_timer() {
    crate::loom::model(3, || {
        let s = Shared::new();
        let waker = Shared::spawn_waker(&s);
        let timer = {
            let (s, waiter) = (s.clone(), thread::current());
            thread::spawn(move || {
                if s.token.cancel_park(PARKED) {
                    s.schedule(&waiter);
                }
            })
        };
        let woken = s.green_park(false);
        s.check_message(woken);
        waker.join().unwrap();
        timer.join().unwrap();
        s.check(woken);
    });
}

#[test]
fn loom_token_green_park_expired() {
    crate::loom::model(3, || {
        let s = Shared::new();
        let waker = Shared::spawn_waker(&s);
        let woken = s.green_park(true);
        s.check_message(woken);
        waker.join().unwrap();
        if !woken {
            assert_eq!(
                s.runs.load(Ordering::Relaxed),
                0,
                "cancelled, yet scheduled"
            );
        }
        s.check(woken);
    });
}

#[test]
fn loom_token_wait_os() {
    crate::loom::model(3, || {
        let me = task::current();
        let s = Shared::new(); // only its message is used
        let waker = {
            let (me, s) = (me.clone(), s.clone());
            thread::spawn(move || {
                // SAFETY: only the waker writes `msg`.
                s.msg.with_mut(|m| unsafe { *m = 1 });
                me.wake();
            })
        };
        let mut woken = crate::park::wait_os(&me.sys, Some(Instant::now()));
        if !woken {
            // Timed out: the wake-up is still to come, or pending; a wait without deadline
            // must get it (loom reports a deadlock if it sleeps for ever).
            woken = crate::park::wait_os(&me.sys, None);
            assert!(woken, "a wait without deadline returned timed out");
        }
        // SAFETY: a read; loom checks it is ordered after the waker's write.
        let m = s.msg.with(|m| unsafe { *m });
        assert_eq!(m, 1, "woken before the wake-up's writes");
        waker.join().unwrap();
        assert_eq!(
            me.sys.word().load(Ordering::Relaxed),
            EMPTY,
            "a wake-up left stale"
        );
    });
}
