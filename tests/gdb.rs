//! The gdb script (`tools/hilos-gdb.py`): in a child process a named green thread parks inside
//! this file's own functions; gdb lists the green threads and prints the parked one's backtrace
//! from its saved registers. Natively (x86_64 or aarch64) gdb attaches to the child in batch
//! mode. In the aarch64 suite run under qemu-user (`tests/arch/rust-aarch64.sh`, which sets
//! `HILOS_TEST_RUNNER`), the child runs under the emulator's gdb stub (`qemu-aarch64 -g PORT`) and
//! `gdb-multiarch` connects to it and stops at [`hilos_gdb_test_ready`]. Skipped, saying so, where
//! gdb (or gdb-multiarch) is missing.

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

/// Called by the child once its named thread is parked: where gdb stops the emulated child.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn hilos_gdb_test_ready() {
    std::hint::black_box(());
}

/// What the gdb script must have printed about the parked thread.
fn check_gdb_output(out: &std::process::Output) {
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

/// The child's arguments: this test alone.
const CHILD_ARGS: [&str; 4] = [
    "--exact",
    "gdb_lists_green_threads_and_backtraces_a_parked_one",
    "--nocapture",
    "--test-threads=1",
];

/// Whether the debugger `prog` runs; says the test is skipped if not.
fn installed(prog: &str) -> bool {
    let ok = std::process::Command::new(prog)
        .arg("--version")
        .output()
        .is_ok();
    if !ok {
        eprintln!("{prog} is not installed: skipped (CI installs it)");
    }
    ok
}

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/hilos-gdb.py");

/// The aarch64 test binary under qemu-user (`runner`, e.g. `qemu-aarch64 -L SYSROOT`): the child
/// runs under the emulator's gdb stub, and gdb-multiarch drives it to `hilos_gdb_test_ready`.
fn under_emulator(runner: &str) {
    if !installed("gdb-multiarch") {
        return;
    }
    let mut words = runner.split_whitespace();
    let qemu = words.next().unwrap();
    let opts: Vec<&str> = words.collect();
    let sysroot = opts
        .iter()
        .position(|&w| w == "-L")
        .and_then(|i| opts.get(i + 1))
        .copied()
        .unwrap_or("/");
    let exe = std::env::current_exe().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let mut child = std::process::Command::new(qemu)
        .args(["-g", &port])
        .args(&opts)
        .arg(&exe)
        .args(CHILD_ARGS)
        .env("HILOS_TEST_CHILD", "1")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // The stub listens once the emulator has started: retry the connection until it does.
    let mut out = None;
    for _ in 0..100 {
        let o = std::process::Command::new("gdb-multiarch")
            .args(["-batch", "-nx", "-x", SCRIPT])
            .args(["-ex", &format!("set sysroot {sysroot}")])
            .arg("-ex")
            .arg(format!("file {}", exe.display()))
            .args(["-ex", &format!("target remote 127.0.0.1:{port}")])
            .args(["-ex", "break hilos_gdb_test_ready", "-ex", "continue"])
            .args([
                "-ex",
                "hilos threads",
                "-ex",
                "hilos bt gdb-target",
                "-ex",
                "kill",
            ])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&o.stderr).contains("Connection refused") {
            std::thread::sleep(std::time::Duration::from_millis(100));
            continue;
        }
        out = Some(o);
        break;
    }
    let _ = child.kill();
    let _ = child.wait();
    check_gdb_output(&out.expect("qemu's gdb stub never listened"));
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
        hilos_gdb_test_ready();
        println!("READY {}", std::process::id());
        // Killed by the test once gdb is done; gone on its own if the test failed first.
        std::thread::sleep(std::time::Duration::from_secs(60));
        return;
    }
    if let Ok(runner) = std::env::var("HILOS_TEST_RUNNER") {
        if cfg!(target_arch = "aarch64") && runner.contains("qemu-aarch64") {
            return under_emulator(&runner);
        }
        eprintln!("the gdb test knows how to debug through qemu-aarch64 only: skipped");
        return;
    }
    if !cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        eprintln!("the gdb script reads x86_64 and aarch64 switch frames only: skipped");
        return;
    }
    if !installed("gdb") {
        return;
    }
    let mut child = common::self_command()
        .args(CHILD_ARGS)
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
    let out = std::process::Command::new("gdb")
        .args(["-p", &pid, "-batch", "-nx", "-x", SCRIPT])
        .args(["-ex", "hilos threads", "-ex", "hilos bt gdb-target"])
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    check_gdb_output(&out);
}
