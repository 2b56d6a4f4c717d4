//! What hilos must know of glibc's thread-local storage to give a green thread its own: the
//! static TLS blocks of the loaded modules, the thread control block (`struct pthread`) at the
//! thread pointer, and a few fields inside libc's own block.
//!
//! Found at run time where glibc tells: `dl_iterate_phdr` (each module's PT_TLS init image and
//! sizes, and where this thread's block is), `_dl_get_tls_static_info` (the whole static area:
//! blocks, the surplus kept for later `dlopen`s, and the control block), libc's exported
//! `*_location` accessors, `__rseq_offset`. Malloc's `tcache` and `thread_arena` have no symbol:
//! they are found by probing (a freed chunk's tcache entry; a fresh thread's arena). The layout of
//! `struct pthread` itself is a table per glibc version, checked against what can be observed
//! (`%fs:0 == %fs:0x10 == the thread pointer`, the kernel tid, `__rseq_offset`); anything that
//! does not match makes the whole mechanism unavailable, never a guess.

use std::ffi::{CStr, c_void};

use super::arch_tp;

/// glibc 2.36's `struct pthread`: offsets of the fields hilos sets or reads, for x86_64 (TLS
/// variant II: the structure sits at the thread pointer, its `tcbhead_t` first) and aarch64
/// (variant I: it sits just below the thread pointer, which points at a 16-byte `tcbhead_t`).
/// Read off libc6-dbg 2.36-9 (`ptype /o` on x86_64, pahole on the arm64 package); the two agree
/// but for the header (704 bytes of `tcbhead_t` on x86_64, a 192-byte union on aarch64). Checked
/// at run time where observable.
pub(super) mod pthread {
    #[cfg(target_arch = "x86_64")]
    const HEADER: usize = 704;
    #[cfg(not(target_arch = "x86_64"))]
    const HEADER: usize = 192;

    #[cfg(target_arch = "x86_64")]
    pub(crate) const SIZE: usize = 2368;
    #[cfg(not(target_arch = "x86_64"))]
    pub(crate) const SIZE: usize = 1856;
    /// Where `struct pthread` starts, from the thread pointer.
    #[cfg(target_arch = "x86_64")]
    pub(crate) const FROM_TP: isize = 0;
    #[cfg(not(target_arch = "x86_64"))]
    pub(crate) const FROM_TP: isize = -(SIZE as isize);
    /// Where the dtv pointer is, from the thread pointer (`tcbhead_t.dtv`).
    #[cfg(target_arch = "x86_64")]
    pub(crate) const DTV_FROM_TP: isize = 0x8;
    #[cfg(not(target_arch = "x86_64"))]
    pub(crate) const DTV_FROM_TP: isize = 0;
    /// `header.multiple_threads`.
    #[cfg(target_arch = "x86_64")]
    pub(crate) const MULTIPLE_THREADS: usize = 0x18;
    #[cfg(not(target_arch = "x86_64"))]
    pub(crate) const MULTIPLE_THREADS: usize = 0;

    /// x86_64 `tcbhead_t.tcb`: the thread pointer itself (`%fs:0`, used for every TLS address).
    pub(crate) const TCB: usize = 0x0;
    /// x86_64 `tcbhead_t.self`: `THREAD_SELF`, what `pthread_self()` returns.
    pub(crate) const SELF: usize = 0x10;
    /// x86_64 `tcbhead_t.sysinfo`.
    pub(crate) const SYSINFO: usize = 0x20;
    /// x86_64: the stack protector's canary (`%fs:0x28`; a global on aarch64).
    pub(crate) const STACK_GUARD: usize = 0x28;
    /// x86_64: the pointer-mangling guard (`%fs:0x30`; a global on aarch64).
    pub(crate) const POINTER_GUARD: usize = 0x30;
    /// x86_64 `tcbhead_t.feature_1` (CET).
    pub(crate) const FEATURE_1: usize = 0x48;

    pub(crate) const LIST: usize = HEADER;
    /// The kernel thread id (`pid_t`).
    pub(crate) const TID: usize = HEADER + 16;
    pub(crate) const ROBUST_PREV: usize = HEADER + 24;
    /// `robust_head`: `{ list, futex_offset, list_op_pending }`.
    pub(crate) const ROBUST_HEAD: usize = HEADER + 32;
    pub(crate) const CANCELHANDLING: usize = HEADER + 72;
    pub(crate) const FLAGS: usize = HEADER + 76;
    /// `specific_1stblock`: `struct pthread_key_data { seq, data }[32]`.
    pub(crate) const SPECIFIC_1ST: usize = HEADER + 80;
    /// `specific`: `struct pthread_key_data *[32]`.
    pub(crate) const SPECIFIC: usize = HEADER + 592;
    pub(crate) const SPECIFIC_USED: usize = HEADER + 848;
    pub(crate) const USER_STACK: usize = HEADER + 850;
    pub(crate) const JOINID: usize = HEADER + 864;
    /// `schedparam` then `schedpolicy`, 4 bytes each.
    pub(crate) const SCHEDPARAM: usize = HEADER + 880;
    pub(crate) const STACKBLOCK: usize = HEADER + 976;
    pub(crate) const STACKBLOCK_SIZE: usize = HEADER + 984;
    /// The resolver state `struct __res_state` (568 bytes); `__resp` points here.
    pub(crate) const RES: usize = HEADER + 1016;
    pub(crate) const RES_SIZE: usize = 568;
    pub(crate) const SIGMASK: usize = HEADER + 1584;
    /// `tls_state`: `{ strsignal_buf, strerror_l_buf }`, malloc'ed on demand.
    pub(crate) const TLS_STATE: usize = HEADER + 1600;
    /// `rseq_area`: `{ cpu_id_start: u32, cpu_id: u32, rseq_cs: u64, flags: u32 }`.
    pub(crate) const RSEQ_AREA: usize = HEADER + 1632;

    #[cfg(target_arch = "x86_64")]
    const _: () = assert!(TID == 720 && SPECIFIC == 1296 && RES == 1720 && RSEQ_AREA == 2336);
    #[cfg(not(target_arch = "x86_64"))]
    const _: () = assert!(TID == 208 && SPECIFIC == 784 && RES == 1208 && RSEQ_AREA == 1824);

    /// The `struct pthread` of the thread whose thread pointer is `tp`.
    pub(crate) fn of(tp: usize) -> usize {
        tp.wrapping_add_signed(FROM_TP)
    }
}

/// glibc 2.36's `struct rtld_global` (ld.so's writable state, exported as `_rtld_global`):
/// offsets of the loader's lock and of the static TLS bookkeeping. Read off the same debug
/// packages (`ptype /o struct rtld_global` on x86_64, pahole on arm64); checked at run time
/// (the lock's kind, `dl_tls_static_used` against the blocks seen, looked for near the table's
/// offset) before anything is written.
mod rtld {
    /// `_dl_load_lock`: a recursive `pthread_mutex_t`, held by `dlopen` while it places a
    /// module's TLS.
    #[cfg(target_arch = "x86_64")]
    pub(super) const LOAD_LOCK: usize = 2568;
    #[cfg(not(target_arch = "x86_64"))]
    pub(super) const LOAD_LOCK: usize = 2696;
    /// `_dl_tls_static_used`: how much of the static area modules occupy; what `dlopen` gives a
    /// later module with static TLS is carved after it.
    #[cfg(target_arch = "x86_64")]
    pub(super) const STATIC_USED: usize = 4224;
    #[cfg(not(target_arch = "x86_64"))]
    pub(super) const STATIC_USED: usize = 4408;
    // `_dl_tls_static_optional` follows it: the part of the surplus glibc may hand out unasked
    // (TLS descriptors).
    /// `pthread_mutex_t.__kind` and glibc's `PTHREAD_MUTEX_RECURSIVE_NP`.
    pub(super) const MUTEX_KIND: usize = 16;
    pub(super) const RECURSIVE: u32 = 1;
}

/// Closes glibc's static TLS surplus to modules loaded from now on, so that a green thread's area
/// needs no room for it: sets `dl_tls_static_used` to the whole static size (and the optional
/// budget to 0), under the loader's lock, after checking that the field holds `used`, the extent
/// of the blocks seen. From then on `dlopen` of a library that needs static TLS (initial-exec
/// model) fails with glibc's "cannot allocate memory in static TLS block", and TLSDESC accesses
/// use dynamic TLS (per thread through the dtv, so per green thread too). Returns whether it was
/// closed; if the checks fail nothing is written and areas keep room for the surplus.
fn close_surplus(static_size: usize, used: usize) -> bool {
    let g = sym(c"_rtld_global") as usize;
    if g == 0 {
        return false;
    }
    let lock = g + rtld::LOAD_LOCK;
    let kind = read_word(lock + rtld::MUTEX_KIND).map(|w| w as u32);
    if kind != Some(rtld::RECURSIVE) {
        return false;
    }
    // Builds of 2.36 differ by a word or two before these fields (Debian's arm64 cross libc
    // has them 8 bytes lower than its native one): look near the table's offset for the one
    // place that holds `used` followed by an optional budget no larger than the surplus.
    let hits: Vec<usize> = (rtld::STATIC_USED - 64..=rtld::STATIC_USED + 64)
        .step_by(8)
        .filter(|&o| {
            read_word(g + o) == Some(used)
                && read_word(g + o + 8).is_some_and(|opt| opt <= static_size - used)
        })
        .collect();
    let [at] = hits[..] else {
        return false;
    };
    // Full: variant II counts `struct pthread` in the static size and wants room for it above
    // the used part; variant I counts only the blocks (and the 16-byte tcbhead_t).
    let full = if cfg!(target_arch = "x86_64") {
        static_size - pthread::SIZE
    } else {
        static_size
    };
    // SAFETY: `lock` is ld.so's recursive loader mutex (its kind checked above), which ld.so
    // itself locks with libc's pthread_mutex_lock; the two words written are `size_t` fields of
    // `_rtld_global`, read under that lock by everything that places static TLS.
    unsafe {
        let m = lock as *mut libc::pthread_mutex_t;
        if libc::pthread_mutex_lock(m) != 0 {
            return false;
        }
        let used_at = (g + at) as *mut usize;
        let ok = *used_at == used;
        if ok {
            *used_at = full;
            *used_at.add(1) = 0; // `_dl_tls_static_optional`
        }
        libc::pthread_mutex_unlock(m);
        ok
    }
}

/// One module's static TLS block.
#[derive(Debug, Clone)]
pub(super) struct Block {
    /// The module's TLS id (its index in a dtv).
    pub(super) modid: usize,
    /// Where the block is from the thread pointer: `tp + off` (below it on x86_64, so negative;
    /// above it on aarch64).
    pub(super) off: isize,
    /// The initialisation image (`.tdata`), and its size; the rest up to `memsz` is zero.
    pub(super) image: usize,
    pub(super) filesz: usize,
    pub(super) memsz: usize,
}

/// The process's TLS layout, as hilos uses it.
#[derive(Debug)]
pub(super) struct Layout {
    /// Static blocks of the modules loaded at start (executable, libc, other libraries).
    pub(super) blocks: Vec<Block>,
    /// `_dl_get_tls_static_info`'s alignment of the static area.
    pub(super) static_align: usize,
    /// How much of the static area (beside `struct pthread`) an area holds: just the blocks of
    /// the modules loaded so far if the surplus was closed ([`close_surplus`]), else all of it.
    pub(super) kept: usize,
    /// Whether the surplus was closed to later modules.
    pub(super) surplus_closed: bool,
    /// libc's block (distance below the thread pointer) and fields inside it.
    pub(super) libc_off: isize,
    pub(super) resp_off: usize,
    pub(super) ctype_offs: [usize; 3],
    /// malloc's per-thread cache pointer in libc's block, shared with the worker; `None` if not
    /// found (glibc's malloc replaced, as under valgrind, or its cache turned off; otherwise said
    /// on stderr: each green thread would then build a cache of its own).
    pub(super) tcache_off: Option<usize>,
    /// malloc's arena pointer in libc's block, shared with the worker; `None` if not found (a
    /// green thread then picks an arena on its first allocation, as a new thread does).
    pub(super) arena_off: Option<usize>,
    /// glibc's private entry points (resolved with `dlsym`).
    pub(super) call_tls_dtors: unsafe extern "C" fn(),
    /// `__pthread_keys`: `struct pthread_key_struct { uintptr_t seq; void (*destr)(void *); }[1024]`.
    pub(super) pthread_keys: usize,
}

unsafe extern "C" {
    fn __errno_location() -> *mut i32;
    fn __ctype_b_loc() -> *mut *const u16;
    fn __ctype_tolower_loc() -> *mut *const i32;
    fn __ctype_toupper_loc() -> *mut *const i32;
    fn __res_state() -> *mut c_void;
    fn gnu_get_libc_version() -> *const libc::c_char;
}

fn sym(name: &CStr) -> *mut c_void {
    // SAFETY: a NUL-terminated name; RTLD_DEFAULT searches the global scope.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) }
}

/// Reads a word at `addr` without faulting if it is not mapped: the kernel copies it through a
/// pipe and answers `EFAULT` for a bad address (so does qemu's user-mode emulator, which
/// `process_vm_readv` would bypass; that is the fallback when no pipe can be had).
fn read_word(addr: usize) -> Option<usize> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        // No descriptor to be had (the table is full): ask the kernel to copy the word from
        // this process to itself instead, which fails with EFAULT the same way.
        let mut v = 0usize;
        let local = libc::iovec {
            iov_base: (&raw mut v).cast(),
            iov_len: 8,
        };
        let remote = libc::iovec {
            iov_base: addr as *mut c_void,
            iov_len: 8,
        };
        // SAFETY: the kernel writes at most 8 bytes into `v` and reads (or fails to) 8 at `addr`.
        let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
        return (n == 8).then_some(v);
    }
    let mut v = 0usize;
    // SAFETY: the kernel reads 8 bytes at `addr` (or fails with EFAULT) and writes at most 8
    // into `v`; both descriptors are ours and closed here.
    let ok = unsafe {
        let ok = crate::real::write(fds[1], addr as *const c_void, 8) == 8
            && crate::real::read(fds[0], (&raw mut v).cast(), 8) == 8;
        libc::close(fds[0]);
        libc::close(fds[1]);
        ok
    };
    ok.then_some(v)
}

/// Reads the word at `base + off` of the calling thread's own TLS or control block.
///
/// # Safety
/// `base + off` is a readable, aligned word.
unsafe fn word(base: usize, off: usize) -> usize {
    // SAFETY: per the contract.
    unsafe { *((base + off) as *const usize) }
}

/// The static blocks of the loaded modules, as seen from the calling thread (pointer `tp`).
fn blocks(tp: usize, static_size: usize) -> Vec<Block> {
    unsafe extern "C" fn each(info: *mut libc::dl_phdr_info, _: usize, data: *mut c_void) -> i32 {
        // SAFETY: dl_iterate_phdr passes a valid record, and `data` is the Vec below.
        let (info, out) = unsafe { (&*info, &mut *data.cast::<Vec<(usize, Block)>>()) };
        for i in 0..info.dlpi_phnum as usize {
            // SAFETY: `dlpi_phdr` has `dlpi_phnum` entries.
            let ph = unsafe { &*info.dlpi_phdr.add(i) };
            if ph.p_type == libc::PT_TLS {
                out.push((
                    info.dlpi_tls_data as usize,
                    Block {
                        modid: info.dlpi_tls_modid,
                        off: 0,
                        image: info.dlpi_addr as usize + ph.p_vaddr as usize,
                        filesz: ph.p_filesz as usize,
                        memsz: ph.p_memsz as usize,
                    },
                ));
            }
        }
        0
    }
    let mut found: Vec<(usize, Block)> = Vec::new();
    // SAFETY: the callback only reads the records and pushes into `found`.
    unsafe { libc::dl_iterate_phdr(Some(each), (&raw mut found).cast()) };
    found
        .into_iter()
        // A block in the static area lies just below the thread pointer; a dlopen'ed module's
        // dynamic block lives in the heap and is allocated per thread on first use (per green
        // thread too, through its own dtv).
        .filter(|(addr, _)| addr.abs_diff(tp) < static_size)
        .map(|(addr, mut b)| {
            b.off = addr.wrapping_sub(tp) as isize;
            b
        })
        .collect()
}

/// Finds malloc's `tcache` pointer in libc's block: after `malloc(64)` and `free`, the tcache
/// (`{ u16 counts[64]; void *entries[64] }`) holds the chunk in bin 3.
fn probe_tcache(libc_block: usize, memsz: usize) -> Option<usize> {
    // SAFETY: a plain allocation and free.
    let p = unsafe {
        let p = libc::malloc(64);
        libc::free(p);
        p as usize
    };
    (0..memsz).step_by(8).find(|&off| {
        // SAFETY: `off` is inside libc's block of this thread.
        let w = unsafe { word(libc_block, off) };
        w != 0
            && w % 16 == 0
            && read_word(w).is_some_and(|c| (c >> 48) & 0xffff != 0)
            && read_word(w + 128 + 3 * 8) == Some(p)
    })
}

/// Finds `thread_arena` in libc's block, in a fresh kernel thread: its first allocation attaches
/// it to a secondary arena, whose heap is aligned to 64 MiB and starts with a pointer to the arena.
fn probe_arena(libc_off: isize, memsz: usize) -> Option<usize> {
    std::thread::Builder::new()
        .name("hilos-tls-probe".into())
        .spawn(move || {
            // SAFETY: a plain allocation, read back through the checked reader, then freed.
            unsafe {
                let p = libc::malloc(1000) as usize;
                let ar = read_word(p & !((64 << 20) - 1));
                let block = arch_tp().wrapping_add_signed(libc_off);
                let hits: Vec<usize> = (0..memsz)
                    .step_by(8)
                    .filter(|&o| Some(word(block, o)) == ar)
                    .collect();
                libc::free(p as *mut c_void);
                (hits.len() == 1).then(|| hits[0])
            }
        })
        .ok()?
        .join()
        .ok()?
}

impl Layout {
    /// Discovers the layout from the calling thread, or says why per-green-thread TLS cannot be
    /// had with this libc.
    pub(super) fn discover() -> Result<Layout, String> {
        // SAFETY: glibc returns a static NUL-terminated string.
        let ver = unsafe { CStr::from_ptr(gnu_get_libc_version()) }.to_string_lossy();
        if ver != "2.36" {
            return Err(format!(
                "glibc {ver}: its thread control block layout is not known to hilos (known: 2.36)"
            ));
        }
        let tp = arch_tp();
        let pd = pthread::of(tp);
        // SAFETY: pthread_self() returns THREAD_SELF; the tid field is inside a live control
        // block once that matches; gettid is a plain system call.
        let (slf, tid, real_tid) = unsafe {
            let slf = libc::pthread_self() as usize;
            let tid = if slf == pd {
                *((pd + pthread::TID) as *const i32)
            } else {
                0
            };
            (slf, tid, libc::gettid())
        };
        // SAFETY: on x86_64 the control block's first word is at the thread pointer.
        let tcb_ok = !cfg!(target_arch = "x86_64") || unsafe { word(tp, pthread::TCB) } == tp;
        if slf != pd || tid != real_tid || !tcb_ok {
            return Err("the thread control block does not look like glibc 2.36's".into());
        }
        let rseq = sym(c"__rseq_offset");
        let rseq_at = pthread::RSEQ_AREA as isize + pthread::FROM_TP;
        // SAFETY: `__rseq_offset` is a `ptrdiff_t` exported by glibc 2.35+.
        if rseq.is_null() || unsafe { *(rseq as *const isize) } != rseq_at {
            return Err("__rseq_offset is not where glibc 2.36 puts it".into());
        }
        let info = sym(c"_dl_get_tls_static_info");
        let dtors = sym(c"__call_tls_dtors");
        let keys = sym(c"__pthread_keys");
        if info.is_null() || dtors.is_null() || keys.is_null() {
            return Err("glibc's private TLS entry points are missing".into());
        }
        let (mut static_size, mut static_align) = (0usize, 0usize);
        // SAFETY: `_dl_get_tls_static_info(size_t *, size_t *)` in ld.so.
        unsafe {
            let f: unsafe extern "C" fn(*mut usize, *mut usize) = std::mem::transmute(info);
            f(&mut static_size, &mut static_align);
        }
        if static_size < pthread::SIZE || !static_align.is_power_of_two() || static_align > 4096 {
            return Err(format!(
                "unexpected static TLS size {static_size} / alignment {static_align}"
            ));
        }
        let blocks = blocks(tp, static_size);
        // SAFETY: errno's address in this thread is in libc's block.
        let errno = unsafe { __errno_location() } as usize;
        let libc_block = blocks
            .iter()
            .find(|b| {
                let at = tp.wrapping_add_signed(b.off);
                (at..at + b.memsz).contains(&errno)
            })
            .ok_or("libc's TLS block was not found")?
            .clone();
        let lb = tp.wrapping_add_signed(libc_block.off);
        let rel = |a: usize| a.checked_sub(lb).filter(|&o| o < libc_block.memsz);
        // SAFETY: plain accessors of this thread's libc state.
        let (resp, ctype) = unsafe {
            (
                __res_state() as usize,
                [
                    __ctype_b_loc() as usize,
                    __ctype_tolower_loc() as usize,
                    __ctype_toupper_loc() as usize,
                ],
            )
        };
        let resp_off = (0..libc_block.memsz)
            .step_by(8)
            // SAFETY: inside this thread's libc block.
            .find(|&o| unsafe { word(lb, o) } == resp)
            .ok_or("__resp was not found in libc's TLS block")?;
        let ctype_offs = [
            rel(ctype[0]).ok_or("ctype state outside libc's block")?,
            rel(ctype[1]).ok_or("ctype state outside libc's block")?,
            rel(ctype[2]).ok_or("ctype state outside libc's block")?,
        ];
        // Under Valgrind malloc is Valgrind's: there is no tcache or arena to find (and the
        // probes' reads of maybe-unmapped words would be reported as errors).
        let (tcache_off, arena_off) = if crate::arch::valgrind::under_valgrind() {
            (None, None)
        } else {
            (
                probe_tcache(lb, libc_block.memsz),
                probe_arena(libc_block.off, libc_block.memsz),
            )
        };
        if tcache_off.is_none() && !crate::arch::valgrind::under_valgrind() {
            eprintln!(
                "hilos: malloc's per-thread cache was not found in libc's thread-local storage \
                 (malloc replaced, or its cache turned off?); if glibc's malloc is in use, each \
                 green thread that allocates builds a cache of its own"
            );
        }
        // The blocks' extent: glibc's `dl_tls_static_used` (variant II: the largest distance
        // below the thread pointer; variant I: the end of the last block, the 16-byte tcbhead_t
        // included).
        let used = if cfg!(target_arch = "x86_64") {
            blocks.iter().map(|b| b.off.unsigned_abs()).max()
        } else {
            blocks.iter().map(|b| b.off as usize + b.memsz).max()
        }
        .unwrap_or(0);
        let full = if cfg!(target_arch = "x86_64") {
            static_size - pthread::SIZE
        } else {
            static_size
        };
        let surplus_closed = used <= full && close_surplus(static_size, used);
        Ok(Layout {
            blocks,
            static_align,
            kept: if surplus_closed { used } else { full },
            surplus_closed,
            libc_off: libc_block.off,
            resp_off,
            ctype_offs,
            tcache_off,
            arena_off,
            // SAFETY: `void __call_tls_dtors(void)`.
            call_tls_dtors: unsafe {
                std::mem::transmute::<*mut c_void, unsafe extern "C" fn()>(dtors)
            },
            pthread_keys: keys as usize,
        })
    }
}
