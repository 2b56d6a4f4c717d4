//! Swapping imports: one probe of std's `thread`, `sync`, `net`, `fs`, `io` and `os` APIs
//! (tests/probe/body.rs), compiled twice, once with those names bound to std's modules and once
//! to hilos's. It must compile both ways, and run to the same transcript: with std on the main
//! thread; with hilos on a green thread of a 1-worker runtime, of a 2-worker runtime, and on a
//! plain kernel thread.

mod common;

mod with_std {
    use std::{fs, io, net, os, sync, thread};
    include!("probe/body.rs");
}

mod with_hilos {
    use hilos::{fs, io, net, os, sync, thread};
    include!("probe/body.rs");
}

fn dir(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("hilos-probe-{}-{tag}", std::process::id()))
}

#[test]
fn std_api_through_hilos_module_paths_gives_std_answers() {
    let want = with_std::run(&dir("std"));
    let on_kernel = with_hilos::run(&dir("kernel"));
    assert_eq!(on_kernel, want, "hilos on a kernel thread");
    let one = common::one_worker().block_on(|| with_hilos::run(&dir("one")));
    assert_eq!(one, want, "hilos on a 1-worker runtime");
    let two = common::two_workers().block_on(|| with_hilos::run(&dir("two")));
    assert_eq!(two, want, "hilos on a 2-worker runtime");
}
