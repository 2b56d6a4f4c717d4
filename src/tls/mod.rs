//! Thread-locals per green thread: each green thread has its own static TLS area and its own
//! thread pointer, switched with its stack.
//!
//! # The problem
//! Rust's `thread_local!`, std's panic count and `std::thread::current()`, libc's errno and every
//! crate's per-thread state live in the kernel thread's TLS. Green threads that shared their
//! worker's TLS broke std's assumption that TLS scopes on one thread nest: a lazy initialiser
//! that parked let a second green thread initialise the same key, and the first one's value was
//! dropped while borrowed (a use-after-free reachable from safe code); a green thread could not
//! park while unwinding (the panic count is per thread); and per-thread counters, RNG state and
//! `RefCell`s borrowed across a park gave wrong answers or panicked (DESIGN-NOTES section 1).
//!
//! # Alternatives measured (prototype, glibc 2.36, x86_64, 2-core VM; see the README)
//! - **Content swapping** (one thread pointer per worker, the TLS blocks copied out and in at every
//!   switch): 0.9-3.1x the yield round trip for 248 bytes of TLS, growing with the program's TLS
//!   (hilos's own test binaries have 0.8 KiB); and every green thread's thread-locals sit at the
//!   same addresses, so a reference into one held across a park points at another thread's value
//!   after the swap. Rejected: the same soundness hole.
//! - **`arch_prctl(ARCH_SET_FS)`** at every switch: sound, but a system call each way: 3.6-9.8x
//!   the yield round trip. Kept only for x86_64 machines whose kernel does not enable FSGSBASE.
//! - **A per-green tcache** (libc's block left as in its image): each green thread builds its own
//!   malloc cache, never freed at its exit: +737 bytes per thread over a million threads.
//!   Rejected: malloc's tcache and arena pointers are copied from the worker instead.
//! - **`%fs:0x10` (THREAD_SELF) pointing at the worker's control block**: glibc reaches its own
//!   thread both through it and straight through `%fs`, so pthread keys split between the two and
//!   std's per-thread cleanup (a pthread key) leaked once per green thread. Rejected.
//!
//! # The design
//! A green thread's area sits at the top of its stack mapping ([`area`]): the static TLS blocks
//! of the modules loaded at start, from their init images, and a copy of glibc's `struct pthread`
//! (x86_64: blocks below the thread pointer, the copy at it; aarch64: the copy below it, the
//! blocks above), with the canary and pointer guard of the process, the worker's
//! kernel tid, and the worker's malloc tcache and arena. The context switch loads the resumed
//! context's thread pointer together with its stack pointer (`wrfsbase`, or `msr tpidr_el0` on
//! aarch64, in the same assembly routine, `arch`), so a thread's TLS addresses never change while it lives: LLVM may cache them
//! across a call, and they stay right. TLS destructors run on the green thread when its closure
//! returns, before `join` sees it finished, as std's run before its native join returns.
//!
//! glibc keeps a *surplus* after the static blocks (1.6 KiB by default) to give static TLS to
//! libraries `dlopen`ed later; a green thread's area would need room for it too, which pushed a
//! parked thread's first stack frames into a second page (8.4 KiB per parked thread instead of
//! 4.4). hilos closes the surplus instead, once, under the loader's lock
//! (`glibc::close_surplus`): later `dlopen`s of libraries that need static TLS fail with glibc's
//! own error (with room kept, they had loaded and read zeros on existing green threads), and
//! TLS descriptors fall back to dynamic TLS, which the dtv makes per green thread.
//!
//! hilos's own per-kernel-thread state (the worker's context, its I/O driver, allocation and
//! stack caches) must not become per green thread: it is reached through pointer-sized
//! thread-locals that a worker *mirrors* into each green thread's area at its first run
//! ([`mirror`]); a started green thread stays on its worker, so the mirrored values stay right.
//!
//! # Where it is not available
//! Another glibc than 2.36 (the control block's layout is a per-version table, for x86_64 and
//! aarch64), another libc or architecture, or `HILOS_TLS=shared`: green threads share their
//! worker's thread-locals as before, which [`mode`] and one line on stderr say; see the README's
//! "Thread-locals" for what that mode does not guarantee. x86_64 without FSGSBASE (kernels before
//! 5.9) switches with `arch_prctl` instead: the same guarantees, a slower switch
//! (`HILOS_TLS=arch_prctl` forces it).
//!
//! # Required orderings
//! - An area is prepared ([`prepare`]) and made the worker's ([`first_run`]) at its thread's
//!   first run, on the worker that runs it, before the first switch into it (the stack, and so
//!   the area at its top, is bound to the thread only then: `scheduler`, "Spawn bursts");
//!   nothing else writes it while the thread lives, but the thread itself.
//! - A per-worker slot is registered ([`mirror`]) before any green thread of that worker first
//!   runs: workers register theirs when they start.

mod area;
mod glibc;

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// How green threads get their thread-locals ([`crate::runtime::tls_mode`]).
///
/// # Examples
///
/// ```
/// use hilos::runtime::TlsMode;
///
/// let _rt = hilos::Runtime::builder().workers(1).build().unwrap();
/// match hilos::runtime::tls_mode() {
///     TlsMode::PerThreadFsBase | TlsMode::PerThreadTpidr | TlsMode::PerThreadSyscall => {
///         // Each green thread has its own thread-locals.
///     }
///     mode => assert!(!mode.per_green_thread(), "{mode}"),
/// }
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[non_exhaustive]
pub enum TlsMode {
    /// Each green thread has its own thread-locals; the switch sets the thread pointer with the
    /// `wrfsbase` instruction.
    PerThreadFsBase,
    /// Each green thread has its own thread-locals; the switch sets the thread pointer register
    /// `tpidr_el0` (aarch64).
    PerThreadTpidr,
    /// Each green thread has its own thread-locals; the switch sets the thread pointer with the
    /// `arch_prctl` system call (x86_64 kernels without FSGSBASE; a slower switch).
    PerThreadSyscall,
    /// Green threads share their worker kernel thread's thread-locals (an unsupported libc or
    /// architecture, or `HILOS_TLS=shared`). See the crate's "Thread-locals" documentation for
    /// what this mode does not guarantee.
    SharedPerWorker,
}

impl TlsMode {
    /// Whether each green thread has thread-locals of its own.
    pub fn per_green_thread(self) -> bool {
        !matches!(self, TlsMode::SharedPerWorker)
    }
}

impl std::fmt::Display for TlsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsMode::PerThreadFsBase => "per green thread (wrfsbase)",
            TlsMode::PerThreadTpidr => "per green thread (tpidr_el0)",
            TlsMode::PerThreadSyscall => "per green thread (arch_prctl)",
            TlsMode::SharedPerWorker => "shared per worker",
        })
    }
}

/// `MODE` values: 0 undecided.
const IN_SWITCH: u8 = 1;
const SYSCALL: u8 = 2;
const SHARED: u8 = 3;

static MODE: AtomicU8 = AtomicU8::new(0);
static LAYOUT: OnceLock<Option<glibc::Layout>> = OnceLock::new();

/// Decides the mode once per process (the first runtime built does it) and returns it.
/// Must run on a kernel thread, before any green thread exists.
pub(crate) fn init() -> TlsMode {
    let layout = LAYOUT.get_or_init(|| {
        let (choice, why) = choose();
        let layout = match choice {
            SHARED => None,
            _ => match glibc::Layout::discover() {
                Ok(l) => Some(l),
                Err(e) => {
                    note(&e);
                    None
                }
            },
        };
        if choice == SHARED {
            note(&why);
        }
        if layout.as_ref().is_some_and(|l| !l.surplus_closed) {
            eprintln!(
                "hilos: glibc's static TLS surplus could not be closed to libraries loaded later \
                 (its loader state is not as glibc 2.36's); each green thread's thread-locals \
                 take 1.6 KiB more, and a library dlopen'ed from now on that needs static TLS \
                 reads its initial values as zeros on existing green threads"
            );
        }
        let m = if layout.is_some() { choice } else { SHARED };
        MODE.store(m, Ordering::Release);
        layout
    });
    debug_assert!(layout.is_some() == (MODE.load(Ordering::Relaxed) != SHARED));
    mode()
}

/// The mode in use (`SharedPerWorker` before any runtime was built).
pub fn mode() -> TlsMode {
    match MODE.load(Ordering::Acquire) {
        IN_SWITCH if cfg!(target_arch = "x86_64") => TlsMode::PerThreadFsBase,
        IN_SWITCH => TlsMode::PerThreadTpidr,
        SYSCALL => TlsMode::PerThreadSyscall,
        _ => TlsMode::SharedPerWorker,
    }
}

/// Whether green threads have their own TLS areas: the one test on the switch path.
#[inline(always)]
pub(crate) fn per_green() -> bool {
    let m = MODE.load(Ordering::Relaxed);
    m == IN_SWITCH || m == SYSCALL
}

/// How the switch path must set the thread pointer: one load of the mode for both questions.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum TpSwitch {
    /// Thread-locals are shared: leave it.
    None,
    /// The switch loads it itself (`wrfsbase`, `arch::switch_ret_tp`).
    InSwitch,
    /// Set it with [`set_tp_syscall`] just before the switch.
    Syscall,
}

/// See [`TpSwitch`].
#[inline(always)]
pub(crate) fn tp_switch() -> TpSwitch {
    match MODE.load(Ordering::Relaxed) {
        IN_SWITCH => TpSwitch::InSwitch,
        SYSCALL => TpSwitch::Syscall,
        _ => TpSwitch::None,
    }
}

fn choose() -> (u8, String) {
    let forced = std::env::var("HILOS_TLS").ok();
    match forced.as_deref() {
        Some("shared") => return (SHARED, "HILOS_TLS=shared".into()),
        Some("arch_prctl") if cfg!(target_arch = "x86_64") => return (SYSCALL, String::new()),
        _ => {}
    }
    if !cfg!(all(
        any(target_arch = "x86_64", target_arch = "aarch64"),
        target_env = "gnu"
    )) {
        return (
            SHARED,
            "per-green-thread TLS is implemented for x86_64 and aarch64 with glibc only".into(),
        );
    }
    if cfg!(target_arch = "aarch64") {
        // tpidr_el0 is always writable from user space.
        return (IN_SWITCH, String::new());
    }
    // SAFETY: getauxval has no preconditions.
    let fsgsbase = unsafe { libc::getauxval(libc::AT_HWCAP2) } & 2 != 0;
    if fsgsbase {
        (IN_SWITCH, String::new())
    } else {
        (SYSCALL, String::new())
    }
}

fn note(why: &str) {
    eprintln!(
        "hilos: green threads share their worker's thread-locals ({why}); see the \
         \"Thread-locals\" section of hilos's documentation for what this mode does not guarantee"
    );
}

fn layout() -> &'static glibc::Layout {
    LAYOUT
        .get()
        .and_then(Option::as_ref)
        .expect("hilos: per-green-thread TLS used before it was set up")
}

/// The calling thread's thread pointer (`%fs:0` holds it on x86_64 glibc).
#[inline(always)]
pub(crate) fn arch_tp() -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let v: usize;
        // SAFETY: reads the first word of the thread control block, which every thread has.
        unsafe {
            std::arch::asm!("mov {}, qword ptr fs:[0]", out(reg) v,
                options(nostack, readonly, preserves_flags));
        }
        v
    }
    #[cfg(target_arch = "aarch64")]
    {
        let v: usize;
        // SAFETY: reads the thread pointer register.
        unsafe {
            std::arch::asm!("mrs {}, tpidr_el0", out(reg) v, options(nostack, nomem, preserves_flags));
        }
        v
    }
}

/// Sets the thread pointer with the `arch_prctl` system call ([`TlsMode::PerThreadSyscall`]).
/// A raw system call: nothing here touches TLS (no errno), since the thread pointer is moving.
///
/// # Safety
/// `tp` is the thread pointer of the context that is about to run on this kernel thread, and the
/// caller switches to it before touching any thread-local.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn set_tp_syscall(tp: usize) {
    const ARCH_SET_FS: usize = 0x1002;
    // SAFETY: arch_prctl(ARCH_SET_FS, tp) only changes this thread's fs base; the system call
    // clobbers rcx and r11, declared.
    unsafe {
        std::arch::asm!("syscall",
            inlateout("rax") libc::SYS_arch_prctl as usize => _,
            in("rdi") ARCH_SET_FS, in("rsi") tp,
            lateout("rcx") _, lateout("r11") _, options(nostack));
    }
}

/// As the x86_64 one; never called (no per-green mode on this architecture yet).
///
/// # Safety
/// Never called.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) unsafe fn set_tp_syscall(_tp: usize) {
    unreachable!("hilos: no per-green-thread TLS on this architecture")
}

/// Bytes a green thread's TLS area takes at the top of its stack mapping (0 when thread-locals
/// are shared).
#[inline]
pub(crate) fn area_size() -> usize {
    if per_green() { area::size(layout()) } else { 0 }
}

/// Prepares the TLS area at the top (`top`, exclusive) of a new green thread's stack mapping,
/// whose usable stack is `(lowest address, size)`. Returns its thread pointer.
///
/// # Safety
/// Per-green mode; the area (`area_size()` bytes below `top`) belongs to the caller and no
/// running thread uses it.
pub(crate) unsafe fn prepare(top: usize, stack: (usize, usize)) -> usize {
    // SAFETY: per the contract; the caller's own control block (a kernel thread's, or a green
    // thread's area, which carries the same process-wide fields) is the model.
    unsafe { area::prepare(layout(), top, stack, arch_tp()) }
}

/// Makes the area `tp` (prepared, not yet run) belong to the calling worker, whose own thread
/// pointer is `worker_tp`: its blocks from the worker's template (init images, the worker's libc
/// fields and mirrored slots), its tid and dtv. The template is found through a mirrored slot, so
/// this works from the worker's scheduler context and from any of its green threads.
///
/// # Safety
/// Per-green mode; called on the worker that will run the thread, before its first switch in.
pub(crate) unsafe fn first_run(tp: usize, worker_tp: usize) {
    let t = TEMPLATE.with(|t| t.get());
    assert!(
        !t.is_null(),
        "hilos: a green thread first ran on a worker with no TLS template"
    );
    // SAFETY: per the contract; a non-null template is this worker's (`worker_ready`), alive
    // until the worker stops, after its last green thread.
    unsafe { area::first_run(layout(), &*t, tp, worker_tp) }
}

thread_local! {
    /// The worker's template of a green thread's blocks (`area::Template`), mirrored into its
    /// green threads so a first run prepared on one of them finds it too.
    static TEMPLATE: Cell<*const area::Template> = const { Cell::new(std::ptr::null()) };
}

/// Called by a worker kernel thread once its own per-worker slots are set and mirrored, before
/// its first green thread runs: builds its template of a green thread's TLS blocks.
pub(crate) fn worker_ready() {
    if !per_green() {
        return;
    }
    let slot = TEMPLATE.with(|t| t.as_ptr().cast::<usize>().cast_const());
    mirror(slot);
    let tp = arch_tp();
    let n = MIRRORS_LEN.load(Ordering::Acquire);
    let offs: Vec<isize> = MIRRORS[..n]
        .iter()
        .map(|m| m.load(Ordering::Relaxed) as isize)
        .collect();
    // The template's own slot must hold the template: set it first, then copy everything.
    let boxed = Box::new(area::Template::empty());
    let p = Box::into_raw(boxed);
    TEMPLATE.with(|t| t.set(p));
    // SAFETY: `tp` is this kernel thread's thread pointer; `p` is ours.
    unsafe { *p = area::Template::new(layout(), tp, &offs) };
}

/// Called by a worker kernel thread when it stops, after its last green thread: frees its
/// template.
pub(crate) fn worker_stopped() {
    let p = TEMPLATE.with(|t| t.replace(std::ptr::null()));
    if !p.is_null() {
        // SAFETY: made by `worker_ready` on this thread, and no green thread of it is left.
        drop(unsafe { Box::from_raw(p.cast_mut()) });
    }
}

/// Writes `value` into the thread-local `slot` (an address in the caller's own TLS) as the
/// green thread whose area is `tp` will see it.
///
/// # Safety
/// Per-green mode; `slot` is a pointer-sized thread-local of the caller, `tp` an area not running.
pub(crate) unsafe fn write_as(tp: usize, slot: *const usize, value: usize) {
    let off = (slot as usize).wrapping_sub(arch_tp()) as isize;
    // SAFETY: per the contract, `tp + off` is the same thread-local in that area.
    unsafe { *(tp.wrapping_add_signed(off) as *mut usize) = value };
}

/// Runs the exiting green thread's TLS destructors (on the thread itself).
///
/// # Safety
/// Per-green mode, on a green thread whose closure has returned, once.
pub(crate) unsafe fn exit_destructors() {
    // SAFETY: per the contract; the running thread pointer is the thread's area.
    unsafe { area::exit_destructors(layout(), arch_tp()) }
}

/// Frees what glibc allocated for an exited green thread's area, and leaves it clean for reuse.
///
/// # Safety
/// Per-green mode; `tp` is the area of a thread that has exited and never runs again.
pub(crate) unsafe fn after_exit(tp: usize) {
    // SAFETY: per the contract.
    unsafe { area::after_exit(layout(), tp) }
}

/// The memory of a stack whose mapping ends at `top` is about to be released or unmapped: gives
/// back what its TLS area keeps between threads (its dtv).
///
/// # Safety
/// No thread runs on that stack, and its area (if any) is not in use.
pub(crate) unsafe fn discard(top: usize) {
    if per_green() {
        let l = layout();
        // SAFETY: per the contract.
        unsafe { area::discard(area::tp_of(l, top)) }
    }
}

/// Called by a worker kernel thread when it starts: returns its thread pointer (the scheduler
/// context's), after making sure malloc's tcache exists (green threads copy the worker's pointer;
/// one left null would make each green thread build its own).
pub(crate) fn worker_started() -> usize {
    if per_green() {
        // SAFETY: a plain allocation and free.
        unsafe { libc::free(libc::malloc(16)) };
    }
    arch_tp()
}

const MAX_MIRRORS: usize = 8;
#[allow(clippy::declare_interior_mutable_const)]
const NO_MIRROR: AtomicUsize = AtomicUsize::new(0);
static MIRRORS: [AtomicUsize; MAX_MIRRORS] = [NO_MIRROR; MAX_MIRRORS];
static MIRRORS_LEN: AtomicUsize = AtomicUsize::new(0);
static MIRRORS_LOCK: parking_lot::Mutex<()> = parking_lot::const_mutex(());

/// Registers the pointer-sized thread-local at `slot` (an address in the caller's TLS) as
/// per-worker state: every green thread gets the worker's value at its first run. Idempotent.
pub(crate) fn mirror(slot: *const usize) {
    // Its offset from the thread pointer (negative on x86_64, positive on aarch64), kept as bits.
    let off = (slot as usize).wrapping_sub(arch_tp());
    let _g = MIRRORS_LOCK.lock();
    let n = MIRRORS_LEN.load(Ordering::Relaxed);
    if MIRRORS[..n]
        .iter()
        .any(|m| m.load(Ordering::Relaxed) == off)
    {
        return;
    }
    assert!(n < MAX_MIRRORS, "hilos: too many mirrored thread-locals");
    MIRRORS[n].store(off, Ordering::Relaxed);
    MIRRORS_LEN.store(n + 1, Ordering::Release);
}
