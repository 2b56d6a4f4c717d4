//! The comparison harness at tiny sizes: every workload of `cargo run --release -p compare` runs
//! here through the same code (included by path), the live-threads probe in-process instead of in
//! a child, and the report with its plots is written to a temporary directory. Figures are checked
//! for sanity only (positive, finite, N reached), never against a time.

#[path = "../compare/src/workloads/mod.rs"]
#[allow(dead_code)]
mod workloads;

#[path = "../compare/src/machine.rs"]
#[allow(dead_code)]
mod machine;
#[path = "../compare/src/report.rs"]
#[allow(dead_code)]
mod report;
#[path = "../compare/src/svg.rs"]
#[allow(dead_code)]
mod svg;

use std::sync::Mutex;
use std::time::Instant;

use workloads::live::{self, Kind, LiveOutcome};
use workloads::{Ctx, Failure, Metric, Row, Scale, Value, measure, micro, table};

/// Every line of `text` is at most 100 characters.
fn assert_fits(text: &str) {
    for l in text.lines() {
        let n = l.chars().count();
        assert!(
            n <= table::WIDTH && table::WIDTH == 100,
            "{n} characters: {l:?}\n{text}"
        );
    }
}

/// `s` as it appears in SVG text.
fn xml_escaped(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn check_row(r: &Row) {
    let sides = [("hilos", &r.hilos), ("std", &r.std)];
    for (side, v) in sides {
        if let Some(x) = v.figure() {
            assert!(
                x.is_finite(),
                "{} / {} / {side}: not finite: {x}",
                r.workload,
                r.case
            );
            // Memory of green threads includes a machine-wide kernel figure that other
            // processes move; everything else must be strictly positive.
            if !(r.metric == Metric::BytesPerThread && side == "hilos") {
                assert!(
                    x > 0.0,
                    "{} / {} / {side}: not positive: {x}",
                    r.workload,
                    r.case
                );
            }
        }
    }
    for m in [r.hilos_predicted, r.std_predicted].into_iter().flatten() {
        assert!(
            m.is_finite() && m > 0.0,
            "{} / {}: bad predicted figure {m}",
            r.workload,
            r.case
        );
    }
    if let Some(ratio) = r.ratio() {
        assert!(
            ratio.is_finite() && ratio > 0.0,
            "{}: bad ratio {ratio}",
            r.case
        );
    }
    let cells = workloads::table::row_cells(r);
    assert!(cells.iter().all(|c| !c.contains('\n')));
}

#[test]
fn every_workload_runs_at_tiny_size_and_the_report_is_written() {
    let t0 = Instant::now();
    let lines = Mutex::new(Vec::<String>::new());
    let progress = |m: &str| lines.lock().unwrap().push(m.to_string());
    let probe = |k: Kind, n: usize| live::run(k, n);
    let ctx = Ctx::new(Scale::Tiny, &probe, &progress);

    let mut outcomes = Vec::new();
    for w in workloads::all() {
        let t = Instant::now();
        let result = (w.run)(&ctx);
        match &result {
            Ok(rows) => {
                assert!(!rows.is_empty(), "{} gave no rows", w.name);
                for r in rows {
                    assert_eq!(r.workload, w.name);
                    check_row(r);
                }
            }
            Err(Failure::Unavailable(m)) => assert!(m.contains("not available yet"), "{m}"),
            Err(Failure::Failed(m)) => panic!("workload {} failed: {m}", w.name),
        }
        outcomes.push(report::Outcome {
            name: w.name,
            about: w.about,
            method: w.method,
            result,
            secs: t.elapsed().as_secs_f64(),
        });
    }

    // The x values a workload's rows must carry: one per size, in order.
    let xs_of =
        |sizes: &[usize]| -> Vec<Option<f64>> { sizes.iter().map(|&n| Some(n as f64)).collect() };
    // The x values its rows do carry.
    let xs = |rows: &[Row]| -> Vec<Option<f64>> { rows.iter().map(|r| r.x).collect() };
    let rows_of = |name: &str| -> Vec<Row> {
        outcomes
            .iter()
            .find(|o| o.name == name)
            .and_then(|o| o.result.clone().ok())
            .unwrap_or_else(|| panic!("{name} gave no rows"))
    };
    // Both sides measured where both must be.
    for name in ["spawn", "switch"] {
        let first = &rows_of(name)[0];
        assert!(first.ratio().is_some(), "{name}: no ratio: {first:?}");
    }
    assert!(ctx.switch_costs.get().is_some());
    // Channel ping-pong: one worker and two workers, both sides measured.
    let channel = rows_of("channel");
    assert_eq!(channel.len(), 2, "{channel:?}");
    for r in &channel {
        assert_eq!(r.metric, Metric::NsPerOp);
        assert!(r.ratio().is_some(), "channel: no ratio: {r:?}");
    }
    // Mutex contention: one row per T, both sides measured, the prediction in the note.
    let mutex = rows_of("mutex");
    assert_eq!(xs(&mutex), xs_of(&ctx.sizes.mutex_threads));
    for r in &mutex {
        assert_eq!(r.metric, Metric::PerSec);
        assert!(r.ratio().is_some(), "mutex: no ratio: {r:?}");
        assert!(
            r.hilos_predicted.is_some() && r.std_predicted.is_some(),
            "{r:?}"
        );
        assert!(r.note.contains("predicted"), "{r:?}");
    }
    // The live-threads workload reached every tiny N with both kinds.
    let threads = rows_of("threads");
    let mem: Vec<&Row> = threads
        .iter()
        .filter(|r| r.metric == Metric::BytesPerThread)
        .collect();
    assert_eq!(mem.len(), ctx.sizes.live_steps_hilos.len());
    for r in &mem {
        assert!(r.x.is_some());
        assert!(r.hilos.get().is_some() && r.std.get().is_some(), "{r:?}");
    }
    let max = threads.last().unwrap();
    let biggest = *ctx.sizes.live_steps_hilos.iter().max().unwrap() as f64;
    assert_eq!(max.hilos, Value::AtLeast(biggest), "{max:?}");
    assert_eq!(max.std, Value::AtLeast(biggest), "{max:?}");
    // Blocked-I/O fairness: one row per N (nobody blocked, then N blocked), both sides measured.
    let fairness = rows_of("fairness");
    assert_eq!(xs(&fairness), xs_of(&ctx.sizes.fairness_blocked));
    for r in &fairness {
        assert_eq!(r.metric, Metric::NsPerOp);
        assert!(r.ratio().is_some(), "fairness: no ratio: {r:?}");
    }
    // Echo and HTTP throughput: one row per connection count, both sides measured (servers in
    // process).
    for name in ["echo", "http"] {
        let rows = rows_of(name);
        assert_eq!(xs(&rows), xs_of(&ctx.sizes.echo_conns), "{name}");
        for r in &rows {
            assert_eq!(r.metric, Metric::PerSec);
            assert!(r.ratio().is_some(), "{name}: no ratio: {r:?}");
        }
    }
    assert!(!lines.lock().unwrap().is_empty(), "no progress reported");

    // The text table and the report.
    let all_rows: Vec<Row> = outcomes
        .iter()
        .filter_map(|o| o.result.clone().ok())
        .flatten()
        .collect();
    // The table of the real rows fits a 100-column terminal, and so does everything else printed
    // (progress lines, the failure lines, the legend), wrapped the same way.
    let table = workloads::table::text_table(&all_rows);
    assert!(table.lines().count() >= all_rows.len() + 2, "{table}");
    assert_fits(&table);
    for o in &outcomes {
        assert_fits(&table::wrapped(&format!("{:<10} ", o.name), o.about, 11));
    }
    for l in lines.lock().unwrap().iter() {
        assert_fits(&table::wrapped("[ 123.4s] ", l, 10));
    }
    assert_fits(&table::wrapped("", table::BETTER, 0));

    let dir = std::env::temp_dir().join(format!("hilos-harness-test-{}", std::process::id()));
    let machine = machine::describe();
    let files = report::write(
        &dir,
        &report::Report {
            command: "test".into(),
            machine: &machine,
            outcomes: &outcomes,
            total_secs: t0.elapsed().as_secs_f64(),
        },
    )
    .unwrap();
    assert_eq!(files.len(), 6);
    let md = std::fs::read_to_string(&files[0]).unwrap();
    for needle in [
        "## Machine",
        "| spawn |",
        "memory.svg",
        "spawn.svg",
        "throughput.svg",
        "http.svg",
        "mutex.svg",
        "## Details of the rows",
        "| fairness |",
        "| echo |",
        "| http |",
    ] {
        assert!(md.contains(needle), "report lacks {needle:?}:\n{md}");
    }
    // Every plot says when and on what it was measured; those with repetitions show their
    // spread.
    let when = report::machine_caption(&machine);
    let cpu = &machine.iter().find(|(k, _)| *k == "CPU").unwrap().1;
    for plot in [
        "memory.svg",
        "spawn.svg",
        "throughput.svg",
        "http.svg",
        "mutex.svg",
    ] {
        let svg = std::fs::read_to_string(dir.join(plot)).unwrap();
        assert!(
            svg.contains(&xml_escaped(&when)),
            "{plot} lacks {when:?}: {svg}"
        );
        assert!(
            svg.contains(&xml_escaped(cpu)) && svg.contains(" cores · "),
            "{plot}"
        );
        assert!(svg.contains(" UTC · "), "{plot}");
        if plot != "memory.svg" && plot != "spawn.svg" {
            // Two sides, one bar per point.
            let points = svg.matches("<circle").count();
            assert!(points >= 2, "{plot}: {svg}");
            assert_eq!(
                svg.matches(r#"class="spread""#).count(),
                points,
                "{plot}: {svg}"
            );
        }
    }
    let memory_svg = std::fs::read_to_string(dir.join("memory.svg")).unwrap();
    assert_eq!(memory_svg.matches("<polyline").count(), 2, "{memory_svg}");
    for plot in ["throughput.svg", "http.svg"] {
        let svg = std::fs::read_to_string(dir.join(plot)).unwrap();
        assert_eq!(svg.matches("<polyline").count(), 2, "{plot}: {svg}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn micro_workloads_time_their_iterations() {
    let rt = micro::one_worker_runtime();
    assert!(micro::hilos_yield_roundtrips(&rt, 100) > std::time::Duration::ZERO);
    assert!(micro::std_park_roundtrips(20) > std::time::Duration::ZERO);
    assert!(micro::hilos_spawn_join(20) > std::time::Duration::ZERO);
    assert!(micro::std_spawn_join(5) > std::time::Duration::ZERO);
    // Zero from the hook means "cannot time it here", never a zero figure.
    if let Some(d) = micro::bare_switch_roundtrips(100) {
        assert!(d > std::time::Duration::ZERO);
    }
    let s = measure::per_op(&workloads::Sizes::of(Scale::Tiny).budget, |i| {
        micro::hilos_yield_roundtrips(&rt, i)
    });
    assert!(s.median_ns > 0.0 && s.min_ns <= s.median_ns && s.median_ns <= s.max_ns);
    assert!(s.iters >= 1 && s.reps == 3);
}

#[test]
fn median_and_formats() {
    assert_eq!(measure::median(&mut [3.0, 1.0, 2.0]), 2.0);
    assert_eq!(measure::median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    assert_eq!(workloads::group_thousands(1_234_567), "1,234,567");
    assert_eq!(workloads::group_thousands(999), "999");
    assert_eq!(workloads::format_ns(12.34), "12.3 ns");
    assert_eq!(workloads::format_ns(1_500.0), "1.50 µs");
    assert_eq!(workloads::format_bytes(8192.0), "8.0 KiB");
    assert_eq!(workloads::format_ratio(3287.2), "3,287×");
    assert_eq!(workloads::format_ratio(0.5), "0.50×");
    assert_eq!(svg::short_count(1e6), "1M");
    assert_eq!(svg::tick_label(150_000.0, workloads::format_ns), "150 µs");
    assert_eq!(svg::tick_label(2560.0, workloads::format_bytes), "2.5 KiB");
    assert_eq!(svg::tick_label(0.0, workloads::format_bytes), "0");
    assert_eq!(svg::short_count(32_000.0), "32k");
    assert_eq!(machine::civil_from_days(0), (1970, 1, 1));
    assert_eq!(machine::civil_from_days(11_016), (2000, 2, 29));
    assert_eq!(machine::civil_from_days(20_000), (2024, 10, 4));
    assert_eq!(workloads::predicted_throughput(100.0, 100.0), 5e6);
    let mut r = Row::new("x", "y", Metric::PerSec);
    r.hilos = Value::of(300.0);
    r.std = Value::of(100.0);
    assert_eq!(r.ratio(), Some(3.0));
    r.metric = Metric::NsPerOp;
    assert_eq!(r.ratio(), Some(1.0 / 3.0));
    r.std = Value::AtLeast(5.0);
    assert_eq!(r.ratio(), None);
}

#[test]
fn live_outcome_survives_the_child_pipe() {
    let mut o = LiveOutcome::failed(
        100_000,
        "spawn 32741 failed: Resource temporarily unavailable (os error 11)".into(),
    );
    o.reached = 32_740;
    o.rss = 123_456;
    o.page_tables = -4096;
    o.kernel_stacks = 16_384;
    o.spawn = std::time::Duration::from_nanos(987_654_321);
    let line = format!("noise before\n{}\nnoise after\n", o.encode());
    assert_eq!(LiveOutcome::decode(&line), Some(o.clone()));
    o.error = None;
    assert_eq!(LiveOutcome::decode(&o.encode()), Some(o));
    assert_eq!(LiveOutcome::decode("thread 'main' panicked"), None);
    assert_eq!(LiveOutcome::decode("HILOS-LIVE n=1 reached=x"), None);
}

#[test]
fn a_dead_child_says_why() {
    let abort = "\nthread '<unnamed>' (14771) panicked at library/std/src/sys/pal/unix/stack_overflow.rs:240:13:\n\
                 failed to set up alternative stack guard page: Cannot allocate memory (os error 12)\n\
                 stack backtrace:\n   0: foo\n             at src/x.rs:1\n\
                 note: Some details are omitted\nfatal runtime error: failed to initiate panic, error 5, aborting\n";
    assert_eq!(
        live::why_child_died(abort).as_deref(),
        Some("failed to set up alternative stack guard page: Cannot allocate memory (os error 12)")
    );
    assert_eq!(
        live::why_child_died("memory allocation of 4096 bytes failed\n").as_deref(),
        Some("memory allocation of 4096 bytes failed")
    );
    assert_eq!(
        live::why_child_died("probe still running after 45s\n").as_deref(),
        Some("probe still running after 45s")
    );
    assert_eq!(live::why_child_died(""), None);
    let out = format!("{}\n{}\n", live::spawned_line(128), live::spawned_line(256));
    assert_eq!(live::last_spawned(&out), Some(256));
    assert_eq!(live::last_spawned("nothing"), None);
}

#[test]
fn charts_draw_series_and_placeholders() {
    let chart = svg::Chart {
        title: "t <&>".into(),
        x_label: "threads".into(),
        y_label: "bytes".into(),
        log_x: true,
        log_y: false,
        y_format: workloads::format_bytes,
        y_unit: 1024.0,
        series: vec![
            svg::Series {
                name: "hilos".into(),
                color: "red",
                points: vec![(1e3, 5000.0), (1e6, 4000.0), (1e4, f64::NAN)],
                spread: vec![
                    (1e3, 4000.0, 6000.0),
                    (1e6, 3900.0, 4100.0),
                    (1e4, 1.0, f64::NAN),
                ],
            },
            svg::Series {
                name: "std::thread".into(),
                color: "blue",
                points: vec![(1e3, 30_000.0), (0.0, 1.0)],
                spread: Vec::new(),
            },
        ],
        placeholder: None,
        markers: vec![svg::Marker {
            x: 32_740.0,
            color: "blue",
            label: "std stopped here: spawn failed: Resource temporarily unavailable".into(),
        }],
        caption: vec!["2026-11-30 18:47 UTC · AMD EPYC · 2 cores · Linux 6.18.0".into()],
    };
    let s = chart.render();
    assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
    assert!(s.contains("t &lt;&amp;&gt;"));
    assert_eq!(s.matches("<polyline").count(), 2);
    // NaN and a zero on a log axis are left out: 2 + 1 points.
    assert_eq!(s.matches("<circle").count(), 3);
    assert!(s.contains(">1M<") && s.contains(">1k<"));
    assert!(!s.contains("NaN") && !s.contains("inf"));
    // Two bars (the NaN one is left out), the stop mark with its label, the caption.
    assert_eq!(s.matches(r#"class="spread""#).count(), 2);
    assert_eq!(s.matches(r#"class="stop""#).count(), 1);
    assert!(
        s.contains(">std stopped here: spawn failed: Resource<"),
        "{s}"
    );
    assert!(s.contains(">2026-11-30 18:47 UTC · AMD EPYC · 2 cores · Linux 6.18.0<"));

    let empty = svg::Chart {
        series: vec![],
        placeholder: Some("n/a: not yet".into()),
        ..chart
    };
    let e = empty.render();
    assert!(e.contains("n/a: not yet") && !e.contains("<polyline"));
    assert!(!e.contains(r#"class="stop""#) && !e.contains(r#"class="spread""#));
}

#[test]
fn long_cells_and_notes_wrap_within_100_columns() {
    let mut r = Row::new(
        "threads",
        "spawn+join/thread, N = 1,000,000 live, a case longer than its column",
        Metric::NsPerOp,
    );
    r.hilos = Value::of(16_270.0);
    r.std = Value::Missing("skipped: would need about 23.4 GiB, 10.0 GiB available".into());
    r.note = "std: at N = 100,000: failed to set up alternative stack guard page: Cannot \
              allocate memory (os error 12) (child process aborted after about 32,740 spawns); "
        .repeat(2);
    let mut w = Row::new("a-workload-name-too-long", "x", Metric::PerSec);
    w.hilos = Value::Missing("a".repeat(150));
    let t = workloads::table::text_table(&[r, w]);
    assert_fits(&t);
    // Nothing is cut off: the words of long cells are all there.
    for word in ["23.4", "available", "32,740", "column", "too-long"] {
        assert!(t.contains(word), "{word}: {t}");
    }
    assert!(t.matches('a').count() >= 150);
    assert_fits(&table::wrapped("[   1.0s] ", &"word ".repeat(60), 10));
    assert_eq!(table::wrap("", 10), [""]);
    assert_eq!(table::wrap("ab cd ef", 5), ["ab cd", "ef"]);
    assert_eq!(table::wrap("abcdefgh", 3), ["abc", "def", "gh"]);
    assert_eq!(table::wrap("µµµµ x", 2), ["µµ", "µµ", "x"]);
}
