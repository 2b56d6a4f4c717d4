//! The `hook` feature: libc's blocking calls, interposed, so that code hilos did not write (std's
//! `net`, `fs`, `io::stdin`, `thread::sleep`, C libraries) parks only the calling green thread.
//!
//! # The problem
//! A green thread that calls a blocking libc function (`recv` inside `std::net`, `nanosleep`
//! inside `std::thread::sleep`, `read` inside a C library) blocks its worker kernel thread, and
//! with it every other green thread of that worker; two such calls waiting on each other on the
//! workers of one runtime hang it.
//!
//! # The design
//! With the feature, hilos defines the functions below with `#[unsafe(no_mangle)]`: the
//! executable's definition wins over libc's for every caller in the program that is linked into
//! it (std, Rust crates, static C code). Each definition first tests whether a green thread is
//! running on this kernel thread (one thread-local load, `task::on_green`). Anywhere else (kernel
//! threads, the workers' scheduler contexts, the blocking pool, a green thread that may not
//! switch) it calls libc's own definition ([`next`], found with `dlsym(RTLD_NEXT)`), so the
//! contract there is libc's exactly. hilos's own I/O calls the kernel through `crate::real` and
//! never reaches these definitions.
//!
//! On a green thread ([`green`]):
//! - **Reads and receives** (`read`, `readv`, `recv`, `recvfrom`, `recvmsg`) on io_uring: the
//!   caller's own non-blocking mode (`O_NONBLOCK` by `fcntl`, `MSG_DONTWAIT` in the flags)
//!   passes through to libc; otherwise the ring performs the call (`Read`, `Recv`, `RecvMsg`),
//!   so the kernel receives when data arrives and one `fcntl` is the only system call made here,
//!   as `hilos::net` reads. A socket's `SO_RCVTIMEO` bounds the wait (then `EAGAIN`, as libc's),
//!   read with `getsockopt` only while some socket of the process may have a timeout (`timeo`:
//!   `setsockopt` is interposed to know). `MSG_WAITALL` is the kernel's.
//!   Before this design a receive tried `MSG_DONTWAIT`, then `fcntl`, `getsockopt`, a readiness
//!   wait and the call again: the std echo server on green threads ran at 0.76-0.84x
//!   `hilos::net`'s throughput (harness, 100 to 10,000 connections), 4 system calls more per
//!   round trip.
//! - **Sends** (`send`, `sendto`, `sendmsg`, and `write`/`writev` on a socket), and receives on
//!   the epoll fallback: a non-blocking attempt (`MSG_DONTWAIT`); on `EAGAIN`, the caller's own
//!   non-blocking mode returns `EAGAIN` at once; otherwise the green thread waits for readiness
//!   through the worker's driver until `SO_SNDTIMEO` / `SO_RCVTIMEO` (for the whole call, not
//!   per wait), after which the call fails with `EAGAIN` (or returns what it sent). A send
//!   goes on until all of it is sent, as on a blocking stream socket (`sendmsg` and `writev` go
//!   on from a copy of the vector); `MSG_WAITALL` receives on a stream socket likewise.
//! - **Other descriptors** (pipes, terminals, eventfds, regular files): `O_NONBLOCK` passes
//!   through; otherwise io_uring performs the call itself; the epoll fallback waits for readiness
//!   then calls (pipes, terminals) or runs the call on the blocking pool (regular files and
//!   other descriptors epoll cannot watch).
//! - `accept`/`connect`: the ring's operation with the socket timeout as deadline; on the epoll
//!   fallback, readiness then `accept4`, and `connect` on the blocking pool.
//! - `poll`/`ppoll`: a zero-timeout poll first; then the green thread waits on the one
//!   descriptor, or on a temporary epoll instance holding all of them, and polls again.
//! - The sleep family parks on the worker's timers (an absolute deadline is approached in steps
//!   that read the clock again, so a change of the realtime clock is followed within 250 ms);
//!   `getaddrinfo` runs on the resolver pool.
//! - `setsockopt` is interposed on every thread only to note socket timeouts (`timeo`).
//! - Writes to descriptors 1 and 2 pass through: `print!` holds std's stdout lock across the
//!   write, and a sibling printing meanwhile would block the worker on that lock while the
//!   holder waits to be resumed by the same worker.
//!
//! # What is not interposed, and hazards
//! - Futex waits (`std::sync`, `parking_lot`, `std::thread::park`): not interposed. hilos's own
//!   short critical sections (the wait queues' spin/parking_lot locks, held for a few
//!   instructions by workers and kernel threads alike) rely on a futex blocking the kernel thread;
//!   a waiter that parked a green thread instead while the holder is a green thread of the same
//!   worker would wait for itself. The watchdog names a green thread stuck in `futex`.
//! - glibc-internal I/O (`fread`/`fgets` on a `FILE*`, `system`, DNS inside `getaddrinfo`) calls
//!   glibc's hidden aliases, not these symbols.
//! - Signals interrupt the worker kernel thread, not a parked green thread: a hooked call never
//!   fails with `EINTR` on its own (as with `SA_RESTART`), except where an attempt returns it.
//! - On the epoll fallback, two green threads of different workers waiting on one *blocking*
//!   pipe or listening socket may both be told it is ready; the loser of the race then blocks
//!   its worker in the system call (io_uring has no such race: the kernel performs the call).
//! - A descriptor closed by another thread while a green thread waits on it: as with libc on
//!   Linux, the wait goes on until a timeout (the kernel keeps the open file alive).
//! - A socket timeout set by a raw `setsockopt` system call, or by another process on a socket
//!   shared with this one, after the hook first checked the process's descriptors, is not seen
//!   (`timeo`): the call waits without it.
//! - Only dynamically linked glibc programs (the real functions are found with `dlsym`).
//! - Shared libraries, `dlopen`ed ones included, are intercepted: the linker puts an
//!   executable's definition of a symbol a linked shared library (libc) also defines into the
//!   executable's dynamic symbol table, which the dynamic linker searches first.

mod dns;
mod fdio;
mod next;
mod poll;
mod sleep;
mod sock;
mod timeo;

use std::io;
use std::time::Instant;

use libc::{c_int, ssize_t};

use crate::io::op::{self, Mode};
use crate::task;

/// The mode to serve a hooked call in, or `None` to pass it through to libc.
#[inline(always)]
fn green() -> Option<Mode> {
    if !task::on_green() {
        return None;
    }
    green_slow()
}

#[inline(never)]
fn green_slow() -> Option<Mode> {
    match op::mode() {
        Mode::Blocking => None,
        m => Some(m),
    }
}

fn set_errno(e: c_int) {
    // SAFETY: glibc's errno location is the calling thread's (the green thread's own with
    // per-green thread-locals).
    unsafe { *libc::__errno_location() = e };
}

fn errno() -> c_int {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `-1` with errno set from `e`.
fn fail(e: &io::Error) -> ssize_t {
    set_errno(e.raw_os_error().unwrap_or(libc::EIO));
    -1
}

/// libc's convention for an `io::Result`.
fn ret(r: io::Result<usize>) -> ssize_t {
    match r {
        Ok(n) => n as ssize_t,
        Err(e) => fail(&e),
    }
}

/// The descriptor's status flags (`fcntl(F_GETFL)`), `None` if it is not open.
fn status_flags(fd: c_int) -> Option<c_int> {
    // SAFETY: fcntl with F_GETFL takes no pointer.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    (fl >= 0).then_some(fl)
}

/// Whether the caller made `fd` non-blocking (or it is not open): such calls pass through.
fn caller_nonblocking(fd: c_int) -> bool {
    status_flags(fd).is_none_or(|fl| fl & libc::O_NONBLOCK != 0)
}

/// The socket timeout `opt` (`SO_RCVTIMEO`, `SO_SNDTIMEO`) of `fd` as a deadline from now.
fn sock_deadline(fd: c_int, opt: c_int) -> Option<Instant> {
    if !timeo::maybe() {
        return None;
    }
    op::deadline(timeo::timeout(fd, opt))
}

/// Asserts that raw pointers may travel to a pool thread: the green thread that owns what they
/// point at waits for the job (see `crate::unblock`).
struct SendPtrs<T>(T);
// SAFETY: only built around pointers into memory the waiting caller keeps alive and untouched
// until the pool job has finished.
unsafe impl<T> Send for SendPtrs<T> {}
