//! Where a debugger finds the workers: the gdb script `tools/hilos-gdb.py` reads this list.
//!
//! Every running worker's context ([`Local`]) is linked into one list headed by the unmangled
//! static `HILOS_DEBUG_WORKERS`, through `Local::debug_next`, from its start to its end
//! (`local::install`). The list is only changed under a lock, when a worker starts or stops, and
//! only a debugger, with the process stopped, reads it; from a worker's context the script reaches
//! its list of started threads (`Local::threads`) and each thread's saved stack pointer.

use std::ptr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicPtr, Ordering};

use super::local::Local;

/// The head of the list of running workers (module doc). Unmangled, for debuggers.
#[unsafe(no_mangle)]
#[used]
pub(crate) static HILOS_DEBUG_WORKERS: AtomicPtr<Local> = AtomicPtr::new(ptr::null_mut());

/// Serialises changes of the list.
static LOCK: Mutex<()> = Mutex::new(());

/// Links the worker context `l` into the list.
///
/// # Safety
/// `l` is a live worker context that stays valid until [`remove`] takes it out.
pub(super) unsafe fn add(l: *mut Local) {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: per the contract; its `debug_next` is only touched under the lock.
    unsafe { (*l).debug_next = HILOS_DEBUG_WORKERS.load(Ordering::Relaxed) };
    HILOS_DEBUG_WORKERS.store(l, Ordering::Release);
}

/// Takes the worker context `l` out of the list.
///
/// # Safety
/// `l` was linked by [`add`] and is still valid.
pub(super) unsafe fn remove(l: *mut Local) {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut p = HILOS_DEBUG_WORKERS.load(Ordering::Relaxed);
    let mut prev: *mut Local = ptr::null_mut();
    while !p.is_null() {
        // SAFETY: every linked context is valid until removed, and links change under the lock.
        let next = unsafe { (*p).debug_next };
        if p == l {
            if prev.is_null() {
                HILOS_DEBUG_WORKERS.store(next, Ordering::Release);
            } else {
                // SAFETY: as above.
                unsafe { (*prev).debug_next = next };
            }
            return;
        }
        prev = p;
        p = next;
    }
}
