//! The sleep family: `nanosleep`, `clock_nanosleep`, `usleep`, `sleep`. On a green thread they
//! park it on its worker's timers (glibc's `sleep` and `usleep` call its internal `nanosleep`,
//! which no definition here can replace, so they are interposed themselves).

use std::time::Duration;

use libc::{c_int, c_uint, clockid_t, timespec, useconds_t};

use super::{green, next};

/// A valid `timespec` as a duration; `None` for what libc rejects with `EINVAL`.
fn duration(ts: &timespec) -> Option<Duration> {
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return None;
    }
    Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// `nanosleep(2)`. On a green thread the whole interval is slept (no `EINTR`), `rem` untouched.
///
/// # Safety
/// As libc's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanosleep(req: *const timespec, rem: *mut timespec) -> c_int {
    if green().is_some() && !req.is_null() {
        // SAFETY: the caller passes a readable timespec.
        if let Some(d) = duration(unsafe { &*req }) {
            crate::park::sleep(d);
            return 0;
        }
    }
    // SAFETY: the caller's arguments, as libc's.
    unsafe { next::nanosleep(req, rem) }
}

/// `clock_nanosleep(2)` for `CLOCK_MONOTONIC`, `CLOCK_REALTIME` and `CLOCK_BOOTTIME`, relative
/// or `TIMER_ABSTIME` (an absolute deadline is turned into an interval once: a later change of
/// the realtime clock is not followed). Other clocks pass through.
///
/// # Safety
/// As libc's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn clock_nanosleep(
    clock: clockid_t,
    flags: c_int,
    req: *const timespec,
    rem: *mut timespec,
) -> c_int {
    let known = matches!(
        clock,
        libc::CLOCK_MONOTONIC | libc::CLOCK_REALTIME | libc::CLOCK_BOOTTIME
    );
    if known && green().is_some() && !req.is_null() {
        // SAFETY: the caller passes a readable timespec.
        if let Some(d) = duration(unsafe { &*req }) {
            let d = if flags & libc::TIMER_ABSTIME != 0 {
                let mut now = timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                // SAFETY: `now` is live.
                unsafe { libc::clock_gettime(clock, &mut now) };
                duration(&now).map_or(d, |n| d.saturating_sub(n))
            } else {
                d
            };
            crate::park::sleep(d);
            return 0;
        }
    }
    // SAFETY: the caller's arguments, as libc's.
    unsafe { next::clock_nanosleep(clock, flags, req, rem) }
}

/// `usleep(3)`.
///
/// # Safety
/// As libc's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn usleep(us: useconds_t) -> c_int {
    if green().is_some() {
        crate::park::sleep(Duration::from_micros(us as u64));
        return 0;
    }
    // SAFETY: as libc's.
    unsafe { next::usleep(us) }
}

/// `sleep(3)`.
///
/// # Safety
/// As libc's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sleep(secs: c_uint) -> c_uint {
    if green().is_some() {
        crate::park::sleep(Duration::from_secs(secs as u64));
        return 0;
    }
    // SAFETY: as libc's.
    unsafe { next::sleep(secs) }
}
