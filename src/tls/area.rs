//! One green thread's TLS area, at the top of its stack mapping, laid out as glibc lays out a
//! thread's: on x86_64 (variant II) `[static TLS blocks | struct pthread copy]` with the thread
//! pointer between the blocks and the copy; on aarch64 (variant I) `[struct pthread copy |
//! tcbhead_t (16 bytes) | static TLS blocks]` with the thread pointer at `tcbhead_t`. glibc's
//! surplus (room it keeps after the blocks for modules `dlopen`ed later, 1.6 KiB by default) is
//! closed when the layout is discovered (`glibc::close_surplus`), so an area has no room for it:
//! a parked thread's area and stack frames then fit one page where they can (the area is 3.3 KiB
//! on x86_64 for hilos's harness). If it could not be closed, the area keeps room for it.
//!
//! Life of an area, in the order the calls come:
//! 1. [`prepare`] at the thread's first run, on the worker that runs it, when its stack is bound:
//!    the control block's process-wide fields (canary, pointer guard) and self pointers. An area
//!    that is being reused (the stack came back from a thread that exited cleanly) keeps its
//!    control block as it was.
//! 2. [`first_run`] on the worker that first runs the thread (the thread stays there): the blocks,
//!    copied in one go from the worker's *template* ([`Template`]: every block's init image, with
//!    libc's fields that belong to that kernel thread (ctype tables, malloc's tcache and arena)
//!    and the per-worker slots hilos mirrors already in place), the tid, and the `dtv`.
//! 3. [`exit_destructors`] on the green thread itself when its closure has returned: glibc's
//!    `__cxa_thread_atexit` list (Rust's and C++'s `thread_local` destructors), then the pthread
//!    key destructors (std's thread-exit cleanup is one), as glibc runs them for a kernel thread.
//! 4. [`after_exit`] on the worker once the thread switched away for good: the dtv and the
//!    dynamic TLS blocks it allocated are freed, and the area is marked clean for reuse.

use std::ptr;

use super::glibc::{Layout, pthread as P};

/// Writes `v` at `base + off`.
///
/// # Safety
/// `base + off` is valid for a write of `T` and aligned for it.
#[inline(always)]
unsafe fn put<T>(base: usize, off: usize, v: T) {
    // SAFETY: per the contract.
    unsafe { ptr::write((base + off) as *mut T, v) }
}

/// Reads the `T` at `base + off`.
///
/// # Safety
/// `base + off` is valid for a read of `T` and aligned for it.
#[inline(always)]
unsafe fn get<T: Copy>(base: usize, off: usize) -> T {
    // SAFETY: per the contract.
    unsafe { ptr::read((base + off) as *const T) }
}

/// How far an area reaches below and above its thread pointer: variant II (x86_64) has the
/// blocks (and the surplus, if it is not closed) below it and `struct pthread` above it; variant
/// I (aarch64) has `struct pthread` below it and the 16-byte control block and the blocks (and
/// the surplus, if not closed) above it.
fn span(l: &Layout) -> (usize, usize) {
    if cfg!(target_arch = "x86_64") {
        (l.kept, P::SIZE)
    } else {
        (P::SIZE, l.kept)
    }
}

/// Bytes an area takes at the top of a stack mapping (a multiple of 16).
pub(super) fn size(l: &Layout) -> usize {
    let (below, above) = span(l);
    (below + above + l.static_align + 15) & !15
}

/// The thread pointer of the area whose highest address (exclusive) is `top`.
pub(super) fn tp_of(l: &Layout, top: usize) -> usize {
    (top - span(l).1) & !(l.static_align - 1)
}

/// Where the area's dtv pointer is.
fn dtv_slot(tp: usize) -> usize {
    tp.wrapping_add_signed(P::DTV_FROM_TP)
}

/// Builds (or, for a clean reused area, refreshes) the area below `top`, for a thread whose stack
/// is `stack` (lowest address, size), with the process-wide fields of the live thread whose
/// thread pointer is `model_tp`. Returns the area's thread pointer.
///
/// # Safety
/// `[top - size(l), top)` is writable memory owned by the caller, not used by a running thread,
/// and `model_tp` is the thread pointer of a live thread of this process.
pub(super) unsafe fn prepare(
    l: &Layout,
    top: usize,
    stack: (usize, usize),
    model_tp: usize,
) -> usize {
    let tp = tp_of(l, top);
    let pd = P::of(tp);
    // SAFETY: every address written is inside the caller's area (`struct pthread` at `pd`), and
    // the model's fields read are inside a live control block.
    unsafe {
        if get::<usize>(pd, P::JOINID) == pd {
            // A clean area from an earlier thread (`after_exit`): its control block is as
            // `init_tcb` left it, but for the stack, which may be of another size now.
            put::<usize>(pd, P::STACKBLOCK, stack.0);
            put::<usize>(pd, P::STACKBLOCK_SIZE, stack.1);
        } else {
            init_tcb(tp, stack, model_tp);
        }
    }
    tp
}

/// A fresh control block for the area at `tp`, with the process-wide fields copied from
/// `model_tp`'s. `joinid` pointing at the structure itself marks it built (and detached).
///
/// # Safety
/// As [`prepare`].
unsafe fn init_tcb(tp: usize, stack: (usize, usize), model_tp: usize) {
    let pd = P::of(tp);
    let mpd = P::of(model_tp);
    // SAFETY: per the contract (see `prepare`).
    unsafe {
        ptr::write_bytes(pd as *mut u8, 0, P::SIZE);
        if cfg!(target_arch = "x86_64") {
            // `%fs:0` must be the thread pointer itself (TLS addresses are computed from it), and
            // THREAD_SELF the copy: glibc reaches "its own thread" both through it and directly
            // through %fs, so the two must be the same structure (pthread keys, dlopen'ed TLS).
            put::<usize>(tp, P::TCB, tp);
            put::<usize>(tp, P::SELF, tp);
            // Process-wide: the vsyscall entry, the stack protector's canary (C code compiled
            // with -fstack-protector checks %fs:0x28 on return), the pointer guard, CET features.
            for o in [P::SYSINFO, P::STACK_GUARD, P::POINTER_GUARD] {
                put::<usize>(tp, o, get::<usize>(model_tp, o));
            }
            put::<u32>(tp, P::FEATURE_1, get::<u32>(model_tp, P::FEATURE_1));
        } else {
            // aarch64: the 16-byte tcbhead_t { dtv, private } at the thread pointer; THREAD_SELF
            // is computed from the thread pointer, the canary and pointer guard are globals.
            ptr::write_bytes(tp as *mut u8, 0, 16);
        }
        // Never let libc take single-thread shortcuts on a green thread.
        put::<i32>(pd, P::MULTIPLE_THREADS, 1);
        // In no glibc thread list (self-linked), an empty robust list.
        put::<usize>(pd, P::LIST, pd + P::LIST);
        put::<usize>(pd, P::LIST + 8, pd + P::LIST);
        put::<usize>(pd, P::ROBUST_PREV, pd + P::ROBUST_HEAD);
        put::<usize>(pd, P::ROBUST_HEAD, pd + P::ROBUST_HEAD);
        put::<isize>(
            pd,
            P::ROBUST_HEAD + 8,
            get::<isize>(mpd, P::ROBUST_HEAD + 8),
        );
        put::<i32>(pd, P::FLAGS, get::<i32>(mpd, P::FLAGS));
        // specific[0] = the first block of pthread key data.
        put::<usize>(pd, P::SPECIFIC, pd + P::SPECIFIC_1ST);
        // glibc must never free this "stack", and pthread_join on it fails (detached).
        put::<u8>(pd, P::USER_STACK, 1);
        put::<usize>(pd, P::JOINID, pd);
        put::<u64>(pd, P::SCHEDPARAM, get::<u64>(mpd, P::SCHEDPARAM));
        // glibc bounds its own alloca use by this stack's size (`__libc_alloca_cutoff`).
        put::<usize>(pd, P::STACKBLOCK, stack.0);
        put::<usize>(pd, P::STACKBLOCK_SIZE, stack.1);
        put::<u64>(pd, P::SIGMASK, get::<u64>(mpd, P::SIGMASK));
        // rseq: the kernel updates only the area registered by the worker, so this copy would
        // go stale; RSEQ_CPU_ID_REGISTRATION_FAILED (-2) makes sched_getcpu() ask the kernel.
        put::<i32>(pd, P::RSEQ_AREA + 4, -2);
    }
}

/// A worker's ready-made static TLS, the bytes `[tp + lo, tp + lo + len)` of a fresh area on that
/// worker (all of it but the control block): each block's init image, zeros elsewhere, libc's fields that belong to the worker kernel
/// thread (the ctype tables, and malloc's tcache and arena, shared with the worker so a green
/// thread's frees stay usable and nothing is cached per green thread), and the worker's values
/// of the slots hilos mirrors (`super::mirror`). A thread's first run copies it whole.
pub(super) struct Template {
    lo: isize,
    bytes: Box<[u8]>,
}

impl Template {
    /// A placeholder, before the worker's template is built.
    pub(super) fn empty() -> Template {
        Template {
            lo: 0,
            bytes: Box::new([]),
        }
    }

    /// The template of the calling worker kernel thread (thread pointer `worker_tp`), whose
    /// mirrored slots are set; `mirrors` are their offsets from the thread pointer.
    ///
    /// # Safety
    /// `worker_tp` is the calling kernel thread's own thread pointer.
    pub(super) unsafe fn new(l: &Layout, worker_tp: usize, mirrors: &[isize]) -> Template {
        // The whole kept static area but the control block: the blocks, and glibc's surplus if it
        // is not closed, so that a reused area keeps nothing of its previous thread there either.
        let (below, above) = span(l);
        let (lo, hi) = if cfg!(target_arch = "x86_64") {
            (-(below as isize), 0)
        } else {
            (16, above as isize) // past the 16-byte tcbhead_t (its dtv pointer stays)
        };
        debug_assert!(
            l.blocks
                .iter()
                .all(|b| b.off >= lo && b.off + b.memsz as isize <= hi)
        );
        let mut bytes = vec![0u8; (hi - lo) as usize].into_boxed_slice();
        // Where the thread pointer would be if the template were an area.
        let tp = (bytes.as_mut_ptr() as usize).wrapping_add_signed(-lo);
        // SAFETY: every block lies in `[tp + lo, tp + hi)`; the worker's libc fields and mirrored
        // slots are words of its own live TLS, and mirrored slots lie in the executable's block.
        unsafe {
            for b in &l.blocks {
                let dst = tp.wrapping_add_signed(b.off) as *mut u8;
                ptr::copy_nonoverlapping(b.image as *const u8, dst, b.filesz);
            }
            let lb = tp.wrapping_add_signed(l.libc_off);
            let wlb = worker_tp.wrapping_add_signed(l.libc_off);
            let malloc = [l.tcache_off, l.arena_off];
            for &o in l.ctype_offs.iter().chain(malloc.iter().flatten()) {
                ptr::write_unaligned((lb + o) as *mut usize, get::<usize>(wlb, o));
            }
            for &off in mirrors {
                let v = get::<usize>(worker_tp.wrapping_add_signed(off), 0);
                ptr::write_unaligned(tp.wrapping_add_signed(off) as *mut usize, v);
            }
        }
        Template { lo, bytes }
    }
}

/// Makes the area at `tp` belong to the calling worker kernel thread (pointer `worker_tp`),
/// whose template is `t`: its blocks, `__resp` (this control block's resolver state), its tid,
/// and its `dtv`.
///
/// # Safety
/// `tp` is an area made by [`prepare`] whose thread has not run; `worker_tp` the calling kernel
/// thread's real thread pointer, `t` its template.
pub(super) unsafe fn first_run(l: &Layout, t: &Template, tp: usize, worker_tp: usize) {
    let pd = P::of(tp);
    // SAFETY: the template covers exactly the area's blocks; both control blocks are live and of
    // this layout.
    unsafe {
        let dst = tp.wrapping_add_signed(t.lo) as *mut u8;
        ptr::copy_nonoverlapping(t.bytes.as_ptr(), dst, t.bytes.len());
        put::<usize>(tp.wrapping_add_signed(l.libc_off), l.resp_off, pd + P::RES);
        put::<i32>(pd, P::TID, get::<i32>(P::of(worker_tp), P::TID));
        // An area keeps its dtv between threads, reset by `after_exit`.
        if get::<usize>(dtv_slot(tp), 0) == 0 {
            put::<usize>(dtv_slot(tp), 0, new_dtv(l, tp));
        }
    }
}

/// A dtv for the area at `tp`, shaped as glibc's (`arr[0]` the length, the dtv at `&arr[1]`,
/// 16-byte entries, entry 0 the generation): as long as the modules loaded at start (which all
/// have static blocks), whose entries point into the area, and of generation 0, so that glibc's
/// `__tls_get_addr` brings it up to date (growing it with `realloc`, and allocating blocks of
/// `dlopen`ed modules for this thread) the first time this thread touches such a module's TLS.
/// Hence malloc'ed, and small.
///
/// # Safety
/// `tp` is an area of this layout.
unsafe fn new_dtv(l: &Layout, tp: usize) -> usize {
    let len = l.blocks.iter().map(|b| b.modid).max().unwrap_or(0);
    // SAFETY: a fresh allocation of `len + 2` entries; each module id is in `1..=len`.
    unsafe {
        let arr = libc::calloc(len + 2, 16) as *mut usize;
        if arr.is_null() {
            std::alloc::handle_alloc_error(std::alloc::Layout::from_size_align_unchecked(
                (len + 2) * 16,
                16,
            ));
        }
        *arr = len;
        let dtv = arr.add(2);
        fill_static(l, dtv, tp);
        dtv as usize
    }
}

/// Points the dtv entries of the modules loaded at start at their blocks in the area at `tp`.
///
/// # Safety
/// `dtv` covers every module id of `l.blocks`.
unsafe fn fill_static(l: &Layout, dtv: *mut usize, tp: usize) {
    for b in &l.blocks {
        // SAFETY: per the contract; entry i is the two words at `2 * i`.
        unsafe { *dtv.add(2 * b.modid) = tp.wrapping_add_signed(b.off) };
    }
}

/// Runs the thread's TLS destructors, on the green thread itself (its own thread pointer), in
/// glibc's order: the `__cxa_thread_atexit` list, then up to four rounds of pthread key
/// destructors; then frees libc's per-thread message buffers.
///
/// # Safety
/// Called once, on a green thread with its own area (`tp` is the running thread pointer), after
/// its closure returned.
pub(super) unsafe fn exit_destructors(l: &Layout, tp: usize) {
    let pd = P::of(tp);
    // SAFETY: glibc's `__call_tls_dtors` runs this thread's list, whose head is in this area's
    // libc block; the key data walked below is this control block's, and `__pthread_keys` is
    // glibc's key table (1024 entries).
    unsafe {
        (l.call_tls_dtors)();
        // pthread_setspecific sets `specific_used` whenever it stores a value (and it alone
        // allocates second-level key blocks), so a thread that never set a key has nothing here.
        let keys_used = get::<u8>(pd, P::SPECIFIC_USED) != 0;
        for _ in 0..4 {
            if get::<u8>(pd, P::SPECIFIC_USED) == 0 {
                break;
            }
            put::<u8>(pd, P::SPECIFIC_USED, 0);
            for i1 in 0..32 {
                let level2 = get::<*mut [usize; 2]>(pd, P::SPECIFIC + 8 * i1);
                if level2.is_null() {
                    continue;
                }
                for i2 in 0..32 {
                    let d = &mut *level2.add(i2);
                    if d[1] == 0 {
                        continue;
                    }
                    let data = d[1];
                    d[1] = 0;
                    let [seq, destr] = *(l.pthread_keys as *const [usize; 2]).add(i1 * 32 + i2);
                    if seq & 1 == 1 && seq == d[0] && destr != 0 {
                        let f: unsafe extern "C" fn(usize) = std::mem::transmute(destr);
                        f(data);
                    }
                }
            }
        }
        if keys_used {
            for i1 in 1..32 {
                // Second-level key blocks were calloc'ed by pthread_setspecific.
                let p = get::<*mut libc::c_void>(pd, P::SPECIFIC + 8 * i1);
                if !p.is_null() {
                    libc::free(p);
                    put::<usize>(pd, P::SPECIFIC + 8 * i1, 0);
                }
            }
            let first_block = P::SPECIFIC - P::SPECIFIC_1ST;
            ptr::write_bytes((pd + P::SPECIFIC_1ST) as *mut u8, 0, first_block);
        }
        for o in [P::TLS_STATE, P::TLS_STATE + 8] {
            let p = get::<*mut libc::c_void>(pd, o);
            if !p.is_null() {
                libc::free(p);
                put::<usize>(pd, o, 0);
            }
        }
    }
}

/// Frees the dynamic TLS blocks the area's thread allocated once it has switched away for good,
/// and leaves the control block clean for the next thread of this stack, keeping its dtv (or,
/// if the thread changed glibc state hilos does not reset, frees the dtv too and marks the area
/// for a full rebuild).
///
/// # Safety
/// `tp` is the area of a thread that has exited and will never run again.
pub(super) unsafe fn after_exit(l: &Layout, tp: usize) {
    let pd = P::of(tp);
    // SAFETY: the dtv was made by `new_dtv`; dynamic blocks were allocated by glibc with malloc
    // (`to_free`, the entry's second word).
    unsafe {
        // A dtv glibc never brought up to date (generation 0) has allocated nothing. Otherwise
        // free the blocks it allocated for this thread and take it back to generation 0, its
        // entries of the modules loaded at start (static, in this area) as they were.
        let dtv = get::<*mut usize>(dtv_slot(tp), 0);
        if !dtv.is_null() && *dtv != 0 {
            let len = *dtv.sub(2);
            for i in 1..=len {
                let to_free = *dtv.add(2 * i + 1);
                if to_free != 0 {
                    libc::free(to_free as *mut libc::c_void);
                }
                *dtv.add(2 * i) = usize::MAX; // TLS_DTV_UNALLOCATED
                *dtv.add(2 * i + 1) = 0;
            }
            fill_static(l, dtv, tp);
            *dtv = 0;
        }
        // State a thread may leave behind that a fresh control block would not have: the
        // resolver (res_init), cancellation state, a robust list in use. Rebuild from scratch.
        let res_used = get::<u64>(pd, P::RES + 8) != 0; // `options`, RES_INIT and friends
        let dirty = res_used
            || get::<i32>(pd, P::CANCELHANDLING) != 0
            || get::<usize>(pd, P::ROBUST_HEAD) != pd + P::ROBUST_HEAD;
        if dirty {
            if res_used {
                ptr::write_bytes((pd + P::RES) as *mut u8, 0, P::RES_SIZE);
            }
            discard(tp);
        }
    }
}

/// Gives back the dtv an area keeps between threads and marks it for a full rebuild; for an
/// area that was never built (zero memory) or already discarded, nothing.
///
/// # Safety
/// `tp` is the thread pointer of an area (built or not) that no thread uses.
pub(super) unsafe fn discard(tp: usize) {
    let pd = P::of(tp);
    // SAFETY: the area's memory belongs to the caller; a built one has its dtv pointer at
    // `dtv_slot`.
    unsafe {
        if get::<usize>(pd, P::JOINID) != pd {
            return;
        }
        let dtv = get::<*mut usize>(dtv_slot(tp), 0);
        if !dtv.is_null() {
            libc::free(dtv.sub(2).cast());
            put::<usize>(dtv_slot(tp), 0, 0);
        }
        put::<usize>(pd, P::JOINID, 0);
    }
}
