//! The bounded flavor of [`super::sync_channel`] (capacity at least 1): a ring of slots.
//!
//! # The problem
//! As for the unbounded flavor, plus: senders find the buffer full and must park (only their green
//! threads) until the receiver frees a slot, with no lost wake-up and no lock on the uncontended
//! path.
//!
//! # Alternatives rejected
//! - A `VecDeque` with a capacity under a lock: a lock on every operation.
//! - Waking every parked sender when a slot frees: a thundering herd for one slot.
//!
//! # The design
//! A ring of `cap` slots, each with a `stamp` (Vyukov's bounded queue, single consumer). Positions
//! count up forever (64-bit: they never wrap in practice); slot `pos % cap` is free for the sender of
//! position `pos` when its stamp equals `2 * pos`, and holds that sender's message when it equals
//! `2 * pos + 1`; the receiver frees it for the next lap by storing `2 * (pos + cap)`. (Doubling
//! keeps "published at `pos`" apart from "free for `pos + 1`", which coincide when `cap` is 1 in
//! the undoubled scheme.) Senders claim a position by compare-exchange on `tail`; the receiver owns
//! `head`.
//!
//! Receiver parking as in the unbounded flavor (see `super::RxSlot`). Sender parking: a sender that
//! finds the ring full queues in `send_q` (a [`WaitQueue`]); in its `validate` it first counts itself
//! in `send_waiters`, then re-checks for room; the receiver, after freeing a slot, looks at
//! `send_waiters` and if non-zero wakes the first queued sender, which retries (if another sender
//! took the slot meanwhile, it queues again). Each freed slot wakes at most one sender.
//!
//! # Memory orderings
//! - Slot stamps: the sender's publishing store and the receiver's freeing store are `SeqCst`; loads that precede reading or writing a slot's value are `Acquire`.
//! - Store-buffering pairs, all `SeqCst`: (sender publishes a message; sender looks for a published
//!   receiver) against (receiver publishes itself; receiver re-checks the slot); and (sender counts
//!   itself in `send_waiters`; sender re-checks for room) against (receiver frees a slot; receiver
//!   reads `send_waiters`). In each pair at least one side sees the other, so nobody sleeps through
//!   an event meant for it.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::super::util::{self, Padded};
use super::super::waitq::{Pos, WaitQueue};
use super::{Pop, RxSlot, SendError, TrySendError};

struct Slot<T> {
    stamp: AtomicUsize,
    value: UnsafeCell<MaybeUninit<T>>,
}

pub(crate) struct Chan<T> {
    tail: Padded<AtomicUsize>,
    /// The receiver's alone.
    head: Padded<UnsafeCell<usize>>,
    slots: Box<[Slot<T>]>,
    pub(crate) rx: RxSlot,
    send_q: WaitQueue<()>,
    send_waiters: AtomicUsize,
    senders: AtomicUsize,
    rx_gone: AtomicBool,
}

// SAFETY: values of `T` move from senders to the receiver (`T: Send`); a slot's value is touched
// only by the sender that claimed its position (before publishing) or by the receiver (after), and
// `head` only by the single receiver.
unsafe impl<T: Send> Send for Chan<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Chan<T> {}

/// Token of a sender woken because a slot was freed (or the receiver left).
const ROOM: usize = 1;

impl<T> Chan<T> {
    pub(crate) fn new(cap: usize) -> Chan<T> {
        assert!(cap > 0);
        Chan {
            tail: Padded(AtomicUsize::new(0)),
            head: Padded(UnsafeCell::new(0)),
            slots: (0..cap)
                .map(|i| Slot {
                    stamp: AtomicUsize::new(2 * i),
                    value: UnsafeCell::new(MaybeUninit::uninit()),
                })
                .collect(),
            rx: RxSlot::new(),
            send_q: WaitQueue::new(()),
            send_waiters: AtomicUsize::new(0),
            senders: AtomicUsize::new(1),
            rx_gone: AtomicBool::new(false),
        }
    }

    #[inline]
    fn cap(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn try_send(&self, v: T) -> Result<(), TrySendError<T>> {
        if self.rx_gone.load(Ordering::Relaxed) {
            return Err(TrySendError::Disconnected(v));
        }
        let mut pos = self.tail.load(Ordering::Relaxed);
        loop {
            let slot = &self.slots[pos % self.cap()];
            let stamp = slot.stamp.load(Ordering::Acquire);
            let d = stamp.wrapping_sub(2 * pos) as isize;
            if d == 0 {
                match self.tail.compare_exchange_weak(
                    pos,
                    pos + 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: we claimed `pos`, whose slot the receiver has freed (Acquire on
                        // its stamp): the slot's value is ours to write until we publish.
                        unsafe { (*slot.value.get()).write(v) };
                        slot.stamp.store(2 * pos + 1, Ordering::SeqCst);
                        self.rx.wake();
                        return Ok(());
                    }
                    Err(x) => pos = x,
                }
            } else if d < 0 {
                // The slot still holds the message of the previous lap: full.
                return Err(TrySendError::Full(v));
            } else {
                pos = self.tail.load(Ordering::Relaxed);
            }
        }
    }

    /// Whether the slot at the current tail is free (`SeqCst`, for the parking protocol).
    fn has_room(&self) -> bool {
        let pos = self.tail.load(Ordering::SeqCst);
        let stamp = self.slots[pos % self.cap()].stamp.load(Ordering::SeqCst);
        stamp.wrapping_sub(2 * pos) as isize >= 0
    }

    pub(crate) fn send(&self, mut v: T) -> Result<(), SendError<T>> {
        let mut spins = 0;
        loop {
            match self.try_send(v) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Disconnected(x)) => return Err(SendError(x)),
                Err(TrySendError::Full(x)) => v = x,
            }
            if spins < util::SPIN_ROUNDS && self.send_waiters.load(Ordering::Relaxed) == 0 {
                util::spin(spins);
                spins += 1;
                continue;
            }
            self.send_q.park(
                crate::task::ThreadState::ChannelSend,
                0,
                None,
                None,
                |_| {
                    self.send_waiters.fetch_add(1, Ordering::SeqCst);
                    if self.has_room() || self.rx_gone.load(Ordering::SeqCst) {
                        self.send_waiters.fetch_sub(1, Ordering::Relaxed);
                        return None;
                    }
                    Some(Pos::Back)
                },
                || {},
                |_| {},
            );
        }
    }

    /// Receiver only: takes the next message.
    ///
    /// # Safety
    /// The caller is the single receiver (or has exclusive access).
    pub(crate) unsafe fn pop(&self) -> Pop<T> {
        // SAFETY: the receiver owns `head`.
        let pos = unsafe { *self.head.get() };
        let slot = &self.slots[pos % self.cap()];
        if slot.stamp.load(Ordering::Acquire) != 2 * pos + 1 {
            return if self.tail.load(Ordering::Acquire) == pos {
                Pop::Empty
            } else {
                // Claimed by a sender that has not published yet.
                Pop::Inconsistent
            };
        }
        // SAFETY: published (Acquire): the value is ours to move out before freeing the slot.
        let v = unsafe { (*slot.value.get()).assume_init_read() };
        slot.stamp.store(2 * (pos + self.cap()), Ordering::SeqCst);
        // SAFETY: the receiver owns `head`.
        unsafe { *self.head.get() = pos + 1 };
        if self.send_waiters.load(Ordering::SeqCst) != 0 {
            self.wake_sender();
        }
        Pop::Data(v)
    }

    #[cold]
    fn wake_sender(&self) {
        let mut g = self.send_q.lock();
        if g.wake_front(ROOM).is_some() {
            self.send_waiters.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// # Safety
    /// As [`Chan::pop`].
    pub(crate) unsafe fn ready(&self) -> bool {
        // SAFETY: the receiver owns `head`.
        let pos = unsafe { *self.head.get() };
        self.slots[pos % self.cap()].stamp.load(Ordering::SeqCst) == 2 * pos + 1
            || self.tail.load(Ordering::SeqCst) != pos
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

    /// The receiver is gone: parked senders fail, later sends fail, queued messages are dropped.
    ///
    /// # Safety
    /// As [`Chan::pop`]; called once, by the departing receiver.
    pub(crate) unsafe fn drop_receiver(&self) {
        self.rx_gone.store(true, Ordering::SeqCst);
        {
            let mut g = self.send_q.lock();
            let n = g.wake_all(ROOM);
            self.send_waiters.fetch_sub(n, Ordering::Relaxed);
        }
        // SAFETY: per the contract.
        unsafe { super::drain(|| self.pop()) };
    }
}

impl<T> Drop for Chan<T> {
    fn drop(&mut self) {
        // Exclusive: every claimed position is published by now (its sender held a reference).
        let head = *self.head.0.get_mut();
        let tail = *self.tail.0.get_mut();
        for pos in head..tail {
            let slot = &mut self.slots[pos % self.slots.len()];
            if *slot.stamp.get_mut() == 2 * pos + 1 {
                // SAFETY: published and never received.
                unsafe { slot.value.get_mut().assume_init_drop() };
            }
        }
    }
}
