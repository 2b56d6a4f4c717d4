//! Green threads with the API of [`std::thread`].
//!
//! Every function here works both on a green thread, where blocking parks only that green thread,
//! and on a plain kernel thread, where it blocks the kernel thread as std does. So `main` can join
//! a green thread, and a green thread can unpark a kernel thread.
//!
//! Differences from std that matter:
//! - Each green thread has its own `thread_local!` values, `std::thread::current()`, panic state
//!   and errno, as a std thread has (see the README's "Thread-locals" and
//!   [`crate::runtime::tls_mode`]; on platforms without that, green threads share their worker's).
//!   `std::thread::current().name()` is `None` on a green thread: use [`current`] for hilos's
//!   name and id. Green threads do not migrate between workers once started.
//! - A green thread's panic message names it as std's does a std thread's
//!   (`thread 'conn-42' (hilos 17) panicked at ...`), unless the program installed a panic hook
//!   of its own, which stays in charge.
//! - Blocking std calls (`std::sync::Mutex`, `std::thread::sleep`, std's I/O) block the whole
//!   worker, not just the green thread; use hilos's own types.
//! - There is no preemption: a green thread that computes without blocking or yielding keeps its
//!   worker until it does.
//!
//! What std has and hilos cannot: a green thread is not a pthread, so there is no
//! `JoinHandleExt::as_pthread_t`/`into_pthread_t` (its worker's pthread runs many green
//! threads), and `pthread_exit`, `pthread_cancel`, `pthread_join` or `pthread_kill` must not be
//! used on one. A green thread's `gettid()` is its worker's. Unstable std items (`sleep_until`,
//! spawn hooks, `Builder::no_hooks`) are not mirrored.

mod panic;
mod scoped;

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::scheduler::{self, Shared};
pub use crate::spawner::{Builder, JoinHandle, Thread};
pub use crate::task::ThreadId;
use crate::task::{self, Which};
pub use scoped::{Scope, ScopedJoinHandle, scope};
/// std's own, and right on green threads: thread-locals (`thread_local!`, [`LocalKey`]) and the
/// panic state ([`panicking`]) are per green thread where hilos gives each its own (see
/// [`crate::runtime::tls_mode`]); [`available_parallelism`] is the machine's, as for std threads.
pub use std::thread::{AccessError, LocalKey, Result, available_parallelism, panicking};

/// A handle to the calling thread: the green thread if called on one, else the kernel thread.
///
/// # Examples
///
/// ```
/// let h = hilos::thread::Builder::new()
///     .name("named".into())
///     .spawn(|| hilos::thread::current().name().map(String::from))
///     .unwrap();
/// assert_eq!(h.join().unwrap().as_deref(), Some("named"));
/// ```
pub fn current() -> Thread {
    Thread {
        inner: task::current(),
    }
}

/// Blocks the calling thread until its token is made available by [`Thread::unpark`]. May return
/// spuriously, as std's. On a green thread it parks only the green thread.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
///
/// let done = Arc::new(AtomicBool::new(false));
/// let d = done.clone();
/// let h = hilos::spawn(move || {
///     // `park` may return spuriously: wait for the condition in a loop.
///     while !d.load(Ordering::Acquire) {
///         hilos::thread::park();
///     }
/// });
/// done.store(true, Ordering::Release);
/// h.thread().unpark();
/// h.join().unwrap();
/// ```
pub fn park() {
    crate::park::park(Which::User, None, task::ThreadState::Park);
}

/// As [`park`], returning at the latest after `dur`.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let waited = hilos::spawn(|| {
///     let start = Instant::now();
///     hilos::thread::park_timeout(Duration::from_millis(10)); // nobody unparks us
///     start.elapsed()
/// });
/// assert!(waited.join().unwrap() >= Duration::from_millis(10));
/// ```
pub fn park_timeout(dur: Duration) {
    let deadline = Instant::now().checked_add(dur);
    crate::park::park(Which::User, deadline, task::ThreadState::Park);
}

/// Puts the calling thread to sleep for at least `dur`. On a green thread only the green thread
/// sleeps (a timer of its worker, no kernel timer per thread).
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let start = Instant::now();
/// let sleepers: Vec<_> = (0..100)
///     .map(|_| hilos::spawn(|| hilos::sleep(Duration::from_millis(10))))
///     .collect();
/// for s in sleepers {
///     s.join().unwrap();
/// }
/// // The hundred sleeps overlap: they park green threads, not workers.
/// assert!(start.elapsed() >= Duration::from_millis(10));
/// ```
pub fn sleep(dur: Duration) {
    crate::park::sleep(dur);
}

/// Sleeps for `ms` milliseconds, as std's deprecated [`std::thread::sleep_ms`] (kept, like
/// std's, so that old code moves over unchanged): use [`sleep`].
///
/// # Examples
/// ```
/// #![allow(deprecated)]
/// let start = std::time::Instant::now();
/// hilos::spawn(|| hilos::thread::sleep_ms(5)).join().unwrap();
/// assert!(start.elapsed() >= std::time::Duration::from_millis(5));
/// ```
#[deprecated(
    since = "0.1.0",
    note = "replaced by `hilos::thread::sleep`, as in std"
)]
pub fn sleep_ms(ms: u32) {
    sleep(Duration::from_millis(u64::from(ms)));
}

/// Parks for at most `ms` milliseconds, as std's deprecated [`std::thread::park_timeout_ms`]:
/// use [`park_timeout`].
///
/// # Examples
/// ```
/// #![allow(deprecated)]
/// let start = std::time::Instant::now();
/// hilos::spawn(|| hilos::thread::park_timeout_ms(5)).join().unwrap();
/// assert!(start.elapsed() >= std::time::Duration::from_millis(5));
/// ```
#[deprecated(
    since = "0.1.0",
    note = "replaced by `hilos::thread::park_timeout`, as in std"
)]
pub fn park_timeout_ms(ms: u32) {
    park_timeout(Duration::from_millis(u64::from(ms)));
}

/// Gives up the rest of this thread's turn: on a green thread, runs the other runnable green
/// threads of this worker first; on a kernel thread, as `std::thread::yield_now`.
///
/// # Examples
///
/// ```
/// let rt = hilos::Runtime::builder().workers(1).build().unwrap();
/// let order = rt.block_on(|| {
///     let log = std::sync::Arc::new(hilos::sync::Mutex::new(Vec::new()));
///     let l = log.clone();
///     let h = hilos::spawn(move || l.lock().unwrap().push("child"));
///     // On one worker the child runs while we yield.
///     hilos::yield_now();
///     log.lock().unwrap().push("parent");
///     h.join().unwrap();
///     let v = log.lock().unwrap().clone();
///     v
/// });
/// assert_eq!(order, ["child", "parent"]);
/// ```
pub fn yield_now() {
    crate::park::yield_now();
}

/// Spawns a new green thread, returning a [`JoinHandle`] for it.
///
/// On a green thread it is spawned on the caller's runtime; elsewhere on the global runtime,
/// started on first use (see [`crate::runtime::Builder::build_global`]).
///
/// # Panics
/// Panics if a stack cannot be had (use [`Builder::spawn`] to get the error), with the message
/// `failed to spawn thread`, as std.
///
/// # Examples
///
/// ```
/// let handles: Vec<_> = (0..1000u64).map(|i| hilos::spawn(move || i * 2)).collect();
/// let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
/// assert_eq!(sum, 999 * 1000);
/// ```
#[track_caller]
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Builder::new().spawn(f).expect("failed to spawn thread")
}

/// The runtime new threads of the caller go to.
pub(crate) fn spawn_target() -> Arc<Shared> {
    scheduler::current_shared().unwrap_or_else(crate::runtime::global_shared)
}

impl Builder {
    /// Spawns a green thread, returning an error that says why if no stack could be had.
    #[track_caller]
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        // SAFETY: F and T are 'static: nothing borrowed can end before the thread does.
        unsafe { self.spawn_unchecked(f) }
    }

    /// Spawns a green thread whose closure and result may borrow, with no lifetime checks, as
    /// [`std::thread::Builder::spawn_unchecked`]. [`scope`] is the safe way to do this.
    ///
    /// # Safety
    /// Whatever `f` and its result borrow must outlive the thread: the caller must join it (or
    /// otherwise know it has finished and its result was dropped) before those borrows end.
    /// Dropping the [`JoinHandle`] detaches the thread; it does not wait for it.
    ///
    /// # Examples
    /// ```
    /// let words = vec!["cheap", "threads"];
    /// let borrowed = &words;
    /// // SAFETY: the thread is joined below, before `words` is dropped.
    /// let h = unsafe {
    ///     hilos::thread::Builder::new().spawn_unchecked(move || borrowed.join(" "))
    /// }
    /// .unwrap();
    /// assert_eq!(h.join().unwrap(), "cheap threads");
    /// ```
    #[track_caller]
    pub unsafe fn spawn_unchecked<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        let cur = scheduler::current_shared_ptr();
        if cur.is_null() {
            // SAFETY: the caller's promise, passed on.
            return unsafe { self.spawn_on_unchecked(&crate::runtime::global_shared(), f) };
        }
        // SAFETY: a non-null pointer is the runtime of the worker we run on, alive while we do
        // (spawning does not switch away); the borrows are the caller's promise.
        unsafe { self.spawn_on_unchecked(&*cur, f) }
    }

    /// Spawns a scoped green thread, as [`std::thread::Builder::spawn_scoped`].
    #[track_caller]
    pub fn spawn_scoped<'scope, 'env, F, T>(
        self,
        scope: &'scope Scope<'scope, 'env>,
        f: F,
    ) -> io::Result<ScopedJoinHandle<'scope, T>>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        self.check_name();
        scope.spawn_with(self.name, self.stack_size, f)
    }
}
