//! Runtime construction, shutdown and drop.

mod common;
use common::within;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[test]
fn zero_workers_is_an_error() {
    let err = hilos::Runtime::builder().workers(0).build().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn absurd_runtime_stack_size_is_an_error() {
    let err = hilos::Runtime::builder()
        .stack_size(usize::MAX)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
}

#[test]
fn runtime_stack_size_is_the_default_for_its_threads() {
    within(60, || {
        let rt = hilos::Runtime::builder()
            .workers(1)
            .stack_size(16 << 20)
            .build()
            .unwrap();
        // An 8 MiB local: overflows the 256 KiB default, fits in 16 MiB.
        let r = rt.block_on(|| {
            hilos::spawn(|| {
                let mut big = vec![0u8; 0];
                let mut arr = [2u8; 8 << 20];
                std::hint::black_box(&mut arr);
                big.push(arr[12345]);
                big[0]
            })
            .join()
            .unwrap()
        });
        assert_eq!(r, 2);
    });
}

#[test]
fn workers_count_and_debug() {
    let rt = hilos::Runtime::builder().workers(3).build().unwrap();
    assert_eq!(rt.workers(), 3);
    assert!(format!("{rt:?}").contains("workers: 3"));
}

#[test]
fn drop_waits_for_running_threads() {
    within(30, || {
        let done = Arc::new(AtomicBool::new(false));
        let rt = hilos::Runtime::builder().workers(2).build().unwrap();
        let d = done.clone();
        rt.spawn(move || {
            hilos::sleep(Duration::from_millis(50));
            d.store(true, Ordering::Release);
        });
        drop(rt);
        assert!(
            done.load(Ordering::Acquire),
            "drop returned before the thread finished"
        );
    });
}

#[test]
fn shutdown_timeout_reports_a_stuck_thread_then_drop_finishes() {
    within(30, || {
        let rt = hilos::Runtime::builder().workers(1).build().unwrap();
        let go = Arc::new(AtomicBool::new(false));
        let g = go.clone();
        let h = rt.spawn(move || {
            while !g.load(Ordering::Acquire) {
                hilos::park();
            }
        });
        let t = h.thread().clone();
        let rt = rt
            .shutdown_timeout(Duration::from_millis(50))
            .expect_err("a parked thread keeps the runtime alive");
        assert_eq!(rt.live_threads(), 1);
        go.store(true, Ordering::Release);
        t.unpark();
        rt.shutdown_timeout(Duration::from_secs(10)).unwrap();
        assert!(h.is_finished());
    });
}

#[test]
fn shutdown_background_lets_threads_finish() {
    within(30, || {
        let rt = hilos::Runtime::builder().workers(1).build().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        rt.spawn(move || {
            hilos::sleep(Duration::from_millis(30));
            tx.send(7).unwrap();
        });
        let start = Instant::now();
        rt.shutdown_background();
        assert!(start.elapsed() < Duration::from_millis(25), "did not wait");
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 7);
    });
}

#[test]
fn dropping_a_runtime_from_its_own_thread_does_not_deadlock() {
    within(30, || {
        let rt = hilos::Runtime::builder().workers(1).build().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let slot = Arc::new(parking_lot::Mutex::new(None::<hilos::Runtime>));
        let s = slot.clone();
        rt.spawn(move || {
            // Wait until the runtime is handed over, then drop it here, on its own worker.
            let rt = loop {
                if let Some(rt) = s.lock().take() {
                    break rt;
                }
                hilos::sleep(Duration::from_millis(1));
            };
            drop(rt);
            tx.send(()).unwrap();
        });
        *slot.lock() = Some(rt);
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
    });
}

#[test]
fn drop_of_a_stuck_runtime_says_so_instead_of_hanging_silently() {
    if common::is_child() {
        let rt = hilos::Runtime::builder().workers(1).build().unwrap();
        let h = rt.spawn(hilos::park);
        let t = h.thread().clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            t.unpark();
        });
        drop(rt);
        eprintln!("drop returned");
        return;
    }
    let out = common::run_child(
        "drop_of_a_stuck_runtime_says_so_instead_of_hanging_silently",
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("still waiting for 1 green thread(s)"),
        "stderr: {stderr}"
    );
    assert!(stderr.contains("drop returned"), "stderr: {stderr}");
}

/// An accept loop's connections are spread over the workers: a long-running green thread, woken
/// from outside once per "connection", spawns a thread for each that stays alive (parked, as a
/// connection waiting for its next request). Each child runs before the next one is spawned, so
/// the spawner's own worker could run them all: that piled most connections of the echo
/// benchmark onto one worker of two. With 1,000 children on 2 workers each worker must have run
/// at least a quarter of them (placement keeps them within a few threads of even).
#[test]
fn an_accept_loops_threads_are_spread_over_the_workers() {
    use std::sync::atomic::AtomicUsize;
    const N: usize = 1000;
    within(120, || {
        let rt = hilos::Runtime::builder().workers(2).build().unwrap();
        let tickets = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(AtomicBool::new(false));
        // Threads run per worker kernel thread (by kernel tid: green threads have thread-locals
        // of their own, so std::thread::current() no longer names the worker).
        let on_worker = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
        let acceptor = {
            let (tickets, started, release, on_worker) = (
                tickets.clone(),
                started.clone(),
                release.clone(),
                on_worker.clone(),
            );
            rt.spawn(move || {
                let mut children = Vec::with_capacity(N);
                for taken in 0..N {
                    // "accept": park until the feeder hands out the next connection.
                    while tickets.load(Ordering::Acquire) == taken {
                        hilos::thread::park();
                    }
                    let (started, release, on_worker) =
                        (started.clone(), release.clone(), on_worker.clone());
                    children.push(hilos::spawn(move || {
                        // SAFETY: a plain system call.
                        let tid = unsafe { libc::gettid() };
                        *on_worker.lock().unwrap().entry(tid).or_insert(0usize) += 1;
                        started.fetch_add(1, Ordering::Release);
                        while !release.load(Ordering::Acquire) {
                            hilos::thread::park();
                        }
                    }));
                }
                children
            })
        };
        // The feeder: one connection at a time, the next once the last one's thread has run.
        for k in 0..N {
            tickets.store(k + 1, Ordering::Release);
            acceptor.thread().unpark();
            while started.load(Ordering::Acquire) == k {
                std::thread::yield_now();
            }
        }
        let children = acceptor.join().unwrap();
        release.store(true, Ordering::Release);
        for c in children {
            c.thread().unpark();
            c.join().unwrap();
        }
        let counts: Vec<usize> = on_worker.lock().unwrap().values().copied().collect();
        assert_eq!(
            counts.len(),
            2,
            "threads ran on {} kernel threads",
            counts.len()
        );
        assert_eq!(counts[0] + counts[1], N, "{counts:?}");
        eprintln!("threads run per worker: {counts:?}");
        assert!(
            counts.iter().all(|&c| c >= N / 4),
            "threads run per worker: {counts:?}"
        );
    });
}

/// `let h = spawn(f); work(); h.join()` runs `f` and `work` at the same time on a runtime with two
/// workers, even when the spawner never switches away and every other worker is asleep: the
/// spawner here spins (no switch) until the child has started, which it can only do on the other
/// worker. The monitor must wake that worker; without it the spinner waits forever.
#[test]
fn a_child_runs_beside_a_spawner_that_never_switches() {
    within(60, || {
        let rt = hilos::Runtime::builder().workers(2).build().unwrap();
        rt.block_on(|| {
            for round in 0..3 {
                // Let every worker fall asleep (and the monitor park) first.
                hilos::sleep(Duration::from_millis(60));
                let started = Arc::new(AtomicBool::new(false));
                let s = started.clone();
                let h = hilos::spawn(move || s.store(true, Ordering::SeqCst));
                let t = Instant::now();
                while !started.load(Ordering::SeqCst) {
                    assert!(
                        t.elapsed() < Duration::from_secs(10),
                        "round {round}: the child never ran while its spawner kept its worker busy"
                    );
                    std::hint::spin_loop();
                }
                h.join().unwrap();
            }
        });
    });
}

/// A spawn that fails for lack of address space (`ulimit -v`) leaves the process enough to go
/// on, as std's does (it leaves 64 MiB): the error is `OutOfMemory`, and then a 32 MiB buffer can
/// be allocated and a backtrace captured and printed, and a kernel thread started. hilos used to
/// map stacks until 64 KiB were left, and the next allocation aborted the process.
#[test]
fn a_spawn_that_fails_for_address_space_leaves_the_process_able_to_run() {
    const NAME: &str = "a_spawn_that_fails_for_address_space_leaves_the_process_able_to_run";
    if common::is_child() {
        let vm: usize = std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmSize:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        let lim = libc::rlimit {
            rlim_cur: ((vm << 10) + (384 << 20)) as libc::rlim_t,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: lowers this (child) process's address-space soft limit.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) }, 0);
        let rt = hilos::Runtime::builder().workers(1).build().unwrap();
        rt.block_on(|| {
            let stop = Arc::new(AtomicBool::new(false));
            // Releases the parked threads however this closure ends (a failed check panics).
            struct Release(Arc<AtomicBool>);
            impl Drop for Release {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::Relaxed);
                }
            }
            let _release = Release(stop.clone());
            let mut threads = Vec::new();
            let err = loop {
                let s = stop.clone();
                match hilos::thread::Builder::new().spawn(move || {
                    while !s.load(Ordering::Relaxed) {
                        hilos::sleep(Duration::from_millis(1));
                    }
                }) {
                    Ok(h) => threads.push(h),
                    Err(e) => break e,
                }
                assert!(threads.len() < 100_000, "never ran out of address space");
            };
            assert_eq!(err.kind(), std::io::ErrorKind::OutOfMemory, "{err}");
            let mut big = vec![1u8; 32 << 20];
            big[12345] = 2;
            let bt = std::backtrace::Backtrace::force_capture().to_string();
            std::thread::Builder::new()
                .stack_size(1 << 20)
                .spawn(|| ())
                .expect("a kernel thread after the failed spawn")
                .join()
                .unwrap();
            println!(
                "after {} threads: {err}; then {} bytes and a backtrace of {} lines",
                threads.len(),
                big.len(),
                bt.lines().count()
            );
            stop.store(true, Ordering::Relaxed);
            for t in threads {
                t.join().unwrap();
            }
            println!("survived");
        });
        return;
    }
    expect_child(NAME, "survived");
}

/// In a child forked from a process running hilos, hilos calls fail with a message saying why
/// (its workers were the parent's threads) instead of hanging: building a runtime returns the
/// error, spawning and `block_on` panic with it, as does a green thread that parks in the child
/// of a fork it made itself. Each child reports through its exit status.
#[test]
fn hilos_calls_in_a_forked_child_fail_with_a_message() {
    const NAME: &str = "hilos_calls_in_a_forked_child_fail_with_a_message";
    if in_parent_ran_child(NAME, "children ok") {
        return;
    }
    /// Forks; the child runs `f` and exits with its result (0 for right), the parent returns the
    /// child's exit status.
    fn in_fork(f: impl FnOnce() -> i32) -> i32 {
        // SAFETY: the child only runs `f` (allocation and panics are fine after fork with glibc,
        // which resets malloc's locks) and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(9);
            // SAFETY: ends the child without running the parent's exit handlers.
            unsafe { libc::_exit(code) };
        }
        // A child that hangs (hilos without the fork check) is killed after 10 s: 101.
        let mut status = 0;
        for _ in 0..1000 {
            // SAFETY: polls our own child.
            match unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } {
                0 => std::thread::sleep(Duration::from_millis(10)),
                r => {
                    assert_eq!(r, pid);
                    return if libc::WIFEXITED(status) {
                        libc::WEXITSTATUS(status)
                    } else {
                        100
                    };
                }
            }
        }
        // SAFETY: kills and reaps our own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, &mut status, 0);
        }
        101
    }
    fn says_fork(payload: Box<dyn std::any::Any + Send>) -> bool {
        let msg = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        msg.contains("forked from a process running hilos")
    }
    let rt = hilos::Runtime::builder().workers(1).build().unwrap();
    assert_eq!(rt.block_on(|| hilos::spawn(|| 7).join().unwrap()), 7);
    let build = in_fork(|| match hilos::Runtime::builder().workers(1).build() {
        Err(e)
            if e.to_string()
                .contains("forked from a process running hilos") =>
        {
            0
        }
        _ => 1,
    });
    let spawn = in_fork(|| {
        let r = std::panic::catch_unwind(|| hilos::spawn(|| 1).join());
        i32::from(!r.is_err_and(says_fork))
    });
    let block_on = in_fork(|| {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(|| 1)));
        i32::from(!r.is_err_and(says_fork))
    });
    // Forked from a green thread: the child goes on on that green thread's stack.
    let green = rt.block_on(|| {
        in_fork(|| {
            let r = std::panic::catch_unwind(|| hilos::sleep(Duration::from_millis(1)));
            i32::from(!r.is_err_and(says_fork))
        })
    });
    assert_eq!((build, spawn, block_on, green), (0, 0, 0, 0));
    // The parent goes on as before.
    assert_eq!(rt.block_on(|| hilos::spawn(|| 8).join().unwrap()), 8);
    println!("children ok");
}

/// `Runtime::build` with the descriptor table full says which limit and how to raise it, not
/// just "Too many open files".
#[test]
fn build_with_descriptors_exhausted_names_the_limit() {
    const NAME: &str = "build_with_descriptors_exhausted_names_the_limit";
    if in_parent_ran_child(NAME, "1 passed") {
        return;
    }
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: reads, then lowers this (child) process's descriptor soft limit.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = 256;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    let mut files = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        files.push(f);
    }
    let err = hilos::Runtime::builder().workers(2).build().unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("hilos") && msg.contains("ulimit -n") && msg.contains("256"),
        "{msg}"
    );
    drop(files);
    let rt = hilos::Runtime::builder().workers(2).build().unwrap();
    assert_eq!(rt.block_on(|| 5), 5);
}

/// Runs the test `name` again in a child process and checks that it passed and printed `marker`.
/// In the test's own process: runs it again as a child process, expects `marker` from it (as
/// [`expect_child`]) and returns true. In that child: false, so the test's body runs.
fn in_parent_ran_child(name: &str, marker: &str) -> bool {
    if common::is_child() {
        return false;
    }
    expect_child(name, marker);
    true
}

fn expect_child(name: &str, marker: &str) {
    let out = common::run_child(name, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(marker),
        "{:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Fresh threads run newest first, but not forever: a spawner that keeps spawning and yielding
/// cannot starve the first thread it spawned. One worker (no thief to rescue it); the first child
/// must have run before the spawner has yielded 2,000 times (the worker takes its oldest fresh
/// thread first at least every 976 switches; each round here is 2 or 3 switches). The spawner
/// spawns two threads per round, so the fresh deque keeps growing under the first child; taking
/// the newest fresh thread always would never run it.
#[test]
fn a_continuous_spawner_cannot_starve_its_first_child() {
    within(60, || {
        let rt = hilos::Runtime::builder().workers(1).build().unwrap();
        let rounds = rt.block_on(|| {
            let first_ran = Arc::new(AtomicBool::new(false));
            let f = first_ran.clone();
            let mut handles = vec![hilos::spawn(move || f.store(true, Ordering::Release))];
            let mut rounds = 0usize;
            while !first_ran.load(Ordering::Acquire) && rounds < 100_000 {
                handles.push(hilos::spawn(|| ()));
                handles.push(hilos::spawn(|| ()));
                hilos::yield_now();
                rounds += 1;
            }
            for h in handles {
                h.join().unwrap();
            }
            rounds
        });
        eprintln!("the first child ran after {rounds} rounds");
        assert!(
            rounds < 2000,
            "the first child waited {rounds} rounds of its spawner"
        );
    });
}

/// A fan-out tree (skynet: each node spawns 10 children, then sums what they send over a channel)
/// is walked depth-first: the threads alive at once stay within a few times depth x fan-out
/// (5 x 10 here; the fairness tick's oldest-first picks start a few subtrees beside the current
/// one), where a breadth-first walk has all 11,111 alive. One worker, so no thief reorders
/// anything.
#[test]
fn a_fan_out_tree_is_walked_depth_first() {
    use std::sync::atomic::AtomicUsize;
    struct Live {
        now: AtomicUsize,
        max: AtomicUsize,
    }
    fn node(live: Arc<Live>, out: hilos::sync::mpsc::Sender<u64>, num: u64, size: u64) {
        if size == 1 {
            let _ = out.send(num);
        } else {
            let (tx, rx) = hilos::sync::mpsc::channel();
            for i in 0..10 {
                let (tx, l) = (tx.clone(), live.clone());
                let n = live.now.fetch_add(1, Ordering::Relaxed) + 1;
                live.max.fetch_max(n, Ordering::Relaxed);
                hilos::spawn(move || node(l, tx, num + i * (size / 10), size / 10));
            }
            drop(tx);
            let _ = out.send(rx.iter().take(10).sum());
        }
        live.now.fetch_sub(1, Ordering::Relaxed);
    }
    within(60, || {
        let rt = hilos::Runtime::builder().workers(1).build().unwrap();
        let live = Arc::new(Live {
            now: AtomicUsize::new(1),
            max: AtomicUsize::new(1),
        });
        let l = live.clone();
        let sum = rt.block_on(move || {
            let (tx, rx) = hilos::sync::mpsc::channel();
            hilos::spawn(move || node(l, tx, 0, 10_000));
            rx.recv().unwrap()
        });
        assert_eq!(sum, 10_000 * 9_999 / 2);
        let max = live.max.load(Ordering::Relaxed);
        eprintln!("at most {max} threads of the tree alive at once");
        assert!(max <= 1000, "{max} threads of the tree alive at once");
    });
}

/// A warmed-up worker runs its threads on stacks its exited threads left hot: after one round of
/// a spawn-and-join loop, a spawn burst (spawn 200 that all meet at a barrier, so that all 200
/// run at once, then join each) and a fan-out tree (skynet, 1,000 leaves), further rounds take no
/// stack whose memory is untouched (no freshly carved slot, no cold pooled stack), so they touch
/// no new stack pages. (A thread takes its stack at its first run, so the barrier is what makes
/// the burst hold 200 stacks at once, every round: threads that return at once run one after
/// another on one stack, and threads that yield once overlap by a number that varies with the
/// worker's fairness ticks from round to round.) Counted by the stack pool, in a child process
/// so that no other test's threads take stacks meanwhile.
#[test]
fn spawning_on_a_warmed_up_worker_touches_no_new_stack_pages() {
    const NAME: &str = "spawning_on_a_warmed_up_worker_touches_no_new_stack_pages";
    if in_parent_ran_child(NAME, "no new stack pages") {
        return;
    }
    fn tree(out: hilos::sync::mpsc::Sender<u64>, num: u64, size: u64) {
        if size == 1 {
            let _ = out.send(num);
            return;
        }
        let (tx, rx) = hilos::sync::mpsc::channel();
        for i in 0..10 {
            let tx = tx.clone();
            hilos::spawn(move || tree(tx, num + i * (size / 10), size / 10));
        }
        drop(tx);
        let _ = out.send(rx.iter().take(10).sum());
    }
    fn round() {
        for i in 0..1000u64 {
            assert_eq!(hilos::spawn(move || i).join().unwrap(), i);
        }
        let all = Arc::new(hilos::sync::Barrier::new(201));
        let hs: Vec<_> = (0..200u64)
            .map(|i| {
                let all = all.clone();
                hilos::spawn(move || {
                    all.wait();
                    i
                })
            })
            .collect();
        all.wait();
        assert_eq!(
            hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>(),
            19_900
        );
        let (tx, rx) = hilos::sync::mpsc::channel();
        hilos::spawn(move || tree(tx, 0, 1000));
        assert_eq!(rx.recv().unwrap(), 499_500);
    }
    let rt = hilos::Runtime::builder().workers(1).build().unwrap();
    rt.block_on(|| {
        round();
        let warm = hilos::__private::untouched_stacks_taken();
        assert!(
            warm > 0,
            "the warm-up took no fresh stack: the counter counts nothing"
        );
        for _ in 0..5 {
            round();
        }
        let after = hilos::__private::untouched_stacks_taken();
        assert_eq!(after, warm, "untouched stacks taken after the warm-up");
    });
    println!("no new stack pages");
}

/// A thread takes its stack at its first run, not at spawn (`scheduler`, "Spawn bursts"): a
/// burst of 5,000 threads spawned on one worker before any of them runs, of the default size and
/// of a size of their own, runs on the few stacks its exits leave hot. Before, each unstarted
/// thread held a stack, and the pool handed out 5,000 untouched ones. Counted by the stack pool,
/// in a child process so that no other test's threads take stacks meanwhile.
#[test]
fn a_spawn_burst_runs_on_a_few_hot_stacks() {
    const NAME: &str = "a_spawn_burst_runs_on_a_few_hot_stacks";
    if in_parent_ran_child(NAME, "a few hot stacks") {
        return;
    }
    let rt = hilos::Runtime::builder().workers(1).build().unwrap();
    rt.block_on(|| {
        for custom in [None, Some(96 * 1024)] {
            let before = hilos::__private::untouched_stacks_taken();
            let hs: Vec<_> = (0..5000u64)
                .map(|i| {
                    let mut b = hilos::thread::Builder::new();
                    if let Some(size) = custom {
                        b = b.stack_size(size);
                    }
                    b.spawn(move || i).unwrap()
                })
                .collect();
            let sum: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
            assert_eq!(sum, 12_497_500);
            let taken = hilos::__private::untouched_stacks_taken() - before;
            assert!(taken <= 8, "{taken} untouched stacks for {custom:?}");
        }
    });
    println!("a few hot stacks");
}
