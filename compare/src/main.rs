//! hilos against `std::thread`, on this machine, in one command:
//!
//! ```text
//! cargo run --release -p compare -- --quick # smaller sizes, under 30 s
//! cargo run --release -p compare            # everything, under 3 minutes on 2 cores
//! ```
//!
//! Each workload runs hilos and std side by side in the same run and reports the ratio. Progress
//! goes to stderr, the table to stdout (or JSON lines with `--json`), and a report with plots to
//! `target/hilos-report/`. Run with `--help` for the options.

#[allow(dead_code)]
mod workloads;

mod machine;
mod report;
mod svg;

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use report::{Outcome, Report};
use workloads::live::{self, Kind, LiveOutcome};
use workloads::skynet::SkynetOutcome;
use workloads::{Ctx, Failure, Row, Scale, table};

const HELP: &str = "\
compare: hilos green threads against std::thread on this machine

USAGE:
    cargo run --release -p compare -- [OPTIONS]

OPTIONS:
    --quick        smaller sizes: the whole run in under 30 s on 2 cores
    --json         print results as JSON lines on stdout instead of a table
    --only NAME    run only workload NAME (may be given several times)
    --list         list the workloads and exit
    --out DIR      write the report there (default: <target dir>/hilos-report)
    --help         this text
    --load ADDR CONNS SECS [SERVER_PID]
                   only the echo load generator, against an echo server at ADDR
                   (used by benches/peers/echo/run.sh)

Progress goes to stderr. The report (report.md and SVG plots) is written to
<target dir>/hilos-report/ (target/hilos-report/ by default). A workload that
fails says why and the others go on; the exit status is 1 if any failed.
";

struct Args {
    scale: Scale,
    json: bool,
    only: Vec<String>,
    list: bool,
    out: Option<PathBuf>,
}

/// `--load ADDR CONNS SECS [PID]`: the echo workload's load generator alone, against any echo
/// server at ADDR (benches/peers/echo runs Go's and tokio's with it); PID, the server's process,
/// is read for its CPU time. Prints one line: rate, server and generator CPU per request.
fn load_main(a: Vec<String>) -> ExitCode {
    let usage = "usage: compare --load ADDR CONNS SECS [SERVER_PID]";
    let (Some(addr), Some(conns), Some(secs)) = (
        a.first().and_then(|s| s.parse().ok()),
        a.get(1).and_then(|s| s.parse::<usize>().ok()),
        a.get(2).and_then(|s| s.parse::<f64>().ok()),
    ) else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let pid = a.get(3).cloned();
    let cpu = || {
        pid.as_deref()
            .map_or_else(workloads::net::Cpu::default, workloads::net::Cpu::of)
    };
    let l = workloads::net::load(
        addr,
        workloads::net::Proto::Echo,
        conns,
        2,
        Duration::from_millis(500),
        Duration::from_secs_f64(secs),
        &cpu,
    );
    println!(
        "conns={conns} rate_kps={:.1} failed={} server_us={:.2} server_user_us={:.2} client_us={:.2}",
        l.rate() / 1e3,
        l.failed,
        l.cpu_us_per_request(),
        l.user_us_per_request(),
        l.client_us_per_request()
    );
    ExitCode::SUCCESS
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut a = Args {
        scale: Scale::Full,
        json: false,
        only: Vec::new(),
        list: false,
        out: None,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => a.scale = Scale::Quick,
            "--json" => a.json = true,
            "--list" => a.list = true,
            "--only" => a
                .only
                .push(args.next().ok_or("--only needs a workload name")?),
            "--out" => a.out = Some(args.next().ok_or("--out needs a directory")?.into()),
            "--help" | "-h" => return Ok(None),
            other => {
                if let Some(name) = other.strip_prefix("--only=") {
                    a.only.push(name.into());
                } else {
                    return Err(format!("unknown argument `{other}` (see --help)"));
                }
            }
        }
    }
    Ok(Some(a))
}

fn main() -> ExitCode {
    // An echo server child process (`--hilos-net-serve KIND`) serves and exits here.
    workloads::net::maybe_serve();
    let mut argv = std::env::args().skip(1).peekable();
    if argv.peek().map(String::as_str) == Some("--child") {
        return child_main(argv.skip(1).collect());
    }
    if argv.peek().map(String::as_str) == Some("--load") {
        return load_main(argv.skip(1).collect());
    }
    let args = match parse_args(argv) {
        Ok(Some(a)) => a,
        Ok(None) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("compare: {e}");
            return ExitCode::from(2);
        }
    };
    let all = workloads::all();
    if args.list {
        for w in &all {
            println!(
                "{}",
                table::wrapped(&format!("{:<10} ", w.name), w.about, 11)
            );
        }
        return ExitCode::SUCCESS;
    }
    for name in &args.only {
        if !all.iter().any(|w| w.name == name) {
            let names: Vec<_> = all.iter().map(|w| w.name).collect();
            eprintln!(
                "compare: no workload named `{name}`; there are: {}",
                names.join(", ")
            );
            return ExitCode::from(2);
        }
    }
    let selected: Vec<_> = all
        .into_iter()
        .filter(|w| args.only.is_empty() || args.only.iter().any(|n| n == w.name))
        .collect();
    run(&args, selected)
}

/// Seconds since the run started, for progress lines.
static START: Mutex<Option<Instant>> = Mutex::new(None);

fn progress(msg: &str) {
    let t = START
        .lock()
        .unwrap()
        .map_or(0.0, |s| s.elapsed().as_secs_f64());
    eprintln!("{}", table::wrapped(&format!("[{t:6.1}s] "), msg, 10));
}

/// The workload now running and when it must be done by; a watchdog thread ends the run if a
/// workload hangs, so the command never hangs silently.
static WATCH: Mutex<Option<(&'static str, Instant)>> = Mutex::new(None);

fn start_watchdog() {
    std::thread::spawn(|| {
        loop {
            std::thread::sleep(Duration::from_millis(250));
            if let Some((name, deadline)) = *WATCH.lock().unwrap()
                && Instant::now() > deadline
            {
                progress(&format!(
                    "{name}: still running past its time limit: giving up on the whole run"
                ));
                std::process::exit(3);
            }
        }
    });
}

fn workload_limit(scale: Scale) -> Duration {
    match scale {
        Scale::Full => Duration::from_secs(240),
        _ => Duration::from_secs(90),
    }
}

fn child_limit(scale: Scale) -> Duration {
    match scale {
        Scale::Full => Duration::from_secs(100),
        _ => Duration::from_secs(40),
    }
}

fn run(args: &Args, selected: Vec<workloads::Workload>) -> ExitCode {
    *START.lock().unwrap() = Some(Instant::now());
    let started = Instant::now();
    start_watchdog();
    let machine = machine::describe();
    let mode = match args.scale {
        Scale::Full => "full",
        Scale::Quick => "quick",
        Scale::Tiny => "tiny",
    };
    progress(&format!(
        "hilos vs std::thread, {mode} run of {} workload(s)",
        selected.len()
    ));
    for (k, v) in &machine {
        progress(&format!("  {k}: {v}"));
    }
    if args.json {
        let fields: Vec<String> = machine
            .iter()
            .map(|(k, v)| format!("{}:{}", json_str(&json_key(k)), json_str(v)))
            .collect();
        println!(
            "{{\"type\":\"machine\",\"mode\":{},{}}}",
            json_str(mode),
            fields.join(",")
        );
    }

    let limit = child_limit(args.scale);
    let probe = move |kind: Kind, n: usize| child_probe(kind, n, limit);
    let mut ctx = Ctx::new(args.scale, &probe, &progress);
    ctx.net_in_child = true;
    let skynet = move |kind: Kind, leaves: u64| child_skynet(kind, leaves, limit);
    ctx.skynet = &skynet;
    let mut outcomes = Vec::new();
    let total = selected.len();
    for (i, w) in selected.iter().enumerate() {
        progress(&format!("[{}/{total}] {}: {}", i + 1, w.name, w.about));
        *WATCH.lock().unwrap() = Some((w.name, Instant::now() + workload_limit(args.scale)));
        let t0 = Instant::now();
        let result = match catch_unwind(AssertUnwindSafe(|| (w.run)(&ctx))) {
            Ok(r) => r,
            Err(payload) => Err(Failure::Failed(format!(
                "panicked: {}",
                panic_message(payload.as_ref())
            ))),
        };
        *WATCH.lock().unwrap() = None;
        let secs = t0.elapsed().as_secs_f64();
        match &result {
            Ok(_) => progress(&format!("{}: done in {secs:.1}s", w.name)),
            Err(Failure::Unavailable(m)) => progress(&format!("{}: {m}", w.name)),
            Err(Failure::Failed(m)) => progress(&format!("{}: FAILED: {m}", w.name)),
        }
        if args.json {
            print_json(w.name, &result);
        }
        // A few of the global runtime's counters (the spawn workload runs on it), as a user of
        // `hilos::runtime::metrics` would see them.
        if w.name == "spawn" {
            let m = hilos::runtime::metrics();
            let sum = |f: fn(&hilos::runtime::WorkerMetrics) -> u64| -> u64 {
                m.workers.iter().map(f).sum()
            };
            progress(&format!(
                "  hilos metrics: {} threads spawned, {} switches, {} steals, {} sleeps, {} \
                 wake-ups from other threads, {} MiB of stacks mapped ({:.1} MiB committed)",
                m.total_threads,
                sum(|w| w.switches),
                sum(|w| w.steals),
                sum(|w| w.sleeps),
                sum(|w| w.wakeups),
                m.stacks_mapped_bytes >> 20,
                m.stacks_committed_bytes as f64 / (1 << 20) as f64
            ));
        }
        outcomes.push(Outcome {
            name: w.name,
            about: w.about,
            method: w.method,
            result,
            secs,
        });
    }

    if !args.json {
        let rows: Vec<Row> = outcomes
            .iter()
            .filter_map(|o| o.result.as_ref().ok())
            .flatten()
            .cloned()
            .collect();
        print!("{}", workloads::table::text_table(&rows));
        for o in &outcomes {
            let prefix = format!("{}: ", o.name);
            match &o.result {
                Err(Failure::Unavailable(m)) => println!("{}", table::wrapped(&prefix, m, 2)),
                Err(Failure::Failed(m)) => {
                    println!("{}", table::wrapped(&prefix, &format!("FAILED: {m}"), 2))
                }
                Ok(_) => {}
            }
        }
        println!("{}", table::wrapped("", table::BETTER, 0));
    }

    let mut command = String::from("cargo run --release -p compare");
    let mut extra = Vec::new();
    if args.scale == Scale::Quick {
        extra.push("--quick".to_string());
    }
    for n in &args.only {
        extra.push(format!("--only {n}"));
    }
    if !extra.is_empty() {
        command = format!("{command} -- {}", extra.join(" "));
    }
    let dir = args.out.clone().unwrap_or_else(default_report_dir);
    let r = Report {
        command,
        machine: &machine,
        outcomes: &outcomes,
        total_secs: started.elapsed().as_secs_f64(),
    };
    match report::write(&dir, &r) {
        Ok(files) => progress(&format!(
            "report: {} (and {} plot(s))",
            files[0].display(),
            files.len() - 1
        )),
        Err(e) => {
            progress(&format!(
                "cannot write the report to {}: {e}",
                dir.display()
            ));
            return ExitCode::FAILURE;
        }
    }
    progress(&format!(
        "finished in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    if outcomes
        .iter()
        .any(|o| matches!(o.result, Err(Failure::Failed(_))))
    {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `<target dir>/hilos-report`: the target dir is two levels above this executable
/// (`target/release/compare`), else `target` under the current directory.
fn default_report_dir() -> PathBuf {
    let exe = std::env::current_exe().ok();
    let target = exe.as_deref().and_then(|e| {
        let profile = e.parent()?;
        (profile.file_name()? == "release" || profile.file_name()? == "debug")
            .then(|| profile.parent())?
    });
    target
        .map(|t| t.to_path_buf())
        .unwrap_or_else(|| PathBuf::from("target"))
        .join("hilos-report")
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic payload)".into())
}

/// Runs one live-threads probe in a child process (this executable, `--child mem KIND N`), so it
/// starts from a fresh process and whatever the thread limit does to it stays there. Gives back
/// what the child reported, or why it reported nothing.
fn child_probe(kind: Kind, n: usize, limit: Duration) -> LiveOutcome {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return LiveOutcome::failed(n, format!("cannot find this executable: {e}")),
    };
    let spawned = Command::new(exe)
        .args(["--child", "mem", kind.name(), &n.to_string()])
        .arg((limit + Duration::from_secs(5)).as_secs().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return LiveOutcome::failed(n, format!("cannot start a child process: {e}")),
    };
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    };
    let out = drain(child.stdout.take().map(|r| Box::new(r) as _));
    let err = drain(child.stderr.take().map(|r| Box::new(r) as _));
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Ok(st),
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("no answer within {}s: killed", limit.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => break Err(format!("cannot wait for the child: {e}")),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if let Some(o) = LiveOutcome::decode(&stdout) {
        return o;
    }
    let reached = live::last_spawned(&stdout).unwrap_or(0);
    let mut status = match status {
        Ok(st) => match st.signal() {
            Some(6) => "child process aborted".to_string(),
            Some(9) => "child process killed (SIGKILL: out of memory?)".to_string(),
            _ => format!("child process ended with {st}"),
        },
        Err(e) => e,
    };
    if reached > 0 {
        let k = workloads::group_thousands(reached as u64);
        status = format!("{status} after about {k} spawns");
    }
    let error = match live::why_child_died(&stderr) {
        Some(why) => format!("{why} ({status})"),
        None => status,
    };
    let mut out = LiveOutcome::failed(n, error);
    out.reached = reached;
    out
}

/// Runs one skynet in a child process (`--child skynet KIND LEAVES`): peak memory is per
/// process. Returns what the child reported, or why it reported nothing.
fn child_skynet(kind: Kind, leaves: u64, limit: Duration) -> Result<SkynetOutcome, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let out = Command::new(exe)
        .args(["--child", "skynet", kind.name(), &leaves.to_string()])
        .arg(limit.as_secs().to_string())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot start a child process: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    SkynetOutcome::decode(&stdout).ok_or_else(|| {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        format!("child process ended with {}: {last}", out.status)
    })
}

/// `--child mem KIND N [LIMIT_SECS]`: runs one live-threads probe and prints its line;
/// `--child skynet KIND LEAVES [LIMIT_SECS]`: one skynet run.
fn child_main(args: Vec<String>) -> ExitCode {
    let [what, kind, n, rest @ ..] = args.as_slice() else {
        eprintln!("compare --child: expected `mem|skynet KIND N [LIMIT_SECS]`");
        return ExitCode::from(2);
    };
    let (Some(kind), Ok(n)) = (Kind::parse(kind), n.parse::<usize>()) else {
        eprintln!("compare --child: bad kind or count");
        return ExitCode::from(2);
    };
    if what != "mem" && what != "skynet" {
        eprintln!("compare --child: unknown probe `{what}`");
        return ExitCode::from(2);
    }
    let limit = rest
        .first()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(120), Duration::from_secs);
    // Never outlive the parent's patience, even if a thread never wakes up.
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("probe still running after {}s", limit.as_secs());
        std::process::exit(3);
    });
    if what == "skynet" {
        workloads::skynet::probe(kind, n as u64, workloads::skynet::WORKERS);
        std::process::exit(0)
    }
    let outcome = live::run_ticking(kind, n, |k| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", live::spawned_line(k));
        let _ = out.flush();
    });
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", outcome.encode());
    let _ = stdout.flush();
    // Exit at once: nothing left to clean up that the kernel does not.
    std::process::exit(0)
}

/// A label as a JSON key: `date (UTC)` as `date_utc`.
fn json_key(label: &str) -> String {
    let mut k = String::new();
    for c in label.chars() {
        if c.is_ascii_alphanumeric() {
            k.push(c.to_ascii_lowercase());
        } else if !k.is_empty() && !k.ends_with('_') {
            k.push('_');
        }
    }
    k.trim_end_matches('_').to_string()
}

/// `s` as a JSON string literal.
fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_num(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x}"),
        _ => "null".into(),
    }
}

/// One JSON line per row, or one for a workload that gave none.
fn print_json(name: &str, result: &Result<Vec<Row>, Failure>) {
    let mut out = std::io::stdout().lock();
    match result {
        Ok(rows) => {
            for r in rows {
                let side = |v: &workloads::Value| match v {
                    workloads::Value::Measured { v, range } => format!(
                        "{{\"value\":{},\"min\":{},\"max\":{},\"error\":null}}",
                        json_num(Some(*v)),
                        json_num(range.map(|r| r.0)),
                        json_num(range.map(|r| r.1)),
                    ),
                    workloads::Value::AtLeast(v) => format!(
                        "{{\"value\":{},\"at_least\":true,\"error\":null}}",
                        json_num(Some(*v))
                    ),
                    workloads::Value::Missing(why) => {
                        format!("{{\"value\":null,\"error\":{}}}", json_str(why))
                    }
                };
                let _ = writeln!(
                    out,
                    "{{\"type\":\"row\",\"workload\":{},\"case\":{},\"unit\":{},\"x\":{},\"hilos\":{},\"std\":{},\"hilos_better\":{},\"hilos_predicted\":{},\"std_predicted\":{},\"note\":{},\"detail\":{}}}",
                    json_str(r.workload),
                    json_str(&r.case),
                    json_str(r.metric.unit()),
                    json_num(r.x),
                    side(&r.hilos),
                    side(&r.std),
                    json_num(r.ratio()),
                    json_num(r.hilos_predicted),
                    json_num(r.std_predicted),
                    json_str(&r.note),
                    json_str(&r.detail),
                );
            }
        }
        Err(f) => {
            let (status, msg) = match f {
                Failure::Unavailable(m) => ("unavailable", m),
                Failure::Failed(m) => ("failed", m),
            };
            let _ = writeln!(
                out,
                "{{\"type\":\"workload\",\"workload\":{},\"status\":{},\"error\":{}}}",
                json_str(name),
                json_str(status),
                json_str(msg)
            );
        }
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        let args = |a: &[&str]| parse_args(a.iter().map(|s| s.to_string()));
        let a = args(&["--quick", "--only", "mutex", "--only=echo"])
            .unwrap()
            .unwrap();
        assert_eq!(a.scale, Scale::Quick);
        assert_eq!(a.only, ["mutex", "echo"]);
        assert!(args(&["--help"]).unwrap().is_none());
        assert!(args(&["--bogus"]).is_err());
        assert!(args(&["--only"]).is_err());
    }

    #[test]
    fn json() {
        assert_eq!(json_key("date (UTC)"), "date_utc");
        assert_eq!(json_str("a\"b\\\n\u{1}"), r#""a\"b\\\n\u0001""#);
        assert_eq!(json_num(Some(f64::NAN)), "null");
    }

    #[test]
    fn help_and_list_fit_100_columns() {
        let list: Vec<String> = workloads::all()
            .iter()
            .map(|w| table::wrapped(&format!("{:<10} ", w.name), w.about, 11))
            .collect();
        for text in [
            HELP,
            &list.join("\n"),
            &table::wrapped("", table::BETTER, 0),
        ] {
            for l in text.lines() {
                assert!(l.chars().count() <= table::WIDTH, "{l:?}");
            }
        }
    }
}
