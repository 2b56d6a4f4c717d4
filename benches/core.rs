//! Criterion benches of the core micro workloads: the bare context switch, a `yield_now` round
//! trip between two green threads on one worker (with std's park/unpark handoff beside it), and
//! spawn+join of an empty thread, hilos and std. The workloads are the ones the `compare` harness
//! runs (`compare/src/workloads/`).
//!
//! `cargo bench --bench core` (about a minute); criterion's HTML report lands in
//! `target/criterion/report/index.html`.

#[allow(dead_code)]
#[path = "../compare/src/workloads/mod.rs"]
mod workloads;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use workloads::micro;

fn switch(c: &mut Criterion) {
    let mut g = c.benchmark_group("switch");
    if micro::bare_switch_available() {
        g.bench_function("bare round trip", |b| {
            b.iter_custom(|iters| micro::bare_switch_roundtrips(iters).unwrap_or_default())
        });
    } else {
        eprintln!("switch/bare round trip: n/a (this build cannot time the bare switch)");
    }
    let rt = micro::one_worker_runtime();
    g.bench_function("hilos yield_now round trip", |b| {
        b.iter_custom(|iters| micro::hilos_yield_roundtrips(&rt, iters))
    });
    g.bench_function("std park/unpark round trip", |b| {
        b.iter_custom(micro::std_park_roundtrips)
    });
    g.finish();
}

fn spawn_join(c: &mut Criterion) {
    let mut g = c.benchmark_group("spawn+join");
    g.bench_function("hilos", |b| b.iter_custom(micro::hilos_spawn_join));
    g.bench_function("std", |b| b.iter_custom(micro::std_spawn_join));
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = switch, spawn_join
}
criterion_main!(benches);
