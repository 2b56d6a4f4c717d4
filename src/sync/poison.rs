//! Lock poisoning, as std's.
//!
//! # The problem
//! A thread that panics while it holds a lock may leave the protected data half-updated. std marks
//! the lock "poisoned" and reports it to every later locker; a drop-in replacement must do the same,
//! with the same error types, so that user code matching on them compiles unchanged.
//!
//! # The design
//! The error types are std's own ([`PoisonError`], [`TryLockError`], [`LockResult`],
//! [`TryLockResult`]): they are plain public types with public constructors, so re-exporting them
//! costs nothing and keeps `?` conversions and `match`es identical. A [`Flag`] is one `AtomicBool`.
//! A [`Guard`] records whether the thread was already panicking when it took the lock; when the
//! lock is released, the flag is set only if the thread started panicking in between. So a lock
//! taken and released during unwinding (in a `Drop`) does not poison, as in std.
//!
//! `std::thread::panicking()` is per kernel thread; it is right for green threads too because the
//! scheduler never switches away from a panicking green thread (DESIGN-NOTES section 2).
//!
//! # Memory orderings
//! `Relaxed` throughout: the flag is only read and written while the lock is held (or with
//! exclusive access), so the lock's own Acquire/Release orders it, as in std.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

pub use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};

/// A lock's poison flag.
pub(crate) struct Flag(AtomicBool);

/// Whether the thread was panicking when it took the lock.
pub(crate) struct Guard {
    panicking: bool,
}

impl Flag {
    pub(crate) const fn new() -> Flag {
        Flag(AtomicBool::new(false))
    }

    /// The poison guard for a lock just taken: `Err` if the lock is poisoned.
    #[inline]
    pub(crate) fn guard(&self) -> LockResult<Guard> {
        let g = Guard {
            panicking: thread::panicking(),
        };
        if self.get() {
            Err(PoisonError::new(g))
        } else {
            Ok(g)
        }
    }

    /// Called when the lock is released: poisons it if the thread started panicking meanwhile.
    #[inline]
    pub(crate) fn done(&self, guard: &Guard) {
        if !guard.panicking && thread::panicking() {
            self.0.store(true, Ordering::Relaxed);
        }
    }

    /// `Err(())` if poisoned (for `into_inner` and `get_mut`).
    #[inline]
    pub(crate) fn borrow(&self) -> LockResult<()> {
        if self.get() {
            Err(PoisonError::new(()))
        } else {
            Ok(())
        }
    }

    #[inline]
    pub(crate) fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn clear(&self) {
        self.0.store(false, Ordering::Relaxed)
    }
}

/// Maps the value of a lock result, keeping it poisoned or not.
#[inline]
pub(crate) fn map_result<T, U>(r: LockResult<T>, f: impl FnOnce(T) -> U) -> LockResult<U> {
    match r {
        Ok(t) => Ok(f(t)),
        Err(e) => Err(PoisonError::new(f(e.into_inner()))),
    }
}
