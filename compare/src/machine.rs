//! What machine the comparison ran on, read from /proc (Linux).

use std::time::{SystemTime, UNIX_EPOCH};

/// Facts about the machine and the build, as (label, value) pairs for the report.
pub fn describe() -> Vec<(&'static str, String)> {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let cpuinfo = read("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == "model name").then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let logical = cpuinfo
        .lines()
        .filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor"))
        .count();
    let usable = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = read("/proc/meminfo").unwrap_or_default();
    let mem = |field: &str| {
        meminfo.lines().find_map(|l| {
            let rest = l.strip_prefix(field)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<f64>().ok()
        })
    };
    let gib = |kb: f64| format!("{:.1} GiB", kb / (1024.0 * 1024.0));
    let one_line = |p: &str| read(p).map_or_else(|| "unknown".into(), |s| s.trim().to_string());

    vec![
        ("date (UTC)", now_utc()),
        ("CPU", cpu),
        (
            "cores",
            format!("{usable} usable by this process ({logical} logical CPUs)"),
        ),
        (
            "memory",
            format!(
                "{} total, {} available at start",
                mem("MemTotal").map_or("unknown".into(), gib),
                mem("MemAvailable").map_or("unknown".into(), gib)
            ),
        ),
        (
            "kernel",
            format!(
                "{} {}",
                one_line("/proc/sys/kernel/ostype"),
                one_line("/proc/sys/kernel/osrelease")
            ),
        ),
        (
            "thread limits",
            format!(
                "pid_max {}, threads-max {}, vm.max_map_count {}",
                one_line("/proc/sys/kernel/pid_max"),
                one_line("/proc/sys/kernel/threads-max"),
                one_line("/proc/sys/vm/max_map_count")
            ),
        ),
        (
            "hilos",
            format!(
                "{} (stack guard: {})",
                env!("CARGO_PKG_VERSION"),
                hilos::__private::stack_guard_mechanism()
            ),
        ),
        (
            "build",
            if cfg!(debug_assertions) {
                "debug (figures are not representative: use --release)".into()
            } else {
                "release".into()
            },
        ),
    ]
}

/// The current time in UTC, `YYYY-MM-DD HH:MM`.
pub fn now_utc() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// The date (year, month, day) `days` after 1970-01-01 in the proleptic Gregorian calendar.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift to a calendar whose years start in March, so the leap day ends a year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of the 400-year era
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153; // month from March = 0
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
