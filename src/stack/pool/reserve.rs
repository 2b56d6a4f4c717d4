//! Reservations: a spawn's promise of a stack that its thread takes only at its first run.
//!
//! A spawn must fail at once (`OutOfMemory`) when no stack could be had for its thread, but the
//! thread takes its stack only when it first runs (`scheduler`, "Spawn bursts"), usually the one
//! its worker's last exit left hot. So spawn *reserves*: the pool makes sure a stack will be there
//! without handing one out, by counting, per class, the stacks it could hand out without mapping
//! anything (pooled warm and cold stacks, never-carved slots of mapped chunks) against those
//! already promised. [`AVAILABLE`] holds the difference in *units*: one unit is one such stack
//! that nobody was promised. Every taker of a pooled stack or a never-carved slot takes a unit
//! first (a reservation holds one from spawn to first run); every stack put back in the pool and
//! every slot mapped adds one; a chunk is unmapped only if its slots' units can be taken. So a
//! reservation's stack is always there: the first run's take cannot fail for want of one.
//!
//! When there are no units, a reservation maps address space ahead (a chunk of never-carved
//! slots, `spare`; `MAP_NORESERVE`, untouched: no memory, no page tables, no guard markers until
//! a slot is carved), which is where spawn's `OutOfMemory` comes from. Classes whose slots are
//! their own mappings (the `mprotect` guard fallback, classes above 8 MiB) install the guard with
//! the mapping, at spawn, and file the slot as a cold stack: its guard cannot fail later. With
//! `MADV_GUARD_INSTALL`, the guard of a carved slot is installed at the first run; that only
//! fails when the kernel cannot allocate a page-table page, and the first run then aborts the
//! process with the error, as a failed allocation does.
//!
//! A kernel thread's cache keeps a few units (`credits`) for its next reservations, taken and
//! given back in batches: a spawn and a first run cost no shared atomic most of the time.
//! Units beyond a bound go back; many units over what the pool will need (after a burst) unmap
//! spare chunks again ([`trim_spare`]).

use std::io;
use std::sync::atomic::{AtomicIsize, Ordering};

use super::{
    CHUNK_FIRST_SLOTS, CHUNK_MAX_SLOTS, Chunk, NUM_CLASSES, POOLS, RawStack, chunk_max_slots,
    class_size, map, map_chunk, take_cached, take_held, with_cache,
};

/// Units a thread cache takes from [`AVAILABLE`] at a time...
const CREDIT_BATCH: usize = 32;
/// ...and keeps at most (beyond, it gives back half).
const CREDITS_MAX: usize = 2 * CREDIT_BATCH;
/// Unused units of a class above which spare chunks are unmapped ([`trim_spare`]).
const TRIM_ABOVE: isize = 2 * CHUNK_MAX_SLOTS as isize;

/// Per class: stacks the pool could hand out without mapping, less those promised (module doc).
/// Changed only by atomic read-modify-writes; additions for stacks and slots entering the pool
/// are made under its lock, after they are in, so a unit taken is backed when the pool is next
/// locked. Never negative.
static AVAILABLE: [AtomicIsize; NUM_CLASSES] = [const { AtomicIsize::new(0) }; NUM_CLASSES];

/// Takes up to `n` units of `class`; returns how many (0 if there are none).
pub(super) fn acquire_upto(class: usize, n: usize) -> usize {
    let a = &AVAILABLE[class];
    let mut cur = a.load(Ordering::Relaxed);
    loop {
        if cur <= 0 || n == 0 {
            return 0;
        }
        let k = (cur as usize).min(n);
        match a.compare_exchange_weak(cur, cur - k as isize, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return k,
            Err(now) => cur = now,
        }
    }
}

/// Takes exactly `n` units of `class` if there are that many.
pub(super) fn acquire_exact(class: usize, n: usize) -> bool {
    let a = &AVAILABLE[class];
    let mut cur = a.load(Ordering::Relaxed);
    loop {
        if cur < n as isize {
            return false;
        }
        match a.compare_exchange_weak(cur, cur - n as isize, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(now) => cur = now,
        }
    }
}

/// `n` stacks or slots of `class` entered the pool. Called under the class's lock.
pub(super) fn units_added(class: usize, n: usize) {
    AVAILABLE[class].fetch_add(n as isize, Ordering::Relaxed);
}

/// Gives back `n` units of `class` that were taken and not used. Not under the class's lock.
pub(super) fn release_units(class: usize, n: usize) {
    if n == 0 {
        return;
    }
    let now = AVAILABLE[class].fetch_add(n as isize, Ordering::Relaxed) + n as isize;
    if now > TRIM_ABOVE {
        trim_spare(class);
    }
}

/// Reserves a stack of `class` for a thread being spawned: a credit of this thread's cache,
/// else a batch of units, else maps address space for one (module doc). The error is the
/// mapping's (`OutOfMemory` when address space or commit ran out).
pub(crate) fn reserve(class: usize) -> io::Result<()> {
    let credited = with_cache(|cache| {
        let mut cache = cache.borrow_mut();
        let e = cache.entry(class);
        if e.credits == 0 {
            e.credits = acquire_upto(class, CREDIT_BATCH);
        }
        let had = e.credits > 0;
        e.credits = e.credits.saturating_sub(1);
        had
    });
    if credited == Ok(true) || acquire_upto(class, 1) == 1 {
        return Ok(());
    }
    map_for_one(class)
}

/// Gives back a reservation of `class` that took no pooled stack: its thread got a stack from
/// elsewhere (a cache), or went without running.
pub(crate) fn unreserve(class: usize) {
    let spill = with_cache(|cache| {
        let mut cache = cache.borrow_mut();
        let e = cache.entry(class);
        e.credits += 1;
        if e.credits > CREDITS_MAX {
            let n = e.credits - CREDITS_MAX / 2;
            e.credits -= n;
            n
        } else {
            0
        }
    });
    release_units(class, spill.unwrap_or(1));
}

/// The stack of a reservation of `class`, at its thread's first run: from this thread's cache
/// (the reservation's unit is then given back), else the pool's, which the unit guarantees.
/// Aborts if the guard of a freshly carved slot cannot be installed (module doc).
pub(crate) fn take_reserved(class: usize) -> RawStack {
    if let Some(s) = take_cached(class) {
        unreserve(class);
        return s;
    }
    take_held(class).unwrap_or_else(|e| {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("fatal runtime error: {e}, aborting\n").as_bytes(),
        );
        std::process::abort()
    })
}

/// Makes one unit of `class` for the caller by mapping address space: a chunk of never-carved
/// slots (`spare`), or for classes with one mapping per slot, a slot with its guard, filed cold.
/// Under the class's lock, so concurrent callers map one chunk and share it.
pub(super) fn map_for_one(class: usize) -> io::Result<()> {
    let mech = map::mechanism();
    let page = map::page_size();
    let usable = class_size(class);
    let slot_len = page + usable;
    let mut p = POOLS[class].lock();
    loop {
        if acquire_upto(class, 1) == 1 {
            return Ok(());
        }
        let max = chunk_max_slots(mech, usable, slot_len);
        let want = p.next_chunk_slots.clamp(CHUNK_FIRST_SLOTS.min(max), max);
        let (addr, got) = map_chunk(mech, usable, slot_len, want)?;
        p.next_chunk_slots = got.saturating_mul(2).min(max);
        if max == 1 {
            // SAFETY: the low page of the one-slot mapping just made, which nobody else knows.
            if let Err(e) = unsafe { map::install_guard(mech, addr, page) } {
                // SAFETY: as above; it never entered the pool's books.
                unsafe { map::unmap(addr, slot_len) };
                return Err(map::os_error(
                    e,
                    "installing the guard page of a stack slot",
                    &format!("a green-thread stack of {usable} usable bytes"),
                    mech,
                ));
            }
            let s = RawStack {
                limit: addr + page,
                usable,
                class: class as u8,
            };
            p.chunks.insert(
                addr,
                Chunk {
                    slots: 1,
                    cold: vec![s],
                },
            );
            p.cold_chunks.insert(addr);
        } else {
            p.chunks.insert(
                addr,
                Chunk {
                    slots: got,
                    cold: Vec::new(),
                },
            );
            p.spare.push_back((addr, got));
        }
        units_added(class, got);
    }
}

/// Unmaps spare chunks of `class` (newest first) while the class keeps more than
/// [`TRIM_ABOVE`] unused units without them: after a burst of reservations that took their
/// stacks from caches, the address space mapped for it goes back.
fn trim_spare(class: usize) {
    let slot_len = map::page_size() + class_size(class);
    let mut gone = Vec::new();
    {
        let mut p = POOLS[class].lock();
        while let Some(&(base, slots)) = p.spare.back() {
            if AVAILABLE[class].load(Ordering::Relaxed) - (slots as isize) < TRIM_ABOVE / 2
                || !acquire_exact(class, slots)
            {
                break;
            }
            p.spare.pop_back();
            p.chunks.remove(&base);
            gone.push((base, slots));
        }
    }
    for (base, slots) in gone {
        // SAFETY: a spare chunk was never carved, so no stack, cache or list refers to any part
        // of it, and it just left the pool's books (its units taken: nobody counts on it).
        unsafe { map::unmap(base, slots * slot_len) };
    }
}
