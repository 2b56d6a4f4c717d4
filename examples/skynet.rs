//! skynet, the fan-out benchmark, and a spawn burst, on hilos:
//! `cargo run --release --example skynet -- [LEAVES] [WORKERS] [skynet|burst]`
//! (defaults: 1,000,000 leaves, 2 workers, skynet).
//!
//! - `skynet`: a tree of green threads with fan-out 10 and `LEAVES` leaves (1,111,111 threads for
//!   1,000,000 leaves). Each leaf sends its number to its parent over a `hilos::sync::mpsc`
//!   channel; each inner node spawns its 10 children, sums what they send and sends the sum up.
//!   The root prints the sum of 0..LEAVES.
//! - `burst`: spawns `LEAVES` green threads that each return their number, then joins each one.
//!
//! Prints one line: `hilos skynet leaves=.. workers=.. sum=.. ms=.. maxrss_kb=..`, the time from
//! the first spawn to the result and the process's peak resident memory (`getrusage`'s
//! `ru_maxrss`), and how many stacks were handed out untouched (freshly carved or
//! released, so each cost page faults). `benches/peers/run.sh` runs it beside the same programs in Go and tokio.

// The node and the peak-RSS reading are the harness workload's (`compare/src/workloads/skynet.rs`).
#[allow(dead_code)]
#[path = "../compare/src/workloads/live.rs"]
mod live;
#[allow(dead_code)]
#[path = "../compare/src/workloads/skynet.rs"]
mod skynet;

use std::time::Instant;

use hilos::sync::mpsc;

/// Spawns `n` threads, then joins each; the sum of what they return.
fn burst(n: u64) -> u64 {
    let handles: Vec<_> = (0..n).map(|i| hilos::spawn(move || i)).collect();
    handles.into_iter().map(|h| h.join().unwrap()).sum()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let leaves: u64 = args
        .next()
        .map_or(1_000_000, |a| a.parse().expect("LEAVES"));
    let workers: usize = args.next().map_or(2, |a| a.parse().expect("WORKERS"));
    let mode = args.next().unwrap_or_else(|| "skynet".into());
    assert!(
        mode == "burst"
            || leaves
                .to_string()
                .trim_start_matches('1')
                .chars()
                .all(|c| c == '0'),
        "skynet needs a power of ten of leaves"
    );
    let rt = hilos::Runtime::builder()
        .workers(workers)
        .build()
        .expect("runtime");
    let start = Instant::now();
    let m = mode.clone();
    let sum = rt.block_on(move || match m.as_str() {
        "burst" => burst(leaves),
        _ => {
            let (tx, rx) = mpsc::channel();
            hilos::spawn(move || skynet::hilos_node(tx, 0, leaves));
            rx.recv().unwrap()
        }
    });
    let ms = start.elapsed().as_secs_f64() * 1e3;
    assert_eq!(sum, leaves * (leaves - 1) / 2);
    println!(
        "hilos {mode} leaves={leaves} workers={workers} sum={sum} ms={ms:.1} maxrss_kb={} untouched_stacks={}",
        skynet::peak_rss() >> 10,
        hilos::__private::untouched_stacks_taken()
    );
}
