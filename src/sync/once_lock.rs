//! [`OnceLock`]: a cell written once, whose initialisation parks only the green threads that wait
//! for it.
//!
//! # The problem
//! std's `OnceLock::get_or_init` blocks the kernel thread of a caller that finds another thread
//! initialising the cell; with green threads that is the worker, which deadlocks a one-worker
//! runtime as soon as the initialiser itself parks. See `once` for the protocol.
//!
//! # The design
//! A `OnceCore` state machine and the value in an `UnsafeCell<MaybeUninit<T>>`, written by the one
//! initialising thread while the state is `RUNNING` and published by the `Release` swap to
//! `COMPLETE`. As std's `OnceLock`, a panicking initialiser leaves the cell uninitialised and a
//! waiting caller then runs its own initialiser; nothing is poisoned.
//!
//! # Memory orderings
//! Those of `once`: `Acquire` loads of the state before reading the value.

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::panic::{RefUnwindSafe, UnwindSafe};

use super::once::{COMPLETE, INCOMPLETE, OnceCore};

/// A synchronisation primitive that can be written to only once, as [`std::sync::OnceLock`];
/// waiting for another thread's initialisation parks only the calling green thread.
///
/// # Examples
/// ```
/// use hilos::sync::OnceLock;
///
/// static CELL: OnceLock<usize> = OnceLock::new();
/// let h = hilos::spawn(|| *CELL.get_or_init(|| 12345));
/// assert_eq!(h.join().unwrap(), 12345);
/// assert_eq!(CELL.get(), Some(&12345));
/// ```
pub struct OnceLock<T> {
    once: OnceCore,
    value: UnsafeCell<MaybeUninit<T>>,
    _marker: PhantomData<T>,
}

// SAFETY: as std: sharing the cell shares `&T` (so `T: Sync`) and lets any thread initialise it
// with a `T` made there, or take it out later (so `T: Send`).
unsafe impl<T: Sync + Send> Sync for OnceLock<T> {}
// SAFETY: sending the cell sends the `T` in it.
unsafe impl<T: Send> Send for OnceLock<T> {}

impl<T: RefUnwindSafe + UnwindSafe> RefUnwindSafe for OnceLock<T> {}
impl<T: UnwindSafe> UnwindSafe for OnceLock<T> {}

impl<T> OnceLock<T> {
    /// Creates a new uninitialised cell.
    #[inline]
    #[must_use]
    pub const fn new() -> OnceLock<T> {
        OnceLock {
            once: OnceCore::new(),
            value: UnsafeCell::new(MaybeUninit::uninit()),
            _marker: PhantomData,
        }
    }

    /// The value, or `None` if the cell is uninitialised (or being initialised). Never waits.
    #[inline]
    pub fn get(&self) -> Option<&T> {
        if self.once.is_complete() {
            // SAFETY: complete (Acquire): the value is written and never changes while shared.
            Some(unsafe { self.get_unchecked() })
        } else {
            None
        }
    }

    /// A mutable reference to the value, or `None` if the cell is uninitialised.
    #[inline]
    pub fn get_mut(&mut self) -> Option<&mut T> {
        if self.once.state_mut() == COMPLETE {
            // SAFETY: complete, and `&mut self` is exclusive.
            Some(unsafe { (*self.value.get()).assume_init_mut() })
        } else {
            None
        }
    }

    /// Blocks the current thread (only the green thread, on a green thread) until the cell is
    /// initialised, and returns the value.
    pub fn wait(&self) -> &T {
        if !self.once.is_complete() {
            // A OnceLock never poisons.
            let _ = self.once.wait();
        }
        // SAFETY: complete.
        unsafe { self.get_unchecked() }
    }

    /// Initialises the cell with `value`, or gives it back as `Err` if the cell was already
    /// initialised. Waits if another thread is initialising it.
    pub fn set(&self, value: T) -> Result<(), T> {
        let mut value = Some(value);
        self.get_or_init(|| value.take().expect("hilos: value taken twice"));
        match value {
            None => Ok(()),
            Some(v) => Err(v),
        }
    }

    /// The value, initialising the cell with `f` if it is uninitialised. Exactly one `f` runs to
    /// completion; callers that find another thread running its `f` wait for it (parking only the
    /// calling green thread). If `f` panics, the panic propagates and the cell stays
    /// uninitialised. Initialising the cell reentrantly from `f` deadlocks, as std's.
    pub fn get_or_init<F>(&self, f: F) -> &T
    where
        F: FnOnce() -> T,
    {
        if let Some(v) = self.get() {
            return v;
        }
        let slot = &self.value;
        let _ = self.once.call(false, || {
            let v = f();
            // SAFETY: we are the one initialising thread (state RUNNING): nobody else reads or
            // writes the slot until the Release swap to COMPLETE.
            unsafe { (*slot.get()).write(v) };
        });
        // SAFETY: `call` returned Ok, i.e. complete (a OnceLock never poisons).
        unsafe { self.get_unchecked() }
    }

    /// Consumes the cell, returning the value if it was initialised.
    #[inline]
    pub fn into_inner(mut self) -> Option<T> {
        self.take()
    }

    /// Takes the value out, leaving the cell uninitialised.
    #[inline]
    pub fn take(&mut self) -> Option<T> {
        if self.once.state_mut() == COMPLETE {
            self.once.set_state_mut(INCOMPLETE);
            // SAFETY: it was complete; the state now says uninitialised, so it is read once.
            Some(unsafe { (*self.value.get()).assume_init_read() })
        } else {
            None
        }
    }

    /// # Safety
    /// The cell is complete.
    #[inline]
    unsafe fn get_unchecked(&self) -> &T {
        // SAFETY: per the contract.
        unsafe { (*self.value.get()).assume_init_ref() }
    }
}

impl<T> Default for OnceLock<T> {
    /// Creates a new uninitialised cell.
    fn default() -> OnceLock<T> {
        OnceLock::new()
    }
}

impl<T: fmt::Debug> fmt::Debug for OnceLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_tuple("OnceLock");
        match self.get() {
            Some(v) => d.field(v),
            None => d.field(&format_args!("<uninit>")),
        };
        d.finish()
    }
}

impl<T: Clone> Clone for OnceLock<T> {
    fn clone(&self) -> OnceLock<T> {
        match self.get() {
            Some(v) => OnceLock::from(v.clone()),
            None => OnceLock::new(),
        }
    }
}

impl<T> From<T> for OnceLock<T> {
    /// Creates a new cell initialised with `value`.
    fn from(value: T) -> Self {
        OnceLock {
            once: OnceCore::new_complete(),
            value: UnsafeCell::new(MaybeUninit::new(value)),
            _marker: PhantomData,
        }
    }
}

impl<T: PartialEq> PartialEq for OnceLock<T> {
    /// Equal when both are uninitialised, or both hold equal values.
    fn eq(&self, other: &OnceLock<T>) -> bool {
        self.get() == other.get()
    }
}

impl<T: Eq> Eq for OnceLock<T> {}

impl<T> Drop for OnceLock<T> {
    fn drop(&mut self) {
        if self.once.state_mut() == COMPLETE {
            // SAFETY: complete, and we are dropping: the value is dropped once.
            unsafe { (*self.value.get()).assume_init_drop() };
        }
    }
}
