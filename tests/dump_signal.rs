//! A thread dump on a signal, opt-in through the builder or `HILOS_DUMP_SIGNAL`: the child
//! parks a named green thread, signals itself, and the dump appears on its stderr.

mod common;

use std::time::{Duration, Instant};

/// The child's body: a named thread parks, the process signals itself until the dump names it.
fn child(builder: hilos::runtime::Builder) {
    let rt = builder.workers(2).build().unwrap();
    let h = rt
        .spawn_with(hilos::Builder::new().name("sig-parked".into()), || {
            hilos::park()
        })
        .unwrap();
    // Listed and parked (a thread not started is listed too).
    while !rt
        .dump()
        .iter()
        .any(|t| t.name() == Some("sig-parked") && t.state() == hilos::runtime::ThreadState::Park)
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    // SAFETY: sends a signal to this process, which has a handler for it.
    unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
    // The dump thread writes soon after; give it time, then end.
    std::thread::sleep(Duration::from_millis(500));
    h.thread().unpark();
    h.join().unwrap();
}

fn check(test: &str, env: &[(&str, &str)]) {
    let start = Instant::now();
    let out = common::run_child(test, env);
    assert!(out.status.success(), "child failed: {out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("hilos: thread dump on signal"),
        "stderr: {err}"
    );
    assert!(err.contains("'sig-parked' [park, "), "stderr: {err}");
    assert!(err.contains("switches"), "metrics missing: {err}");
    assert!(start.elapsed() < Duration::from_secs(30));
}

#[test]
fn dump_on_signal_from_the_builder() {
    if common::is_child() {
        child(hilos::Runtime::builder().dump_on_signal(libc::SIGUSR1));
        return;
    }
    check("dump_on_signal_from_the_builder", &[]);
}

#[test]
fn dump_on_signal_from_the_environment() {
    if common::is_child() {
        child(hilos::Runtime::builder());
        return;
    }
    check(
        "dump_on_signal_from_the_environment",
        &[("HILOS_DUMP_SIGNAL", "USR1")],
    );
}
