//! The one parking protocol that every blocking primitive of `hilos::sync` is built on.
//!
//! # The problem
//! Mutex, RwLock, Condvar, Barrier, Semaphore, OnceLock and the channels all need to put the
//! calling thread (green or kernel) to sleep until some other thread hands it something, with an
//! optional deadline, and a wake-up must never be lost: not when the waker runs before the sleeper
//! has gone to sleep, not when the sleeper times out at the moment it is woken, and not when the
//! two run on different workers, runtimes or kernel threads. Six hand-written protocols would be six
//! chances to get this wrong.
//!
//! # Alternatives rejected
//! - A global hashed "parking lot" (parking_lot's design): saves the queue in each primitive, but
//!   needs a global table that grows with the number of threads, and one bucket lock serves
//!   unrelated primitives. Our primitives are few words bigger instead.
//! - A lock-free waiter list: removal of a timed-out waiter from the middle of a lock-free list is
//!   the hard part and buys nothing on the slow path, where the thread is about to sleep anyway.
//! - Waking while holding the queue lock: a wake-up may be a `futex` wake of a worker, a system call
//!   under a spin lock that every other waiter then spins on.
//!
//! # The design
//! A [`WaitQueue`] is a short critical section (a `parking_lot::Mutex`, a word lock held only for a
//! few instructions and never across a park or a wake-up) around an intrusive doubly-linked FIFO
//! of [`Waiter`]s, plus whatever small state `S` the primitive wants to change atomically with the
//! queue (a barrier's count, a channel's hand-off slot). A waiter lives on the waiting thread's
//! stack, which stays put while the thread sleeps (green stacks never move), so queueing allocates
//! nothing. Each waiter carries a counted reference to its thread ([`TaskRef`]), a `tag` the
//! primitive interprets (reader or writer, a pointer to a hand-off slot) and a `state` word:
//! `WAITING` (0) until a waker writes a non-zero *token* into it (for example "the lock is yours" or
//! "try again").
//!
//! [`WaitQueue::park`] runs a `validate` closure under the queue lock: the primitive re-checks its
//! own condition (is the lock still held? is the channel still empty?) and either declines (no wait)
//! or has the waiter queued. The queue lock is released, `before_sleep` runs (a condition variable
//! releases its mutex there, after it is queued, so no notification can slip between the two), and
//! the thread parks on its `sys` token until `state` is non-zero. A waker ([`QGuard::wake_front`],
//! [`QGuard::wake_all`]) unlinks the waiter under the queue lock, takes the waiter's thread
//! reference, stores the token (`Release`), and only after the queue lock is dropped delivers the
//! wake-up to the thread. (`wake_all` unlinks every waiter under the lock but leaves them chained
//! to each other, and takes each thread reference and stores each token after the lock is
//! released, as it wakes them: waking any number of threads allocates nothing. A waiter that times
//! out and finds itself unlinked waits for its token.) The order matters: once the token is stored the waiter may return and its
//! stack frame vanish, so the waker never touches the waiter after that store; the thread reference
//! it took keeps the thread's control block alive for the wake-up itself.
//!
//! Timeouts: when the park returns because the deadline passed, the waiter takes the queue lock. If
//! it is still linked, no waker chose it: it unlinks itself and reports a time-out (so a later
//! `notify_one` or hand-off goes to someone else). If it is not linked, a waker chose it and has
//! already stored its token under that same lock: the wait succeeded, even if late. Either way the
//! token is never lost.
//!
//! # Memory orderings
//! - The token is stored with `Release` and loaded with `Acquire`, so what the waker did before
//!   handing over (the critical section of a mutex holder that hands the lock over, a value put in a
//!   hand-off slot) is visible to the woken waiter.
//! - `linked`, the links and the waiter's thread reference are only touched under the queue lock,
//!   which orders them.
//! - The sys token (see `task`) tolerates a wake-up that arrives after the waiter has already seen
//!   its token and returned: the next wait of that thread returns once spuriously, and every wait
//!   loop in hilos re-checks its own condition.
//! - `queued` mirrors the queue length for lock-free "is anyone waiting?" checks (`Relaxed`; the
//!   primitives that read it say why that suffices).

use std::cell::Cell;
use std::marker::PhantomPinned;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::loom::sync::{ShortGuard, ShortMutex};
use crate::park;
use crate::task::{self, TaskRef, ThreadState, Which};

/// A waiter's `state` before a waker has chosen it.
pub(crate) const WAITING: usize = 0;

/// A queued thread. Lives on the waiting thread's stack for the duration of [`WaitQueue::park`].
struct Waiter {
    next: Cell<*const Waiter>,
    prev: Cell<*const Waiter>,
    /// Whether the waiter is in a queue. Queue lock only.
    linked: Cell<bool>,
    /// The waiting thread; taken by the waker (queue lock only).
    task: Cell<Option<TaskRef>>,
    /// `WAITING`, then the token the waker hands over.
    state: crate::loom::sync::atomic::AtomicUsize,
    /// Meaning chosen by the primitive.
    tag: usize,
    /// When the thread first started waiting for this acquisition (for eventual fairness).
    since: Option<Instant>,
    _pinned: PhantomPinned,
}

// SAFETY: the `Cell` fields are only touched by whoever holds the queue lock the waiter is linked
// in, by the waker that unlinked it with `wake_all` until it stores the token, or by the waiting
// thread before it is linked and after it has its token (or unlinked itself); `state` is atomic.
unsafe impl Sync for Waiter {}

/// An intrusive FIFO of waiters. Queue lock only.
struct List {
    head: *const Waiter,
    tail: *const Waiter,
    len: usize,
}

// SAFETY: the list is only reached through the queue lock; the waiters it points at are `Sync`.
unsafe impl Send for List {}

impl List {
    const fn new() -> List {
        List {
            head: ptr::null(),
            tail: ptr::null(),
            len: 0,
        }
    }

    /// # Safety
    /// `w` is not linked and stays valid (and at the same address) until it is unlinked.
    unsafe fn push(&mut self, w: *const Waiter, front: bool) {
        // SAFETY: `w` and every linked waiter are valid (caller's contract, and this invariant).
        unsafe {
            if front {
                (*w).prev.set(ptr::null());
                (*w).next.set(self.head);
                match self.head.is_null() {
                    true => self.tail = w,
                    false => (*self.head).prev.set(w),
                }
                self.head = w;
            } else {
                (*w).next.set(ptr::null());
                (*w).prev.set(self.tail);
                match self.tail.is_null() {
                    true => self.head = w,
                    false => (*self.tail).next.set(w),
                }
                self.tail = w;
            }
            (*w).linked.set(true);
        }
        self.len += 1;
    }

    /// # Safety
    /// `w` is linked in this list.
    unsafe fn remove(&mut self, w: *const Waiter) {
        // SAFETY: `w` and its neighbours are linked, hence valid.
        unsafe {
            let (p, n) = ((*w).prev.get(), (*w).next.get());
            match p.is_null() {
                true => self.head = n,
                false => (*p).next.set(n),
            }
            match n.is_null() {
                true => self.tail = p,
                false => (*n).prev.set(p),
            }
            (*w).linked.set(false);
        }
        self.len -= 1;
    }
}

struct Inner<S> {
    list: List,
    data: S,
}

/// A queue of parked threads plus the primitive's own state `S`, behind one short lock.
pub(crate) struct WaitQueue<S> {
    inner: ShortMutex<Inner<S>>,
    /// Mirror of the queue length, for lock-free checks (std's atomic even under loom: a hint no
    /// model relies on).
    queued: AtomicUsize,
}

/// Where [`WaitQueue::park`] queues the caller.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Pos {
    /// Behind everyone (the usual case).
    Back,
    /// Ahead of everyone (a thread that was woken to retry and lost keeps its turn).
    Front,
}

/// How a [`WaitQueue::park`] ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Park {
    /// `validate` declined: the thread did not wait.
    Invalid,
    /// A waker chose the thread and handed it this (non-zero) token.
    Woken(usize),
    /// The deadline passed and no waker had chosen the thread; it is no longer queued.
    TimedOut,
}

impl<S> WaitQueue<S> {
    /// An empty queue around `data`.
    pub(crate) const fn new(data: S) -> WaitQueue<S> {
        WaitQueue {
            inner: ShortMutex::new(Inner {
                list: List::new(),
                data,
            }),
            queued: AtomicUsize::new(0),
        }
    }

    /// The number of queued threads, read without the lock (`Relaxed`): exact only when the caller
    /// has synchronised with the last change by other means.
    #[inline]
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Takes the queue lock. Wake-ups requested through the guard are delivered when it drops,
    /// after the lock is released.
    #[inline]
    pub(crate) fn lock(&self) -> QGuard<'_, S> {
        QGuard {
            q: self,
            g: Some(self.inner.lock()),
            wakes: Wakes {
                first: None,
                rest: Vec::new(),
                chain: ptr::null(),
                chain_token: WAITING,
            },
        }
    }

    /// Parks the calling thread (green or kernel) in this queue (see the module doc).
    ///
    /// `validate` runs under the queue lock: `None` means "do not wait" and returns
    /// [`Park::Invalid`]; `Some(pos)` queues the caller there. `before_sleep` runs once the caller is
    /// queued and the lock released. `timed_out` runs under the lock after a timed-out caller has
    /// unlinked itself (to update state that depends on the queue being empty). `tag` and `since`
    /// are what wakers see through [`QGuard::front`]. `why` is what dumps show the caller waiting on.
    #[expect(
        clippy::too_many_arguments,
        reason = "the parts of one wait: what for, how queued, when to give up, three hooks"
    )]
    pub(crate) fn park(
        &self,
        why: ThreadState,
        tag: usize,
        since: Option<Instant>,
        deadline: Option<Instant>,
        validate: impl FnOnce(&mut QGuard<'_, S>) -> Option<Pos>,
        before_sleep: impl FnOnce(),
        timed_out: impl FnOnce(&mut QGuard<'_, S>),
    ) -> Park {
        let me = task::current();
        let w = Waiter {
            next: Cell::new(ptr::null()),
            prev: Cell::new(ptr::null()),
            linked: Cell::new(false),
            task: Cell::new(None),
            state: crate::loom::sync::atomic::AtomicUsize::new(WAITING),
            tag,
            since,
            _pinned: PhantomPinned,
        };
        {
            let mut g = self.lock();
            let Some(pos) = validate(&mut g) else {
                return Park::Invalid;
            };
            w.task.set(Some(me));
            // SAFETY: `w` lives in this frame, which does not return (nor unwind, see `Unlink`)
            // before `w` is unlinked again.
            unsafe { g.push(&w, pos == Pos::Front) };
        }
        // From here on, leaving this frame while `w` is linked would leave a dangling pointer in
        // the queue: `unlink` removes it on any unexpected unwind.
        let unlink = Unlink { q: self, w: &w };
        before_sleep();
        loop {
            let s = w.state.load(Ordering::Acquire);
            if s != WAITING {
                std::mem::forget(unlink);
                return Park::Woken(s);
            }
            if !park::park(Which::Sys, deadline, why) {
                let mut g = self.lock();
                if w.linked.get() {
                    // SAFETY: linked in this queue, and we hold its lock.
                    unsafe { g.remove(&w) };
                    let t = w.task.take();
                    timed_out(&mut g);
                    drop(g);
                    drop(t);
                    std::mem::forget(unlink);
                    return Park::TimedOut;
                }
                drop(g);
                // Unlinked: a waker chose us. `wake_front` stored the token before releasing
                // the lock we just took; `wake_all` stores it just after releasing it, and then
                // wakes us: until then our frame must stay (it reads our links and thread).
                std::mem::forget(unlink);
                return Park::Woken(wait_for_token(&w, why));
            }
        }
    }
}

/// The token of a waiter a waker has unlinked, once it is there (parking until the waker's
/// wake-up while it is not).
fn wait_for_token(w: &Waiter, why: ThreadState) -> usize {
    loop {
        let s = w.state.load(Ordering::Acquire);
        if s != WAITING {
            return s;
        }
        park::park(Which::Sys, None, why);
    }
}

/// Removes a waiter that is still linked when its frame unwinds (never expected: it keeps the
/// queue free of dangling pointers whatever happens).
struct Unlink<'a, S> {
    q: &'a WaitQueue<S>,
    w: &'a Waiter,
}

impl<S> Drop for Unlink<'_, S> {
    fn drop(&mut self) {
        let mut g = self.q.lock();
        if self.w.linked.get() {
            // SAFETY: linked in this queue, and we hold its lock.
            unsafe { g.remove(self.w) };
            let t = self.w.task.take();
            drop(g);
            drop(t);
        } else {
            // Chosen by a waker that may not have stored the token yet (`wake_all`).
            drop(g);
            wait_for_token(self.w, ThreadState::Runnable);
        }
    }
}

/// Threads to wake once the queue lock is released.
struct Wakes {
    first: Option<TaskRef>,
    rest: Vec<TaskRef>,
    /// Waiters [`QGuard::wake_all`] unlinked, still chained through `next`, whose token
    /// (`chain_token`) is stored only after the lock is released: waking them all allocates
    /// nothing. A chained waiter stays put until it has its token (see [`WaitQueue::park`]).
    chain: *const Waiter,
    chain_token: usize,
}

impl Wakes {
    #[inline]
    fn push(&mut self, t: TaskRef) {
        if self.first.is_none() {
            self.first = Some(t);
        } else {
            self.rest.push(t);
        }
    }
}

/// The queue lock, held. Dropping it releases the lock, then delivers the wake-ups requested.
pub(crate) struct QGuard<'a, S> {
    q: &'a WaitQueue<S>,
    g: Option<ShortGuard<'a, Inner<S>>>,
    wakes: Wakes,
}

impl<S> QGuard<'_, S> {
    #[inline]
    fn inner(&mut self) -> &mut Inner<S> {
        self.g
            .as_mut()
            .expect("hilos: queue guard used after release")
    }

    #[inline]
    fn inner_ref(&self) -> &Inner<S> {
        self.g
            .as_ref()
            .expect("hilos: queue guard used after release")
    }

    /// The primitive's state.
    #[inline]
    pub(crate) fn data(&mut self) -> &mut S {
        &mut self.inner().data
    }

    /// The number of queued threads.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.inner_ref().list.len
    }

    /// Whether no thread is queued.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first queued thread's `tag` and `since`.
    #[inline]
    pub(crate) fn front(&self) -> Option<(usize, Option<Instant>)> {
        let h = self.inner_ref().list.head;
        // SAFETY: a linked waiter is valid while we hold the lock.
        (!h.is_null()).then(|| unsafe { ((*h).tag, (*h).since) })
    }

    /// How many threads at the front of the queue have a tag satisfying `pred`, in a row.
    pub(crate) fn count_front(&self, pred: impl Fn(usize) -> bool) -> usize {
        let mut n = 0;
        let mut p = self.inner_ref().list.head;
        // SAFETY: linked waiters are valid while we hold the lock.
        while !p.is_null() && pred(unsafe { (*p).tag }) {
            n += 1;
            // SAFETY: as above.
            p = unsafe { (*p).next.get() };
        }
        n
    }

    /// # Safety
    /// As [`List::push`].
    unsafe fn push(&mut self, w: *const Waiter, front: bool) {
        let inner = self.inner();
        // SAFETY: per the caller's contract.
        unsafe { inner.list.push(w, front) };
        let len = inner.list.len;
        self.q.queued.store(len, Ordering::Relaxed);
    }

    /// # Safety
    /// As [`List::remove`].
    unsafe fn remove(&mut self, w: *const Waiter) {
        let inner = self.inner();
        // SAFETY: per the caller's contract.
        unsafe { inner.list.remove(w) };
        let len = inner.list.len;
        self.q.queued.store(len, Ordering::Relaxed);
    }

    /// Unlinks the first queued thread, hands it `token` (non-zero) and wakes it once the lock is
    /// released. Returns its tag, or `None` if the queue was empty.
    pub(crate) fn wake_front(&mut self, token: usize) -> Option<usize> {
        debug_assert_ne!(token, WAITING);
        let w = self.inner_ref().list.head;
        if w.is_null() {
            return None;
        }
        // SAFETY: `w` is linked, hence valid, and we hold the lock. The token is stored last: after
        // it, the waiter may return and `w` dangle.
        unsafe {
            self.remove(w);
            let tag = (*w).tag;
            let t = (*w).task.take();
            (*w).state.store(token, Ordering::Release);
            if let Some(t) = t {
                self.wakes.push(t);
            }
            Some(tag)
        }
    }

    /// Wakes every queued thread with `token`; returns how many. Allocates nothing: the waiters
    /// are unlinked here (each left chained to the next) and given their token once the lock is
    /// released, as they are woken.
    pub(crate) fn wake_all(&mut self, token: usize) -> usize {
        debug_assert_ne!(token, WAITING);
        debug_assert!(
            self.wakes.chain.is_null(),
            "hilos: wake_all twice under one lock"
        );
        let inner = self.inner();
        let head = inner.list.head;
        let n = inner.list.len;
        let mut w = head;
        while !w.is_null() {
            // SAFETY: linked waiters are valid while we hold the lock; `next` is kept.
            unsafe {
                (*w).linked.set(false);
                w = (*w).next.get();
            }
        }
        inner.list = List::new();
        self.q.queued.store(0, Ordering::Relaxed);
        self.wakes.chain = head;
        self.wakes.chain_token = token;
        n
    }

    /// The first queued thread's tag.
    pub(crate) fn front_tag(&self) -> Option<usize> {
        self.front().map(|(t, _)| t)
    }
}

impl<S> Drop for QGuard<'_, S> {
    fn drop(&mut self) {
        drop(self.g.take());
        if let Some(t) = self.wakes.first.take() {
            t.wake();
        }
        for t in self.wakes.rest.drain(..) {
            t.wake();
        }
        let mut w = std::mem::replace(&mut self.wakes.chain, ptr::null());
        while !w.is_null() {
            // SAFETY: a chained waiter (`wake_all`) waits in its frame until its token is
            // stored, and nobody else touches its links or thread; its next link and thread are
            // read before the store, after which it may return.
            unsafe {
                let next = (*w).next.get();
                let t = (*w).task.take();
                (*w).state.store(self.wakes.chain_token, Ordering::Release);
                if let Some(t) = t {
                    t.wake();
                }
                w = next;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    /// Waiters whose deadlines run from "already passed" to a few microseconds park `rounds`
    /// times each in one queue while a kernel thread keeps waking with `wake` (which returns how
    /// many it woke): every token handed out is received exactly once, and a waiter sees nothing
    /// but the token or a time-out.
    fn race_timeouts_against(waiters: u64, rounds: u64, wake: fn(&mut QGuard<'_, ()>) -> usize) {
        let q = Arc::new(WaitQueue::new(()));
        let stop = Arc::new(AtomicBool::new(false));
        let waker = {
            let (q, stop) = (q.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut given = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    given += wake(&mut q.lock());
                }
                given
            })
        };
        let parkers: Vec<_> = (0..waiters)
            .map(|k| {
                let q = q.clone();
                std::thread::spawn(move || {
                    let mut woken = 0usize;
                    for i in 0..rounds {
                        let ns = ((i + k) % 5) * 1000;
                        let d = Instant::now() + std::time::Duration::from_nanos(ns);
                        match q.park(
                            ThreadState::Park,
                            0,
                            None,
                            Some(d),
                            |_| Some(Pos::Back),
                            || {},
                            |_| {},
                        ) {
                            Park::Woken(7) => woken += 1,
                            Park::TimedOut => {}
                            other => panic!("unexpected {other:?}"),
                        }
                    }
                    woken
                })
            })
            .collect();
        let woken: usize = parkers.into_iter().map(|h| h.join().unwrap()).sum();
        stop.store(true, Ordering::Relaxed);
        let given = waker.join().unwrap();
        assert_eq!(woken, given, "woken {woken}, given {given}");
        assert_eq!(q.queued(), 0);
    }

    /// A waiter whose deadline passes while a waker picks it must report the wake-up (the token),
    /// never a time-out. Under Miri each round explores another interleaving; a few dozen stay
    /// within seconds.
    #[test]
    fn timeout_racing_a_wake_never_loses_the_token() {
        let rounds = if cfg!(miri) { 40 } else { 20_000 };
        race_timeouts_against(1, rounds, |g| usize::from(g.wake_front(7).is_some()));
    }

    /// The same against `wake_all`, which stores the tokens after releasing the lock: a waiter
    /// that times out and finds itself unlinked must wait for its token (never report a time-out,
    /// never leave while the waker still reads its frame), with several waiters at once.
    #[test]
    fn timeouts_racing_wake_all_never_lose_a_token() {
        let rounds = if cfg!(miri) { 10 } else { 10_000 };
        race_timeouts_against(3, rounds, |g| g.wake_all(7));
    }

    #[test]
    fn fifo_order_and_front() {
        let q = WaitQueue::new(());
        let mut g = q.lock();
        let ws: Vec<Waiter> = (0..3)
            .map(|tag| Waiter {
                next: Cell::new(ptr::null()),
                prev: Cell::new(ptr::null()),
                linked: Cell::new(false),
                task: Cell::new(Some(task::current())),
                state: crate::loom::sync::atomic::AtomicUsize::new(WAITING),
                tag,
                since: None,
                _pinned: PhantomPinned,
            })
            .collect();
        // SAFETY: the waiters outlive the guard's use of them (all are woken below).
        unsafe {
            g.push(&ws[0], false);
            g.push(&ws[1], false);
            g.push(&ws[2], true);
        }
        assert_eq!(g.len(), 3);
        assert_eq!(g.count_front(|t| t != 1), 2);
        assert_eq!(g.wake_front(1), Some(2));
        assert_eq!(g.wake_front(1), Some(0));
        assert_eq!(g.front_tag(), Some(1));
        assert_eq!(g.wake_all(2), 1);
        assert!(g.is_empty());
        drop(g);
        assert_eq!(ws[1].state.load(Ordering::Relaxed), 2);
        // The wake-ups went to this (kernel) thread's sys token: consume them.
        while park::park(Which::Sys, Some(Instant::now()), ThreadState::Park) {}
    }
}

// Plain kernel-thread tests (also run under Miri); not built against loom's primitives.
#[cfg(all(test, not(loom)))]
#[path = "waitq_tests.rs"]
mod list_tests;
