//! The gdb script (`tools/hilos-gdb.py`): in a child process a named green thread parks inside
//! this file's own functions; gdb, attached in batch mode, lists the green threads and prints the
//! parked one's backtrace from its saved registers. Skipped, saying so, where gdb is missing.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

#[inline(never)]
fn gdb_parks_deep_inside(depth: u32) {
    if depth == 0 {
        loop {
            hilos::park();
        }
    }
    gdb_parks_deep_inside(depth - 1);
    std::hint::black_box(depth);
}

#[inline(never)]
fn gdb_target_thread_body() {
    gdb_parks_deep_inside(3);
}

#[test]
fn gdb_lists_green_threads_and_backtraces_a_parked_one() {
    if common::is_child() {
        let rt = hilos::Runtime::builder().workers(2).build().unwrap();
        let _h = rt
            .spawn_with(
                hilos::Builder::new().name("gdb-target".into()),
                gdb_target_thread_body,
            )
            .unwrap();
        // Listed and parked (a thread not started is listed too).
        while !rt.dump().iter().any(|t| {
            t.name() == Some("gdb-target") && t.state() == hilos::runtime::ThreadState::Park
        }) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        println!("READY {}", std::process::id());
        // Killed by the test once gdb is done; gone on its own if the test failed first.
        std::thread::sleep(std::time::Duration::from_secs(60));
        return;
    }
    if !cfg!(target_arch = "x86_64") || std::env::var_os("HILOS_TEST_RUNNER").is_some() {
        eprintln!("the gdb script reads x86_64 switch frames of a native process: skipped");
        return;
    }
    if std::process::Command::new("gdb")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("gdb is not installed: skipped (CI installs it)");
        return;
    }
    let mut child = common::self_command()
        .args([
            "--exact",
            "gdb_lists_green_threads_and_backtraces_a_parked_one",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("HILOS_TEST_CHILD", "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let pid = loop {
        let l = lines.next().expect("child ended early").unwrap();
        // libtest may print "test NAME ... " on the same line first.
        if let Some(i) = l.find("READY ") {
            break l[i + 6..].trim().to_string();
        }
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/hilos-gdb.py");
    let out = std::process::Command::new("gdb")
        .args(["-p", &pid, "-batch", "-nx", "-x", script])
        .args(["-ex", "hilos threads", "-ex", "hilos bt gdb-target"])
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("'gdb-target' [park"),
        "stdout: {text}\nstderr: {err}"
    );
    assert!(
        text.contains("gdb_parks_deep_inside"),
        "stdout: {text}\nstderr: {err}"
    );
    assert!(
        text.contains("gdb_target_thread_body"),
        "stdout: {text}\nstderr: {err}"
    );
}
