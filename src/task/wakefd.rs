//! The worker's wake-up descriptor: an eventfd that other kernel threads write to wake a worker
//! sleeping in its I/O driver's wait.
//!
//! # The problem
//! An idle worker sleeps in its I/O driver (`io_uring_enter` or `epoll_wait`) so that one kernel
//! wait covers I/O completions, its next timer deadline and wake-ups from other threads. A futex
//! cannot wake a thread blocked in `io_uring_enter`; a descriptor the driver waits on can.
//!
//! # The design
//! One eventfd per worker, owned by its [`super::Home`]. The driver keeps a read of it armed on
//! its ring (or registers it with its epoll instance); [`WakeFd::wake`] adds one to the counter,
//! which completes that read and ends the wait. A write that lands before the worker sleeps is
//! not lost: the counter stays non-zero, so the armed read (re-armed with the counter non-zero)
//! completes at once. Wakers write only when the worker announced it sleeps (`Home::sleeping`,
//! after a `SeqCst` fence; see `task::runq` and `scheduler::idle`), so a busy worker costs them no system call.
//!
//! Rejected: a futex (cannot end an `io_uring_enter` or `epoll_wait`); a signal (turns every
//! system call of the worker into a possible `EINTR`); `IORING_OP_MSG_RING` (the waker needs a
//! ring of its own, which kernel threads and the epoll fallback do not have).
//!
//! The eventfd is in blocking mode: io_uring honours `O_NONBLOCK` on plain reads of some files,
//! which would make the armed read fail with `EAGAIN` instead of waiting. The epoll driver reads it
//! only after `epoll_wait` reported it readable, and only the owning worker reads it.

use std::io;
use std::os::fd::RawFd;
#[cfg(not(all(test, loom)))]
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// One worker's eventfd (see the module doc).
#[cfg(not(all(test, loom)))]
pub(crate) struct WakeFd {
    fd: OwnedFd,
}

#[cfg(not(all(test, loom)))]
impl WakeFd {
    /// A new eventfd with a zero counter.
    pub(crate) fn new() -> io::Result<WakeFd> {
        // SAFETY: plain system call with no pointer arguments.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(WakeFd { fd })
    }

    /// Wakes the worker sleeping on this descriptor (or makes its next wait return at once).
    pub(crate) fn wake(&self) {
        let one: u64 = 1;
        loop {
            // SAFETY: writes 8 bytes from a live u64 to our own descriptor.
            let r = unsafe {
                crate::real::write(
                    self.fd.as_raw_fd(),
                    (&raw const one).cast::<libc::c_void>(),
                    8,
                )
            };
            if r >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                // The only other failure, EAGAIN at a counter near u64::MAX, cannot happen: every
                // read drains the counter and writes add one.
                return;
            }
        }
    }

    /// The descriptor, for the driver to wait on.
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Under loom: no descriptor; a wake is counted in a loom atomic, as the eventfd's counter keeps
/// it, so a model can check that a worker that went to sleep was woken.
#[cfg(all(test, loom))]
pub(crate) struct WakeFd {
    wakes: crate::loom::sync::atomic::AtomicUsize,
}

#[cfg(all(test, loom))]
impl WakeFd {
    pub(crate) fn new() -> io::Result<WakeFd> {
        Ok(WakeFd {
            wakes: crate::loom::sync::atomic::AtomicUsize::new(0),
        })
    }

    pub(crate) fn wake(&self) {
        self.wakes
            .fetch_add(1, crate::loom::sync::atomic::Ordering::Relaxed);
    }

    /// How many wakes were delivered.
    #[cfg(test)]
    pub(crate) fn wakes(&self) -> usize {
        self.wakes
            .load(crate::loom::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        unreachable!("hilos: no driver runs under loom")
    }
}
