//! skynet, the fan-out benchmark, and a spawn burst, on tokio: the peer of hilos's
//! `examples/skynet.rs`. Usage: `tokio-skynet [LEAVES] [WORKERS] [skynet|burst]`.
//! Prints: `tokio MODE leaves=.. workers=.. sum=.. ms=.. maxrss_kb=..`

use std::time::Instant;

use tokio::sync::mpsc;

/// The subtree of `size` leaves numbered from `num` sends its sum on `out`: each inner node
/// spawns its 10 children as tasks and sums what they send on its own channel.
fn skynet(
    out: mpsc::UnboundedSender<u64>,
    num: u64,
    size: u64,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        if size == 1 {
            let _ = out.send(num);
            return;
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        let step = size / 10;
        for i in 0..10 {
            tokio::spawn(skynet(tx.clone(), num + i * step, step));
        }
        drop(tx);
        let mut sum = 0;
        for _ in 0..10 {
            sum += rx.recv().await.unwrap();
        }
        let _ = out.send(sum);
    })
}

/// Spawns `n` tasks that each return their number, then awaits each handle.
async fn burst(n: u64) -> u64 {
    let handles: Vec<_> = (0..n).map(|i| tokio::spawn(async move { i })).collect();
    let mut sum = 0;
    for h in handles {
        sum += h.await.unwrap();
    }
    sum
}

/// Peak resident memory of this process in KiB: `VmHWM`, the figure `getrusage`'s `ru_maxrss`
/// reports (hilos's and Go's programs call that).
fn max_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let leaves: u64 = args.next().map_or(1_000_000, |a| a.parse().expect("LEAVES"));
    let workers: usize = args.next().map_or(2, |a| a.parse().expect("WORKERS"));
    let mode = args.next().unwrap_or_else(|| "skynet".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .build()
        .expect("runtime");
    let start = Instant::now();
    let sum = rt.block_on(async {
        // Run the work on a worker, as hilos's and Go's main code runs on theirs.
        let m = mode.clone();
        tokio::spawn(async move {
            if m == "burst" {
                burst(leaves).await
            } else {
                let (tx, mut rx) = mpsc::unbounded_channel();
                tokio::spawn(skynet(tx, 0, leaves));
                rx.recv().await.unwrap()
            }
        })
        .await
        .unwrap()
    });
    let ms = start.elapsed().as_secs_f64() * 1e3;
    assert_eq!(sum, leaves * (leaves - 1) / 2);
    println!(
        "tokio {mode} leaves={leaves} workers={workers} sum={sum} ms={ms:.1} maxrss_kb={}",
        max_rss_kb()
    );
}
