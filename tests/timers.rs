//! Timed waits that end early give their memory back at once, not at their deadline: a worker's
//! timer heap drops the entries of ended waits (src/time). Measured in a child process, whose RSS
//! is its own.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{is_child, run_child};

const HOUR: Duration = Duration::from_secs(3600);

fn rss_kib() -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// `n` rounds of a green thread parking with a one-hour timeout and being unparked at once by a
/// sibling (on one worker, so every round parks for real and leaves a timer behind).
fn early_woken_parks(n: usize) {
    let parked = Arc::new(AtomicUsize::new(0));
    let p = parked.clone();
    let sleeper = hilos::spawn(move || {
        for _ in 0..n {
            p.fetch_add(1, Ordering::Relaxed);
            hilos::thread::park_timeout(HOUR);
        }
    });
    let t = sleeper.thread().clone();
    for i in 0..n {
        while parked.load(Ordering::Relaxed) <= i {
            hilos::yield_now();
        }
        t.unpark();
    }
    sleeper.join().unwrap();
}

/// `n` rounds of a green thread waiting on a condition variable with a one-hour timeout and
/// being notified at once by a sibling.
fn early_notified_waits(n: usize) {
    let pair = Arc::new((hilos::sync::Mutex::new(0usize), hilos::sync::Condvar::new()));
    let p = pair.clone();
    let waiter = hilos::spawn(move || {
        let (m, cv) = &*p;
        let mut g = m.lock().unwrap();
        for i in 0..n {
            *g = i + 1;
            while *g != 0 {
                g = cv.wait_timeout(g, HOUR).unwrap().0;
            }
        }
    });
    let (m, cv) = &*pair;
    for i in 0..n {
        loop {
            let mut g = m.lock().unwrap();
            if *g == i + 1 {
                *g = 0;
                cv.notify_one();
                break;
            }
            drop(g);
            hilos::yield_now();
        }
    }
    waiter.join().unwrap();
}

/// The figures: 2,000,000 early-woken `park_timeout(1 h)` and 1,000,000 early-notified
/// `wait_timeout(1 h)` leave RSS within 16 MiB of where it was after a warm-up (each ended wait
/// used to keep a 40-byte timer entry until its deadline: 120 MB here).
#[test]
fn early_ended_timed_waits_leave_rss_flat() {
    const NAME: &str = "early_ended_timed_waits_leave_rss_flat";
    if is_child() {
        let rt = hilos::Runtime::builder().workers(1).build().unwrap();
        rt.block_on(|| {
            early_woken_parks(10_000);
            early_notified_waits(10_000);
            let before = rss_kib();
            early_woken_parks(2_000_000);
            early_notified_waits(1_000_000);
            let after = rss_kib();
            println!("rss {before} {after}");
        });
        return;
    }
    check_child(NAME, "3,000,000 early-ended timed waits");
}

/// Runs the test `name` in a child and checks that the RSS it printed grew by at most 16 MiB.
fn check_child(name: &str, what: &str) {
    let out = run_child(name, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // libtest may have written "test NAME ... " on the same line.
    let line = stdout.lines().find_map(|l| l.split("rss ").nth(1)).unwrap();
    let v: Vec<usize> = line.split(' ').map(|x| x.parse().unwrap()).collect();
    assert!(
        v[1] <= v[0] + 16 * 1024,
        "RSS grew from {} to {} KiB over {what}",
        v[0],
        v[1]
    );
}

/// The third figure: 1,000 joined threads whose 64 KiB closures parked with a one-hour
/// timeout, woken early, keep nothing: the timer entries that held their allocations are gone
/// (62 MB stayed for the hour before).
#[test]
fn joined_threads_woken_early_do_not_stay_allocated() {
    const NAME: &str = "joined_threads_woken_early_do_not_stay_allocated";
    if is_child() {
        // Debug builds copy the 64 KiB closure a few times on the way: stacks with room for that.
        let rt = hilos::Runtime::builder()
            .workers(1)
            .stack_size(2 << 20)
            .build()
            .unwrap();
        rt.block_on(|| {
            let round = || {
                let parked = Arc::new(AtomicUsize::new(0));
                let hs: Vec<_> = (0..1000)
                    .map(|i| {
                        let big = [i as u8; 64 * 1024];
                        let p = parked.clone();
                        hilos::spawn(move || {
                            p.fetch_add(1, Ordering::Relaxed);
                            hilos::thread::park_timeout(HOUR);
                            big[100]
                        })
                    })
                    .collect();
                while parked.load(Ordering::Relaxed) < 1000 {
                    hilos::yield_now();
                }
                for (i, h) in hs.into_iter().enumerate() {
                    h.thread().unpark();
                    assert_eq!(h.join().unwrap(), i as u8);
                }
            };
            round();
            let before = rss_kib();
            for _ in 0..3 {
                round();
            }
            println!("rss {before} {}", rss_kib());
        });
        return;
    }
    check_child(NAME, "3,000 early-woken threads with 64 KiB closures");
}
