//! The per-worker I/O driver: one io_uring (or, where io_uring cannot be had, one epoll instance)
//! per worker kernel thread.
//!
//! # The problem
//! A green thread that does I/O must park only itself, and a parked green thread's stack holds the
//! buffers and address structures the kernel reads and writes. The worker must learn of finished
//! operations without a kernel thread per operation, sleep in one kernel wait that covers I/O, its
//! next timer deadline and wake-ups from other threads, and none of this may depend on the
//! scheduler (DESIGN-NOTES section 7: the worker calls the driver, never the other way round).
//!
//! # The design
//! - Each worker creates its driver on its own kernel thread when it starts ([`install`]) and
//!   reaches it through a thread-local ([`with`], `#[inline(never)]`, never cached across a
//!   switch). A green thread is pinned to its worker, so an operation is submitted and its
//!   completion reaped by the same worker, which is what `SINGLE_ISSUER` and `DEFER_TASKRUN` need.
//! - **io_uring** ([`uring`]): an operation's submission carries the address of a [`Completion`]
//!   record on the waiting green thread's stack as its user data. Submissions are batched: they
//!   are pushed to the submission queue and handed to the kernel when the worker passes through
//!   its scheduler context ([`poll`]) or goes to sleep ([`wait`]). Reaping a completion stores the
//!   result in the record and wakes the thread through its `sys` token (`TaskRef::wake`).
//! - **epoll** ([`epoll`]): readiness instead of completion. A green thread that got `EAGAIN`
//!   registers a [`Waiter`] on its stack for the descriptor, parks, and retries when woken.
//! - **Sleeping**: the idle worker calls [`wait`] with its next timer deadline. Other threads end
//!   the wait through the worker's eventfd (`task::wakefd`), which the driver keeps armed as a read
//!   on its ring (or registered with its epoll instance). Timers stay in the worker's heap
//!   (`time`): a million sleeping threads cost one kernel timeout, not a million.
//!
//! # Alternatives rejected
//! - One reactor kernel thread per runtime that owns the ring and hands completions to workers: a
//!   cross-thread wake-up per completion, and no `SINGLE_ISSUER`/`DEFER_TASKRUN`.
//! - One ring shared by the workers: a lock around every submission and reap.
//! - A `LinkTimeout` per timed operation: one kernel timer per waiting thread, which is what the
//!   per-worker timer heap avoids; a timeout instead wakes the thread, which then cancels.
//! - Returning at the deadline without waiting for the cancelled operation's completion: the
//!   kernel could still write into a buffer on a stack that has moved on.
//!
//! # Required orderings
//! - A submitted operation's record and buffers must stay valid until its completion is reaped:
//!   the waiting code never returns before that, even after a timeout (it cancels with
//!   `AsyncCancel` and keeps waiting). Callers of [`Uring::push`] promise this.
//! - [`Completion::complete`] takes the thread reference out of the record and marks it done
//!   before waking the thread, and touches the record no more: the thread may return (freeing the
//!   record) as soon as it runs again.
//! - The eventfd's write/sleep ordering is the worker's (announce, `SeqCst` fence, re-check), see
//!   `task::runq` and `scheduler::idle`.
//!
//! # Choosing the backend
//! Once per runtime, [`choose_backend`] probes io_uring with a small ring and checks every opcode
//! hilos uses. `ENOSYS`, `EPERM`, `EOPNOTSUPP`, `EINVAL`, `ENOMEM` or a missing opcode or feature
//! select the epoll fallback (and say so once on stderr); `HILOS_IO=epoll` forces it.

pub(crate) mod epoll;
pub(crate) mod uring;

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::task::TaskRef;

/// Which I/O backend a runtime's workers use (see [`crate::Runtime::io_backend`]).
///
/// # Examples
/// ```
/// use hilos::io::IoBackend;
///
/// let rt = hilos::Runtime::builder().workers(1).build().unwrap();
/// let backend: IoBackend = rt.io_backend();
/// match backend {
///     IoBackend::IoUring => assert_eq!(backend.as_str(), "io_uring"),
///     IoBackend::Epoll => assert_eq!(backend.as_str(), "epoll"),
///     _ => unreachable!("a backend this example does not know"),
/// }
/// assert_eq!(backend.to_string(), backend.as_str());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[non_exhaustive]
pub enum IoBackend {
    /// One io_uring per worker: sockets, pipes and files complete in the kernel.
    IoUring,
    /// The fallback: one epoll instance per worker for sockets and pipes, the blocking pool
    /// ([`crate::unblock`]) for files.
    Epoll,
}

impl IoBackend {
    /// The backend's name: `"io_uring"` or `"epoll"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            IoBackend::IoUring => "io_uring",
            IoBackend::Epoll => "epoll",
        }
    }
}

impl std::fmt::Display for IoBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an io_uring setup or probe error means "io_uring is not available here" (fall back)
/// rather than a real failure.
pub(crate) fn is_unavailable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSYS | libc::EPERM | libc::EOPNOTSUPP | libc::EINVAL | libc::ENOMEM)
    ) || e.kind() == io::ErrorKind::Unsupported
}

/// Says once per process, on stderr, that io_uring could not be had.
fn note_fallback(e: &io::Error) {
    static SAID: AtomicBool = AtomicBool::new(false);
    if !SAID.swap(true, Ordering::Relaxed) {
        eprintln!(
            "hilos: io_uring is not available ({e}); using the epoll fallback \
             (sockets and pipes through epoll, files through the blocking pool)"
        );
    }
}

/// Picks the backend for a new runtime: `HILOS_IO=epoll` forces the fallback, as does running
/// under Valgrind; otherwise io_uring if a probe ring can be set up and has every opcode hilos
/// uses.
pub(crate) fn choose_backend() -> IoBackend {
    if let Some(v) = std::env::var_os("HILOS_IO")
        && (v == "epoll" || v == "EPOLL")
    {
        return IoBackend::Epoll;
    }
    if crate::arch::valgrind::under_valgrind() {
        // Valgrind (3.19) does not see the kernel complete requests in io_uring's shared rings:
        // a hilos program under it waits forever for its first I/O.
        note_fallback(&io::Error::other("running under Valgrind"));
        return IoBackend::Epoll;
    }
    match uring::probe() {
        Ok(()) => IoBackend::IoUring,
        Err(e) => {
            note_fallback(&e);
            IoBackend::Epoll
        }
    }
}

/// A worker's driver (one per worker, in a thread-local: the size difference does not matter).
#[allow(clippy::large_enum_variant)]
pub(crate) enum Driver {
    Uring(uring::Uring),
    Epoll(epoll::Epoll),
}

impl Driver {
    /// Creates the driver for the calling worker, which sleeps on `wake_fd` (its eventfd). For
    /// io_uring, an "unavailable" error here (a smaller ring was tried on `ENOMEM`) falls back to
    /// epoll; other errors are returned.
    pub(crate) fn new(backend: IoBackend, wake_fd: RawFd) -> io::Result<Driver> {
        match backend {
            IoBackend::IoUring => match uring::Uring::new(wake_fd) {
                Ok(u) => Ok(Driver::Uring(u)),
                Err(e) if is_unavailable(&e) => {
                    note_fallback(&e);
                    Ok(Driver::Epoll(epoll::Epoll::new(wake_fd)?))
                }
                Err(e) => Err(e),
            },
            IoBackend::Epoll => Ok(Driver::Epoll(epoll::Epoll::new(wake_fd)?)),
        }
    }

    pub(crate) fn backend(&self) -> IoBackend {
        match self {
            Driver::Uring(_) => IoBackend::IoUring,
            Driver::Epoll(_) => IoBackend::Epoll,
        }
    }

    fn poll(&mut self) {
        match self {
            Driver::Uring(u) => u.poll(),
            Driver::Epoll(e) => e.poll(),
        }
    }

    fn wait(&mut self, timeout: Option<Duration>) {
        match self {
            Driver::Uring(u) => u.wait(timeout),
            Driver::Epoll(e) => e.wait(timeout),
        }
    }
}

/// I/O operations a worker's driver submitted and completed: io_uring operations pushed and
/// completions reaped, or with epoll, readiness waits registered and fired.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct IoCounts {
    pub(crate) submitted: u64,
    pub(crate) completed: u64,
}

/// This worker's I/O counts (zero off a worker).
pub(crate) fn counts() -> IoCounts {
    with(|d| match d {
        Driver::Uring(u) => u.counts,
        Driver::Epoll(e) => e.counts,
    })
    .unwrap_or_default()
}

thread_local! {
    /// The driver of the worker running on this kernel thread.
    static OWN: RefCell<Option<Driver>> = const { RefCell::new(None) };
    /// The driver this thread uses: null on a kernel thread that is no worker; the worker's own
    /// on a worker, mirrored into its green threads when they have thread-locals of their own
    /// (`tls`; a started green thread stays on its worker, so the pointer stays right).
    static CURRENT: Cell<*const RefCell<Option<Driver>>> = const { Cell::new(std::ptr::null()) };
}

/// Makes `d` this kernel thread's driver (a worker calls this when it starts).
pub(crate) fn install(d: Driver) {
    let p = OWN.with(|c| {
        *c.borrow_mut() = Some(d);
        c as *const RefCell<Option<Driver>>
    });
    CURRENT.with(|c| {
        c.set(p);
        crate::tls::mirror(c.as_ptr().cast::<usize>().cast_const());
    });
}

/// Removes and drops this kernel thread's driver (a worker calls this when it stops, once no
/// green thread, and so no operation, is left).
pub(crate) fn uninstall() {
    CURRENT.with(|c| c.set(std::ptr::null()));
    let d = OWN.with(|c| c.borrow_mut().take());
    drop(d);
}

/// Runs `f` on this kernel thread's driver; `None` if it has none (not a worker).
///
/// `#[inline(never)]`: the thread-local's address is computed afresh at every call, never cached
/// by a caller across a switch (DESIGN-NOTES section 1). `f` must not switch or re-enter.
#[inline(never)]
pub(crate) fn with<R>(f: impl FnOnce(&mut Driver) -> R) -> Option<R> {
    let p = CURRENT.try_with(|c| c.get()).ok()?;
    // SAFETY: a non-null pointer is the worker's own driver cell, alive until `uninstall`, which
    // runs after every green thread of the worker has finished.
    let cell = unsafe { p.as_ref() }?;
    let mut g = cell.try_borrow_mut().ok()?;
    g.as_mut().map(f)
}

/// The backend of this kernel thread's driver, if it is a worker.
pub(crate) fn current_backend() -> Option<IoBackend> {
    with(|d| d.backend())
}

/// The worker's non-blocking pass: hands batched submissions to the kernel and reaps
/// completions (or ready descriptors), readying their green threads.
pub(crate) fn poll() {
    with(|d| d.poll());
}

/// The worker's sleep: flushes submissions and waits until a completion, a wake-up through the
/// eventfd, or `timeout` (`None`: no timeout). Then reaps as [`poll`].
pub(crate) fn wait(timeout: Option<Duration>) {
    with(|d| d.wait(timeout));
}

/// The record of one io_uring operation, on the stack of the green thread that waits for it
/// (see the module doc for the protocol).
pub(crate) struct Completion {
    res: Cell<i32>,
    done: Cell<bool>,
    task: Cell<Option<TaskRef>>,
}

impl Completion {
    /// A record whose completion will wake `task` (the caller).
    pub(crate) fn new(task: TaskRef) -> Completion {
        Completion {
            res: Cell::new(0),
            done: Cell::new(false),
            task: Cell::new(Some(task)),
        }
    }

    /// Whether the operation's completion has been reaped.
    pub(crate) fn is_done(&self) -> bool {
        self.done.get()
    }

    /// The operation's result (`-errno` on failure); valid once [`Completion::is_done`].
    pub(crate) fn result(&self) -> i32 {
        self.res.get()
    }

    /// The user data that identifies this record in a submission.
    pub(crate) fn user_data(&self) -> u64 {
        self as *const Completion as u64
    }

    /// Records the result and wakes the waiting thread.
    ///
    /// # Safety
    /// `ud` is the user data of a live record whose operation has not completed before.
    unsafe fn complete(ud: u64, res: i32) {
        // SAFETY: per the contract, the record is alive: its thread waits for this completion.
        let c = unsafe { &*(ud as *const Completion) };
        let t = c.task.take();
        c.res.set(res);
        c.done.set(true);
        // From here on the record may be freed as soon as its thread runs; only `t` is used.
        if let Some(t) = t {
            t.wake();
        }
    }
}

/// A green thread waiting for a descriptor to become ready (epoll backend), on its stack.
pub(crate) struct Waiter {
    /// `EPOLLIN` and/or `EPOLLOUT`.
    interest: u32,
    ready: Cell<bool>,
    task: Cell<Option<TaskRef>>,
}

impl Waiter {
    /// A waiter for `interest` (`EPOLLIN`, `EPOLLOUT`) that will wake `task`.
    pub(crate) fn new(interest: u32, task: TaskRef) -> Waiter {
        Waiter {
            interest,
            ready: Cell::new(false),
            task: Cell::new(Some(task)),
        }
    }

    /// Whether the descriptor was reported ready (the waiter is then deregistered).
    pub(crate) fn is_ready(&self) -> bool {
        self.ready.get()
    }

    /// # Safety
    /// `w` points at a live, registered waiter; it is deregistered by the caller.
    unsafe fn fire(w: *const Waiter) {
        // SAFETY: per the contract.
        let w = unsafe { &*w };
        let t = w.task.take();
        w.ready.set(true);
        if let Some(t) = t {
            t.wake();
        }
    }
}
