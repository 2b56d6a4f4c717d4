//! Shared by the integration tests.
#![allow(dead_code)]

use std::sync::OnceLock;

#[path = "child.rs"]
mod child;
pub use child::self_command;

/// A 1-worker runtime: anything that blocks the worker kernel thread deadlocks it, so tests on it
/// prove that only green threads block.
pub fn one_worker() -> &'static hilos::Runtime {
    static RT: OnceLock<hilos::Runtime> = OnceLock::new();
    RT.get_or_init(|| hilos::Runtime::builder().workers(1).build().unwrap())
}

/// A runtime with two workers (cross-worker wake-ups, stealing).
pub fn two_workers() -> &'static hilos::Runtime {
    static RT: OnceLock<hilos::Runtime> = OnceLock::new();
    RT.get_or_init(|| hilos::Runtime::builder().workers(2).build().unwrap())
}

/// Runs `f` as a green thread on a 1-worker runtime and on a 2-worker runtime.
pub fn on_both<F>(f: F)
where
    F: Fn() + Send + Sync,
{
    one_worker().block_on(&f);
    two_workers().block_on(&f);
}

/// Runs `f` under a watchdog: fails the test instead of hanging CI if it takes longer than `secs`.
pub fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(r);
    });
    match rx.recv_timeout(std::time::Duration::from_secs(secs)) {
        Ok(Ok(v)) => v,
        Ok(Err(p)) => std::panic::resume_unwind(p),
        Err(_) => panic!("timed out after {secs}s (deadlock or lost wake-up?)"),
    }
}

/// Re-runs the current test binary as a child running only `test` with `env` set, and returns its
/// output. The child sees `HILOS_TEST_CHILD=1`.
pub fn run_child(test: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = self_command();
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("HILOS_TEST_CHILD", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

pub fn is_child() -> bool {
    std::env::var_os("HILOS_TEST_CHILD").is_some()
}
