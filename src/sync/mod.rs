//! Synchronization primitives that park only the calling green thread: drop-in replacements for
//! those of [`std::sync`].
//!
//! `std::sync::Mutex`, `Condvar`, `RwLock`, `Barrier`, `OnceLock`, `LazyLock` and `mpsc` block the
//! *kernel* thread. On a hilos worker that stalls every green thread sharing the worker, and on a
//! one-worker runtime it deadlocks as soon as the thread that would release the waiter is a green
//! thread of the same worker. The types here have std's API and semantics (poisoning included, and
//! std's own error types), so replacing `std::sync::` with `hilos::sync::` in user code compiles and
//! behaves the same, but a wait parks only the green thread that waits. They also work on plain
//! kernel threads (which they block, as std's do), so green and kernel threads can share them, on
//! any runtime. `Arc` and the atomics are std's, re-exported for convenience.
//!
//! ```
//! use hilos::sync::{Arc, Mutex, mpsc};
//!
//! let rt = hilos::Runtime::builder().workers(1).build().unwrap();
//! let total = rt.block_on(|| {
//!     let m = Arc::new(Mutex::new(0));
//!     let (tx, rx) = mpsc::channel();
//!     for i in 0..100 {
//!         let (m, tx) = (m.clone(), tx.clone());
//!         hilos::spawn(move || {
//!             let mut g = m.lock().unwrap();
//!             hilos::yield_now(); // holding the lock across a switch is fine
//!             *g += i;
//!             tx.send(()).unwrap();
//!         });
//!     }
//!     drop(tx);
//!     assert_eq!(rx.iter().count(), 100);
//!     let t = *m.lock().unwrap();
//!     t
//! });
//! assert_eq!(total, 4950);
//! ```
//!
//! # How they wait
//! Every blocking primitive is built on one parking protocol (`waitq`): a per-primitive FIFO of
//! waiters living on the waiters' own stacks, behind a short `parking_lot::Mutex`, a word lock held
//! for a few instructions only and never across a park or a wake-up. A waiter re-checks the
//! primitive's state under that lock before queueing, and a waker hands it a token before waking it,
//! so no wake-up is lost; a timed-out waiter removes itself, so no notification or hand-off is lost
//! either. The uncontended paths (locking a free mutex, sending with nobody parked, notifying nobody)
//! take no lock and make no system call: one atomic instruction, or a plain load.
//!
//! # Fairness
//! Locks and semaphores are "eventually fair": under contention a released lock is normally left to
//! whoever takes it first (fast), but a waiter that has waited about half a millisecond gets it
//! handed directly, so nobody starves. [`Semaphore`] permits go to waiters first come, first served.
//!
//! # Differences from std
//! - [`WaitTimeoutResult`] and [`BarrierWaitResult`] are hilos's own types (std's cannot be
//!   constructed outside std), with the same methods.
//! - [`OnceLock`] has no `#[may_dangle]` on its drop (unstable in user crates), so the borrow
//!   checker is slightly stricter about a `OnceLock<&'a T>` outliving `'a`.
//! - [`Semaphore`] is an addition: std has none.
//! - Re-locking a [`Mutex`] from the thread that holds it deadlocks (the green thread waits for
//!   itself), as std's may.

mod barrier;
mod condvar;
mod lazy_lock;
pub mod mpsc;
mod mutex;
mod once;
mod once_call;
mod once_lock;
mod poison;
mod rwlock;
mod semaphore;
mod util;
mod waitq;

pub use barrier::{Barrier, BarrierWaitResult};
pub use condvar::{Condvar, WaitTimeoutResult};
pub use lazy_lock::LazyLock;
pub use mutex::{Mutex, MutexGuard};
#[allow(deprecated)]
pub use once_call::{ONCE_INIT, Once, OnceState};
pub use once_lock::OnceLock;
pub use poison::{LockResult, PoisonError, TryLockError, TryLockResult};
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use semaphore::{Semaphore, SemaphoreGuard};

pub use std::sync::{Arc, Weak, atomic};

#[allow(dead_code)]
fn _assert_traits() {
    fn send_sync<X: Send + Sync>() {}
    fn unwind_safe<X: std::panic::UnwindSafe + std::panic::RefUnwindSafe>() {}
    send_sync::<Mutex<u8>>();
    send_sync::<RwLock<u8>>();
    send_sync::<Condvar>();
    send_sync::<Barrier>();
    send_sync::<Semaphore>();
    send_sync::<OnceLock<u8>>();
    send_sync::<LazyLock<u8>>();
    fn sync<X: Sync>() {}
    sync::<MutexGuard<'static, u8>>();
    unwind_safe::<Mutex<u8>>();
    unwind_safe::<RwLock<u8>>();
    unwind_safe::<Condvar>();
    unwind_safe::<OnceLock<u8>>();
    unwind_safe::<LazyLock<u8>>();
}
