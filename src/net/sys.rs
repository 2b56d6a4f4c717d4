//! Socket operations shared by the TCP, UDP and Unix types: each parks only a green caller (see
//! `io::op` for the modes) and honours an optional deadline.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use io_uring::{opcode, types};

use super::addr::RawAddr;
use crate::io::op::{self, Interest, Mode, io_state};
use crate::task::IoOp;

/// A socket's read and write timeouts, as std keeps them in `SO_RCVTIMEO`/`SO_SNDTIMEO`, and its
/// non-blocking flag, as std keeps it in `O_NONBLOCK`. Here they live in the object: hilos keeps
/// every socket's descriptor in non-blocking mode and waits for it itself, and the kernel ignores
/// the timeout options on non-blocking sockets.
#[derive(Default)]
pub(crate) struct Timeouts {
    read: AtomicU64,
    write: AtomicU64,
    nonblocking: AtomicBool,
}

fn to_nanos(d: Option<Duration>) -> io::Result<u64> {
    match d {
        None => Ok(0),
        Some(d) if d.is_zero() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot set a 0 duration timeout",
        )),
        Some(d) => Ok(d.as_nanos().clamp(1, u64::MAX as u128) as u64),
    }
}

fn from_nanos(n: u64) -> Option<Duration> {
    (n != 0).then(|| Duration::from_nanos(n))
}

impl Timeouts {
    pub(crate) fn with(read: Option<Duration>, write: Option<Duration>) -> Timeouts {
        let t = Timeouts::default();
        let _ = t.set_read(read);
        let _ = t.set_write(write);
        t
    }
    /// The same settings, for a clone of the socket.
    pub(crate) fn duplicate(&self) -> Timeouts {
        let t = Timeouts::with(self.read(), self.write());
        t.set_nonblocking(self.nonblocking());
        t
    }
    /// std's "non-blocking mode": calls that would wait fail with `WouldBlock` instead.
    pub(crate) fn set_nonblocking(&self, on: bool) {
        self.nonblocking.store(on, Ordering::Relaxed);
    }
    pub(crate) fn nonblocking(&self) -> bool {
        self.nonblocking.load(Ordering::Relaxed)
    }
    pub(crate) fn set_read(&self, d: Option<Duration>) -> io::Result<()> {
        self.read.store(to_nanos(d)?, Ordering::Relaxed);
        Ok(())
    }
    pub(crate) fn set_write(&self, d: Option<Duration>) -> io::Result<()> {
        self.write.store(to_nanos(d)?, Ordering::Relaxed);
        Ok(())
    }
    pub(crate) fn read(&self) -> Option<Duration> {
        from_nanos(self.read.load(Ordering::Relaxed))
    }
    pub(crate) fn write(&self) -> Option<Duration> {
        from_nanos(self.write.load(Ordering::Relaxed))
    }
    /// The deadline of a read starting now; in non-blocking mode, now (a single attempt).
    pub(crate) fn read_deadline(&self) -> Option<Instant> {
        if self.nonblocking() {
            return Some(Instant::now());
        }
        op::deadline(self.read())
    }
    /// The deadline of a write starting now; in non-blocking mode, now (a single attempt).
    pub(crate) fn write_deadline(&self) -> Option<Instant> {
        if self.nonblocking() {
            return Some(Instant::now());
        }
        op::deadline(self.write())
    }
}

const WB: io::ErrorKind = io::ErrorKind::WouldBlock;

fn clamp(len: usize) -> usize {
    len.min(i32::MAX as usize)
}

/// A new non-blocking, close-on-exec socket.
pub(crate) fn socket(domain: libc::c_int, ty: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain system call.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether the descriptor has `O_NONBLOCK` set.
pub(crate) fn is_nonblocking(fd: RawFd) -> bool {
    // SAFETY: plain fcntl call.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    fl >= 0 && fl & libc::O_NONBLOCK != 0
}

/// Sets or clears `O_NONBLOCK` on a descriptor.
pub(crate) fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: plain fcntl calls.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl < 0 {
            return Err(io::Error::last_os_error());
        }
        let nfl = if on {
            fl | libc::O_NONBLOCK
        } else {
            fl & !libc::O_NONBLOCK
        };
        if nfl != fl && libc::fcntl(fd, libc::F_SETFL, nfl) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `IORING_RECVSEND_POLL_FIRST` (Linux 5.19): arm the poll before trying the receive. A reader
/// usually asks before its data arrived, so the first attempt would fail anyway. Kernels without
/// it reject the flag with `EINVAL`; it is then dropped for the rest of the process.
const RECVSEND_POLL_FIRST: u16 = 1;
static POLL_FIRST: AtomicBool = AtomicBool::new(true);

/// `recv(2)` with `flags` (e.g. `MSG_PEEK`).
pub(crate) fn recv(
    fd: RawFd,
    buf: &mut [u8],
    flags: libc::c_int,
    deadline: Option<Instant>,
) -> io::Result<usize> {
    let (p, len) = (buf.as_mut_ptr(), clamp(buf.len()));
    loop {
        let poll_first = POLL_FIRST.load(Ordering::Relaxed);
        let prio = if poll_first { RECVSEND_POLL_FIRST } else { 0 };
        // SAFETY: `buf` is borrowed for the whole call, which returns only after the kernel is
        // done with it.
        let r = unsafe {
            op::op(
                fd,
                Interest::Read,
                crate::task::IoOp::Recv,
                deadline,
                WB,
                || {
                    opcode::Recv::new(types::Fd(fd), p, len as u32)
                        .flags(flags)
                        .ioprio(prio)
                        .build()
                },
                || op::cvt(crate::real::recv(fd, p.cast(), len, flags)),
            )
        };
        match r {
            Err(e) if poll_first && e.raw_os_error() == Some(libc::EINVAL) => {
                POLL_FIRST.store(false, Ordering::Relaxed);
            }
            r => return r,
        }
    }
}

/// `send(2)`, without `SIGPIPE`.
pub(crate) fn send(fd: RawFd, buf: &[u8], deadline: Option<Instant>) -> io::Result<usize> {
    let (p, len) = (buf.as_ptr(), clamp(buf.len()));
    let flags = libc::MSG_NOSIGNAL;
    // SAFETY: `buf` is borrowed for the whole call, which returns only after the kernel is done.
    unsafe {
        op::op(
            fd,
            Interest::Write,
            crate::task::IoOp::Send,
            deadline,
            WB,
            || {
                opcode::Send::new(types::Fd(fd), p, len as u32)
                    .flags(flags)
                    .build()
            },
            || op::cvt(crate::real::send(fd, p.cast(), len, flags)),
        )
    }
}

/// `recvmsg(2)` into `bufs`; fills `from` with the sender's address if given. Returns the
/// length and the message flags.
pub(crate) fn recvmsg(
    fd: RawFd,
    bufs: &mut [IoSliceMut<'_>],
    flags: libc::c_int,
    from: Option<&mut RawAddr>,
    deadline: Option<Instant>,
) -> io::Result<(usize, libc::c_int)> {
    // SAFETY: all-zero is a valid msghdr.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = bufs.as_mut_ptr().cast();
    msg.msg_iovlen = bufs.len().min(1024) as _;
    let from: *mut RawAddr = from.map_or(std::ptr::null_mut(), |f| f);
    if !from.is_null() {
        // SAFETY: `from` comes from a live `&mut RawAddr`.
        unsafe {
            msg.msg_name = (*from).as_mut_ptr().cast();
            msg.msg_namelen = (*from).len;
        }
    }
    let mp: *mut libc::msghdr = &mut msg;
    // SAFETY: `msg` and what it points at (the slices, the address) live on this frame or are
    // borrowed for the whole call, which returns only after the kernel is done with them.
    let n = unsafe {
        op::op(
            fd,
            Interest::Read,
            crate::task::IoOp::Recv,
            deadline,
            WB,
            || {
                opcode::RecvMsg::new(types::Fd(fd), mp)
                    .flags(flags as u32)
                    .build()
            },
            || op::cvt(crate::real::recvmsg(fd, mp, flags)),
        )?
    };
    if !from.is_null() {
        // SAFETY: the caller's RawAddr outlives this call.
        unsafe { (*from).len = msg.msg_namelen };
    }
    Ok((n, msg.msg_flags))
}

/// `sendmsg(2)` of `bufs`, to `to` if given, without `SIGPIPE`.
pub(crate) fn sendmsg(
    fd: RawFd,
    bufs: &[IoSlice<'_>],
    to: Option<(*const libc::sockaddr, libc::socklen_t)>,
    deadline: Option<Instant>,
) -> io::Result<usize> {
    // SAFETY: all-zero is a valid msghdr.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = bufs.len().min(1024) as _;
    if let Some((p, len)) = to {
        msg.msg_name = p as *mut libc::c_void;
        msg.msg_namelen = len;
    }
    let mp: *const libc::msghdr = &msg;
    let flags = libc::MSG_NOSIGNAL;
    // SAFETY: as in recvmsg; the kernel only reads here.
    unsafe {
        op::op(
            fd,
            Interest::Write,
            crate::task::IoOp::Send,
            deadline,
            WB,
            || {
                opcode::SendMsg::new(types::Fd(fd), mp)
                    .flags(flags as u32)
                    .build()
            },
            || op::cvt(crate::real::sendmsg(fd, mp, flags)),
        )
    }
}

/// `accept4(2)`: a new non-blocking, close-on-exec socket and the peer's address.
pub(crate) fn accept(
    fd: RawFd,
    addr: &mut RawAddr,
    deadline: Option<Instant>,
) -> io::Result<OwnedFd> {
    let ap = addr.as_mut_ptr();
    let lp: *mut libc::socklen_t = &mut addr.len;
    let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: `addr` is borrowed for the whole call, which returns only after the kernel is done.
    let n = unsafe {
        op::op(
            fd,
            Interest::Read,
            crate::task::IoOp::Accept,
            deadline,
            WB,
            || {
                opcode::Accept::new(types::Fd(fd), ap, lp)
                    .flags(flags)
                    .build()
            },
            || op::cvt(crate::real::accept4(fd, ap, lp, flags) as isize),
        )?
    };
    // SAFETY: accept returned a fresh descriptor that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(n as RawFd) })
}

fn so_error(fd: RawFd) -> io::Result<()> {
    let mut err: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` and `len` are live and sized for SO_ERROR.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&raw mut err).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    if err != 0 {
        return Err(io::Error::from_raw_os_error(err));
    }
    Ok(())
}

/// `connect(2)` on a fresh non-blocking socket; at `deadline`, fails with `TimedOut`.
pub(crate) fn connect(
    fd: RawFd,
    addr: *const libc::sockaddr,
    len: libc::socklen_t,
    deadline: Option<Instant>,
) -> io::Result<()> {
    const TO: io::ErrorKind = io::ErrorKind::TimedOut;
    if op::mode() == Mode::Uring {
        let e = opcode::Connect::new(types::Fd(fd), addr, len).build();
        loop {
            // SAFETY: the caller keeps `addr` valid for the call, which returns only after the
            // kernel is done with it.
            let (res, timed_out) =
                unsafe { op::submit_and_wait(e.clone(), deadline, io_state(IoOp::Connect, fd)) };
            if res >= 0 {
                return Ok(());
            }
            if timed_out {
                return Err(op::timeout_error(TO));
            }
            match -res {
                libc::EINTR => continue,
                // Kernels that return the non-blocking socket's EINPROGRESS: wait below.
                libc::EINPROGRESS | libc::EALREADY | libc::EAGAIN => break,
                e => return Err(io::Error::from_raw_os_error(e)),
            }
        }
    } else {
        // SAFETY: the caller keeps `addr` valid for the call.
        let r = unsafe { crate::real::connect(fd, addr, len) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINPROGRESS | libc::EINTR | libc::EALREADY) => {}
            _ => return Err(e),
        }
    }
    if !op::wait_ready(fd, Interest::Write, IoOp::Connect, deadline)? {
        return Err(op::timeout_error(TO));
    }
    so_error(fd)
}
