//! Green threads with the API of [`std::thread`].
//!
//! Every function here works both on a green thread, where blocking parks only that green thread,
//! and on a plain kernel thread, where it blocks the kernel thread as std does. So `main` can join
//! a green thread, and a green thread can unpark a kernel thread.
//!
//! Differences from std that matter:
//! - Green threads do not migrate between workers once started, but several green threads share
//!   one worker kernel thread, so they share its `thread_local!` values, and
//!   `std::thread::current()` inside a green thread names the worker, not the green thread (use
//!   [`current`]). Panic messages printed by std's default hook name the worker thread.
//! - Blocking std calls (`std::sync::Mutex`, `std::thread::sleep`, std's I/O) block the whole
//!   worker, not just the green thread; use hilos's own types.
//! - There is no preemption: a green thread that computes without blocking or yielding keeps its
//!   worker until it does.

mod cell;
mod scoped;

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::scheduler::{self, Shared};
pub use crate::task::ThreadId;
use crate::task::{self, TaskRef};
use cell::JoinInner;
pub use scoped::{Scope, ScopedJoinHandle, scope};

/// A handle to a thread of hilos (green or kernel), as [`std::thread::Thread`].
#[derive(Clone)]
#[repr(transparent)]
pub struct Thread {
    inner: TaskRef,
}

impl Thread {
    /// The thread's unique identifier.
    pub fn id(&self) -> ThreadId {
        self.inner.id()
    }

    /// The thread's name, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.inner.name()
    }

    /// Makes the thread's park token available, waking it if it is parked in [`park`] or
    /// [`park_timeout`]. As std, several calls before a `park` make one token.
    pub fn unpark(&self) {
        self.inner.unpark();
    }
}

impl fmt::Debug for Thread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Thread")
            .field("id", &self.id())
            .field("name", &self.name())
            .finish_non_exhaustive()
    }
}

/// A handle to the calling thread: the green thread if called on one, else the kernel thread.
pub fn current() -> Thread {
    Thread {
        inner: task::current(),
    }
}

/// Blocks the calling thread until its token is made available by [`Thread::unpark`]. May return
/// spuriously, as std's. On a green thread it parks only the green thread.
pub fn park() {
    scheduler::park(task::Which::User, None);
}

/// As [`park`], returning at the latest after `dur`.
pub fn park_timeout(dur: Duration) {
    let deadline = Instant::now().checked_add(dur);
    scheduler::park(task::Which::User, deadline);
}

/// Puts the calling thread to sleep for at least `dur`. On a green thread only the green thread
/// sleeps (a timer of its worker, no kernel timer per thread).
pub fn sleep(dur: Duration) {
    scheduler::sleep(dur);
}

/// Gives up the rest of this thread's turn: on a green thread, runs the other runnable green
/// threads of this worker first; on a kernel thread, as `std::thread::yield_now`.
pub fn yield_now() {
    scheduler::yield_now();
}

/// Spawns a new green thread, returning a [`JoinHandle`] for it.
///
/// On a green thread it is spawned on the caller's runtime; elsewhere on the global runtime,
/// started on first use (see [`crate::runtime::Builder::build_global`]).
///
/// # Panics
/// Panics if a stack cannot be had (use [`Builder::spawn`] to get the error), with the message
/// `failed to spawn thread`, as std.
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

/// Spawns on `shared` without lifetime checks.
///
/// # Safety
/// If `F` or `T` borrow anything, the caller must make sure the thread finishes (and its result is
/// dropped or taken) before those borrows end.
pub(crate) unsafe fn spawn_unchecked<F, T>(
    shared: &Shared,
    name: Option<String>,
    stack_size: Option<usize>,
    scope: Option<Arc<cell::ScopeData>>,
    f: F,
) -> io::Result<JoinInner<T>>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let default_stack = stack_size.is_none();
    let stack = match stack_size {
        None => match scheduler::take_default_stack(shared) {
            Some(s) => s,
            None => crate::stack::alloc(shared.stack_size)?,
        },
        Some(size) => crate::stack::alloc(size)?,
    };
    if let Some(s) = &scope {
        s.running.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let (handle, sched) = cell::new_task::<F, T>(
        name.map(String::into_boxed_str),
        stack,
        default_stack,
        scope,
        f,
    );
    shared.spawn(sched);
    // SAFETY: `handle` is the handle's reference to a Cell<F, T>.
    Ok(unsafe { JoinInner::new(handle) })
}

/// Thread factory, as [`std::thread::Builder`]: name and stack size of a new green thread.
#[derive(Debug, Default)]
#[must_use = "must eventually spawn the thread"]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
}

impl Builder {
    /// A builder with no name and the runtime's default stack size.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the thread. The name is visible through [`Thread::name`] and in the stack-overflow
    /// message.
    ///
    /// # Panics
    /// [`Builder::spawn`] panics if the name contains a NUL byte, as std's does.
    pub fn name(mut self, name: String) -> Builder {
        self.name = Some(name);
        self
    }

    /// The usable size of the new thread's stack in bytes (rounded up to whole pages). Memory is
    /// committed only as the thread touches it.
    pub fn stack_size(mut self, size: usize) -> Builder {
        self.stack_size = Some(size);
        self
    }

    fn check_name(&self) {
        if let Some(n) = &self.name {
            assert!(
                !n.as_bytes().contains(&0),
                "thread name may not contain interior null bytes"
            );
        }
    }

    /// Spawns a green thread, returning an error that says why if no stack could be had.
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let cur = scheduler::current_shared_ptr();
        if cur.is_null() {
            return self.spawn_on(&crate::runtime::global_shared(), f);
        }
        // SAFETY: a non-null pointer is the runtime of the worker we run on, alive while we do;
        // spawning does not switch away.
        self.spawn_on(unsafe { &*cur }, f)
    }

    pub(crate) fn spawn_on<F, T>(self, shared: &Shared, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.check_name();
        // SAFETY: F and T are 'static: nothing borrowed can end before the thread does.
        let inner = unsafe { spawn_unchecked(shared, self.name, self.stack_size, None, f)? };
        Ok(JoinHandle { inner })
    }

    /// Spawns a scoped green thread, as [`std::thread::Builder::spawn_scoped`].
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

/// An owned permission to join a green thread, as [`std::thread::JoinHandle`]. Dropping it
/// detaches the thread.
pub struct JoinHandle<T> {
    inner: JoinInner<T>,
}

impl<T> JoinHandle<T> {
    /// Waits for the thread to finish; `Err` carries its panic payload. On a green thread only the
    /// calling green thread waits.
    pub fn join(self) -> std::thread::Result<T> {
        self.inner.join()
    }

    /// The thread's handle.
    pub fn thread(&self) -> &Thread {
        thread_ref(self.inner.task())
    }

    /// Whether the thread has finished running its closure (it may still be exiting).
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle").finish_non_exhaustive()
    }
}

/// Views a `&TaskRef` as a `&Thread` (`Thread` is a single-field struct over `TaskRef`).
fn thread_ref(t: &TaskRef) -> &Thread {
    const _: () = assert!(std::mem::size_of::<Thread>() == std::mem::size_of::<TaskRef>());
    // SAFETY: `Thread` is `#[repr(transparent)]` over its only field, a `TaskRef`.
    unsafe { &*(t as *const TaskRef as *const Thread) }
}

#[allow(dead_code)]
fn _assert_traits() {
    fn send_sync<X: Send + Sync>() {}
    send_sync::<Thread>();
    send_sync::<JoinHandle<u8>>();
}

// As std's: handles stay consistent across a panic (their state is atomic).
impl std::panic::RefUnwindSafe for Thread {}
impl std::panic::UnwindSafe for Thread {}
impl<T> std::panic::RefUnwindSafe for JoinHandle<T> {}
impl<T> std::panic::UnwindSafe for JoinHandle<T> {}
