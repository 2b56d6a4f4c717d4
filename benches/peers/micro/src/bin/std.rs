//! std's side of the peer table: kernel threads. The "yield round trip" of kernel threads is a
//! park/unpark hand-off between two threads (a kernel `yield` between two threads on two cores
//! does not switch between them).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::thread;

use peers_micro::{ITERS, PARKED, memory, parked, per_iter_n};

fn main() {
    // Kernel threads cost microseconds: fewer iterations.
    let n = ITERS / 20;
    per_iter_n("spawn_join_ns", n, |n| {
        for _ in 0..n {
            thread::spawn(|| {}).join().unwrap();
        }
    });
    per_iter_n("yield_round_trip_ns", n, |n| {
        let main = thread::current();
        let turn = Arc::new(AtomicUsize::new(0));
        let t2 = turn.clone();
        let other = thread::spawn(move || {
            for i in 0..n {
                while t2.load(Ordering::Acquire) != 2 * i as usize + 1 {
                    thread::park();
                }
                t2.store(2 * i as usize + 2, Ordering::Release);
                main.unpark();
            }
        });
        for i in 0..n {
            turn.store(2 * i as usize + 1, Ordering::Release);
            other.thread().unpark();
            while turn.load(Ordering::Acquire) != 2 * i as usize + 2 {
                thread::park();
            }
        }
        other.join().unwrap();
    });
    per_iter_n("ping_pong_ns", n, |n| {
        let (to, from_main) = mpsc::channel::<u64>();
        let (back, from_echo) = mpsc::channel::<u64>();
        let echo = thread::spawn(move || from_main.iter().for_each(|v| back.send(v).unwrap()));
        for i in 0..n {
            to.send(i).unwrap();
            from_echo.recv().unwrap();
        }
        drop(to);
        echo.join().unwrap();
    });
    let before = memory();
    let started = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Barrier::new(PARKED + 1));
    let hs: Vec<_> = (0..PARKED)
        .map(|_| {
            let (gate, started) = (gate.clone(), started.clone());
            thread::spawn(move || {
                started.fetch_add(1, Ordering::SeqCst);
                gate.wait();
            })
        })
        .collect();
    while started.load(Ordering::SeqCst) < PARKED {
        thread::yield_now();
    }
    parked("parked_bytes", before, memory());
    gate.wait();
    hs.into_iter().for_each(|h| h.join().unwrap());
}
