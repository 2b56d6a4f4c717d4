//! One job: with the `hook` feature, compile `tests/c/hook_probe.c` (C code making blocking libc
//! calls) and link it into this package's own test binaries, so `tests/hook.rs` can check that C
//! code linked into a program parks only its green thread. Nothing is linked into the library:
//! `rustc-link-arg-tests` reaches this package's tests only, never a dependent's build.
//!
//! A missing C compiler skips the probe (the `hilos_c_probe` cfg stays off, and the test that
//! needs it says so), unless `HILOS_REQUIRE_C_PROBE=1`, as in CI, makes that an error.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=tests/c/hook_probe.c");
    println!("cargo::rerun-if-env-changed=HILOS_REQUIRE_C_PROBE");
    println!("cargo::rerun-if-env-changed=CC");
    println!("cargo::rustc-check-cfg=cfg(hilos_c_probe)");
    if std::env::var_os("CARGO_FEATURE_HOOK").is_none() {
        return;
    }
    let required = std::env::var("HILOS_REQUIRE_C_PROBE").as_deref() == Ok("1");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let obj = out.join("hook_probe.o");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let built = Command::new(&cc)
        .args([
            "-c",
            "-O2",
            "-fPIC",
            "-Wall",
            "-Werror",
            "tests/c/hook_probe.c",
            "-o",
        ])
        .arg(&obj)
        .status();
    match built {
        Ok(s) if s.success() => {
            println!("cargo::rustc-link-arg-tests={}", obj.display());
            println!("cargo::rustc-cfg=hilos_c_probe");
        }
        other if required => panic!("HILOS_REQUIRE_C_PROBE=1 but `{cc}` failed: {other:?}"),
        _ => {}
    }
}
