//! Loom model of the watchdog's read against a thread's exit (`task::watch`), run with
//! `RUSTFLAGS="--cfg loom" cargo test --lib loom_` (see `crate::loom`).
//!
//! `loom_watch_read_against_exit`: a worker switches into a thread (its "header" a loom cell
//! holding its id), the thread exits through the real `Slot::exiting` and is then "freed" (the
//! cell overwritten, as a reused allocation would be); the watchdog reads through the real
//! `Slot::read`. The read must either find no thread or read the live id, with no data race
//! against the free.
//!
//! Bugs injected to see it fail (each reverted):
//! - `exiting` without its `SeqCst` fence (the store-buffering pair broken): loom finds the read
//!   racing the free ("Causality violation") or reading the freed value.
//! - `read`'s clearing store `Relaxed` instead of `Release`: the free races the read.

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

use super::Slot;

const LIVE: u64 = 7;
const FREED: u64 = 0xdead;

#[test]
fn loom_watch_read_against_exit() {
    crate::loom::model(3, || {
        let header = Arc::new(UnsafeCell::new(LIVE));
        let slot = Arc::new(Slot::<UnsafeCell<u64>>::new());
        slot.switch_in(Arc::as_ptr(&header).cast_mut());
        let (s, h) = (slot.clone(), header.clone());
        let worker = thread::spawn(move || {
            s.exiting();
            // SAFETY (model): after `exiting` nothing may read the header: the free.
            h.with_mut(|p| unsafe { *p = FREED });
        });
        // SAFETY (model): `read` hands out only a live header.
        let seen = slot.read(|c| c.with(|p| unsafe { *p }));
        assert!(
            matches!(seen, None | Some(LIVE)),
            "read a freed header: {seen:?}"
        );
        worker.join().unwrap();
    });
}
