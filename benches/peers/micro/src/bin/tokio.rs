//! tokio's side of the peer table: a current-thread runtime (one worker), tasks.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use peers_micro::{ITERS, PARKED, REPEATS, memory, parked};
use tokio::sync::{Barrier, mpsc};

/// As `peers_micro::per_iter`, for an async loop.
async fn per_iter<F: std::future::Future<Output = ()>>(name: &str, f: impl Fn(u64) -> F) {
    let mut t = Vec::new();
    for _ in 0..REPEATS {
        let start = std::time::Instant::now();
        f(ITERS).await;
        t.push(start.elapsed().as_nanos() as f64 / ITERS as f64);
    }
    t.sort_by(f64::total_cmp);
    println!("{name} {:.1}", t[REPEATS / 2]);
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        // Inside a spawned task, as hilos's loop runs inside a green thread.
        tokio::spawn(async {
            per_iter("spawn_join_ns", |n| async move {
                for _ in 0..n {
                    tokio::spawn(async {}).await.unwrap();
                }
            })
            .await;
            per_iter("yield_round_trip_ns", |n| async move {
                let other = tokio::spawn(async move {
                    for _ in 0..n {
                        tokio::task::yield_now().await;
                    }
                });
                for _ in 0..n {
                    tokio::task::yield_now().await;
                }
                other.await.unwrap();
            })
            .await;
            per_iter("ping_pong_ns", |n| async move {
                let (to, mut from_main) = mpsc::unbounded_channel::<u64>();
                let (back, mut from_echo) = mpsc::unbounded_channel::<u64>();
                let echo = tokio::spawn(async move {
                    while let Some(v) = from_main.recv().await {
                        back.send(v).unwrap();
                    }
                });
                for i in 0..n {
                    to.send(i).unwrap();
                    from_echo.recv().await.unwrap();
                }
                drop(to);
                echo.await.unwrap();
            })
            .await;
            let before = memory();
            let started = Arc::new(AtomicUsize::new(0));
            let gate = Arc::new(Barrier::new(PARKED + 1));
            let hs: Vec<_> = (0..PARKED)
                .map(|_| {
                    let (gate, started) = (gate.clone(), started.clone());
                    tokio::spawn(async move {
                        started.fetch_add(1, Ordering::SeqCst);
                        gate.wait().await;
                    })
                })
                .collect();
            while started.load(Ordering::SeqCst) < PARKED {
                tokio::task::yield_now().await;
            }
            parked("parked_bytes", before, memory());
            gate.wait().await;
            for h in hs {
                h.await.unwrap();
            }
        })
        .await
        .unwrap();
    });
}
