//! Park and wake: how a thread of hilos waits, and how another makes it run again.
//!
//! # The problem
//! Every blocking call of hilos (join, locks, channels, I/O, sleep) comes down to "wait until
//! someone says go, or a deadline passes". On a green thread that must park only the green thread;
//! on a plain kernel thread it must block that thread. A wake-up may come from any kernel thread,
//! before or after the waiter has gone to sleep, and must never be lost or delivered twice.
//!
//! # The design
//! The waiting and waking halves sit side by side here, over the tokens of `task` (the states
//! `EMPTY`, `NOTIFIED`, `PARKED`, `PARKED_OS` and their transitions are documented there):
//! - [`park`]: a green thread moves its token `EMPTY -> PARKED` with one compare-exchange (which
//!   also consumes a pending wake-up), optionally files a timer, and switches away
//!   ([`local::switch_away_from`]); its scheduling reference is now held by the parked state. A
//!   kernel thread, or a green thread that may not switch (it is unwinding), goes
//!   `EMPTY -> PARKED_OS` and waits on the futex word itself ([`wait_os`]).
//! - `TaskRef::wake` / `TaskRef::unpark` (defined here): swap in `NOTIFIED`; a replaced `PARKED`
//!   hands the waker the scheduling reference, which it gives to [`schedule`]; a replaced
//!   `PARKED_OS` means a futex wake.
//! - [`schedule`] makes a green thread runnable on its home worker: into the "next" slot when the
//!   waker runs on that worker, through the home's inbox otherwise (`task::runq`).
//! - A timer that fires takes the reference back with `PARKED -> EMPTY` ([`local`],
//!   `fire_timers`); exactly one of the timer and a waker wins, so a thread is made runnable at
//!   most once per wait.
//!
//! The worker-local context that the switch uses lives in [`local`]; the scheduler's loop, which
//! runs when a worker has nothing local to run, sits above this module and is not called from it.
//!
//! # Required orderings
//! The waker's swap is `AcqRel` and the waiter's compare-exchange `AcqRel`: what the waker wrote
//! before waking is visible to the woken thread, and the thread's `home`, written at its first run
//! before it can ever park, is visible to the waker. Loom models of the token protocol are in
//! `loom_models` (run with `RUSTFLAGS="--cfg loom"`).

mod debug;
pub(crate) mod local;

#[cfg(all(test, loom))]
mod loom_models;

use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::task::runq::Home;
use crate::task::{
    self, Green, Header, Kind, PARKED, PARKED_OS, TaskRef, ThreadState, Token, WAIT_NONE,
    WAIT_SLEEP, WAIT_SYS, WAIT_USER, Which, futex,
};
use local::{Away, local_ptr, switch_away, switch_away_from};

impl TaskRef {
    /// Wakes the thread through its `sys` token (hilos's own blocking code uses this).
    #[inline]
    pub(crate) fn wake(&self) {
        wake_token(self.as_ptr(), Which::Sys);
    }

    /// Wakes the thread through its `user` token, as [`crate::Thread::unpark`].
    pub(crate) fn unpark(&self) {
        match &self.kind {
            Kind::Kernel(t) => t.unpark(),
            Kind::Green(_) => wake_token(self.as_ptr(), Which::User),
        }
    }
}

/// Delivers a wake-up on one token of the thread at `ptr`.
#[inline]
fn wake_token(ptr: NonNull<Header>, which: Which) {
    // SAFETY: the caller holds a reference to the header for the duration of the call.
    let h = unsafe { ptr.as_ref() };
    h.token(which).wake(|| {
        // SAFETY: replacing PARKED makes us the owner of the parked thread's scheduling
        // reference (module doc).
        schedule(unsafe { TaskRef::from_raw(ptr) });
    });
}

/// Whether the running green thread may switch away. Always, when green threads have
/// thread-locals of their own (`tls`): the panic count is then the green thread's own, so a
/// thread may park while it unwinds. With thread-locals shared with the worker, not while it
/// unwinds: the worker's "panicking" state would carry into the next green thread, so a wait then
/// blocks the whole worker instead (DESIGN-NOTES section 2; documented as a limit of that mode).
#[inline]
pub(crate) fn may_switch() -> bool {
    crate::tls::per_green() || !std::thread::panicking()
}

/// Makes the green thread `t` runnable on its home worker. `t` is its scheduling reference.
pub(crate) fn schedule(t: TaskRef) {
    let g = t.green().expect("hilos: scheduled a kernel thread");
    // `home` is written once, at the first run, before the thread can ever park; we read it after
    // winning PARKED (Acquire) from the thread's own Release, so it is set and stable.
    let home = g.home.get();
    assert!(!home.is_null(), "hilos: woke a thread that never ran");
    if ptr::eq(home, local::current_home()) {
        // On the home worker: the new thread runs next; the one it displaces queues up.
        // SAFETY: the thread is alive and blocked (we hold its scheduling reference), so its
        // runtime's workers, which own the Home, are alive; we are on the owning kernel thread and
        // no other borrow is live.
        unsafe {
            let home = &*home;
            let next = home.next_slot();
            if let Some(old) = next.replace(t) {
                home.local().push_back(old);
            }
        }
    } else {
        // Keep the home alive past the push: once `t` is in the inbox it may run and exit, and
        // with it the last thread keeping the runtime's workers alive.
        // SAFETY: `home` came from `Arc::as_ptr` of a `Home` the runtime's workers own; the thread
        // is alive and blocked (we hold its scheduling reference), so that Arc is alive while we
        // take our own count.
        let home: Arc<Home> = unsafe {
            Arc::increment_strong_count(home);
            Arc::from_raw(home)
        };
        home.push_remote(t);
    }
}

/// Blocks a kernel thread (or a green thread that may not switch) on `token` until a wake-up or
/// `deadline`. Returns `false` on timeout.
pub(crate) fn wait_os(token: &Token, deadline: Option<Instant>) -> bool {
    if token.try_consume() {
        return true;
    }
    if !token.begin_park(PARKED_OS) {
        return true;
    }
    loop {
        let timeout = match deadline {
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    if token.cancel_park(PARKED_OS) {
                        return false;
                    }
                    token.end_park();
                    return true;
                }
                Some(d - now)
            }
            None => None,
        };
        futex::wait(token.word(), PARKED_OS, timeout);
        if token.try_consume() {
            return true;
        }
    }
}
/// Records what the running green thread `g` waits on, and since when, just before it switches
/// away (for dumps: `task::wait`).
#[inline]
fn note_wait(g: &Green, why: ThreadState) {
    g.state.set(why);
    g.since_ms.set(task::wait::coarse_now());
}

/// Blocks the caller on one of its tokens until woken, or until `deadline`. Works on green
/// threads (parks only the green thread) and kernel threads (blocks them). Returns `false` if it
/// returned because the deadline passed. May return spuriously; callers re-check their condition.
/// `why` is what a green thread is shown waiting on in dumps.
pub(crate) fn park(which: Which, deadline: Option<Instant>, why: ThreadState) -> bool {
    // One thread-local read for the test and the switch, as in `yield_now`.
    let w = local_ptr();
    // SAFETY: a non-null pointer is this kernel thread's live worker, not borrowed while user
    // code runs; a plain read.
    let cur = unsafe { w.as_ref() }.and_then(|wr| NonNull::new(wr.current as *mut Header));
    let Some(cur) = cur else {
        return match which {
            Which::User => {
                match deadline {
                    None => std::thread::park(),
                    Some(d) => {
                        std::thread::park_timeout(d.saturating_duration_since(Instant::now()))
                    }
                }
                true
            }
            Which::Sys => wait_os(&task::current().sys, deadline),
        };
    };
    task::fork::check();
    // SAFETY: the running green thread's header is alive while it runs.
    let h = unsafe { cur.as_ref() };
    let token = h.token(which);
    if !may_switch() {
        return wait_os(token, deadline);
    }
    let g = h.green().expect("hilos: current thread is not green");
    let wait_no = g.wait_gen.get().wrapping_add(1);
    g.wait_gen.set(wait_no);
    g.wait_on.set(match which {
        Which::User => WAIT_USER,
        Which::Sys => WAIT_SYS,
    });
    // One compare-exchange both consumes a pending wake-up and announces the park.
    if !token.begin_park(PARKED) {
        g.wait_on.set(WAIT_NONE);
        return true;
    }
    if let Some(d) = deadline {
        if d <= Instant::now() {
            g.wait_on.set(WAIT_NONE);
            if token.cancel_park(PARKED) {
                return false;
            }
            // A waker won the race and owns the scheduling reference: wait for it to run us.
            // SAFETY: the token holds our scheduling reference.
            unsafe { switch_away(Away::Block) };
            return token.finish_wait();
        }
        // SAFETY: on a green thread, so the worker is live; the borrow is short.
        let wr = unsafe { &mut *w };
        // SAFETY: the header is alive (we are running on it).
        wr.timers
            .push(d, wait_no, unsafe { TaskRef::clone_from_ptr(cur) });
    }
    note_wait(g, why);
    // SAFETY: the token now holds our scheduling reference (PARKED); `w` was read on this side
    // of every switch.
    unsafe { switch_away_from(w, Away::Block) };
    g.wait_on.set(WAIT_NONE);
    g.state.set(ThreadState::Runnable);
    // Woken by a waker (NOTIFIED) or by the timer (EMPTY); consume whatever is pending.
    let notified = token.finish_wait();
    if notified && deadline.is_some() {
        // Our timer entry outlives the wait: let the heap know (`time`).
        // SAFETY: still on the same worker (a started thread never moves); the borrow is short.
        unsafe { &mut *w }.timers.ended_early();
    }
    notified
}

/// Switches the running green thread away until another party makes it runnable with
/// [`schedule`].
///
/// `why` is what the thread is shown waiting on in dumps.
///
/// # Safety
/// Call on the green thread `cur` (the caller itself), not panicking, after handing its
/// scheduling reference to exactly one party (by publishing it in some protocol's state word),
/// which will schedule it exactly once. Nothing else may wake it meanwhile.
pub(crate) unsafe fn block_current(cur: NonNull<Header>, why: ThreadState) {
    // SAFETY: per the contract `cur` is the running thread, alive while it runs.
    let g = unsafe { cur.as_ref() }
        .green()
        .expect("hilos: current thread is not green");
    note_wait(g, why);
    // SAFETY: per the contract.
    unsafe { switch_away(Away::Block) };
    g.state.set(ThreadState::Runnable);
}

/// Puts the caller to sleep for `dur` (green: a timer on its worker; kernel: `std::thread::sleep`).
pub(crate) fn sleep(dur: Duration) {
    let Some(cur) = task::current_green() else {
        std::thread::sleep(dur);
        return;
    };
    task::fork::check();
    if dur.is_zero() {
        yield_now();
        return;
    }
    if !may_switch() {
        std::thread::sleep(dur);
        return;
    }
    let Some(deadline) = Instant::now().checked_add(dur) else {
        // Longer than the clock can express: sleep "forever", in the largest steps it can.
        loop {
            sleep(Duration::from_secs(u32::MAX as u64));
        }
    };
    // SAFETY: the running green thread's header is alive while it runs.
    let h = unsafe { cur.as_ref() };
    let g = h.green().expect("hilos: current thread is not green");
    loop {
        let wait_no = g.wait_gen.get().wrapping_add(1);
        g.wait_gen.set(wait_no);
        g.wait_on.set(WAIT_SLEEP);
        let wp = local_ptr();
        // SAFETY: on a green thread, so the worker is live; the borrow is short.
        let w = unsafe { &mut *wp };
        // SAFETY: the header is alive (we are running on it).
        w.timers
            .push(deadline, wait_no, unsafe { TaskRef::clone_from_ptr(cur) });
        note_wait(g, ThreadState::Sleep { until: deadline });
        // SAFETY: only the timer wakes a sleeping thread; it owns our scheduling reference.
        unsafe { switch_away_from(wp, Away::Block) };
        g.state.set(ThreadState::Runnable);
        if Instant::now() >= deadline {
            return;
        }
    }
}

/// Lets other green threads of this worker run (kernel threads: `std::thread::yield_now`).
pub(crate) fn yield_now() {
    // One thread-local read serves both the "are we green" test and the switch: a worker's
    // `current` is non-null exactly while one of its green threads runs (`task::current_green`
    // mirrors it).
    let w = local_ptr();
    // SAFETY: a non-null pointer is this kernel thread's live worker; nothing else borrows it
    // while user code runs; a plain read.
    let green = !w.is_null() && !unsafe { (*w).current }.is_null();
    if !green || !may_switch() {
        std::thread::yield_now();
        return;
    }
    // SAFETY: on a green thread; the scheduling reference moves to the local queue; `w` was just
    // read.
    unsafe { switch_away_from(w, Away::Yield) };
}
