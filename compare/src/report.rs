//! The report: `report.md` (machine, table, how each figure was measured) and SVG plots.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use crate::svg::{Bar, Chart, Marker, Series};
use crate::workloads::live::Kind;
use crate::workloads::{self, Failure, Row, Value};

/// How one workload ended.
pub struct Outcome {
    /// The workload's name.
    pub name: &'static str,
    /// What it measures.
    pub about: &'static str,
    /// How it measures it.
    pub method: &'static str,
    /// Its rows, or why there are none.
    pub result: Result<Vec<Row>, Failure>,
    /// Wall-clock seconds it took.
    pub secs: f64,
}

const HILOS_COLOR: &str = "#d9480f";
const STD_COLOR: &str = "#1864ab";

/// Everything a report is made of.
pub struct Report<'a> {
    /// The command line that produced it.
    pub command: String,
    /// Machine facts.
    pub machine: &'a [(&'static str, String)],
    /// Workload outcomes, in run order.
    pub outcomes: &'a [Outcome],
    /// Wall-clock seconds of the whole run.
    pub total_secs: f64,
}

fn rows_of(outcomes: &[Outcome]) -> impl Iterator<Item = &Row> {
    outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().ok())
        .flatten()
}

/// A chart of the rows of `workload` whose case starts with `case_prefix`, one point per row
/// (x = the row's x), hilos and std on the same axes.
fn chart_of(outcomes: &[Outcome], workload: &str, case_prefix: &str, base: Chart) -> Chart {
    let rows: Vec<&Row> = rows_of(outcomes)
        .filter(|r| r.workload == workload && r.case.starts_with(case_prefix))
        .collect();
    let points = |side: fn(&Row) -> &Value| -> Vec<(f64, f64)> {
        rows.iter()
            .filter_map(|r| Some((r.x?, side(r).get()?)))
            .collect()
    };
    let spread = |side: fn(&Row) -> &Value| -> Vec<Bar> {
        rows.iter()
            .filter_map(|r| match side(r) {
                Value::Measured {
                    range: Some((lo, hi)),
                    ..
                } => Some((r.x?, *lo, *hi)),
                _ => None,
            })
            .collect()
    };
    // Where a side stopped short (any row of the workload may say so).
    let markers = rows_of(outcomes)
        .filter(|r| r.workload == workload)
        .flat_map(|r| &r.stops)
        .map(|stop| Marker {
            x: stop.reached,
            color: match stop.kind {
                Kind::Hilos => HILOS_COLOR,
                Kind::Std => STD_COLOR,
            },
            label: format!("{} stopped here: {}", stop.kind, stop.why),
        })
        .collect();
    // "hilos (stopped at 32,739)" when a side stopped before the last step.
    let legend = |name: &str, side: fn(&Row) -> &Value| -> String {
        let stop = rows.iter().find_map(|r| match side(r) {
            Value::Missing(why) if why.starts_with("stopped") => Some(why.clone()),
            _ => None,
        });
        match stop {
            Some(why) => format!("{name} ({why})"),
            None => name.to_string(),
        }
    };
    let placeholder = outcomes
        .iter()
        .find(|o| o.name == workload)
        .and_then(|o| match &o.result {
            Err(Failure::Unavailable(m) | Failure::Failed(m)) => Some(m.clone()),
            Ok(_) => None,
        })
        .or(base.placeholder.clone())
        .or(Some(format!("n/a: the {workload} workload did not run")));
    Chart {
        series: vec![
            Series {
                name: legend("hilos", |r| &r.hilos),
                color: HILOS_COLOR,
                points: points(|r| &r.hilos),
                spread: spread(|r| &r.hilos),
            },
            Series {
                name: legend("std::thread", |r| &r.std),
                color: STD_COLOR,
                points: points(|r| &r.std),
                spread: spread(|r| &r.std),
            },
        ],
        placeholder,
        markers,
        ..base
    }
}

/// The line under every plot: when and on what machine it was measured.
pub fn machine_caption(machine: &[(&'static str, String)]) -> String {
    let get = |k: &str| {
        machine
            .iter()
            .find(|(key, _)| *key == k)
            .map_or("unknown", |(_, v)| v.as_str())
    };
    let cores = get("cores").split_whitespace().next().unwrap_or("?");
    format!(
        "{} UTC · {} · {cores} cores · {}",
        get("date (UTC)"),
        get("CPU"),
        get("kernel")
    )
}

/// What the bars of a plot show.
const BARS_OF_REPS: &str = "Bars: lowest and highest of the repetitions; line: median.";
const BARS_OF_FIFTHS: &str =
    "Bars: lowest and highest rate over the fifths of each measurement; line: whole measurement.";
const BARS_OF_PROBES: &str =
    "Bars: lowest and highest of the repetitions (a child process each); line: median.";

/// The plots, by file name, with their alt text.
pub fn charts(
    outcomes: &[Outcome],
    machine: &[(&'static str, String)],
) -> Vec<(&'static str, &'static str, Chart)> {
    let when = machine_caption(machine);
    let base =
        |title: &str, x: &str, y: &str, y_format: fn(f64) -> String, y_unit, bars: &str| Chart {
            title: title.into(),
            x_label: x.into(),
            y_label: y.into(),
            log_x: true,
            log_y: false,
            y_format,
            y_unit,
            series: Vec::new(),
            placeholder: None,
            markers: Vec::new(),
            caption: vec![when.clone(), bars.into()],
        };
    vec![
        (
            "memory.svg",
            "Memory per thread vs threads alive",
            chart_of(
                outcomes,
                "threads",
                "memory/thread",
                base(
                    "Memory per live thread",
                    "threads alive at once",
                    "bytes per thread",
                    workloads::format_bytes,
                    1024.0,
                    BARS_OF_PROBES,
                ),
            ),
        ),
        (
            "spawn.svg",
            "Spawn+join cost per thread vs threads alive",
            chart_of(
                outcomes,
                "threads",
                "spawn+join/thread",
                base(
                    "Spawn + join cost per thread",
                    "threads alive at once",
                    "time per thread",
                    workloads::format_ns,
                    1.0,
                    BARS_OF_PROBES,
                ),
            ),
        ),
        (
            "throughput.svg",
            "Echo throughput vs connections",
            chart_of(
                outcomes,
                "echo",
                "",
                base(
                    "Echo throughput",
                    "connections",
                    "requests per second",
                    workloads::format_rate,
                    1.0,
                    BARS_OF_FIFTHS,
                ),
            ),
        ),
        (
            "http.svg",
            "HTTP hello throughput vs connections",
            chart_of(
                outcomes,
                "http",
                "",
                base(
                    "HTTP hello throughput",
                    "connections",
                    "requests per second",
                    workloads::format_rate,
                    1.0,
                    BARS_OF_FIFTHS,
                ),
            ),
        ),
        (
            "mutex.svg",
            "Mutex acquisitions per second vs threads contending",
            chart_of(
                outcomes,
                "mutex",
                "",
                base(
                    "Mutex contention throughput",
                    "threads taking the mutex",
                    "acquisitions per second",
                    workloads::format_rate,
                    1.0,
                    BARS_OF_REPS,
                ),
            ),
        ),
    ]
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// The results as a Markdown table (the same one the README shows).
pub fn markdown_table(outcomes: &[Outcome]) -> String {
    let mut t = String::from(
        "| workload | case | hilos | std | hilos better | note |\n|---|---|---:|---:|---:|---|\n",
    );
    for o in outcomes {
        match &o.result {
            Ok(rows) => {
                for r in rows {
                    let c = workloads::table::row_cells(r);
                    let _ = writeln!(
                        t,
                        "| {} | {} |",
                        c.iter().map(|s| md_cell(s)).collect::<Vec<_>>().join(" | "),
                        md_cell(&r.note)
                    );
                }
            }
            Err(Failure::Unavailable(m) | Failure::Failed(m)) => {
                let _ = writeln!(
                    t,
                    "| {} | {} | | | | {} |",
                    o.name,
                    md_cell(o.about),
                    md_cell(m)
                );
            }
        }
    }
    t
}

/// Writes `report.md` and the plots into `dir`; returns the files written.
pub fn write(dir: &Path, r: &Report) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let mut md = String::new();
    let _ = writeln!(md, "# hilos vs std::thread\n");
    let _ = writeln!(
        md,
        "Measured by `{}` in {:.0} s. {} Every figure was measured in this run.\n",
        r.command,
        r.total_secs,
        workloads::table::BETTER
    );
    let _ = writeln!(md, "## Machine\n\n| | |\n|---|---|");
    for (k, v) in r.machine {
        let _ = writeln!(md, "| {k} | {} |", md_cell(v));
    }
    let _ = writeln!(md, "\n## Results\n\n{}", markdown_table(r.outcomes));

    let _ = writeln!(md, "## Plots\n");
    for (file, alt, chart) in charts(r.outcomes, r.machine) {
        let path = dir.join(file);
        std::fs::write(&path, chart.render())?;
        written.push(path);
        let _ = writeln!(md, "![{alt}]({file})\n");
    }

    let details: Vec<String> = rows_of(r.outcomes)
        .filter(|row| !row.detail.is_empty())
        .map(|row| format!("- **{}**, {}: {}", row.workload, row.case, row.detail))
        .collect();
    if !details.is_empty() {
        let _ = writeln!(md, "## Details of the rows\n\n{}\n", details.join("\n"));
    }

    let _ = writeln!(md, "## How each workload was measured\n");
    for o in r.outcomes {
        let status = match &o.result {
            Ok(rows) => format!(
                "{} row{}, {:.1} s",
                rows.len(),
                if rows.len() == 1 { "" } else { "s" },
                o.secs
            ),
            Err(Failure::Unavailable(m)) => m.clone(),
            Err(Failure::Failed(m)) => format!("FAILED: {m}"),
        };
        let _ = writeln!(
            md,
            "- **{}** ({}): {} *{}*",
            o.name, o.about, o.method, status
        );
    }
    let _ = writeln!(
        md,
        "\nTimings are medians over repetitions after a warm-up (`std::time::Instant`); the \
         machine may have been busy with other work. Memory and thread-count figures come from \
         one child process per kind and thread count. Kernel memory counts page tables (VmPTE) \
         and kernel stacks (KernelStack, machine-wide); other kernel objects of a thread (its \
         task struct) are not counted."
    );
    let path = dir.join("report.md");
    std::fs::write(&path, md)?;
    written.insert(0, path);
    Ok(written)
}
