//! The pinned run queue of a worker ([`Home`]): where its started green threads wait to run.
//!
//! # The problem
//! A green thread that has run is pinned to its worker (DESIGN-NOTES section 1). Its wake-ups come
//! from anywhere: the worker itself (a lock released by a sibling, a timer), another worker, a
//! plain kernel thread. The worker's own wake-ups must cost no locked instruction, and a wake-up
//! from elsewhere must never be lost while the worker goes to sleep.
//!
//! # The design
//! A local FIFO ([`RunQueue`]) and a "next" slot touched only by the worker's own kernel thread,
//! and an MPSC *inbox* (a Treiber stack of headers, linked through `Header::link`) for wake-ups
//! from every other thread, and for fresh threads a spawner placed on this worker, which pins
//! them at their first run (`scheduler`, "Placement"). The owner empties the inbox with one swap.
//!
//! # Required orderings (no lost wake-up)
//! A remote waker pushes to the inbox (Release), issues a `SeqCst` fence, and wakes the worker
//! only if it announced it is asleep (`sleeping`). The worker announces, fences, and looks at the
//! inbox once more before it sleeps. One of the two always sees the other (store-buffering with
//! fences on both sides), so the wake-up is not lost. The worker's half is [`Home::prepare_sleep`],
//! which the scheduler's idle path calls; the model `loom_models` checks it against the real
//! [`Home::push_remote`].
//!
//! # Per-worker load
//! [`Load`] lives here too because the worker updates it at a thread's first run and exit (in
//! `park`, the switching layer), and spawners read it for placement (`scheduler`).

use std::cell::UnsafeCell;
use std::ptr::{self, NonNull};

use super::{Header, TaskRef, wakefd};
use crate::loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicUsize, Ordering, fence};

/// A FIFO of scheduling references: a power-of-two ring that doubles when full. The switch path
/// pushes and pops it on every yield, where `VecDeque`'s general bookkeeping showed in profiles.
pub(crate) struct RunQueue {
    buf: Box<[*const Header]>,
    head: usize,
    len: usize,
}

impl RunQueue {
    fn with_capacity(cap: usize) -> RunQueue {
        let cap = cap.next_power_of_two().max(2);
        RunQueue {
            buf: vec![ptr::null(); cap].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The queued threads, oldest first, without taking them out (for dumps).
    pub(crate) fn iter(&self) -> impl Iterator<Item = *const Header> + '_ {
        let mask = self.buf.len() - 1;
        (0..self.len).map(move |i| self.buf[(self.head + i) & mask])
    }

    #[inline]
    pub(crate) fn push_back(&mut self, t: TaskRef) {
        if self.len == self.buf.len() {
            self.grow();
        }
        let mask = self.buf.len() - 1;
        self.buf[(self.head + self.len) & mask] = t.into_raw().as_ptr();
        self.len += 1;
    }

    #[inline]
    pub(crate) fn pop_front(&mut self) -> Option<TaskRef> {
        if self.len == 0 {
            return None;
        }
        let p = self.buf[self.head];
        self.head = (self.head + 1) & (self.buf.len() - 1);
        self.len -= 1;
        // SAFETY: every slot in the live range holds a reference leaked by `push_back`.
        Some(unsafe { TaskRef::from_raw(NonNull::new_unchecked(p as *mut Header)) })
    }

    #[cold]
    fn grow(&mut self) {
        let old = self.buf.len();
        let mut buf = vec![ptr::null(); old * 2].into_boxed_slice();
        for (i, slot) in buf.iter_mut().take(self.len).enumerate() {
            *slot = self.buf[(self.head + i) & (old - 1)];
        }
        self.buf = buf;
        self.head = 0;
    }
}

impl Extend<TaskRef> for RunQueue {
    fn extend<I: IntoIterator<Item = TaskRef>>(&mut self, iter: I) {
        for t in iter {
            self.push_back(t);
        }
    }
}

impl Drop for RunQueue {
    fn drop(&mut self) {
        while self.pop_front().is_some() {}
    }
}

/// The run queue of one worker's pinned green threads (see the module doc).
pub(crate) struct Home {
    /// Runnable pinned threads, oldest first. Owner only.
    local: UnsafeCell<RunQueue>,
    /// The most recently readied thread, run before the queue (bounded by the scheduler). Owner only.
    next: UnsafeCell<Option<TaskRef>>,
    /// Wake-ups from other kernel threads: a Treiber stack the owner empties with one swap.
    inbox: AtomicPtr<Header>,
    /// Set by the owner just before it sleeps, cleared when it wakes.
    pub(crate) sleeping: AtomicBool,
    /// The owner sleeps in its I/O driver's wait; this eventfd ends that wait (see `wakefd`).
    pub(crate) parker: wakefd::WakeFd,
    /// How many green threads the worker holds (module doc, "Per-worker load").
    pub(crate) load: Load,
    /// What the watchdog reads: the running thread, spawns, the kernel thread id (`watch`).
    pub(crate) watch: super::watch::Watch,
    /// The worker's counters for metrics (`stats`).
    pub(crate) stats: super::stats::WorkerStats,
}

/// How many green threads a worker holds, read by spawners for placement (`scheduler`,
/// "Placement"). Padded: the owner writes it at every first run and exit, and it should not share
/// a cache line with what the other workers read when they steal.
#[repr(align(128))]
pub(crate) struct Load {
    /// Threads pinned to the worker that have not exited. Written only by the owner, with a plain
    /// load and store (no locked instruction on the spawn path); read by spawners.
    pub(crate) pinned: AtomicUsize,
    /// Fresh threads placed on the worker's inbox that it has not run yet: added by the placer
    /// before the push, subtracted by the owner when it pins the thread.
    pub(crate) placed: AtomicUsize,
    /// The worker's switch count, stored by the owner at every pass through its scheduler loop
    /// (at least every `FAIRNESS_TICKS` switches); read by the monitor to tell a worker stuck on
    /// one thread.
    pub(crate) progress: AtomicU32,
}

impl Load {
    /// Threads pinned plus threads placed and not yet run.
    pub(crate) fn get(&self) -> usize {
        self.pinned.load(Ordering::Relaxed) + self.placed.load(Ordering::Relaxed)
    }
}

// SAFETY: `local` and `next` are touched only by the owning worker's kernel thread (checked by
// comparing CURRENT_HOME in `schedule`); the rest is atomic.
unsafe impl Sync for Home {}
// SAFETY: as above.
unsafe impl Send for Home {}

impl Home {
    pub(crate) fn new() -> std::io::Result<Home> {
        Ok(Home {
            local: UnsafeCell::new(RunQueue::with_capacity(256)),
            next: UnsafeCell::new(None),
            inbox: AtomicPtr::new(ptr::null_mut()),
            sleeping: AtomicBool::new(false),
            parker: wakefd::WakeFd::new()?,
            load: Load {
                pinned: AtomicUsize::new(0),
                placed: AtomicUsize::new(0),
                progress: AtomicU32::new(0),
            },
            watch: super::watch::Watch::new(),
            stats: super::stats::WorkerStats::default(),
        })
    }

    /// Owner only: the local queue.
    ///
    /// # Safety
    /// The caller runs on the owning worker's kernel thread and holds no other borrow of it.
    #[allow(clippy::mut_from_ref)]
    #[inline]
    pub(crate) unsafe fn local(&self) -> &mut RunQueue {
        // SAFETY: owner-only access, per the caller's contract.
        unsafe { &mut *self.local.get() }
    }

    /// Owner only: the "next" slot.
    ///
    /// # Safety
    /// As [`Home::local`].
    #[allow(clippy::mut_from_ref)]
    #[inline]
    pub(crate) unsafe fn next_slot(&self) -> &mut Option<TaskRef> {
        // SAFETY: owner-only access, per the caller's contract.
        unsafe { &mut *self.next.get() }
    }

    /// Any thread: queue `t` on the inbox and wake the owner if it sleeps. The caller keeps the
    /// `Home` alive until this returns (once `t` is in the inbox it may run, exit, and with it end
    /// the last reason for the runtime's workers to stay).
    pub(crate) fn push_remote(&self, t: TaskRef) {
        let raw = t.into_raw();
        // SAFETY: we own the reference `raw` carries; the header is alive.
        let link = unsafe { &raw.as_ref().link };
        let mut head = self.inbox.load(Ordering::Relaxed);
        loop {
            link.store(head, Ordering::Relaxed);
            match self.inbox.compare_exchange_weak(
                head,
                raw.as_ptr(),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(h) => head = h,
            }
        }
        // Pairs with the fence in the owner's sleep path (module doc).
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) {
            self.parker.wake();
        }
    }

    /// Owner, before it sleeps: announces it (`sleeping`), runs `announce` (the runtime's own
    /// bookkeeping of sleepers), issues the `SeqCst` fence that pairs with the one in
    /// [`Home::push_remote`], then re-checks the inbox and `other_work`. Returns whether the owner
    /// may sleep: if it returns `true`, every push that this re-check missed sees `sleeping` and
    /// wakes the owner (module doc). The owner calls [`Home::end_sleep`] once awake (or if it
    /// does not sleep).
    #[inline]
    pub(crate) fn prepare_sleep(
        &self,
        announce: impl FnOnce(),
        other_work: impl FnOnce() -> bool,
    ) -> bool {
        self.sleeping.store(true, Ordering::Relaxed);
        announce();
        fence(Ordering::SeqCst);
        !self.inbox_nonempty() && !other_work()
    }

    /// Owner: ends what [`Home::prepare_sleep`] announced.
    #[inline]
    pub(crate) fn end_sleep(&self) {
        self.sleeping.store(false, Ordering::Relaxed);
    }

    /// Whether the inbox has anything (any thread; used before sleeping).
    #[inline]
    pub(crate) fn inbox_nonempty(&self) -> bool {
        !self.inbox.load(Ordering::Relaxed).is_null()
    }

    /// Owner only: moves the inbox into the local queue, oldest first. Returns how many.
    ///
    /// # Safety
    /// As [`Home::local`].
    #[inline]
    pub(crate) unsafe fn drain_inbox(&self) -> usize {
        if !self.inbox_nonempty() {
            return 0;
        }
        // SAFETY: per the contract.
        unsafe { self.drain_inbox_slow() }
    }

    /// # Safety
    /// As [`Home::local`].
    #[cold]
    unsafe fn drain_inbox_slow(&self) -> usize {
        let mut p = self.inbox.swap(ptr::null_mut(), Ordering::Acquire);
        // The stack is newest first: collect, then append in reverse.
        let mut batch: Vec<TaskRef> = Vec::new();
        while let Some(nn) = NonNull::new(p) {
            // SAFETY: every pointer in the inbox carries a reference pushed by push_remote, and
            // its link was written before the Release CAS we synchronise with.
            unsafe {
                p = nn.as_ref().link.load(Ordering::Relaxed);
                batch.push(TaskRef::from_raw(nn));
            }
        }
        let n = batch.len();
        super::stats::bump(&self.stats.wakeups, n as u64);
        // SAFETY: owner-only, per the caller's contract.
        let local = unsafe { self.local() };
        local.extend(batch.into_iter().rev());
        n
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        // Drop what is left (only at runtime teardown, when nothing can be runnable).
        // A load, not `get_mut`, which loom's atomics lack (the same instruction here).
        let mut p = self.inbox.load(Ordering::Relaxed);
        while let Some(nn) = NonNull::new(p) {
            // SAFETY: as in drain_inbox; we have exclusive access.
            unsafe {
                p = nn.as_ref().link.load(Ordering::Relaxed);
                drop(TaskRef::from_raw(nn));
            }
        }
    }
}

#[cfg(all(test, loom))]
mod loom_models;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::new_kernel;
    use std::sync::atomic::Ordering;

    #[test]
    fn run_queue_is_fifo_across_wrap_and_growth_and_drops_its_references() {
        let items: Vec<TaskRef> = (0..700).map(|_| new_kernel()).collect();
        let mut q = RunQueue::with_capacity(4);
        let mut expected = std::collections::VecDeque::new();
        // Interleave pushes and pops so the head wraps before and after each growth.
        for (i, t) in items.iter().enumerate() {
            q.push_back(t.clone());
            expected.push_back(t.as_ptr());
            if i % 3 == 0 {
                assert_eq!(q.pop_front().map(|t| t.as_ptr()), expected.pop_front());
            }
        }
        while let Some(e) = expected.pop_front() {
            assert_eq!(q.pop_front().map(|t| t.as_ptr()), Some(e));
        }
        assert!(q.is_empty() && q.pop_front().is_none());
        // References left in a queue are released when it drops.
        q.extend(items.iter().take(10).cloned());
        drop(q);
        for t in &items {
            assert_eq!(t.refs.load(Ordering::Relaxed), 1);
        }
    }
}
