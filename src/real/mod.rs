//! The real system calls behind the libc functions that the `hook` feature interposes.
//!
//! # The problem
//! With the `hook` feature, hilos defines `read`, `write`, `recv`, `poll`... for the whole
//! executable (`crate::hook`), and every call of `libc::read` anywhere in the program, hilos's own
//! included, reaches hilos's definition. hilos's I/O paths (the operations of `io::op`, the
//! drivers, the worker's eventfd, the stack-overflow handler) must reach the kernel instead, or a
//! hooked call would recurse into the machinery that implements it.
//!
//! # The design
//! hilos's own code calls these functions through this module. Without the feature they are
//! libc's, re-exported: the default build is unchanged. With it they are the system calls
//! themselves, through `libc::syscall` (glibc's `syscall` is not interposed): that is what glibc's
//! wrappers do for these calls apart from being pthread-cancellation points, which hilos's own
//! calls do not want; and a raw system call needs no symbol resolution, so it stays
//! async-signal-safe for the overflow handler. The hook's pass-through for user code uses glibc's
//! own functions instead (`hook::next`), so that code off green threads keeps libc's contract to
//! the letter.
//!
//! Same signatures and the same `-1`/errno convention as libc's.

#[cfg(not(feature = "hook"))]
pub(crate) use libc::{
    accept4, connect, poll, pread, pwrite, read, readv, recv, recvmsg, send, sendmsg, write, writev,
};

#[cfg(feature = "hook")]
pub(crate) use raw::*;

#[cfg(feature = "hook")]
#[allow(clippy::missing_safety_doc)] // The contracts are libc's, as the module doc says.
mod raw {
    use libc::{c_int, c_long, c_void, iovec, msghdr, nfds_t, off_t, pollfd, size_t, sockaddr};
    use libc::{socklen_t, ssize_t};

    /// `-1`/errno results of `syscall(2)` are already in libc's convention.
    #[inline]
    fn ss(r: c_long) -> ssize_t {
        r as ssize_t
    }

    /// # Safety
    /// As `read(2)`.
    #[inline]
    pub(crate) unsafe fn read(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t {
        // SAFETY: the caller's, as read(2)'s.
        ss(unsafe { libc::syscall(libc::SYS_read, fd, buf, n) })
    }

    /// # Safety
    /// As `write(2)`.
    #[inline]
    pub(crate) unsafe fn write(fd: c_int, buf: *const c_void, n: size_t) -> ssize_t {
        // SAFETY: the caller's, as write(2)'s.
        ss(unsafe { libc::syscall(libc::SYS_write, fd, buf, n) })
    }

    /// # Safety
    /// As `readv(2)`.
    #[inline]
    pub(crate) unsafe fn readv(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t {
        // SAFETY: the caller's, as readv(2)'s.
        ss(unsafe { libc::syscall(libc::SYS_readv, fd, iov, n) })
    }

    /// # Safety
    /// As `writev(2)`.
    #[inline]
    pub(crate) unsafe fn writev(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t {
        // SAFETY: the caller's, as writev(2)'s.
        ss(unsafe { libc::syscall(libc::SYS_writev, fd, iov, n) })
    }

    /// # Safety
    /// As `pread(2)`.
    #[inline]
    pub(crate) unsafe fn pread(fd: c_int, buf: *mut c_void, n: size_t, off: off_t) -> ssize_t {
        // SAFETY: the caller's, as pread(2)'s.
        ss(unsafe { libc::syscall(libc::SYS_pread64, fd, buf, n, off) })
    }

    /// # Safety
    /// As `pwrite(2)`.
    #[inline]
    pub(crate) unsafe fn pwrite(fd: c_int, buf: *const c_void, n: size_t, off: off_t) -> ssize_t {
        // SAFETY: the caller's, as pwrite(2)'s.
        ss(unsafe { libc::syscall(libc::SYS_pwrite64, fd, buf, n, off) })
    }

    /// # Safety
    /// As `recv(2)`.
    #[inline]
    pub(crate) unsafe fn recv(fd: c_int, buf: *mut c_void, n: size_t, flags: c_int) -> ssize_t {
        let null = std::ptr::null_mut::<c_void>();
        // SAFETY: the caller's, as recv(2)'s; recvfrom with no address is recv.
        ss(unsafe { libc::syscall(libc::SYS_recvfrom, fd, buf, n, flags, null, null) })
    }

    /// # Safety
    /// As `send(2)`.
    #[inline]
    pub(crate) unsafe fn send(fd: c_int, buf: *const c_void, n: size_t, flags: c_int) -> ssize_t {
        let null = std::ptr::null::<c_void>();
        // SAFETY: the caller's, as send(2)'s; sendto with no address is send.
        ss(unsafe { libc::syscall(libc::SYS_sendto, fd, buf, n, flags, null, 0) })
    }

    /// # Safety
    /// As `recvmsg(2)`.
    #[inline]
    pub(crate) unsafe fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t {
        // SAFETY: the caller's, as recvmsg(2)'s.
        ss(unsafe { libc::syscall(libc::SYS_recvmsg, fd, msg, flags) })
    }

    /// # Safety
    /// As `sendmsg(2)`.
    #[inline]
    pub(crate) unsafe fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
        // SAFETY: the caller's, as sendmsg(2)'s.
        ss(unsafe { libc::syscall(libc::SYS_sendmsg, fd, msg, flags) })
    }

    /// # Safety
    /// As `accept4(2)`.
    #[inline]
    pub(crate) unsafe fn accept4(
        fd: c_int,
        addr: *mut sockaddr,
        len: *mut socklen_t,
        flags: c_int,
    ) -> c_int {
        // SAFETY: the caller's, as accept4(2)'s.
        unsafe { libc::syscall(libc::SYS_accept4, fd, addr, len, flags) as c_int }
    }

    /// # Safety
    /// As `connect(2)`.
    #[inline]
    pub(crate) unsafe fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
        // SAFETY: the caller's, as connect(2)'s.
        unsafe { libc::syscall(libc::SYS_connect, fd, addr, len) as c_int }
    }

    /// `poll(2)` through `ppoll` (aarch64 has no `poll` system call).
    ///
    /// # Safety
    /// As `poll(2)`.
    #[inline]
    pub(crate) unsafe fn poll(fds: *mut pollfd, n: nfds_t, ms: c_int) -> c_int {
        let ts = libc::timespec {
            tv_sec: (ms / 1000) as libc::time_t,
            tv_nsec: ((ms % 1000) * 1_000_000) as libc::c_long,
        };
        let tsp = if ms < 0 {
            std::ptr::null()
        } else {
            &raw const ts
        };
        let null = std::ptr::null::<c_void>();
        // SAFETY: the caller's, as poll(2)'s; `ts` lives across the call; no signal mask.
        unsafe { libc::syscall(libc::SYS_ppoll, fds, n, tsp, null, 0usize) as c_int }
    }
}
