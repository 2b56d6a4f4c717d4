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

/// How long an absolute sleep parks at a time before it reads its clock again.
const ABSOLUTE_RECHECK: Duration = Duration::from_millis(250);

/// `clock_nanosleep(2)` for `CLOCK_MONOTONIC`, `CLOCK_REALTIME` and `CLOCK_BOOTTIME`, relative
/// or `TIMER_ABSTIME`. An absolute deadline is slept towards in steps of at most 250 ms, reading
/// the clock after each: a change of the realtime clock (or a suspend, for `CLOCK_BOOTTIME`) is
/// followed within that step, where the kernel would follow it at once. Other clocks pass
/// through.
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
            if flags & libc::TIMER_ABSTIME == 0 {
                crate::park::sleep(d);
                return 0;
            }
            loop {
                let mut now = timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                // SAFETY: `now` is live.
                unsafe { libc::clock_gettime(clock, &mut now) };
                let left = duration(&now).map_or(Duration::ZERO, |n| d.saturating_sub(n));
                if left.is_zero() {
                    return 0;
                }
                crate::park::sleep(left.min(ABSOLUTE_RECHECK));
            }
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
