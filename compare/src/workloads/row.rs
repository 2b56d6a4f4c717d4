//! A row of the results: what was measured, hilos's and std's figures, and how to print them.

use super::live::Kind;
use super::measure::Stats;

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
    /// A prediction for hilos's figure from other measured figures, where there is one (the
    /// note says how it is made).
    pub hilos_predicted: Option<f64>,
    /// The same prediction for std.
    pub std_predicted: Option<f64>,
    /// A short remark a reader needs to read the row right (shown under the row in the table).
    pub note: String,
    /// A longer explanation, for the report only.
    pub detail: String,
    /// Where a side stopped short of the sizes it was asked for: the most it reached and why it
    /// stopped (the live-threads workload: std cannot spawn past the kernel's thread limit).
    pub stops: Vec<Stop>,
}

/// Where one side of a workload stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct Stop {
    /// The side that stopped.
    pub kind: Kind,
    /// The most it reached (an x value of the workload's plots).
    pub reached: f64,
    /// Why it stopped.
    pub why: String,
}

impl Row {
    /// A row with no figures, prediction or note yet.
    pub fn new(workload: &'static str, case: impl Into<String>, metric: Metric) -> Row {
        Row {
            workload,
            case: case.into(),
            metric,
            x: None,
            hilos: Value::Missing("—".into()),
            std: Value::Missing("—".into()),
            hilos_predicted: None,
            std_predicted: None,
            note: String::new(),
            detail: String::new(),
            stops: Vec::new(),
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
