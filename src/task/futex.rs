//! Thin wrappers over the Linux `futex(2)` wait and wake operations (under loom, a model of them
//! from `crate::loom::futex`).

#[cfg(all(test, loom))]
pub(crate) use crate::loom::futex::{wait, wake};

#[cfg(not(all(test, loom)))]
use crate::loom::sync::atomic::AtomicU32;
#[cfg(not(all(test, loom)))]
use std::time::Duration;

/// Sleeps while `*word == expected`, at most `timeout`. Returns on a wake, a timeout, a signal or
/// a changed value; callers re-check their condition.
#[cfg(not(all(test, loom)))]
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call; `ts_ptr` is null or
    // points at a live timespec. FUTEX_WAIT only reads them.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            ts_ptr,
        );
    }
}

/// Wakes at most `n` threads sleeping on `word`.
#[cfg(not(all(test, loom)))]
pub(crate) fn wake(word: &AtomicU32, n: i32) {
    // SAFETY: `word` is a valid, aligned u32; FUTEX_WAKE does not access memory through it.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            n,
        );
    }
}
