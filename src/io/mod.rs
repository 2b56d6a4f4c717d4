//! I/O that parks only the calling green thread.
//!
//! hilos's sockets ([`crate::net`]), files ([`crate::fs`]), [`pipe`]s and standard streams look
//! like std's and block like std's, but on a green thread a call that has to wait parks only that
//! green thread: the other green threads of its worker keep running. On a plain kernel thread the
//! same calls block the kernel thread, as std's do.
//!
//! # Backends
//! Each worker has its own io_uring: operations are submitted in batches, completed by the kernel
//! and reaped by the worker that submitted them (a started green thread never leaves its worker).
//! Where io_uring is unavailable (old kernels, container seccomp profiles, `RLIMIT_MEMLOCK`), or
//! with `HILOS_IO=epoll` in the environment, a runtime uses an epoll readiness driver for sockets
//! and pipes and the blocking pool ([`crate::unblock`]) for files. [`crate::Runtime::io_backend`]
//! says which one a runtime uses; a fallback is also reported once on stderr.
//!
//! # Timeouts and cancellation
//! A timed-out operation is cancelled in the kernel, and the call still waits for the kernel to
//! let go of the buffer before it returns: a buffer on the caller's stack is never written after
//! the call returned. Timeouts cost no kernel timer each: they are entries in the worker's timer
//! heap, and the worker's one kernel wait sleeps until the earliest.
//!
//! # Things that still block the worker
//! `std::net`, `std::fs`, `std::io::stdin()` and other std I/O, `std::thread::sleep` and
//! `std::sync::Mutex` block the whole worker kernel thread, not only the green thread. Use the
//! types here, or wrap the call in [`crate::unblock`]. Do not hold std's `StdoutLock` or another
//! reentrant std lock across a blocking hilos call: another green thread of the same worker
//! kernel thread would then take the "same thread's" lock. hilos's own [`StdoutLock`],
//! [`StderrLock`] and [`StdinLock`] are per green thread.
//!
//! # Green threads stay on their worker
//! A green thread that has run stays on its worker kernel thread for good, and so do the
//! connections it serves. A server whose one accept loop spawns a green thread per connection
//! tends to keep most connections on the accept loop's worker (the spawner's worker runs the new
//! thread first when the accept loop parks).

pub(crate) mod op;
mod pipe;
mod stdio;
mod stream_lock;
pub(crate) mod unblock;

use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

pub use crate::driver::IoBackend;
pub use pipe::{PipeReader, PipeWriter, pipe};
/// std's own, so that `use hilos::io` can stand for `use std::io`: the error types and the
/// traits and adapters that block only as much as the reader or writer they wrap (hilos's park
/// only the calling green thread).
pub use std::io::{
    BufRead, BufReader, BufWriter, Bytes, Chain, Cursor, Empty, Error, ErrorKind, IntoInnerError,
    IoSlice, IoSliceMut, IsTerminal, LineWriter, Lines, Read, Repeat, Result, Seek, SeekFrom, Sink,
    Split, Take, Write, WriterPanicked, copy, empty, read_to_string, repeat, sink,
};
pub use stdio::{Stderr, StderrLock, Stdin, StdinLock, Stdout, StdoutLock, stderr, stdin, stdout};
pub use unblock::unblock;
pub(crate) use unblock::unblock_resolve;

/// The I/O backend of the runtime the caller runs on: `None` on a kernel thread that is not a
/// worker (see [`crate::Runtime::io_backend`]).
///
/// # Examples
/// ```
/// let rt = hilos::Runtime::builder().workers(1).build().unwrap();
/// let on_worker = rt.block_on(hilos::io::current_backend);
/// assert_eq!(on_worker, Some(rt.io_backend()));
/// // The main thread is not a worker.
/// assert_eq!(hilos::io::current_backend(), None);
/// ```
pub fn current_backend() -> Option<IoBackend> {
    crate::driver::current_backend()
}

/// Waits until `fd` is readable (or has hung up, or has an error), or until `timeout` passes,
/// which gives an error of kind [`std::io::ErrorKind::TimedOut`]. `None`: no timeout.
///
/// This is the way to wait on a descriptor hilos does not own (a C library's socket, an inotify
/// descriptor): only the calling green thread waits. Descriptors that are always ready, such as
/// regular files, return at once.
///
/// # Examples
/// ```
/// use std::io::Write;
/// let (r, mut w) = hilos::io::pipe().unwrap();
/// let h = hilos::spawn(move || hilos::io::wait_readable(&r, None));
/// w.write_all(b"x").unwrap();
/// h.join().unwrap().unwrap();
/// ```
pub fn wait_readable(fd: impl AsFd, timeout: Option<Duration>) -> std::io::Result<()> {
    wait(fd.as_fd().as_raw_fd(), op::Interest::Read, timeout)
}

/// As [`wait_readable`], for writability.
///
/// # Examples
/// ```
/// use std::io::{ErrorKind, Write};
/// use std::time::Duration;
///
/// let (a, _b) = hilos::net::UnixStream::pair().unwrap();
/// let h = hilos::spawn(move || {
///     hilos::io::wait_writable(&a, None).unwrap(); // room in the buffer: ready at once
///     a.set_nonblocking(true).unwrap();
///     while (&a).write(&[0; 4096]).is_ok() {} // fill the buffer
///     hilos::io::wait_writable(&a, Some(Duration::from_millis(10)))
/// });
/// assert_eq!(h.join().unwrap().unwrap_err().kind(), ErrorKind::TimedOut);
/// ```
pub fn wait_writable(fd: impl AsFd, timeout: Option<Duration>) -> std::io::Result<()> {
    wait(fd.as_fd().as_raw_fd(), op::Interest::Write, timeout)
}

fn wait(
    fd: std::os::fd::RawFd,
    interest: op::Interest,
    timeout: Option<Duration>,
) -> std::io::Result<()> {
    if op::wait_ready(fd, interest, crate::task::IoOp::Poll, op::deadline(timeout))? {
        Ok(())
    } else {
        Err(op::timeout_error(std::io::ErrorKind::TimedOut))
    }
}
