//! Loom model of the join state machine (`DONE`/`WAITING`/`DROPPED`, module doc of `cell`), run
//! with `RUSTFLAGS="--cfg loom" cargo test --lib loom_` (see `crate::loom`).
//!
//! A green thread's cell cannot run under loom (its body runs on a stack of its own), so the
//! models run the cell's [`Output`] directly, through the same methods `run`, `JoinInner::join`
//! and the handle's drop call: [`Output::finish`] (write the result, publish `DONE`, wake a
//! waiting joiner), [`Output::join`] and [`Output::handle_dropped`], over `JoinState`. The
//! joiner is a kernel thread: it registers a counted handle and parks on its `sys` token
//! (`park::park`, `park::wait_os`, loom's futex); a green joiner differs only in handing over its
//! scheduling reference instead, with the same state transitions.
//!
//! - `loom_join_finisher_vs_joiner`: a finisher against a joiner. Checked: the joiner gets the
//!   result, which it reads after the finisher's write (the result is a loom cell); a waiting
//!   joiner is always woken (loom reports a deadlock otherwise); the result is dropped once.
//! - `loom_join_finisher_vs_dropped_handle`: a finisher against a handle dropped unjoined.
//!   Checked: the result is dropped exactly once, by whichever of the two came second, after the
//!   finisher's write.
//!
//! Bugs injected to see them fail (each reverted):
//! - `JoinState::finish`'s compare-exchange weakened from `AcqRel` to `Relaxed` (an ordering
//!   bug): loom reports a causality violation on the result (read by the joiner or dropped by the
//!   handle without synchronising with its write).
//! - `Output::handle_dropped` ignoring `DONE` (a logic bug: the handle never drops a result the
//!   finisher left to it): fails with "result dropped 0 times".
//! - the fetch-or of `DONE` in `finish`'s `WAITING` branch removed (a logic bug): the joiner is
//!   woken but never sees `DONE` and parks again: loom reports a deadlock.
//!   Not caught: the `Acquire` of the joiner's failed compare-exchange in `publish_waiting` alone
//!   (its first load is `Acquire` too, and the failure can only be `DONE` it then re-reads).

use loom::sync::Arc;
use loom::thread;

use super::Output;
use crate::loom::sync::atomic::{AtomicUsize, Ordering};

/// A thread's result that counts its drops.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// The cell's output, shared as the cell shares it between the finisher and the handle.
struct Shared(Output<Counted>);

// SAFETY: the join protocol gives each of the output's cells to one party at a time; loom
// checks every access.
unsafe impl Sync for Shared {}
// SAFETY: as above.
unsafe impl Send for Shared {}

fn finisher(out: &Arc<Shared>, drops: &Arc<AtomicUsize>) -> thread::JoinHandle<()> {
    let (out, drops) = (out.clone(), drops.clone());
    thread::spawn(move || {
        // SAFETY: this thread is the output's one finisher.
        unsafe { out.0.finish(Ok(Counted(drops))) };
    })
}

#[test]
fn loom_join_finisher_vs_joiner() {
    crate::loom::model(3, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let out = Arc::new(Shared(Output::new(None)));
        let f = finisher(&out, &drops);
        // SAFETY: this thread holds the (only) handle and joins once.
        let r = unsafe { out.0.join(None) };
        assert!(r.is_ok(), "the joiner did not get the result");
        drop(r);
        f.join().unwrap();
        assert_eq!(drops.load(Ordering::Relaxed), 1, "result dropped not once");
    });
}

#[test]
fn loom_join_finisher_vs_dropped_handle() {
    crate::loom::model(3, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let out = Arc::new(Shared(Output::new(None)));
        let f = finisher(&out, &drops);
        // SAFETY: this thread holds the (only) handle and drops it unjoined, once.
        unsafe { out.0.handle_dropped() };
        f.join().unwrap();
        let n = drops.load(Ordering::Relaxed);
        assert_eq!(n, 1, "result dropped {n} times");
    });
}
