//! Echo and HTTP hello throughput, hilos (green thread per connection) against std (kernel thread
//! per connection), at 100, 1,000 and 10,000 connections over loopback.
//!
//! `cargo bench --bench net` (about 4 minutes: best of 3 runs per figure; `-- --quick` for one
//! short run each, `-- --conns 1000` for one size). The server runs in a child process; the load generator is an epoll client with two
//! kernel threads in this one. Prints one table row per (protocol, connections): requests per
//! second of each server, their ratio, and each server process's CPU time per request (user +
//! system, from `/proc`), which stays meaningful on a machine busy with other work; then the
//! "per-core" hilos server (one 1-worker runtime and accept loop per core on `SO_REUSEPORT`
//! listeners), which shows what the default server loses to connections piling up on the
//! accept loop's worker.

#[path = "../compare/src/workloads/net.rs"]
mod net;

use std::time::Duration;

use net::{Imp, Proto};

fn main() {
    net::maybe_serve();
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let sizes: Vec<usize> = match args.iter().position(|a| a == "--conns") {
        Some(i) => vec![args[i + 1].parse().expect("--conns N")],
        None => vec![100, 1_000, 10_000],
    };
    // Interference from other work on the machine only ever lowers a figure: take the best of a
    // few runs (each with a fresh server process).
    let (warmup, measure, reps) = if quick {
        (Duration::from_millis(300), Duration::from_secs(1), 1)
    } else {
        (Duration::from_millis(500), Duration::from_secs(2), 3)
    };
    println!(
        "{:<6} {:>6} {:>12} {:>12} {:>6} {:>13} {:>13} {:>13} {:>6}  failed (hilos/std/per-core)",
        "proto",
        "conns",
        "hilos req/s",
        "std req/s",
        "ratio",
        "hilos µs/req",
        "std µs/req",
        "per-core rq/s",
        "ratio"
    );
    for proto in [Proto::Echo, Proto::Http] {
        for &conns in &sizes {
            let mut rates = [0.0f64; 3];
            let mut cpu = [0.0f64; 3];
            let mut failed = [0u64; 3];
            for (k, imp) in [Imp::Hilos, Imp::Std, Imp::HilosPerCore]
                .into_iter()
                .enumerate()
            {
                cpu[k] = f64::INFINITY;
                for _ in 0..reps {
                    let server = net::spawn_server(imp, proto);
                    let r = net::load(server.addr, proto, conns, 2, warmup, measure, &|| {
                        server.cpu()
                    });
                    rates[k] = rates[k].max(r.rate());
                    cpu[k] = cpu[k].min(r.cpu_us_per_request());
                    failed[k] += r.failed;
                    drop(server);
                    // Let the closed connections' state drain before the next server.
                    std::thread::sleep(Duration::from_millis(300));
                }
            }
            println!(
                "{:<6} {:>6} {:>12.0} {:>12.0} {:>5.2}x {:>13.2} {:>13.2} {:>13.0} {:>5.2}x  {}/{}/{}",
                format!("{proto:?}").to_lowercase(),
                conns,
                rates[0],
                rates[1],
                rates[0] / rates[1],
                cpu[0],
                cpu[1],
                rates[2],
                rates[2] / rates[1],
                failed[0],
                failed[1],
                failed[2]
            );
        }
    }
}
