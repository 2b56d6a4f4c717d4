//! `hilos::sync::RwLock`: shared and exclusive access, green-awareness, writer starvation,
//! downgrade, poisoning, mixed green/kernel use, and a model test against `std::sync::RwLock`.

mod sync_util;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hilos::sync::{RwLock, RwLockWriteGuard, TryLockError};
use proptest::prelude::*;
use sync_util::*;

#[test]
fn basics() {
    let l = RwLock::new(5);
    {
        let r1 = l.read().unwrap();
        let r2 = l.try_read().unwrap();
        assert_eq!(*r1 + *r2, 10);
        assert!(matches!(l.try_write(), Err(TryLockError::WouldBlock)));
        assert_eq!(format!("{l:?}"), "RwLock { data: 5, poisoned: false, .. }");
    }
    {
        let mut w = l.write().unwrap();
        *w += 1;
        assert!(matches!(l.try_read(), Err(TryLockError::WouldBlock)));
        assert!(matches!(l.try_write(), Err(TryLockError::WouldBlock)));
        assert_eq!(
            format!("{l:?}"),
            "RwLock { data: <locked>, poisoned: false, .. }"
        );
        assert_eq!(format!("{w:?} {w}"), "6 6");
    }
    let mut l = l;
    *l.get_mut().unwrap() += 1;
    assert_eq!(l.into_inner().unwrap(), 7);
    let d: RwLock<Vec<u8>> = RwLock::default();
    assert!(d.read().unwrap().is_empty());
    assert_eq!(*RwLock::from(3).read().unwrap(), 3);
    static S: RwLock<u8> = RwLock::new(1);
    assert_eq!(*S.read().unwrap(), 1);
}

/// Readers share the lock across switches; a writer waits (parked, not blocking the single
/// worker) until they are done, and excludes everyone while it holds the lock across a switch.
#[test]
fn one_worker_readers_share_writer_excludes() {
    on_rt(1, 20, || {
        let l = Arc::new(RwLock::new(0u32));
        let inside = Arc::new(AtomicUsize::new(0));
        let max_inside = Arc::new(AtomicUsize::new(0));
        // Start together (a yield_now loop does not let threads that never ran start).
        let start = Arc::new(hilos::sync::Barrier::new(13));
        let readers: Vec<_> = (0..10)
            .map(|_| {
                let (l, inside, max_inside) = (l.clone(), inside.clone(), max_inside.clone());
                let start = start.clone();
                hilos::spawn(move || {
                    start.wait();
                    for _ in 0..20 {
                        let g = l.read().unwrap();
                        let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        max_inside.fetch_max(n, Ordering::SeqCst);
                        hilos::yield_now();
                        let v = *g;
                        hilos::yield_now();
                        assert_eq!(*g, v, "changed under a read lock");
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        let writers: Vec<_> = (0..3)
            .map(|_| {
                let (l, start) = (l.clone(), start.clone());
                hilos::spawn(move || {
                    start.wait();
                    for _ in 0..20 {
                        let mut g = l.write().unwrap();
                        let v = *g;
                        hilos::yield_now();
                        *g = v + 1;
                    }
                })
            })
            .collect();
        for h in readers.into_iter().chain(writers) {
            h.join().unwrap();
        }
        assert_eq!(*l.read().unwrap(), 60);
        assert!(
            max_inside.load(Ordering::SeqCst) > 1,
            "readers never shared the lock"
        );
    });
}

#[test]
fn invariant_under_contention() {
    on_both(30, || {
        let l = Arc::new(RwLock::new((0u64, 0u64)));
        let hs: Vec<_> = (0..12)
            .map(|i| {
                let l = l.clone();
                hilos::spawn(move || {
                    for k in 0..1500u64 {
                        if (i + k) % 4 == 0 {
                            let mut g = l.write().unwrap();
                            g.0 += 1;
                            if k % 64 == 0 {
                                hilos::yield_now();
                            }
                            g.1 += 1;
                        } else {
                            let g = l.read().unwrap();
                            assert_eq!(g.0, g.1);
                            if k % 64 == 0 {
                                hilos::yield_now();
                            }
                            assert_eq!(g.0, g.1);
                        }
                    }
                })
            })
            .collect();
        let mut writes = 0;
        for i in 0..12u64 {
            writes += (0..1500u64).filter(|k| (i + k) % 4 == 0).count() as u64;
        }
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*l.read().unwrap(), (writes, writes));
    });
}

/// Readers overlap continuously (each holds the lock across a switch, and there is always another
/// reader inside); a writer must still get in: once it waits, new readers queue behind it.
#[test]
fn writer_not_starved_by_readers() {
    for workers in [1, 2] {
        let waited = on_rt(workers, 20, || {
            let l = Arc::new(RwLock::new(0u64));
            let stop = Arc::new(AtomicBool::new(false));
            let start = Arc::new(hilos::sync::Barrier::new(5));
            let readers: Vec<_> = (0..4)
                .map(|_| {
                    let (l, stop, start) = (l.clone(), stop.clone(), start.clone());
                    hilos::spawn(move || {
                        start.wait();
                        while !stop.load(Ordering::Relaxed) {
                            let g = l.read().unwrap();
                            hilos::yield_now();
                            drop(g);
                        }
                    })
                })
                .collect();
            start.wait();
            hilos::yield_now();
            let mut worst = Duration::ZERO;
            for _ in 0..20 {
                let t = Instant::now();
                *l.write().unwrap() += 1;
                worst = worst.max(t.elapsed());
                hilos::yield_now();
            }
            stop.store(true, Ordering::Relaxed);
            for h in readers {
                h.join().unwrap();
            }
            worst
        });
        assert!(waited < Duration::from_secs(1), "writer waited {waited:?}");
    }
}

#[test]
fn downgrade_lets_readers_in_but_not_writers() {
    on_both(20, || {
        let l = Arc::new(RwLock::new(0));
        let w = l.write().unwrap();
        let reader = {
            let l = l.clone();
            hilos::spawn(move || *l.read().unwrap())
        };
        let writer = {
            let l = l.clone();
            hilos::spawn(move || *l.write().unwrap() = 100)
        };
        // Let both queue.
        hilos::sleep(Duration::from_millis(5));
        let mut w = w;
        *w = 1;
        let r = RwLockWriteGuard::downgrade(w);
        // Whichever queued first is served first; a writer is not let in by a downgrade.
        assert_eq!(*r, 1);
        assert!(l.try_write().is_err());
        drop(r);
        let seen = reader.join().unwrap();
        writer.join().unwrap();
        assert!(seen == 1 || seen == 100);
        assert_eq!(*l.read().unwrap(), 100);

        // Readers queued at the front are let in by a downgrade while the lock is still held.
        let w = l.write().unwrap();
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let l = l.clone();
                hilos::spawn(move || *l.read().unwrap())
            })
            .collect();
        hilos::sleep(Duration::from_millis(5));
        let r = RwLockWriteGuard::downgrade(w);
        for h in readers {
            assert_eq!(h.join().unwrap(), 100);
        }
        drop(r);
    });
}

#[test]
fn poisoning_by_writers_only() {
    quiet_expected_panics();
    on_both(20, || {
        let l = Arc::new(RwLock::new(1));
        let l2 = l.clone();
        let _ = hilos::spawn(move || {
            let _r = l2.read().unwrap();
            expected_panic();
        })
        .join();
        assert!(!l.is_poisoned(), "a panicking reader poisons nothing");
        let l2 = l.clone();
        let _ = hilos::spawn(move || {
            let _w = l2.write().unwrap();
            expected_panic();
        })
        .join();
        assert!(l.is_poisoned());
        assert!(l.read().is_err());
        assert!(matches!(l.try_write(), Err(TryLockError::Poisoned(_))));
        *l.write().unwrap_err().into_inner() = 2;
        l.clear_poison();
        assert_eq!(*l.read().unwrap(), 2);
    });
}

#[test]
fn mixed_green_and_kernel() {
    within(20, || {
        let rt = hilos::Runtime::builder().workers(1).build().unwrap();
        let l = Arc::new(RwLock::new(0u32));
        // A kernel thread writes while green readers hold; a green writer waits for a kernel
        // reader; all on one worker, which must keep running.
        let r = l.read().unwrap();
        let w = {
            let l = l.clone();
            rt.spawn(move || *l.write().unwrap() += 1)
        };
        let other = rt.spawn(|| 5);
        assert_eq!(other.join().unwrap(), 5);
        drop(r);
        w.join().unwrap();
        let g_reader = {
            let l = l.clone();
            rt.spawn(move || {
                let g = l.read().unwrap();
                hilos::sleep(Duration::from_millis(20));
                *g
            })
        };
        std::thread::sleep(Duration::from_millis(5));
        let k = {
            let l = l.clone();
            std::thread::spawn(move || *l.write().unwrap() += 10)
        };
        assert_eq!(g_reader.join().unwrap(), 1);
        k.join().unwrap();
        assert_eq!(*l.read().unwrap(), 11);
    });
}

#[derive(Debug, Clone)]
enum Op {
    Read,
    Write,
    TryRead,
    TryWrite,
    Release(usize),
    Set(u8),
    PoisonWrite,
    ClearPoison,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Read),
        2 => Just(Op::Write),
        2 => Just(Op::TryRead),
        2 => Just(Op::TryWrite),
        4 => (0..4usize).prop_map(Op::Release),
        2 => any::<u8>().prop_map(Op::Set),
        1 => Just(Op::PoisonWrite),
        1 => Just(Op::ClearPoison),
    ]
}

#[derive(Debug, PartialEq)]
enum Seen {
    Nothing,
    Got { poisoned: bool, value: u8 },
    WouldBlock,
    Bool(bool),
}

/// Runs `ops` against one implementation; the macro keeps the two runs textually identical
/// (`TryLockError` is std's own type, re-exported by hilos).
macro_rules! run {
    ($lock:ty, $read:ty, $write:ty, $ops:expr) => {{
        let l = <$lock>::new(0u8);
        let mut reads: Vec<$read> = Vec::new();
        let mut write: Option<$write> = None;
        let mut out = Vec::new();
        for op in $ops {
            out.push(match op {
                // Blocking calls only when they would not block (single thread).
                Op::Read if write.is_none() => {
                    let (g, poisoned) = match l.read() {
                        Ok(g) => (g, false),
                        Err(e) => (e.into_inner(), true),
                    };
                    let value = *g;
                    reads.push(g);
                    Seen::Got { poisoned, value }
                }
                Op::Write if write.is_none() && reads.is_empty() => {
                    let (g, poisoned) = match l.write() {
                        Ok(g) => (g, false),
                        Err(e) => (e.into_inner(), true),
                    };
                    let value = *g;
                    write = Some(g);
                    Seen::Got { poisoned, value }
                }
                Op::Read | Op::TryRead => match l.try_read() {
                    Ok(g) => {
                        let value = *g;
                        reads.push(g);
                        Seen::Got {
                            poisoned: false,
                            value,
                        }
                    }
                    Err(TryLockError::Poisoned(e)) => {
                        let g = e.into_inner();
                        let value = *g;
                        reads.push(g);
                        Seen::Got {
                            poisoned: true,
                            value,
                        }
                    }
                    Err(TryLockError::WouldBlock) => Seen::WouldBlock,
                },
                Op::Write | Op::TryWrite => match l.try_write() {
                    Ok(g) => {
                        let value = *g;
                        write = Some(g);
                        Seen::Got {
                            poisoned: false,
                            value,
                        }
                    }
                    Err(TryLockError::Poisoned(e)) => {
                        let g = e.into_inner();
                        let value = *g;
                        write = Some(g);
                        Seen::Got {
                            poisoned: true,
                            value,
                        }
                    }
                    Err(TryLockError::WouldBlock) => Seen::WouldBlock,
                },
                Op::Release(i) => {
                    if *i == 0 && write.is_some() {
                        write = None;
                        Seen::Bool(true)
                    } else if *i < reads.len() {
                        drop(reads.remove(*i));
                        Seen::Bool(true)
                    } else {
                        Seen::Bool(false)
                    }
                }
                Op::Set(v) => match write.as_mut() {
                    Some(g) => {
                        **g = *v;
                        Seen::Nothing
                    }
                    None => Seen::Bool(false),
                },
                Op::PoisonWrite => {
                    if reads.is_empty() {
                        let w = write.take();
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            let _w =
                                w.unwrap_or_else(|| l.write().unwrap_or_else(|e| e.into_inner()));
                            expected_panic();
                        }));
                        Seen::Nothing
                    } else {
                        Seen::Bool(false)
                    }
                }
                Op::ClearPoison => {
                    l.clear_poison();
                    Seen::Bool(l.is_poisoned())
                }
            });
        }
        drop(reads);
        drop(write);
        out.push(match l.into_inner() {
            Ok(value) => Seen::Got {
                poisoned: false,
                value,
            },
            Err(e) => Seen::Got {
                poisoned: true,
                value: e.into_inner(),
            },
        });
        out
    }};
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Random single-threaded operation sequences give the same results as std's RwLock.
    #[test]
    fn model_against_std(ops in proptest::collection::vec(op(), 0..40)) {
        quiet_expected_panics();
        let ours = run!(hilos::sync::RwLock<u8>, hilos::sync::RwLockReadGuard<'_, u8>,
            hilos::sync::RwLockWriteGuard<'_, u8>, &ops);
        let std = run!(std::sync::RwLock<u8>, std::sync::RwLockReadGuard<'_, u8>,
            std::sync::RwLockWriteGuard<'_, u8>, &ops);
        prop_assert_eq!(ours, std);
    }
}
