//! `poll(2)` and `ppoll(2)`: a zero-timeout poll; if nothing is ready, the green thread waits on
//! the one descriptor, or on a temporary epoll instance holding them all, then polls again.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use libc::{c_int, nfds_t, pollfd, sigset_t, timespec};

use super::{fail, green, next};
use crate::io::op;
use crate::task::IoOp;

/// Waits (parking the green thread) until one of `fds` may be ready or `deadline` passes.
fn wait_any(fds: &[pollfd], deadline: Option<Instant>) -> std::io::Result<()> {
    // poll always reports these two; epoll and the ring's poll too.
    let live: Vec<&pollfd> = fds.iter().filter(|p| p.fd >= 0).collect();
    match live.as_slice() {
        [] => {
            match deadline {
                Some(d) => crate::park::sleep(d.saturating_duration_since(Instant::now())),
                None => loop {
                    crate::park::sleep(Duration::from_secs(u32::MAX as u64));
                },
            }
            Ok(())
        }
        [p] => {
            op::wait_events(p.fd, p.events, p.events as u16 as u32, IoOp::Poll, deadline).map(drop)
        }
        many => {
            // SAFETY: plain system call.
            let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
            if ep < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: a fresh descriptor nobody else owns; closed when this returns.
            let ep = unsafe { OwnedFd::from_raw_fd(ep) };
            for p in many {
                let mut ev = libc::epoll_event {
                    events: p.events as u16 as u32,
                    u64: 0,
                };
                // Descriptors epoll cannot watch (regular files) are always ready, so the first
                // poll already reported them; a descriptor listed twice is watched once.
                // SAFETY: `ev` is live.
                unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, p.fd, &mut ev) };
            }
            let (i, e) = (libc::POLLIN, libc::EPOLLIN as u32);
            op::wait_events(ep.as_raw_fd(), i, e, IoOp::Poll, deadline).map(drop)
        }
    }
}

/// The green-thread half of `poll`/`ppoll`: `timeout` is `None` for "forever".
///
/// # Safety
/// `fds` points at `n` live `pollfd`s.
unsafe fn poll_green(fds: *mut pollfd, n: nfds_t, timeout: Option<Duration>) -> c_int {
    let deadline = op::deadline(timeout);
    loop {
        // SAFETY: the caller's array.
        let r = unsafe { next::poll(fds, n, 0) };
        if r != 0 || deadline.is_some_and(|d| Instant::now() >= d) {
            return r;
        }
        let list: &[pollfd] = if n == 0 {
            &[]
        } else {
            // SAFETY: the caller's array of `n` entries; not written while this borrow lives.
            unsafe { std::slice::from_raw_parts(fds, n as usize) }
        };
        if let Err(e) = wait_any(list, deadline) {
            return fail(&e) as c_int;
        }
    }
}

/// `poll(2)`.
///
/// # Safety
/// As libc's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn poll(fds: *mut pollfd, n: nfds_t, ms: c_int) -> c_int {
    if ms == 0 || green().is_none() {
        // SAFETY: as libc's.
        return unsafe { next::poll(fds, n, ms) };
    }
    let timeout = (ms > 0).then(|| Duration::from_millis(ms as u64));
    // SAFETY: as libc's.
    unsafe { poll_green(fds, n, timeout) }
}

/// `ppoll(2)`; with a signal mask it passes through (a mask is the kernel thread's, shared by
/// the worker's green threads).
///
/// # Safety
/// As libc's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ppoll(
    fds: *mut pollfd,
    n: nfds_t,
    ts: *const timespec,
    mask: *const sigset_t,
) -> c_int {
    // SAFETY: a non-null `ts` is the caller's readable timespec.
    let t = unsafe { ts.as_ref() };
    let zero = t.is_some_and(|t| t.tv_sec == 0 && t.tv_nsec == 0);
    let valid = t.is_none_or(|t| t.tv_sec >= 0 && (0..1_000_000_000).contains(&t.tv_nsec));
    if zero || !valid || !mask.is_null() || green().is_none() {
        // SAFETY: as libc's.
        return unsafe { next::ppoll(fds, n, ts, mask) };
    }
    let timeout = t.map(|t| Duration::new(t.tv_sec as u64, t.tv_nsec as u32));
    // SAFETY: as libc's.
    unsafe { poll_green(fds, n, timeout) }
}
