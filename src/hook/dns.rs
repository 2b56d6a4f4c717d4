//! `getaddrinfo(3)` on the resolver pool: it may wait seconds for a DNS server.

use libc::{addrinfo, c_char, c_int};

use super::{SendPtrs, errno, green, next, set_errno};

/// `getaddrinfo(3)`; on a green thread it runs on hilos's name-resolution pool while only the
/// green thread parks.
///
/// # Safety
/// As libc's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn getaddrinfo(
    node: *const c_char,
    service: *const c_char,
    hints: *const addrinfo,
    res: *mut *mut addrinfo,
) -> c_int {
    if green().is_none() {
        // SAFETY: as libc's.
        return unsafe { next::getaddrinfo(node, service, hints, res) };
    }
    let args = SendPtrs((node, service, hints, res));
    let (r, e) = crate::io::unblock_resolve(move || {
        let a = args;
        let (node, service, hints, res) = a.0;
        // SAFETY: the caller's pointers, valid while it waits for this job.
        let r = unsafe { next::getaddrinfo(node, service, hints, res) };
        (r, errno())
    });
    if r == libc::EAI_SYSTEM {
        // The pool thread's errno is the caller's to read.
        set_errno(e);
    }
    r
}
