//! Multi-producer, single-consumer FIFO channels that park only the calling green thread, with the
//! API and semantics of [`std::sync::mpsc`].
//!
//! # The problem
//! `std::sync::mpsc` blocks the kernel thread in `recv` (and in a full `SyncSender::send`); on a
//! hilos worker that stalls every green thread of the worker, and a one-worker runtime whose
//! receiver waits for a sender of the same worker never wakes. Green and kernel threads must be able
//! to sit on either end, on any runtime.
//!
//! # The design
//! Three flavors, as std (and crossbeam) have: `list` (unbounded, [`channel`]), `array` (bounded,
//! [`sync_channel`] with a capacity) and `zero` (rendezvous, `sync_channel(0)`); each module's doc
//! gives its protocol. The error types are std's own, re-exported, so code matching on them is
//! unchanged.
//!
//! The single receiver of the `array` flavor parks through an `RxSlot`: one word holding a
//! counted reference to the parked receiver's thread, or null. (The `list` flavor folds the same
//! idea into its tail pointer, to save read-modify-writes on its hot path; see its doc.)
//! - Receiver: takes a message if there is one; otherwise publishes itself in the slot (`SeqCst`
//!   swap), re-checks for a message or a disconnection (`SeqCst` loads), and only then parks; when it
//!   wakes it clears the slot and loops.
//! - Sender: publishes its message (`SeqCst` store), then loads the slot (`SeqCst`); if a receiver is
//!   there, swaps it out and wakes it.
//!
//! This is the store-buffering pattern: with all four accesses `SeqCst`, at least one side sees the
//! other's store, so either the receiver's re-check finds the message or the sender finds the
//! receiver. A sender that does not see a published receiver pays one plain load (`mov` on x86),
//! no lock and no system call. Whoever swaps the reference out of the slot owns it, so the receiver
//! is woken at most once per publication and its control block stays alive for the wake-up.
//!
//! # Disconnection, as std
//! - `send` fails (giving the value back) once the receiver is gone; messages still queued then are
//!   dropped with it.
//! - `recv` fails once every sender is gone *and* the queue is empty; messages sent before the last
//!   sender left are still received.

mod array;
mod list;
#[cfg(test)]
mod tests;
mod zero;

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::time::{Duration, Instant};

pub use std::sync::mpsc::{RecvError, RecvTimeoutError, SendError, TryRecvError, TrySendError};

use crate::park;
use crate::task::{self, Header, TaskRef, Which};

/// What a receiver's pop found.
pub(crate) enum Pop<T> {
    Data(T),
    Empty,
    /// A sender is half-way through publishing: wait a moment and look again.
    Inconsistent,
}

/// Waits out a sender that is half-way through publishing (see the flavors' docs).
fn backoff(round: &mut u32) {
    if *round < 6 {
        super::util::spin(*round);
    } else {
        park::yield_now();
    }
    *round += 1;
}

/// Polls `arrived` a few times before the receiver parks, since parking and being woken costs more
/// than a message that is about to come.
/// - A kernel-thread receiver spins, then yields, for a few microseconds (request/response
///   traffic; std's channels do the same).
/// - A green receiver yields to the other runnable green threads of its worker a few times: if the
///   sender runs there (a pipeline or a ping-pong on one worker), its message usually arrives
///   during those turns, and neither side pays a park and a wake-up. With nothing else runnable a
///   yield returns at once, so this costs a few tens of nanoseconds. It does not spin: that would
///   hold the worker that a sender of the same worker needs.
///
/// Returns whether `arrived` held, so the caller goes straight back to taking the message instead
/// of announcing a park that is bound to fail (a failed compare-exchange still costs a locked
/// operation).
fn poll_before_park(mut arrived: impl FnMut() -> bool) -> bool {
    let green = task::current_green().is_some();
    let rounds = if green { 3 } else { 10 };
    for round in 0..rounds {
        if arrived() {
            return true;
        }
        if green {
            park::yield_now();
        } else if round < 6 {
            super::util::spin(round);
        } else {
            std::thread::yield_now();
        }
    }
    false
}

/// Pops until empty, dropping the messages (the receiver's departure).
///
/// # Safety
/// `pop` is a receiver-only pop called by the single receiver.
unsafe fn drain<T>(mut pop: impl FnMut() -> Pop<T>) {
    let mut round = 0;
    loop {
        match pop() {
            Pop::Data(v) => drop(v),
            Pop::Empty => return,
            Pop::Inconsistent => backoff(&mut round),
        }
    }
}

/// The parked receiver of a channel (see the module doc).
pub(crate) struct RxSlot {
    p: AtomicPtr<Header>,
}

impl RxSlot {
    const fn new() -> RxSlot {
        RxSlot {
            p: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Receiver: publishes the calling thread. The caller re-checks its condition afterwards.
    fn publish(&self) {
        let me = task::current().into_raw();
        let old = self.p.swap(me.as_ptr(), Ordering::SeqCst);
        if let Some(old) = NonNull::new(old) {
            // SAFETY: the slot held a counted reference, which the swap gave us.
            drop(unsafe { TaskRef::from_raw(old) });
        }
    }

    /// Receiver: withdraws its publication (if no sender took it).
    fn clear(&self) {
        if self.p.load(Ordering::Relaxed).is_null() {
            return;
        }
        let old = self.p.swap(ptr::null_mut(), Ordering::Acquire);
        if let Some(old) = NonNull::new(old) {
            // SAFETY: as in `publish`.
            drop(unsafe { TaskRef::from_raw(old) });
        }
    }

    /// Sender: wakes the published receiver, if any. Call after the `SeqCst` store that published
    /// what the receiver waits for.
    #[inline]
    fn wake(&self) {
        if !self.p.load(Ordering::SeqCst).is_null() {
            self.wake_slow();
        }
    }

    #[cold]
    fn wake_slow(&self) {
        let p = self.p.swap(ptr::null_mut(), Ordering::AcqRel);
        if let Some(p) = NonNull::new(p) {
            // SAFETY: as in `publish`.
            let t = unsafe { TaskRef::from_raw(p) };
            t.wake();
        }
    }
}

impl Drop for RxSlot {
    fn drop(&mut self) {
        if let Some(p) = NonNull::new(*self.p.get_mut()) {
            // SAFETY: as in `publish`.
            drop(unsafe { TaskRef::from_raw(p) });
        }
    }
}

/// # Safety
/// Called by the single receiver.
unsafe fn try_recv_q<T>(q: &array::Chan<T>) -> Result<T, TryRecvError> {
    let mut round = 0;
    loop {
        // SAFETY: per the contract.
        match unsafe { q.pop() } {
            Pop::Data(v) => return Ok(v),
            Pop::Inconsistent => backoff(&mut round),
            Pop::Empty => {
                if !q.disconnected() {
                    return Err(TryRecvError::Empty);
                }
                // Every sender is gone; what they sent before leaving is visible now.
                loop {
                    // SAFETY: per the contract.
                    match unsafe { q.pop() } {
                        Pop::Data(v) => return Ok(v),
                        Pop::Empty => return Err(TryRecvError::Disconnected),
                        Pop::Inconsistent => backoff(&mut round),
                    }
                }
            }
        }
    }
}

/// # Safety
/// Called by the single receiver.
unsafe fn recv_q<T>(q: &array::Chan<T>, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
    loop {
        // SAFETY: per the contract.
        match unsafe { try_recv_q(q) } {
            Ok(v) => return Ok(v),
            Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
            Err(TryRecvError::Empty) => {}
        }
        // SAFETY: per the contract.
        if poll_before_park(|| unsafe { q.ready() }) {
            continue;
        }
        q.rx.publish();
        // SAFETY: per the contract.
        if unsafe { q.ready() } {
            q.rx.clear();
            continue;
        }
        let woken = park::park(Which::Sys, deadline, crate::task::ThreadState::ChannelRecv);
        q.rx.clear();
        if !woken {
            // SAFETY: per the contract.
            return match unsafe { try_recv_q(q) } {
                Ok(v) => Ok(v),
                Err(TryRecvError::Disconnected) => Err(RecvTimeoutError::Disconnected),
                Err(TryRecvError::Empty) => Err(RecvTimeoutError::Timeout),
            };
        }
    }
}

/// Creates an unbounded channel, as [`std::sync::mpsc::channel`]: `send` never blocks; `recv`
/// parks only the calling green thread.
///
/// # Examples
/// ```
/// use hilos::sync::mpsc::channel;
///
/// let (tx, rx) = channel();
/// hilos::spawn(move || {
///     for i in 0..3 {
///         tx.send(i).unwrap();
///     }
/// });
/// assert_eq!(rx.iter().collect::<Vec<_>>(), [0, 1, 2]);
/// ```
#[must_use]
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let c = Arc::new(list::Chan::new());
    (
        Sender { chan: c.clone() },
        Receiver {
            flavor: RxFlavor::List(c),
            _not_sync: PhantomData,
        },
    )
}

/// Creates a bounded channel, as [`std::sync::mpsc::sync_channel`]: at most `bound` messages are
/// buffered, and `send` parks (only the calling green thread) while the buffer is full. With a
/// `bound` of 0 the channel is a rendezvous: `send` returns only once the receiver has taken the
/// value.
///
/// # Examples
/// ```
/// use hilos::sync::mpsc::sync_channel;
///
/// let (tx, rx) = sync_channel(0);
/// let h = hilos::spawn(move || tx.send(7).unwrap());
/// assert_eq!(rx.recv().unwrap(), 7);
/// h.join().unwrap();
/// ```
#[must_use]
pub fn sync_channel<T>(bound: usize) -> (SyncSender<T>, Receiver<T>) {
    if bound == 0 {
        let c = Arc::new(zero::Chan::new());
        (
            SyncSender {
                flavor: SyncFlavor::Zero(c.clone()),
            },
            Receiver {
                flavor: RxFlavor::Zero(c),
                _not_sync: PhantomData,
            },
        )
    } else {
        let c = Arc::new(array::Chan::new(bound));
        (
            SyncSender {
                flavor: SyncFlavor::Array(c.clone()),
            },
            Receiver {
                flavor: RxFlavor::Array(c),
                _not_sync: PhantomData,
            },
        )
    }
}

/// The sending half of an unbounded [`channel`], as [`std::sync::mpsc::Sender`]. Clone it for
/// more senders; it may be shared between threads.
///
/// # Examples
/// ```
/// use hilos::sync::mpsc::channel;
///
/// let (tx, rx) = channel();
/// for i in 0..3 {
///     let tx = tx.clone();
///     hilos::spawn(move || tx.send(i).unwrap());
/// }
/// drop(tx); // the receiver's iterator ends once every sender is gone
/// let mut got: Vec<i32> = rx.iter().collect();
/// got.sort();
/// assert_eq!(got, [0, 1, 2]);
/// ```
pub struct Sender<T> {
    chan: Arc<list::Chan<T>>,
}

/// The sending half of a [`sync_channel`], as [`std::sync::mpsc::SyncSender`].
///
/// # Examples
/// ```
/// use hilos::sync::mpsc::{TrySendError, sync_channel};
///
/// let (tx, rx) = sync_channel(1);
/// tx.send(1).unwrap();
/// assert_eq!(tx.try_send(2), Err(TrySendError::Full(2))); // the buffer holds one
/// let h = hilos::spawn(move || tx.send(2).unwrap()); // parks until there is room
/// assert_eq!(rx.recv().unwrap(), 1);
/// assert_eq!(rx.recv().unwrap(), 2);
/// h.join().unwrap();
/// ```
pub struct SyncSender<T> {
    flavor: SyncFlavor<T>,
}

enum SyncFlavor<T> {
    Array(Arc<array::Chan<T>>),
    Zero(Arc<zero::Chan<T>>),
}

/// The receiving half of a [`channel`] or [`sync_channel`], as [`std::sync::mpsc::Receiver`]. It
/// can be sent to another thread, but not shared (`!Sync`).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use hilos::sync::mpsc::{RecvError, RecvTimeoutError, TryRecvError, channel};
///
/// let (tx, rx) = channel();
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
/// let timeout = Duration::from_millis(10);
/// assert_eq!(rx.recv_timeout(timeout), Err(RecvTimeoutError::Timeout));
/// hilos::spawn(move || tx.send("hi").unwrap());
/// assert_eq!(rx.recv(), Ok("hi"));
/// assert_eq!(rx.recv(), Err(RecvError)); // the sender is gone
/// ```
pub struct Receiver<T> {
    flavor: RxFlavor<T>,
    _not_sync: PhantomData<Cell<()>>,
}

enum RxFlavor<T> {
    List(Arc<list::Chan<T>>),
    Array(Arc<array::Chan<T>>),
    Zero(Arc<zero::Chan<T>>),
}

impl<T> Sender<T> {
    /// Sends a value on this channel. Never blocks.
    ///
    /// # Errors
    /// If the receiver is gone, the value is given back in the error. A successful send does not
    /// mean the value will be received: the receiver may go away right after.
    pub fn send(&self, t: T) -> Result<(), SendError<T>> {
        self.chan.send(t)
    }
}

impl<T> Clone for Sender<T> {
    /// Clones a sender to send to the same channel from another thread.
    fn clone(&self) -> Sender<T> {
        self.chan.add_sender();
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.chan.drop_sender();
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

impl<T> SyncSender<T> {
    /// Sends a value, parking the current thread (only the green thread, on a green thread) while
    /// the buffer is full; on a rendezvous channel, until the receiver takes the value.
    ///
    /// # Errors
    /// If the receiver is gone (also if it goes while this waits), the value is given back.
    pub fn send(&self, t: T) -> Result<(), SendError<T>> {
        match &self.flavor {
            SyncFlavor::Array(c) => c.send(t),
            SyncFlavor::Zero(c) => c.send(t),
        }
    }

    /// Sends a value if that can be done without waiting: if the buffer has room, or, on a
    /// rendezvous channel, if the receiver is waiting in `recv`.
    ///
    /// # Errors
    /// [`TrySendError::Full`] or [`TrySendError::Disconnected`], giving the value back.
    pub fn try_send(&self, t: T) -> Result<(), TrySendError<T>> {
        match &self.flavor {
            SyncFlavor::Array(c) => c.try_send(t),
            SyncFlavor::Zero(c) => c.try_send(t),
        }
    }
}

impl<T> Clone for SyncSender<T> {
    fn clone(&self) -> SyncSender<T> {
        let flavor = match &self.flavor {
            SyncFlavor::Array(c) => {
                c.add_sender();
                SyncFlavor::Array(c.clone())
            }
            SyncFlavor::Zero(c) => {
                c.add_sender();
                SyncFlavor::Zero(c.clone())
            }
        };
        SyncSender { flavor }
    }
}

impl<T> Drop for SyncSender<T> {
    fn drop(&mut self) {
        match &self.flavor {
            SyncFlavor::Array(c) => c.drop_sender(),
            SyncFlavor::Zero(c) => c.drop_sender(),
        }
    }
}

impl<T> fmt::Debug for SyncSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncSender").finish_non_exhaustive()
    }
}

impl<T> Receiver<T> {
    /// Receives a message if one is ready, without waiting.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] if none is ready; [`TryRecvError::Disconnected`] if none is and
    /// every sender is gone.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        // SAFETY (of the calls below): `Receiver` is the single receiver: it is neither `Clone` nor
        // `Sync`, so only one thread at a time can call into it.
        match &self.flavor {
            // SAFETY: see above.
            RxFlavor::List(c) => unsafe { c.try_recv() },
            // SAFETY: see above.
            RxFlavor::Array(c) => unsafe { try_recv_q(&**c) },
            RxFlavor::Zero(c) => c.try_recv(),
        }
    }

    fn recv_deadline(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        match &self.flavor {
            // SAFETY: the single receiver (see `try_recv`).
            RxFlavor::List(c) => unsafe { c.recv(deadline) },
            // SAFETY: the single receiver (see `try_recv`).
            RxFlavor::Array(c) => unsafe { recv_q(&**c, deadline) },
            RxFlavor::Zero(c) => c.recv(deadline),
        }
    }

    /// Waits for a message, parking the current thread (only the green thread, on a green thread)
    /// until one arrives.
    ///
    /// # Errors
    /// [`RecvError`] once every sender is gone and no message is left.
    pub fn recv(&self) -> Result<T, RecvError> {
        self.recv_deadline(None).map_err(|_| RecvError)
    }

    /// Waits for a message for at most about `timeout`.
    ///
    /// # Errors
    /// [`RecvTimeoutError::Timeout`] if none arrived in time; [`RecvTimeoutError::Disconnected`]
    /// once every sender is gone and no message is left.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.recv_deadline(super::util::deadline(timeout))
    }

    /// An iterator that waits for messages, ending when every sender is gone.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { rx: self }
    }

    /// An iterator over the messages ready now, never waiting.
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { rx: self }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        match &self.flavor {
            // SAFETY: the single receiver, leaving.
            RxFlavor::List(c) => unsafe { c.drop_receiver() },
            // SAFETY: the single receiver, leaving.
            RxFlavor::Array(c) => unsafe { c.drop_receiver() },
            RxFlavor::Zero(c) => c.drop_receiver(),
        }
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

/// An iterator over messages on a [`Receiver`] that waits for each, from [`Receiver::iter`].
///
/// # Examples
/// ```
/// use hilos::sync::mpsc::channel;
///
/// let (tx, rx) = channel();
/// hilos::spawn(move || {
///     for i in 1..=3 {
///         tx.send(i).unwrap();
///     }
/// });
/// // Waits for each message; ends when the sender is gone.
/// assert_eq!(rx.iter().sum::<i32>(), 6);
/// ```
#[derive(Debug)]
pub struct Iter<'a, T: 'a> {
    rx: &'a Receiver<T>,
}

/// An iterator over the messages ready on a [`Receiver`], from [`Receiver::try_iter`].
///
/// # Examples
/// ```
/// use hilos::sync::mpsc::channel;
///
/// let (tx, rx) = channel();
/// tx.send(1).unwrap();
/// tx.send(2).unwrap();
/// // Takes what is there and never waits, though `tx` is still alive.
/// assert_eq!(rx.try_iter().collect::<Vec<_>>(), [1, 2]);
/// assert_eq!(rx.try_iter().next(), None);
/// ```
#[derive(Debug)]
pub struct TryIter<'a, T: 'a> {
    rx: &'a Receiver<T>,
}

/// An owning iterator over messages on a [`Receiver`], from its `into_iter`.
///
/// # Examples
/// ```
/// use hilos::sync::mpsc::channel;
///
/// let (tx, rx) = channel::<String>();
/// let h = hilos::spawn(move || rx.into_iter().map(|s| s.len()).sum::<usize>());
/// tx.send("ab".into()).unwrap();
/// tx.send("c".into()).unwrap();
/// drop(tx);
/// assert_eq!(h.join().unwrap(), 3);
/// ```
#[derive(Debug)]
pub struct IntoIter<T> {
    rx: Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    fn into_iter(self) -> IntoIter<T> {
        IntoIter { rx: self }
    }
}

#[allow(dead_code)]
fn _assert_traits() {
    fn send_sync<X: Send + Sync>() {}
    fn send<X: Send>() {}
    send_sync::<Sender<u8>>();
    send_sync::<SyncSender<u8>>();
    send::<Receiver<u8>>();
}
