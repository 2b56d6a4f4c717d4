//! The lock of a standard stream: held by one thread (green or kernel) at a time, and reentrant
//! for that thread, as std's `StdoutLock`.
//!
//! # The problem
//! std's stream locks are reentrant per *kernel* thread: two green threads of one worker would
//! both "own" std's `StdoutLock` at once. hilos's locks are keyed by hilos's thread id, which every
//! green thread and every kernel thread has, so each green thread is an owner of its own.
//!
//! # The design
//! A one-permit [`Semaphore`] (which parks only the calling green thread), the owner's thread id
//! and a depth. Only the owner reads its depth or writes the owner field while it holds the
//! permit: a thread that reads its own id from `owner` set it itself, earlier on the same thread
//! (ids are never reused), so the Relaxed load cannot mistake another thread's ownership for its
//! own; any other value sends it to the semaphore, whose acquire/release order every access of the
//! depth and of the stream.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sync::Semaphore;

/// A reentrant lock for a process-wide stream.
pub(super) struct StreamLock {
    permit: Semaphore,
    /// The owner's thread id, 0 if none.
    owner: AtomicU64,
    /// How many times the owner holds it; read and written only by the owner.
    depth: DepthCell,
}

/// The owner's nesting depth.
struct DepthCell(Cell<usize>);

// SAFETY: only the thread that holds the permit touches the cell (see the module doc); the
// semaphore's acquire/release order one owner's accesses before the next owner's.
unsafe impl Sync for DepthCell {}

fn me() -> u64 {
    crate::task::current().id().as_u64().get()
}

impl StreamLock {
    pub(super) fn new() -> StreamLock {
        StreamLock {
            permit: Semaphore::new(1),
            owner: AtomicU64::new(0),
            depth: DepthCell(Cell::new(0)),
        }
    }

    /// Takes the lock (again, if the caller holds it). Pair with [`StreamLock::unlock`].
    pub(super) fn lock(&self) {
        let me = me();
        if self.owner.load(Ordering::Relaxed) == me {
            let d = self.depth.0.get();
            self.depth.0.set(
                d.checked_add(1)
                    .expect("lock count overflow in reentrant stream lock"),
            );
            return;
        }
        self.permit.acquire().forget();
        self.owner.store(me, Ordering::Relaxed);
        self.depth.0.set(1);
    }

    /// Gives back one level of the caller's hold.
    ///
    /// The caller must hold the lock: it is called only from the drop of a guard made by `lock`
    /// on the same thread (stream guards are `!Send`).
    pub(super) fn unlock(&self) {
        let d = self.depth.0.get() - 1;
        self.depth.0.set(d);
        if d == 0 {
            self.owner.store(0, Ordering::Relaxed);
            self.permit.release();
        }
    }
}
