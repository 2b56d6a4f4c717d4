//! glibc's own definitions of the interposed functions, for the pass-through path.
//!
//! Each is looked up once with `dlsym(RTLD_NEXT, name)` (the next definition after the
//! executable's, that is libc's, or an `LD_PRELOAD`ed library's in between) and kept in an
//! atomic pointer: a pass-through call then costs one load and an indirect call on top of libc's.
//! Raw system calls would lose what glibc adds (pthread cancellation points, its emulations, an
//! interposer further down the chain); `getaddrinfo` has no system call at all.

use std::ffi::{CStr, c_void};
use std::sync::atomic::{AtomicPtr, Ordering};

/// Resolves `name` in the objects after the executable; aborts with a message if it cannot (a
/// statically linked program, which the feature does not support).
#[cold]
pub(super) fn resolve(cache: &AtomicPtr<c_void>, name: &CStr) -> *mut c_void {
    // SAFETY: dlsym with a NUL-terminated name; RTLD_NEXT is valid from a loaded object.
    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) };
    if p.is_null() {
        let msg = b"hilos (hook): libc function not found with dlsym(RTLD_NEXT); the hook feature needs a dynamically linked glibc program\n";
        // SAFETY: writes a static buffer to stderr with the raw system call.
        unsafe { crate::real::write(2, msg.as_ptr().cast(), msg.len()) };
        std::process::abort();
    }
    cache.store(p, Ordering::Relaxed);
    p
}

/// Declares `pub(crate) unsafe fn name(args) -> ret` calling the next definition of `name`.
macro_rules! next {
    ($( $name:ident ( $($arg:ident : $t:ty),* ) -> $r:ty; )*) => {$(
        /// The next (libc's) definition of the function of this name.
        ///
        /// # Safety
        /// As libc's function of the same name.
        #[inline(always)]
        pub(crate) unsafe fn $name($($arg: $t),*) -> $r {
            static CACHE: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
            let mut p = CACHE.load(Ordering::Relaxed);
            if p.is_null() {
                p = resolve(&CACHE, {
                    const N: &CStr = match CStr::from_bytes_with_nul(
                        concat!(stringify!($name), "\0").as_bytes(),
                    ) {
                        Ok(n) => n,
                        Err(_) => panic!("bad name"),
                    };
                    N
                });
            }
            // SAFETY: `p` is libc's definition of this very function, whose C signature the
            // declaration repeats (libc's bindings).
            let f: unsafe extern "C" fn($($t),*) -> $r = unsafe { std::mem::transmute(p) };
            // SAFETY: the caller's promises, as libc's function's.
            unsafe { f($($arg),*) }
        }
    )*};
}

use libc::{addrinfo, c_char, c_int, c_uint, clockid_t, iovec, msghdr, nfds_t, off_t, pollfd};
use libc::{sigset_t, size_t, sockaddr, socklen_t, ssize_t, timespec, useconds_t};

next! {
    read(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t;
    readv(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t;
    pread(fd: c_int, buf: *mut c_void, n: size_t, off: off_t) -> ssize_t;
    pread64(fd: c_int, buf: *mut c_void, n: size_t, off: off_t) -> ssize_t;
    preadv(fd: c_int, iov: *const iovec, n: c_int, off: off_t) -> ssize_t;
    preadv64(fd: c_int, iov: *const iovec, n: c_int, off: off_t) -> ssize_t;
    write(fd: c_int, buf: *const c_void, n: size_t) -> ssize_t;
    writev(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t;
    pwrite(fd: c_int, buf: *const c_void, n: size_t, off: off_t) -> ssize_t;
    pwrite64(fd: c_int, buf: *const c_void, n: size_t, off: off_t) -> ssize_t;
    pwritev(fd: c_int, iov: *const iovec, n: c_int, off: off_t) -> ssize_t;
    pwritev64(fd: c_int, iov: *const iovec, n: c_int, off: off_t) -> ssize_t;
    recv(fd: c_int, buf: *mut c_void, n: size_t, flags: c_int) -> ssize_t;
    recvfrom(fd: c_int, buf: *mut c_void, n: size_t, flags: c_int, a: *mut sockaddr,
        l: *mut socklen_t) -> ssize_t;
    recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t;
    send(fd: c_int, buf: *const c_void, n: size_t, flags: c_int) -> ssize_t;
    sendto(fd: c_int, buf: *const c_void, n: size_t, flags: c_int, a: *const sockaddr,
        l: socklen_t) -> ssize_t;
    sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t;
    accept4(fd: c_int, a: *mut sockaddr, l: *mut socklen_t, flags: c_int) -> c_int;
    connect(fd: c_int, a: *const sockaddr, l: socklen_t) -> c_int;
    setsockopt(fd: c_int, level: c_int, name: c_int, v: *const c_void, l: socklen_t) -> c_int;
    poll(fds: *mut pollfd, n: nfds_t, ms: c_int) -> c_int;
    ppoll(fds: *mut pollfd, n: nfds_t, ts: *const timespec, mask: *const sigset_t) -> c_int;
    nanosleep(req: *const timespec, rem: *mut timespec) -> c_int;
    clock_nanosleep(c: clockid_t, flags: c_int, req: *const timespec, rem: *mut timespec)
        -> c_int;
    usleep(us: useconds_t) -> c_int;
    sleep(s: c_uint) -> c_uint;
    getaddrinfo(node: *const c_char, service: *const c_char, hints: *const addrinfo,
        res: *mut *mut addrinfo) -> c_int;
}
