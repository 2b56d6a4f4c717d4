//! Timing: calibrate an iteration count, warm up, repeat, take the median.

use std::time::{Duration, Instant};

/// How long to spend measuring one figure.
#[derive(Debug, Clone)]
pub struct Budget {
    /// Time spent running the workload before any repetition is kept.
    pub warmup: Duration,
    /// The target duration of one kept repetition.
    pub rep_target: Duration,
    /// Repetitions kept (the median of them is reported).
    pub reps: usize,
    /// Upper bound on iterations in one repetition (for slow operations this never binds).
    pub max_iters: u64,
}

/// Per-operation timing of a workload, in nanoseconds.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    /// Median over the kept repetitions.
    pub median_ns: f64,
    /// Fastest repetition.
    pub min_ns: f64,
    /// Slowest repetition.
    pub max_ns: f64,
    /// Iterations in each kept repetition.
    pub iters: u64,
    /// Kept repetitions.
    pub reps: usize,
}

/// Median of a non-empty slice (sorts it).
pub fn median(xs: &mut [f64]) -> f64 {
    assert!(!xs.is_empty(), "median of nothing");
    xs.sort_by(|a, b| a.total_cmp(b));
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Measures the per-operation cost of `run`, which performs `iters` operations and returns the
/// time they took (it may time only the part that matters, leaving out setup).
///
/// The iteration count is doubled until one run takes a quarter of `rep_target` (these runs are
/// warm-up too), the warm-up goes on until `warmup` has passed, then `reps` repetitions of about
/// `rep_target` each are timed and their median per-operation time reported.
pub fn per_op(budget: &Budget, mut run: impl FnMut(u64) -> Duration) -> Stats {
    let started = Instant::now();
    let max_iters = budget.max_iters.max(1);
    let mut iters = 1u64;
    let mut last = run(iters);
    while last < budget.rep_target / 4 && iters < max_iters {
        iters = (iters * 2).min(max_iters);
        last = run(iters);
    }
    // Scale to the target duration from the last calibration run.
    let per = last.as_secs_f64() / iters as f64;
    if per > 0.0 {
        let want = (budget.rep_target.as_secs_f64() / per).ceil() as u64;
        iters = want.clamp(1, max_iters);
    }
    while started.elapsed() < budget.warmup {
        run(iters);
    }
    let mut samples: Vec<f64> = (0..budget.reps.max(1))
        .map(|_| run(iters).as_nanos() as f64 / iters as f64)
        .collect();
    let min_ns = samples.iter().copied().fold(f64::INFINITY, f64::min);
    let max_ns = samples.iter().copied().fold(0.0, f64::max);
    let reps = samples.len();
    Stats {
        median_ns: median(&mut samples),
        min_ns,
        max_ns,
        iters,
        reps,
    }
}
