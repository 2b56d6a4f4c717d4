//! The spawn engine: a green thread's allocation and stack reservation, and the join protocol.
//!
//! [`spawn_unchecked`] reserves a stack in the pool, allocates the thread's one cell (`cell`:
//! control block, join state, result slot, closure), and queues the thread on a runtime's
//! scheduler. Its stack is bound, and its TLS area and the first frame that enters
//! `park::green_entry` built, at its first run (`park::local`). The std-shaped handles
//! ([`Thread`], [`JoinHandle`], [`Builder`]) are defined here, below `runtime`, whose
//! `Runtime::spawn` returns them; `thread` re-exports them and adds what
//! needs the global runtime (`Builder::spawn`, `spawn`, `scope`).

pub(crate) mod cell;

use std::fmt;
use std::io;
use std::sync::Arc;

use crate::scheduler::Shared;
use crate::task::{TaskRef, ThreadId};
use crate::tls;
use cell::JoinInner;

/// A handle to a thread of hilos (green or kernel), as [`std::thread::Thread`].
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
///
/// let ready = Arc::new(AtomicBool::new(false));
/// let flag = ready.clone();
/// let h = hilos::thread::Builder::new()
///     .name("waiter".into())
///     .spawn(move || {
///         while !flag.load(Ordering::Acquire) {
///             hilos::thread::park();
///         }
///     })
///     .unwrap();
/// let t: &hilos::Thread = h.thread();
/// assert_eq!(t.name(), Some("waiter"));
/// ready.store(true, Ordering::Release);
/// t.unpark();
/// h.join().unwrap();
/// ```
#[derive(Clone)]
#[repr(transparent)]
pub struct Thread {
    pub(crate) inner: TaskRef,
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

    /// Makes the thread's park token available, waking it if it is parked in
    /// [`park`](crate::thread::park) or [`park_timeout`](crate::thread::park_timeout). As std,
    /// several calls before a `park` make one token.
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

/// Spawns on `shared` without lifetime checks.
///
/// # Safety
/// If `F` or `T` borrow anything, the caller must make sure the thread finishes (and its result is
/// dropped or taken) before those borrows end.
#[track_caller]
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
    if crate::task::fork::forked() {
        return Err(crate::task::fork::error());
    }
    // A thread takes its stack at its first run (for the runtime's default size, usually the one
    // its worker's last exit left hot); here it only reserves one, so that a stack that cannot
    // be had is still this call's error (`scheduler`, "Spawn bursts").
    let class = match stack_size {
        None => shared.stack_class,
        Some(size) => crate::stack::class_of(size.saturating_add(tls::area_size()))?,
    };
    let reservation = crate::stack::reserve(class)?;
    if let Some(s) = &scope {
        s.running.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let (handle, sched) = cell::new_task::<F, T>(
        name.map(String::into_boxed_str),
        reservation,
        class == shared.stack_class,
        scope,
        f,
    );
    shared.spawn(sched);
    // SAFETY: `handle` is the handle's reference to a Cell<F, T>.
    Ok(unsafe { JoinInner::new(handle) })
}

/// Thread factory, as [`std::thread::Builder`]: name and stack size of a new green thread.
///
/// # Examples
///
/// ```
/// let h = hilos::thread::Builder::new()
///     .name("worker-1".into())
///     .stack_size(64 * 1024)
///     .spawn(|| hilos::thread::current().name().map(String::from))
///     .unwrap();
/// assert_eq!(h.join().unwrap().as_deref(), Some("worker-1"));
/// ```
#[derive(Debug, Default)]
#[must_use = "must eventually spawn the thread"]
pub struct Builder {
    pub(crate) name: Option<String>,
    pub(crate) stack_size: Option<usize>,
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

    pub(crate) fn check_name(&self) {
        if let Some(n) = &self.name {
            assert!(
                !n.as_bytes().contains(&0),
                "thread name may not contain interior null bytes"
            );
        }
    }

    #[track_caller]
    pub(crate) fn spawn_on<F, T>(self, shared: &Shared, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        // SAFETY: F and T are 'static: nothing borrowed can end before the thread does.
        unsafe { self.spawn_on_unchecked(shared, f) }
    }

    /// Spawns on `shared` without lifetime checks.
    ///
    /// # Safety
    /// As [`spawn_unchecked`]: whatever `F` and `T` borrow must outlive the thread and its result.
    #[track_caller]
    pub(crate) unsafe fn spawn_on_unchecked<F, T>(
        self,
        shared: &Shared,
        f: F,
    ) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        self.check_name();
        // SAFETY: the caller's promise, passed on.
        let inner = unsafe { spawn_unchecked(shared, self.name, self.stack_size, None, f)? };
        Ok(JoinHandle { inner })
    }
}

/// An owned permission to join a green thread, as [`std::thread::JoinHandle`]. Dropping it
/// detaches the thread.
///
/// # Examples
///
/// ```
/// let h: hilos::JoinHandle<u32> = hilos::spawn(|| 6 * 7);
/// assert_eq!(h.join().unwrap(), 42);
///
/// // A panic reaches the joiner as an `Err` carrying its payload.
/// let h = hilos::spawn(|| panic!("boom"));
/// assert!(h.join().is_err());
/// ```
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
pub(crate) fn thread_ref(t: &TaskRef) -> &Thread {
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
