//! A per-kernel-thread cache of small freed allocations, in front of the global allocator.
//!
//! Spawn+join allocates and frees one task cell, and a channel message one node; on a worker, most
//! are freed on the same kernel thread that allocated them, so a small LIFO per size class (64-byte
//! classes up to 512 bytes) turns both into a few instructions. Layouts that do not fit a class go
//! to the allocator directly. Memory allocated with a class layout is always freed with the same
//! class layout, whichever thread frees it, because the class is a function of the layout.
//!
//! The cache is per *kernel* thread even when green threads have thread-locals of their own
//! (`tls`): a thread reaches it through the pointer `CACHE`, which a worker sets to its own cache
//! and has mirrored into each of its green threads ([`worker_started`]).

use std::alloc::{self, Layout};
use std::cell::{Cell, UnsafeCell};
use std::ptr::NonNull;

const CLASS: usize = 64;
const CLASSES: usize = 8;
const KEEP: usize = 64;

struct Cache([Vec<NonNull<u8>>; CLASSES]);

impl Drop for Cache {
    fn drop(&mut self) {
        // The pointer must not outlive the cache (this kernel thread's TLS is being destroyed).
        let _ = CACHE.try_with(|c| c.set(std::ptr::null_mut()));
        for (i, v) in self.0.iter_mut().enumerate() {
            for p in v.drain(..) {
                // SAFETY: every cached pointer was allocated with class `i`'s layout.
                unsafe { alloc::dealloc(p.as_ptr(), class_layout(i)) };
            }
        }
    }
}

thread_local! {
    /// This kernel thread's cache.
    static OWN: UnsafeCell<Cache> = const {
        UnsafeCell::new(Cache([const { Vec::new() }; CLASSES]))
    };
    /// The cache this thread uses: its own, or on a green thread its worker's (mirrored).
    static CACHE: Cell<*mut Cache> = const { Cell::new(std::ptr::null_mut()) };
}

/// The calling thread's cache, if it still has one (not during its TLS destruction).
#[inline]
fn cache() -> Option<*mut Cache> {
    let p = CACHE.with(|c| c.get());
    if !p.is_null() {
        return Some(p);
    }
    let own = OWN.try_with(|o| o.get()).ok()?;
    CACHE.with(|c| c.set(own));
    Some(own)
}

/// A worker kernel thread starts: its green threads will use its cache.
pub(crate) fn worker_started() {
    let _ = cache();
    crate::tls::mirror(CACHE.with(|c| c.as_ptr().cast::<usize>().cast_const()));
}

fn class_layout(i: usize) -> Layout {
    // Cannot fail: a small multiple of 64 with alignment 16.
    Layout::from_size_align((i + 1) * CLASS, 16).expect("cell class layout")
}

/// The class of `layout`, if it has one.
#[inline]
fn class_of(layout: Layout) -> Option<usize> {
    if layout.align() > 16 || layout.size() > CLASS * CLASSES {
        return None;
    }
    Some(layout.size().div_ceil(CLASS).max(1) - 1)
}

/// Memory for a value of `layout` (never null; aborts like `Box` when out of memory).
#[inline]
pub(crate) fn alloc(layout: Layout) -> *mut u8 {
    let Some(i) = class_of(layout) else {
        return raw_alloc(layout);
    };
    // SAFETY: the cache is this kernel thread's (its green threads never run at the same time as
    // one another or as it), and nothing here re-enters it.
    let cached = cache().and_then(|c| unsafe { (*c).0[i].pop() });
    match cached {
        Some(p) => p.as_ptr(),
        None => raw_alloc(class_layout(i)),
    }
}

fn raw_alloc(layout: Layout) -> *mut u8 {
    // SAFETY: cell layouts have a non-zero size (they start with a header).
    let p = unsafe { alloc::alloc(layout) };
    if p.is_null() {
        alloc::handle_alloc_error(layout);
    }
    p
}

/// Gives back memory from [`alloc`] for a value of `layout`.
///
/// # Safety
/// `p` came from `alloc(layout)` with the same `layout`, and is not used afterwards.
#[inline]
pub(crate) unsafe fn free(p: *mut u8, layout: Layout) {
    let Some(i) = class_of(layout) else {
        // SAFETY: allocated with exactly this layout (no class).
        unsafe { alloc::dealloc(p, layout) };
        return;
    };
    // SAFETY: `p` is non-null (it came from `alloc`).
    let nn = unsafe { NonNull::new_unchecked(p) };
    // SAFETY: as in `alloc`.
    let kept = cache().is_some_and(|c| unsafe {
        let v = &mut (*c).0[i];
        if v.len() < KEEP {
            v.push(nn);
            true
        } else {
            false
        }
    });
    if !kept {
        // SAFETY: allocated with class `i`'s layout.
        unsafe { alloc::dealloc(p, class_layout(i)) };
    }
}
