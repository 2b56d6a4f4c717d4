//! Shared by the `io_*` integration tests.
#![allow(dead_code)]

use std::sync::OnceLock;

#[path = "../common/mod.rs"]
mod common;
pub use common::self_command;
use std::time::Duration;

/// A 1-worker runtime: anything that blocks the worker kernel thread stalls every other green
/// thread, so tests on it prove that only the green thread blocks.
pub fn rt1() -> &'static hilos::Runtime {
    static RT: OnceLock<hilos::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        let rt = hilos::Runtime::builder().workers(1).build().unwrap();
        assert_eq!(rt.io_backend(), expected_backend());
        rt
    })
}

/// A 2-worker runtime.
pub fn rt2() -> &'static hilos::Runtime {
    static RT: OnceLock<hilos::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        let rt = hilos::Runtime::builder().workers(2).build().unwrap();
        assert_eq!(rt.io_backend(), expected_backend());
        rt
    })
}

/// The backend the environment asks for (this machine has io_uring; CI's too).
pub fn expected_backend() -> hilos::io::IoBackend {
    match std::env::var("HILOS_IO") {
        Ok(v) if v == "epoll" => hilos::io::IoBackend::Epoll,
        _ => hilos::io::IoBackend::IoUring,
    }
}

/// Runs `f` under a watchdog: fails instead of hanging if it takes longer than `secs`.
pub fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(r);
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(Ok(v)) => v,
        Ok(Err(p)) => std::panic::resume_unwind(p),
        Err(_) => panic!("timed out after {secs}s (a blocked worker or a lost wake-up?)"),
    }
}

pub fn is_child() -> bool {
    std::env::var_os("HILOS_TEST_CHILD").is_some()
}

/// Re-runs every test of this binary but `skip` in a child process with `HILOS_IO=epoll`, and
/// fails if any fails there: the same suite, on the fallback backend.
pub fn rerun_under_epoll(skip: &str) {
    if is_child() {
        return;
    }
    let out = self_command()
        .args(["--skip", skip, "--test-threads=2"])
        .env("HILOS_TEST_CHILD", "1")
        .env("HILOS_IO", "epoll")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the suite failed under HILOS_IO=epoll:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("test result: ok"),
        "no test ran under epoll:\n{stdout}"
    );
    eprintln!(
        "under epoll: {}",
        stdout
            .lines()
            .find(|l| l.contains("test result"))
            .unwrap_or("")
    );
}

/// Raises the soft limit on open descriptors to the hard limit; returns the new soft limit.
pub fn raise_nofile() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a live rlimit.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        if r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
    r.rlim_cur
}

/// Completes `n` yields on the calling green thread.
pub fn yields(n: u32) {
    for _ in 0..n {
        hilos::yield_now();
    }
}
