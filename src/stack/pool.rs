//! Size classes, carving slots out of chunks, the shared per-class pools and the per-thread
//! caches. The protocol (who owns a slot when) is described in the parent module's docs.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::map::{self, Mechanism};
use super::{MAX_STACK_SIZE, MIN_STACK_SIZE};

mod reserve;

use reserve::{acquire_exact, acquire_upto, release_units, units_added};
pub(super) use reserve::{reserve, take_reserved, unreserve};

/// log2 of [`MIN_STACK_SIZE`].
const MIN_SHIFT: u32 = 14;
/// log2 of [`MAX_STACK_SIZE`].
const MAX_SHIFT: u32 = 36;
/// 2^STEP_SHIFT classes per power of two.
const STEP_SHIFT: u32 = 3;
/// Class 0 is [`MIN_STACK_SIZE`]; then 8 classes per power of two up to [`MAX_STACK_SIZE`].
pub(super) const NUM_CLASSES: usize = 1 + (((MAX_SHIFT - MIN_SHIFT) as usize) << STEP_SHIFT);

const _: () = assert!(1 << MIN_SHIFT == MIN_STACK_SIZE && 1 << MAX_SHIFT == MAX_STACK_SIZE);
const _: () = assert!(NUM_CLASSES <= u8::MAX as usize + 1);

/// At most this many stacks per class in a thread's cache...
const THREAD_CACHE_MAX: usize = 64;
/// ...and at most this many bytes of usable size per class (0 stacks for classes above it).
const THREAD_CACHE_BYTES: usize = 16 << 20;
/// At most this many warm stacks per class in the shared pool...
const WARM_MAX: usize = 1024;
/// ...and at most this many bytes of usable size per class. Beyond: `MADV_DONTNEED`, cold list.
const WARM_BYTES: usize = 64 << 20;
/// Slots in a class's first chunk; each further chunk doubles...
const CHUNK_FIRST_SLOTS: usize = 16;
/// ...up to this many slots...
const CHUNK_MAX_SLOTS: usize = 4096;
/// ...and this many bytes of address space.
const CHUNK_MAX_BYTES: usize = 1 << 30;
/// Classes with more usable bytes than this get one mapping per slot.
const LARGE_CLASS: usize = 8 << 20;

/// One slot's identity: the only token of ownership of that slot (invariant 1). Deliberately
/// neither `Copy` nor `Clone`.
#[derive(Debug)]
pub(super) struct RawStack {
    /// Lowest usable address, just above the guard page.
    pub(super) limit: usize,
    /// Usable bytes (the class size).
    pub(super) usable: usize,
    /// Size class index.
    pub(super) class: u8,
}

impl RawStack {
    /// Moves the identity out of `self`, leaving a placeholder that owns nothing.
    pub(super) fn take(&mut self) -> RawStack {
        std::mem::replace(
            self,
            RawStack {
                limit: 0,
                usable: 0,
                class: 0,
            },
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Size classes

/// The class of a request for `size` usable bytes, or `InvalidInput` if the size is absurd.
pub(super) fn class_for(size: usize) -> io::Result<usize> {
    let page = map::page_size();
    // 0 means "the minimum"; rounding 1 instead keeps every request of at most a page (and a
    // page may exceed MIN_STACK_SIZE) in the same class.
    let Some(rounded) = size.max(1).checked_add(page - 1).map(|s| s & !(page - 1)) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "hilos: stack size {size} bytes overflows when rounded up to whole \
                 {page}-byte pages (the largest stack is {MAX_STACK_SIZE} bytes)"
            ),
        ));
    };
    if rounded > MAX_STACK_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "hilos: stack size {size} bytes is larger than the limit of {MAX_STACK_SIZE} \
                 bytes (1 GiB)"
            ),
        ));
    }
    Ok(class_index(rounded.max(MIN_STACK_SIZE)))
}

/// Class of a page-rounded size in `MIN_STACK_SIZE..=MAX_STACK_SIZE`: the smallest class whose
/// nominal size is at least `s`.
pub(super) fn class_index(s: usize) -> usize {
    debug_assert!((MIN_STACK_SIZE..=MAX_STACK_SIZE).contains(&s));
    if s <= MIN_STACK_SIZE {
        return 0;
    }
    // 2^o < s <= 2^(o+1); steps of 2^(o-3) between them.
    let o = usize::BITS - 1 - (s - 1).leading_zeros();
    let step = 1usize << (o - STEP_SHIFT);
    let m = (s - (1usize << o)).div_ceil(step); // 1..=8
    1 + (((o - MIN_SHIFT) as usize) << STEP_SHIFT) + (m - 1)
}

/// Usable bytes of a stack of class `class` (page multiple).
pub(super) fn class_size(class: usize) -> usize {
    debug_assert!(class < NUM_CLASSES);
    let nominal = if class == 0 {
        MIN_STACK_SIZE
    } else {
        let o = MIN_SHIFT + ((class - 1) >> STEP_SHIFT) as u32;
        let m = ((class - 1) & ((1 << STEP_SHIFT) - 1)) + 1;
        (1usize << o) + (m << (o - STEP_SHIFT))
    };
    let page = map::page_size();
    (nominal + page - 1) & !(page - 1)
}

/// Stacks of `class` a thread may cache.
pub(super) fn cache_limit(class: usize) -> usize {
    (THREAD_CACHE_BYTES / class_size(class)).min(THREAD_CACHE_MAX)
}

/// Warm stacks of `class` the shared pool keeps before releasing memory.
pub(super) fn warm_limit(class: usize) -> usize {
    (WARM_BYTES / class_size(class)).min(WARM_MAX)
}

/// Most slots per chunk for a class.
fn chunk_max_slots(mech: Mechanism, usable: usize, slot_len: usize) -> usize {
    if mech == Mechanism::Mprotect || usable > LARGE_CLASS {
        1
    } else {
        (CHUNK_MAX_BYTES / slot_len).clamp(1, CHUNK_MAX_SLOTS)
    }
}

// ---------------------------------------------------------------------------------------------
// Shared pools

struct ClassPool {
    /// Pooled stacks whose memory is as the last user left it; newest at the back.
    warm: VecDeque<RawStack>,
    /// Every chunk of this class still mapped, by base address, with its cold stacks: pooled
    /// stacks whose memory was released (`MADV_DONTNEED`).
    chunks: BTreeMap<usize, Chunk>,
    /// Bases of the chunks that hold cold stacks. Cold stacks are taken from the lowest, so the
    /// higher chunks drain and can be unmapped.
    cold_chunks: BTreeSet<usize>,
    /// Base of the chunk being carved (0 before the first).
    carving: usize,
    /// Address of the next never-carved slot of the current chunk.
    next_slot: usize,
    /// Never-carved slots left in the current chunk.
    slots_left: usize,
    /// Slots of the current chunk (1: each slot is its own mapping).
    chunk_slots: usize,
    /// Slots to ask for in the next chunk (0 before the first).
    next_chunk_slots: usize,
    /// Chunks mapped ahead for reservations (`reserve`), none of whose slots was carved yet:
    /// carved after the current chunk, oldest first; trimmed from the back.
    spare: VecDeque<(usize, usize)>,
}

/// One mapping of slots.
struct Chunk {
    /// Slots it holds.
    slots: usize,
    /// Its cold stacks. When they are all of its slots (and it is no longer being carved), no
    /// one else owns any part of it, and it is unmapped.
    cold: Vec<RawStack>,
}

impl ClassPool {
    const fn new() -> ClassPool {
        ClassPool {
            warm: VecDeque::new(),
            chunks: BTreeMap::new(),
            cold_chunks: BTreeSet::new(),
            carving: 0,
            next_slot: 0,
            slots_left: 0,
            chunk_slots: 0,
            next_chunk_slots: 0,
            spare: VecDeque::new(),
        }
    }

    /// A cold stack, from the lowest chunk that has one.
    fn pop_cold(&mut self) -> Option<RawStack> {
        let base = *self.cold_chunks.first()?;
        UNTOUCHED_TAKEN.fetch_add(1, Ordering::Relaxed);
        let chunk = self.chunks.get_mut(&base).expect("cold chunk is mapped");
        let s = chunk.cold.pop().expect("cold chunk has a cold stack");
        if chunk.cold.is_empty() {
            self.cold_chunks.remove(&base);
        }
        Some(s)
    }

    /// Files `s` as cold in its chunk. If that makes every slot of a chunk that is no longer
    /// being carved cold, and no reservation needs them (`reserve`), takes the chunk out of the
    /// pool (its slots with it) and returns its base and slot count: the caller unmaps it.
    fn push_cold(&mut self, class: usize, s: RawStack) -> Option<(usize, usize)> {
        let (&base, chunk) = self
            .chunks
            .range_mut(..=s.limit)
            .next_back()
            .expect("a pooled stack's chunk is mapped");
        chunk.cold.push(s);
        if chunk.cold.len() < chunk.slots
            || base == self.carving
            || !acquire_exact(class, chunk.slots)
        {
            self.cold_chunks.insert(base);
            return None;
        }
        let chunk = self.chunks.remove(&base).expect("just found");
        self.cold_chunks.remove(&base);
        // The chunk's slots are dropped here: their identities end with the mapping.
        Some((base, chunk.slots))
    }
}

/// Stacks handed out whose memory the process had not touched since it was mapped or released:
/// freshly carved slots and cold stacks. Each costs page faults (and zeroed pages) at its first
/// use; warm stacks, as their last user left them, do not. Counted under a class lock.
static UNTOUCHED_TAKEN: AtomicU64 = AtomicU64::new(0);

/// How many stacks [`UNTOUCHED_TAKEN`] has counted, process-wide.
pub(super) fn untouched_taken() -> u64 {
    UNTOUCHED_TAKEN.load(Ordering::Relaxed)
}

static POOLS: [Mutex<ClassPool>; NUM_CLASSES] =
    [const { Mutex::new(ClassPool::new()) }; NUM_CLASSES];

/// Bytes of the green stacks' memory resident now, process-wide: `mincore(2)` over every
/// chunk the pools have mapped (stacks in use, cached or pooled; guard pages are never
/// resident). The chunks' ranges are copied under each class's lock and measured after it: a
/// chunk unmapped in between counts as whatever is mapped there then (approximate, as any
/// snapshot of memory others use).
pub(super) fn resident_bytes() -> usize {
    let page = map::page_size();
    let mut buf = Vec::new();
    let mut ranges = Vec::new();
    let mut total = 0;
    for (class, pool) in POOLS.iter().enumerate() {
        let slot_len = page + class_size(class);
        ranges.clear();
        {
            let p = pool.lock();
            if p.chunks.is_empty() {
                continue;
            }
            ranges.extend(p.chunks.iter().map(|(&base, c)| (base, c.slots * slot_len)));
        }
        for &(base, len) in &ranges {
            total += map::resident_bytes(base, len, &mut buf)
                .or_else(|_| {
                    // qemu-user refuses a range with a `PROT_NONE` guard page in it (the
                    // mprotect mechanism): each slot's usable part alone, then. A chunk
                    // unmapped meanwhile counts as nothing.
                    (0..len / slot_len)
                        .map(|i| {
                            let usable = base + i * slot_len + page;
                            map::resident_bytes(usable, slot_len - page, &mut buf)
                        })
                        .sum::<io::Result<usize>>()
                })
                .unwrap_or(0);
        }
    }
    total
}

/// Moves up to `n` pooled stacks of `class` into `out` (warm ones first, newest first), taking
/// a unit (`reserve`) for each: never one a reservation counts on.
fn take_batch(class: usize, out: &mut Vec<RawStack>, n: usize) {
    let units = acquire_upto(class, n.saturating_sub(out.len()));
    if units == 0 {
        return;
    }
    let mut got = 0;
    {
        let mut p = POOLS[class].lock();
        while got < units {
            match p.warm.pop_back().or_else(|| p.pop_cold()) {
                Some(s) => out.push(s),
                None => break,
            }
            got += 1;
        }
    }
    // Units that stand for never-carved slots go back.
    if got < units {
        release_units(class, units - got);
    }
}

/// One stack of `class` from the shared pool, else a freshly carved slot: takes a unit
/// (`reserve`), mapping more address space if there is none.
fn take_shared(class: usize) -> io::Result<RawStack> {
    if acquire_upto(class, 1) == 0 {
        reserve::map_for_one(class)?;
    }
    take_held(class)
}

/// One stack of `class` for a caller holding a unit of it (`reserve`), which it uses up: a pooled
/// one, else a never-carved slot, which the unit guarantees (the error is the guard's).
fn take_held(class: usize) -> io::Result<RawStack> {
    let mech = map::mechanism();
    let page = map::page_size();
    let usable = class_size(class);
    let slot_len = page + usable;
    let (base, own_mapping) = {
        let mut p = POOLS[class].lock();
        if let Some(s) = p.warm.pop_back().or_else(|| p.pop_cold()) {
            return Ok(s);
        }
        if p.slots_left == 0 {
            let (addr, got) = p
                .spare
                .pop_front()
                .expect("hilos: a stack unit with no stack behind it");
            p.carving = addr;
            p.next_slot = addr;
            p.slots_left = got;
            p.chunk_slots = got;
        }
        let base = p.next_slot;
        UNTOUCHED_TAKEN.fetch_add(1, Ordering::Relaxed);
        p.next_slot += slot_len;
        p.slots_left -= 1;
        (base, p.chunk_slots == 1)
    };
    // The slot at `base` was carved just now under the lock: this call is its only owner and it
    // was never handed out (invariant 1). Install its guard outside the lock.
    // SAFETY: `base..base + page` is the low page of that slot, inside a mapping made by
    // `map_region`; nothing lives there.
    if let Err(e) = unsafe { map::install_guard(mech, base, page) } {
        let call = match mech {
            Mechanism::MadvGuard => "madvise(MADV_GUARD_INSTALL) of its guard page",
            Mechanism::Mprotect => "mprotect(PROT_NONE) of its guard page",
        };
        if own_mapping {
            // Out of the pool's books first: the address may be mapped again by anyone.
            POOLS[class].lock().chunks.remove(&base);
            // SAFETY: the mapping holds only this slot, which nobody else has seen.
            unsafe { map::unmap(base, slot_len) };
        }
        // In a shared chunk the slot is abandoned: address space only, never touched.
        return Err(map::os_error(
            e,
            call,
            &format!("a green-thread stack of {usable} usable bytes"),
            mech,
        ));
    }
    Ok(RawStack {
        limit: base + page,
        usable,
        class: class as u8,
    })
}

/// Maps a chunk of `want` slots, halving on `ENOMEM` (address-space limits, strict overcommit)
/// down to one slot. A chunk that would leave the process less than [`map::HEADROOM`] of
/// address space or commit counts as `ENOMEM` too (checked after every mapping: chunks are few).
/// Returns the base and the number of slots mapped.
fn map_chunk(
    mech: Mechanism,
    usable: usize,
    slot_len: usize,
    want: usize,
) -> io::Result<(usize, usize)> {
    let mut n = want;
    loop {
        let mapped = map::map_region(n * slot_len).and_then(|addr| {
            if map::headroom_left() {
                return Ok(addr);
            }
            // SAFETY: the region was just mapped here and nothing uses it.
            unsafe { map::unmap(addr, n * slot_len) };
            Err(io::Error::from_raw_os_error(libc::ENOMEM))
        });
        match mapped {
            Ok(addr) => return Ok((addr, n)),
            Err(e) if e.raw_os_error() == Some(libc::ENOMEM) && n > 1 => n /= 2,
            Err(e) if e.raw_os_error() == Some(libc::ENOMEM) => {
                return Err(map::os_error(
                    e,
                    &format!(
                        "mmap of {} bytes for a stack slot (leaving {} MiB for the rest of the \
                         process)",
                        slot_len,
                        map::HEADROOM >> 20
                    ),
                    &format!("a green-thread stack of {usable} usable bytes"),
                    mech,
                ));
            }
            Err(e) => {
                return Err(map::os_error(
                    e,
                    &format!("mmap of {} bytes for {n} stack slot(s)", n * slot_len),
                    &format!("a green-thread stack of {usable} usable bytes"),
                    mech,
                ));
            }
        }
    }
}

/// Puts stacks of `class` into the shared pool; those beyond the warm bound (oldest first) get
/// their memory released and go cold, and chunks left entirely cold are unmapped.
fn put_shared(class: usize, stacks: impl IntoIterator<Item = RawStack>) {
    let bound = warm_limit(class);
    let excess: Vec<RawStack> = {
        let mut p = POOLS[class].lock();
        let before = p.warm.len();
        p.warm.extend(stacks);
        // Under the lock, after the stacks are in: whoever takes these units finds them.
        units_added(class, p.warm.len() - before);
        let over = p.warm.len().saturating_sub(bound);
        p.warm.drain(..over).collect()
    };
    if excess.is_empty() {
        return;
    }
    for s in &excess {
        // SAFETY: `s` is owned by this call (taken out of the pool under the lock, in no list:
        // invariant 1), so no live Stack covers it and nobody reads its contents; its usable
        // range is page aligned inside a mapping made by `map_region`. A green thread's TLS area
        // at its top keeps a malloc'ed dtv between threads: given back first.
        let released = unsafe {
            crate::tls::discard(s.limit + s.usable);
            map::release(s.limit, s.usable)
        };
        // Failure only means the memory stays resident; the stack is still good.
        debug_assert!(released.is_ok(), "MADV_DONTNEED failed: {released:?}");
    }
    let slot_len = map::page_size() + class_size(class);
    let drained: Vec<(usize, usize)> = {
        let mut p = POOLS[class].lock();
        excess
            .into_iter()
            .filter_map(|s| p.push_cold(class, s))
            .collect()
    };
    for (base, slots) in drained {
        // SAFETY: `push_cold` took the chunk out of the pool with all of its slots, each of
        // which was cold (owned by the pool: invariant 1), so no Stack, cache or list refers to
        // any part of it any more.
        unsafe { map::unmap(base, slots * slot_len) };
    }
}

// ---------------------------------------------------------------------------------------------
// Thread caches

struct ClassCache {
    class: usize,
    /// [`cache_limit`] of the class (0: this class bypasses thread caches).
    limit: usize,
    /// Newest at the back.
    stacks: Vec<RawStack>,
    /// Units of the class (`reserve`) this thread holds for its next reservations.
    credits: usize,
}

struct ThreadCache {
    /// One entry per class this thread has used; a program uses one or two.
    classes: Vec<ClassCache>,
}

impl ThreadCache {
    fn entry(&mut self, class: usize) -> &mut ClassCache {
        let i = match self.classes.iter().position(|c| c.class == class) {
            Some(i) => i,
            None => {
                self.classes.push(ClassCache {
                    class,
                    limit: cache_limit(class),
                    stacks: Vec::new(),
                    credits: 0,
                });
                self.classes.len() - 1
            }
        };
        &mut self.classes[i]
    }
}

impl Drop for ThreadCache {
    /// At thread exit the cached stacks go back to the shared pool.
    fn drop(&mut self) {
        // The pointer must not outlive the cache (this kernel thread's TLS is being destroyed).
        let _ = CACHE.try_with(|c| c.set(std::ptr::null()));
        for c in self.classes.drain(..) {
            put_shared(c.class, c.stacks);
            release_units(c.class, c.credits);
        }
    }
}

thread_local! {
    /// This kernel thread's cache.
    static OWN: RefCell<ThreadCache> = const {
        RefCell::new(ThreadCache {
            classes: Vec::new(),
        })
    };
    /// The cache this thread uses: its own, or on a green thread its worker's, mirrored into the
    /// green thread's own thread-locals (`tls`) when it first runs: the cache is per kernel
    /// thread, and a worker's green threads never run at the same time as one another or it.
    static CACHE: Cell<*const RefCell<ThreadCache>> = const { Cell::new(std::ptr::null()) };
}

/// Runs `f` on the calling thread's cache; `Err` if it has none left (during its TLS destruction).
fn with_cache<R>(f: impl FnOnce(&RefCell<ThreadCache>) -> R) -> Result<R, ()> {
    let mut p = CACHE.with(|c| c.get());
    if p.is_null() {
        p = OWN
            .try_with(|o| o as *const RefCell<ThreadCache>)
            .map_err(|_| ())?;
        CACHE.with(|c| c.set(p));
    }
    // SAFETY: a non-null pointer is this kernel thread's live cache (cleared before it drops);
    // a green thread's is its worker's, which outlives every green thread of that worker.
    Ok(f(unsafe { &*p }))
}

/// A worker kernel thread starts: its green threads will use its cache.
pub(crate) fn worker_started() {
    let _ = with_cache(|_| ());
    crate::tls::mirror(CACHE.with(|c| c.as_ptr().cast::<usize>().cast_const()));
}

/// A stack of `class`: from this thread's cache (refilled in a batch from the shared pool when
/// empty), else the shared pool, else a fresh slot.
pub(super) fn take(class: usize) -> io::Result<RawStack> {
    match take_cached(class) {
        Some(s) => Ok(s),
        // Empty pool, uncached class, or this thread's cache already destroyed (thread exit).
        None => take_shared(class),
    }
}

/// A stack of `class` from this thread's cache, refilled in a batch from the shared pool's
/// stacks when empty; `None` if there is none (or the class is not cached, or the cache is gone).
fn take_cached(class: usize) -> Option<RawStack> {
    with_cache(|cache| {
        let mut cache = cache.borrow_mut();
        let e = cache.entry(class);
        if let Some(s) = e.stacks.pop() {
            return Some(s);
        }
        if e.limit == 0 {
            return None;
        }
        take_batch(class, &mut e.stacks, e.limit.div_ceil(2));
        e.stacks.pop()
    })
    .ok()
    .flatten()
}

/// Returns a stack: to this thread's cache; when that is full, its older half moves to the
/// shared pool.
pub(super) fn put(raw: RawStack) {
    let class = raw.class as usize;
    let mut slot = Some(raw);
    let spill = with_cache(|cache| {
        let mut cache = cache.borrow_mut();
        let e = cache.entry(class);
        if e.limit == 0 {
            return None;
        }
        let s = slot.take()?;
        let spill = if e.stacks.len() >= e.limit {
            let n = e.stacks.len() - e.limit / 2;
            Some(e.stacks.drain(..n).collect::<Vec<_>>())
        } else {
            None
        };
        e.stacks.push(s);
        spill
    });
    if let Ok(Some(spill)) = spill {
        put_shared(class, spill);
    }
    // Uncached class, or the cache is gone (thread exit): straight to the shared pool.
    if let Some(s) = slot {
        put_shared(class, [s]);
    }
}

// ---------------------------------------------------------------------------------------------
// Test hooks

/// (warm, cold) stacks of `class` in the shared pool.
#[cfg(test)]
pub(super) fn pool_counts(class: usize) -> (usize, usize) {
    let p = POOLS[class].lock();
    (p.warm.len(), p.chunks.values().map(|c| c.cold.len()).sum())
}

/// Chunks of `class` still mapped.
#[cfg(test)]
pub(super) fn chunk_count(class: usize) -> usize {
    POOLS[class].lock().chunks.len()
}

/// Stacks of `class` in this thread's cache.
#[cfg(test)]
pub(super) fn cached_count(class: usize) -> usize {
    with_cache(|c| c.borrow_mut().entry(class).stacks.len()).unwrap_or(0)
}
