//! The workloads that compare hilos with `std::thread`, shared by the `compare` harness (tables,
//! report, plots), the criterion benches (`benches/core.rs`) and the harness test
//! (`tests/harness.rs`), each of which includes this module by path.
//!
//! A workload is one function from a [`Ctx`] (sizes, how to run a live-threads probe, where
//! progress goes) to rows: each [`Row`] holds a hilos figure and a std figure measured in the same
//! process run, and the ratio is computed from them.

pub mod blocked;
pub mod live;
pub mod measure;
pub mod micro;
pub mod net;
pub mod sync;

use std::cell::Cell;
use std::fmt::Write as _;
use std::time::Duration;

use live::{Kind, LiveOutcome};
use measure::{Budget, Stats};

/// How big a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// For tests: milliseconds per figure, hundreds of threads.
    Tiny,
    /// `--quick`: the whole run in well under 30 s on 2 cores.
    Quick,
    /// The default: the whole run in under 3 minutes on 2 cores.
    Full,
}

/// The sizes a [`Scale`] implies.
#[derive(Debug, Clone)]
pub struct Sizes {
    /// Timing budget of one micro figure.
    pub budget: Budget,
    /// Budget for a slow operation (spawning kernel threads): fewer, shorter repetitions.
    pub slow_budget: Budget,
    /// Thread counts tried by the live-threads workload, per kind.
    pub live_steps_hilos: Vec<usize>,
    /// Thread counts tried for std (it stops at its first failure anyway).
    pub live_steps_std: Vec<usize>,
    /// Thread counts of the mutex-contention workload.
    pub mutex_threads: Vec<usize>,
    /// Acquisitions in all, per mutex-contention run.
    pub mutex_total: u64,
    /// Timed mutex-contention runs per figure (after one untimed warm-up run).
    pub mutex_reps: usize,
    /// Connection counts of the echo workload.
    pub echo_conns: Vec<usize>,
    /// Warm-up before each echo measurement (connections open, load running).
    pub echo_warmup: Duration,
    /// Length of each echo measurement.
    pub echo_measure: Duration,
    /// Blocked-thread counts of the fairness workload.
    pub fairness_blocked: Vec<usize>,
    /// About how long the fairness workload's computation takes alone.
    pub fairness_work: Duration,
    /// Timed runs of the computation per figure.
    pub fairness_reps: usize,
}

impl Sizes {
    /// The sizes of a scale.
    pub fn of(scale: Scale) -> Sizes {
        let ms = Duration::from_millis;
        let budget = |warmup, rep, reps| Budget {
            warmup: ms(warmup),
            rep_target: ms(rep),
            reps,
            max_iters: 1 << 26,
        };
        match scale {
            Scale::Tiny => Sizes {
                budget: budget(1, 2, 3),
                slow_budget: budget(1, 2, 3),
                live_steps_hilos: vec![100, 300],
                live_steps_std: vec![100, 300],
                mutex_threads: vec![4, 16],
                mutex_total: 2_000,
                mutex_reps: 1,
                echo_conns: vec![5, 10],
                echo_warmup: ms(20),
                echo_measure: ms(50),
                fairness_blocked: vec![0, 10],
                fairness_work: ms(1),
                fairness_reps: 3,
            },
            Scale::Quick => Sizes {
                budget: budget(50, 40, 5),
                slow_budget: budget(50, 60, 5),
                live_steps_hilos: vec![1_000, 10_000, 100_000],
                live_steps_std: vec![1_000, 10_000],
                mutex_threads: vec![4, 64],
                mutex_total: 100_000,
                mutex_reps: 3,
                echo_conns: vec![100, 1_000],
                echo_warmup: ms(200),
                echo_measure: ms(500),
                fairness_blocked: vec![0, 100],
                fairness_work: ms(5),
                fairness_reps: 7,
            },
            Scale::Full => Sizes {
                budget: budget(200, 150, 11),
                slow_budget: budget(200, 200, 9),
                live_steps_hilos: vec![1_000, 10_000, 100_000, 1_000_000],
                live_steps_std: vec![1_000, 10_000, 100_000, 1_000_000],
                mutex_threads: vec![4, 64, 1_000],
                mutex_total: 1_000_000,
                mutex_reps: 5,
                echo_conns: vec![100, 1_000, 10_000],
                echo_warmup: ms(500),
                echo_measure: ms(2_000),
                fairness_blocked: vec![0, 1_000],
                fairness_work: ms(5),
                fairness_reps: 11,
            },
        }
    }
}

/// What a workload runs with.
pub struct Ctx<'a> {
    /// The scale of the run.
    pub scale: Scale,
    /// Sizes for that scale.
    pub sizes: Sizes,
    /// Runs one live-threads probe (in a child process for the harness, in-process for tests).
    pub probe: &'a dyn Fn(Kind, usize) -> LiveOutcome,
    /// Receives one line per step, for the user to follow.
    pub progress: &'a dyn Fn(&str),
    /// Switch costs measured by the `switch` workload, in ns per switch: (green, kernel). The
    /// contention model uses them.
    pub switch_costs: Cell<Option<(f64, f64)>>,
    /// Whether the echo servers run in a child process ([`net::spawn_server`]: the binary's
    /// `main` must call [`net::maybe_serve`] first) rather than in this one.
    pub net_in_child: bool,
}

impl<'a> Ctx<'a> {
    /// A context for `scale`.
    pub fn new(
        scale: Scale,
        probe: &'a dyn Fn(Kind, usize) -> LiveOutcome,
        progress: &'a dyn Fn(&str),
    ) -> Ctx<'a> {
        Ctx {
            scale,
            sizes: Sizes::of(scale),
            probe,
            progress,
            switch_costs: Cell::new(None),
            net_in_child: false,
        }
    }

    fn say(&self, msg: impl AsRef<str>) {
        (self.progress)(msg.as_ref())
    }
}

/// What a figure means, and so which way is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Nanoseconds per operation (lower is better).
    NsPerOp,
    /// Bytes per thread (lower is better).
    BytesPerThread,
    /// A count of threads (higher is better).
    Threads,
    /// Operations per second (higher is better).
    PerSec,
}

impl Metric {
    /// Short unit name, for JSON and headers.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::NsPerOp => "ns/op",
            Metric::BytesPerThread => "bytes/thread",
            Metric::Threads => "threads",
            Metric::PerSec => "ops/s",
        }
    }

    /// Whether a higher figure is better.
    pub fn higher_is_better(self) -> bool {
        matches!(self, Metric::Threads | Metric::PerSec)
    }

    /// A figure for people: `1.23 µs`, `8.0 KiB`, `32,751`, `1.2 M/s`.
    pub fn format(self, v: f64) -> String {
        match self {
            Metric::NsPerOp => format_ns(v),
            Metric::BytesPerThread => format_bytes(v),
            Metric::Threads => group_thousands(v.round() as u64),
            Metric::PerSec => format_rate(v),
        }
    }
}

/// `v` nanoseconds for people.
pub fn format_ns(v: f64) -> String {
    if v < 1_000.0 {
        format!("{v:.1} ns")
    } else if v < 1_000_000.0 {
        format!("{:.2} µs", v / 1e3)
    } else if v < 1e9 {
        format!("{:.2} ms", v / 1e6)
    } else {
        format!("{:.2} s", v / 1e9)
    }
}

/// `v` bytes for people.
pub fn format_bytes(v: f64) -> String {
    let a = v.abs();
    if a < 1024.0 {
        format!("{v:.0} B")
    } else if a < 1024.0 * 1024.0 {
        format!("{:.1} KiB", v / 1024.0)
    } else if a < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} MiB", v / (1024.0 * 1024.0))
    } else {
        format!("{:.2} GiB", v / (1024.0 * 1024.0 * 1024.0))
    }
}

/// `v` per second for people.
pub fn format_rate(v: f64) -> String {
    if v < 1e3 {
        format!("{v:.1}/s")
    } else if v < 1e6 {
        format!("{:.1} k/s", v / 1e3)
    } else {
        format!("{:.2} M/s", v / 1e6)
    }
}

/// A ratio for people: `0.85×`, `4.1×`, `37×`, `3,287×`.
pub fn format_ratio(x: f64) -> String {
    if x < 1.0 {
        format!("{x:.2}×")
    } else if x < 10.0 {
        format!("{x:.1}×")
    } else {
        format!("{}×", group_thousands(x.round() as u64))
    }
}

/// `1234567` as `1,234,567`.
pub fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One side of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A measured figure, with the range over repetitions when there were several.
    Measured {
        /// The figure (the median for timings).
        v: f64,
        /// Fastest and slowest repetition, per operation.
        range: Option<(f64, f64)>,
    },
    /// A lower bound: every step tried reached this much (no ratio is taken from it).
    AtLeast(f64),
    /// No figure, and why (short: it goes into a table cell).
    Missing(String),
}

impl Value {
    /// A figure without a range.
    pub fn of(v: f64) -> Value {
        Value::Measured { v, range: None }
    }

    /// The median of timing stats, with their range.
    pub fn timing(s: &Stats) -> Value {
        Value::Measured {
            v: s.median_ns,
            range: Some((s.min_ns, s.max_ns)),
        }
    }

    /// The figure, if measured exactly.
    pub fn get(&self) -> Option<f64> {
        match self {
            Value::Measured { v, .. } => Some(*v),
            Value::AtLeast(_) | Value::Missing(_) => None,
        }
    }

    /// The figure or the lower bound, if there is one.
    pub fn figure(&self) -> Option<f64> {
        match self {
            Value::Measured { v, .. } | Value::AtLeast(v) => Some(*v),
            Value::Missing(_) => None,
        }
    }

    /// The figure for people, or why there is none.
    pub fn display(&self, metric: Metric) -> String {
        match self {
            Value::Measured { v, .. } => metric.format(*v),
            Value::AtLeast(v) => format!("≥ {}", metric.format(*v)),
            Value::Missing(why) => why.clone(),
        }
    }
}

/// One line of the results table: the same case measured with hilos and with std.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The workload's name.
    pub workload: &'static str,
    /// What was measured (`"empty thread"`, `"memory/thread, N = 10,000"`).
    pub case: String,
    /// Unit and direction of both figures.
    pub metric: Metric,
    /// The x value of the row in a plot (a thread or connection count), if it belongs to one.
    pub x: Option<f64>,
    /// hilos's figure.
    pub hilos: Value,
    /// std's figure.
    pub std: Value,
    /// The seed model's prediction for hilos, beside the measured figure, where there is one.
    pub hilos_model: Option<f64>,
    /// The seed model's prediction for std.
    pub std_model: Option<f64>,
    /// Anything a reader needs to read the row right.
    pub note: String,
}

impl Row {
    /// A row with no model prediction and no note.
    pub fn new(workload: &'static str, case: impl Into<String>, metric: Metric) -> Row {
        Row {
            workload,
            case: case.into(),
            metric,
            x: None,
            hilos: Value::Missing("—".into()),
            std: Value::Missing("—".into()),
            hilos_model: None,
            std_model: None,
            note: String::new(),
        }
    }

    /// How many times better hilos is than std on this row (above 1: hilos is better), when both
    /// figures were measured.
    pub fn ratio(&self) -> Option<f64> {
        let (h, s) = (self.hilos.get()?, self.std.get()?);
        let r = if self.metric.higher_is_better() {
            h / s
        } else {
            s / h
        };
        r.is_finite().then_some(r)
    }
}

/// Why a workload gave no rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// It cannot run in this version of hilos (what it needs is not written yet).
    Unavailable(String),
    /// It ran and failed.
    Failed(String),
}

/// A workload: a name for `--only`, what it measures, and the function that measures it.
pub struct Workload {
    /// Name, as `--only` takes it.
    pub name: &'static str,
    /// One line on what it measures.
    pub about: &'static str,
    /// How it is measured, for the report.
    pub method: &'static str,
    /// Runs it.
    pub run: fn(&Ctx) -> Result<Vec<Row>, Failure>,
}

/// Every workload, in the order the harness runs them.
pub fn all() -> Vec<Workload> {
    vec![
        Workload {
            name: "spawn",
            about: "spawn + join of an empty thread",
            method: "hilos: a green thread of the global runtime (one worker per core) spawns an \
                     empty green thread and joins it; std: the main thread spawns an empty \
                     std::thread and joins it. Median time per spawn+join over repetitions.",
            run: spawn_join,
        },
        Workload {
            name: "switch",
            about: "yield_now between two green threads vs a park/unpark handoff between two kernel threads",
            method: "hilos: two green threads on a one-worker runtime take turns with yield_now; \
                     std: two kernel threads hand a turn back and forth with std::thread::park / \
                     unpark (a futex). Median time per round trip (two switches). The bare row is \
                     hilos's context switch alone (no scheduler), when the build can time it.",
            run: switch,
        },
        Workload {
            name: "channel",
            about: "channel ping-pong between two threads",
            method: "One message each way per round trip over two unbounded channels. hilos: \
                     two green threads with hilos::sync::mpsc, on a one-worker runtime (same \
                     worker) and on a two-worker runtime (one thread per worker); std: two \
                     kernel threads with std::sync::mpsc. Median time per round trip over \
                     repetitions; spawning is not timed.",
            run: channel,
        },
        Workload {
            name: "mutex",
            about: "mutex contention at T = 4, 64, 1,000 with the seed model's 1/(L + c) prediction",
            method: "T threads share one mutex and take it 1,000,000 times in all (100,000 with \
                     --quick, which stops at T = 64), each time for a critical section of about \
                     100 ns (calibrated at start; L is its measured length). hilos: green \
                     threads with hilos::sync::Mutex on a runtime with one worker per core; std: \
                     kernel threads (64 KiB stacks) with std::sync::Mutex. Only the lock traffic \
                     is timed (barriers at start and end); median acquisitions per second over \
                     repetitions after one warm-up run. Beside each figure, the seed model's \
                     prediction 1/(L + c), with c the switch cost measured by the switch \
                     workload (c_u green, c_k kernel: half a round trip).",
            run: mutex,
        },
        Workload {
            name: "threads",
            about: "threads alive at once, memory per thread and spawn cost as N grows",
            method: "One child process per (kind, N): spawn N threads (default stack sizes) that \
                     each count themselves alive and park until released; once all N run, read \
                     VmRSS and VmPTE (/proc/self/status) and KernelStack (/proc/meminfo) and \
                     subtract the figures read before spawning; then release, unpark and join \
                     all. Memory/thread = (RSS + page tables + kernel stacks) / N. Spawn+join per \
                     thread = (time until all N run + time to release and join them) / N. A \
                     kind stops at its first failure, which is reported.",
            run: threads,
        },
        Workload {
            name: "fairness",
            about: "blocked-I/O fairness: N threads blocked on sockets while one computes",
            method: "N threads (1,000; 100 with --quick) each block reading one end of a Unix \
                     socket pair whose other end never writes; then one more thread computes a \
                     fixed amount of arithmetic (about 5 ms alone, calibrated once, the same \
                     iteration count on both sides). hilos: green threads and \
                     hilos::net::UnixStream on a runtime with one worker per core; std: kernel \
                     threads (64 KiB stacks) and std's UnixStream. Completion time = end of the \
                     computation minus the moment just before its thread was spawned; median \
                     over repetitions, one after the other. The N = 0 row is the computation \
                     with nobody blocked. Then the writing ends are closed, every reader sees \
                     end of file, and all are joined.",
            run: fairness,
        },
        Workload {
            name: "echo",
            about: "echo throughput at 100, 1,000 and 10,000 connections",
            method: "A 64-byte echo server over loopback, written in blocking style twice: hilos \
                     spawns a green thread per connection on its default runtime (one worker per \
                     core, one accept loop); std spawns a kernel thread (64 KiB stack) per \
                     connection. Each server runs in its own child process; the load generator \
                     (this process, two kernel threads with epoll) keeps one request in flight \
                     on every connection (closed loop) and counts round trips over 2 s (0.5 s \
                     with --quick, which stops at 1,000 connections) after a warm-up. A side \
                     that lost connections reports how many instead of a figure. The note gives \
                     each server's CPU time per request (user + system, from /proc).",
            run: echo,
        },
        Workload {
            name: "http",
            about: "HTTP/1.1 hello throughput at 100, 1,000 and 10,000 connections",
            method: "As echo, with an HTTP/1.1 keep-alive server that answers every request \
                     `200 OK` with the body `Hello, world!` (requests parsed with httparse), \
                     loaded by the same closed-loop generator sending `GET /` requests.",
            run: http,
        },
    ]
}

/// The seed model's throughput of a contended lock: one critical section of `l_ns` plus one
/// switch of `c_ns` per acquisition, in acquisitions per second.
pub fn seed_model_throughput(l_ns: f64, c_ns: f64) -> f64 {
    1e9 / (l_ns + c_ns)
}

/// The switch costs (green, kernel) in ns per switch: those the `switch` workload measured, or
/// measured now.
pub fn switch_costs(ctx: &Ctx) -> (f64, f64) {
    if let Some(c) = ctx.switch_costs.get() {
        return c;
    }
    let rt = micro::one_worker_runtime();
    let u = measure::per_op(&ctx.sizes.budget, |i| micro::hilos_yield_roundtrips(&rt, i));
    let k = measure::per_op(&ctx.sizes.budget, micro::std_park_roundtrips);
    let c = (u.median_ns / 2.0, k.median_ns / 2.0);
    ctx.switch_costs.set(Some(c));
    c
}

fn spawn_join(ctx: &Ctx) -> Result<Vec<Row>, Failure> {
    let mut row = Row::new("spawn", "spawn + join, empty thread", Metric::NsPerOp);
    ctx.say("spawn: hilos");
    let h = measure::per_op(&ctx.sizes.budget, micro::hilos_spawn_join);
    ctx.say(format!("spawn: hilos {}", format_ns(h.median_ns)));
    ctx.say("spawn: std");
    let s = measure::per_op(&ctx.sizes.slow_budget, micro::std_spawn_join);
    ctx.say(format!("spawn: std {}", format_ns(s.median_ns)));
    row.hilos = Value::timing(&h);
    row.std = Value::timing(&s);
    row.note = "hilos from a green thread; std from a kernel thread".into();
    Ok(vec![row])
}

fn switch(ctx: &Ctx) -> Result<Vec<Row>, Failure> {
    ctx.say("switch: hilos yield_now round trip");
    let rt = micro::one_worker_runtime();
    let u = measure::per_op(&ctx.sizes.budget, |i| micro::hilos_yield_roundtrips(&rt, i));
    drop(rt);
    ctx.say(format!("switch: hilos {}", format_ns(u.median_ns)));
    ctx.say("switch: std park/unpark handoff round trip");
    let k = measure::per_op(&ctx.sizes.budget, micro::std_park_roundtrips);
    ctx.say(format!("switch: std {}", format_ns(k.median_ns)));
    ctx.switch_costs
        .set(Some((u.median_ns / 2.0, k.median_ns / 2.0)));

    let mut rows = Vec::new();
    let mut handoff = Row::new("switch", "round trip (2 switches)", Metric::NsPerOp);
    handoff.hilos = Value::timing(&u);
    handoff.std = Value::timing(&k);
    handoff.note = "hilos: yield_now, 1 worker; std: park/unpark handoff".into();
    rows.push(handoff);

    let mut bare = Row::new("switch", "bare context switch round trip", Metric::NsPerOp);
    if micro::bare_switch_available() {
        ctx.say("switch: bare");
        let b = measure::per_op(&ctx.sizes.budget, |i| {
            micro::bare_switch_roundtrips(i).unwrap_or(Duration::ZERO)
        });
        bare.hilos = Value::timing(&b);
    } else {
        bare.hilos = Value::Missing("n/a".into());
        bare.note = "this build cannot time the bare switch".into();
    }
    bare.std = Value::Missing("—".into());
    if bare.note.is_empty() {
        bare.note = "no scheduler; no kernel equivalent".into();
    }
    rows.push(bare);
    Ok(rows)
}

/// Runs `f`, turning a panic into its message (for a row that says why it has no figure).
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panicked".into());
        // Short: it goes into a table cell.
        let first = msg.lines().next().unwrap_or("").to_string();
        let short: String = first.chars().take(60).collect();
        if short.len() < first.len() {
            format!("failed: {short}…")
        } else {
            format!("failed: {short}")
        }
    })
}

/// A timing figure, or why there is none.
fn timed_value(r: &Result<Stats, String>) -> Value {
    match r {
        Ok(s) => Value::timing(s),
        Err(why) => Value::Missing(why.clone()),
    }
}

fn channel(ctx: &Ctx) -> Result<Vec<Row>, Failure> {
    let b = &ctx.sizes.budget;
    let show = |r: &Result<Stats, String>| match r {
        Ok(s) => format_ns(s.median_ns),
        Err(why) => why.clone(),
    };
    ctx.say("channel: hilos ping-pong, one worker");
    let one = guarded(|| {
        let rt = sync::runtime(1);
        measure::per_op(b, |i| sync::green_ping_pong(&rt, i, false))
    });
    ctx.say(format!("channel: hilos, one worker {}", show(&one)));
    ctx.say("channel: hilos ping-pong, two workers");
    let two = guarded(|| {
        let rt = sync::runtime(2);
        measure::per_op(b, |i| sync::green_ping_pong(&rt, i, true))
    });
    ctx.say(format!("channel: hilos, two workers {}", show(&two)));
    ctx.say("channel: std mpsc ping-pong, kernel threads");
    let k = guarded(|| measure::per_op(b, sync::std_ping_pong));
    ctx.say(format!("channel: std {}", show(&k)));

    let mut rows = Vec::new();
    for (case, h, note) in [
        (
            "ping-pong round trip, 1 worker",
            &one,
            "hilos: green threads on one worker; std: mpsc, two kernel threads",
        ),
        (
            "ping-pong round trip, 2 workers",
            &two,
            "hilos: green threads on two workers; std: mpsc, two kernel threads",
        ),
    ] {
        let mut row = Row::new("channel", case, Metric::NsPerOp);
        row.hilos = timed_value(h);
        row.std = timed_value(&k);
        row.note = note.into();
        rows.push(row);
    }
    Ok(rows)
}

/// The length of one [`sync::critical_section`] with `cs_iters`, in ns: the median of several
/// timings of many sections.
fn critical_section_ns(cs_iters: u32) -> f64 {
    let n = 10_000u32;
    let mut v = 1u64;
    let mut samples: Vec<f64> = (0..7)
        .map(|_| {
            let t = std::time::Instant::now();
            for _ in 0..n {
                sync::critical_section(&mut v, cs_iters);
            }
            t.elapsed().as_nanos() as f64 / f64::from(n)
        })
        .collect();
    std::hint::black_box(v);
    measure::median(&mut samples)
}

/// Acquisitions per second of `reps` timed runs of `run` (after one untimed warm-up run): the
/// median, with the range.
fn throughput(total: u64, reps: usize, mut run: impl FnMut() -> Duration) -> Value {
    run();
    let mut rates: Vec<f64> = (0..reps.max(1))
        .map(|_| total as f64 / run().as_secs_f64().max(1e-9))
        .collect();
    let lo = rates.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = rates.iter().copied().fold(0.0, f64::max);
    Value::Measured {
        v: measure::median(&mut rates),
        range: Some((lo, hi)),
    }
}

fn mutex(ctx: &Ctx) -> Result<Vec<Row>, Failure> {
    let (c_u, c_k) = switch_costs(ctx);
    let cs_iters = sync::calibrate_critical_section(Duration::from_nanos(100));
    let l = critical_section_ns(cs_iters);
    ctx.say(format!(
        "mutex: critical section {}, c_u {}, c_k {}",
        format_ns(l),
        format_ns(c_u),
        format_ns(c_k)
    ));
    let total = ctx.sizes.mutex_total;
    let reps = ctx.sizes.mutex_reps;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rt = guarded(|| sync::runtime(workers));
    let mut rows = Vec::new();
    for &t in &ctx.sizes.mutex_threads {
        let tt = group_thousands(t as u64);
        let mut row = Row::new("mutex", format!("contention, T = {tt}"), Metric::PerSec);
        row.x = Some(t as f64);
        ctx.say(format!("mutex: hilos T = {tt}"));
        row.hilos = match &rt {
            Ok(rt) => guarded(|| {
                throughput(total, reps, || {
                    sync::green_mutex_contention(rt, t, total, cs_iters)
                })
            })
            .unwrap_or_else(Value::Missing),
            Err(why) => Value::Missing(why.clone()),
        };
        ctx.say(format!(
            "mutex: hilos T = {tt}: {}",
            row.hilos.display(row.metric)
        ));
        ctx.say(format!("mutex: std T = {tt}"));
        row.std = guarded(|| {
            throughput(total, reps, || {
                sync::std_mutex_contention(t, total, cs_iters)
            })
        })
        .unwrap_or_else(Value::Missing);
        ctx.say(format!(
            "mutex: std T = {tt}: {}",
            row.std.display(row.metric)
        ));
        row.hilos_model = Some(seed_model_throughput(l, c_u));
        row.std_model = Some(seed_model_throughput(l, c_k));
        row.note = format!(
            "{} acquisitions; L = {}, c_u = {}, c_k = {}; hilos on {workers} worker{}",
            group_thousands(total),
            format_ns(l),
            format_ns(c_u),
            format_ns(c_k),
            if workers == 1 { "" } else { "s" }
        );
        rows.push(row);
    }
    Ok(rows)
}

fn fairness(ctx: &Ctx) -> Result<Vec<Row>, Failure> {
    let iters = blocked::calibrate(ctx.sizes.fairness_work);
    let reps = ctx.sizes.fairness_reps;
    let limit = Duration::from_secs(10);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rt = guarded(|| sync::runtime(workers));
    let median = |r: Result<Vec<Duration>, String>| -> Value {
        match r {
            Ok(ts) if !ts.is_empty() => {
                let mut ns: Vec<f64> = ts.iter().map(|t| t.as_nanos() as f64).collect();
                let lo = ns.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = ns.iter().copied().fold(0.0, f64::max);
                Value::Measured {
                    v: measure::median(&mut ns),
                    range: Some((lo, hi)),
                }
            }
            Ok(_) => Value::Missing("no runs".into()),
            Err(why) => Value::Missing(why),
        }
    };
    let mut rows = Vec::new();
    for &n in &ctx.sizes.fairness_blocked {
        let nn = group_thousands(n as u64);
        let mut row = Row::new(
            "fairness",
            format!("compute with N = {nn} blocked readers"),
            Metric::NsPerOp,
        );
        row.x = Some(n as f64);
        ctx.say(format!("fairness: hilos N = {nn}"));
        row.hilos = match &rt {
            Ok(rt) => median(
                guarded(|| blocked::run(blocked::Side::Hilos, Some(rt), n, iters, reps, limit))
                    .and_then(|r| r),
            ),
            Err(why) => Value::Missing(why.clone()),
        };
        ctx.say(format!(
            "fairness: hilos N = {nn}: {}",
            row.hilos.display(row.metric)
        ));
        ctx.say(format!("fairness: std N = {nn}"));
        row.std = median(
            guarded(|| blocked::run(blocked::Side::Std, None, n, iters, reps, limit))
                .and_then(|r| r),
        );
        ctx.say(format!(
            "fairness: std N = {nn}: {}",
            row.std.display(row.metric)
        ));
        row.note = format!(
            "{} iterations of arithmetic; median of {reps}; hilos on {workers} worker{}",
            group_thousands(iters),
            if workers == 1 { "" } else { "s" }
        );
        rows.push(row);
    }
    Ok(rows)
}

/// One load run against a fresh `proto` server of `imp`: in a child process when `ctx` says so,
/// else in this process (where it stays until the process ends).
fn net_run(ctx: &Ctx, imp: net::Imp, proto: net::Proto, conns: usize) -> net::Load {
    let (warmup, measure) = (ctx.sizes.echo_warmup, ctx.sizes.echo_measure);
    if ctx.net_in_child {
        let server = net::spawn_server(imp, proto);
        let r = net::load(server.addr, proto, conns, 2, warmup, measure, &|| {
            server.cpu()
        });
        drop(server);
        // Let the closed connections' state drain before the next server.
        std::thread::sleep(Duration::from_millis(200));
        r
    } else {
        let addr = match imp {
            net::Imp::Std => net::std_server(proto),
            net::Imp::HilosPerCore => net::hilos_per_core_server(proto),
            net::Imp::Hilos => net::hilos_server(proto),
        };
        net::load(addr, proto, conns, 2, warmup, measure, &net::Cpu::default)
    }
}

fn echo(ctx: &Ctx) -> Result<Vec<Row>, Failure> {
    net_rows(ctx, "echo", net::Proto::Echo, "echo round trips")
}

fn http(ctx: &Ctx) -> Result<Vec<Row>, Failure> {
    net_rows(ctx, "http", net::Proto::Http, "HTTP requests")
}

/// The rows of the `name` workload: `proto` servers at each connection count.
fn net_rows(
    ctx: &Ctx,
    name: &'static str,
    proto: net::Proto,
    what: &str,
) -> Result<Vec<Row>, Failure> {
    net::raise_nofile();
    let workload = name;
    let mut rows = Vec::new();
    for &conns in &ctx.sizes.echo_conns {
        let cc = group_thousands(conns as u64);
        let mut row = Row::new(
            workload,
            format!("{what}, {cc} connections"),
            Metric::PerSec,
        );
        row.x = Some(conns as f64);
        let mut notes = Vec::new();
        let mut hilos_load = None;
        for imp in [net::Imp::Hilos, net::Imp::Std] {
            let name = imp.name();
            ctx.say(format!("{workload}: {name} {cc} connections"));
            let value = match guarded(|| net_run(ctx, imp, proto, conns)) {
                Ok(l) if l.failed > 0 => {
                    notes.push(format!(
                        "{name}: {} of {cc} connections failed ({} on the rest)",
                        l.failed,
                        format_rate(l.rate())
                    ));
                    Value::Missing(format!("{} of {cc} connections failed", l.failed))
                }
                Ok(l) if l.requests == 0 => Value::Missing("no request completed".into()),
                Ok(l) => {
                    if ctx.net_in_child {
                        notes.push(format!(
                            "{name} server {:.1} µs CPU/request ({:.1} in user space), \
                             client {:.1}",
                            l.cpu_us_per_request(),
                            l.user_us_per_request(),
                            l.client_us_per_request()
                        ));
                    }
                    if imp == net::Imp::Hilos {
                        hilos_load = Some(l);
                    }
                    Value::of(l.rate())
                }
                Err(why) => Value::Missing(why),
            };
            ctx.say(format!(
                "{workload}: {name} {cc} connections: {}",
                value.display(row.metric)
            ));
            match imp {
                net::Imp::Std => row.std = value,
                _ => row.hilos = value,
            }
        }
        if let (true, Some(l), Some(std_rate)) = (ctx.net_in_child, hilos_load, row.std.get()) {
            // Client and server share the cores: with hilos's user-space time at zero and all else
            // equal, the rate could be at most cores / (client + server kernel time per request).
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
            let kernel_us =
                l.client_us_per_request() + l.cpu_us_per_request() - l.user_us_per_request();
            if kernel_us > 0.0 {
                let bound = cores * 1e6 / kernel_us;
                notes.push(format!(
                    "hilos with zero user-space cost: at most {}, {:.2}× std",
                    format_rate(bound),
                    bound / std_rate
                ));
            }
        }
        if !ctx.net_in_child {
            notes.push("servers in this process".into());
        }
        row.note = notes.join("; ");
        rows.push(row);
    }
    Ok(rows)
}

/// Refuse a probe that would take more than half of the memory the machine has left.
fn too_big(n: usize, per_thread: Option<f64>) -> Option<String> {
    let per = per_thread?;
    let need = per * n as f64;
    let avail = live::mem_available()? as f64;
    (need > avail / 2.0).then(|| {
        format!(
            "skipped: would need about {}, {} available",
            format_bytes(need),
            format_bytes(avail)
        )
    })
}

/// The outcome of each step N of one kind, or why the step was not run.
type Steps = Vec<(usize, Result<LiveOutcome, String>)>;

fn threads(ctx: &Ctx) -> Result<Vec<Row>, Failure> {
    let steps = |k| match k {
        Kind::Hilos => &ctx.sizes.live_steps_hilos,
        Kind::Std => &ctx.sizes.live_steps_std,
    };
    let mut all_n: Vec<usize> = Kind::BOTH.iter().flat_map(|&k| steps(k).clone()).collect();
    all_n.sort_unstable();
    all_n.dedup();

    // Per kind: the outcome at each N, or why it was not tried.
    let mut results: Vec<(Kind, Steps)> = Vec::new();
    for kind in Kind::BOTH {
        let mut per_n = Vec::new();
        let mut stopped: Option<String> = None;
        let mut last_per_thread = None;
        for &n in &all_n {
            if !steps(kind).contains(&n) {
                per_n.push((n, Err("not run".into())));
                continue;
            }
            if let Some(why) = &stopped {
                per_n.push((n, Err(why.clone())));
                continue;
            }
            if let Some(why) = too_big(n, last_per_thread) {
                ctx.say(format!(
                    "threads: {kind} N = {} {why}",
                    group_thousands(n as u64)
                ));
                per_n.push((n, Err(why)));
                continue;
            }
            ctx.say(format!("threads: {kind} N = {}", group_thousands(n as u64)));
            let out = (ctx.probe)(kind, n);
            let summary = match (&out.error, out.bytes_per_thread()) {
                (Some(e), _) => format!("reached {}: {e}", group_thousands(out.reached as u64)),
                (None, Some(b)) => format!(
                    "{} per thread, spawn+join {} per thread",
                    format_bytes(b),
                    format_ns(out.spawn_join_ns_per_thread().unwrap_or(0.0))
                ),
                (None, None) => "nothing reached".into(),
            };
            ctx.say(format!(
                "threads: {kind} N = {}: {summary}",
                group_thousands(n as u64)
            ));
            if out.complete() {
                last_per_thread = out.bytes_per_thread();
            } else {
                stopped = Some(format!(
                    "stopped at {}",
                    group_thousands(out.reached as u64)
                ));
            }
            per_n.push((n, Ok(out)));
        }
        results.push((kind, per_n));
    }

    let side = |kind: Kind, i: usize, f: &dyn Fn(&LiveOutcome) -> Option<f64>| -> Value {
        let (_, per_n) = results.iter().find(|(k, _)| *k == kind).unwrap();
        match &per_n[i].1 {
            Ok(out) if out.complete() => f(out).map_or(Value::Missing("—".into()), Value::of),
            Ok(out) => Value::Missing(format!(
                "stopped at {}",
                group_thousands(out.reached as u64)
            )),
            Err(why) => Value::Missing(why.clone()),
        }
    };
    let mut rows = Vec::new();
    for (i, &n) in all_n.iter().enumerate() {
        let nn = group_thousands(n as u64);
        let mut mem = Row::new(
            "threads",
            format!("memory/thread, N = {nn}"),
            Metric::BytesPerThread,
        );
        mem.x = Some(n as f64);
        mem.hilos = side(Kind::Hilos, i, &|o| o.bytes_per_thread());
        mem.std = side(Kind::Std, i, &|o| o.bytes_per_thread());
        let breakdown = |kind: Kind| {
            let (_, per_n) = results.iter().find(|(k, _)| *k == kind).unwrap();
            match &per_n[i].1 {
                Ok(o) if o.complete() => Some(format!(
                    "{kind} {} RSS + {} kernel",
                    format_bytes(o.rss as f64 / n as f64),
                    format_bytes((o.page_tables + o.kernel_stacks) as f64 / n as f64)
                )),
                _ => None,
            }
        };
        mem.note = Kind::BOTH
            .iter()
            .filter_map(|&k| breakdown(k))
            .collect::<Vec<_>>()
            .join("; ");
        rows.push(mem);

        let mut spawn = Row::new(
            "threads",
            format!("spawn+join/thread, N = {nn} live"),
            Metric::NsPerOp,
        );
        spawn.x = Some(n as f64);
        spawn.hilos = side(Kind::Hilos, i, &|o| o.spawn_join_ns_per_thread());
        spawn.std = side(Kind::Std, i, &|o| o.spawn_join_ns_per_thread());
        rows.push(spawn);
    }

    // The most alive at once, and what stopped each kind.
    let mut max = Row::new("threads", "most alive at once", Metric::Threads);
    let mut notes = Vec::new();
    for (kind, per_n) in &results {
        let best = per_n
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok())
            .map(|o| o.reached)
            .max()
            .unwrap_or(0);
        let failure = per_n.iter().find_map(|(n, r)| {
            let e = r.as_ref().ok()?.error.as_ref()?;
            Some(format!("at N = {}: {e}", group_thousands(*n as u64)))
        });
        let value = match failure {
            Some(e) => {
                notes.push(format!("{kind}: {e}"));
                Value::of(best as f64)
            }
            None => {
                notes.push(format!("{kind}: every step tried was reached"));
                Value::AtLeast(best as f64)
            }
        };
        match kind {
            Kind::Hilos => max.hilos = value,
            Kind::Std => max.std = value,
        }
    }
    max.note = notes.join("; ");
    rows.push(max);
    Ok(rows)
}

/// A plain-text table of `rows`, columns aligned, for a terminal.
pub fn text_table(rows: &[Row]) -> String {
    let header = ["workload", "case", "hilos", "std", "hilos gain", "note"];
    let cells: Vec<[String; 6]> = rows.iter().map(row_cells).collect();
    let mut widths = header.map(|h| h.chars().count());
    for c in &cells {
        for (w, s) in widths.iter_mut().zip(c.iter()) {
            *w = (*w).max(s.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, c: &[String]| {
        let mut l = String::new();
        for (i, (s, w)) in c.iter().zip(widths).enumerate() {
            if i + 1 == c.len() {
                l.push_str(s);
            } else {
                let pad = w - s.chars().count();
                if (2..=4).contains(&i) {
                    let _ = write!(l, "{}{s}  ", " ".repeat(pad));
                } else {
                    let _ = write!(l, "{s}{}  ", " ".repeat(pad));
                }
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut out, &header.map(String::from));
    line(
        &mut out,
        &widths
            .map(|w| "-".repeat(w))
            .into_iter()
            .collect::<Vec<_>>(),
    );
    for c in &cells {
        line(&mut out, c);
    }
    out
}

/// The cells of a row for a table: workload, case, hilos, std, gain, note.
pub fn row_cells(r: &Row) -> [String; 6] {
    let with_model = |v: &Value, m: Option<f64>| match m {
        Some(m) => format!("{} (model {})", v.display(r.metric), r.metric.format(m)),
        None => v.display(r.metric),
    };
    [
        r.workload.to_string(),
        r.case.clone(),
        with_model(&r.hilos, r.hilos_model),
        with_model(&r.std, r.std_model),
        r.ratio().map_or(String::new(), format_ratio),
        r.note.clone(),
    ]
}
