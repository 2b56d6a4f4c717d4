//! [`LazyLock`]: a value initialised on first access, whose initialisation parks only the green
//! threads that wait for it.
//!
//! # The problem
//! As for `OnceLock` (see `once`): std's `LazyLock` blocks the kernel thread of a caller that finds
//! the initialisation under way, deadlocking a one-worker runtime if the initialiser parks.
//!
//! # The design
//! A `OnceCore` state machine over a union holding first the initialising closure, then the value.
//! The initialising thread takes the closure out (state `RUNNING`), calls it and writes the value,
//! published by the `Release` swap to `COMPLETE`. As std's: if the closure panics, the `LazyLock`
//! is poisoned (state `POISONED`): that access and every later one panic.
//!
//! # Memory orderings
//! Those of `once`: `Acquire` loads of the state before reading the value.

use std::cell::UnsafeCell;
use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::panic::{RefUnwindSafe, UnwindSafe};

use super::once::{COMPLETE, INCOMPLETE, OnceCore, POISONED};

union Data<T, F> {
    value: ManuallyDrop<T>,
    f: ManuallyDrop<F>,
}

/// A value initialised on first access, as [`std::sync::LazyLock`]; threads that find another
/// thread initialising it park (only the green thread, on a green thread) until it is done.
///
/// # Examples
/// ```
/// use hilos::sync::LazyLock;
///
/// static TABLE: LazyLock<Vec<u32>> = LazyLock::new(|| (0..10).map(|i| i * i).collect());
/// let h = hilos::spawn(|| TABLE[3]);
/// assert_eq!(h.join().unwrap(), 9);
/// ```
pub struct LazyLock<T, F = fn() -> T> {
    once: OnceCore,
    data: UnsafeCell<Data<T, F>>,
}

// SAFETY: as std: sharing gives `&T` to every thread (`T: Sync`), and whichever thread first
// accesses it runs `F` and makes the `T` there (`F: Send`, `T: Send`).
unsafe impl<T: Sync + Send, F: Send> Sync for LazyLock<T, F> {}

impl<T: RefUnwindSafe + UnwindSafe, F: UnwindSafe> RefUnwindSafe for LazyLock<T, F> {}
impl<T: UnwindSafe, F: UnwindSafe> UnwindSafe for LazyLock<T, F> {}

#[cold]
#[track_caller]
fn panic_poisoned() -> ! {
    panic!("LazyLock instance has previously been poisoned")
}

impl<T, F: FnOnce() -> T> LazyLock<T, F> {
    /// Creates a new lazy value with the given initialising function.
    #[inline]
    pub const fn new(f: F) -> LazyLock<T, F> {
        LazyLock {
            once: OnceCore::new(),
            data: UnsafeCell::new(Data {
                f: ManuallyDrop::new(f),
            }),
        }
    }

    /// Forces the evaluation of this lazy value and returns a reference to it. Equivalent to the
    /// `Deref` impl, but explicit.
    ///
    /// # Panics
    /// If the initialising function panics, the panic propagates and the `LazyLock` is poisoned:
    /// every later access panics.
    #[inline]
    #[track_caller]
    pub fn force(this: &LazyLock<T, F>) -> &T {
        if !this.once.is_complete() {
            Self::init(this);
        }
        // SAFETY: complete (Acquire).
        unsafe { &(*this.data.get()).value }
    }

    #[cold]
    #[track_caller]
    fn init(this: &LazyLock<T, F>) {
        let data = &this.data;
        let r = this.once.call(true, || {
            // SAFETY: we are the one initialising thread (state RUNNING): the union holds the
            // closure and nobody else touches it until the Release swap. If `f` panics, the state
            // becomes POISONED and the union's content is never touched again.
            unsafe {
                let f = ManuallyDrop::take(&mut (*data.get()).f);
                let value = f();
                (*data.get()).value = ManuallyDrop::new(value);
            }
        });
        if r.is_err() {
            panic_poisoned();
        }
    }

    /// Forces the evaluation of this lazy value and returns a mutable reference to it.
    ///
    /// # Panics
    /// As [`force`](LazyLock::force).
    #[inline]
    #[track_caller]
    pub fn force_mut(this: &mut LazyLock<T, F>) -> &mut T {
        match this.once.state_mut() {
            COMPLETE => {}
            POISONED => panic_poisoned(),
            _ => {
                // Poisons the lock if `f` unwinds.
                struct PoisonOnPanic<'a>(&'a mut OnceCore);
                impl Drop for PoisonOnPanic<'_> {
                    fn drop(&mut self) {
                        self.0.set_state_mut(POISONED);
                    }
                }
                let data = this.data.get_mut();
                // SAFETY: incomplete: the union holds the closure, taken once here.
                let f = unsafe { ManuallyDrop::take(&mut data.f) };
                let guard = PoisonOnPanic(&mut this.once);
                let value = f();
                data.value = ManuallyDrop::new(value);
                std::mem::forget(guard);
                this.once.set_state_mut(COMPLETE);
            }
        }
        // SAFETY: complete.
        unsafe { &mut this.data.get_mut().value }
    }
}

impl<T, F> LazyLock<T, F> {
    /// The value if it has been initialised, without forcing it.
    #[inline]
    pub fn get(this: &LazyLock<T, F>) -> Option<&T> {
        if this.once.is_complete() {
            // SAFETY: complete (Acquire).
            Some(unsafe { &(*this.data.get()).value })
        } else {
            None
        }
    }

    /// A mutable reference to the value if it has been initialised, without forcing it.
    #[inline]
    pub fn get_mut(this: &mut LazyLock<T, F>) -> Option<&mut T> {
        if this.once.state_mut() == COMPLETE {
            // SAFETY: complete, and `&mut` is exclusive.
            Some(unsafe { &mut this.data.get_mut().value })
        } else {
            None
        }
    }
}

impl<T, F> Drop for LazyLock<T, F> {
    fn drop(&mut self) {
        match self.once.state_mut() {
            // SAFETY: incomplete: the union holds the closure, dropped once here.
            INCOMPLETE => unsafe { ManuallyDrop::drop(&mut self.data.get_mut().f) },
            // SAFETY: complete: the union holds the value, dropped once here.
            COMPLETE => unsafe { ManuallyDrop::drop(&mut self.data.get_mut().value) },
            // Poisoned: the closure was consumed and no value was made.
            _ => {}
        }
    }
}

impl<T, F: FnOnce() -> T> Deref for LazyLock<T, F> {
    type Target = T;
    /// Forces the evaluation (see [`LazyLock::force`]).
    #[inline]
    fn deref(&self) -> &T {
        LazyLock::force(self)
    }
}

impl<T, F: FnOnce() -> T> DerefMut for LazyLock<T, F> {
    /// Forces the evaluation (see [`LazyLock::force_mut`]).
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        LazyLock::force_mut(self)
    }
}

impl<T: Default> Default for LazyLock<T> {
    /// Creates a new lazy value using `Default` as the initialising function.
    #[inline]
    fn default() -> LazyLock<T> {
        LazyLock::new(T::default)
    }
}

impl<T: fmt::Debug, F> fmt::Debug for LazyLock<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_tuple("LazyLock");
        match LazyLock::get(self) {
            Some(v) => d.field(v),
            None => d.field(&format_args!("<uninit>")),
        };
        d.finish()
    }
}
