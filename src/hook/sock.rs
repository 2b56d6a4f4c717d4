//! Sockets: `recv`, `recvfrom`, `recvmsg`, `send`, `sendto`, `sendmsg`, `accept`, `accept4`,
//! `connect` (module doc of `hook` for the design).

use std::time::Instant;

use io_uring::{opcode, squeue, types};
use libc::{c_int, c_void, msghdr, size_t, sockaddr, socklen_t, ssize_t};

use super::{
    SendPtrs, caller_nonblocking, errno, fail, green, next, set_errno, sock_deadline, timeo,
};
use crate::io::op::{self, Interest, Mode};
use crate::task::IoOp;

/// The socket timeout of a call, read (`getsockopt`) the first time the call has to wait and
/// then kept: it bounds the whole call, as the kernel's does, not each wait.
#[derive(Default)]
pub(super) struct CallDeadline(Option<Option<Instant>>);

impl CallDeadline {
    fn get(&mut self, fd: c_int, opt: c_int) -> Option<Instant> {
        *self.0.get_or_insert_with(|| sock_deadline(fd, opt))
    }
}

/// Runs the non-blocking attempt `attempt` (a socket call with `MSG_DONTWAIT`) until it does
/// not fail with `EAGAIN`, waiting for `interest` between attempts. The caller's own
/// non-blocking mode, or the socket timeout `opt` running out (`deadline`), gives `EAGAIN`.
pub(super) fn attempt_loop(
    fd: c_int,
    interest: Interest,
    opt: c_int,
    deadline: &mut CallDeadline,
    mut attempt: impl FnMut() -> ssize_t,
) -> ssize_t {
    let mut checked = false;
    loop {
        let r = attempt();
        if r >= 0 || errno() != libc::EAGAIN {
            return r;
        }
        if !checked {
            if caller_nonblocking(fd) {
                set_errno(libc::EAGAIN);
                return -1;
            }
            checked = true;
        }
        let what = match interest {
            Interest::Read => IoOp::Recv,
            Interest::Write => IoOp::Send,
        };
        match op::wait_ready(fd, interest, what, deadline.get(fd, opt)) {
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
/// socket's send, `MSG_WAITALL`): `attempt(done)` transfers from offset `done`. The socket
/// timeout bounds the whole call. Progress made before an error or timeout is returned as a
/// count, as the kernel does.
pub(super) fn transfer(
    fd: c_int,
    interest: Interest,
    opt: c_int,
    len: usize,
    all: bool,
    mut attempt: impl FnMut(usize) -> ssize_t,
) -> ssize_t {
    let mut deadline = CallDeadline::default();
    let mut done = 0usize;
    loop {
        let r = attempt_loop(fd, interest, opt, &mut deadline, || attempt(done));
        if r < 0 {
            return if done > 0 { done as ssize_t } else { r };
        }
        done += r as usize;
        if !all || r == 0 || done >= len {
            return done as ssize_t;
        }
    }
}

/// A read or receive that the ring performs (io_uring mode): the kernel carries it out when data
/// arrives, with no attempt, readiness wait and second call from here (as `hilos::net` reads).
/// A descriptor the caller made non-blocking gets `passthrough` (libc's call) instead: the ring
/// would wait on it. A socket's `SO_RCVTIMEO` bounds the wait (`EAGAIN` after it); other
/// descriptors have none. `MSG_WAITALL` is left to the kernel, which completes a stream socket's
/// receive in pieces and keeps a datagram whole.
pub(super) fn ring_receive(
    fd: c_int,
    what: IoOp,
    sqe: squeue::Entry,
    passthrough: impl FnOnce() -> ssize_t,
) -> ssize_t {
    if caller_nonblocking(fd) {
        return passthrough();
    }
    let deadline = sock_deadline(fd, libc::SO_RCVTIMEO);
    ring_wait(sqe, op::io_state(what, fd), deadline, libc::EAGAIN) as ssize_t
}

/// The length of one ring operation on `n` bytes: the kernel transfers at most `MAX_RW_COUNT`
/// (2 GiB less a page) per call anyway, and the ring's length field is 32 bits.
pub(super) fn ring_len(n: size_t) -> u32 {
    n.min(0x7fff_f000) as u32
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
    let mode = match green() {
        Some(m) if flags & libc::MSG_DONTWAIT == 0 => m,
        // SAFETY: as libc's.
        _ => return unsafe { next::recvfrom(fd, buf, n, flags, addr, alen) },
    };
    let passthrough = || {
        // SAFETY: the caller's arguments, as libc's.
        unsafe { next::recvfrom(fd, buf, n, flags, addr, alen) }
    };
    if mode == Mode::Uring && addr.is_null() {
        let e = opcode::Recv::new(types::Fd(fd), buf.cast(), ring_len(n))
            .flags(flags)
            .build();
        return ring_receive(fd, IoOp::Recv, e, passthrough);
    }
    if mode == Mode::Uring {
        let mut iov = libc::iovec {
            iov_base: buf,
            iov_len: n,
        };
        // SAFETY: an all-zero msghdr is valid (no address, no control data).
        let mut m: msghdr = unsafe { std::mem::zeroed() };
        m.msg_name = addr.cast();
        // SAFETY: a non-null `alen` is the caller's readable length, as libc requires.
        m.msg_namelen = if alen.is_null() { 0 } else { unsafe { *alen } };
        m.msg_iov = &mut iov;
        m.msg_iovlen = 1;
        // `m` and `iov` live on this frame until the ring is done with them (ring_receive
        // returns after the completion).
        let e = opcode::RecvMsg::new(types::Fd(fd), &mut m)
            .flags(flags as u32)
            .build();
        let r = ring_receive(fd, IoOp::Recv, e, passthrough);
        if r >= 0 && !alen.is_null() {
            // SAFETY: the caller's writable length.
            unsafe { *alen = m.msg_namelen };
        }
        return r;
    }
    // Epoll: the kernel's MSG_WAITALL is stream sockets' only (a datagram comes whole).
    let all = flags & libc::MSG_WAITALL != 0 && is_stream(fd);
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

/// Whether `fd` is a stream socket (`SOCK_STREAM`).
fn is_stream(fd: c_int) -> bool {
    let mut ty: c_int = 0;
    let mut len = size_of::<c_int>() as socklen_t;
    // SAFETY: `ty` and `len` are live and of the sizes given.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&raw mut ty).cast(),
            &mut len,
        )
    };
    r == 0 && ty == libc::SOCK_STREAM
}

/// `recvmsg(2)`: the ring's receive in io_uring mode (`MSG_WAITALL` left to the kernel there);
/// on the epoll fallback, attempts and readiness waits (the kernel honours `MSG_WAITALL` per
/// attempt).
///
/// # Safety
/// As libc's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t {
    let passthrough = || {
        // SAFETY: the caller's arguments, as libc's.
        unsafe { next::recvmsg(fd, msg, flags) }
    };
    let r = match green() {
        Some(Mode::Uring) if flags & libc::MSG_DONTWAIT == 0 && !msg.is_null() => {
            // The caller's header stays valid until this returns, after the completion; the
            // kernel writes its lengths and flags back as recvmsg does.
            let e = opcode::RecvMsg::new(types::Fd(fd), msg)
                .flags(flags as u32)
                .build();
            ring_receive(fd, IoOp::Recv, e, passthrough)
        }
        Some(_) if flags & libc::MSG_DONTWAIT == 0 => attempt_loop(
            fd,
            Interest::Read,
            libc::SO_RCVTIMEO,
            &mut CallDeadline::default(),
            || {
                // SAFETY: the caller's message header.
                unsafe { next::recvmsg(fd, msg, flags | libc::MSG_DONTWAIT) }
            },
        ),
        _ => passthrough(),
    };
    // SAFETY: after a successful recvmsg the caller's header holds the control data's length.
    if r >= 0 && !msg.is_null() && unsafe { (*msg).msg_controllen } > 0 {
        // Descriptors may have come with it, their timeouts set elsewhere (`timeo`).
        timeo::note();
    }
    r
}

/// `setsockopt(2)`, on every thread: notes a socket timeout being set (`timeo`), then libc's.
///
/// # Safety
/// As libc's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    value: *const c_void,
    len: socklen_t,
) -> c_int {
    if timeo::is_timeout_option(level, name) {
        timeo::note();
    }
    // SAFETY: as libc's.
    unsafe { next::setsockopt(fd, level, name, value, len) }
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

/// `sendmsg(2)`: on a green thread, all of the vector is sent before it returns, as on a
/// blocking stream socket (a datagram goes whole or not at all).
///
/// # Safety
/// As libc's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    if !hooked(flags) || msg.is_null() {
        // SAFETY: as libc's.
        return unsafe { next::sendmsg(fd, msg, flags) };
    }
    let fl = flags | libc::MSG_DONTWAIT;
    // SAFETY: the caller's message header.
    let first = unsafe { next::sendmsg(fd, msg, fl) };
    // SAFETY: the caller's message header, as libc requires it.
    unsafe { send_rest(fd, msg, fl, first) }
}

/// Goes on with a send of `msg` whose first non-blocking attempt (flags `fl`) returned `first`
/// (errno as it left it): waits and retries while it would block, then sends what a partial
/// send left, from a copy of the vector with the sent bytes skipped (control data and address
/// went with the first bytes). Returns the count sent, or `-1` with errno if nothing was.
///
/// # Safety
/// `msg` is a valid message header whose vector is readable, as for `sendmsg`.
pub(super) unsafe fn send_rest(
    fd: c_int,
    msg: *const msghdr,
    fl: c_int,
    first: ssize_t,
) -> ssize_t {
    let mut deadline = CallDeadline::default();
    let r = if first < 0 && errno() == libc::EAGAIN {
        attempt_loop(
            fd,
            Interest::Write,
            libc::SO_SNDTIMEO,
            &mut deadline,
            || {
                // SAFETY: the caller's message header.
                unsafe { next::sendmsg(fd, msg, fl) }
            },
        )
    } else {
        first
    };
    if r <= 0 {
        return r;
    }
    // SAFETY: the caller's header and vector (`msg_iovlen` entries), as sendmsg reads them.
    let iov: &[libc::iovec] = unsafe {
        let m = &*msg;
        if m.msg_iov.is_null() || m.msg_iovlen == 0 {
            &[]
        } else {
            // `msg_iovlen` is a size_t on glibc, an int elsewhere.
            #[allow(clippy::unnecessary_cast)]
            std::slice::from_raw_parts(m.msg_iov, m.msg_iovlen as usize)
        }
    };
    let total = iov.iter().fold(0usize, |a, v| a.saturating_add(v.iov_len));
    let mut done = r as usize;
    if done >= total {
        return r;
    }
    let mut rest = iov.to_vec();
    let mut first_left = 0;
    let mut skip = done;
    loop {
        while skip > 0 && first_left < rest.len() {
            let v = &mut rest[first_left];
            let k = skip.min(v.iov_len);
            // SAFETY: within the caller's buffer (k <= its length).
            v.iov_base = unsafe { v.iov_base.cast::<u8>().add(k).cast() };
            v.iov_len -= k;
            skip -= k;
            if v.iov_len == 0 {
                first_left += 1;
            }
        }
        // SAFETY: an all-zero msghdr is valid (no address, no control data).
        let mut m: msghdr = unsafe { std::mem::zeroed() };
        m.msg_iov = rest[first_left..].as_mut_ptr();
        m.msg_iovlen = (rest.len() - first_left) as _;
        let r = attempt_loop(
            fd,
            Interest::Write,
            libc::SO_SNDTIMEO,
            &mut deadline,
            || {
                // SAFETY: `m` describes the rest of the caller's buffers, live until we return.
                unsafe { next::sendmsg(fd, &m, fl) }
            },
        );
        if r <= 0 {
            return done as ssize_t;
        }
        done += r as usize;
        if done >= total {
            return done as ssize_t;
        }
        skip = r as usize;
    }
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
