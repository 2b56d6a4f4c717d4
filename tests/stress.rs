//! Many green threads: 100,000 alive at once, 1,000,000 spawn/join in total.

mod common;
use common::within;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

fn hundred_thousand_alive(rt: &hilos::Runtime) {
    const N: usize = 100_000;
    let started = Arc::new(AtomicUsize::new(0));
    let go = Arc::new(AtomicBool::new(false));
    rt.block_on(|| {
        let handles: Vec<_> = (0..N)
            .map(|i| {
                let started = started.clone();
                let go = go.clone();
                hilos::spawn(move || {
                    started.fetch_add(1, Ordering::Relaxed);
                    while !go.load(Ordering::Acquire) {
                        hilos::park();
                    }
                    i
                })
            })
            .collect();
        // Every thread has run and parked: all N are alive at once.
        while started.load(Ordering::Relaxed) < N {
            hilos::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(started.load(Ordering::Relaxed), N);
        go.store(true, Ordering::Release);
        for h in &handles {
            h.thread().unpark();
        }
        let sum: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, N * (N - 1) / 2);
    });
}

#[test]
fn hundred_thousand_threads_alive_at_once() {
    within(300, || {
        hundred_thousand_alive(common::one_worker());
        hundred_thousand_alive(common::two_workers());
    });
}

#[test]
fn a_million_spawn_join_in_total() {
    within(300, || {
        common::two_workers().block_on(|| {
            let total = Arc::new(AtomicUsize::new(0));
            // 100 waves of 10,000 threads spawned then joined (each thread spawns nothing).
            for wave in 0..100usize {
                let hs: Vec<_> = (0..10_000usize)
                    .map(|i| {
                        let total = total.clone();
                        hilos::spawn(move || {
                            total.fetch_add(1, Ordering::Relaxed);
                            wave * 10_000 + i
                        })
                    })
                    .collect();
                let s: usize = hs.into_iter().map(|h| h.join().unwrap()).sum();
                let base = wave * 10_000;
                assert_eq!(s, base * 10_000 + 10_000 * 9_999 / 2);
            }
            assert_eq!(total.load(Ordering::Relaxed), 1_000_000);
        })
    });
}
