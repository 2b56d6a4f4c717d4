//! Runtime metrics count what happened: threads, switches, sleeps, wake-ups from other threads,
//! I/O, pinned threads, stacks and the blocking pool. (Run with `HILOS_IO=epoll` too.)

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hilos::runtime::RuntimeMetrics;
use hilos::sync::Arc;

/// Polls the runtime's metrics until `done` holds (at most 10 s).
fn metrics_until(rt: &hilos::Runtime, done: impl Fn(&RuntimeMetrics) -> bool) -> RuntimeMetrics {
    let start = Instant::now();
    loop {
        let m = rt.metrics();
        if done(&m) {
            return m;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never reached:\n{m}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn threads_switches_sleeps_and_wakeups_are_counted() {
    let rt = hilos::Runtime::builder().workers(1).build().unwrap();
    let before = rt.metrics();
    assert_eq!((before.live_threads, before.total_threads), (0, 0));
    rt.block_on(|| {
        for _ in 0..1000 {
            hilos::yield_now();
        }
    });
    for _ in 0..9 {
        rt.spawn(|| ()).join().unwrap();
    }
    let m = metrics_until(&rt, |m| {
        m.workers[0].switches >= 1000 && m.live_threads == 0
    });
    assert_eq!(m.total_threads, 10);
    assert!(m.workers[0].sleeps > 0, "{m}");
    // A thread parked on the worker, woken from this kernel thread: one remote wake-up.
    let go = Arc::new(AtomicBool::new(false));
    let g = go.clone();
    let sleeps = rt.metrics().workers[0].sleeps;
    let h = rt.spawn(move || {
        while !g.load(Ordering::Acquire) {
            hilos::park();
        }
    });
    // Once the worker has slept again with the thread pinned, the thread is parked (a worker
    // sleeps only with nothing to run), so the unpark below is a remote wake-up (under CI's
    // emulator the unpark could otherwise come before the park, and take the token instead).
    let m = metrics_until(&rt, |m| {
        m.workers[0].pinned == 1 && m.workers[0].sleeps > sleeps
    });
    let wakeups = m.workers[0].wakeups;
    go.store(true, Ordering::Release);
    h.thread().unpark();
    h.join().unwrap();
    let m = metrics_until(&rt, |m| m.workers[0].pinned == 0);
    assert!(m.workers[0].wakeups > wakeups, "{m}");
    assert!(m.stacks_mapped_bytes > 0);
}

#[test]
fn io_operations_are_counted() {
    let rt = hilos::Runtime::builder().workers(2).build().unwrap();
    let before: u64 = rt.metrics().workers.iter().map(|w| w.io_completed).sum();
    rt.block_on(|| {
        let l = hilos::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = hilos::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut b = [0u8; 4];
            s.read_exact(&mut b).unwrap();
            s.write_all(&b).unwrap();
        });
        let mut c = hilos::net::TcpStream::connect(addr).unwrap();
        c.write_all(b"ping").unwrap();
        let mut b = [0u8; 4];
        c.read_exact(&mut b).unwrap();
        server.join().unwrap();
    });
    let m = metrics_until(&rt, |m| {
        m.workers.iter().map(|w| w.io_completed).sum::<u64>() > before
    });
    let submitted: u64 = m.workers.iter().map(|w| w.io_submitted).sum();
    let completed: u64 = m.workers.iter().map(|w| w.io_completed).sum();
    assert!(submitted >= completed, "{m}");
}

#[test]
fn blocking_pool_threads_busy_are_counted() {
    let rt = hilos::Runtime::builder().workers(1).build().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let h = rt.spawn(move || hilos::unblock(move || rx.recv().unwrap()));
    let m = metrics_until(&rt, |m| m.blocking_busy >= 1);
    assert!(
        m.to_string().contains("1 busy") || m.blocking_busy > 1,
        "{m}"
    );
    tx.send(()).unwrap();
    h.join().unwrap();
}

#[test]
fn global_runtime_metrics_are_reachable() {
    hilos::spawn(|| ()).join().unwrap();
    let m = hilos::runtime::metrics();
    assert!(m.total_threads >= 1);
    assert!(!m.workers.is_empty());
}

#[test]
fn stack_memory_touched_by_parked_threads_is_counted_as_committed() {
    const N: usize = 100;
    const TOUCH: usize = 64 * 1024;
    let rt = hilos::Runtime::builder()
        .workers(2)
        .stack_size(256 * 1024)
        .build()
        .unwrap();
    let before = rt.metrics().stacks_committed_bytes;
    let stop = Arc::new(AtomicBool::new(false));
    let parked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let handles: Vec<_> = (0..N)
        .map(|_| {
            let (s, p) = (stop.clone(), parked.clone());
            rt.spawn(move || {
                // Writes every byte of 64 KiB of this thread's stack.
                let mut buf = [0u8; TOUCH];
                std::hint::black_box(&mut buf);
                p.fetch_add(1, Ordering::Release);
                while !s.load(Ordering::Acquire) {
                    hilos::park();
                }
                std::hint::black_box(&buf);
            })
        })
        .collect();
    while parked.load(Ordering::Acquire) < N {
        std::thread::sleep(Duration::from_millis(2));
    }
    let m = rt.metrics();
    assert!(
        m.stacks_committed_bytes >= before + N * TOUCH,
        "before {before}, now {}:\n{m}",
        m.stacks_committed_bytes
    );
    assert!(m.stacks_committed_bytes <= m.stacks_mapped_bytes, "{m}");
    assert!(m.to_string().contains(" MiB committed"), "{m}");
    stop.store(true, Ordering::Release);
    for h in &handles {
        h.thread().unpark();
    }
    for h in handles {
        h.join().unwrap();
    }
    // The exited threads' stacks stay warm (cached by the workers or pooled: the pool releases
    // the memory of a class's stacks only beyond 64 MiB of them), so still committed.
    let after = rt.metrics().stacks_committed_bytes;
    assert!(
        after >= before + N * TOUCH,
        "before {before}, after {after}"
    );
}
