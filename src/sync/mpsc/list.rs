//! The unbounded flavor of [`super::channel`]: a linked queue of one node per message.
//!
//! # The problem
//! `send` on an unbounded channel never blocks and, with nobody waiting, should cost no lock and no
//! system call; several senders push at once; the one receiver must find every message in order
//! and park when there is none, and a sender must never leave it asleep next to a message. The
//! channel ping-pong between two green threads of one worker is a headline benchmark, so the
//! parked path matters too: every atomic read-modify-write costs 10-20 ns.
//!
//! # Alternatives rejected
//! - A `VecDeque` under a lock: a lock on every send and receive, and senders contend on it.
//! - Linked blocks of many slots (crossbeam's list flavor): fewer allocations, much more code;
//!   one small allocation per message is cheap from the per-thread cache (`task::small`).
//! - A separate "receiver parked" word (as the bounded flavor has): the sender then needs a
//!   `SeqCst` store plus a load on every send, and the wake-up a swap of that word and a reference
//!   count on the receiver's thread handle: four extra read-modify-writes per parked round trip.
//!
//! # The design
//! An intrusive multi-producer single-consumer queue with a stub node (Vyukov's): `send` allocates
//! a node holding the value, swaps it into `tail`, and links it behind the previous tail
//! (`prev.next = node`). The single receiver owns `head` (the stub); a message is ready when
//! `head.next` is non-null, and popping moves the value out of `head.next`, which becomes the new
//! stub. Between a sender's swap and its link the queue is "inconsistent" (`tail != head` but
//! `head.next` is null); the receiver then spins, yielding, until the link lands.
//!
//! Parking uses bit 0 of `tail` (`PARKED`; nodes are 8-aligned):
//! - The receiver, finding the queue empty, makes sure `rx_task` holds a reference to its own
//!   thread (rewritten only when the receiving thread changed), then compare-exchanges `tail` from
//!   `head` (empty and consistent) to `head | PARKED`, re-checks the sender count, and parks until
//!   the bit is gone.
//! - A sender's swap of `tail` returns the previous tail: if it carries `PARKED`, this sender alone
//!   has claimed the wake-up (its new tail has no bit). It wakes the thread in `rx_task` *before*
//!   linking its node. The receiver cannot leave `recv` before that link (the queue is inconsistent
//!   until then, and FIFO order puts this node next), so `rx_task` stays untouched and its thread
//!   alive throughout the wake-up: no reference count is taken on this path.
//! - The last sender to go compare-exchanges the bit away and wakes the receiver the same way. The
//!   receiver may then return `Disconnected` while that wake-up is still being delivered, which is
//!   fine: `rx_task` keeps the thread's control block alive, and it is only ever rewritten before a
//!   park, which never happens again once every sender is gone.
//! - A receiver whose deadline passes removes its bit with a compare-exchange; if that fails, a
//!   sender (or the last sender leaving) claimed it, and the receiver takes the message (or reports
//!   the disconnection) instead of timing out.
//!
//! A send to a receiver that is not parked costs one swap and one plain store; a send that wakes
//! it adds the wake-up itself.
//!
//! # Memory orderings
//! - `tail` swap is `AcqRel`: the previous tail node (made by another sender) is reached through
//!   it, and a `PARKED` bit read through it makes the receiver's write of `rx_task` visible.
//! - The link store is `Release` and the receiver's loads of `next` are `Acquire`: the value is
//!   published with the link.
//! - The receiver's `PARKED` compare-exchange and its following load of the sender count are
//!   `SeqCst`, as are the last sender's decrement and its compare-exchange of `tail`: a
//!   store-buffering pair, so either the receiver sees no sender left or the last sender sees the
//!   bit. A receiver that sees zero senders re-checks the queue, since the senders' pushes happen
//!   before their decrements.

use std::alloc::Layout;
use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::time::Instant;

use super::super::util::Padded;
use super::{Pop, RecvTimeoutError, SendError, TryRecvError, backoff};
use crate::park;
use crate::task::{self, TaskRef, Which};

/// Bit 0 of `tail`: the receiver is parked (or about to park) waiting for a message.
const PARKED: usize = 1;

/// `p` with the `PARKED` bit set (nodes are 8-aligned, so bit 0 of a node's address is free).
#[inline]
fn tagged<T>(p: *mut Node<T>) -> *mut Node<T> {
    p.map_addr(|a| a | PARKED)
}

/// `p` without the `PARKED` bit.
#[inline]
fn untagged<T>(p: *mut Node<T>) -> *mut Node<T> {
    p.map_addr(|a| a & !PARKED)
}

#[repr(align(8))]
struct Node<T> {
    next: AtomicPtr<Node<T>>,
    value: MaybeUninit<T>,
}

impl<T> Node<T> {
    /// A new node, from the per-thread small-allocation cache (one node per message: the
    /// allocator's malloc/free pair was a large part of a green ping-pong round trip).
    fn alloc(value: MaybeUninit<T>) -> *mut Node<T> {
        let p = crate::task::small::alloc(Layout::new::<Node<T>>()).cast::<Node<T>>();
        // SAFETY: `p` is fresh memory with the layout of a Node<T>.
        unsafe {
            p.write(Node {
                next: AtomicPtr::new(ptr::null_mut()),
                value,
            })
        };
        p
    }

    /// Frees a node made by [`Node::alloc`] whose value has been moved out or dropped (or never
    /// set: the stub).
    ///
    /// # Safety
    /// `p` came from `Node::alloc` and is not used afterwards.
    unsafe fn free(p: *mut Node<T>) {
        // SAFETY: per the contract; a Node has no drop glue beyond its (moved-out) value.
        unsafe { crate::task::small::free(p.cast(), Layout::new::<Node<T>>()) };
    }
}

pub(crate) struct Chan<T> {
    /// The last node, with `PARKED` in bit 0 (set and cleared with `map_addr`, so the pointer
    /// keeps its provenance: Miri checks this code under `-Zmiri-strict-provenance`).
    tail: Padded<AtomicPtr<Node<T>>>,
    /// The stub; the receiver's alone.
    head: Padded<UnsafeCell<*mut Node<T>>>,
    /// The thread of the receiver that last parked (see the module doc for who may touch it).
    rx_task: UnsafeCell<Option<TaskRef>>,
    senders: AtomicUsize,
    rx_gone: AtomicBool,
}

// SAFETY: values of `T` move from senders to the receiver (so `T: Send`); the queue is shared
// through atomics; `head` is touched only by the single receiver (the `Receiver` is `!Sync` and not
// `Clone`), or by the last owner in `drop`; `rx_task` is written only by the receiver while no
// wake-up is claimed, and read only by the one sender that claimed one (module doc).
unsafe impl<T: Send> Send for Chan<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Chan<T> {}

impl<T> Chan<T> {
    pub(crate) fn new() -> Chan<T> {
        let stub = Node::alloc(MaybeUninit::uninit());
        Chan {
            tail: Padded(AtomicPtr::new(stub)),
            head: Padded(UnsafeCell::new(stub)),
            rx_task: UnsafeCell::new(None),
            senders: AtomicUsize::new(1),
            rx_gone: AtomicBool::new(false),
        }
    }

    /// Wakes the parked receiver, after claiming the wake-up by removing `PARKED`.
    fn wake_rx(&self) {
        // SAFETY: we claimed the wake-up, so the receiver does not touch `rx_task` until the
        // wake-up is done, and it set `rx_task` before setting the bit (Acquire through `tail`).
        if let Some(t) = unsafe { &*self.rx_task.get() } {
            t.wake();
        }
    }

    pub(crate) fn send(&self, v: T) -> Result<(), SendError<T>> {
        if self.rx_gone.load(Ordering::Relaxed) {
            return Err(SendError(v));
        }
        let node = Node::alloc(MaybeUninit::new(v));
        let prev = self.tail.swap(node, Ordering::AcqRel);
        if prev.addr() & PARKED != 0 {
            // Wake before linking: the receiver cannot return until the link (module doc).
            self.wake_rx();
        }
        let prev = untagged(prev);
        // SAFETY: `prev` was the tail: it stays allocated until the receiver moves past it, which
        // needs this very link.
        unsafe { (*prev).next.store(node, Ordering::Release) };
        Ok(())
    }

    /// Receiver only: takes the next message.
    ///
    /// # Safety
    /// The caller is the single receiver (or has exclusive access).
    pub(crate) unsafe fn pop(&self) -> Pop<T> {
        // SAFETY: the receiver owns `head`; nodes reachable from it are alive (only the receiver
        // frees them).
        unsafe {
            let head = *self.head.get();
            let next = (*head).next.load(Ordering::Acquire);
            if next.is_null() {
                return if untagged(self.tail.load(Ordering::Acquire)) == head {
                    Pop::Empty
                } else {
                    Pop::Inconsistent
                };
            }
            *self.head.get() = next;
            let v = (*next).value.assume_init_read();
            Node::free(head);
            Pop::Data(v)
        }
    }

    /// # Safety
    /// The caller is the single receiver.
    pub(crate) unsafe fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut round = 0;
        loop {
            // SAFETY: per the contract.
            match unsafe { self.pop() } {
                Pop::Data(v) => return Ok(v),
                Pop::Inconsistent => backoff(&mut round),
                Pop::Empty => {
                    if self.senders.load(Ordering::Acquire) != 0 {
                        return Err(TryRecvError::Empty);
                    }
                    // Every sender is gone; what they sent before leaving is visible now.
                    loop {
                        // SAFETY: per the contract.
                        match unsafe { self.pop() } {
                            Pop::Data(v) => return Ok(v),
                            Pop::Empty => return Err(TryRecvError::Disconnected),
                            Pop::Inconsistent => backoff(&mut round),
                        }
                    }
                }
            }
        }
    }

    /// Makes `rx_task` the calling thread.
    ///
    /// # Safety
    /// The caller is the single receiver, and has no `PARKED` bit outstanding.
    unsafe fn set_rx_task(&self) {
        // SAFETY: per the contract, nobody else touches `rx_task` now.
        let slot = unsafe { &mut *self.rx_task.get() };
        let cur = slot.as_ref().map(|t| t.as_ptr());
        match task::current_green() {
            // The common case: the same green thread as last time; no reference count touched.
            Some(p) if cur == Some(p) => {}
            _ => {
                let me = task::current();
                if cur != Some(me.as_ptr()) {
                    *slot = Some(me);
                }
            }
        }
    }

    /// # Safety
    /// The caller is the single receiver.
    pub(crate) unsafe fn recv(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        loop {
            // SAFETY: per the contract.
            match unsafe { self.try_recv() } {
                Ok(v) => return Ok(v),
                Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
                Err(TryRecvError::Empty) => {}
            }
            if super::poll_before_park(|| {
                // SAFETY: the receiver owns `head`, and nodes reachable from it are alive.
                let head = unsafe { *self.head.get() };
                // SAFETY: as above.
                !unsafe { (*head).next.load(Ordering::Acquire) }.is_null()
                    || self.senders.load(Ordering::Relaxed) == 0
            }) {
                continue;
            }
            // SAFETY: the single receiver, with no bit outstanding (each iteration's bit is claimed
            // or withdrawn before the next).
            unsafe { self.set_rx_task() };
            // SAFETY: the receiver owns `head`.
            let head = unsafe { *self.head.get() };
            if self
                .tail
                .compare_exchange(head, tagged(head), Ordering::SeqCst, Ordering::Relaxed)
                .is_err()
            {
                // A message is arriving (or arrived): take it.
                continue;
            }
            if self.senders.load(Ordering::SeqCst) == 0 {
                // Withdraw the bit (if the last sender has not claimed it) and report.
                let _ = self.tail.compare_exchange(
                    tagged(head),
                    head,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                continue;
            }
            loop {
                let woken = park::park(Which::Sys, deadline, crate::task::ThreadState::ChannelRecv);
                if self.tail.load(Ordering::Acquire).addr() & PARKED == 0 {
                    // Claimed by a sender (its message is next) or by the last sender leaving.
                    break;
                }
                if !woken
                    && self
                        .tail
                        .compare_exchange(tagged(head), head, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    return Err(RecvTimeoutError::Timeout);
                }
            }
        }
    }

    pub(crate) fn add_sender(&self) {
        self.senders.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn drop_sender(&self) {
        if self.senders.fetch_sub(1, Ordering::SeqCst) != 1 {
            return;
        }
        let t = self.tail.load(Ordering::SeqCst);
        if t.addr() & PARKED != 0
            && self
                .tail
                .compare_exchange(t, untagged(t), Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
        {
            self.wake_rx();
        }
    }

    /// The receiver is gone: later sends fail; messages queued now are dropped now, as std.
    ///
    /// # Safety
    /// As [`Chan::pop`]; called once, by the departing receiver.
    pub(crate) unsafe fn drop_receiver(&self) {
        self.rx_gone.store(true, Ordering::SeqCst);
        // SAFETY: per the contract.
        unsafe { super::drain(|| self.pop()) };
    }
}

impl<T> Drop for Chan<T> {
    fn drop(&mut self) {
        // Exclusive: free the stub, then every node with its value.
        let mut p = *self.head.0.get_mut();
        let mut first = true;
        while !p.is_null() {
            // SAFETY: exclusive access; every node past the stub holds a value.
            unsafe {
                if !first {
                    (*p).value.assume_init_drop();
                }
                first = false;
                let next = *(*p).next.get_mut();
                Node::free(p);
                p = next;
            }
        }
    }
}
