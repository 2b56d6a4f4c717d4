//! The rendezvous flavor of [`super::sync_channel`] (capacity 0): `send` returns only once the
//! receiver has taken the value.
//!
//! # The problem
//! A value passes directly from a sender to the receiver; whoever comes first must wait for the
//! other (parking only its green thread), with a deadline on the receiving side, and a timed-out or
//! departing party must never leave the other one waiting or lose a value.
//!
//! # Alternatives rejected
//! - A one-slot buffer plus an acknowledgement: two hand-overs per message, and `try_send` would
//!   succeed with no receiver waiting, which std's rendezvous channel does not do.
//! - A lock-free exchanger: much harder to get right with timeouts; a rendezvous always involves
//!   both parties, so there is no uncontended path for a lock to slow down (the one spot where this
//!   module takes a short lock where the others have a lock-free fast path).
//!
//! # The design
//! One [`WaitQueue`] holds either parked senders or the one parked receiver (never both: whoever
//! arrives and finds the other kind at the front completes the exchange instead of queueing). Each
//! waiter's tag points at a hand-off slot on its own stack (`Option<T>`), with bit 0 telling a
//! receiver from a sender. Under the queue lock:
//! - a sender that finds the receiver queued moves its value into the receiver's slot and wakes it
//!   with `DELIVERED`; otherwise it queues with its value in its own slot and parks until the
//!   receiver takes it (`TAKEN`) or leaves (`DISCONNECTED`, and the value comes back);
//! - the receiver that finds a sender queued moves the value out of the sender's slot and wakes it
//!   with `TAKEN`; otherwise it queues (unless no sender is left) and parks until `DELIVERED`,
//!   `DISCONNECTED` or its deadline.
//!
//! The slots are only touched under the queue lock, while their owners are queued (and so cannot
//! return), which is what makes reaching into another thread's stack sound.
//!
//! # Memory orderings
//! All through the queue lock and the waiter tokens (see `waitq`). The sender count is read under
//! the queue lock; the last sender decrements it before taking that lock to wake the receiver, so
//! either the receiver's check sees zero or the sender sees the receiver queued.

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use super::super::waitq::{Park, Pos, QGuard, WaitQueue};
use super::{RecvTimeoutError, SendError, TryRecvError, TrySendError};

/// Tag bit of a queued receiver.
const RECV: usize = 1;

const DELIVERED: usize = 1;
const TAKEN: usize = 2;
const DISCONNECTED: usize = 3;

/// A hand-off slot on a waiter's stack (aligned so that bit 0 of its address is free for `RECV`).
#[repr(align(8))]
struct Slot<T>(UnsafeCell<Option<T>>);

pub(crate) struct Chan<T> {
    q: WaitQueue<()>,
    senders: AtomicUsize,
    rx_gone: AtomicBool,
    _marker: PhantomData<T>,
}

// SAFETY: values of `T` move between threads (`T: Send`); slots are only reached under the queue
// lock while their owner is queued.
unsafe impl<T: Send> Send for Chan<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Chan<T> {}

impl<T> Chan<T> {
    pub(crate) fn new() -> Chan<T> {
        Chan {
            q: WaitQueue::new(()),
            senders: AtomicUsize::new(1),
            rx_gone: AtomicBool::new(false),
            _marker: PhantomData,
        }
    }

    /// Under the queue lock: gives `v` to the queued receiver, if one is at the front.
    fn deliver(g: &mut QGuard<'_, ()>, v: &mut Option<T>) -> bool {
        match g.front_tag() {
            Some(t) if t & RECV != 0 => {
                let rs = (t & !RECV) as *const Slot<T>;
                // SAFETY: the receiver is queued (so its frame, and the slot, are alive) and slots
                // are only touched under the queue lock, which we hold.
                unsafe { *(*rs).0.get() = v.take() };
                g.wake_front(DELIVERED);
                true
            }
            _ => false,
        }
    }

    /// Under the queue lock: takes the value of the first queued sender, if any.
    fn take(g: &mut QGuard<'_, ()>) -> Option<T> {
        match g.front_tag() {
            Some(t) if t & RECV == 0 => {
                let ss = t as *const Slot<T>;
                // SAFETY: as in `deliver`, for the sender's slot.
                let v = unsafe { (*(*ss).0.get()).take() };
                g.wake_front(TAKEN);
                v
            }
            _ => None,
        }
    }

    pub(crate) fn try_send(&self, v: T) -> Result<(), TrySendError<T>> {
        let mut v = Some(v);
        let mut g = self.q.lock();
        if self.rx_gone.load(Ordering::Relaxed) {
            drop(g);
            return Err(TrySendError::Disconnected(v.take().expect("value")));
        }
        if Self::deliver(&mut g, &mut v) {
            return Ok(());
        }
        drop(g);
        Err(TrySendError::Full(v.take().expect("value")))
    }

    pub(crate) fn send(&self, v: T) -> Result<(), SendError<T>> {
        let slot = Slot(UnsafeCell::new(Some(v)));
        let tag = &slot as *const Slot<T> as usize;
        let r = self.q.park(
            crate::task::ThreadState::ChannelSend,
            tag,
            None,
            None,
            |g| {
                if self.rx_gone.load(Ordering::Relaxed) {
                    return None;
                }
                // SAFETY: our own slot, not yet visible to anyone (we are not queued).
                let v = unsafe { &mut *slot.0.get() };
                if Self::deliver(g, v) {
                    return None;
                }
                Some(Pos::Back)
            },
            || {},
            |_| {},
        );
        // SAFETY: we are not queued any more: the slot is ours again.
        let left = unsafe { (*slot.0.get()).take() };
        match (r, left) {
            (Park::Woken(TAKEN), _) | (_, None) => Ok(()),
            (_, Some(v)) => Err(SendError(v)),
        }
    }

    pub(crate) fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut g = self.q.lock();
        if let Some(v) = Self::take(&mut g) {
            return Ok(v);
        }
        if self.senders.load(Ordering::Relaxed) == 0 {
            Err(TryRecvError::Disconnected)
        } else {
            Err(TryRecvError::Empty)
        }
    }

    pub(crate) fn recv(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        let slot: Slot<T> = Slot(UnsafeCell::new(None));
        let tag = &slot as *const Slot<T> as usize | RECV;
        let r = self.q.park(
            crate::task::ThreadState::ChannelRecv,
            tag,
            None,
            deadline,
            |g| {
                if let Some(v) = Self::take(g) {
                    // SAFETY: our own slot, not visible to anyone (we are not queued).
                    unsafe { *slot.0.get() = Some(v) };
                    return None;
                }
                if self.senders.load(Ordering::Relaxed) == 0 {
                    return None;
                }
                if deadline.is_some_and(|d| d <= Instant::now()) {
                    return None;
                }
                Some(Pos::Back)
            },
            || {},
            |_| {},
        );
        // SAFETY: we are not queued any more: the slot is ours again.
        match unsafe { (*slot.0.get()).take() } {
            Some(v) => Ok(v),
            None if r == Park::Woken(DISCONNECTED) => Err(RecvTimeoutError::Disconnected),
            None if self.senders.load(Ordering::Acquire) == 0 => {
                Err(RecvTimeoutError::Disconnected)
            }
            None => Err(RecvTimeoutError::Timeout),
        }
    }

    pub(crate) fn add_sender(&self) {
        self.senders.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn drop_sender(&self) {
        if self.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            let mut g = self.q.lock();
            if g.front_tag().is_some_and(|t| t & RECV != 0) {
                g.wake_front(DISCONNECTED);
            }
        }
    }

    /// The receiver is gone: parked senders get their values back, later sends fail.
    pub(crate) fn drop_receiver(&self) {
        let mut g = self.q.lock();
        self.rx_gone.store(true, Ordering::Relaxed);
        g.wake_all(DISCONNECTED);
    }
}
