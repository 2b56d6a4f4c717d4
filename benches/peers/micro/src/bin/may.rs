//! may's side of the peer table: one worker, coroutines (may's default 32 KiB stacks).

use std::sync::Arc;

use may::coroutine;
use may::sync::{Barrier, mpsc};
use peers_micro::{PARKED, memory, parked, per_iter};

/// Spawns a coroutine.
fn go<F: FnOnce() + Send + 'static>(f: F) -> coroutine::JoinHandle<()> {
    // SAFETY: the closures here use no thread-local storage (may's documented hazard) and block
    // only through may's own primitives.
    unsafe { coroutine::spawn(f) }
}

fn main() {
    may::config().set_workers(1);
    go(|| {
        per_iter("spawn_join_ns", |n| {
            for _ in 0..n {
                go(|| {}).join().unwrap();
            }
        });
        per_iter("yield_round_trip_ns", |n| {
            let other = go(move || (0..n).for_each(|_| coroutine::yield_now()));
            (0..n).for_each(|_| coroutine::yield_now());
            other.join().unwrap();
        });
        per_iter("ping_pong_ns", |n| {
            let (to, from_main) = mpsc::channel::<u64>();
            let (back, from_echo) = mpsc::channel::<u64>();
            let echo = go(move || {
                while let Ok(v) = from_main.recv() {
                    back.send(v).unwrap();
                }
            });
            for i in 0..n {
                to.send(i).unwrap();
                from_echo.recv().unwrap();
            }
            drop(to);
            echo.join().unwrap();
        });
        let before = memory();
        // Each coroutine says it has started over a channel (may's yield_now in a loop here
        // never let them run).
        let (started, all_started) = mpsc::channel::<()>();
        let gate = Arc::new(Barrier::new(PARKED + 1));
        let hs: Vec<_> = (0..PARKED)
            .map(|_| {
                let (gate, started) = (gate.clone(), started.clone());
                go(move || {
                    started.send(()).unwrap();
                    gate.wait();
                })
            })
            .collect();
        (0..PARKED).for_each(|_| all_started.recv().unwrap());
        parked("parked_bytes", before, memory());
        gate.wait();
        hs.into_iter().for_each(|h| h.join().unwrap());
    })
    .join()
    .unwrap();
}
