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
mod row;
pub mod skynet;
mod skynet_rows;
pub mod sync;
pub mod table;
mod threads;

pub use row::*;

use std::cell::Cell;
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
    /// Probes (child processes) per kind and thread count: the figure is their median, the
    /// plots' bars their range.
    pub live_repeats: usize,
    /// Thread counts of the mutex-contention workload.
    pub mutex_threads: Vec<usize>,
    /// Acquisitions in all, per mutex-contention run.
    pub mutex_total: u64,
    /// Timed mutex-contention runs per figure (after one untimed warm-up run).
    pub mutex_reps: usize,
    /// Connection counts of the echo workload.
    pub echo_conns: Vec<usize>,
    /// Connection counts of the echo workload's split-cores rows (server and load generator
    /// each on half of the CPUs).
    pub echo_split_conns: Vec<usize>,
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
    /// skynet's leaves: (hilos, std).
    pub skynet_leaves: (u64, u64),
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
                live_repeats: 3,
                mutex_threads: vec![4, 16],
                mutex_total: 2_000,
                mutex_reps: 1,
                echo_conns: vec![5, 10],
                echo_split_conns: vec![10],
                echo_warmup: ms(20),
                echo_measure: ms(50),
                fairness_blocked: vec![0, 10],
                fairness_work: ms(1),
                fairness_reps: 3,
                skynet_leaves: (1_000, 100),
            },
            Scale::Quick => Sizes {
                budget: budget(50, 40, 5),
                slow_budget: budget(50, 60, 5),
                live_steps_hilos: vec![1_000, 10_000, 100_000],
                live_steps_std: vec![1_000, 10_000],
                live_repeats: 3,
                mutex_threads: vec![4, 64],
                mutex_total: 100_000,
                mutex_reps: 3,
                echo_conns: vec![100, 1_000],
                echo_split_conns: vec![1_000],
                echo_warmup: ms(200),
                echo_measure: ms(500),
                fairness_blocked: vec![0, 100],
                fairness_work: ms(5),
                fairness_reps: 7,
                skynet_leaves: (100_000, 10_000),
            },
            Scale::Full => Sizes {
                budget: budget(200, 150, 11),
                slow_budget: budget(200, 200, 9),
                live_steps_hilos: vec![1_000, 10_000, 100_000, 1_000_000],
                live_steps_std: vec![1_000, 10_000, 100_000, 1_000_000],
                live_repeats: 3,
                mutex_threads: vec![4, 64, 1_000],
                mutex_total: 1_000_000,
                mutex_reps: 5,
                echo_conns: vec![100, 1_000, 10_000],
                echo_split_conns: vec![1_000, 10_000],
                echo_warmup: ms(500),
                echo_measure: ms(2_000),
                fairness_blocked: vec![0, 1_000],
                fairness_work: ms(5),
                fairness_reps: 11,
                skynet_leaves: (1_000_000, 10_000),
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
    /// mutex workload's prediction uses them.
    pub switch_costs: Cell<Option<(f64, f64)>>,
    /// Whether the echo servers run in a child process ([`net::spawn_server`]: the binary's
    /// `main` must call [`net::maybe_serve`] first) rather than in this one.
    pub net_in_child: bool,
    /// Runs one skynet (kind, leaves): in a child process for the harness (peak memory is per
    /// process), in this process for tests.
    pub skynet: &'a dyn Fn(Kind, u64) -> Result<skynet::SkynetOutcome, String>,
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
            skynet: &|kind, leaves| Ok(skynet::run(kind, leaves, skynet::WORKERS)),
        }
    }

    fn say(&self, msg: impl AsRef<str>) {
        (self.progress)(msg.as_ref())
    }
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
            about: "yield_now round trip (green threads) vs park/unpark handoff (kernel threads)",
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
            about: "mutex contention at T = 4, 64, 1,000 threads, beside a predicted figure",
            method: "T threads share one mutex and take it 1,000,000 times in all (100,000 with \
                     --quick, which stops at T = 64), each time for a critical section of about \
                     100 ns (calibrated at start; L is its measured length). hilos: green \
                     threads with hilos::sync::Mutex on a runtime with one worker per core; std: \
                     kernel threads (64 KiB stacks) with std::sync::Mutex. Only the lock traffic \
                     is timed (barriers at start and end); median acquisitions per second over \
                     repetitions after one warm-up run. The note gives a prediction for each side, \
                     1/(L + c): one critical section and one switch per acquisition, with c \
                     the switch cost measured by the switch workload (half a round trip; c_u \
                     green, c_k kernel).",
            run: mutex,
        },
        Workload {
            name: "threads",
            about: "threads alive at once, memory per thread and spawn cost as N grows",
            method: "Three child processes per (kind, N) (the figure is their median, the \
                     plots' bars their range); each spawns N threads (default stack sizes) that \
                     each count themselves alive and park until released; once all N run, read \
                     VmRSS and VmPTE (/proc/self/status) and KernelStack (/proc/meminfo) and \
                     subtract the figures read before spawning; then release, unpark and join \
                     all. Memory/thread = (RSS + page tables + kernel stacks) / N. Spawn+join per \
                     thread = (time until all N run + time to release and join them) / N. A \
                     kind stops at its first failure, which is reported.",
            run: threads::threads,
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
            about: "echo throughput at 100, 1,000 and 10,000 connections, and on split cores",
            method: "A 64-byte echo server over loopback, written in blocking style twice: hilos \
                     spawns a green thread per connection on its default runtime (one worker per \
                     core, one accept loop); std spawns a kernel thread (64 KiB stack) per \
                     connection. Each server runs in its own child process; the load generator \
                     (this process, two kernel threads with epoll) keeps one request in flight \
                     on every connection (closed loop) and counts round trips over 2 s (0.5 s \
                     with --quick, which stops at 1,000 connections) after a warm-up. A side \
                     that lost connections reports how many instead of a figure; the spread is \
                     the slowest and fastest fifth of the measurement. The note gives each \
                     server's CPU time per request (user + system, from /proc); the details \
                     add how much of it is user space, the load generator's, and the most the \
                     kernel time alone would allow hilos if its user-space time were zero. The \
                     split-cores rows run the same servers on half of the CPUs and the load \
                     generator on the other half (hilos then has one worker per CPU it may \
                     use). Sharing all cores, requests queue at the load generator with std \
                     (its woken server threads answer at once) and at the server with hilos \
                     (two busy workers taking turns with the generator's two threads), as \
                     measured with ss at 10,000 connections; there they wait at hilos's server \
                     past TCP's delayed-ACK timeout (40 ms), after which the kernel \
                     acknowledges each request with a segment of its own, costing both ends.",
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
        Workload {
            name: "skynet",
            about: "skynet: a fan-out tree of threads (fan-out 10) summing its leaves",
            method: "Every node spawns 10 children and sums what they send over a channel; \
                     the leaves send their number. hilos: green threads and hilos::sync::mpsc \
                     on a 2-worker runtime, 1,000,000 leaves (1,111,111 threads; 100,000 with \
                     --quick); std: kernel threads and std::sync::mpsc, 10,000 leaves (the \
                     kernel's thread limit stops it before 100,000). Each run in a child \
                     process: time from the first spawn to the root's sum, and the process's \
                     peak resident memory (getrusage). The rows divide both by the threads of \
                     each tree, so the two sizes compare.",
            run: skynet_rows::skynet,
        },
    ]
}

/// The predicted throughput of a contended lock: one critical section of `l_ns` plus one switch
/// of `c_ns` per acquisition, in acquisitions per second.
pub fn predicted_throughput(l_ns: f64, c_ns: f64) -> f64 {
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
        let (h, k) = (predicted_throughput(l, c_u), predicted_throughput(l, c_k));
        row.hilos_predicted = Some(h);
        row.std_predicted = Some(k);
        row.note = format!(
            "predicted from one critical section + one switch per take: hilos {}, std {}",
            format_rate(h),
            format_rate(k)
        );
        row.detail = format!(
            "{} acquisitions; critical section L = {}; switch c_u = {} (green), c_k = {} \
             (kernel); prediction 1/(L + c); hilos on {workers} worker{}",
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
            "median of {reps} runs; hilos on {workers} worker{}",
            if workers == 1 { "" } else { "s" }
        );
        row.detail = format!(
            "the computation is {} iterations of arithmetic",
            group_thousands(iters)
        );
        rows.push(row);
    }
    Ok(rows)
}

/// The CPUs of a split-cores run: (load generator's, server's), each half of this process's;
/// `None` with fewer than two.
fn split_cpus() -> Option<(Vec<usize>, Vec<usize>)> {
    let cpus = net::allowed_cpus();
    (cpus.len() >= 2).then(|| {
        let (a, b) = cpus.split_at(cpus.len() / 2);
        (a.to_vec(), b.to_vec())
    })
}

/// One load run against a fresh `proto` server of `imp`: in a child process when `ctx` says so,
/// else in this process (where it stays until the process ends). `split`: the server process on
/// half of the CPUs and the load generator on the other half (only with the server in a child
/// process, and two CPUs or more).
fn net_run(
    ctx: &Ctx,
    imp: net::Imp,
    proto: net::Proto,
    conns: usize,
    split: Option<&(Vec<usize>, Vec<usize>)>,
) -> net::Load {
    let (warmup, measure) = (ctx.sizes.echo_warmup, ctx.sizes.echo_measure);
    if ctx.net_in_child {
        let server = net::spawn_server_on(imp, proto, split.map(|(_, s)| &s[..]));
        let load = || {
            net::load(server.addr, proto, conns, 2, warmup, measure, &|| {
                server.cpu()
            })
        };
        let r = match split {
            Some((client, _)) => net::on_cpus(client, load),
            None => load(),
        };
        drop(server);
        // Let the closed connections' state drain before the next server.
        std::thread::sleep(Duration::from_millis(200));
        r
    } else {
        let addr = net::server(imp, proto);
        net::load(addr, proto, conns, 2, warmup, measure, &net::Cpu::default)
    }
}

fn echo(ctx: &Ctx) -> Result<Vec<Row>, Failure> {
    let mut rows = net_rows(ctx, "echo", net::Proto::Echo, "echo round trips", None)?;
    // The same servers when they do not share their cores with the load generator.
    match split_cpus().filter(|_| ctx.net_in_child) {
        Some(split) => rows.extend(net_rows(
            ctx,
            "echo",
            net::Proto::Echo,
            "split cores",
            Some(&split),
        )?),
        None if !ctx.sizes.echo_split_conns.is_empty() => {
            ctx.say("echo: split-cores rows skipped (fewer than 2 CPUs, or servers in-process)")
        }
        None => {}
    }
    Ok(rows)
}

fn http(ctx: &Ctx) -> Result<Vec<Row>, Failure> {
    net_rows(ctx, "http", net::Proto::Http, "HTTP requests", None)
}

/// The rows of the `name` workload: `proto` servers at each connection count.
fn net_rows(
    ctx: &Ctx,
    name: &'static str,
    proto: net::Proto,
    what: &str,
    split: Option<&(Vec<usize>, Vec<usize>)>,
) -> Result<Vec<Row>, Failure> {
    net::raise_nofile();
    let workload = name;
    let mut rows = Vec::new();
    let counts = match split {
        Some(_) => &ctx.sizes.echo_split_conns,
        None => &ctx.sizes.echo_conns,
    };
    for &conns in counts {
        let cc = group_thousands(conns as u64);
        let mut row = Row::new(
            workload,
            format!("{what}, {cc} connections"),
            Metric::PerSec,
        );
        row.x = Some(conns as f64);
        let (mut notes, mut details) = (Vec::new(), Vec::new());
        let tag = if split.is_some() { ", split cores" } else { "" };
        if let Some((client, server)) = split {
            row.x = None; // not a point of the throughput plot
            notes.push(format!(
                "server on CPUs {server:?} (hilos: {} worker(s)), load generator on {client:?}",
                server.len()
            ));
        }
        let mut hilos_load = None;
        // With hilos's `hook` feature (`cargo run --release -p compare --features hook`), the
        // std server's code on green threads too, reported in the note beside hilos::net's.
        let imps: &[net::Imp] = if split.is_some() {
            &[net::Imp::Hilos, net::Imp::Std]
        } else if cfg!(feature = "hook") {
            &[net::Imp::Hilos, net::Imp::Std, net::Imp::StdOnGreen]
        } else {
            &[net::Imp::Hilos, net::Imp::Std]
        };
        let mut on_green = None;
        for &imp in imps {
            let name = imp.name();
            ctx.say(format!("{workload}: {name} {cc} connections{tag}"));
            let value = match guarded(|| net_run(ctx, imp, proto, conns, split)) {
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
                            "{name} server {:.1} µs CPU/request",
                            l.cpu_us_per_request()
                        ));
                        details.push(format!(
                            "{name} server {:.1} µs CPU/request ({:.1} µs in user space), load \
                             generator {:.1} µs",
                            l.cpu_us_per_request(),
                            l.user_us_per_request(),
                            l.client_us_per_request()
                        ));
                    }
                    if imp == net::Imp::Hilos {
                        hilos_load = Some(l);
                    }
                    Value::Measured {
                        v: l.rate(),
                        range: l.slice_range,
                    }
                }
                Err(why) => Value::Missing(why),
            };
            ctx.say(format!(
                "{workload}: {name} {cc} connections{tag}: {}",
                value.display(row.metric)
            ));
            match imp {
                net::Imp::Std => row.std = value,
                net::Imp::StdOnGreen => on_green = Some(value),
                _ => row.hilos = value,
            }
        }
        if let (true, None, Some(l), Some(std_rate)) =
            (ctx.net_in_child, split, hilos_load, row.std.get())
        {
            // Client and server share the cores: with hilos's user-space time at zero and all else
            // equal, the rate could be at most cores / (client + server kernel time per request).
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
            let kernel_us =
                l.client_us_per_request() + l.cpu_us_per_request() - l.user_us_per_request();
            if kernel_us > 0.0 {
                let bound = cores * 1e6 / kernel_us;
                details.push(format!(
                    "if hilos's server spent no time in user space, the kernel time per request \
                     (server and load generator, sharing {cores} cores) would allow at most {}, \
                     {:.2}× std",
                    format_rate(bound),
                    bound / std_rate
                ));
            }
        }
        if let Some(v) = on_green {
            let vs = match (v.get(), row.hilos.get()) {
                (Some(g), Some(h)) => format!("{}, {:.2}× hilos::net's", format_rate(g), g / h),
                _ => v.display(row.metric),
            };
            notes.push(format!("std types on green threads (hook): {vs}"));
        }
        if !ctx.net_in_child {
            notes.push("servers in this process".into());
        }
        row.note = notes.join("; ");
        row.detail = details.join("; ");
        rows.push(row);
    }
    Ok(rows)
}
