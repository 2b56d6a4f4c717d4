//! Blocking I/O operations for green threads, on top of the worker's driver.
//!
//! # The problem
//! A green thread's I/O call must park only that green thread, honour a deadline, and never let
//! the kernel write into its stack after the call returned. The same calls must also work from a
//! plain kernel thread (and from a green thread that is unwinding, which may not switch), where
//! they block as std's do.
//!
//! # The design
//! Every call picks a [`Mode`]:
//! - [`Mode::Uring`] (a green thread on an io_uring worker): the operation itself is submitted
//!   ([`submit_and_wait`]) with a [`Completion`] record on this stack frame; the thread parks on
//!   its `sys` token until the record is done. At the deadline it submits `AsyncCancel` and keeps
//!   waiting for the original completion: the kernel may still be writing into the buffer until
//!   then. A result that arrives despite the cancellation is returned (the data is not lost).
//! - [`Mode::Epoll`] (a green thread on an epoll worker): descriptors are non-blocking; a call
//!   tries the system call, and on `EAGAIN` registers a [`Waiter`] for readiness, parks, retries.
//!   A timed-out waiter is deregistered before the call returns; epoll writes no user memory.
//! - [`Mode::Blocking`] (a kernel thread, or a green thread that is panicking): the system call,
//!   with `poll(2)` for readiness on non-blocking descriptors, blocking the kernel thread as std.
//!
//! Rejected: readiness (poll, then the system call) on io_uring too: two steps per operation
//! where the ring does one, and no batching of the operations themselves; doing every operation
//! on the blocking pool: a kernel thread hop per call.
//!
//! `EINTR` is retried here and never returned. A deadline that passes gives the caller's error
//! kind: `WouldBlock` for reads and writes (what std's socket timeouts give on Linux), `TimedOut`
//! for connecting and for [`crate::io::wait_readable`].

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, types};

use crate::driver::{self, Completion, Driver, IoBackend, Waiter};
use crate::park;
use crate::task::{self, IoOp, ThreadState, Which};

/// How the calling thread does I/O (see the module doc).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Mode {
    Uring,
    Epoll,
    Blocking,
}

/// The calling thread's mode.
pub(crate) fn mode() -> Mode {
    if task::current_green().is_none() || !park::may_switch() {
        return Mode::Blocking;
    }
    match driver::current_backend() {
        Some(IoBackend::IoUring) => Mode::Uring,
        Some(IoBackend::Epoll) => Mode::Epoll,
        None => Mode::Blocking,
    }
}

/// Readiness a call waits for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Interest {
    Read,
    Write,
}

impl Interest {
    fn poll_events(self) -> i16 {
        match self {
            Interest::Read => libc::POLLIN | libc::POLLRDHUP,
            Interest::Write => libc::POLLOUT,
        }
    }

    fn epoll_events(self) -> u32 {
        match self {
            Interest::Read => libc::EPOLLIN as u32,
            Interest::Write => libc::EPOLLOUT as u32,
        }
    }
}

/// The deadline `timeout` from now (`None` for no timeout, or one too far to express).
pub(crate) fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// The error a call that ran out of time returns.
pub(crate) fn timeout_error(kind: io::ErrorKind) -> io::Error {
    match kind {
        // What std's SO_RCVTIMEO / SO_SNDTIMEO give on Linux: EAGAIN.
        io::ErrorKind::WouldBlock => io::Error::from_raw_os_error(libc::EAGAIN),
        io::ErrorKind::TimedOut => io::Error::from_raw_os_error(libc::ETIMEDOUT),
        k => io::Error::from(k),
    }
}

/// What a green thread waiting for `what` on `fd` is shown doing in dumps.
pub(crate) fn io_state(what: IoOp, fd: RawFd) -> ThreadState {
    ThreadState::Io { op: what, fd }
}

/// Submits `sqe` on this worker's ring and parks until its completion has been reaped; at
/// `deadline`, cancels it and still waits. Returns the result (`-errno` on failure) and whether
/// the deadline passed. `why` is what dumps show the thread waiting on.
///
/// # Safety
/// Call in [`Mode::Uring`]. Every pointer in `sqe` must be valid until this returns (it does not
/// return before the kernel is done with them).
pub(crate) unsafe fn submit_and_wait(
    sqe: squeue::Entry,
    deadline: Option<Instant>,
    why: ThreadState,
) -> (i32, bool) {
    let c = Completion::new(task::current());
    let ud = c.user_data();
    let pushed = driver::with(|d| match d {
        // SAFETY: `c` lives on this frame, which does not return before the completion is
        // reaped (the loop below); the caller vouches for the entry's other pointers.
        Driver::Uring(u) => unsafe { u.push(sqe.user_data(ud)) },
        Driver::Epoll(_) => panic!("hilos: io_uring submission on an epoll worker"),
    });
    assert!(pushed.is_some(), "hilos: io_uring submission off a worker");
    let mut timed_out = false;
    while !c.is_done() {
        let dl = if timed_out { None } else { deadline };
        let woken = park::park(Which::Sys, dl, why);
        if !woken && !c.is_done() && !timed_out && dl.is_some_and(|d| Instant::now() >= d) {
            timed_out = true;
            driver::with(|d| {
                if let Driver::Uring(u) = d {
                    u.cancel(ud);
                }
            });
        }
    }
    (c.result(), timed_out)
}

/// Waits until `fd` is ready for `interest` or `deadline` passes (`Ok(false)`). Works in every
/// mode. Descriptors epoll cannot watch (regular files) count as always ready.
pub(crate) fn wait_ready(
    fd: RawFd,
    interest: Interest,
    what: IoOp,
    deadline: Option<Instant>,
) -> io::Result<bool> {
    wait_events(
        fd,
        interest.poll_events(),
        interest.epoll_events(),
        what,
        deadline,
    )
}

/// As [`wait_ready`], for any `poll(2)` event mask `poll_events` (the ring's wait and the blocking
/// wait) and its epoll equivalent `epoll_events` (the epoll driver's wait); `what` names the
/// wait in thread dumps.
pub(crate) fn wait_events(
    fd: RawFd,
    poll_events: i16,
    epoll_events: u32,
    what: IoOp,
    deadline: Option<Instant>,
) -> io::Result<bool> {
    let why = io_state(what, fd);
    match mode() {
        Mode::Uring => {
            let e = opcode::PollAdd::new(types::Fd(fd), poll_events as u16 as u32).build();
            loop {
                // SAFETY: in Uring mode; the entry carries no pointer.
                let (res, timed_out) = unsafe { submit_and_wait(e.clone(), deadline, why) };
                if res >= 0 {
                    return Ok(true);
                }
                if timed_out {
                    return Ok(false);
                }
                if res != -libc::EINTR {
                    return Err(io::Error::from_raw_os_error(-res));
                }
            }
        }
        Mode::Epoll => {
            let w = Waiter::new(epoll_events, task::current());
            let wp: *const Waiter = &w;
            let added = driver::with(|d| match d {
                // SAFETY: `w` stays on this frame until it fired or is removed below.
                Driver::Epoll(e) => unsafe { e.add(fd, wp) },
                Driver::Uring(_) => unreachable!("hilos: epoll wait on an io_uring worker"),
            })
            .expect("hilos: epoll wait off a worker");
            match added {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => return Ok(true),
                Err(e) => return Err(e),
            }
            while !w.is_ready() {
                let woken = park::park(Which::Sys, deadline, why);
                if !woken && !w.is_ready() && deadline.is_some_and(|d| Instant::now() >= d) {
                    driver::with(|d| {
                        if let Driver::Epoll(e) = d {
                            e.remove(fd, wp);
                        }
                    });
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Mode::Blocking => poll_blocking(fd, poll_events, deadline),
    }
}

/// `poll(2)` on one descriptor, blocking the kernel thread; `Ok(false)` at the deadline.
fn poll_blocking(fd: RawFd, events: i16, deadline: Option<Instant>) -> io::Result<bool> {
    loop {
        let ms = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(false);
                }
                left.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32
            }
        };
        let mut p = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: one live pollfd.
        let r = unsafe { crate::real::poll(&mut p, 1, ms) };
        if r > 0 {
            if p.revents & libc::POLLNVAL != 0 {
                // Not an open descriptor: the error the other modes give.
                return Err(io::Error::from_raw_os_error(libc::EBADF));
            }
            return Ok(true);
        }
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

/// Converts a system call's `-1`/errno return.
pub(crate) fn cvt(r: isize) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// Runs the non-blocking attempt `f` until it does not fail with `EAGAIN`/`EINTR`, waiting for
/// readiness in between (any mode except that it never submits the operation itself).
pub(crate) fn retry<T>(
    fd: RawFd,
    interest: Interest,
    what: IoOp,
    deadline: Option<Instant>,
    kind: io::ErrorKind,
    mut f: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !wait_ready(fd, interest, what, deadline)? {
                    return Err(timeout_error(kind));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            r => return r,
        }
    }
}

/// One operation on a non-blocking descriptor: in [`Mode::Uring`] the operation `sqe()` is
/// submitted and awaited, elsewhere the attempt `direct` is retried on readiness.
///
/// Writes first try `direct` in [`Mode::Uring`] too: a socket or pipe almost always has room, and
/// a plain non-blocking system call then saves parking and a trip through the ring. Reads go to
/// the ring at once: in request/response traffic the next request has usually not arrived when a
/// reader asks, so a first attempt would mostly fail with `EAGAIN`.
///
/// # Safety
/// Every pointer in the entries `sqe` makes must be valid until this returns.
pub(crate) unsafe fn op(
    fd: RawFd,
    interest: Interest,
    what: IoOp,
    deadline: Option<Instant>,
    kind: io::ErrorKind,
    sqe: impl Fn() -> squeue::Entry,
    mut direct: impl FnMut() -> io::Result<usize>,
) -> io::Result<usize> {
    if deadline.is_some_and(|d| d <= Instant::now()) {
        // Out of time before starting (or std's non-blocking mode): one attempt, no waiting.
        loop {
            match direct() {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(timeout_error(kind)),
                r => return r,
            }
        }
    }
    if mode() != Mode::Uring {
        return retry(fd, interest, what, deadline, kind, direct);
    }
    if interest == Interest::Write {
        loop {
            match direct() {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                r => return r,
            }
        }
    }
    loop {
        // SAFETY: in Uring mode; the caller vouches for the entry's pointers.
        let (res, timed_out) = unsafe { submit_and_wait(sqe(), deadline, io_state(what, fd)) };
        if res >= 0 {
            return Ok(res as usize);
        }
        if timed_out {
            return Err(timeout_error(kind));
        }
        match -res {
            libc::EINTR => {}
            libc::EAGAIN => {
                // Kernels that honour O_NONBLOCK inside io_uring: wait for readiness, retry.
                if !wait_ready(fd, interest, what, deadline)? {
                    return Err(timeout_error(kind));
                }
            }
            e => return Err(io::Error::from_raw_os_error(e)),
        }
    }
}

/// Asserts that a value may cross to a blocking-pool thread: used for raw buffer pointers that
/// stay valid because the caller waits for the job (see [`crate::unblock`]).
pub(crate) struct AssertSend<T>(pub(crate) T);
// SAFETY: only used for pointers into buffers the waiting caller keeps borrowed; the pool thread
// is the only one touching them while the caller waits.
unsafe impl<T> Send for AssertSend<T> {}

/// An operation on a descriptor that is always "ready" (regular files; terminals and pipes of the
/// standard streams, which hilos does not switch to non-blocking mode): the ring in
/// [`Mode::Uring`], the blocking pool ([`crate::unblock`]) in [`Mode::Epoll`], the plain system
/// call in [`Mode::Blocking`]. If `fd` turns out to be non-blocking (`EAGAIN`), waits for
/// readiness for `interest` and retries.
///
/// # Safety
/// Every pointer in the entries `sqe` makes, and every pointer `direct` uses, must be valid until
/// this returns.
pub(crate) unsafe fn file_op(
    fd: RawFd,
    interest: Interest,
    what: IoOp,
    sqe: impl Fn() -> squeue::Entry,
    direct: impl FnMut() -> io::Result<usize>,
) -> io::Result<usize> {
    let mut direct = AssertSend(direct);
    let mut once = move || {
        let d = &mut direct;
        loop {
            match (d.0)() {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    };
    loop {
        let r = match mode() {
            Mode::Blocking => once(),
            Mode::Epoll => {
                let job = AssertSend(&mut once);
                // SAFETY (of AssertSend): the closure's pointers stay valid while we wait.
                super::unblock(move || {
                    let job = job;
                    (job.0)()
                })
            }
            // SAFETY: in Uring mode; the caller vouches for the entry's pointers.
            Mode::Uring => unsafe { ring_op(io_state(what, fd), &sqe) },
        };
        match r {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_ready(fd, interest, what, None)?;
            }
            r => return r,
        }
    }
}

/// Submits the operation `sqe()` and waits for it without a deadline, resubmitting on `EINTR`.
///
/// # Safety
/// Call in [`Mode::Uring`]. Every pointer in the entries `sqe` makes must be valid until this
/// returns.
pub(crate) unsafe fn ring_op(
    why: ThreadState,
    sqe: impl Fn() -> squeue::Entry,
) -> io::Result<usize> {
    loop {
        // SAFETY: the caller's promises.
        let (res, _) = unsafe { submit_and_wait(sqe(), None, why) };
        if res >= 0 {
            return Ok(res as usize);
        }
        if res != -libc::EINTR {
            return Err(io::Error::from_raw_os_error(-res));
        }
    }
}
