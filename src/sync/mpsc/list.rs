//! The unbounded flavor of [`super::channel`]: a linked queue of one node per message.
//!
//! # The problem
//! `send` on an unbounded channel never blocks and, with nobody waiting, should cost no lock and no
//! system call; several senders push at once; the one receiver must find every message in order
//! and park when there is none, and a sender must never leave it asleep next to a message.
//!
//! # Alternatives rejected
//! - A `VecDeque` under a lock: simple, but a lock on every send and receive, and senders contend
//!   on it.
//! - Linked blocks of many slots (crossbeam's list flavor): fewer allocations, much more code;
//!   one small allocation per message is cheap with a thread-caching allocator.
//!
//! # The design
//! An intrusive multi-producer single-consumer queue with a stub node (Vyukov's): `send` allocates
//! a node holding the value, swaps it into `tail`, and links it behind the previous tail
//! (`prev.next = node`). The single receiver owns `head` (the stub); a message is ready when
//! `head.next` is non-null, and popping moves the value out of `head.next`, which becomes the new
//! stub. Between a sender's swap and its link the queue is briefly "inconsistent" (`tail != head`
//! but `head.next` is null); the receiver then spins, yielding, until the link lands (a green sender
//! cannot be preempted in that window; a kernel sender rarely is).
//!
//! Parking: see `super::RxSlot`: the receiver publishes itself, re-checks the queue, then parks; a
//! sender links its node, then looks for a published receiver and wakes it.
//!
//! # Memory orderings
//! - `tail` swap is `AcqRel`: the previous tail node (made by another sender) is reached through it.
//! - The link store `prev.next = node` is `SeqCst` and the receiver's loads of `next` are
//!   `Acquire` (the value is published with the link) and, in the pre-park re-check, `SeqCst`: with
//!   the `SeqCst` publication of the receiver and the sender's `SeqCst` look at it, this is the
//!   store-buffering pattern that guarantees one side sees the other (see `super::RxSlot`).
//! - The sender count's last decrement is `SeqCst` for the same reason (a disconnect must wake a
//!   parked receiver); a receiver that sees zero senders re-checks the queue, since the senders'
//!   pushes happen before their decrements.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use super::super::util::Padded;
use super::{Pop, RxSlot, SendError};

struct Node<T> {
    next: AtomicPtr<Node<T>>,
    value: MaybeUninit<T>,
}

pub(crate) struct Chan<T> {
    tail: Padded<AtomicPtr<Node<T>>>,
    /// The stub; the receiver's alone.
    head: Padded<UnsafeCell<*mut Node<T>>>,
    pub(crate) rx: RxSlot,
    senders: AtomicUsize,
    rx_gone: AtomicBool,
}

// SAFETY: values of `T` move from senders to the receiver (so `T: Send`); the queue is shared
// through atomics, and `head` is touched only by the single receiver (the `Receiver` is `!Sync`
// and not `Clone`), or by the last owner in `drop`.
unsafe impl<T: Send> Send for Chan<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Chan<T> {}

impl<T> Chan<T> {
    pub(crate) fn new() -> Chan<T> {
        let stub = Box::into_raw(Box::new(Node {
            next: AtomicPtr::new(ptr::null_mut()),
            value: MaybeUninit::uninit(),
        }));
        Chan {
            tail: Padded(AtomicPtr::new(stub)),
            head: Padded(UnsafeCell::new(stub)),
            rx: RxSlot::new(),
            senders: AtomicUsize::new(1),
            rx_gone: AtomicBool::new(false),
        }
    }

    pub(crate) fn send(&self, v: T) -> Result<(), SendError<T>> {
        if self.rx_gone.load(Ordering::Relaxed) {
            return Err(SendError(v));
        }
        let node = Box::into_raw(Box::new(Node {
            next: AtomicPtr::new(ptr::null_mut()),
            value: MaybeUninit::new(v),
        }));
        let prev = self.tail.swap(node, Ordering::AcqRel);
        // SAFETY: `prev` was the tail: it stays allocated until the receiver moves past it, which
        // needs this very link.
        unsafe { (*prev).next.store(node, Ordering::SeqCst) };
        self.rx.wake();
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
                return if self.tail.load(Ordering::Acquire) == head {
                    Pop::Empty
                } else {
                    Pop::Inconsistent
                };
            }
            *self.head.get() = next;
            let v = (*next).value.assume_init_read();
            drop(Box::from_raw(head));
            Pop::Data(v)
        }
    }

    /// Receiver only, after publishing itself: whether there is something to receive (a message,
    /// or a disconnection) that it must not sleep through.
    ///
    /// # Safety
    /// As [`Chan::pop`].
    pub(crate) unsafe fn ready(&self) -> bool {
        // SAFETY: the receiver owns `head`.
        let head = unsafe { *self.head.get() };
        // SAFETY: `head` is alive (only the receiver frees nodes).
        !unsafe { (*head).next.load(Ordering::SeqCst) }.is_null()
            || self.tail.load(Ordering::SeqCst) != head
            || self.senders.load(Ordering::SeqCst) == 0
    }

    pub(crate) fn disconnected(&self) -> bool {
        self.senders.load(Ordering::Acquire) == 0
    }

    pub(crate) fn add_sender(&self) {
        self.senders.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn drop_sender(&self) {
        if self.senders.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.rx.wake();
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
                let mut b = Box::from_raw(p);
                if !first {
                    b.value.assume_init_drop();
                }
                first = false;
                p = *b.next.get_mut();
            }
        }
    }
}
