use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
fn rss_kib(key: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines().find(|l| l.starts_with(key)).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap()
}
fn main() {
    let n: usize = std::env::args().nth(1).map(|a| a.parse().unwrap()).unwrap_or(1_000_000);
    let started = Arc::new(AtomicUsize::new(0));
    let go = Arc::new(AtomicBool::new(false));
    let _ = hilos::spawn(|| ()).join();
    let base = rss_kib("VmRSS:");
    let base_pte = rss_kib("VmPTE:");
    let t = std::time::Instant::now();
    let hs: Vec<_> = (0..n).map(|_| {
        let s = started.clone(); let g = go.clone();
        hilos::spawn(move || { s.fetch_add(1, Ordering::Relaxed); while !g.load(Ordering::Acquire) { hilos::park(); } })
    }).collect();
    while started.load(Ordering::Relaxed) < n { std::thread::sleep(std::time::Duration::from_millis(5)); }
    let spawn_t = t.elapsed();
    let rss = rss_kib("VmRSS:") - base;
    let pte = rss_kib("VmPTE:") - base_pte;
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap().lines().count();
    println!("{n} parked: {:.0} B RSS/thread, {:.0} B PTE/thread, {maps} maps, spawn+start {:?}", rss as f64 * 1024.0 / n as f64, pte as f64*1024.0/n as f64, spawn_t);
    go.store(true, Ordering::Release);
    for h in &hs { h.thread().unpark(); }
    for h in hs { h.join().unwrap(); }
    println!("joined all in {:?}", t.elapsed());
}
