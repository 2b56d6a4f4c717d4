//! Micro workloads: each runs `iters` operations and returns the time they took. Shared by the
//! `compare` harness, the criterion benches and the harness test.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// `iters` times: spawn a green thread running an empty closure and join it. Runs on a green
/// thread of the global runtime (one worker per core), so the joins park only that green thread.
pub fn hilos_spawn_join(iters: u64) -> Duration {
    hilos::spawn(move || {
        let t0 = Instant::now();
        for _ in 0..iters {
            hilos::spawn(|| black_box(())).join().unwrap();
        }
        t0.elapsed()
    })
    .join()
    .unwrap()
}

/// `iters` times: `std::thread::spawn` an empty closure and join it, from the calling thread.
pub fn std_spawn_join(iters: u64) -> Duration {
    let t0 = Instant::now();
    for _ in 0..iters {
        std::thread::spawn(|| black_box(())).join().unwrap();
    }
    t0.elapsed()
}

/// A runtime with a single worker, for the switch workloads: two green threads on it can only
/// take turns.
pub fn one_worker_runtime() -> hilos::Runtime {
    hilos::Runtime::builder()
        .workers(1)
        .build()
        .expect("cannot start a one-worker hilos runtime")
}

/// `iters` round trips between two green threads on `rt` (which should have one worker): each
/// `yield_now` of the measuring thread runs its partner, whose `yield_now` hands back. One round
/// trip is two switches through the scheduler.
pub fn hilos_yield_roundtrips(rt: &hilos::Runtime, iters: u64) -> Duration {
    rt.block_on(|| {
        let done = Arc::new(AtomicBool::new(false));
        let partner = {
            let done = done.clone();
            hilos::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    hilos::yield_now();
                }
            })
        };
        // Let the partner start, so the timed loop sees only switches between running threads.
        hilos::yield_now();
        let t0 = Instant::now();
        for _ in 0..iters {
            hilos::yield_now();
        }
        let elapsed = t0.elapsed();
        done.store(true, Ordering::Relaxed);
        partner.join().unwrap();
        elapsed
    })
}

/// `iters` round trips of a handoff between two kernel threads: the caller hands the turn to a
/// partner thread and parks until the partner hands it back (`std::thread::park`/`unpark`, a
/// futex underneath). One round trip is two kernel wake-ups.
pub fn std_park_roundtrips(iters: u64) -> Duration {
    const MAIN: u32 = 0;
    const PARTNER: u32 = 1;
    const STOP: u32 = 2;
    let turn = Arc::new(AtomicU32::new(MAIN));
    let main = std::thread::current();
    let partner = {
        let turn = turn.clone();
        std::thread::spawn(move || {
            loop {
                match turn.load(Ordering::Acquire) {
                    PARTNER => {
                        turn.store(MAIN, Ordering::Release);
                        main.unpark();
                    }
                    STOP => return,
                    _ => std::thread::park(),
                }
            }
        })
    };
    let handoff = || {
        turn.store(PARTNER, Ordering::Release);
        partner.thread().unpark();
        while turn.load(Ordering::Acquire) != MAIN {
            std::thread::park();
        }
    };
    handoff(); // the partner is up and running
    let t0 = Instant::now();
    for _ in 0..iters {
        handoff();
    }
    let elapsed = t0.elapsed();
    turn.store(STOP, Ordering::Release);
    partner.thread().unpark();
    partner.join().unwrap();
    elapsed
}

/// `iters` round trips of hilos's bare context switch (no scheduler), or `None` if this build
/// cannot time it (the hook reports zero).
pub fn bare_switch_roundtrips(iters: u64) -> Option<Duration> {
    let d = hilos::__private::bare_switch_roundtrips(iters);
    (!d.is_zero()).then_some(d)
}

/// Whether the bare switch can be timed in this build.
pub fn bare_switch_available() -> bool {
    bare_switch_roundtrips(1000).is_some()
}
