//! A child process forked from one that runs hilos: its workers, monitor and blocking pool were
//! threads of the parent and do not exist in it, so a spawn, a join or a green thread's wait
//! there would wait forever, silently. Only `exec` (or code that makes no hilos call) is
//! supported in such a child, as for most multi-threaded runtimes; hilos says so instead of
//! hanging: a `pthread_atfork` child handler, registered when the first runtime is built, marks
//! the process, and the calls that need a worker (building a runtime, spawning, joining, a green
//! thread's park or sleep) fail with [`MESSAGE`] (an `io::Error` where the call returns one, a
//! panic otherwise). One relaxed load each, on paths that already do far more.

use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

/// What a hilos call in a forked child says.
pub(crate) const MESSAGE: &str = "hilos: this process is a child forked from a process running \
     hilos, whose workers do not exist here: only exec (or code that makes no hilos call) is \
     supported in a forked child";

static FORKED: AtomicBool = AtomicBool::new(false);

extern "C" fn in_child() {
    FORKED.store(true, Ordering::Relaxed);
}

/// Registers the child handler (once per process).
pub(crate) fn watch() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe as the child
        // side of fork requires.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
        debug_assert_eq!(rc, 0);
    });
}

/// Whether this process is a forked child of one that ran hilos.
#[inline]
pub(crate) fn forked() -> bool {
    FORKED.load(Ordering::Relaxed)
}

/// [`MESSAGE`] as an error.
pub(crate) fn error() -> std::io::Error {
    std::io::Error::other(MESSAGE)
}

/// Panics with [`MESSAGE`] in a forked child.
#[inline]
#[track_caller]
pub(crate) fn check() {
    if forked() {
        panic!("{MESSAGE}");
    }
}
