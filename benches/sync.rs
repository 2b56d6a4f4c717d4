//! Criterion benches of `hilos::sync` against std's types on kernel threads (workloads in
//! `compare/src/workloads/sync.rs`):
//! - `ping_pong`: channel round trips between two green threads on one worker and on two workers,
//!   and between two kernel threads with `std::sync::mpsc` (and `hilos::sync::mpsc`);
//! - `mutex_1M`: `T` threads, one mutex, ~100 ns critical section, 1,000,000 acquisitions in all,
//!   at T = 4, 64 and 1,000, reported as acquisitions per second (`thrpt`).
//!
//! `cargo bench --bench sync` (a few minutes; `-- ping_pong` or `-- mutex` for one group).

#[allow(dead_code)]
#[path = "../compare/src/workloads/sync.rs"]
mod workloads;

use std::time::Duration;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};

fn ping_pong(c: &mut Criterion) {
    let mut g = c.benchmark_group("ping_pong");
    let rt1 = workloads::runtime(1);
    let rt2 = workloads::runtime(2);
    g.bench_function("hilos green, same worker", |b| {
        b.iter_custom(|iters| workloads::green_ping_pong(&rt1, iters, false))
    });
    g.bench_function("hilos green, two workers", |b| {
        b.iter_custom(|iters| workloads::green_ping_pong(&rt2, iters, true))
    });
    g.bench_function("std mpsc, kernel threads", |b| {
        b.iter_custom(workloads::std_ping_pong)
    });
    g.bench_function("hilos mpsc, kernel threads", |b| {
        b.iter_custom(workloads::hilos_kernel_ping_pong)
    });
    g.finish();
}

fn mutex(c: &mut Criterion) {
    const TOTAL: u64 = 1_000_000;
    let cs = workloads::calibrate_critical_section(Duration::from_nanos(100));
    eprintln!("mutex_1M: critical section = {cs} iterations (~100 ns)");
    let mut g = c.benchmark_group("mutex_1M");
    g.throughput(Throughput::Elements(TOTAL))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(3));
    let rt2 = workloads::runtime(2);
    for t in [4usize, 64, 1000] {
        g.bench_with_input(
            BenchmarkId::new("hilos green, 2 workers", t),
            &t,
            |b, &t| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| workloads::green_mutex_contention(&rt2, t, TOTAL, cs))
                        .sum()
                })
            },
        );
        g.bench_with_input(BenchmarkId::new("std kernel threads", t), &t, |b, &t| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| workloads::std_mutex_contention(t, TOTAL, cs))
                    .sum()
            })
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = ping_pong, mutex
}
criterion_main!(benches);
