//! The operating-system layer of the stack allocator: page size, the guard-mechanism probe,
//! mapping address space, installing guards, releasing memory, and turning failures into errors
//! that say what was attempted and what limit was hit.
//!
//! Nothing here keeps track of who owns what; `super` (the pools) does. The `unsafe fn`s here
//! state the ownership they need from their caller.

use std::ffi::OsStr;
use std::io;
use std::ptr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `madvise` advice installing guard markers (Linux 6.13+). Not in every libc release yet.
pub(super) const MADV_GUARD_INSTALL: libc::c_int = 102;
/// `madvise` advice removing guard markers (Linux 6.13+).
#[cfg(test)]
pub(super) const MADV_GUARD_REMOVE: libc::c_int = 103;

/// Environment variable that forces the `mprotect` fallback when set to `mprotect`.
pub(super) const GUARD_ENV: &str = "HILOS_STACK_GUARD";

/// Huge-page size above which a mapping could be backed by a transparent huge page.
const HUGE_PAGE: usize = 2 * 1024 * 1024;

/// How guard pages are made in this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mechanism {
    /// `madvise(MADV_GUARD_INSTALL)`: guard markers live in the page tables, the mapping is not
    /// split, so many stacks share one mapping (VMA).
    MadvGuard,
    /// `mprotect(PROT_NONE)` on the low page of a per-stack mapping: 2 VMAs per stack.
    Mprotect,
}

impl Mechanism {
    pub(super) fn name(self) -> &'static str {
        match self {
            Mechanism::MadvGuard => "madv_guard_install",
            Mechanism::Mprotect => "mprotect",
        }
    }
}

static MECHANISM: OnceLock<Mechanism> = OnceLock::new();

/// The guard mechanism of this process: probed (and the environment read) once.
pub(super) fn mechanism() -> Mechanism {
    *MECHANISM.get_or_init(|| {
        if std::env::var_os(GUARD_ENV).as_deref() == Some(OsStr::new("mprotect")) {
            Mechanism::Mprotect
        } else if madv_guard_supported() {
            Mechanism::MadvGuard
        } else {
            Mechanism::Mprotect
        }
    })
}

/// Asks the kernel whether `MADV_GUARD_INSTALL` works: installs a guard on a probe page and
/// checks that the page really refuses access. Older kernels answer `EINVAL`; a seccomp filter
/// might answer something else; and some environments answer success without doing anything
/// (qemu's user-mode emulator treats unknown `madvise` advice as a hint it may ignore). Trusting
/// such a success would leave every green stack without a guard, so an overflow would run into
/// the next stack instead of faulting: any failure, of the call or of the check, means "use the
/// fallback".
pub(super) fn madv_guard_supported() -> bool {
    let page = page_size();
    let Ok(base) = map_region(2 * page) else {
        return false;
    };
    // SAFETY: `base..base + page` lies inside the private mapping just created, which nobody else
    // knows about; installing a guard there cannot affect any other memory.
    let ok = unsafe { libc::madvise(base as *mut libc::c_void, page, MADV_GUARD_INSTALL) } == 0
        && refuses_reads(base)
        && !refuses_reads(base + page);
    // SAFETY: the probe mapping is ours alone and no reference into it exists.
    unsafe { unmap(base, 2 * page) };
    ok
}

/// Whether reading the byte at `addr` faults, found out without faulting: the kernel copies it
/// into a pipe and reports `EFAULT` if it cannot. `false` too if the check itself fails.
fn refuses_reads(addr: usize) -> bool {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return false;
    }
    // SAFETY: write(2) validates the source address and fails with EFAULT rather than faulting;
    // the pipe is empty, so one byte fits without blocking.
    let n = unsafe { crate::real::write(fds[1], addr as *const libc::c_void, 1) };
    let refused = n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT);
    // SAFETY: closing the two descriptors just made, which nobody else knows.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    refused
}

static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);

/// The system page size (cached after the first call).
pub(super) fn page_size() -> usize {
    let cached = PAGE_SIZE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: sysconf only reads a system constant.
    let raw = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = if raw > 0 && (raw as usize).is_power_of_two() {
        raw as usize
    } else {
        4096
    };
    PAGE_SIZE.store(page, Ordering::Relaxed);
    page
}

/// Maps `len` (page-multiple) bytes of fresh private anonymous address space, readable and
/// writable, without reserving swap or memory: pages are committed only when touched.
/// Returns the base address. The raw OS error is returned; callers add context.
pub(super) fn map_region(len: usize) -> io::Result<usize> {
    // SAFETY: a new anonymous mapping at an address of the kernel's choosing (no MAP_FIXED), so no
    // existing memory is affected.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    MAPPED.fetch_add(len, std::sync::atomic::Ordering::Relaxed);
    if len >= HUGE_PAGE {
        // A stack touches its top page first; a transparent huge page there would cost 2 MiB of
        // RSS for a 4 KiB need. Linux 6.8+ already implies this for MAP_STACK; older kernels need
        // the advice. Failure (THP compiled out) is harmless.
        // SAFETY: advice on the mapping just created, which no one else uses yet.
        unsafe { libc::madvise(p, len, libc::MADV_NOHUGEPAGE) };
    }
    Ok(p as usize)
}

/// Unmaps `addr..addr + len`.
///
/// # Safety
/// The range must be (part of) a mapping made by [`map_region`] that no live `Stack`, pooled
/// stack or other object refers to: after this call the addresses may be reused by anyone.
pub(super) unsafe fn unmap(addr: usize, len: usize) {
    // SAFETY: the caller guarantees no one refers to this range any more.
    let rc = unsafe { libc::munmap(addr as *mut libc::c_void, len) };
    debug_assert_eq!(rc, 0, "munmap({addr:#x}, {len}) failed");
    MAPPED.fetch_sub(len, std::sync::atomic::Ordering::Relaxed);
}

/// Bytes mapped by [`map_region`] (stacks, signal stacks) and not unmapped (for metrics).
static MAPPED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Bytes of stack address space currently mapped.
pub(super) fn mapped_bytes() -> usize {
    MAPPED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Bytes of `addr..addr + len` (page aligned) resident in memory, by `mincore(2)`: pages the
/// process touched and the kernel has not swapped out or reclaimed. Guard pages never are.
/// `buf` is scratch space, reused between calls. Fails if a part of the range is not (or no
/// longer) mapped, or, under qemu-user, holds a `PROT_NONE` page (the emulator refuses those;
/// the kernel does not).
pub(super) fn resident_bytes(addr: usize, len: usize, buf: &mut Vec<u8>) -> io::Result<usize> {
    /// Pages asked about per call: bounds `buf` to 16 KiB.
    const STEP: usize = 16 * 1024;
    let page = page_size();
    let mut resident = 0;
    let mut at = addr;
    let end = addr + len;
    while at < end {
        let pages = ((end - at) / page).clamp(1, STEP);
        buf.clear();
        buf.resize(pages, 0);
        // SAFETY: mincore reads the page tables of `at..at + pages * page`, never the memory
        // itself, and writes one byte per page into `buf`, which holds `pages` bytes; an
        // unmapped range fails with ENOMEM.
        let rc = unsafe {
            libc::mincore(
                at as *mut libc::c_void,
                pages * page,
                buf.as_mut_ptr().cast::<libc::c_uchar>(),
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        resident += buf.iter().filter(|&&b| b & 1 != 0).count() * page;
        at += pages * page;
    }
    Ok(resident)
}

/// Makes `addr..addr + len` a guard: any access faults.
///
/// # Safety
/// The range must be page aligned, inside a mapping made by [`map_region`], and owned by the
/// caller: no live `Stack`'s usable range overlaps it and no one holds data there (with the
/// madvise mechanism its contents are discarded).
pub(super) unsafe fn install_guard(mech: Mechanism, addr: usize, len: usize) -> io::Result<()> {
    let rc = match mech {
        // SAFETY: per the contract above the range is ours and holds nothing anyone needs.
        Mechanism::MadvGuard => unsafe {
            libc::madvise(addr as *mut libc::c_void, len, MADV_GUARD_INSTALL)
        },
        // SAFETY: as above; PROT_NONE only removes access to memory nobody uses.
        Mechanism::Mprotect => unsafe {
            libc::mprotect(addr as *mut libc::c_void, len, libc::PROT_NONE)
        },
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Gives the memory behind `addr..addr + len` back to the kernel (`MADV_DONTNEED`): the address
/// range stays mapped and reads back as zeros. Guard markers are not in this range (and survive
/// `MADV_DONTNEED` anyway on kernels that have them; see the tests).
///
/// # Safety
/// The range must be page aligned, inside a mapping made by [`map_region`], and owned by the
/// caller with no data anyone needs: the usable part of a pooled stack.
pub(super) unsafe fn release(addr: usize, len: usize) -> io::Result<()> {
    // SAFETY: per the contract, the contents are garbage nobody reads.
    let rc = unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Address space and commit a stack allocation must leave to the rest of the process, as std
/// leaves when it fails to spawn a thread: a stack that took the last of it would make the next
/// ordinary allocation (a `Vec`, a panic's backtrace) abort the process.
pub(super) const HEADROOM: usize = 64 << 20;

/// Whether [`HEADROOM`] bytes of address space and commit are still to be had: maps that much
/// (readable and writable, so strict overcommit charges it) and unmaps it at once. Only where
/// either can run out: under an address-space limit (`ulimit -v`, asked each time: a program may
/// lower it) or strict overcommit (`vm.overcommit_memory=2`); elsewhere the answer is yes.
pub(super) fn headroom_left() -> bool {
    static STRICT: OnceLock<bool> = OnceLock::new();
    let strict = *STRICT.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/vm/overcommit_memory").is_ok_and(|s| s.trim() == "2")
    });
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the limit into `lim`.
    let limited = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut lim) } == 0
        && lim.rlim_cur != libc::RLIM_INFINITY;
    if !strict && !limited {
        return true;
    }
    // SAFETY: a new private anonymous mapping at an address of the kernel's choosing, unmapped
    // right away; nothing else is affected.
    unsafe {
        let p = libc::mmap(
            ptr::null_mut(),
            HEADROOM,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return false;
        }
        libc::munmap(p, HEADROOM);
    }
    true
}

/// Wraps an OS error from `call` with context: what was being allocated and, for `ENOMEM`, which
/// limit was probably hit.
pub(super) fn os_error(err: io::Error, call: &str, what: &str, mech: Mechanism) -> io::Error {
    let hint = if err.raw_os_error() == Some(libc::ENOMEM) {
        enomem_hint(mech)
    } else {
        String::new()
    };
    io::Error::new(
        err.kind(),
        format!("hilos: cannot allocate {what}: {call} failed: {err}{hint}"),
    )
}

fn enomem_hint(mech: Mechanism) -> String {
    let maps = count_maps();
    let max = max_map_count();
    match (maps, max) {
        // Close to the limit: an mprotect split or a new mapping needs up to 2 more.
        (Some(n), Some(m)) if n + 8 >= m => {
            let per_stack = match mech {
                Mechanism::Mprotect => format!(
                    "; the {} guard fallback costs 2 mappings per stack, so about {} stacks fit: \
                     raise vm.max_map_count (sysctl -w vm.max_map_count=...) or run on Linux \
                     6.13+, where MADV_GUARD_INSTALL lets many stacks share one mapping",
                    mech.name(),
                    m / 2
                ),
                Mechanism::MadvGuard => String::from("; raise vm.max_map_count (sysctl)"),
            };
            format!(
                " (the process has {n} memory mappings and vm.max_map_count is {m}: the mapping \
                 limit is exhausted{per_stack})"
            )
        }
        _ => {
            let counts = match (maps, max) {
                (Some(n), Some(m)) => format!("; {n} of vm.max_map_count={m} mappings in use"),
                _ => String::new(),
            };
            format!(
                " (out of memory, address space or mappings: check free memory, `ulimit -v`, \
                 vm.overcommit_memory and vm.max_map_count{counts})"
            )
        }
    }
}

/// Number of mappings of this process (lines of /proc/self/maps), read without large
/// allocations because this runs when memory or mappings are exhausted.
pub(super) fn count_maps() -> Option<usize> {
    use std::io::Read;
    let mut file = std::fs::File::open("/proc/self/maps").ok()?;
    let mut buf = [0u8; 4096];
    let mut lines = 0;
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Some(lines),
            Ok(n) => lines += buf[..n].iter().filter(|&&b| b == b'\n').count(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

fn max_map_count() -> Option<usize> {
    use std::io::Read;
    let mut file = std::fs::File::open("/proc/sys/vm/max_map_count").ok()?;
    let mut buf = [0u8; 32];
    let n = file.read(&mut buf).ok()?;
    std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
}
