//! The crate's concurrency primitives, from one place: std's (and parking_lot's) normally, loom's
//! model-checked ones when the unit tests are built with `RUSTFLAGS="--cfg loom"` (the README's
//! Tests section and `.ci/run` run the models). loom is a dev-dependency, so the switch is
//! `cfg(all(test, loom))`, as in tokio: a non-test build with the flag is the normal build.
//!
//! The protocols that loom models check (the park/wake token, the run queue's inbox against the
//! worker's sleep announcement, the mutex hand-off, the join state machine) take from here what
//! they share between threads, so the models run the real code:
//! - `sync::atomic`: the atomics and fences of those protocols;
//! - `sync::ShortMutex`: the wait queue's short lock (`sync::waitq`);
//! - `cell::UnsafeCell`: the join protocol's output and joiner slots (`spawner::cell`), so that
//!   loom checks each access is ordered after the write it reads;
//! - `futex`: the futex wait and wake (`task::futex`);
//! - `thread_local!`: the per-thread "current kernel thread header" (`task`);
//! - `hint::spin_loop`: under loom, the spin of the primitives' slow paths (`sync::util`);
//! - `fair`: the "has the first waiter waited long enough" clock of the mutex (`sync::util`).
//!
//! Normal builds are unchanged: every item is std's (or parking_lot's) under its own name, or a
//! `#[repr(transparent)]` wrapper whose methods are `#[inline(always)]` one-liners, and the
//! `const fn` constructors stay `const`. Atomics that no model covers (statistics, reference
//! counts, statics that need a `const` initialiser, the wait queue's `queued` mirror) use std's
//! directly, also under loom, where they are plain (unmodelled) memory.

#[cfg(not(all(test, loom)))]
pub(crate) mod sync {
    pub(crate) mod atomic {
        pub(crate) use std::sync::atomic::{
            AtomicBool, AtomicPtr, AtomicU8, AtomicU32, AtomicUsize, Ordering, fence,
        };
    }

    /// The wait queue's short lock: a word lock held for a few instructions.
    pub(crate) type ShortMutex<T> = parking_lot::Mutex<T>;
    /// Its guard.
    pub(crate) type ShortGuard<'a, T> = parking_lot::MutexGuard<'a, T>;
}

#[cfg(all(test, loom))]
pub(crate) mod sync {
    pub(crate) mod atomic {
        pub(crate) use ::loom::sync::atomic::{
            AtomicBool, AtomicPtr, AtomicU8, AtomicU32, AtomicUsize, Ordering, fence,
        };
    }

    use std::cell::UnsafeCell;
    use std::sync::OnceLock;

    /// The wait queue's short lock, as a loom mutex. `const`-constructible like parking_lot's (so
    /// `WaitQueue::new` and the primitives built on it stay `const` under loom too): the loom
    /// mutex is made at the first `lock`, inside the model's execution that owns the queue.
    pub(crate) struct ShortMutex<T> {
        lock: OnceLock<::loom::sync::Mutex<()>>,
        data: UnsafeCell<T>,
    }

    // SAFETY: `data` is reached only through a guard, which holds the loom mutex.
    unsafe impl<T: Send> Sync for ShortMutex<T> {}

    impl<T> ShortMutex<T> {
        pub(crate) const fn new(data: T) -> ShortMutex<T> {
            ShortMutex {
                lock: OnceLock::new(),
                data: UnsafeCell::new(data),
            }
        }

        pub(crate) fn lock(&self) -> ShortGuard<'_, T> {
            let g = self
                .lock
                .get_or_init(|| ::loom::sync::Mutex::new(()))
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            ShortGuard {
                _g: g,
                data: &self.data,
            }
        }
    }

    /// A held [`ShortMutex`].
    pub(crate) struct ShortGuard<'a, T> {
        _g: ::loom::sync::MutexGuard<'a, ()>,
        data: &'a UnsafeCell<T>,
    }

    impl<T> std::ops::Deref for ShortGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            // SAFETY: the guard holds the loom mutex that guards `data`.
            unsafe { &*self.data.get() }
        }
    }

    impl<T> std::ops::DerefMut for ShortGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            // SAFETY: as above, and `&mut self` makes the borrow unique.
            unsafe { &mut *self.data.get() }
        }
    }
}

pub(crate) mod cell {
    /// `std::cell::UnsafeCell` with loom's access API (`with_mut`): under loom, every
    /// access is checked against the writes it may race with.
    #[cfg(not(all(test, loom)))]
    #[repr(transparent)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    #[cfg(not(all(test, loom)))]
    impl<T> UnsafeCell<T> {
        #[inline(always)]
        pub(crate) const fn new(v: T) -> UnsafeCell<T> {
            UnsafeCell(std::cell::UnsafeCell::new(v))
        }

        #[inline(always)]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }

    #[cfg(all(test, loom))]
    pub(crate) use ::loom::cell::UnsafeCell;
}

/// The futex wait and wake of `task::futex`, for loom: one model-wide mutex and condition
/// variable. A waiter checks the word and sleeps under the mutex, a waker notifies under it, so a
/// wake that follows a change of the word is never lost (as with the kernel's futex). A wait with
/// a timeout just gives other threads a turn (the models use no real time); a wait that nobody
/// wakes makes loom report a deadlock.
#[cfg(all(test, loom))]
pub(crate) mod futex {
    use ::loom::sync::atomic::AtomicU32;
    use ::loom::sync::{Condvar, Mutex};
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    ::loom::lazy_static! {
        static ref FUTEX: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());
    }

    pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        let g = FUTEX.0.lock().unwrap();
        if word.load(Ordering::SeqCst) != expected {
            return;
        }
        match timeout {
            None => drop(FUTEX.1.wait(g).unwrap()),
            Some(_) => {
                drop(g);
                ::loom::thread::yield_now();
            }
        }
    }

    pub(crate) fn wake(_word: &AtomicU32, _n: i32) {
        let _g = FUTEX.0.lock().unwrap();
        FUTEX.1.notify_all();
    }
}

/// `std::thread_local!` normally; loom's (one value per loom thread and execution) under loom.
/// Inline-`const` initialisers (`const { .. }`) are accepted by both.
#[cfg(not(all(test, loom)))]
pub(crate) use std::thread_local;

/// loom's, for one declaration (loom's own macro does not take `const { .. }`).
#[cfg(all(test, loom))]
macro_rules! loom_thread_local {
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = const { $init:expr };) => {
        ::loom::thread_local!($(#[$attr])* $vis static $name: $t = $init;);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr;) => {
        ::loom::thread_local!($(#[$attr])* $vis static $name: $t = $init;);
    };
}
#[cfg(all(test, loom))]
pub(crate) use loom_thread_local as thread_local;

/// Under loom, one step of a spin-wait (`sync::util::spin`; normal builds spin with std's
/// `spin_loop` there): loom's lets the other threads run, so a spinning thread does not multiply
/// the interleavings to explore.
#[cfg(all(test, loom))]
pub(crate) mod hint {
    pub(crate) use ::loom::hint::spin_loop;
}

/// The mutex's fairness clock under loom: whether a release finds that its first waiter has
/// waited long enough to be handed the lock. Real time would make the runs of one model differ,
/// so a model sets a pattern instead: the `n`-th question a lock asks in an execution (counted by
/// its `FairClock`, under the lock's queue lock, from zero) is answered by bit `n % 32` of the
/// pattern. The mutex model runs several patterns, so both the retry and the hand-off branches,
/// and their mixtures, are explored.
#[cfg(all(test, loom))]
pub(crate) mod fair {
    use std::sync::atomic::{AtomicU32, Ordering};

    /// The pattern (a std atomic: set by the test before `loom::model`, constant during it).
    static PATTERN: AtomicU32 = AtomicU32::new(0);

    /// Sets the answers for the next models (see the module doc).
    #[cfg(test)]
    pub(crate) fn set_pattern(p: u32) {
        PATTERN.store(p, Ordering::Relaxed);
    }

    /// Whether the first waiter has waited long enough, at the `n`-th question of a lock.
    pub(crate) fn waited_long_enough(n: u32) -> bool {
        PATTERN.load(Ordering::Relaxed) & (1 << (n % 32)) != 0
    }
}

/// A `loom::model::Builder` with the crate's default bounds: `LOOM_MAX_PREEMPTIONS` if set, else
/// `preemptions`.
#[cfg(all(test, loom))]
pub(crate) fn model(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut b = ::loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(preemptions);
    }
    b.check(f);
}

/// Declares a `const fn` that stays `const` in normal builds and is a plain `fn` under loom,
/// whose atomics have no `const` constructor.
macro_rules! const_fn {
    ($(#[$m:meta])* $vis:vis const fn $name:ident $($rest:tt)*) => {
        $(#[$m])*
        #[cfg(not(all(test, loom)))]
        $vis const fn $name $($rest)*

        $(#[$m])*
        #[cfg(all(test, loom))]
        $vis fn $name $($rest)*
    };
}
pub(crate) use const_fn;
