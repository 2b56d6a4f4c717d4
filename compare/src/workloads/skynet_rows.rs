//! The skynet workload's rows: one run per kind ([`super::skynet`]), time and peak memory per
//! thread of each tree, so that hilos's 1,000,000 leaves and std's 10,000 compare.

use super::live::Kind;
use super::skynet::{self, SkynetOutcome};
use super::{Ctx, Failure, Metric, Row, Value, format_bytes, group_thousands};

/// Runs skynet on both kinds and gives its two rows.
pub fn skynet(ctx: &Ctx) -> Result<Vec<Row>, Failure> {
    let (hilos_leaves, std_leaves) = ctx.sizes.skynet_leaves;
    let mut runs: Vec<(Kind, Result<SkynetOutcome, String>)> = Vec::new();
    for (kind, leaves) in [(Kind::Hilos, hilos_leaves), (Kind::Std, std_leaves)] {
        ctx.say(format!(
            "skynet: {kind}, {} leaves",
            group_thousands(leaves)
        ));
        let out = (ctx.skynet)(kind, leaves);
        match &out {
            Ok(o) => ctx.say(format!(
                "skynet: {kind}: {:.0} ms, peak RSS {}",
                o.elapsed.as_secs_f64() * 1e3,
                format_bytes(o.peak_rss as f64)
            )),
            Err(e) => ctx.say(format!("skynet: {kind}: {e}")),
        }
        runs.push((kind, out));
    }
    if runs.iter().all(|(_, r)| r.is_err()) {
        let why: Vec<String> = runs
            .iter()
            .filter_map(|(k, r)| r.as_ref().err().map(|e| format!("{k}: {e}")))
            .collect();
        return Err(Failure::Failed(why.join("; ")));
    }
    let per_thread = |kind: Kind, f: &dyn Fn(&SkynetOutcome) -> f64| -> Value {
        match &runs.iter().find(|(k, _)| *k == kind).unwrap().1 {
            Ok(o) => Value::of(f(o) / skynet::threads(o.leaves) as f64),
            Err(e) => Value::Missing(e.clone()),
        }
    };
    let sizes = format!(
        "hilos {} leaves, std {}",
        group_thousands(hilos_leaves),
        group_thousands(std_leaves)
    );
    let totals: Vec<String> = runs
        .iter()
        .filter_map(|(k, r)| {
            let o = r.as_ref().ok()?;
            Some(format!(
                "{k} {:.0} ms, peak {}",
                o.elapsed.as_secs_f64() * 1e3,
                format_bytes(o.peak_rss as f64)
            ))
        })
        .collect();
    let mut time = Row::new("skynet", "time per thread of the tree", Metric::NsPerOp);
    time.hilos = per_thread(Kind::Hilos, &|o| o.elapsed.as_nanos() as f64);
    time.std = per_thread(Kind::Std, &|o| o.elapsed.as_nanos() as f64);
    time.note = format!("{sizes}; {}", totals.join("; "));
    let mut mem = Row::new("skynet", "peak memory per thread", Metric::BytesPerThread);
    mem.hilos = per_thread(Kind::Hilos, &|o| o.peak_rss as f64);
    mem.std = per_thread(Kind::Std, &|o| o.peak_rss as f64);
    mem.note = format!("{sizes}; peak RSS of the whole process (getrusage)");
    Ok(vec![time, mem])
}
