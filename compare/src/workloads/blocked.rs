//! Blocked-I/O fairness: `n` threads each blocked reading one end of a Unix socket pair whose
//! other end never writes, while one more thread computes a fixed amount of arithmetic. The
//! compute thread's completion time (from just before it is spawned to the end of its work, both
//! stamps taken with the same clock) shows whether the blocked readers stall it: they should not,
//! on either side. Then the writing ends are closed, every reader sees end of file, and all are
//! joined.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A fixed amount of arithmetic: `iters` rounds of xorshift; returns the result, so that it is
/// not optimised away.
pub fn compute(iters: u64) -> u64 {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..iters {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x = x.wrapping_add(i);
    }
    std::hint::black_box(x)
}

/// The number of [`compute`] iterations that take about `target` on this thread.
pub fn calibrate(target: Duration) -> u64 {
    let mut iters = 1u64 << 10;
    loop {
        let t = Instant::now();
        compute(iters);
        let e = t.elapsed();
        if e >= target / 8 || iters >= 1 << 36 {
            let scaled = iters as f64 * target.as_secs_f64() / e.as_secs_f64().max(1e-9);
            return (scaled as u64).max(1);
        }
        iters *= 2;
    }
}

/// Which threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Green threads of a hilos runtime, `hilos::net::UnixStream`.
    Hilos,
    /// Kernel threads (64 KiB stacks), `std::os::unix::net::UnixStream`.
    Std,
}

/// Waits until `count` reaches `n` or `limit` passes; says how far it got on failure.
fn wait_for(count: &AtomicUsize, n: usize, limit: Duration, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        let k = count.load(Ordering::SeqCst);
        if k >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "only {k} of {n} {what} within {}s",
                limit.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// With `n` threads of `side` blocked reading, runs the compute thread (`iters` of [`compute`])
/// `reps` times, one after the other; returns each run's completion time. `rt` runs the green
/// threads (hilos side only). A run that does not finish within `limit` is an error (the blocked
/// readers stalled it); the readers are unblocked and joined in every case where they started.
pub fn run(
    side: Side,
    rt: Option<&hilos::Runtime>,
    n: usize,
    iters: u64,
    reps: usize,
    limit: Duration,
) -> Result<Vec<Duration>, String> {
    let started = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    // The writing ends, kept (and never written) until the end, and a way to join each reader.
    let mut peers: Vec<Box<dyn Send>> = Vec::with_capacity(n);
    let mut joins: Vec<Box<dyn FnOnce() -> bool>> = Vec::with_capacity(n);

    // Each reader counts itself started, blocks in read until end of file, counts itself
    // finished, and says whether it saw end of file (and not data or an error).
    fn reader(
        mut s: impl Read,
        started: Arc<AtomicUsize>,
        finished: Arc<AtomicUsize>,
    ) -> impl FnOnce() -> bool {
        move || {
            started.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 16];
            let eof = matches!(s.read(&mut buf), Ok(0));
            finished.fetch_add(1, Ordering::SeqCst);
            eof
        }
    }

    let mut setup = || -> Result<(), String> {
        for _ in 0..n {
            let (st, fi) = (started.clone(), finished.clone());
            match side {
                Side::Hilos => {
                    let rt = rt.ok_or("no runtime")?;
                    let (a, b) =
                        hilos::net::UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
                    peers.push(Box::new(b));
                    let h = rt.spawn(reader(a, st, fi));
                    joins.push(Box::new(move || h.join().unwrap_or(false)));
                }
                Side::Std => {
                    let (a, b) = std::os::unix::net::UnixStream::pair()
                        .map_err(|e| format!("socketpair: {e}"))?;
                    peers.push(Box::new(b));
                    let h = std::thread::Builder::new()
                        .stack_size(64 * 1024)
                        .spawn(reader(a, st, fi))
                        .map_err(|e| format!("spawn: {e}"))?;
                    joins.push(Box::new(move || h.join().unwrap_or(false)));
                }
            }
        }
        wait_for(&started, n, limit, "readers started")?;
        // Let the last ones reach their read.
        std::thread::sleep(Duration::from_millis(10));
        Ok(())
    };
    let ready = setup();

    let mut times = Vec::with_capacity(reps);
    let measured = ready.and_then(|()| {
        for _ in 0..reps {
            let (tx, rx) = mpsc::channel::<Instant>();
            let work = move || {
                compute(iters);
                let _ = tx.send(Instant::now());
            };
            let t0 = Instant::now();
            match side {
                Side::Hilos => drop(rt.ok_or("no runtime")?.spawn(work)),
                Side::Std => drop(std::thread::spawn(work)),
            }
            match rx.recv_timeout(limit) {
                Ok(end) => times.push(end.duration_since(t0)),
                Err(_) => {
                    return Err(format!(
                        "the compute thread did not finish within {}s",
                        limit.as_secs()
                    ));
                }
            }
        }
        Ok(())
    });

    // Unblock every reader (end of file), then join them all.
    drop(peers);
    let spawned = joins.len();
    wait_for(&finished, spawned, limit, "readers unblocked")?;
    let eof = joins.into_iter().map(|j| j()).filter(|ok| !ok).count();
    measured?;
    if eof > 0 {
        return Err(format!("{eof} readers did not see end of file"));
    }
    Ok(times)
}
