//! Descriptor I/O: `read`, `readv`, `pread(64)`, `preadv(64)`, `write`, `writev`, `pwrite(64)`,
//! `pwritev(64)` (module doc of `hook` for the design). `read`/`write` and their vector forms
//! on a socket behave as `recv`/`send`; on anything else the ring performs the call, or the epoll
//! fallback waits for readiness or uses the blocking pool.

use io_uring::{opcode, squeue, types};
use libc::{c_int, c_void, iovec, off_t, size_t, ssize_t};

use super::sock::{CallDeadline, attempt_loop, ring_len, ring_receive, send_rest, transfer};
use super::{SendPtrs, caller_nonblocking, errno, green, next, ret, set_errno};
use crate::io::op::{self, Interest, Mode};
use crate::task::IoOp;

/// The file position, for the ring's read and write at the current offset.
const CUR: u64 = u64::MAX;

/// A call on a descriptor that is not a socket, made on a green thread in `mode`: `sqe()` on the
/// ring, or `call` (libc's blocking call) after readiness or on the blocking pool.
fn file_call(
    fd: c_int,
    mode: Mode,
    interest: Interest,
    sqe: impl Fn() -> squeue::Entry,
    mut call: impl FnMut() -> ssize_t + Send,
) -> ssize_t {
    if caller_nonblocking(fd) {
        return call();
    }
    if mode == Mode::Uring {
        let what = file_op_kind(interest);
        // SAFETY: in Uring mode; the entry's pointers are the hooked call's arguments, valid
        // until it returns, which is after the completion.
        return ret(unsafe { op::ring_op(op::io_state(what, fd), sqe) });
    }
    // SAFETY: an all-zero `stat` is valid; fstat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is live.
    let pollable = unsafe { libc::fstat(fd, &mut st) } == 0
        && matches!(
            st.st_mode & libc::S_IFMT,
            libc::S_IFIFO | libc::S_IFCHR | libc::S_IFSOCK
        );
    if pollable {
        let what = file_op_kind(interest);
        if let Err(e) = op::wait_ready(fd, interest, what, None) {
            return super::fail(&e);
        }
        return call();
    }
    let (r, e) = crate::unblock(move || (call(), errno()));
    if r < 0 {
        set_errno(e);
    }
    r
}

/// `read`/`readv`/`writev` on a green thread: `attempt` (the socket call with `MSG_DONTWAIT`)
/// first; a socket then waits as `recv`/`send` do, anything else goes to [`file_call`].
fn socket_or_file(
    fd: c_int,
    mode: Mode,
    interest: Interest,
    mut attempt: impl FnMut() -> ssize_t,
    sqe: impl Fn() -> squeue::Entry,
    call: impl FnMut() -> ssize_t + Send,
) -> ssize_t {
    let r = attempt();
    if r >= 0 {
        return r;
    }
    let opt = match interest {
        Interest::Read => libc::SO_RCVTIMEO,
        Interest::Write => libc::SO_SNDTIMEO,
    };
    match errno() {
        libc::ENOTSOCK => file_call(fd, mode, interest, sqe, call),
        libc::EAGAIN => attempt_loop(fd, interest, opt, &mut CallDeadline::default(), attempt),
        _ => r,
    }
}

/// Makes `call` sendable to a pool thread: it only captures the hooked call's pointers, which
/// stay valid while the caller waits for the job.
fn sendable<F: FnMut() -> ssize_t>(call: F) -> impl FnMut() -> ssize_t + Send {
    let mut c = SendPtrs(call);
    move || {
        // The whole wrapper is captured, not its (unsendable) field.
        let c = &mut c;
        (c.0)()
    }
}

/// `read(2)`.
///
/// # Safety
/// As libc's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t {
    let Some(mode) = green() else {
        // SAFETY: as libc's.
        return unsafe { next::read(fd, buf, n) };
    };
    let sqe = || {
        opcode::Read::new(types::Fd(fd), buf.cast(), ring_len(n))
            .offset(CUR)
            .build()
    };
    if mode == Mode::Uring {
        let passthrough = || {
            // SAFETY: the caller's buffer, as libc's.
            unsafe { next::read(fd, buf, n) }
        };
        return ring_receive(fd, IoOp::Read, sqe(), passthrough);
    }
    socket_or_file(
        fd,
        mode,
        Interest::Read,
        // SAFETY: the caller's buffer.
        || unsafe { next::recv(fd, buf, n, libc::MSG_DONTWAIT) },
        sqe,
        // SAFETY: the caller's buffer.
        sendable(|| unsafe { next::read(fd, buf, n) }),
    )
}

/// `write(2)`. Descriptors 1 and 2 pass through (module doc).
///
/// # Safety
/// As libc's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, n: size_t) -> ssize_t {
    let mode = match green() {
        Some(m) if fd > 2 => m,
        // SAFETY: as libc's.
        _ => return unsafe { next::write(fd, buf, n) },
    };
    // SAFETY: the caller's buffer.
    let r = unsafe { next::send(fd, buf, n, libc::MSG_DONTWAIT) };
    if r >= 0 && r as usize == n {
        return r;
    }
    match errno() {
        _ if r >= 0 => {
            let sent = r as usize;
            let rest = transfer(
                fd,
                Interest::Write,
                libc::SO_SNDTIMEO,
                n - sent,
                true,
                |d| {
                    // SAFETY: the caller's buffer, from offset sent + d < n.
                    unsafe {
                        next::send(
                            fd,
                            buf.cast::<u8>().add(sent + d).cast(),
                            n - sent - d,
                            libc::MSG_DONTWAIT,
                        )
                    }
                },
            );
            (sent as ssize_t) + rest.max(0)
        }
        libc::ENOTSOCK => file_call(
            fd,
            mode,
            Interest::Write,
            || {
                opcode::Write::new(types::Fd(fd), buf.cast(), ring_len(n))
                    .offset(CUR)
                    .build()
            },
            // SAFETY: the caller's buffer.
            sendable(|| unsafe { next::write(fd, buf, n) }),
        ),
        libc::EAGAIN => transfer(fd, Interest::Write, libc::SO_SNDTIMEO, n, true, |d| {
            // SAFETY: the caller's buffer, from offset d < n.
            unsafe {
                next::send(
                    fd,
                    buf.cast::<u8>().add(d).cast(),
                    n - d,
                    libc::MSG_DONTWAIT,
                )
            }
        }),
        _ => r,
    }
}

/// A `msghdr` carrying only a vector, for `readv`/`writev` on a socket.
fn vec_msg(iov: *const iovec, n: c_int) -> libc::msghdr {
    // SAFETY: an all-zero msghdr is valid (no address, no control data).
    let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
    m.msg_iov = iov.cast_mut();
    m.msg_iovlen = n.max(0) as _;
    m
}

/// `readv(2)`.
///
/// # Safety
/// As libc's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn readv(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t {
    let Some(mode) = green() else {
        // SAFETY: as libc's.
        return unsafe { next::readv(fd, iov, n) };
    };
    let sqe = || {
        opcode::Readv::new(types::Fd(fd), iov, n as u32)
            .offset(CUR)
            .build()
    };
    if mode == Mode::Uring {
        let passthrough = || {
            // SAFETY: the caller's vector, as libc's.
            unsafe { next::readv(fd, iov, n) }
        };
        return ring_receive(fd, IoOp::Read, sqe(), passthrough);
    }
    let mut m = vec_msg(iov, n);
    socket_or_file(
        fd,
        mode,
        Interest::Read,
        // SAFETY: the caller's vector.
        || unsafe { next::recvmsg(fd, &mut m, libc::MSG_DONTWAIT) },
        sqe,
        // SAFETY: the caller's vector.
        sendable(|| unsafe { next::readv(fd, iov, n) }),
    )
}

/// `writev(2)`. Descriptors 1 and 2 pass through (module doc); a partial send of a vector on a
/// socket is returned as it is.
///
/// # Safety
/// As libc's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn writev(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t {
    let mode = match green() {
        Some(m) if fd > 2 => m,
        // SAFETY: as libc's.
        _ => return unsafe { next::writev(fd, iov, n) },
    };
    let m = vec_msg(iov, n);
    // No MSG_NOSIGNAL: writev raises SIGPIPE on a closed connection, and so does this.
    let fl = libc::MSG_DONTWAIT;
    // SAFETY: the caller's vector.
    let first = unsafe { next::sendmsg(fd, &m, fl) };
    if first < 0 && errno() == libc::ENOTSOCK {
        return file_call(
            fd,
            mode,
            Interest::Write,
            || {
                opcode::Writev::new(types::Fd(fd), iov, n as u32)
                    .offset(CUR)
                    .build()
            },
            // SAFETY: the caller's vector.
            sendable(|| unsafe { next::writev(fd, iov, n) }),
        );
    }
    // SAFETY: `m` holds the caller's vector, readable as writev requires.
    unsafe { send_rest(fd, &m, fl, first) }
}

/// Defines a positioned call (`pread`, `pwritev`...): it applies to seekable files only, so no
/// socket attempt comes first.
macro_rules! positioned {
    ($name:ident, $buf:ty, $ptr:ty, $op:ident, $interest:ident) => {
        /// As libc's function of this name.
        ///
        /// # Safety
        /// As libc's.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(fd: c_int, buf: $buf, n: $ptr, off: off_t) -> ssize_t {
            let Some(mode) = green().filter(|_| off >= 0) else {
                // SAFETY: as libc's (a negative offset is its EINVAL; the ring would read it as
                // "the current position").
                return unsafe { next::$name(fd, buf, n, off) };
            };
            file_call(
                fd,
                mode,
                Interest::$interest,
                || {
                    // A negative vector count becomes a huge one: the kernel's EINVAL, as libc's.
                    opcode::$op::new(types::Fd(fd), buf.cast(), ring_len(n as usize))
                        .offset(off as u64)
                        .build()
                },
                // SAFETY: the caller's buffer.
                sendable(|| unsafe { next::$name(fd, buf, n, off) }),
            )
        }
    };
}

positioned!(pread, *mut c_void, size_t, Read, Read);
positioned!(pread64, *mut c_void, size_t, Read, Read);
positioned!(pwrite, *const c_void, size_t, Write, Write);
positioned!(pwrite64, *const c_void, size_t, Write, Write);
positioned!(preadv, *const iovec, c_int, Readv, Read);
positioned!(preadv64, *const iovec, c_int, Readv, Read);
positioned!(pwritev, *const iovec, c_int, Writev, Write);
positioned!(pwritev64, *const iovec, c_int, Writev, Write);

/// How a wait on a non-socket descriptor is named in thread dumps.
fn file_op_kind(interest: Interest) -> IoOp {
    match interest {
        Interest::Read => IoOp::Read,
        Interest::Write => IoOp::Write,
    }
}
