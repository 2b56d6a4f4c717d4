//! Reporting green-thread stack overflows.
//!
//! A green thread that runs off the bottom of its stack touches the stack's guard page and gets
//! SIGSEGV (or SIGBUS). The handler installed here runs on the kernel thread's alternate signal
//! stack (the faulting stack has no room left), asks the runtime through a `lookup` function
//! whether the fault address is in the guard of the green thread running on this kernel thread,
//! and if so prints std's message with that green thread's name and aborts, as std does for
//! kernel threads. Any other fault is passed to the handler that was installed before ours,
//! normally std's, so std's own report for kernel-thread overflows and the default crash for
//! ordinary segfaults still happen.
//!
//! Everything the handler does is async-signal-safe: atomic loads, the `lookup` call (which the
//! runtime must keep async-signal-safe: no locks, no allocation), `write(2)`, `sigaction(2)` and
//! `abort(3)`.

use std::cell::UnsafeCell;
use std::io;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::map;

/// Decides whether `fault_addr` is in the guard of the green thread running on this kernel
/// thread; if so writes its name into the buffer and returns the name's length. Called from a
/// signal handler: it must be async-signal-safe.
pub(crate) type Lookup = fn(fault_addr: usize, name_buf: &mut [u8]) -> Option<usize>;

/// Bytes of a green thread's name the report can show.
const NAME_BUF: usize = 256;
/// Usable bytes of an alternate signal stack we create (at least; see [`altstack_size`]).
const ALTSTACK_MIN: usize = 64 * 1024;
/// `getauxval` key for the kernel's minimum signal stack size (Linux 5.14+ on x86).
const AT_MINSIGSTKSZ: libc::c_ulong = 51;

/// The lookup as a `usize` (0: none yet). Only values of type [`Lookup`] are stored.
static LOOKUP: AtomicUsize = AtomicUsize::new(0);
static INSTALL: Once = Once::new();

/// The disposition a signal had before ours, written once before our handler is installed.
struct PrevAction {
    ready: AtomicBool,
    action: UnsafeCell<MaybeUninit<libc::sigaction>>,
}

// SAFETY: `action` is written exactly once, inside `INSTALL`, before `ready` is set with
// Release ordering; it is read only after `ready` is observed with Acquire ordering, and never
// written again. So there is no concurrent write.
unsafe impl Sync for PrevAction {}

impl PrevAction {
    const fn new() -> PrevAction {
        PrevAction {
            ready: AtomicBool::new(false),
            action: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    fn get(&self) -> Option<libc::sigaction> {
        if self.ready.load(Ordering::Acquire) {
            // SAFETY: `ready` is set only after `action` was initialised, and `action` is never
            // written again (see the `Sync` impl).
            Some(unsafe { (*self.action.get()).assume_init() })
        } else {
            None
        }
    }
}

static PREV_SEGV: PrevAction = PrevAction::new();
static PREV_BUS: PrevAction = PrevAction::new();

/// Installs, once per process, SIGSEGV and SIGBUS handlers (`SA_ONSTACK | SA_SIGINFO`) that report
/// overflows of green stacks recognised by `lookup` and chain everything else to the handler
/// installed before. A later call only replaces the lookup.
pub(crate) fn install(lookup: Lookup) {
    LOOKUP.store(lookup as usize, Ordering::Release);
    INSTALL.call_once(|| {
        for (sig, prev) in [(libc::SIGSEGV, &PREV_SEGV), (libc::SIGBUS, &PREV_BUS)] {
            install_one(sig, prev);
        }
    });
}

fn install_one(sig: libc::c_int, prev: &'static PrevAction) {
    // SAFETY: sigaction is plain data; all-zero is a valid (SIG_DFL) value.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only queries the current disposition into `old`.
    let rc = unsafe { libc::sigaction(sig, ptr::null(), &mut old) };
    debug_assert_eq!(rc, 0);
    // SAFETY: we are inside `INSTALL.call_once`, the only writer, and `ready` is still false,
    // so no reader looks at `action` yet.
    unsafe { (*prev.action.get()).write(old) };
    prev.ready.store(true, Ordering::Release);

    // SAFETY: as above, all-zero is a valid sigaction to fill in.
    let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
    new.sa_sigaction = handler
        as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
        as libc::sighandler_t;
    new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    // SAFETY: `new.sa_mask` is a valid sigset_t to initialise.
    unsafe { libc::sigemptyset(&mut new.sa_mask) };
    // SAFETY: installs a handler that is async-signal-safe and valid for the whole process.
    let rc = unsafe { libc::sigaction(sig, &new, ptr::null_mut()) };
    debug_assert_eq!(rc, 0);
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: __errno_location returns this thread's errno, valid for the thread's lifetime.
    let errno = unsafe { *libc::__errno_location() };
    // A fault raised by the kernel (si_code > 0) carries its address; a signal sent with kill(2)
    // and the like (si_code <= 0) does not, and is never an overflow.
    let addr = if info.is_null() {
        None
    } else {
        // SAFETY: the kernel passes a valid siginfo_t to SA_SIGINFO handlers; for SIGSEGV and
        // SIGBUS with si_code > 0 its si_addr field is the fault address.
        unsafe { ((*info).si_code > 0).then(|| (*info).si_addr() as usize) }
    };
    let raw = LOOKUP.load(Ordering::Acquire);
    if let (Some(addr), true) = (addr, raw != 0) {
        // SAFETY: LOOKUP only ever holds 0 or a `Lookup` fn pointer cast to usize (`install`).
        let lookup: Lookup = unsafe { std::mem::transmute::<usize, Lookup>(raw) };
        let mut name = [0u8; NAME_BUF];
        if let Some(len) = lookup(addr, &mut name) {
            let name: &[u8] = match len.min(NAME_BUF) {
                0 => b"<unnamed>",
                n => &name[..n],
            };
            write_all(b"\nthread '");
            write_all(name);
            write_all(
                b"' has overflowed its stack\nfatal runtime error: stack overflow, aborting\n",
            );
            // SAFETY: abort is async-signal-safe and does not return.
            unsafe { libc::abort() };
        }
    }
    // SAFETY: called from the signal handler with the kernel's arguments, as `chain` requires.
    unsafe { chain(sig, info, ctx) };
    // SAFETY: as above; restores the interrupted code's errno.
    unsafe { *libc::__errno_location() = errno };
}

/// Passes a fault we do not own to the previous disposition.
///
/// # Safety
/// Must be called from our signal handler with the arguments the kernel gave it.
unsafe fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let prev = match sig {
        libc::SIGSEGV => PREV_SEGV.get(),
        libc::SIGBUS => PREV_BUS.get(),
        _ => None,
    };
    let ours = handler as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
        as libc::sighandler_t;
    match prev {
        Some(act)
            if act.sa_sigaction != libc::SIG_DFL
                && act.sa_sigaction != libc::SIG_IGN
                && act.sa_sigaction != ours =>
        {
            if act.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: with SA_SIGINFO the stored handler has the three-argument signature;
                // it was installed for this signal, so calling it as the kernel would is what
                // its installer expects.
                let f = unsafe {
                    std::mem::transmute::<
                        libc::sighandler_t,
                        extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void),
                    >(act.sa_sigaction)
                };
                f(sig, info, ctx);
            } else {
                // SAFETY: without SA_SIGINFO the stored handler takes the signal number only.
                let f = unsafe {
                    std::mem::transmute::<libc::sighandler_t, extern "C" fn(libc::c_int)>(
                        act.sa_sigaction,
                    )
                };
                f(sig);
            }
        }
        _ => {
            // Default action: restore it and return; the faulting instruction runs again and the
            // kernel kills the process with this signal, as if we had never been installed.
            // SAFETY: all-zero is SIG_DFL with an empty mask; sigaction is async-signal-safe.
            unsafe {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &dfl, ptr::null_mut());
            }
        }
    }
}

/// `write(2)` all of `bytes` to stderr, retrying on EINTR and short writes; gives up on errors.
fn write_all(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: writes from a valid slice; write is async-signal-safe.
        let n = unsafe { crate::real::write(2, bytes.as_ptr().cast(), bytes.len()) };
        if n > 0 {
            bytes = &bytes[n as usize..];
            continue;
        }
        // SAFETY: reads this thread's errno, which the failed write just set.
        if n < 0 && unsafe { *libc::__errno_location() } == libc::EINTR {
            continue;
        }
        return;
    }
}

/// The calling kernel thread's alternate signal stack, if [`ensure_altstack`] created it:
/// dropping it disables and unmaps that stack. Not `Send`: it belongs to one kernel thread.
#[derive(Debug)]
pub(crate) struct AltStack {
    /// `(mapping base, mapping length, ss_sp)` of a stack we created; `None` if one existed.
    ours: Option<(usize, usize, usize)>,
    _not_send: PhantomData<*mut ()>,
}

impl AltStack {
    /// Whether [`ensure_altstack`] created this thread's alternate stack (false: one existed).
    #[cfg_attr(not(test), expect(dead_code, reason = "used by the tests"))]
    pub(crate) fn created(&self) -> bool {
        self.ours.is_some()
    }
}

/// Usable bytes for an alternate signal stack.
fn altstack_size() -> usize {
    // SAFETY: getauxval only reads the auxiliary vector; it returns 0 for unknown keys.
    let kernel_min = unsafe { libc::getauxval(AT_MINSIGSTKSZ) } as usize;
    let page = map::page_size();
    let size = ALTSTACK_MIN
        .max(libc::SIGSTKSZ)
        .max(kernel_min.saturating_mul(4));
    (size + page - 1) & !(page - 1)
}

/// Ensures the calling kernel thread has an alternate signal stack: if none is set, maps one
/// (with a guard page below it) and sets it. The returned guard removes and unmaps it on drop,
/// only if we created it.
pub(crate) fn ensure_altstack() -> io::Result<AltStack> {
    // SAFETY: stack_t is plain data; zero is a valid value to be overwritten.
    let mut cur: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: a null new stack only queries the current one into `cur`.
    if unsafe { libc::sigaltstack(ptr::null(), &mut cur) } != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("hilos: sigaltstack (query) failed: {e}"),
        ));
    }
    if cur.ss_flags & libc::SS_DISABLE == 0 {
        return Ok(AltStack {
            ours: None,
            _not_send: PhantomData,
        });
    }
    let mech = map::mechanism();
    let page = map::page_size();
    let size = altstack_size();
    let len = page + size;
    let what = format!("an alternate signal stack of {size} bytes");
    let base = map::map_region(len).map_err(|e| map::os_error(e, "mmap", &what, mech))?;
    // SAFETY: `base..base + page` is the low page of the mapping just made, which nobody uses.
    if let Err(e) = unsafe { map::install_guard(mech, base, page) } {
        // SAFETY: the mapping is ours alone and nothing refers to it.
        unsafe { map::unmap(base, len) };
        return Err(map::os_error(e, "installing its guard page", &what, mech));
    }
    let ss = libc::stack_t {
        ss_sp: (base + page) as *mut libc::c_void,
        ss_flags: 0,
        ss_size: size,
    };
    // SAFETY: `ss` describes memory we mapped and keep mapped until the AltStack is dropped,
    // which first disables it.
    if unsafe { libc::sigaltstack(&ss, ptr::null_mut()) } != 0 {
        let e = io::Error::last_os_error();
        // SAFETY: the kernel did not take the stack; the mapping is ours alone.
        unsafe { map::unmap(base, len) };
        return Err(io::Error::new(
            e.kind(),
            format!("hilos: sigaltstack (set {what}) failed: {e}"),
        ));
    }
    Ok(AltStack {
        ours: Some((base, len, base + page)),
        _not_send: PhantomData,
    })
}

impl Drop for AltStack {
    fn drop(&mut self) {
        let Some((base, len, sp)) = self.ours else {
            return;
        };
        // SAFETY: stack_t is plain data.
        let mut cur: libc::stack_t = unsafe { std::mem::zeroed() };
        // SAFETY: a null new stack only queries.
        if unsafe { libc::sigaltstack(ptr::null(), &mut cur) } != 0 {
            return; // Cannot tell whether it is in use: leak it.
        }
        if cur.ss_sp as usize == sp && cur.ss_flags & libc::SS_DISABLE == 0 {
            if cur.ss_flags & libc::SS_ONSTACK != 0 {
                return; // Running on it (cannot happen from safe code): leak it.
            }
            let off = libc::stack_t {
                ss_sp: ptr::null_mut(),
                ss_flags: libc::SS_DISABLE,
                ss_size: 0,
            };
            // SAFETY: disables this thread's alternate stack, which is ours and not in use.
            if unsafe { libc::sigaltstack(&off, ptr::null_mut()) } != 0 {
                return; // Still installed: leak it rather than unmap memory the kernel may use.
            }
        }
        // SAFETY: the kernel no longer uses this mapping as a signal stack (disabled above, or
        // replaced by someone else), and nothing else refers to it.
        unsafe { map::unmap(base, len) };
    }
}
