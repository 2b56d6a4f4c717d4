//! `hilos::sync::Barrier`: groups of green threads on one worker (which a kernel-blocking barrier
//! would deadlock), reuse across rounds, exactly one leader, mixed green/kernel members.

mod sync_util;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hilos::sync::Barrier;
use sync_util::*;

#[test]
fn rounds_with_one_leader_each() {
    on_both(20, || {
        let n = 20;
        let rounds = 50;
        let b = Arc::new(Barrier::new(n));
        let arrived = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..n)
            .map(|_| {
                let (b, arrived) = (b.clone(), arrived.clone());
                hilos::spawn(move || {
                    let mut leads = 0;
                    for r in 0..rounds {
                        arrived.fetch_add(1, Ordering::SeqCst);
                        if b.wait().is_leader() {
                            leads += 1;
                        }
                        // Nobody passes round r before all n arrived at it.
                        assert!(arrived.load(Ordering::SeqCst) >= (r + 1) * n);
                    }
                    leads
                })
            })
            .collect();
        let leads: usize = hs.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(leads, rounds);
        assert_eq!(format!("{b:?}"), "Barrier { .. }");
    });
}

#[test]
fn trivial_sizes_never_wait() {
    for n in [0, 1] {
        let b = Barrier::new(n);
        for _ in 0..3 {
            let r = b.wait();
            assert!(r.is_leader());
            assert_eq!(format!("{r:?}"), "BarrierWaitResult { is_leader: true }");
        }
    }
}

#[test]
fn green_and_kernel_members() {
    within(20, || {
        let rt = hilos::Runtime::builder().workers(1).build().unwrap();
        let b = Arc::new(Barrier::new(4));
        let mut green = Vec::new();
        for _ in 0..2 {
            let b = b.clone();
            green.push(rt.spawn(move || (0..10).filter(|_| b.wait().is_leader()).count()));
        }
        let kernel: Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || (0..10).filter(|_| b.wait().is_leader()).count())
            })
            .collect();
        let leads: usize = green
            .into_iter()
            .map(|h| h.join().unwrap())
            .chain(kernel.into_iter().map(|h| h.join().unwrap()))
            .sum();
        assert_eq!(leads, 10);
    });
}
