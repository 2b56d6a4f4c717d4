//! What the three Rust peers share: how a figure is timed and printed, and resident memory.

use std::time::Instant;

/// Repeats of each timed loop; the median is printed.
pub const REPEATS: usize = 5;

/// Iterations of each timed loop.
pub const ITERS: u64 = 200_000;

/// Threads (tasks, coroutines) parked at once for the memory figure.
pub const PARKED: usize = 10_000;

/// Runs `f(ITERS)` REPEATS times and prints the median time per iteration, in ns, as
/// `name value`.
pub fn per_iter(name: &str, f: impl FnMut(u64)) {
    per_iter_n(name, ITERS, f)
}

/// As [`per_iter`] with `n` iterations.
pub fn per_iter_n(name: &str, n: u64, mut f: impl FnMut(u64)) {
    let mut t: Vec<f64> = (0..REPEATS)
        .map(|_| {
            let start = Instant::now();
            f(n);
            start.elapsed().as_nanos() as f64 / n as f64
        })
        .collect();
    t.sort_by(f64::total_cmp);
    println!("{name} {:.1}", t[REPEATS / 2]);
}

/// Memory in use for this process: its resident set (/proc/self/statm) plus the machine's kernel
/// stacks and page tables (/proc/meminfo), which grow with each kernel thread and mapping. Other
/// processes move the second part too: the figure is read in one quick step.
pub fn memory() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib = |key: &str| -> u64 {
        let line = meminfo.lines().find(|l| l.starts_with(key)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    pages * 4096 + (kib("KernelStack:") + kib("PageTables:")) * 1024
}

/// Prints the memory per parked thread, `(after - before) / PARKED`, as `name value` in bytes.
pub fn parked(name: &str, before: u64, after: u64) {
    println!("{name} {}", after.saturating_sub(before) / PARKED as u64);
}
