//! A stack overflow in a green thread prints std's message with the green thread's name and
//! aborts, from a child process so the test binary survives.

mod common;

/// Recurses until the stack runs out.
#[allow(unconditional_recursion)]
fn recurse(n: u64) -> u64 {
    let pad = std::hint::black_box([n; 64]);
    recurse(pad[3] + 1) + pad[7]
}

#[test]
fn green_stack_overflow_is_reported_and_aborts() {
    if common::is_child() {
        let rt = hilos::Runtime::builder().workers(1).build().unwrap();
        rt.block_on(|| {
            hilos::Builder::new()
                .name("deep-diver".into())
                .spawn(|| recurse(0))
                .unwrap()
                .join()
                .ok();
        });
        unreachable!("the overflow must abort the process");
    }
    let out = common::run_child("green_stack_overflow_is_reported_and_aborts", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("thread 'deep-diver' has overflowed its stack"),
        "stderr: {stderr}"
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "status: {:?}",
        out.status
    );
}

#[test]
fn unnamed_green_thread_overflow_says_unnamed() {
    if common::is_child() {
        hilos::spawn(|| recurse(0)).join().ok();
        unreachable!();
    }
    let out = common::run_child("unnamed_green_thread_overflow_says_unnamed", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("thread '<unnamed>' has overflowed its stack"),
        "stderr: {stderr}"
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGABRT));
}
