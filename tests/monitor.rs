//! The runtime's monitor thread (see `src/scheduler/monitor.rs`; it also runs the watchdog's
//! looks) parks once every worker sleeps, so an idle runtime costs no timer wake-ups. Alone in its binary: it finds the monitor by its
//! thread name among this process's threads.

mod common;
use common::within;

use std::time::Duration;

/// Context switches of the thread named `hilos-monitor` (voluntary ones: each poll is one).
fn monitor_switches() -> Option<u64> {
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
        if comm.trim() != "hilos-monitor" {
            continue;
        }
        let status = std::fs::read_to_string(dir.join("status")).ok()?;
        return status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse().ok());
    }
    None
}

#[test]
fn an_idle_runtime_parks_its_monitor() {
    within(60, || {
        let rt = hilos::Runtime::builder().workers(2).build().unwrap();
        // Some work, then nothing: every worker goes to sleep.
        rt.block_on(|| {
            let hs: Vec<_> = (0..100).map(|i| hilos::spawn(move || i * 2)).collect();
            for h in hs {
                h.join().unwrap();
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        let before = monitor_switches().expect("no thread named hilos-monitor");
        std::thread::sleep(Duration::from_millis(500));
        let after = monitor_switches().expect("the monitor thread went away");
        // Polling at its longest interval (2 ms) would be about 250 switches here.
        assert!(
            after - before <= 5,
            "the monitor of an idle runtime woke {} times in 500 ms",
            after - before
        );
        drop(rt);
        // A one-worker runtime has a monitor only for its watchdog (nothing to balance), and it
        // parks too once the worker sleeps.
        let one = hilos::Runtime::builder().workers(1).build().unwrap();
        one.block_on(|| hilos::spawn(|| 1).join().unwrap());
        std::thread::sleep(Duration::from_millis(300));
        let before = monitor_switches().expect("the watchdog's monitor thread is missing");
        std::thread::sleep(Duration::from_millis(500));
        let after = monitor_switches().expect("the monitor thread went away");
        assert!(
            after - before <= 5,
            "the monitor of an idle one-worker runtime woke {} times in 500 ms",
            after - before
        );
        drop(one);
        // Without the watchdog, a one-worker runtime has no monitor at all.
        let _one = hilos::Runtime::builder()
            .workers(1)
            .watchdog(None)
            .build()
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            monitor_switches(),
            None,
            "a one-worker runtime without the watchdog started a monitor"
        );
    });
}
