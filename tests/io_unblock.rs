//! The blocking pool: values, borrows, panics, the bound on its threads.

mod io_util;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use io_util::{is_child, rt1, rt2, within};

#[test]
fn returns_values_borrows_and_resumes_panics() {
    within(60, || {
        rt1().block_on(|| {
            // Borrows from the caller's stack, in both directions.
            let mut v = vec![1, 2, 3];
            let sum: i32 = hilos::unblock(|| {
                v.push(4);
                v.iter().sum()
            });
            assert_eq!((sum, v.len()), (10, 4));
            // A panic comes back to the caller.
            let r = std::panic::catch_unwind(|| hilos::unblock(|| panic!("in the pool")));
            let p = r.unwrap_err();
            assert_eq!(p.downcast_ref::<&str>(), Some(&"in the pool"));
            // And the pool still works afterwards.
            assert_eq!(hilos::unblock(|| 7), 7);
        })
    });
    // On a kernel thread it simply runs the closure.
    assert_eq!(
        hilos::unblock(|| std::thread::current().id()),
        std::thread::current().id()
    );
}

#[test]
fn many_concurrent_callers() {
    within(60, || {
        rt2().block_on(|| {
            let hs: Vec<_> = (0..200u64)
                .map(|i| {
                    hilos::spawn(move || {
                        hilos::unblock(move || {
                            std::thread::sleep(Duration::from_millis(1));
                            i * 2
                        })
                    })
                })
                .collect();
            let total: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
            assert_eq!(total, 2 * (0..200).sum::<u64>());
        })
    });
}

/// Runs the test `name` in a child process whose blocking pool has `threads` threads
/// (`HILOS_BLOCKING_THREADS` is read once per process), and checks that it passed.
fn run_in_child(name: &str, threads: &str) {
    let out = io_util::self_command()
        .args(["--exact", name, "--test-threads=1"])
        .env("HILOS_TEST_CHILD", "1")
        .env("HILOS_BLOCKING_THREADS", threads)
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_pool_is_bounded() {
    // HILOS_BLOCKING_THREADS is read once per process: in a child process of its own.
    if !is_child() {
        run_in_child("the_pool_is_bounded", "3");
        return;
    }
    if std::env::var("HILOS_BLOCKING_THREADS").as_deref() != Ok("3") {
        return;
    }
    within(60, || {
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        rt2().block_on(|| {
            let hs: Vec<_> = (0..12)
                .map(|_| {
                    let (now, peak) = (now.clone(), peak.clone());
                    hilos::spawn(move || {
                        hilos::unblock(|| {
                            let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(n, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(30));
                            now.fetch_sub(1, Ordering::SeqCst);
                        })
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
        });
        assert_eq!(
            peak.load(Ordering::SeqCst),
            3,
            "the pool ran more (or fewer) at once"
        );
        let pool_threads = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|c| c.trim() == "hilos-blocking")
            .count();
        assert!(pool_threads <= 3, "{pool_threads} pool threads");
    });
}

/// Name resolution has a pool of its own: with every thread of the blocking pool held by jobs
/// that wait for a release, `hilos::net` still resolves a host name (it used to queue behind
/// them: a connect delayed by seconds, here forever).
#[test]
fn name_resolution_is_not_queued_behind_blocking_jobs() {
    const NAME: &str = "name_resolution_is_not_queued_behind_blocking_jobs";
    if !is_child() {
        run_in_child(NAME, "2");
        return;
    }
    use hilos::net::ToSocketAddrs;
    within(60, || {
        rt2().block_on(|| {
            let release = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let started = Arc::new(AtomicUsize::new(0));
            let jobs: Vec<_> = (0..4)
                .map(|_| {
                    let (release, started) = (release.clone(), started.clone());
                    hilos::spawn(move || {
                        hilos::unblock(|| {
                            started.fetch_add(1, Ordering::SeqCst);
                            while !release.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(1));
                            }
                        })
                    })
                })
                .collect();
            while started.load(Ordering::SeqCst) < 2 {
                hilos::sleep(Duration::from_millis(1));
            }
            let addrs: Vec<_> = ("localhost", 80).to_socket_addrs().unwrap().collect();
            assert!(addrs.iter().any(|a| a.ip().is_loopback()), "{addrs:?}");
            release.store(true, Ordering::SeqCst);
            for j in jobs {
                j.join().unwrap();
            }
        })
    });
}
