//! Criterion bench of skynet at 10,000 leaves (11,111 threads, fan-out 10, results summed over
//! channels), hilos on 2 workers and std on kernel threads: the workload of
//! `compare/src/workloads/skynet.rs`, which the harness runs at 1,000,000 leaves for hilos, in a
//! child process for its peak RSS.
//!
//! `cargo bench --bench skynet`

#[allow(dead_code)]
#[path = "../compare/src/workloads/live.rs"]
mod live;
#[allow(dead_code)]
#[path = "../compare/src/workloads/skynet.rs"]
mod skynet;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use live::Kind;

fn skynet_10k(c: &mut Criterion) {
    let mut g = c.benchmark_group("skynet 10,000 leaves");
    for kind in Kind::BOTH {
        g.bench_function(kind.name(), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| skynet::run(kind, 10_000, 2).elapsed)
                    .sum()
            })
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5))
}

criterion_group! {
    name = benches;
    config = config();
    targets = skynet_10k
}
criterion_main!(benches);
