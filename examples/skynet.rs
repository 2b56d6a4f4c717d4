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
//! `ru_maxrss`). `benches/peers/run.sh` runs it beside the same programs in Go and tokio.

use std::time::Instant;

use hilos::sync::mpsc;

/// The subtree of `size` leaves numbered from `num` sends its sum on `out`.
fn skynet(out: mpsc::Sender<u64>, num: u64, size: u64) {
    if size == 1 {
        let _ = out.send(num);
        return;
    }
    let (tx, rx) = mpsc::channel();
    let step = size / 10;
    for i in 0..10 {
        let tx = tx.clone();
        hilos::spawn(move || skynet(tx, num + i * step, step));
    }
    drop(tx);
    let sum: u64 = rx.iter().take(10).sum();
    let _ = out.send(sum);
}

/// Spawns `n` threads, then joins each; the sum of what they return.
fn burst(n: u64) -> u64 {
    let handles: Vec<_> = (0..n).map(|i| hilos::spawn(move || i)).collect();
    handles.into_iter().map(|h| h.join().unwrap()).sum()
}

/// Peak resident memory of this process in KiB.
fn max_rss_kb() -> i64 {
    // SAFETY: `getrusage` fills the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a `rusage`.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    ru.ru_maxrss
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
    let sum = rt.block_on(move || match mode.as_str() {
        "burst" => burst(leaves),
        _ => {
            let (tx, rx) = mpsc::channel();
            hilos::spawn(move || skynet(tx, 0, leaves));
            rx.recv().unwrap()
        }
    });
    let ms = start.elapsed().as_secs_f64() * 1e3;
    assert_eq!(sum, leaves * (leaves - 1) / 2);
    let mode = std::env::args().nth(3).unwrap_or_else(|| "skynet".into());
    println!(
        "hilos {mode} leaves={leaves} workers={workers} sum={sum} ms={ms:.1} maxrss_kb={}",
        max_rss_kb()
    );
}
