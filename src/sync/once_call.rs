//! [`Once`]: std's one-time call, whose waiters park only their green thread. The protocol is
//! `once`'s (`OnceCore`), with std's poisoning: a panicking closure poisons the `Once`, later
//! `call_once`s panic, and `call_once_force` may run again and clear it.

use std::fmt;

use super::once::OnceCore;

/// std's message for a poisoned `Once`.
const POISONED: &str = "Once instance has previously been poisoned";

/// A one-time call, as [`std::sync::Once`]: the first `call_once` runs its closure, and the
/// others wait for it to finish, parking only the calling green thread (std's blocks the worker,
/// which deadlocks a one-worker runtime if the closure parks).
///
/// # Examples
/// ```
/// use hilos::sync::Once;
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// static INIT: Once = Once::new();
/// static RUNS: AtomicUsize = AtomicUsize::new(0);
/// let hs: Vec<_> = (0..4)
///     .map(|_| hilos::spawn(|| INIT.call_once(|| { RUNS.fetch_add(1, Ordering::SeqCst); })))
///     .collect();
/// for h in hs {
///     h.join().unwrap();
/// }
/// assert_eq!(RUNS.load(Ordering::SeqCst), 1);
/// assert!(INIT.is_completed());
/// ```
pub struct Once {
    core: OnceCore,
}

/// What [`Once::call_once_force`]'s closure is told, as [`std::sync::OnceState`].
///
/// # Examples
/// ```
/// use hilos::sync::Once;
///
/// let once = Once::new();
/// let _ = std::panic::catch_unwind(|| once.call_once(|| panic!("first try fails")));
/// once.call_once_force(|state| assert!(state.is_poisoned()));
/// assert!(once.is_completed());
/// ```
#[derive(Debug)]
pub struct OnceState {
    poisoned: bool,
}

impl OnceState {
    /// Whether an earlier call's closure panicked, poisoning the `Once`.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }
}

impl Once {
    /// A `Once` whose call has not run.
    pub const fn new() -> Once {
        Once {
            core: OnceCore::new(),
        }
    }

    /// Runs `f` if no call has completed; otherwise waits for the running one (parking only the
    /// calling green thread) and returns. Panics if the `Once` is poisoned (a closure panicked).
    #[track_caller]
    pub fn call_once<F: FnOnce()>(&self, f: F) {
        if self.core.is_complete() {
            return;
        }
        if self.core.call(true, f).is_err() {
            panic!("{POISONED}");
        }
    }

    /// As [`Once::call_once`], but also runs on a poisoned `Once` (the closure is told so) and,
    /// if the closure completes, clears the poison.
    pub fn call_once_force<F: FnOnce(&OnceState)>(&self, f: F) {
        if self.core.is_complete() {
            return;
        }
        self.core.call_force(|poisoned| f(&OnceState { poisoned }));
    }

    /// Whether a call has completed.
    pub fn is_completed(&self) -> bool {
        self.core.is_complete()
    }

    /// Waits (parking only the calling green thread) until a call has completed. Panics if the
    /// `Once` is poisoned.
    #[track_caller]
    pub fn wait(&self) {
        if !self.core.is_complete() && self.core.wait().is_err() {
            panic!("{POISONED}");
        }
    }

    /// Waits (parking only the calling green thread) until a call has completed, ignoring
    /// poisoning, as [`std::sync::Once::wait_force`]: on a poisoned `Once` it waits for a
    /// [`Once::call_once_force`] to complete.
    ///
    /// # Examples
    /// ```
    /// use hilos::sync::Once;
    ///
    /// static ONCE: Once = Once::new();
    /// let _ = std::panic::catch_unwind(|| ONCE.call_once(|| panic!("poisons it")));
    /// let waiter = hilos::spawn(|| ONCE.wait_force());
    /// ONCE.call_once_force(|state| assert!(state.is_poisoned()));
    /// waiter.join().unwrap();
    /// ```
    pub fn wait_force(&self) {
        if !self.core.is_complete() {
            self.core.wait_force();
        }
    }
}

/// The initial value of a [`Once`], as std's deprecated [`std::sync::ONCE_INIT`]: use
/// [`Once::new`].
///
/// # Examples
/// ```
/// #![allow(deprecated)]
/// static INIT: hilos::sync::Once = hilos::sync::ONCE_INIT;
/// INIT.call_once(|| {});
/// assert!(INIT.is_completed());
/// ```
#[deprecated(
    since = "0.1.0",
    note = "the `Once::new()` function is now preferred, as in std"
)]
#[allow(clippy::declare_interior_mutable_const)]
pub const ONCE_INIT: Once = Once::new();

impl Default for Once {
    fn default() -> Once {
        Once::new()
    }
}

impl fmt::Debug for Once {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Once").finish_non_exhaustive()
    }
}
