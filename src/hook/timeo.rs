//! Whether any socket of the process may have a send or receive timeout, so that the common
//! case (none has) skips the `getsockopt` each waiting call would otherwise make.
//!
//! # The problem
//! `SO_RCVTIMEO` and `SO_SNDTIMEO` must bound a hooked call as they bound libc's, and the only
//! way to learn a socket's timeout is `getsockopt`, which costs about 370 ns here: 7% of an
//! echo round trip's whole server time (measured with the harness's echo workload, 2-core VM).
//!
//! # The design
//! A process-wide, sticky flag says "some socket may have a timeout". While it is clear, a
//! hooked call takes every socket's timeouts for zero; once set, every waiting call reads them.
//! It is set:
//! - by `setsockopt` (interposed here, on every thread) for either timeout option, whatever the
//!   value;
//! - by a received `recvmsg` carrying control data (descriptors passed with `SCM_RIGHTS` may
//!   arrive with timeouts set by another process);
//! - once, at the first question, if a descriptor the process holds then (inherited ones
//!   included) is a socket with a timeout, or if `/proc/self/fd` cannot be read.
//!
//! Not seen (documented hazards of the feature): a timeout set by a raw `setsockopt` system
//! call, or by another process on a socket shared with this one after the first question.
//!
//! Orderings: the flag only ever goes from clear to set. A `setsockopt` that returned before a
//! hooked call started on another thread is ordered before it by whatever the program used to
//! hand the socket over (a channel, a spawn, a lock), which carries this store along (Release
//! store, Acquire load).

use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use libc::c_int;

/// Set once a socket may have a timeout (module doc).
static MAYBE: AtomicBool = AtomicBool::new(false);
/// The scan of the descriptors held at the first question.
static SCAN: Once = Once::new();

/// The option numbers of the two timeouts: `SO_RCVTIMEO`/`SO_SNDTIMEO` in their old (20, 21)
/// and 64-bit time (66, 67) forms, which Linux keeps apart on every architecture.
const OPTIONS: [c_int; 4] = [20, 21, 66, 67];

/// Whether `level`/`name` names a socket timeout.
pub(super) fn is_timeout_option(level: c_int, name: c_int) -> bool {
    level == libc::SOL_SOCKET && OPTIONS.contains(&name)
}

/// Records that some socket may now have a timeout.
pub(super) fn note() {
    MAYBE.store(true, Ordering::Release);
}

/// Whether any socket may have a timeout (module doc).
#[inline]
pub(super) fn maybe() -> bool {
    if MAYBE.load(Ordering::Acquire) {
        return true;
    }
    SCAN.call_once(scan);
    MAYBE.load(Ordering::Acquire)
}

/// Sets the flag if a descriptor held now is a socket with a timeout, or if the descriptors
/// cannot be listed.
#[cold]
fn scan() {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        note();
        return;
    };
    for entry in dir {
        let Some(fd) = entry
            .ok()
            .and_then(|e| e.file_name().to_str().and_then(|n| n.parse::<c_int>().ok()))
        else {
            continue;
        };
        if timeout(fd, libc::SO_RCVTIMEO).is_some() || timeout(fd, libc::SO_SNDTIMEO).is_some() {
            note();
            return;
        }
    }
}

/// The timeout `opt` of `fd`: `None` if it is not a socket or the timeout is not set.
pub(super) fn timeout(fd: c_int, opt: c_int) -> Option<Duration> {
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    let mut len = size_of::<libc::timeval>() as libc::socklen_t;
    // SAFETY: `tv` and `len` are live and of the sizes given.
    let r = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, opt, (&raw mut tv).cast(), &mut len) };
    if r != 0 || (tv.tv_sec == 0 && tv.tv_usec == 0) {
        return None;
    }
    Some(Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64))
}
