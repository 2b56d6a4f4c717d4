//! [`RwLock`]: a reader-writer lock that parks only the calling green thread.
//!
//! # The problem
//! As for [`super::Mutex`], std's lock blocks the worker kernel thread. A reader-writer lock adds
//! two ways to starve: a stream of readers can keep a writer out forever, and a stream of writers
//! can keep readers out.
//!
//! # Alternatives rejected
//! - Reader preference (readers always join a read-held lock): writers starve.
//! - Strict phase-fair or FIFO hand-off on every release: no starvation, but every contended
//!   release leaves the lock idle while the next owner is scheduled.
//!
//! # The design
//! One state word: bit 0 `WRITER`, bit 1 `WAITERS` (the wait queue may be non-empty, as the mutex's
//! `PARKED`), and the reader count in the bits above (`ONE_READER` = 4).
//! - `read` fast path: add `ONE_READER` if neither `WRITER` nor `WAITERS` is set. So once anybody
//!   waits (a writer waiting for readers to leave, say), new readers queue behind it: writers do not
//!   starve.
//! - `write` fast path: compare-exchange `0 -> WRITER`.
//! - Slow paths queue in a [`WaitQueue`] with tag reader or writer, after re-checking under the
//!   queue lock (setting `WAITERS` there).
//! - Release: a writer's `WRITER -> 0` compare-exchange, or a reader's subtraction, finds `WAITERS`
//!   set when the lock becomes free, and the release slow path, under the queue lock, serves the
//!   front of the queue: one writer, or every reader queued in a row at the front. As for the mutex,
//!   if the front waiter has waited at least 0.5 ms (and the lock has not handed itself over in the
//!   last 0.5 ms) the lock is *handed* to that group (the state
//!   gets `WRITER` or their reader count before they run); otherwise the lock is left free and the
//!   group is woken to retry. A woken retrier may take the lock even though `WAITERS` is set (it was
//!   at the front), and if it loses it queues again at the front with its original start time.
//! - `downgrade`: `WRITER` becomes one reader in a single addition; readers queued at the front are
//!   then granted read access directly (they are compatible with the downgraded holder).
//!
//! Invariant: `WAITERS` changes only under the queue lock and is set exactly when the queue is
//! non-empty there. While the lock is held, its state only changes by compare-exchange or by the
//! holders' own additions, so no update is lost.
//!
//! # Memory orderings
//! `Acquire` on every acquisition, `Release` on every release (including the reader count
//! decrement, so a writer that follows sees the readers' reads done). Hand-offs publish through the
//! waiter token's Release/Acquire (see `waitq`).

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::poison::{self, LockResult, PoisonError, TryLockError, TryLockResult};
use super::util::{self, FairClock};
use super::waitq::{Park, Pos, WaitQueue};

const WRITER: usize = 1;
const WAITERS: usize = 2;
const ONE_READER: usize = 4;
/// A state at or above this cannot take one more reader.
const READERS_FULL: usize = usize::MAX - 2 * ONE_READER;

const TAG_READER: usize = 1;
const TAG_WRITER: usize = 2;

const HANDOFF: usize = 1;
const RETRY: usize = 2;

/// The lock without data or poisoning.
pub(crate) struct RawRwLock {
    state: AtomicUsize,
    q: WaitQueue<FairClock>,
}

#[inline]
fn read_free(s: usize, retrying: bool) -> bool {
    s & WRITER == 0 && (s & WAITERS == 0 || retrying)
}

#[inline]
fn write_free(s: usize, retrying: bool) -> bool {
    s & !WAITERS == 0 && (s & WAITERS == 0 || retrying)
}

#[cold]
fn too_many_readers() -> ! {
    panic!("too many active read locks on RwLock")
}

impl RawRwLock {
    const fn new() -> RawRwLock {
        RawRwLock {
            state: AtomicUsize::new(0),
            q: WaitQueue::new(FairClock::new()),
        }
    }

    #[inline]
    fn read(&self) {
        let s = self.state.load(Ordering::Relaxed);
        if s & (WRITER | WAITERS) == 0
            && s < READERS_FULL
            && self
                .state
                .compare_exchange_weak(s, s + ONE_READER, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return;
        }
        self.read_slow();
    }

    #[inline]
    fn try_read(&self) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & (WRITER | WAITERS) != 0 {
                return false;
            }
            if s >= READERS_FULL {
                too_many_readers();
            }
            match self.state.compare_exchange_weak(
                s,
                s + ONE_READER,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(x) => s = x,
            }
        }
    }

    #[inline]
    fn write(&self) {
        if self
            .state
            .compare_exchange_weak(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.write_slow();
        }
    }

    #[inline]
    fn try_write(&self) -> bool {
        self.state
            .compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// # Safety
    /// The caller holds a read lock.
    #[inline]
    unsafe fn unlock_read(&self) {
        let prev = self.state.fetch_sub(ONE_READER, Ordering::Release);
        if prev == ONE_READER | WAITERS {
            self.release_slow(false);
        }
    }

    /// # Safety
    /// The caller holds the write lock.
    #[inline]
    unsafe fn unlock_write(&self) {
        if self
            .state
            .compare_exchange(WRITER, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.release_slow(true);
        }
    }

    /// Turns the caller's write lock into a read lock.
    ///
    /// # Safety
    /// The caller holds the write lock.
    unsafe fn downgrade(&self) {
        // WRITER (1) + 3 = ONE_READER (4), in one step.
        let prev = self.state.fetch_add(ONE_READER - WRITER, Ordering::Release);
        if prev & WAITERS == 0 {
            return;
        }
        let mut g = self.q.lock();
        let n = g.count_front(|t| t == TAG_READER);
        if n == 0 {
            return;
        }
        let more = g.len() > n;
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            let mut new = s + n * ONE_READER;
            if !more {
                new &= !WAITERS;
            }
            match self
                .state
                .compare_exchange_weak(s, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(x) => s = x,
            }
        }
        for _ in 0..n {
            g.wake_front(HANDOFF);
        }
    }

    #[cold]
    fn read_slow(&self) {
        self.acquire_slow(TAG_READER, read_free, ONE_READER)
    }

    #[cold]
    fn write_slow(&self) {
        self.acquire_slow(TAG_WRITER, write_free, WRITER)
    }

    fn acquire_slow(&self, tag: usize, free: fn(usize, bool) -> bool, add: usize) {
        let mut spins = 0;
        let mut since: Option<Instant> = None;
        let mut retrying = false;
        loop {
            let s = self.state.load(Ordering::Relaxed);
            if free(s, retrying) {
                if add == ONE_READER && s >= READERS_FULL {
                    too_many_readers();
                }
                if self
                    .state
                    .compare_exchange_weak(s, s + add, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return;
                }
                continue;
            }
            if s & WAITERS == 0 && spins < util::SPIN_ROUNDS {
                util::spin(spins);
                spins += 1;
                continue;
            }
            let started = *since.get_or_insert_with(Instant::now);
            let r = self.q.park(
                crate::task::ThreadState::RwLock,
                tag,
                Some(started),
                None,
                |_| {
                    let s = self.state.load(Ordering::Relaxed);
                    if free(s, retrying) {
                        return None;
                    }
                    if s & WAITERS == 0
                        && self
                            .state
                            .compare_exchange(s, s | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                            .is_err()
                    {
                        return None;
                    }
                    Some(if retrying { Pos::Front } else { Pos::Back })
                },
                || {},
                |_| {},
            );
            match r {
                Park::Woken(HANDOFF) => return,
                Park::Woken(_) => {
                    retrying = true;
                    spins = 0;
                }
                Park::Invalid | Park::TimedOut => {}
            }
        }
    }

    /// Serves the front of the queue once the lock is free (see the module doc). `writer`: the
    /// caller still holds the write lock and releases it here.
    #[cold]
    fn release_slow(&self, writer: bool) {
        let mut g = self.q.lock();
        let mut s = self.state.load(Ordering::Relaxed);
        let mut fair: Option<bool> = None;
        loop {
            if !writer && (s & WRITER != 0 || s >= ONE_READER || s & WAITERS == 0) {
                // Someone (a retrier) holds the lock now and will serve the queue when it
                // releases, or the queue has been served already.
                return;
            }
            let Some((tag, since)) = g.front() else {
                // Not expected (WAITERS is set only with a non-empty queue): release plainly.
                match self
                    .state
                    .compare_exchange(s, 0, Ordering::Release, Ordering::Relaxed)
                {
                    Ok(_) => return,
                    Err(x) => {
                        s = x;
                        continue;
                    }
                }
            };
            let n = if tag == TAG_WRITER {
                1
            } else {
                g.count_front(|t| t == TAG_READER)
            };
            // Asked once: the answer moves the lock's fair clock.
            let fair = match fair {
                Some(f) => f,
                None => *fair.insert(g.data().handoff_due(since)),
            };
            let granted = match (fair, tag) {
                (false, _) => 0,
                (true, TAG_WRITER) => WRITER,
                (true, _) => n * ONE_READER,
            };
            let new = granted | if g.len() > n { WAITERS } else { 0 };
            match self
                .state
                .compare_exchange(s, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => {
                    for _ in 0..n {
                        g.wake_front(if fair { HANDOFF } else { RETRY });
                    }
                    return;
                }
                Err(x) => s = x,
            }
        }
    }
}

/// A reader-writer lock, as [`std::sync::RwLock`], that parks only the calling green thread.
///
/// Any number of readers, or one writer, at a time. Poisoned when a writer panics while holding it
/// (readers that panic do not poison it), as std. Once a thread waits for the lock, new readers
/// queue behind it, so writers do not starve; and a waiter that has waited for about half a
/// millisecond gets the lock handed to it, so nobody starves.
///
/// # Examples
/// ```
/// use hilos::sync::RwLock;
///
/// let lock = RwLock::new(5);
/// {
///     let r1 = lock.read().unwrap();
///     let r2 = lock.read().unwrap();
///     assert_eq!(*r1 + *r2, 10);
/// }
/// *lock.write().unwrap() += 1;
/// assert_eq!(*lock.read().unwrap(), 6);
/// ```
pub struct RwLock<T: ?Sized> {
    raw: RawRwLock,
    poison: poison::Flag,
    data: UnsafeCell<T>,
}

// SAFETY: as std: the lock gives `&mut T` to one thread at a time (so `T: Send`), and `&T` to
// several at once (so `T: Sync` for the lock to be shared).
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

impl<T: ?Sized> UnwindSafe for RwLock<T> {}
impl<T: ?Sized> RefUnwindSafe for RwLock<T> {}

/// RAII guard of shared read access to an [`RwLock`], as [`std::sync::RwLockReadGuard`].
///
/// # Examples
/// ```
/// use hilos::sync::RwLock;
///
/// let lock = RwLock::new(String::from("hi"));
/// let r1 = lock.read().unwrap();
/// let r2 = lock.read().unwrap(); // readers share the lock
/// assert_eq!(r1.len() + r2.len(), 4);
/// assert!(lock.try_write().is_err()); // but keep writers out
/// drop((r1, r2));
/// assert!(lock.try_write().is_ok());
/// ```
#[must_use = "if unused the RwLock will immediately unlock"]
#[clippy::has_significant_drop]
pub struct RwLockReadGuard<'a, T: ?Sized + 'a> {
    // A pointer rather than `&RwLock<T>` so that the guard is covariant in `T`, as std's.
    data: NonNull<T>,
    raw: &'a RawRwLock,
    _marker: PhantomData<(&'a T, *const ())>,
}

// SAFETY: a shared read guard gives `&T` only.
unsafe impl<T: ?Sized + Sync> Sync for RwLockReadGuard<'_, T> {}

/// RAII guard of exclusive write access to an [`RwLock`], as [`std::sync::RwLockWriteGuard`].
///
/// # Examples
/// ```
/// use hilos::sync::{RwLock, RwLockWriteGuard};
///
/// let lock = RwLock::new(vec![1]);
/// let mut w = lock.write().unwrap();
/// w.push(2);
/// assert!(lock.try_read().is_err()); // nobody else while it is written
/// let r = RwLockWriteGuard::downgrade(w); // keep reading, let other readers in
/// assert_eq!(*lock.try_read().unwrap(), [1, 2]);
/// assert_eq!(*r, [1, 2]);
/// ```
#[must_use = "if unused the RwLock will immediately unlock"]
#[clippy::has_significant_drop]
pub struct RwLockWriteGuard<'a, T: ?Sized + 'a> {
    lock: &'a RwLock<T>,
    poison: poison::Guard,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a shared write guard gives `&T` only.
unsafe impl<T: ?Sized + Sync> Sync for RwLockWriteGuard<'_, T> {}

impl<T> RwLock<T> {
    /// Creates a new, unlocked `RwLock`.
    #[inline]
    pub const fn new(t: T) -> RwLock<T> {
        RwLock {
            raw: RawRwLock::new(),
            poison: poison::Flag::new(),
            data: UnsafeCell::new(t),
        }
    }

    /// Consumes the lock, returning the underlying data.
    ///
    /// # Errors
    /// If the lock is poisoned, the error carries the data.
    pub fn into_inner(self) -> LockResult<T>
    where
        T: Sized,
    {
        let data = self.data.into_inner();
        poison::map_result(self.poison.borrow(), |()| data)
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Locks with shared read access, parking the current thread (only the green thread, on a
    /// green thread) until it can.
    ///
    /// # Errors
    /// If the lock is poisoned, the lock is still acquired and the error carries the guard.
    ///
    /// # Panics
    /// May panic if the number of readers overflows; taking a read lock the current thread
    /// already holds may deadlock if a writer waits meanwhile, as std warns.
    #[inline]
    pub fn read(&self) -> LockResult<RwLockReadGuard<'_, T>> {
        self.raw.read();
        // SAFETY: we hold a read lock.
        unsafe { RwLockReadGuard::new(self) }
    }

    /// Attempts to acquire shared read access without waiting. Fails while a writer holds the
    /// lock or any thread waits for it.
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`] if it cannot be had now, [`TryLockError::Poisoned`] (carrying
    /// the guard) if it was acquired but is poisoned.
    #[inline]
    pub fn try_read(&self) -> TryLockResult<RwLockReadGuard<'_, T>> {
        if self.raw.try_read() {
            // SAFETY: we hold a read lock.
            Ok(unsafe { RwLockReadGuard::new(self) }?)
        } else {
            Err(TryLockError::WouldBlock)
        }
    }

    /// Locks with exclusive write access, parking the current thread (only the green thread, on a
    /// green thread) until it can.
    ///
    /// # Errors
    /// If the lock is poisoned, the lock is still acquired and the error carries the guard.
    #[inline]
    pub fn write(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
        self.raw.write();
        // SAFETY: we hold the write lock.
        unsafe { RwLockWriteGuard::new(self) }
    }

    /// Attempts to acquire exclusive write access without waiting.
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`] if it cannot be had now, [`TryLockError::Poisoned`] (carrying
    /// the guard) if it was acquired but is poisoned.
    #[inline]
    pub fn try_write(&self) -> TryLockResult<RwLockWriteGuard<'_, T>> {
        if self.raw.try_write() {
            // SAFETY: we hold the write lock.
            Ok(unsafe { RwLockWriteGuard::new(self) }?)
        } else {
            Err(TryLockError::WouldBlock)
        }
    }

    /// Whether the lock is poisoned.
    #[inline]
    pub fn is_poisoned(&self) -> bool {
        self.poison.get()
    }

    /// Clears the poisoned state.
    #[inline]
    pub fn clear_poison(&self) {
        self.poison.clear();
    }

    /// A mutable reference to the underlying data, without locking (`&mut self` proves exclusive
    /// access).
    ///
    /// # Errors
    /// If the lock is poisoned, the error carries the reference.
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        let data = self.data.get_mut();
        poison::map_result(self.poison.borrow(), |()| data)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        match self.try_read() {
            Ok(guard) => {
                d.field("data", &&*guard);
            }
            Err(TryLockError::Poisoned(err)) => {
                d.field("data", &&**err.get_ref());
            }
            Err(TryLockError::WouldBlock) => {
                d.field("data", &format_args!("<locked>"));
            }
        }
        d.field("poisoned", &self.poison.get());
        d.finish_non_exhaustive()
    }
}

impl<T: Default> Default for RwLock<T> {
    /// Creates a new `RwLock<T>`, with the `Default` value for `T`.
    fn default() -> RwLock<T> {
        RwLock::new(Default::default())
    }
}

impl<T> From<T> for RwLock<T> {
    /// Creates a new, unlocked `RwLock` (as [`RwLock::new`]).
    fn from(t: T) -> Self {
        RwLock::new(t)
    }
}

impl<'a, T: ?Sized> RwLockReadGuard<'a, T> {
    /// # Safety
    /// The caller holds a read lock of `lock`.
    #[inline]
    unsafe fn new(lock: &'a RwLock<T>) -> LockResult<RwLockReadGuard<'a, T>> {
        let guard = RwLockReadGuard {
            // SAFETY: `UnsafeCell::get` never returns null.
            data: unsafe { NonNull::new_unchecked(lock.data.get()) },
            raw: &lock.raw,
            _marker: PhantomData,
        };
        if lock.poison.get() {
            Err(PoisonError::new(guard))
        } else {
            Ok(guard)
        }
    }
}

impl<'a, T: ?Sized> RwLockWriteGuard<'a, T> {
    /// # Safety
    /// The caller holds the write lock of `lock`.
    #[inline]
    unsafe fn new(lock: &'a RwLock<T>) -> LockResult<RwLockWriteGuard<'a, T>> {
        poison::map_result(lock.poison.guard(), |guard| RwLockWriteGuard {
            lock,
            poison: guard,
            _not_send: PhantomData,
        })
    }

    /// Turns the write lock into a read lock without letting any writer in between, as
    /// [`std::sync::RwLockWriteGuard::downgrade`]. Readers queued at the front are let in at
    /// once.
    pub fn downgrade(s: Self) -> RwLockReadGuard<'a, T> {
        let lock = s.lock;
        // The write guard's drop would release the write lock: skip it.
        let s = ManuallyDrop::new(s);
        lock.poison.done(&s.poison);
        // SAFETY: the guard held the write lock, which is now ours to downgrade.
        unsafe { lock.raw.downgrade() };
        // SAFETY: we now hold a read lock.
        unsafe { RwLockReadGuard::new(lock) }.unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard holds a read lock, so no writer exists.
        unsafe { self.data.as_ref() }
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the write lock.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the write lock.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard holds a read lock.
        unsafe { self.raw.unlock_read() };
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.poison.done(&self.poison);
        // SAFETY: the guard holds the write lock.
        unsafe { self.lock.raw.unlock_write() };
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}
