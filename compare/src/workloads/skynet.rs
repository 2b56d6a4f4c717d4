//! skynet, the fan-out benchmark: a tree of threads with fan-out 10 (1,111,111 threads for
//! 1,000,000 leaves), each leaf sending its number to its parent over a channel and each inner
//! node summing what its 10 children send. hilos runs it with `hilos::sync::mpsc` on green threads
//! (1,000,000 leaves in the harness), std with `std::sync::mpsc` on kernel threads (10,000
//! leaves: the kernel's thread limit stops it before 100,000).
//!
//! Peak resident memory is per process, so the harness measures it in a child process: the
//! child calls [`probe`] and prints its [`SkynetOutcome::encode`] line, the parent reads it back
//! with [`SkynetOutcome::decode`] (as the live-threads probe does, `live.rs`). [`run`] measures
//! in the calling process (for the criterion bench and the tiny harness test: its peak RSS is
//! then the process's so far).

use std::time::{Duration, Instant};

use super::live::Kind;

/// What one skynet run found.
#[derive(Debug, Clone, PartialEq)]
pub struct SkynetOutcome {
    pub kind: Kind,
    pub leaves: u64,
    /// From the first spawn until the root had the sum.
    pub elapsed: Duration,
    /// The process's peak resident memory when the run ended (`getrusage`'s `ru_maxrss`), bytes.
    pub peak_rss: u64,
}

const TAG: &str = "SKYNET";

impl SkynetOutcome {
    /// One line for a child process's stdout.
    pub fn encode(&self) -> String {
        format!(
            "{TAG} kind={} leaves={} ns={} peak_rss={}",
            self.kind,
            self.leaves,
            self.elapsed.as_nanos(),
            self.peak_rss
        )
    }

    /// Finds and reads the line written by [`SkynetOutcome::encode`] in `output`.
    pub fn decode(output: &str) -> Option<SkynetOutcome> {
        let line = output.lines().find_map(|l| l.strip_prefix(TAG))?;
        let field = |k: &str| {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
        };
        Some(SkynetOutcome {
            kind: Kind::parse(field("kind")?)?,
            leaves: field("leaves")?.parse().ok()?,
            elapsed: Duration::from_nanos(field("ns")?.parse().ok()?),
            peak_rss: field("peak_rss")?.parse().ok()?,
        })
    }
}

/// Leaves the harness runs per kind: hilos 1,000,000, std 10,000.
pub fn default_leaves(kind: Kind) -> u64 {
    match kind {
        Kind::Hilos => 1_000_000,
        Kind::Std => 10_000,
    }
}

/// hilos's workers in the harness's runs (the comparison: 2, as GOMAXPROCS=2).
pub const WORKERS: usize = 2;

/// The threads of a tree with `leaves` leaves (a power of ten): every level down to the leaves.
pub fn threads(leaves: u64) -> u64 {
    let (mut n, mut level) = (0, 1);
    while level <= leaves {
        n += level;
        level *= 10;
    }
    n
}

/// The child's side: one run in this (fresh) process, printed as one line.
pub fn probe(kind: Kind, leaves: u64, workers: usize) {
    println!("{}", run(kind, leaves, workers).encode());
}

/// Runs skynet with `leaves` leaves (a power of ten) on `kind`'s threads; `workers` is the hilos
/// runtime's worker count (ignored for std). Panics if the sum is wrong.
pub fn run(kind: Kind, leaves: u64, workers: usize) -> SkynetOutcome {
    let start = Instant::now();
    let sum = match kind {
        Kind::Hilos => {
            let rt = hilos::Runtime::builder()
                .workers(workers)
                .build()
                .expect("hilos runtime");
            let sum = rt.block_on(move || {
                let (tx, rx) = hilos::sync::mpsc::channel();
                hilos::spawn(move || hilos_node(tx, 0, leaves));
                rx.recv().expect("skynet root")
            });
            drop(rt);
            sum
        }
        Kind::Std => {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || std_node(tx, 0, leaves));
            rx.recv().expect("skynet root")
        }
    };
    let elapsed = start.elapsed();
    assert_eq!(sum, leaves * (leaves - 1) / 2, "skynet {kind} {leaves}");
    SkynetOutcome {
        kind,
        leaves,
        elapsed,
        peak_rss: peak_rss(),
    }
}

/// A skynet node for one kind of thread: `$name(out, num, size)` sends the sum of the `size`
/// leaves from `num` to `out`, spawning its 10 children with `$spawn` and collecting their sums
/// over a `$mpsc` channel. (A spawn that fails panics, as both kinds' `spawn` do.)
macro_rules! node {
    ($name:ident, $($mpsc:ident)::+, $spawn:path) => {
        pub fn $name(out: $($mpsc)::+::Sender<u64>, num: u64, size: u64) {
            use $($mpsc)::+ as mpsc;
            if size == 1 {
                let _ = out.send(num);
                return;
            }
            let (tx, rx) = mpsc::channel();
            let step = size / 10;
            for i in 0..10 {
                let tx = tx.clone();
                $spawn(move || $name(tx, num + i * step, step));
            }
            drop(tx);
            let _ = out.send(rx.iter().take(10).sum());
        }
    };
}

node!(hilos_node, hilos::sync::mpsc, hilos::spawn);
node!(std_node, std::sync::mpsc, std::thread::spawn);

/// This process's peak resident memory in bytes.
pub fn peak_rss() -> u64 {
    // SAFETY: `getrusage` fills the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a `rusage`.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    ru.ru_maxrss.max(0) as u64 * 1024
}
