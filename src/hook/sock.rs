//! Sockets: `recv`, `recvfrom`, `recvmsg`, `send`, `sendto`, `sendmsg`, `accept`, `accept4`,
//! `connect` (module doc of `hook` for the design).

use std::time::Instant;

use io_uring::{opcode, types};
use libc::{c_int, c_void, msghdr, size_t, sockaddr, socklen_t, ssize_t};

use super::{SendPtrs, caller_nonblocking, errno, fail, green, next, set_errno, sock_deadline};
use crate::io::op::{self, Interest, Mode};
use crate::task::IoOp;

/// Runs the non-blocking attempt `attempt` (a socket call with `MSG_DONTWAIT`) until it does
/// not fail with `EAGAIN`, waiting for `interest` between attempts. The caller's own
/// non-blocking mode, or the socket timeout `opt` running out, gives `EAGAIN`.
pub(super) fn attempt_loop(
    fd: c_int,
    interest: Interest,
    opt: c_int,
    mut attempt: impl FnMut() -> ssize_t,
) -> ssize_t {
    let mut deadline: Option<Option<Instant>> = None;
    loop {
        let r = attempt();
        if r >= 0 || errno() != libc::EAGAIN {
            return r;
        }
        let dl = match deadline {
            Some(d) => d,
            None => {
                if caller_nonblocking(fd) {
                    set_errno(libc::EAGAIN);
                    return -1;
                }
                *deadline.insert(sock_deadline(fd, opt))
            }
        };
        let what = match interest {
            Interest::Read => IoOp::Recv,
            Interest::Write => IoOp::Send,
        };
        match op::wait_ready(fd, interest, what, dl) {
            Ok(true) => {}
            Ok(false) => {
                set_errno(libc::EAGAIN);
                return -1;
            }
            Err(e) => return fail(&e),
        }
    }
}

/// As [`attempt_loop`], repeated until `len` bytes are done when `all` (a blocking stream
/// socket's send, `MSG_WAITALL`): `attempt(done)` transfers from offset `done`. Progress made
/// before an error or timeout is returned as a count, as the kernel does.
pub(super) fn transfer(
    fd: c_int,
    interest: Interest,
    opt: c_int,
    len: usize,
    all: bool,
    mut attempt: impl FnMut(usize) -> ssize_t,
) -> ssize_t {
    let mut done = 0usize;
    loop {
        let r = attempt_loop(fd, interest, opt, || attempt(done));
        if r < 0 {
            return if done > 0 { done as ssize_t } else { r };
        }
        done += r as usize;
        if !all || r == 0 || done >= len {
            return done as ssize_t;
        }
    }
}

/// Whether a socket call with `flags` is served here: on a green thread, unless the caller asked
/// for `MSG_DONTWAIT`.
fn hooked(flags: c_int) -> bool {
    flags & libc::MSG_DONTWAIT == 0 && green().is_some()
}

/// `recv(2)`.
///
/// # Safety
/// As libc's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn recv(fd: c_int, buf: *mut c_void, n: size_t, flags: c_int) -> ssize_t {
    // SAFETY: as libc's.
    unsafe {
        recvfrom(
            fd,
            buf,
            n,
            flags,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    }
}

/// `recvfrom(2)`.
///
/// # Safety
/// As libc's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn recvfrom(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    alen: *mut socklen_t,
) -> ssize_t {
    if !hooked(flags) {
        // SAFETY: as libc's.
        return unsafe { next::recvfrom(fd, buf, n, flags, addr, alen) };
    }
    let all = flags & libc::MSG_WAITALL != 0;
    let fl = (flags & !libc::MSG_WAITALL) | libc::MSG_DONTWAIT;
    transfer(fd, Interest::Read, libc::SO_RCVTIMEO, n, all, |done| {
        // SAFETY: the caller's buffer, from offset `done` < n; address out-parameters as given.
        unsafe {
            next::recvfrom(
                fd,
                buf.cast::<u8>().add(done).cast(),
                n - done,
                fl,
                addr,
                alen,
            )
        }
    })
}

/// `recvmsg(2)` (`MSG_WAITALL` is passed on to the kernel, which honours it per attempt).
///
/// # Safety
/// As libc's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t {
    if !hooked(flags) {
        // SAFETY: as libc's.
        return unsafe { next::recvmsg(fd, msg, flags) };
    }
    attempt_loop(fd, Interest::Read, libc::SO_RCVTIMEO, || {
        // SAFETY: the caller's message header.
        unsafe { next::recvmsg(fd, msg, flags | libc::MSG_DONTWAIT) }
    })
}

/// `send(2)`.
///
/// # Safety
/// As libc's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn send(fd: c_int, buf: *const c_void, n: size_t, flags: c_int) -> ssize_t {
    // SAFETY: as libc's.
    unsafe { sendto(fd, buf, n, flags, std::ptr::null(), 0) }
}

/// `sendto(2)`: on a green thread, all of `buf` is sent before it returns, as on a blocking
/// stream socket (datagrams go whole or not at all).
///
/// # Safety
/// As libc's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sendto(
    fd: c_int,
    buf: *const c_void,
    n: size_t,
    flags: c_int,
    addr: *const sockaddr,
    alen: socklen_t,
) -> ssize_t {
    if !hooked(flags) {
        // SAFETY: as libc's.
        return unsafe { next::sendto(fd, buf, n, flags, addr, alen) };
    }
    let fl = flags | libc::MSG_DONTWAIT;
    transfer(fd, Interest::Write, libc::SO_SNDTIMEO, n, true, |done| {
        // SAFETY: the caller's buffer, from offset `done` < n.
        unsafe {
            next::sendto(
                fd,
                buf.cast::<u8>().add(done).cast(),
                n - done,
                fl,
                addr,
                alen,
            )
        }
    })
}

/// `sendmsg(2)`. A partial send of a vector is returned as it is (the caller's `iovec`s are
/// not rewritten to go on).
///
/// # Safety
/// As libc's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    if !hooked(flags) {
        // SAFETY: as libc's.
        return unsafe { next::sendmsg(fd, msg, flags) };
    }
    attempt_loop(fd, Interest::Write, libc::SO_SNDTIMEO, || {
        // SAFETY: the caller's message header.
        unsafe { next::sendmsg(fd, msg, flags | libc::MSG_DONTWAIT) }
    })
}

/// `accept(2)`.
///
/// # Safety
/// As libc's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn accept(fd: c_int, addr: *mut sockaddr, alen: *mut socklen_t) -> c_int {
    // SAFETY: as libc's.
    unsafe { accept4(fd, addr, alen, 0) }
}

/// `accept4(2)`: the ring's accept (until `SO_RCVTIMEO`), or readiness then the call on the
/// epoll fallback.
///
/// # Safety
/// As libc's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn accept4(
    fd: c_int,
    addr: *mut sockaddr,
    alen: *mut socklen_t,
    flags: c_int,
) -> c_int {
    let Some(mode) = green().filter(|_| !caller_nonblocking(fd)) else {
        // SAFETY: as libc's.
        return unsafe { next::accept4(fd, addr, alen, flags) };
    };
    let deadline = sock_deadline(fd, libc::SO_RCVTIMEO);
    if mode == Mode::Uring {
        let e = opcode::Accept::new(types::Fd(fd), addr, alen)
            .flags(flags)
            .build();
        return ring_wait(e, op::io_state(IoOp::Accept, fd), deadline, libc::EAGAIN);
    }
    loop {
        match op::wait_ready(fd, Interest::Read, IoOp::Accept, deadline) {
            Ok(true) => {}
            Ok(false) => {
                set_errno(libc::EAGAIN);
                return -1;
            }
            Err(e) => return fail(&e) as c_int,
        }
        // SAFETY: as libc's.
        let r = unsafe { next::accept4(fd, addr, alen, flags) };
        if r >= 0 || errno() != libc::EAGAIN {
            return r;
        }
    }
}

/// Submits `e` and waits for it until `deadline`, resubmitting on `EINTR`; at the deadline the
/// call fails with `timeout_errno`. Returns the result in libc's convention.
fn ring_wait(
    e: io_uring::squeue::Entry,
    why: crate::task::ThreadState,
    deadline: Option<Instant>,
    timeout_errno: c_int,
) -> c_int {
    loop {
        // SAFETY: in Uring mode (the callers'); the entry's pointers are the hooked call's
        // arguments, valid until it returns, which is after the completion.
        let (res, timed_out) = unsafe { op::submit_and_wait(e.clone(), deadline, why) };
        if res >= 0 {
            return res;
        }
        if timed_out {
            set_errno(timeout_errno);
            return -1;
        }
        if res != -libc::EINTR {
            set_errno(-res);
            return -1;
        }
    }
}

/// `connect(2)`: the ring's connect until `SO_SNDTIMEO` (then `EINPROGRESS`, as Linux), or
/// the call itself on the blocking pool on the epoll fallback.
///
/// # Safety
/// As libc's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, alen: socklen_t) -> c_int {
    let Some(mode) = green().filter(|_| !caller_nonblocking(fd)) else {
        // SAFETY: as libc's.
        return unsafe { next::connect(fd, addr, alen) };
    };
    if mode == Mode::Uring {
        let deadline = sock_deadline(fd, libc::SO_SNDTIMEO);
        let e = opcode::Connect::new(types::Fd(fd), addr, alen).build();
        return ring_wait(
            e,
            op::io_state(IoOp::Connect, fd),
            deadline,
            libc::EINPROGRESS,
        );
    }
    let args = SendPtrs(addr);
    let (r, e) = crate::unblock(move || {
        let a = args;
        // SAFETY: the caller's address, valid while it waits for this job.
        let r = unsafe { next::connect(fd, a.0, alen) };
        (r, errno())
    });
    if r < 0 {
        set_errno(e);
    }
    r
}
