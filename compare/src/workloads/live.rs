//! The live-threads probe: spawn N threads that all stay alive (parked) at once, measure the
//! memory they cost and the time to spawn and then release and join them.
//!
//! The `compare` harness runs one probe per child process, so every figure starts from a fresh
//! address space and a thread limit hit by std cannot disturb anything else; the harness test runs
//! it in-process at tiny sizes.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Which kind of thread a workload runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// hilos green threads.
    Hilos,
    /// `std::thread` kernel threads.
    Std,
}

impl Kind {
    /// Both kinds, hilos first.
    pub const BOTH: [Kind; 2] = [Kind::Hilos, Kind::Std];

    /// `"hilos"` or `"std"`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Hilos => "hilos",
            Kind::Std => "std",
        }
    }

    /// The kind named `s`.
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "hilos" => Some(Kind::Hilos),
            "std" => Some(Kind::Std),
            _ => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What one probe found.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveOutcome {
    /// Threads asked for.
    pub n: usize,
    /// Threads that were spawned and alive at once.
    pub reached: usize,
    /// Why fewer than `n` were reached.
    pub error: Option<String>,
    /// From the first spawn until all `reached` threads were running.
    pub spawn: Duration,
    /// From the release until all were joined.
    pub join: Duration,
    /// Growth of the process's resident memory (VmRSS) with all threads alive, in bytes.
    pub rss: i64,
    /// Growth of the process's page tables (VmPTE), in bytes.
    pub page_tables: i64,
    /// Growth of the kernel stacks of the whole machine (KernelStack in /proc/meminfo), in bytes:
    /// each kernel thread has one; green threads have none.
    pub kernel_stacks: i64,
}

impl LiveOutcome {
    /// Whether all `n` threads were alive at once.
    pub fn complete(&self) -> bool {
        self.error.is_none() && self.reached == self.n
    }

    /// Memory per live thread: resident memory plus page tables plus kernel stacks.
    pub fn bytes_per_thread(&self) -> Option<f64> {
        (self.reached > 0).then(|| {
            (self.rss + self.page_tables + self.kernel_stacks) as f64 / self.reached as f64
        })
    }

    /// Spawn plus release-and-join time per thread, in nanoseconds.
    pub fn spawn_join_ns_per_thread(&self) -> Option<f64> {
        (self.reached > 0).then(|| (self.spawn + self.join).as_nanos() as f64 / self.reached as f64)
    }

    /// An outcome where nothing could be measured.
    pub fn failed(n: usize, error: String) -> LiveOutcome {
        LiveOutcome {
            n,
            reached: 0,
            error: Some(error),
            spawn: Duration::ZERO,
            join: Duration::ZERO,
            rss: 0,
            page_tables: 0,
            kernel_stacks: 0,
        }
    }

    /// One line for a child process's stdout; [`LiveOutcome::decode`] reads it back.
    pub fn encode(&self) -> String {
        let mut s = format!(
            "{TAG} n={} reached={} spawn_ns={} join_ns={} rss={} pte={} kstack={}",
            self.n,
            self.reached,
            self.spawn.as_nanos(),
            self.join.as_nanos(),
            self.rss,
            self.page_tables,
            self.kernel_stacks
        );
        if let Some(e) = &self.error {
            // Last, so it may contain spaces; one line.
            s.push_str(" error=");
            s.push_str(&e.replace('\n', " "));
        }
        s
    }

    /// Finds and reads the line written by [`LiveOutcome::encode`] in `output`.
    pub fn decode(output: &str) -> Option<LiveOutcome> {
        let line = output.lines().find_map(|l| l.strip_prefix(TAG))?;
        let (fields, error) = match line.split_once(" error=") {
            Some((f, e)) => (f, Some(e.to_string())),
            None => (line, None),
        };
        let mut out = LiveOutcome::failed(0, String::new());
        out.error = error;
        let mut seen = 0;
        for kv in fields.split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            match k {
                "n" => out.n = v.parse().ok()?,
                "reached" => out.reached = v.parse().ok()?,
                "spawn_ns" => out.spawn = Duration::from_nanos(v.parse().ok()?),
                "join_ns" => out.join = Duration::from_nanos(v.parse().ok()?),
                "rss" => out.rss = v.parse().ok()?,
                "pte" => out.page_tables = v.parse().ok()?,
                "kstack" => out.kernel_stacks = v.parse().ok()?,
                _ => continue,
            }
            seen += 1;
        }
        (seen == 7).then_some(out)
    }
}

const TAG: &str = "HILOS-LIVE";
const SPAWNED_TAG: &str = "HILOS-SPAWNED ";

/// How often a probe tells how far it got, in spawns.
pub const SPAWNED_EVERY: usize = 128;

/// The line a child prints every [`SPAWNED_EVERY`] spawns, so its parent knows how far it got if
/// it dies before the end (std aborts the process when a new thread cannot set up its signal
/// stack).
pub fn spawned_line(k: usize) -> String {
    format!("{SPAWNED_TAG}{k}")
}

/// The last count written by [`spawned_line`] in `output`.
pub fn last_spawned(output: &str) -> Option<usize> {
    output
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(SPAWNED_TAG)?.trim().parse().ok())
}

/// A field of a `/proc` file in kB ("VmRSS:   1234 kB"), in bytes.
fn proc_kb(path: &str, field: &str) -> Option<i64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        let kb: i64 = rest.split_whitespace().next()?.parse().ok()?;
        Some(kb * 1024)
    })
}

/// Memory figures read before and after spawning.
#[derive(Debug, Clone, Copy)]
struct Mem {
    rss: i64,
    pte: i64,
    kstack: i64,
}

impl Mem {
    fn read() -> Mem {
        Mem {
            rss: proc_kb("/proc/self/status", "VmRSS").unwrap_or(0),
            pte: proc_kb("/proc/self/status", "VmPTE").unwrap_or(0),
            kstack: proc_kb("/proc/meminfo", "KernelStack").unwrap_or(0),
        }
    }
}

/// What the spawned threads share: how many are running, and whether to finish.
#[derive(Default)]
struct Gate {
    alive: AtomicUsize,
    release: AtomicBool,
}

/// How long to wait for spawned threads to start running before giving up.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The probe, over how a kind spawns (`spawn` gets the gate; the thread must count itself in
/// `alive` and park until `release`), unparks and joins.
fn probe<H>(
    n: usize,
    tick: fn(usize),
    pause: fn(Duration),
    warm: impl Fn(),
    spawn: impl Fn(Arc<Gate>) -> io::Result<H>,
    unpark: impl Fn(&H),
    join: impl Fn(H),
) -> LiveOutcome {
    warm();
    let gate = Arc::new(Gate::default());
    let mut handles = Vec::with_capacity(n);
    let mut error = None;
    let before = Mem::read();
    let t0 = Instant::now();
    for _ in 0..n {
        match spawn(gate.clone()) {
            Ok(h) => {
                handles.push(h);
                if handles.len().is_multiple_of(SPAWNED_EVERY) {
                    tick(handles.len());
                }
            }
            Err(e) => {
                error = Some(format!("spawn {} failed: {e}", handles.len() + 1));
                break;
            }
        }
    }
    let reached = handles.len();
    while gate.alive.load(Ordering::Acquire) < reached {
        if t0.elapsed() > START_TIMEOUT {
            let alive = gate.alive.load(Ordering::Acquire);
            error.get_or_insert(format!(
                "only {alive} of {reached} spawned threads started within {}s",
                START_TIMEOUT.as_secs()
            ));
            break;
        }
        pause(Duration::from_micros(200));
    }
    let spawn_time = t0.elapsed();
    let after = Mem::read();
    let t1 = Instant::now();
    gate.release.store(true, Ordering::Release);
    for h in &handles {
        unpark(h);
    }
    for h in handles {
        join(h);
    }
    LiveOutcome {
        n,
        reached,
        error,
        spawn: spawn_time,
        join: t1.elapsed(),
        rss: after.rss - before.rss,
        page_tables: after.pte - before.pte,
        kernel_stacks: after.kstack - before.kstack,
    }
}

/// Spawns `n` threads of `kind` (default stack size) that all park until released, and measures
/// them (see [`LiveOutcome`]). Stops at the first spawn that fails and reports its error.
///
/// The hilos probe runs on a green thread of the global runtime (one worker per core), as code
/// using hilos spawns; the std probe runs on the calling kernel thread.
pub fn run(kind: Kind, n: usize) -> LiveOutcome {
    run_ticking(kind, n, |_| {})
}

/// As [`run`], calling `tick` with the number of threads spawned so far every
/// [`SPAWNED_EVERY`] spawns.
pub fn run_ticking(kind: Kind, n: usize, tick: fn(usize)) -> LiveOutcome {
    match kind {
        Kind::Hilos => hilos::spawn(move || {
            probe(
                n,
                tick,
                hilos::sleep,
                || hilos::spawn(|| ()).join().unwrap(),
                |gate| {
                    hilos::Builder::new().spawn(move || {
                        gate.alive.fetch_add(1, Ordering::Release);
                        while !gate.release.load(Ordering::Acquire) {
                            hilos::park();
                        }
                    })
                },
                |h| h.thread().unpark(),
                |h| h.join().unwrap(),
            )
        })
        .join()
        .unwrap(),
        Kind::Std => probe(
            n,
            tick,
            std::thread::sleep,
            || std::thread::spawn(|| ()).join().unwrap(),
            |gate| {
                std::thread::Builder::new().spawn(move || {
                    gate.alive.fetch_add(1, Ordering::Release);
                    while !gate.release.load(Ordering::Acquire) {
                        std::thread::park();
                    }
                })
            },
            |h| h.thread().unpark(),
            |h| h.join().unwrap(),
        ),
    }
}

/// Memory the machine could still give, in bytes (MemAvailable), if known.
pub fn mem_available() -> Option<i64> {
    proc_kb("/proc/meminfo", "MemAvailable")
}

/// The line of a dead child's stderr that says why: the message of its first panic, a fatal
/// runtime error, or else its last line that is not a backtrace or a note.
pub fn why_child_died(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr.lines().map(str::trim).collect();
    if let Some(i) = lines.iter().position(|l| l.contains("panicked at"))
        && let Some(msg) = lines.get(i + 1).filter(|m| !m.is_empty())
    {
        return Some(msg.to_string());
    }
    let fatal = ["fatal runtime error", "memory allocation of"];
    if let Some(l) = lines.iter().find(|l| fatal.iter().any(|f| l.contains(f))) {
        return Some(l.to_string());
    }
    lines
        .iter()
        .rev()
        .find(|l| {
            !l.is_empty()
                && !l.starts_with("note:")
                && !l.starts_with("stack backtrace")
                && !l.starts_with("at ")
                && !l.starts_with(|c: char| c.is_ascii_digit())
        })
        .map(|l| l.to_string())
}
