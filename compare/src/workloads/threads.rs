//! The live-threads workload's rows, from [`super::Sizes::live_repeats`] probes
//! ([`super::live`]) per kind and thread count: each figure is their median, with their range.

use super::live::{self, Kind, LiveOutcome};
use super::{Ctx, Failure, Metric, Row, Stop, Value, format_bytes, format_ns, group_thousands};

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

/// The outcomes of each step N of one kind (one per repetition; only the last may be
/// incomplete, which ends the kind's steps), or why the step was not run.
type Steps = Vec<(usize, Result<Vec<LiveOutcome>, String>)>;

/// The median of `f` over complete outcomes, with its range; `None` if `f` gives nothing.
fn median_of(outs: &[LiveOutcome], f: &dyn Fn(&LiveOutcome) -> Option<f64>) -> Option<Value> {
    let mut vs: Vec<f64> = outs.iter().filter_map(f).collect();
    if vs.is_empty() {
        return None;
    }
    vs.sort_by(f64::total_cmp);
    let range = (vs.len() > 1).then(|| (vs[0], vs[vs.len() - 1]));
    Some(Value::Measured {
        v: vs[vs.len() / 2],
        range,
    })
}

/// The live-threads workload: memory and spawn+join cost per thread at each N, and the most
/// threads alive at once.
pub fn threads(ctx: &Ctx) -> Result<Vec<Row>, Failure> {
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
            let mut outs: Vec<LiveOutcome> = Vec::new();
            for rep in 1..=ctx.sizes.live_repeats {
                ctx.say(format!(
                    "threads: {kind} N = {} ({rep} of {})",
                    group_thousands(n as u64),
                    ctx.sizes.live_repeats
                ));
                let out = (ctx.probe)(kind, n);
                let summary = match (&out.error, out.bytes_per_thread()) {
                    (Some(e), _) => {
                        format!("reached {}: {e}", group_thousands(out.reached as u64))
                    }
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
                let complete = out.complete();
                if complete {
                    last_per_thread = out.bytes_per_thread();
                } else {
                    stopped = Some(format!(
                        "stopped at {}",
                        group_thousands(out.reached as u64)
                    ));
                }
                outs.push(out);
                if !complete {
                    break;
                }
            }
            per_n.push((n, Ok(outs)));
        }
        results.push((kind, per_n));
    }

    // A side's figure at step `i`: the median over its repetitions, or why there is none (an
    // incomplete repetition stops the kind: its reach is the figure's place).
    let side = |kind: Kind, i: usize, f: &dyn Fn(&LiveOutcome) -> Option<f64>| -> Value {
        let (_, per_n) = results.iter().find(|(k, _)| *k == kind).unwrap();
        match &per_n[i].1 {
            Ok(outs) => match outs.iter().find(|o| !o.complete()) {
                Some(out) => Value::Missing(format!(
                    "stopped at {}",
                    group_thousands(out.reached as u64)
                )),
                None => median_of(outs, f).unwrap_or(Value::Missing("—".into())),
            },
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
            // The repetition whose memory per thread is the median, split into its parts.
            let outs = per_n[i].1.as_ref().ok()?;
            if outs.iter().any(|o| !o.complete()) {
                return None;
            }
            let mut by_mem: Vec<&LiveOutcome> = outs.iter().collect();
            by_mem.sort_by(|a, b| {
                let m = |o: &LiveOutcome| o.bytes_per_thread().unwrap_or(0.0);
                m(a).total_cmp(&m(b))
            });
            let o = by_mem.get(by_mem.len() / 2)?;
            Some(format!(
                "{kind} {} RSS + {} kernel",
                format_bytes(o.rss as f64 / n as f64),
                format_bytes((o.page_tables + o.kernel_stacks) as f64 / n as f64)
            ))
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
            .flatten()
            .map(|o| o.reached)
            .max()
            .unwrap_or(0);
        let failure = per_n.iter().find_map(|(n, r)| {
            let e = r.as_ref().ok()?.iter().find_map(|o| o.error.as_ref())?;
            Some((*n, e))
        });
        let value = match failure {
            Some((n, e)) => {
                notes.push(format!("{kind}: at N = {}: {e}", group_thousands(n as u64)));
                max.stops.push(Stop {
                    kind: *kind,
                    reached: best as f64,
                    why: e.clone(),
                });
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
