//! Focused tests of the channels' queues (the unbounded flavor's node list, the bounded flavor's
//! ring with its queue of parked senders, the rendezvous flavor's hand-off through the wait
//! queue), driven from plain kernel threads only (no runtime, no green thread), so that they also
//! run under Miri: `cargo +nightly miri test --lib -- sync::waitq sync::mpsc` (README, Tests).
//! Sizes are small: Miri runs them about a thousand times slower than native code.

use super::*;
use std::sync::atomic::AtomicUsize;
use std::thread;

/// A message that counts its drops, to check that each is dropped exactly once.
struct Counted(Arc<AtomicUsize>, u32);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Messages from two sender threads arrive complete and in each sender's order, more of them
/// than the per-thread node cache keeps (so nodes go both to the cache and to the allocator, and
/// are freed on the receiving thread), and the receiver sees the disconnection after the last.
#[test]
fn unbounded_two_senders_keep_their_order_past_the_node_cache() {
    let per_sender = 80u32; // the node cache keeps 64 per size class and thread
    let (tx, rx) = channel();
    let hs: Vec<_> = (0..2u32)
        .map(|s| {
            let tx = tx.clone();
            thread::spawn(move || {
                for i in 0..per_sender {
                    tx.send((s, i)).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let mut next = [0u32; 2];
    for (s, i) in rx.iter() {
        assert_eq!(i, next[s as usize], "sender {s} out of order");
        next[s as usize] += 1;
    }
    assert_eq!(next, [per_sender; 2]);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    for h in hs {
        h.join().unwrap();
    }
}

/// A receiver parked on an empty list (the `PARKED` bit in `tail`) is woken by the sender that
/// claims the bit, twice, then by the last sender leaving.
#[test]
fn unbounded_parked_receiver_is_woken_by_a_send_and_by_the_last_sender() {
    let (tx, rx) = channel::<u32>();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let sender = thread::spawn(move || {
        for i in 0..2 {
            go_rx.recv().unwrap(); // send only once the receiver is (probably) parked
            for _ in 0..50 {
                thread::yield_now();
            }
            tx.send(i).unwrap();
        }
        go_rx.recv().unwrap();
        for _ in 0..50 {
            thread::yield_now();
        }
        drop(tx);
    });
    for i in 0..2 {
        go_tx.send(()).unwrap();
        assert_eq!(rx.recv(), Ok(i));
    }
    go_tx.send(()).unwrap();
    assert_eq!(rx.recv(), Err(RecvError));
    sender.join().unwrap();
}

/// A receiver's deadline passes with nothing sent: it withdraws its `PARKED` bit, and the next
/// send does not try to wake it; a send racing the deadline is received, now or by the next call.
#[test]
fn unbounded_recv_timeout_withdraws_and_races_a_send() {
    let (tx, rx) = channel::<u32>();
    let short = Duration::from_micros(20);
    assert_eq!(rx.recv_timeout(short), Err(RecvTimeoutError::Timeout));
    tx.send(1).unwrap();
    assert_eq!(rx.recv_timeout(short), Ok(1));
    let rounds = if cfg!(miri) { 4 } else { 200 };
    let h = thread::spawn(move || {
        for i in 0..rounds {
            tx.send(i).unwrap();
            thread::yield_now();
        }
    });
    let mut next = 0;
    while next < rounds {
        match rx.recv_timeout(short) {
            Ok(v) => {
                assert_eq!(v, next);
                next += 1;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => panic!("lost messages from {next}"),
        }
    }
    h.join().unwrap();
    assert_eq!(rx.recv_timeout(short), Err(RecvTimeoutError::Disconnected));
}

/// Unread messages are dropped exactly once: by the departing receiver (which drains the list),
/// by a failed send (which hands the value back), and by the list's own destructor for a message
/// that is still queued when the last handle goes.
#[test]
fn unbounded_unread_messages_are_dropped_exactly_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = channel();
    for i in 0..10 {
        tx.send(Counted(drops.clone(), i)).unwrap();
    }
    for i in 0..3 {
        let Counted(_, v) = rx.recv().unwrap();
        assert_eq!(v, i);
    }
    assert_eq!(drops.load(Ordering::Relaxed), 3);
    drop(rx); // drains the seven left
    assert_eq!(drops.load(Ordering::Relaxed), 10);
    let SendError(back) = tx.send(Counted(drops.clone(), 99)).unwrap_err();
    assert_eq!(back.1, 99);
    drop(back);
    assert_eq!(drops.load(Ordering::Relaxed), 11);
    drop(tx);

    // Messages still queued when the list itself goes (its last handle dropped without a
    // receiver's drain): the list's `Drop` frees the stub and every node, dropping each value once.
    let c = list::Chan::new();
    for i in 0..5 {
        c.send(Counted(drops.clone(), i)).unwrap();
    }
    // SAFETY: this thread is the list's only receiver.
    assert_eq!(unsafe { c.try_recv() }.map(|m| m.1).ok(), Some(0));
    assert_eq!(drops.load(Ordering::Relaxed), 12);
    drop(c);
    assert_eq!(drops.load(Ordering::Relaxed), 16);
}

/// The bounded ring wraps several laps with a sender parked (in the ring's wait queue) each time
/// it is full, and each receive wakes it; unread messages across the wrap point are dropped once.
#[test]
fn bounded_ring_wraps_with_a_parked_sender_and_drops_unread_once() {
    let n = 12u32; // four laps of a 3-slot ring
    let (tx, rx) = sync_channel(3);
    let h = thread::spawn(move || {
        for i in 0..n {
            tx.send(i).unwrap();
        }
    });
    for i in 0..n {
        if i % 4 == 0 {
            for _ in 0..20 {
                thread::yield_now(); // let the sender fill the ring and park
            }
        }
        assert_eq!(rx.recv(), Ok(i));
    }
    h.join().unwrap();
    assert_eq!(rx.recv(), Err(RecvError));

    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = sync_channel(3);
    for i in 0..3 {
        tx.send(Counted(drops.clone(), i)).unwrap();
    }
    assert_eq!(rx.recv().unwrap().1, 0);
    assert_eq!(rx.recv().unwrap().1, 1);
    tx.send(Counted(drops.clone(), 3)).unwrap(); // slot 0 again: the ring has wrapped
    tx.send(Counted(drops.clone(), 4)).unwrap();
    assert!(matches!(
        tx.try_send(Counted(drops.clone(), 5)),
        Err(TrySendError::Full(_))
    ));
    assert_eq!(drops.load(Ordering::Relaxed), 3);
    drop(rx); // drains 2, 3 and 4
    assert_eq!(drops.load(Ordering::Relaxed), 6);
    drop(tx);
    assert_eq!(drops.load(Ordering::Relaxed), 6);
}

/// A sender parked on a full ring is released (with its value handed back) when the receiver
/// leaves.
#[test]
fn bounded_parked_sender_gets_its_value_back_when_the_receiver_leaves() {
    let (tx, rx) = sync_channel(1);
    tx.send(0u32).unwrap();
    let h = thread::spawn(move || tx.send(1));
    for _ in 0..50 {
        thread::yield_now();
    }
    drop(rx);
    assert_eq!(h.join().unwrap(), Err(SendError(1)));
}

/// The rendezvous flavor hands values across stacks through the wait queue: parked senders
/// queue in order; a receiver that times out leaves the queue; a parked sender gets its value
/// back when the receiver leaves.
#[test]
fn rendezvous_hands_over_through_the_wait_queue() {
    let (tx, rx) = sync_channel::<u32>(0);
    assert_eq!(
        rx.recv_timeout(Duration::from_micros(20)),
        Err(RecvTimeoutError::Timeout)
    );
    let hs: Vec<_> = (0..2)
        .map(|i| {
            let tx = tx.clone();
            thread::spawn(move || tx.send(i))
        })
        .collect();
    let mut got = [rx.recv().unwrap(), rx.recv().unwrap()];
    got.sort();
    assert_eq!(got, [0, 1]);
    for h in hs {
        h.join().unwrap().unwrap();
    }
    let h = thread::spawn(move || tx.send(5));
    for _ in 0..50 {
        thread::yield_now();
    }
    drop(rx);
    // The sender either was parked (and got its value back) or arrived after the receiver left.
    assert_eq!(h.join().unwrap(), Err(SendError(5)));
}
