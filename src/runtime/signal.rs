//! Thread dumps on a signal, opt-in: [`Builder::dump_on_signal`](super::Builder::dump_on_signal)
//! or `HILOS_DUMP_SIGNAL` (a signal name such as `QUIT` or `SIGUSR1`, or a number).
//!
//! # The design
//! A dump allocates, takes locks and waits for the workers: none of that may run in a signal
//! handler. The handler only sets a flag and writes to an eventfd (both async-signal-safe, and it
//! keeps `errno`); a kernel thread of hilos (`hilos-dump`, started with the first runtime that
//! asks) waits on that eventfd, and when woken with the flag set writes the dump of every live
//! runtime that asked, and its metrics, to stderr in one write per runtime. Installing the
//! handler replaces the signal's previous disposition (for `SIGQUIT`, the core dump).

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::scheduler::Shared;

/// Set by the handler; taken by the dump thread.
static REQUESTED: AtomicBool = AtomicBool::new(false);
/// The eventfd the handler writes to (-1 before the dump thread exists).
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
/// Runtimes that asked for dumps on a signal.
static TARGETS: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

/// The signal `HILOS_DUMP_SIGNAL` names, if it is set to something understood.
pub(super) fn from_env() -> Option<i32> {
    let v = std::env::var("HILOS_DUMP_SIGNAL").ok()?;
    let v = v.trim();
    if let Ok(n) = v.parse::<i32>() {
        return Some(n);
    }
    let name = v.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    match name {
        "QUIT" => Some(libc::SIGQUIT),
        "USR1" => Some(libc::SIGUSR1),
        "USR2" => Some(libc::SIGUSR2),
        "HUP" => Some(libc::SIGHUP),
        _ => {
            eprintln!(
                "hilos: HILOS_DUMP_SIGNAL={v} is not a signal hilos dumps on (QUIT, USR1, USR2, HUP or a number)"
            );
            None
        }
    }
}

/// Makes `shared` dumped to stderr when `sig` arrives (module doc).
pub(super) fn register(shared: &Arc<Shared>, sig: i32) -> std::io::Result<()> {
    start_dump_thread()?;
    TARGETS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Arc::downgrade(shared));
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; `on_signal` is an
    // `extern "C"` handler of the three-argument form (`SA_SIGINFO` is not set, so the kernel
    // passes one argument, which it ignores) that only touches atomics and calls `write`.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The signal handler: sets the flag and wakes the dump thread. Async-signal-safe.
extern "C" fn on_signal(_sig: libc::c_int) {
    // SAFETY: `__errno_location` is async-signal-safe and returns this thread's errno, which
    // `write` may change and which the interrupted code must find unchanged.
    let errno = unsafe { *libc::__errno_location() };
    REQUESTED.store(true, Ordering::SeqCst);
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd; async-signal-safe.
        unsafe { libc::write(fd, (&raw const one).cast(), 8) };
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// Starts the `hilos-dump` thread once.
fn start_dump_thread() -> std::io::Result<()> {
    static STARTED: OnceLock<Result<(), i32>> = OnceLock::new();
    let r = STARTED.get_or_init(|| {
        // SAFETY: creates a new descriptor; no memory is involved.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
        }
        WAKE_FD.store(fd, Ordering::SeqCst);
        std::thread::Builder::new()
            .name("hilos-dump".into())
            .spawn(move || dump_thread(fd))
            .map(drop)
            .map_err(|e| e.raw_os_error().unwrap_or(0))
    });
    r.map_err(std::io::Error::from_raw_os_error)
}

/// Waits for signals and prints the dumps (module doc).
fn dump_thread(fd: i32) {
    loop {
        let mut v = 0u64;
        // SAFETY: reads 8 bytes into a live u64 from our eventfd.
        let n = unsafe { libc::read(fd, (&raw mut v).cast(), 8) };
        if n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return;
        }
        if !REQUESTED.swap(false, Ordering::SeqCst) {
            continue;
        }
        let live: Vec<Arc<Shared>> = {
            let mut t = TARGETS.lock().unwrap_or_else(|e| e.into_inner());
            t.retain(|w| w.strong_count() > 0);
            t.iter().filter_map(Weak::upgrade).collect()
        };
        for (i, shared) in live.iter().enumerate() {
            let text = format!(
                "hilos: thread dump on signal (runtime {} of {}):\n{}{}",
                i + 1,
                live.len(),
                super::ThreadDump::new(shared),
                super::RuntimeMetrics::new(shared)
            );
            let _ = std::io::stderr().write_all(text.as_bytes());
        }
    }
}
