//! `hilos::sync::mpsc`: the three flavors (unbounded, bounded, rendezvous), order, timeouts,
//! disconnection, blocking sends, mixed green/kernel ends, and a model test against
//! `std::sync::mpsc`.

mod sync_util;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hilos::sync::mpsc::{
    self, Receiver, RecvError, RecvTimeoutError, SendError, TryRecvError, TrySendError,
};
use proptest::prelude::*;
use sync_util::*;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Unbounded,
    Bounded(usize),
    Rendezvous,
}

const KINDS: [Kind; 4] = [
    Kind::Unbounded,
    Kind::Bounded(1),
    Kind::Bounded(16),
    Kind::Rendezvous,
];

/// Either sender type, to run one test over every flavor.
enum Tx<T> {
    S(mpsc::Sender<T>),
    Y(mpsc::SyncSender<T>),
}

impl<T> Clone for Tx<T> {
    fn clone(&self) -> Self {
        match self {
            Tx::S(s) => Tx::S(s.clone()),
            Tx::Y(s) => Tx::Y(s.clone()),
        }
    }
}

impl<T> Tx<T> {
    fn send(&self, t: T) -> Result<(), SendError<T>> {
        match self {
            Tx::S(s) => s.send(t),
            Tx::Y(s) => s.send(t),
        }
    }
}

fn pair<T>(k: Kind) -> (Tx<T>, Receiver<T>) {
    match k {
        Kind::Unbounded => {
            let (t, r) = mpsc::channel();
            (Tx::S(t), r)
        }
        Kind::Bounded(n) => {
            let (t, r) = mpsc::sync_channel(n);
            (Tx::Y(t), r)
        }
        Kind::Rendezvous => {
            let (t, r) = mpsc::sync_channel(0);
            (Tx::Y(t), r)
        }
    }
}

#[test]
fn fifo_between_green_threads() {
    on_both(30, || {
        for k in KINDS {
            let (tx, rx) = pair::<u32>(k);
            let p = hilos::spawn(move || {
                for i in 0..5000 {
                    tx.send(i).unwrap();
                }
            });
            for i in 0..5000 {
                assert_eq!(rx.recv().unwrap(), i, "{k:?}");
            }
            p.join().unwrap();
            assert_eq!(rx.recv(), Err(RecvError));
        }
    });
}

#[test]
fn many_producers() {
    on_both(30, || {
        for k in KINDS {
            let (tx, rx) = pair::<(u32, u32)>(k);
            let ps: Vec<_> = (0..8)
                .map(|p| {
                    let tx = tx.clone();
                    hilos::spawn(move || {
                        for i in 0..1000 {
                            tx.send((p, i)).unwrap();
                            if i % 100 == 0 {
                                hilos::yield_now();
                            }
                        }
                    })
                })
                .collect();
            drop(tx);
            let mut next = [0u32; 8];
            let mut n = 0;
            for (p, i) in &rx {
                assert_eq!(next[p as usize], i, "{k:?}: order of producer {p}");
                next[p as usize] += 1;
                n += 1;
            }
            assert_eq!(n, 8000);
            for p in ps {
                p.join().unwrap();
            }
        }
    });
}

/// A receive with a timeout on a one-worker runtime: other green threads keep running while it
/// waits, and it reports a timeout, or the message if one comes in time.
#[test]
fn recv_timeout() {
    on_rt(1, 20, || {
        for k in KINDS {
            let (tx, rx) = pair::<u8>(k);
            let ticks = Arc::new(AtomicUsize::new(0));
            let t2 = ticks.clone();
            let ticker = hilos::spawn(move || {
                for _ in 0..10 {
                    t2.fetch_add(1, Ordering::SeqCst);
                    hilos::sleep(Duration::from_millis(1));
                }
            });
            let t = Instant::now();
            assert_eq!(
                rx.recv_timeout(Duration::from_millis(30)),
                Err(RecvTimeoutError::Timeout)
            );
            assert!(t.elapsed() >= Duration::from_millis(30));
            assert_eq!(
                ticks.load(Ordering::SeqCst),
                10,
                "{k:?}: the worker was blocked"
            );
            ticker.join().unwrap();
            assert_eq!(
                rx.recv_timeout(Duration::ZERO),
                Err(RecvTimeoutError::Timeout)
            );
            let tx2 = tx.clone();
            let h = hilos::spawn(move || {
                hilos::sleep(Duration::from_millis(5));
                tx2.send(7).unwrap();
            });
            assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(7));
            h.join().unwrap();
            drop(tx);
            assert_eq!(
                rx.recv_timeout(Duration::from_secs(10)),
                Err(RecvTimeoutError::Disconnected)
            );
        }
    });
}

#[test]
fn senders_gone() {
    on_both(20, || {
        for k in KINDS {
            // Messages sent before the last sender left are still received, then Disconnected.
            if !matches!(k, Kind::Rendezvous) {
                let (tx, rx) = pair::<u8>(k);
                tx.send(1).unwrap();
                drop(tx);
                assert_eq!(rx.try_recv(), Ok(1), "{k:?}");
                assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
                assert_eq!(rx.recv(), Err(RecvError));
            }
            // A parked receiver is woken by the last sender leaving.
            let (tx, rx) = pair::<u8>(k);
            let tx2 = tx.clone();
            let h = hilos::spawn(move || rx.recv());
            hilos::sleep(Duration::from_millis(5));
            drop(tx);
            hilos::yield_now();
            drop(tx2);
            assert_eq!(h.join().unwrap(), Err(RecvError), "{k:?}");
        }
    });
}

#[test]
fn receiver_gone() {
    on_both(20, || {
        for k in KINDS {
            let (tx, rx) = pair::<String>(k);
            drop(rx);
            assert_eq!(
                tx.send("a".into()),
                Err(SendError("a".to_string())),
                "{k:?}"
            );
            if let Tx::Y(s) = &tx {
                assert_eq!(
                    s.try_send("b".into()),
                    Err(TrySendError::Disconnected("b".into()))
                );
            }
        }
        // Senders parked on a full buffer, or waiting for a rendezvous, fail with their value.
        for k in [Kind::Bounded(1), Kind::Rendezvous] {
            let (tx, rx) = pair::<u32>(k);
            if matches!(k, Kind::Bounded(_)) {
                tx.send(0).unwrap();
            }
            let hs: Vec<_> = (1..4)
                .map(|i| {
                    let tx = tx.clone();
                    hilos::spawn(move || tx.send(i))
                })
                .collect();
            hilos::sleep(Duration::from_millis(5));
            drop(rx);
            let mut back: Vec<u32> = hs
                .into_iter()
                .map(|h| h.join().unwrap().unwrap_err().0)
                .collect();
            back.sort();
            assert_eq!(back, [1, 2, 3], "{k:?}");
        }
        // Messages still queued are dropped with the receiver, as std.
        for k in [Kind::Unbounded, Kind::Bounded(8)] {
            let token = Arc::new(());
            let (tx, rx) = pair::<Arc<()>>(k);
            for _ in 0..5 {
                tx.send(token.clone()).unwrap();
            }
            assert_eq!(Arc::strong_count(&token), 6);
            drop(rx);
            assert_eq!(Arc::strong_count(&token), 1, "{k:?}");
            drop(tx);
        }
    });
}

#[test]
fn bounded_send_parks_until_room() {
    on_rt(1, 20, || {
        let (tx, rx) = mpsc::sync_channel::<u32>(2);
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
        let sent = Arc::new(AtomicBool::new(false));
        let s2 = sent.clone();
        let h = hilos::spawn(move || {
            tx.send(3).unwrap();
            s2.store(true, Ordering::SeqCst);
        });
        hilos::sleep(Duration::from_millis(10));
        assert!(!sent.load(Ordering::SeqCst), "send did not wait for room");
        assert_eq!(rx.recv(), Ok(1));
        h.join().unwrap();
        assert!(sent.load(Ordering::SeqCst));
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), [2, 3]);
    });
}

#[test]
fn rendezvous_send_returns_after_recv() {
    on_both(20, || {
        let (tx, rx) = mpsc::sync_channel::<u32>(0);
        // Nobody is receiving: try_send cannot hand the value over.
        assert_eq!(tx.try_send(1), Err(TrySendError::Full(1)));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        let h = hilos::spawn(move || {
            hilos::sleep(Duration::from_millis(20));
            let v = rx.recv().unwrap();
            (v, rx)
        });
        let t = Instant::now();
        tx.send(5).unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(20),
            "send returned before the receive"
        );
        let (v, rx) = h.join().unwrap();
        assert_eq!(v, 5);
        // With the receiver waiting in recv, try_send succeeds.
        let h = hilos::spawn(move || rx.recv().unwrap());
        let t = Instant::now();
        loop {
            match tx.try_send(6) {
                Ok(()) => break,
                Err(TrySendError::Full(_)) => hilos::sleep(Duration::from_micros(200)),
                Err(e) => panic!("{e:?}"),
            }
            assert!(t.elapsed() < Duration::from_secs(5));
        }
        assert_eq!(h.join().unwrap(), 6);
    });
}

#[test]
fn iterators() {
    for k in KINDS {
        let (tx, rx) = pair::<u32>(k);
        let h = std::thread::spawn(move || {
            for i in 0..5 {
                tx.send(i).unwrap();
            }
        });
        let mut got: Vec<u32> = rx.iter().take(2).collect();
        got.extend(&rx);
        h.join().unwrap();
        assert_eq!(got, [0, 1, 2, 3, 4], "{k:?}");
        assert_eq!(rx.try_iter().count(), 0);
        assert_eq!(rx.into_iter().count(), 0);
    }
    let (tx, rx) = mpsc::channel();
    for i in 0..3 {
        tx.send(i).unwrap();
    }
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), [0, 1, 2]);
    drop(tx);
    assert_eq!(
        format!("{rx:?} {:?}", rx.iter()),
        "Receiver { .. } Iter { rx: Receiver { .. } }"
    );
}

/// Green senders, kernel receiver; kernel senders, green receiver; green ends on two runtimes;
/// kernel threads only.
#[test]
fn mixed_green_and_kernel() {
    within(30, || {
        let rt1 = hilos::Runtime::builder().workers(1).build().unwrap();
        let rt2 = hilos::Runtime::builder().workers(2).build().unwrap();
        for k in KINDS {
            // Green senders on both runtimes, kernel receiver.
            let (tx, rx) = pair::<u64>(k);
            let mut hs = Vec::new();
            for i in 0..4u64 {
                let tx = tx.clone();
                let f = move || {
                    for j in 0..500 {
                        tx.send(i * 1000 + j).unwrap();
                    }
                };
                hs.push(if i % 2 == 0 {
                    rt1.spawn(f)
                } else {
                    rt2.spawn(f)
                });
            }
            drop(tx);
            let sum: u64 = rx.iter().sum();
            assert_eq!(
                sum,
                (0..4u64)
                    .map(|i| (0..500).map(|j| i * 1000 + j).sum::<u64>())
                    .sum()
            );
            for h in hs {
                h.join().unwrap();
            }
            // Kernel senders, green receiver on the single worker, which keeps running others.
            let (tx, rx) = pair::<u64>(k);
            let receiver = rt1.spawn(move || rx.iter().sum::<u64>());
            assert_eq!(rt1.spawn(|| 3).join().unwrap(), 3, "{k:?}: worker blocked");
            let ks: Vec<_> = (0..2)
                .map(|_| {
                    let tx = tx.clone();
                    std::thread::spawn(move || {
                        for j in 0..500 {
                            tx.send(j).unwrap();
                        }
                    })
                })
                .collect();
            drop(tx);
            for h in ks {
                h.join().unwrap();
            }
            assert_eq!(receiver.join().unwrap(), 2 * (0..500).sum::<u64>());
            // Kernel threads only (no runtime involved).
            let (tx, rx) = pair::<u64>(k);
            let h = std::thread::spawn(move || (0..300).for_each(|j| tx.send(j).unwrap()));
            assert_eq!(rx.iter().count(), 300);
            h.join().unwrap();
        }
    });
}

#[derive(Debug, Clone)]
enum Op {
    Send(u8),
    TrySend(u8),
    TryRecv,
    RecvZero,
    Clone(usize),
    DropSender(usize),
    DropReceiver,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u8>().prop_map(Op::Send),
        3 => any::<u8>().prop_map(Op::TrySend),
        4 => Just(Op::TryRecv),
        2 => Just(Op::RecvZero),
        1 => (0..3usize).prop_map(Op::Clone),
        1 => (0..3usize).prop_map(Op::DropSender),
        1 => Just(Op::DropReceiver),
    ]
}

/// Runs `ops` against one implementation; the macro keeps the two runs textually identical (the
/// error types are std's own in both). Blocking sends are only made when they cannot block.
macro_rules! run {
    ($m:ident, $kind:expr, $ops:expr) => {{
        let kind: Kind = $kind;
        let mut out: Vec<String> = Vec::new();
        let (mut senders, mut syncs, mut rx) = match kind {
            Kind::Unbounded => {
                let (t, r) = $m::channel::<u8>();
                (vec![t], vec![], Some(r))
            }
            Kind::Bounded(n) => {
                let (t, r) = $m::sync_channel::<u8>(n);
                (vec![], vec![t], Some(r))
            }
            Kind::Rendezvous => {
                let (t, r) = $m::sync_channel::<u8>(0);
                (vec![], vec![t], Some(r))
            }
        };
        let mut queued = 0usize;
        for op in $ops {
            let seen = match op {
                Op::Send(v) => {
                    if let Some(s) = senders.first() {
                        let r = s.send(*v);
                        if r.is_ok() { queued += 1; }
                        format!("{r:?}")
                    } else if let Some(s) = syncs.first() {
                        let room = matches!(kind, Kind::Bounded(n) if queued < n);
                        if room || rx.is_none() {
                            let r = s.send(*v);
                            if r.is_ok() { queued += 1; }
                            format!("{r:?}")
                        } else {
                            "would block".into()
                        }
                    } else {
                        "no sender".into()
                    }
                }
                Op::TrySend(v) => match syncs.first() {
                    Some(s) => {
                        let r = s.try_send(*v);
                        if r.is_ok() { queued += 1; }
                        format!("{r:?}")
                    }
                    None => match senders.first() {
                        Some(s) => {
                            let r = s.send(*v);
                            if r.is_ok() { queued += 1; }
                            format!("{r:?}")
                        }
                        None => "no sender".into(),
                    },
                },
                Op::TryRecv => match &rx {
                    Some(r) => {
                        let x = r.try_recv();
                        if x.is_ok() { queued -= 1; }
                        format!("{x:?}")
                    }
                    None => "no receiver".into(),
                },
                Op::RecvZero => match &rx {
                    Some(r) => {
                        let x = r.recv_timeout(Duration::ZERO);
                        if x.is_ok() { queued -= 1; }
                        format!("{x:?}")
                    }
                    None => "no receiver".into(),
                },
                Op::Clone(i) => {
                    if let Some(s) = senders.get(*i).cloned() {
                        senders.push(s);
                    } else if let Some(s) = syncs.get(*i).cloned() {
                        syncs.push(s);
                    }
                    format!("{} {}", senders.len(), syncs.len())
                }
                Op::DropSender(i) => {
                    if *i < senders.len() {
                        senders.remove(*i);
                    } else if *i < syncs.len() {
                        syncs.remove(*i);
                    }
                    format!("{} {}", senders.len(), syncs.len())
                }
                Op::DropReceiver => {
                    rx = None;
                    queued = 0;
                    "dropped".into()
                }
            };
            out.push(seen);
        }
        if let Some(r) = rx {
            drop(senders);
            drop(syncs);
            out.push(format!("{:?}", r.try_iter().collect::<Vec<_>>()));
            out.push(format!("{:?}", r.try_recv()));
        }
        out
    }};
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Unbounded),
        (1..4usize).prop_map(Kind::Bounded),
        Just(Kind::Rendezvous),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Random single-threaded operation sequences give the same results as std's channels.
    #[test]
    fn model_against_std(k in kind(), ops in proptest::collection::vec(op(), 0..50)) {
        use std::sync::mpsc as std_mpsc;
        let ours = run!(mpsc, k, &ops);
        let std = run!(std_mpsc, k, &ops);
        prop_assert_eq!(ours, std);
    }
}
