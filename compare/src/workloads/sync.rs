//! Workloads of the `hilos::sync` benchmarks, shared by `benches/sync.rs` (criterion) and any
//! other target that wants the same figures (include it with `#[path]`).
//!
//! - Channel ping-pong: one message each way per round trip, over two unbounded channels, between
//!   two green threads (on one worker, or on two different workers), and the same between two
//!   kernel threads with `std::sync::mpsc` (and with `hilos::sync::mpsc`, for reference).
//! - Mutex contention: `T` threads share one mutex and take it `total` times in all, each time for a
//!   critical section of about 100 ns ([`calibrate_critical_section`]); reported as acquisitions
//!   per second. hilos green threads with `hilos::sync::Mutex` against kernel threads with
//!   `std::sync::Mutex`.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// A runtime with `n` workers.
pub fn runtime(n: usize) -> hilos::Runtime {
    hilos::Runtime::builder()
        .workers(n)
        .build()
        .expect("cannot start a hilos runtime")
}

/// The name of the worker kernel thread the calling green thread runs on.
fn worker_name() -> String {
    // The kernel tid: green threads may have thread-locals of their own, so
    // std::thread::current() names the green thread, not its worker.
    // SAFETY: a plain system call.
    unsafe { libc::gettid() }.to_string()
}

/// `iters` round trips between two green threads of `rt` over `hilos::sync::mpsc` channels.
/// With `spread`, the two threads run on different workers (`rt` needs at least two), else on the
/// same one (`rt` must have exactly one worker). Returns the time of the round trips alone.
pub fn green_ping_pong(rt: &hilos::Runtime, iters: u64, spread: bool) -> Duration {
    use hilos::sync::mpsc::channel;
    use std::sync::atomic::{AtomicBool, Ordering};
    assert!(
        if spread {
            rt.workers() >= 2
        } else {
            rt.workers() == 1
        },
        "green_ping_pong: wrong number of workers"
    );
    let (to_b, b_rx) = channel::<u64>();
    let (to_a, a_rx) = channel::<u64>();
    let (a_on, b_on) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let (a_on2, b_on2) = (a_on.clone(), b_on.clone());
    // A announces itself, then spins (keeping its worker busy, so that B, spawned next from
    // outside, is taken by another worker) until B runs.
    let a = rt.spawn(move || {
        let me = worker_name();
        a_on2.store(true, Ordering::SeqCst);
        while spread && !b_on2.load(Ordering::SeqCst) {
            std::hint::spin_loop();
        }
        to_b.send(0).unwrap();
        a_rx.recv().unwrap();
        let t = Instant::now();
        for i in 0..iters {
            to_b.send(i).unwrap();
            a_rx.recv().unwrap();
        }
        (t.elapsed(), me)
    });
    while !a_on.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    let b = rt.spawn(move || {
        b_on.store(true, Ordering::SeqCst);
        let me = worker_name();
        for v in b_rx.iter() {
            if to_a.send(v).is_err() {
                break;
            }
        }
        me
    });
    let (d, wa) = a.join().unwrap();
    let wb = b.join().unwrap();
    assert_eq!(
        wa != wb,
        spread,
        "green_ping_pong: threads on {wa} and {wb}"
    );
    d
}

/// `iters` round trips between two kernel threads over the channels of `$chan` (a module with
/// std's `mpsc::channel`); the body of [`std_ping_pong`] and [`hilos_kernel_ping_pong`].
macro_rules! kernel_ping_pong {
    ($chan:path, $iters:expr) => {{
        use $chan as chan;
        let (to_b, b_rx) = chan::channel::<u64>();
        let (to_a, a_rx) = chan::channel::<u64>();
        let b = std::thread::spawn(move || {
            for v in b_rx.iter() {
                if to_a.send(v).is_err() {
                    break;
                }
            }
        });
        // Let the echo thread start before timing.
        to_b.send(0).unwrap();
        a_rx.recv().unwrap();
        let t = Instant::now();
        for i in 0..$iters {
            to_b.send(i).unwrap();
            a_rx.recv().unwrap();
        }
        let d = t.elapsed();
        drop(to_b);
        b.join().unwrap();
        d
    }};
}

/// `iters` round trips between two kernel threads over `std::sync::mpsc` channels.
pub fn std_ping_pong(iters: u64) -> Duration {
    kernel_ping_pong!(std::sync::mpsc, iters)
}

/// `iters` round trips between two kernel threads over `hilos::sync::mpsc` channels.
pub fn hilos_kernel_ping_pong(iters: u64) -> Duration {
    kernel_ping_pong!(hilos::sync::mpsc, iters)
}

/// The critical section: `iters` dependent multiply-adds on the protected value.
#[inline]
pub fn critical_section(v: &mut u64, iters: u32) {
    let mut x = *v;
    for i in 0..iters {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i as u64));
    }
    *v = x;
}

/// The `iters` argument of [`critical_section`] that makes it last about `target` (the fastest of
/// several timings, so that a busy machine does not shorten the section).
pub fn calibrate_critical_section(target: Duration) -> u32 {
    let mut v = 1;
    let n = 200_000u32;
    critical_section(&mut v, n);
    let per = (0..7)
        .map(|_| {
            let t = Instant::now();
            critical_section(&mut v, n);
            t.elapsed().as_secs_f64() / f64::from(n)
        })
        .fold(f64::INFINITY, f64::min);
    std::hint::black_box(v);
    ((target.as_secs_f64() / per).round() as u32).max(1)
}

fn split(total: u64, threads: usize) -> impl Iterator<Item = u64> {
    let t = threads as u64;
    (0..t).map(move |i| total / t + u64::from(i < total % t))
}

/// From the earliest start to the latest end of the threads' (start, end) stamps. The threads
/// stamp these themselves: a timer started by the coordinating thread after the start barrier
/// would start late when that thread is not rescheduled at once (many runnable threads on few
/// cores), and so report more acquisitions per second than the lock allows.
fn span(stamps: impl Iterator<Item = (Instant, Instant)>) -> Duration {
    let (mut first, mut last): (Option<Instant>, Option<Instant>) = (None, None);
    for (s, e) in stamps {
        first = Some(first.map_or(s, |f| f.min(s)));
        last = Some(last.map_or(e, |l| l.max(e)));
    }
    match (first, last) {
        (Some(f), Some(l)) => l.saturating_duration_since(f),
        _ => Duration::ZERO,
    }
}

/// One thread's share of a contention run: `n` takes of the lock `lock` returns, each counting
/// itself and running [`critical_section`] with `cs_iters`. Returns when the loop started and
/// ended.
fn take_turns<G: std::ops::DerefMut<Target = (u64, u64)>>(
    n: u64,
    cs_iters: u32,
    mut lock: impl FnMut() -> G,
) -> (Instant, Instant) {
    let s = Instant::now();
    for _ in 0..n {
        let mut g = lock();
        g.0 += 1;
        critical_section(&mut g.1, cs_iters);
    }
    (s, Instant::now())
}

/// `threads` green threads of `rt` take one `hilos::sync::Mutex` `total` times in all, each time
/// running [`critical_section`] with `cs_iters`. Returns the time from the first thread's start (after a
/// common start barrier) until the last thread has done its share, so that neither spawning nor thread
/// exit is timed, only the lock traffic. Checks the count.
pub fn green_mutex_contention(
    rt: &hilos::Runtime,
    threads: usize,
    total: u64,
    cs_iters: u32,
) -> Duration {
    use hilos::sync::{Barrier, Mutex};
    rt.block_on(move || {
        let m = Arc::new(Mutex::new((0u64, 0u64)));
        let start = Arc::new(Barrier::new(threads + 1));
        let end = Arc::new(Barrier::new(threads + 1));
        let hs: Vec<_> = split(total, threads)
            .map(|n| {
                let (m, start, end) = (m.clone(), start.clone(), end.clone());
                hilos::spawn(move || {
                    start.wait();
                    let stamps = take_turns(n, cs_iters, || m.lock().unwrap());
                    end.wait();
                    stamps
                })
            })
            .collect();
        start.wait();
        end.wait();
        let d = span(hs.into_iter().map(|h| h.join().unwrap()));
        assert_eq!(m.lock().unwrap().0, total);
        d
    })
}

/// As [`green_mutex_contention`], with `threads` kernel threads, `std::sync::Mutex` and
/// `std::sync::Barrier`.
pub fn std_mutex_contention(threads: usize, total: u64, cs_iters: u32) -> Duration {
    use std::sync::{Barrier, Mutex};
    let m = Arc::new(Mutex::new((0u64, 0u64)));
    let start = Arc::new(Barrier::new(threads + 1));
    let end = Arc::new(Barrier::new(threads + 1));
    let hs: Vec<_> = split(total, threads)
        .map(|n| {
            let (m, start, end) = (m.clone(), start.clone(), end.clone());
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    start.wait();
                    let stamps = take_turns(n, cs_iters, || m.lock().unwrap());
                    end.wait();
                    stamps
                })
                .expect("cannot spawn a kernel thread")
        })
        .collect();
    start.wait();
    end.wait();
    let d = span(hs.into_iter().map(|h| h.join().unwrap()));
    assert_eq!(m.lock().unwrap().0, total);
    d
}
