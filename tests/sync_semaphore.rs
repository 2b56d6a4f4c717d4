//! `hilos::sync::Semaphore`: the bound holds, waiters park (one worker), FIFO hand-off, timeouts
//! that never lose a permit, mixed green/kernel use, and a model test against a plain counter.

mod sync_util;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hilos::sync::{Mutex, Semaphore};
use proptest::prelude::*;
use sync_util::*;

#[test]
fn bounds_concurrency() {
    on_both(20, || {
        let sem = Arc::new(Semaphore::new(3));
        let active = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..50)
            .map(|_| {
                let (sem, active, peak) = (sem.clone(), active.clone(), peak.clone());
                hilos::spawn(move || {
                    for _ in 0..10 {
                        let _p = sem.acquire();
                        let n = active.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(n, Ordering::SeqCst);
                        hilos::yield_now();
                        active.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert!(peak.load(Ordering::SeqCst) <= 3);
        assert_eq!(sem.available_permits(), 3);
    });
}

/// Released permits go to waiters in arrival order, even though a newcomer tries to barge.
#[test]
fn fifo_hand_off() {
    on_rt(1, 20, || {
        let sem = Arc::new(Semaphore::new(1));
        let order = Arc::new(Mutex::new(Vec::new()));
        let held = sem.acquire();
        let hs: Vec<_> = (0..5)
            .map(|i| {
                let (sem, order) = (sem.clone(), order.clone());
                let h = hilos::spawn(move || {
                    let _p = sem.acquire();
                    order.lock().unwrap().push(i);
                    hilos::yield_now();
                });
                // Let it queue before the next one comes.
                hilos::sleep(Duration::from_millis(1));
                h
            })
            .collect();
        drop(held);
        // A newcomer finds waiters: it must not take the permit.
        assert!(sem.try_acquire().is_none());
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4]);
        assert!(sem.try_acquire().is_some());
    });
}

#[test]
fn acquire_timeout() {
    on_both(20, || {
        let sem = Arc::new(Semaphore::new(1));
        let p = sem.acquire();
        let t = Instant::now();
        assert!(sem.acquire_timeout(Duration::from_millis(20)).is_none());
        assert!(t.elapsed() >= Duration::from_millis(20));
        let s2 = sem.clone();
        let h = hilos::spawn(move || {
            s2.acquire_timeout(Duration::from_secs(10))
                .map(|p| p.forget())
                .is_some()
        });
        hilos::sleep(Duration::from_millis(5));
        drop(p);
        assert!(h.join().unwrap());
        // The permit was forgotten: none left.
        assert_eq!(sem.available_permits(), 0);
        sem.release();
        assert_eq!(sem.available_permits(), 1);
        sem.add_permits(2);
        assert_eq!(sem.available_permits(), 3);
        assert!(format!("{sem:?}").contains("available_permits: 3"));
    });
}

/// Many acquirers with short timeouts race releases: every permit ends up either held by someone
/// who got it or back in the semaphore, never lost.
#[test]
fn timeouts_never_lose_permits() {
    on_both(30, || {
        let sem = Arc::new(Semaphore::new(2));
        let got = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..20)
            .map(|k| {
                let (sem, got) = (sem.clone(), got.clone());
                hilos::spawn(move || {
                    for i in 0..200u64 {
                        let d = Duration::from_micros(1 + (i * 13 + k) % 50);
                        if let Some(p) = sem.acquire_timeout(d) {
                            got.fetch_add(1, Ordering::Relaxed);
                            if i % 3 == 0 {
                                hilos::yield_now();
                            }
                            drop(p);
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert!(got.load(Ordering::Relaxed) > 0);
        assert_eq!(sem.available_permits(), 2);
        let a = sem.try_acquire().unwrap();
        let b = sem.try_acquire().unwrap();
        assert!(sem.try_acquire().is_none());
        drop((a, b));
    });
}

#[test]
fn mixed_green_and_kernel() {
    within(20, || {
        let rt = hilos::Runtime::builder().workers(1).build().unwrap();
        let sem = Arc::new(Semaphore::new(0));
        // Green waiters, kernel releaser; the worker keeps running meanwhile.
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let sem = sem.clone();
                rt.spawn(move || sem.acquire().forget())
            })
            .collect();
        assert_eq!(rt.spawn(|| 2).join().unwrap(), 2);
        sem.add_permits(3);
        for w in waiters {
            w.join().unwrap();
        }
        // Kernel waiter, green releaser.
        let s2 = sem.clone();
        let k = std::thread::spawn(move || s2.acquire().forget());
        std::thread::sleep(Duration::from_millis(10));
        let s3 = sem.clone();
        rt.block_on(move || s3.release());
        k.join().unwrap();
        assert_eq!(sem.available_permits(), 0);
    });
}

#[derive(Debug, Clone)]
enum Op {
    TryAcquire,
    Release(usize),
    Forget(usize),
    AddPermits(u8),
    TimeoutZero,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Random single-threaded operation sequences match a plain counter.
    #[test]
    fn model_against_counter(
        initial in 0..4usize,
        ops in proptest::collection::vec(prop_oneof![
            Just(Op::TryAcquire),
            (0..4usize).prop_map(Op::Release),
            (0..4usize).prop_map(Op::Forget),
            (0..3u8).prop_map(Op::AddPermits),
            Just(Op::TimeoutZero),
        ], 0..40)
    ) {
        let sem = Semaphore::new(initial);
        let mut model = initial;
        let mut held = Vec::new();
        for op in ops {
            match op {
                Op::TryAcquire | Op::TimeoutZero => {
                    let p = if matches!(op, Op::TryAcquire) {
                        sem.try_acquire()
                    } else {
                        sem.acquire_timeout(Duration::ZERO)
                    };
                    prop_assert_eq!(p.is_some(), model > 0);
                    if let Some(p) = p {
                        model -= 1;
                        held.push(p);
                    }
                }
                Op::Release(i) if i < held.len() => {
                    drop(held.remove(i));
                    model += 1;
                }
                Op::Forget(i) if i < held.len() => held.remove(i).forget(),
                Op::AddPermits(n) => {
                    sem.add_permits(n as usize);
                    model += n as usize;
                }
                _ => {}
            }
            prop_assert_eq!(sem.available_permits(), model);
        }
    }
}
