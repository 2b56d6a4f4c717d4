//! Green-thread stacks: allocation, guard pages, pooling, and the stack-overflow report.
//!
//! # The problem
//!
//! hilos aims at 1,000,000 green threads parked at once, each on its own stack, at no more than
//! about 4.5 KiB of resident memory each, with a guard page under every stack so that an overflow
//! is a clean, named crash instead of silent corruption of a neighbour. Three limits collide:
//!
//! - **RSS per thread.** A parked thread with a shallow stack must cost one page (plus its share
//!   of page tables), so stacks are reserved address space whose pages are committed only when
//!   touched (`MAP_NORESERVE`), and pooled stacks that are not reused soon give their memory back.
//! - **Guard pages.** The page below each stack must fault on access.
//! - **The mapping limit.** Linux caps the mappings (VMAs) of a process at `vm.max_map_count`
//!   (65530 by default). An `mprotect`ed guard splits a mapping, so "one mapping per stack plus
//!   an `mprotect` guard" costs 2 VMAs per stack and caps a process near 32K stacks.
//!
//! # Alternatives rejected
//!
//! - **`malloc`'d stacks without guards**: an overflow silently overwrites whatever the allocator
//!   put below the stack; big allocations are separate `mmap`s anyway (one VMA each) and their
//!   memory cannot be released while pooled without going around the allocator.
//! - **One mapping per stack with an `mprotect(PROT_NONE)` guard**: 2 VMAs per stack, so about
//!   32K stacks at the default limit, and a `mmap`+`mprotect` per fresh stack. Kept only as the
//!   fallback for kernels without `MADV_GUARD_INSTALL`, with an error that names the limit.
//! - **Segmented / growable stacks** (split stacks, `__morestack`): need compiler support that
//!   Rust removed, thrash when a hot call sits on a segment boundary, and still need a large
//!   stack for every FFI call.
//! - **Copying stacks** (grow by relocating, or share one run stack and copy on switch): Rust
//!   references into a stack cannot be found and fixed up, and copying on every switch costs
//!   time proportional to stack depth.
//!
//! # The design
//!
//! - **Size classes.** A requested size is rounded up to pages (minimum [`MIN_STACK_SIZE`],
//!   maximum [`MAX_STACK_SIZE`]) and then up to one of 8 classes per power of two (at most 12.5%
//!   more address space, no more memory: untouched pages cost nothing). [`DEFAULT_STACK_SIZE`]
//!   is exactly a class. There are [`pool::NUM_CLASSES`] classes, so every table is static.
//! - **Slots in chunks.** A slot is `[guard page][usable pages)`; the stack grows down from the
//!   top of the usable part towards the guard. With `MADV_GUARD_INSTALL` (Linux 6.13+, probed
//!   once per process) a class carves its slots out of chunk mappings that grow geometrically
//!   (16 slots, doubling up to about 1 GiB or 4096 slots per chunk), and each slot's guard is a
//!   guard marker in the page tables: the mapping is not split, so the VMA count does not grow
//!   with the number of stacks. (Linux also merges adjacent anonymous mappings with equal flags,
//!   so even one mapping per stack with a guard marker often stays one VMA; chunks do not depend
//!   on where the kernel places mappings, and save an `mmap` per stack.) Classes above 8 MiB get
//!   one mapping per slot. When a chunk cannot be mapped (`ENOMEM`: address-space limit, strict
//!   overcommit) the chunk is halved down to one slot before giving up. Without
//!   `MADV_GUARD_INSTALL` (or with `HILOS_STACK_GUARD=mprotect`), every slot is its own mapping
//!   with an `mprotect` guard.
//! - **Cost.** A parked default-size stack touched at one page costs that page (4096 B RSS) plus
//!   its share of the page-table page that holds its guard marker and top page (a 260 KiB slot is
//!   1/8 of the 2 MiB a page-table page maps: about 520 B of `VmPTE`). Measured with 1,000,000
//!   such stacks: 4096 B RSS + 521 B VmPTE each, and 4 more mappings in the whole process.
//! - **Reuse.** A freed stack goes to the calling kernel thread's cache (no lock, no system
//!   call), bounded per class; overflow moves half of it to the class's shared pool under a
//!   `parking_lot::Mutex`. The pool keeps a bounded LIFO of *warm* stacks (memory as the last
//!   user left it); stacks beyond that bound get `MADV_DONTNEED` and go *cold*, filed under the
//!   chunk they were carved from. A chunk whose slots are all cold (and which is no longer being
//!   carved) is unmapped: its address space and its page tables go back to the kernel, which a
//!   cold slot alone cannot do, since its guard marker keeps its page-table page in use. After a
//!   spike of 1,000,000 parked threads (`examples/spike.rs`), `VmPTE` fell from 509 MB to 2.4 MB
//!   and `VmSize` from 262 GB to 2.4 GB once they had exited. Allocation takes from the thread cache, else refills it
//!   with a batch from the pool (warm first, then cold from the lowest chunk, so the higher ones
//!   drain), else carves a fresh slot. A thread's cache goes back to the pool when the thread
//!   exits.
//! - **Reservations.** A green thread takes its stack at its first run, not at spawn
//!   (`scheduler`, "Spawn bursts"); its spawn [`reserve`]s one, so that spawn still fails when
//!   none could be had. The pool counts, per class, the stacks it can hand out without
//!   mapping against those promised, and maps address space ahead (untouched: no memory, no page
//!   tables) when a reservation finds too few; every other taker leaves the promised ones alone,
//!   so the first run's take cannot fail for want of a stack (`pool::reserve`).
//! - **Overflow.** [`overflow`] installs a SIGSEGV/SIGBUS handler that asks the runtime whether
//!   the fault address is the guard of the green thread running on this kernel thread, and if so
//!   prints std's message with that thread's name and aborts; other faults go to the previous
//!   handler (std's). It runs on an alternate signal stack ([`overflow::ensure_altstack`]),
//!   since the faulting stack is the overflowed one.
//!
//! # Invariants
//!
//! 1. **One owner per slot.** A slot is carved exactly once (a bump pointer advanced under the
//!    class lock) and from then on is represented by exactly one `RawStack` value. That value
//!    is moved, never copied, between a live [`Stack`], a thread cache, the pool's warm or cold
//!    list, and a local list of stacks being released. So a pooled stack is never handed out
//!    twice, and a stack being released is in no list anyone else can take from.
//! 2. **Who touches which page.** A slot's guard page is never read or written (an access is the
//!    overflow the guard exists to catch). Its usable pages are read and written only through
//!    the [`Stack`] that owns it (the green thread running on it, or whoever prepares its first
//!    frame). The pool code never reads or writes stack memory; it only `madvise`s the usable
//!    range of stacks it owns (never one a live [`Stack`] covers).
//! 3. **A chunk is unmapped only when the pool owns all of it.** The pool counts a chunk's cold
//!    slots under the class lock; when they are all of its slots and it is not the chunk being
//!    carved, no `Stack`, thread cache or warm list holds any of its slots (invariant 1), so the
//!    chunk leaves the pool's books, with its slots, before it is unmapped outside the lock.
//!    (A fresh one-slot mapping whose guard could not be installed, never handed out, is
//!    unmapped too, after leaving the books.) Otherwise memory is released with `MADV_DONTNEED`,
//!    which keeps the range and the guard.
//! 4. **Guards are permanent.** A slot's guard is installed before the slot is first handed out
//!    and never removed. `MADV_DONTNEED` is applied to the usable range only; on Linux 6.18 guard
//!    markers survive `MADV_DONTNEED` even across them (checked by a test).
//! 5. **Hand-off between kernel threads** goes through the pool mutex, which orders the previous
//!    owner's writes before the next owner's use.
//! 6. **No zeroing.** A reused stack holds whatever its previous user (in this process) left, or
//!    zeros if it was released; stack memory is scratch space, never a secret boundary.
//!
//! Errors (absurd sizes, exhausted memory, address space or mappings) are `io::Error`s with
//! context, never aborts.

mod map;
pub(crate) mod overflow;
mod pool;

pub(crate) use pool::worker_started;
#[cfg(test)]
mod tests;

use std::io;
use std::ops::Range;

use crate::arch::valgrind;
use pool::RawStack;

/// Usable bytes of a stack when the user asks for nothing else.
pub(crate) const DEFAULT_STACK_SIZE: usize = 256 * 1024;
/// Smallest usable size handed out (a request for 0 gets this).
pub(crate) const MIN_STACK_SIZE: usize = 16 * 1024;
/// Largest usable size accepted (64 GiB: address space, committed only as it is touched; std
/// accepts any size and lets the mapping fail); larger requests are `InvalidInput`.
pub(crate) const MAX_STACK_SIZE: usize = 1 << 36;

/// An owned green-thread stack: `[guard page][usable ... top)`.
///
/// `Send` (a stack can be prepared on one kernel thread and run on another), not `Clone` (it is
/// the only handle on its memory). Dropping it is the same as [`free`]: the stack returns to the
/// pool; its memory is never unmapped.
#[derive(Debug)]
pub(crate) struct Stack {
    raw: RawStack,
    /// Its registration with Valgrind (`valgrind::register`; 0 when not under Valgrind).
    valgrind: usize,
}

impl Stack {
    /// Highest address, exclusive; page aligned. The first frame goes just below it.
    pub(crate) fn top(&self) -> *mut u8 {
        (self.raw.limit + self.raw.usable) as *mut u8
    }

    /// Lowest usable address, just above the guard; page aligned.
    pub(crate) fn limit(&self) -> *mut u8 {
        self.raw.limit as *mut u8
    }

    /// Address range of the guard (one page, just below [`Stack::limit`]).
    pub(crate) fn guard(&self) -> Range<usize> {
        self.raw.limit - map::page_size()..self.raw.limit
    }

    /// Usable bytes: `top - limit`, at least the size asked for.
    #[cfg_attr(not(test), expect(dead_code, reason = "used by the tests"))]
    pub(crate) fn usable_size(&self) -> usize {
        self.raw.usable
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        valgrind::deregister(self.valgrind);
        pool::put(self.raw.take());
    }
}

/// A stack with at least `size` usable bytes (0 means the minimum): from the calling kernel
/// thread's cache, else the shared pool, else fresh address space.
///
/// Errors: `InvalidInput` for sizes that overflow when rounded up or exceed [`MAX_STACK_SIZE`];
/// an OS error with context (size, call, and for `ENOMEM` which limit) when mapping fails.
pub(crate) fn alloc(size: usize) -> io::Result<Stack> {
    let class = pool::class_for(size)?;
    pool::take(class).map(|raw| {
        let valgrind = valgrind::register(raw.limit, raw.limit + raw.usable);
        Stack { raw, valgrind }
    })
}

/// The size class of stacks of at least `size` usable bytes: what a [`Reservation`] is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Class(u8);

/// The class of stacks of at least `size` usable bytes (0 means the minimum); errors as
/// [`alloc`]'s for absurd sizes.
pub(crate) fn class_of(size: usize) -> io::Result<Class> {
    pool::class_for(size).map(|c| Class(c as u8))
}

/// A promise of a stack of one class, made when a thread is spawned and kept until its first run
/// takes the stack ([`Reservation::take`]), so that the spawn, not the first run, is what fails
/// when no stack can be had: the pool counts it against the stacks it can hand out without
/// mapping, and maps address space ahead when it has too few (`pool::reserve`). Dropping it gives
/// the promise back.
#[derive(Debug)]
pub(crate) struct Reservation {
    class: u8,
}

/// Reserves a stack of class `class` (see [`Reservation`]). Errors as [`alloc`]'s when address
/// space, commit or mappings run out.
pub(crate) fn reserve(class: Class) -> io::Result<Reservation> {
    pool::reserve(class.0 as usize)?;
    Ok(Reservation { class: class.0 })
}

impl Reservation {
    /// The promised stack: from the calling kernel thread's cache, else the pool, which kept one
    /// for it. Does not fail (it aborts in the one case `pool::reserve`'s doc names: the kernel
    /// cannot allocate a page-table page for a fresh slot's guard).
    pub(crate) fn take(self) -> Stack {
        let class = std::mem::ManuallyDrop::new(self).class;
        let raw = pool::take_reserved(class as usize);
        let valgrind = valgrind::register(raw.limit, raw.limit + raw.usable);
        Stack { raw, valgrind }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        pool::unreserve(self.class as usize);
    }
}

/// Returns a stack for reuse (to this thread's cache, overflowing to the shared pool, whose
/// stacks beyond a bound have their memory released). Same as dropping it.
pub(crate) fn free(stack: Stack) {
    drop(stack);
}

/// Stacks handed out so far, process-wide, whose memory had not been touched since it was mapped
/// or released (freshly carved slots and cold pooled stacks): each costs page faults at its first
/// use. A loop that spawns and joins on a warmed-up runtime should add none (the worker's stack
/// cache and the pool's warm list hand back stacks as their last user left them).
pub(crate) fn untouched_stacks_taken() -> u64 {
    pool::untouched_taken()
}

/// Bytes of address space mapped for green stacks (in use, pooled, cached or mapped ahead for
/// reservations), guards and signal stacks included.
/// Memory is committed only where a stack was touched.
pub(crate) fn mapped_bytes() -> usize {
    map::mapped_bytes()
}

/// Bytes of green-stack memory resident now (`mincore(2)` over the pools' chunks; the workers'
/// signal stacks are not counted). Costs a system call per 64 MiB of stack address space: for
/// metrics, not hot paths.
pub(crate) fn committed_bytes() -> usize {
    pool::resident_bytes()
}

/// The guard mechanism of this process: `"madv_guard_install"` or `"mprotect"`.
pub(crate) fn guard_mechanism() -> &'static str {
    map::mechanism().name()
}
