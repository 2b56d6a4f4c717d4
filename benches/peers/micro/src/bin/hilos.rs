//! hilos's side of the peer table: one worker, green threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hilos::sync::mpsc;
use peers_micro::{PARKED, memory, parked, per_iter};

fn main() {
    let rt = hilos::Runtime::builder().workers(1).build().unwrap();
    rt.block_on(|| {
        per_iter("spawn_join_ns", |n| {
            for _ in 0..n {
                hilos::spawn(|| {}).join().unwrap();
            }
        });
        per_iter("yield_round_trip_ns", |n| {
            let other = hilos::spawn(move || (0..n).for_each(|_| hilos::yield_now()));
            (0..n).for_each(|_| hilos::yield_now());
            other.join().unwrap();
        });
        per_iter("ping_pong_ns", |n| {
            let (to, from_main) = mpsc::channel::<u64>();
            let (back, from_echo) = mpsc::channel::<u64>();
            let echo = hilos::spawn(move || from_main.iter().for_each(|v| back.send(v).unwrap()));
            for i in 0..n {
                to.send(i).unwrap();
                from_echo.recv().unwrap();
            }
            drop(to);
            echo.join().unwrap();
        });
        let before = memory();
        let started = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(hilos::sync::Barrier::new(PARKED + 1));
        let hs: Vec<_> = (0..PARKED)
            .map(|_| {
                let (gate, started) = (gate.clone(), started.clone());
                hilos::spawn(move || {
                    started.fetch_add(1, Ordering::SeqCst);
                    gate.wait();
                })
            })
            .collect();
        while started.load(Ordering::SeqCst) < PARKED {
            hilos::yield_now();
        }
        parked("parked_bytes", before, memory());
        gate.wait();
        hs.into_iter().for_each(|h| h.join().unwrap());
    });
}
