//! Memory before, during and after a spike of parked green threads:
//! `cargo run --release --example spike -- [N]` (default 1,000,000). The program reads `VmRSS`,
//! `VmPTE` (page tables) and `VmSize` (address space) from `/proc/self/status` at the start, once
//! all N threads have started and parked on a barrier, and after they have been joined.

use std::sync::Arc;

/// The value of `key` (e.g. `VmPTE`) in `/proc/self/status`, as written there ("123 kB").
fn status(key: &str) -> String {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map_or("?".into(), |v| v.trim().to_string())
}

fn report(when: &str) {
    println!(
        "{when:<16} VmRSS {:>12}  VmPTE {:>12}  VmSize {:>14}",
        status("VmRSS"),
        status("VmPTE"),
        status("VmSize")
    );
}

fn main() {
    let n: usize = match std::env::args().nth(1) {
        Some(a) => a.parse().expect("N must be a number"),
        None => 1_000_000,
    };
    report("start");
    hilos::Runtime::builder()
        .build()
        .expect("runtime")
        .block_on(move || {
            let (started, release) = (
                Arc::new(hilos::sync::Barrier::new(n + 1)),
                Arc::new(hilos::sync::Barrier::new(n + 1)),
            );
            let handles: Vec<_> = (0..n)
                .map(|_| {
                    let (started, release) = (started.clone(), release.clone());
                    hilos::spawn(move || {
                        started.wait();
                        release.wait();
                    })
                })
                .collect();
            started.wait();
            report(&format!("{n} parked"));
            release.wait();
            for h in handles {
                h.join().unwrap();
            }
        });
    report("after");
}
