//! A green thread's panic message names the green thread (`thread 'conn-42' (hilos N) panicked
//! at ...`), follows `RUST_BACKTRACE` as std's does, and leaves a hook the program installed in
//! charge. Each case runs in a child process, whose stderr is the panic output.

mod common;

/// The child's body: a green thread named `conn-42` panics in `panicking_green_body`.
fn panic_in_named_green_thread() {
    let rt = hilos::Runtime::builder().workers(2).build().unwrap();
    let r = rt
        .spawn_with(
            hilos::Builder::new().name("conn-42".into()),
            panicking_green_body,
        )
        .unwrap()
        .join();
    assert!(r.is_err());
}

#[inline(never)]
fn panicking_green_body() {
    panic!("boom from the green thread");
}

fn stderr_of(test: &str, env: &[(&str, &str)], remove_backtrace: bool) -> String {
    let mut cmd = common::self_command();
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("HILOS_TEST_CHILD", "1");
    if remove_backtrace {
        cmd.env_remove("RUST_BACKTRACE");
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "child failed: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn green_panic_names_the_green_thread() {
    if common::is_child() {
        panic_in_named_green_thread();
        return;
    }
    let err = stderr_of("green_panic_names_the_green_thread", &[], true);
    assert!(err.contains("thread 'conn-42' (hilos "), "stderr: {err}");
    assert!(
        err.contains("panicked at tests/panic_names.rs:"),
        "stderr: {err}"
    );
    assert!(err.contains("boom from the green thread"), "stderr: {err}");
    assert!(
        err.contains("note: run with `RUST_BACKTRACE=1`"),
        "stderr: {err}"
    );
    assert!(!err.contains("stack backtrace"), "stderr: {err}");
    assert!(!err.contains("hilos-worker"), "stderr: {err}");
    assert!(!err.contains("<unnamed>"), "stderr: {err}");
}

#[test]
fn green_panic_with_rust_backtrace_prints_the_backtrace() {
    if common::is_child() {
        panic_in_named_green_thread();
        return;
    }
    for style in ["1", "full"] {
        let err = stderr_of(
            "green_panic_with_rust_backtrace_prints_the_backtrace",
            &[("RUST_BACKTRACE", style)],
            false,
        );
        assert!(err.contains("thread 'conn-42' (hilos "), "stderr: {err}");
        assert!(err.contains("stack backtrace:"), "stderr: {err}");
        assert!(err.contains("panicking_green_body"), "stderr: {err}");
        assert!(!err.contains("note: run with"), "stderr: {err}");
    }
}

#[test]
fn unnamed_green_thread_panic_says_unnamed() {
    if common::is_child() {
        assert!(hilos::spawn(|| panic!("anonymous")).join().is_err());
        return;
    }
    let err = stderr_of("unnamed_green_thread_panic_says_unnamed", &[], true);
    assert!(err.contains("thread '<unnamed>' (hilos "), "stderr: {err}");
    assert!(err.contains("anonymous"), "stderr: {err}");
}

#[test]
fn kernel_thread_panic_keeps_std_message() {
    if common::is_child() {
        let h = std::thread::Builder::new()
            .name("plain-kernel".into())
            .spawn(|| panic!("kernel boom"))
            .unwrap();
        assert!(h.join().is_err());
        return;
    }
    let err = stderr_of("kernel_thread_panic_keeps_std_message", &[], true);
    assert!(err.contains("thread 'plain-kernel'"), "stderr: {err}");
    assert!(!err.contains("(hilos "), "stderr: {err}");
    assert!(err.contains("kernel boom"), "stderr: {err}");
}

/// A hook the program installs stays in charge, whether it was installed before the runtime
/// started or after; a hook that chains to the previous one still gets the green name.
#[test]
fn user_hook_stays_in_charge() {
    if common::is_child() {
        let when = std::env::var("HOOK_WHEN").unwrap();
        let install = || {
            if when == "chain" {
                let prev = std::panic::take_hook();
                std::panic::set_hook(Box::new(move |info| {
                    eprintln!("USER HOOK (chaining)");
                    prev(info);
                }));
            } else {
                std::panic::set_hook(Box::new(|info| {
                    eprintln!(
                        "USER HOOK: {}",
                        info.payload()
                            .downcast_ref::<&str>()
                            .copied()
                            .unwrap_or("?")
                    );
                }));
            }
        };
        if when == "before" || when == "chain" {
            install();
        }
        let rt = hilos::Runtime::builder().workers(1).build().unwrap();
        if when == "after" {
            install();
        }
        let r = rt
            .spawn_with(hilos::Builder::new().name("conn-42".into()), || {
                panic!("boom")
            })
            .unwrap()
            .join();
        assert!(r.is_err());
        return;
    }
    for when in ["before", "after"] {
        let err = stderr_of("user_hook_stays_in_charge", &[("HOOK_WHEN", when)], true);
        assert!(err.contains("USER HOOK: boom"), "{when}: stderr: {err}");
        assert!(!err.contains("panicked at"), "{when}: stderr: {err}");
    }
    let err = stderr_of("user_hook_stays_in_charge", &[("HOOK_WHEN", "chain")], true);
    assert!(err.contains("USER HOOK (chaining)"), "stderr: {err}");
    assert!(err.contains("thread 'conn-42' (hilos "), "stderr: {err}");
}
