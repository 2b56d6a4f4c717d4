//! Loom model of the inbox against the worker's sleep announcement (module doc of `runq`, "no
//! lost wake-up"), run with `RUSTFLAGS="--cfg loom" cargo test --lib loom_` (see `crate::loom`).
//!
//! `loom_inbox_push_vs_sleep`: two remote wakers push with the real [`Home::push_remote`] while
//! the owner runs the real [`Home::prepare_sleep`] (announce `sleeping`, `SeqCst` fence, re-check
//! the inbox), as the scheduler's idle path does. Under loom the eventfd is a counter of wakes
//! (`task::wakefd`). Checked: if the owner decides to sleep, some pusher saw the announcement
//! and woke it (never "the worker sleeps with work in its inbox and nobody wakes it"), and the
//! owner's drain finds both pushes (the Treiber stack loses none).
//!
//! Bugs injected to see it fail (each reverted):
//! - the fence of `prepare_sleep` removed (an ordering bug: store-buffering between the
//!   `sleeping` store and the inbox load): fails with "worker sleeps and nobody wakes it". loom
//!   models `SeqCst` fences (the two fences order the store-buffering pair), and a load without
//!   one may return the older value, so it finds the run where both sides miss each other.
//! - the fence of `push_remote` removed: the same failure.
//! - the inbox re-check of `prepare_sleep` removed (a logic bug): the same failure.
//!   Not caught: weakening the push's `Release` compare-exchange to `Relaxed` with the drain's
//!   `Acquire` swap kept; the headers' links are atomics, not cells, so no access races.

use loom::sync::Arc;
use loom::thread;

use super::Home;
use crate::task::{self, TaskRef};

#[test]
fn loom_inbox_push_vs_sleep() {
    crate::loom::model(3, || {
        let home = Arc::new(Home::new().unwrap());
        let pushers: Vec<_> = (0..2)
            .map(|_| {
                let home = home.clone();
                thread::spawn(move || {
                    // A header of its own (a header is in one inbox at most once), standing in
                    // for the green thread it wakes.
                    let t: TaskRef = task::current();
                    home.push_remote(t);
                })
            })
            .collect();
        // The owner, as `Worker::idle` (no other work, not shutting down).
        let may_sleep = home.prepare_sleep(|| {}, || false);
        for p in pushers {
            p.join().unwrap();
        }
        if may_sleep {
            assert!(home.parker.wakes() > 0, "worker sleeps and nobody wakes it");
        }
        home.end_sleep();
        // SAFETY: this thread is the owner; no other borrow of the queues.
        let n = unsafe { home.drain_inbox() };
        assert_eq!(n, 2, "a push was lost");
        // SAFETY: as above.
        while unsafe { home.local() }.pop_front().is_some() {}
    });
}
