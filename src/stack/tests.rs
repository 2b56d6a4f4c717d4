//! Tests of the stack layer. Tests that must crash (guard faults, overflow reports) re-run this
//! test binary on one test, in a child process, with `CHILD_ENV` naming the test.
//!
//! Tests whose outcome depends on the shared pool of a class use a size class no other test uses:
//! 300 KiB (320 KiB class) for cross-thread reuse, 600 KiB (640 KiB class) for release.

use super::map::{self, Mechanism};
use super::overflow;
use super::pool;
use super::*;

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};

#[path = "../../tests/common/child.rs"]
mod child;
#[path = "../../tests/common/seccomp.rs"]
mod seccomp;
use child::self_command;

const CHILD_ENV: &str = "HILOS_STACK_TEST_CHILD";
const GREEN_NAME: &str = "hilos-test-green";
const OVERFLOW_MSG: &str = "thread 'hilos-test-green' has overflowed its stack\n\
                            fatal runtime error: stack overflow, aborting\n";

// ---------------------------------------------------------------------------------------------
// Helpers

/// The libtest name of test `short` in this module ("stack::tests::short").
fn full_name(short: &str) -> String {
    let path = module_path!();
    let path = path.split_once("::").map_or(path, |(_, rest)| rest);
    format!("{path}::{short}")
}

/// Whether this process is the child started for test `short`.
fn is_child(short: &str) -> bool {
    std::env::var(CHILD_ENV).ok().as_deref() == Some(short)
}

struct ChildOutcome {
    status: ExitStatus,
    stderr: String,
}

/// Re-runs test `short` in a child process; `guard` sets or clears `HILOS_STACK_GUARD` there.
fn run_child(short: &str, guard: Option<&str>) -> ChildOutcome {
    let mut cmd = self_command();
    cmd.args(["--exact", &full_name(short), "--nocapture"])
        .env(CHILD_ENV, short);
    match guard {
        Some(g) => cmd.env(map::GUARD_ENV, g),
        None => cmd.env_remove(map::GUARD_ENV),
    };
    let out = cmd.output().expect("spawning the test binary");
    ChildOutcome {
        status: out.status,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn expect_signal(out: &ChildOutcome, sig: libc::c_int) {
    assert_eq!(
        out.status.signal(),
        Some(sig),
        "child should die by signal {sig}; status {:?}, stderr:\n{}",
        out.status,
        out.stderr
    );
}

fn expect_success(out: &ChildOutcome) {
    assert!(
        out.status.success(),
        "child failed: {:?}, stderr:\n{}",
        out.status,
        out.stderr
    );
}

/// The HILOS_STACK_GUARD value that makes a child use `mech`, or None if this kernel cannot.
fn guard_env_for(mech: Mechanism) -> Option<Option<&'static str>> {
    match mech {
        Mechanism::Mprotect => Some(Some("mprotect")),
        Mechanism::MadvGuard if map::madv_guard_supported() => Some(None),
        Mechanism::MadvGuard => {
            eprintln!("skipped: this kernel has no MADV_GUARD_INSTALL");
            None
        }
    }
}

/// Whether the kernel lets us read `addr`: `write(2)` from it into a pipe fails with EFAULT for
/// guard pages (both markers and PROT_NONE) instead of faulting this process.
fn readable(addr: usize) -> bool {
    let mut fds = [0; 2];
    // SAFETY: pipe writes two fds into the array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the kernel validates the source address and reports EFAULT instead of faulting.
    let n = unsafe { libc::write(fds[1], addr as *const libc::c_void, 1) };
    let err = std::io::Error::last_os_error();
    // SAFETY: closing the fds just made.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    match n {
        1 => true,
        _ => {
            assert_eq!(
                err.raw_os_error(),
                Some(libc::EFAULT),
                "write from {addr:#x}"
            );
            false
        }
    }
}

/// Writes `byte` into every page of the stack's usable range (the whole range if `full`).
fn fill(s: &Stack, byte: u8, full: bool) {
    let page = map::page_size();
    let step = if full { 1 } else { page };
    let mut a = s.limit() as usize;
    while a < s.top() as usize {
        // SAFETY: `a` is inside the usable range of a stack we own.
        unsafe { ptr::write_volatile(a as *mut u8, byte) };
        a += step;
    }
}

/// Whether every page of the usable range holds `byte` at the positions `fill` wrote.
fn holds(s: &Stack, byte: u8, full: bool) -> bool {
    let page = map::page_size();
    let step = if full { 1 } else { page };
    let mut a = s.limit() as usize;
    while a < s.top() as usize {
        // SAFETY: `a` is inside the usable range of a stack we own.
        if unsafe { ptr::read_volatile(a as *const u8) } != byte {
            return false;
        }
        a += step;
    }
    true
}

/// Guard range recognised by [`test_lookup`].
static TEST_GUARD: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

fn test_lookup(addr: usize, buf: &mut [u8]) -> Option<usize> {
    let lo = TEST_GUARD[0].load(Ordering::Relaxed);
    let hi = TEST_GUARD[1].load(Ordering::Relaxed);
    if (lo..hi).contains(&addr) {
        let n = GREEN_NAME.len().min(buf.len());
        buf[..n].copy_from_slice(&GREEN_NAME.as_bytes()[..n]);
        Some(n)
    } else {
        None
    }
}

fn recognise_guard_of(s: &Stack) {
    let g = s.guard();
    TEST_GUARD[0].store(g.start, Ordering::Relaxed);
    TEST_GUARD[1].store(g.end, Ordering::Relaxed);
}

/// Disables the calling thread's alternate signal stack (std's), so that only one we make counts.
fn disable_altstack() {
    let off = libc::stack_t {
        ss_sp: ptr::null_mut(),
        ss_flags: libc::SS_DISABLE,
        ss_size: 0,
    };
    // SAFETY: disabling the alternate stack of this thread, which is not running on it.
    assert_eq!(unsafe { libc::sigaltstack(&off, ptr::null_mut()) }, 0);
}

fn current_altstack() -> libc::stack_t {
    // SAFETY: plain data.
    let mut cur: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: a null new stack only queries.
    assert_eq!(unsafe { libc::sigaltstack(ptr::null(), &mut cur) }, 0);
    cur
}

fn status_kib(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} not in /proc/self/status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Size classes

#[test]
fn size_classes_round_up_by_at_most_an_eighth() {
    let page = map::page_size();
    assert_eq!(
        pool::class_size(pool::class_for(DEFAULT_STACK_SIZE).unwrap()),
        DEFAULT_STACK_SIZE
    );
    assert_eq!(
        pool::class_size(pool::class_for(0).unwrap()),
        MIN_STACK_SIZE.max(page)
    );
    assert_eq!(pool::class_size(pool::NUM_CLASSES - 1), MAX_STACK_SIZE);
    let mut last_class = 0;
    let mut size = 0;
    while size <= MAX_STACK_SIZE {
        let class = pool::class_for(size).unwrap();
        let usable = pool::class_size(class);
        let rounded = size.div_ceil(page) * page;
        assert!(
            usable >= size && usable.is_multiple_of(page),
            "size {size}: class size {usable}"
        );
        assert!(
            usable
                <= (rounded + rounded / 8)
                    .max(MIN_STACK_SIZE)
                    .next_multiple_of(page),
            "size {size}: class size {usable} wastes more than 1/8"
        );
        assert!(class >= last_class, "classes must grow with size");
        assert!(class < pool::NUM_CLASSES);
        // A class size maps to its own class.
        assert_eq!(pool::class_for(usable).unwrap(), class);
        last_class = class;
        size += 1 + size / 13;
    }
}

#[test]
fn absurd_sizes_are_invalid_input_with_a_message() {
    for size in [usize::MAX, usize::MAX - 1, 1 << 50, MAX_STACK_SIZE + 1] {
        let err = alloc(size).unwrap_err();
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::InvalidInput,
            "{size}: {err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(&size.to_string()),
            "message names the size: {msg}"
        );
        assert!(msg.contains("stack size"), "{msg}");
    }
    let s = alloc(0).unwrap();
    assert!(s.usable_size() >= MIN_STACK_SIZE);
}

// ---------------------------------------------------------------------------------------------
// Allocation

/// Allocates stacks of many sizes and checks their geometry, their memory and that they do not
/// overlap. Shared by the in-process test and the mprotect child.
fn check_basic_allocation() {
    let page = map::page_size();
    let sizes = [
        0,
        1,
        4096,
        MIN_STACK_SIZE,
        MIN_STACK_SIZE + 1,
        100_000,
        DEFAULT_STACK_SIZE,
        DEFAULT_STACK_SIZE,
        DEFAULT_STACK_SIZE + 1,
        (1 << 20) + 1,
        9 << 20,
        20 << 20,
    ];
    let mut stacks = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        let s = alloc(size).unwrap_or_else(|e| panic!("alloc({size}): {e}"));
        let (top, limit) = (s.top() as usize, s.limit() as usize);
        assert_eq!(top % page, 0, "top page aligned");
        assert_eq!(limit % page, 0, "limit page aligned");
        assert_eq!(top - limit, s.usable_size());
        assert!(s.usable_size() >= size.max(MIN_STACK_SIZE));
        assert_eq!(s.guard(), limit - page..limit);
        assert!(!readable(s.guard().start), "guard of {size} readable");
        assert!(readable(limit) && readable(top - 1));
        fill(&s, i as u8 + 1, true);
        stacks.push(s);
    }
    for (i, s) in stacks.iter().enumerate() {
        assert!(holds(s, i as u8 + 1, true), "stack {i} lost its contents");
    }
    let mut ranges: Vec<_> = stacks
        .iter()
        .map(|s| (s.guard().start, s.top() as usize))
        .collect();
    ranges.sort();
    for w in ranges.windows(2) {
        assert!(
            w[0].1 <= w[1].0,
            "stacks overlap: {:x?} and {:x?}",
            w[0],
            w[1]
        );
    }
    // The largest size works too (address space only; touch both ends).
    let big = alloc(MAX_STACK_SIZE).unwrap();
    assert_eq!(big.usable_size(), MAX_STACK_SIZE);
    // SAFETY: both addresses are inside the usable range of `big`.
    unsafe {
        ptr::write_volatile(big.limit(), 1);
        ptr::write_volatile(big.top().sub(1), 1);
    }
    assert!(!readable(big.guard().end - 1));
    for s in stacks {
        free(s);
    }
}

#[test]
fn alloc_gives_aligned_distinct_writable_stacks() {
    check_basic_allocation();
}

#[test]
fn guard_mechanism_matches_kernel() {
    let name = guard_mechanism();
    match std::env::var(map::GUARD_ENV).ok().as_deref() {
        Some("mprotect") => assert_eq!(name, "mprotect"),
        _ if map::madv_guard_supported() => assert_eq!(name, "madv_guard_install"),
        _ => assert_eq!(name, "mprotect"),
    }
}

#[test]
fn free_then_alloc_reuses_from_thread_cache() {
    let class = pool::class_for(DEFAULT_STACK_SIZE).unwrap();
    let stacks: Vec<Stack> = (0..3).map(|_| alloc(DEFAULT_STACK_SIZE).unwrap()).collect();
    let tops: Vec<*mut u8> = stacks.iter().map(Stack::top).collect();
    let cached = pool::cached_count(class);
    let mut stacks = stacks.into_iter();
    free(stacks.next().unwrap());
    free(stacks.next().unwrap());
    drop(stacks); // Dropping is freeing.
    assert_eq!(
        pool::cached_count(class),
        cached + 3,
        "freed into this thread's cache"
    );
    // Most recently freed first (its memory is the likeliest to be in cache and TLB).
    let mut again = Vec::new();
    for (i, &top) in tops.iter().enumerate().rev() {
        let s = alloc(DEFAULT_STACK_SIZE - 100).unwrap();
        assert_eq!(
            s.top(),
            top,
            "stack {i} should come back from the thread cache"
        );
        again.push(s);
    }
    assert_eq!(pool::cached_count(class), cached);
}

#[test]
fn fresh_stacks_are_carved_from_shared_chunks() {
    const SIZE: usize = 40 * 1024; // Class used by this test only.
    if map::mechanism() != Mechanism::MadvGuard {
        eprintln!("skipped: one mapping per stack on the mprotect path");
        return;
    }
    let stacks: Vec<Stack> = (0..64).map(|_| alloc(SIZE).unwrap()).collect();
    // Chunks of 16, then 32 slots: consecutive fresh slots are neighbours except across chunks.
    let adjacent = stacks
        .windows(2)
        .filter(|w| w[1].guard().start == w[0].top() as usize)
        .count();
    assert!(
        adjacent >= 60,
        "only {adjacent} of 63 fresh stacks follow their predecessor"
    );
}

#[test]
fn stacks_freed_on_another_thread_are_reused() {
    const SIZE: usize = 300 * 1024; // Class used by this test only.
    let class = pool::class_for(SIZE).unwrap();
    let stacks: Vec<Stack> = (0..10).map(|_| alloc(SIZE).unwrap()).collect();
    let mut tops: Vec<usize> = stacks.iter().map(|s| s.top() as usize).collect();
    tops.sort();
    // Freed on another thread: they sit in its cache until it exits, then go to the pool.
    std::thread::spawn(move || {
        for s in stacks {
            free(s);
        }
        assert_eq!(pool::cached_count(class), 10);
    })
    .join()
    .unwrap();
    let (warm, cold) = pool::pool_counts(class);
    assert_eq!(
        warm + cold,
        10,
        "the exiting thread's cache went back to the pool"
    );
    let again: Vec<Stack> = (0..10).map(|_| alloc(SIZE).unwrap()).collect();
    let mut tops2: Vec<usize> = again.iter().map(|s| s.top() as usize).collect();
    tops2.sort();
    assert_eq!(tops, tops2, "the same stacks come back");
}

#[test]
fn pooled_stacks_beyond_the_bound_are_released_and_keep_their_guard() {
    const SIZE: usize = 600 * 1024; // Class used by this test only.
    let class = pool::class_for(SIZE).unwrap();
    let spare = 4;
    let n = pool::cache_limit(class) + pool::warm_limit(class) + spare;
    let stacks: Vec<Stack> = (0..n).map(|_| alloc(SIZE).unwrap()).collect();
    for s in &stacks {
        fill(s, 0xA5, false);
    }
    let chunks = pool::chunk_count(class);
    drop(stacks);
    // Released: kept cold, or unmapped with their chunk (every one-slot chunk on the mprotect
    // path is unmapped as soon as its stack is released).
    let (_, cold) = pool::pool_counts(class);
    let unmapped = chunks - pool::chunk_count(class);
    assert!(
        cold + unmapped >= spare,
        "at least {spare} stacks released, got {cold} cold and {unmapped} chunks unmapped"
    );
    let again: Vec<Stack> = (0..n).map(|_| alloc(SIZE).unwrap()).collect();
    let mut zeroed = 0;
    for s in &again {
        if holds(s, 0, false) {
            zeroed += 1;
            assert!(!readable(s.guard().start), "released stack lost its guard");
        } else {
            assert!(
                holds(s, 0xA5, false),
                "a warm stack is untouched, a cold one all zero"
            );
        }
    }
    assert!(
        zeroed >= spare,
        "{zeroed} stacks read back zero, expected >= {spare}"
    );
}

#[test]
fn chunks_whose_stacks_are_all_released_are_unmapped_and_stacks_can_be_had_again() {
    // In a child process: no other test maps memory into the hole the first chunk leaves.
    const SHORT: &str =
        "chunks_whose_stacks_are_all_released_are_unmapped_and_stacks_can_be_had_again";
    if !is_child(SHORT) {
        expect_success(&run_child(SHORT, None));
        return;
    }
    const SIZE: usize = 900 * 1024;
    let class = pool::class_for(SIZE).unwrap();
    // Enough that the oldest chunks' stacks all end up cold (beyond the thread cache and the
    // warm bound): chunks grow 16, 32, 64... slots.
    let n = pool::cache_limit(class) + pool::warm_limit(class) + 200;
    let stacks: Vec<Stack> = (0..n).map(|_| alloc(SIZE).unwrap()).collect();
    let first = stacks[0].limit() as usize;
    for s in &stacks {
        fill(s, 0x5A, false);
    }
    let peak = pool::chunk_count(class);
    assert!(peak >= 4, "{n} stacks in {peak} chunks");
    drop(stacks);
    let after = pool::chunk_count(class);
    assert!(after < peak, "no chunk unmapped: {after} of {peak} left");
    // The first chunk (its 16 stacks were freed first) is gone from the address space.
    assert!(!readable(first), "first chunk still mapped");
    // Stacks can be had again, each guarded, and keep what is written to them.
    let again: Vec<Stack> = (0..n).map(|_| alloc(SIZE).unwrap()).collect();
    for (i, s) in again.iter().enumerate() {
        assert!(!readable(s.guard().start), "stack {i} has no guard");
        fill(s, i as u8, false);
    }
    for (i, s) in again.iter().enumerate() {
        assert!(holds(s, i as u8, false), "stack {i} lost its contents");
    }
}

#[test]
fn madv_guard_markers_survive_dontneed_and_do_not_split_the_mapping() {
    if map::mechanism() != Mechanism::MadvGuard {
        eprintln!("skipped: not on the MADV_GUARD_INSTALL path");
        return;
    }
    let page = map::page_size();
    let pages = 64;
    let base = map::map_region(pages * page).unwrap();
    let maps_before = map::count_maps().unwrap();
    // Guards on every other page: 32 guards in one mapping.
    for i in (0..pages).step_by(2) {
        // SAFETY: page `i` of our private mapping; nothing lives there.
        unsafe { map::install_guard(Mechanism::MadvGuard, base + i * page, page) }.unwrap();
    }
    let maps_after = map::count_maps().unwrap();
    assert!(
        maps_after <= maps_before + 2,
        "guards split the mapping: {maps_before} -> {maps_after} mappings"
    );
    for i in 0..pages {
        assert_eq!(readable(base + i * page), i % 2 == 1, "page {i}");
    }
    for i in (1..pages).step_by(2) {
        // SAFETY: a non-guard page of our mapping.
        unsafe { ptr::write_volatile((base + i * page) as *mut u8, 7) };
    }
    // MADV_DONTNEED over the whole range, guards included.
    // SAFETY: the whole mapping is ours and its contents are disposable.
    unsafe { map::release(base, pages * page) }.unwrap();
    for i in 0..pages {
        assert_eq!(
            readable(base + i * page),
            i % 2 == 1,
            "page {i} after DONTNEED"
        );
        if i % 2 == 1 {
            // SAFETY: a non-guard page of our mapping.
            let byte = unsafe { ptr::read_volatile((base + i * page) as *const u8) };
            assert_eq!(byte, 0);
        }
    }
    // MADV_GUARD_REMOVE really removes them (so "not readable" above meant "guard").
    // SAFETY: our mapping.
    let rc = unsafe {
        libc::madvise(
            base as *mut libc::c_void,
            pages * page,
            map::MADV_GUARD_REMOVE,
        )
    };
    assert_eq!(rc, 0);
    assert!(readable(base));
    // SAFETY: our mapping, nothing refers to it.
    unsafe { map::unmap(base, pages * page) };
}

#[test]
fn mapping_count_does_not_grow_with_stack_count() {
    let mech = map::mechanism();
    let n = match mech {
        Mechanism::MadvGuard => 20_000,
        Mechanism::Mprotect => 1_000,
    };
    let before = map::count_maps().unwrap();
    let stacks: Vec<Stack> = (0..n).map(|_| alloc(DEFAULT_STACK_SIZE).unwrap()).collect();
    let after = map::count_maps().unwrap();
    let grown = after.saturating_sub(before);
    match mech {
        Mechanism::MadvGuard => assert!(grown < 100, "{n} stacks added {grown} mappings"),
        // Pooled stacks from other tests may be reused, so "about 2 per stack", not exactly.
        Mechanism::Mprotect => assert!(grown > n, "{n} stacks added only {grown} mappings"),
    }
    drop(stacks);
}

// ---------------------------------------------------------------------------------------------
// Guards and the overflow report, in child processes

/// Child side: writes just below the usable range of a fresh stack. With `report`, the overflow
/// handler is installed and recognises that guard.
fn child_write_into_guard(mech: Mechanism, report: bool) -> ! {
    assert_eq!(
        guard_mechanism(),
        mech.name(),
        "child runs on the wrong mechanism"
    );
    let s = alloc(DEFAULT_STACK_SIZE).unwrap();
    fill(&s, 1, false);
    if report {
        recognise_guard_of(&s);
        overflow::install(test_lookup);
        std::mem::forget(overflow::ensure_altstack().unwrap());
    }
    let target = s.limit() as usize - 1;
    // SAFETY: not safe at all: this write into the guard page must kill the process.
    unsafe { ptr::write_volatile(target as *mut u8, 1) };
    eprintln!("child survived a write into the guard");
    std::process::exit(3);
}

fn guard_write_test(short: &str, mech: Mechanism, report: bool) {
    if is_child(short) {
        child_write_into_guard(mech, report);
    }
    let Some(env) = guard_env_for(mech) else {
        return;
    };
    let out = run_child(short, env);
    if report {
        expect_signal(&out, libc::SIGABRT);
        assert!(
            out.stderr.contains(&format!("\n{OVERFLOW_MSG}")),
            "stderr lacks the overflow report:\n{}",
            out.stderr
        );
    } else {
        expect_signal(&out, libc::SIGSEGV);
        assert!(!out.stderr.contains("has overflowed"), "{}", out.stderr);
    }
}

#[test]
fn guard_write_faults_madv() {
    guard_write_test("guard_write_faults_madv", Mechanism::MadvGuard, false);
}

#[test]
fn guard_write_faults_mprotect() {
    guard_write_test("guard_write_faults_mprotect", Mechanism::Mprotect, false);
}

#[test]
fn guard_write_reports_overflow_madv() {
    guard_write_test(
        "guard_write_reports_overflow_madv",
        Mechanism::MadvGuard,
        true,
    );
}

#[test]
fn guard_write_reports_overflow_mprotect() {
    guard_write_test(
        "guard_write_reports_overflow_mprotect",
        Mechanism::Mprotect,
        true,
    );
}

#[test]
fn released_stack_guard_still_faults() {
    const SHORT: &str = "released_stack_guard_still_faults";
    if is_child(SHORT) {
        let s = alloc(DEFAULT_STACK_SIZE).unwrap();
        fill(&s, 1, false);
        // SAFETY: the usable range of a stack we own, whose contents we no longer need.
        unsafe { map::release(s.limit() as usize, s.usable_size()) }.unwrap();
        assert!(holds(&s, 0, false), "released memory reads back zero");
        // SAFETY: must kill the process.
        unsafe { ptr::write_volatile(s.guard().start as *mut u8, 1) };
        std::process::exit(3);
    }
    for mech in [Mechanism::MadvGuard, Mechanism::Mprotect] {
        if let Some(env) = guard_env_for(mech) {
            expect_signal(&run_child(SHORT, env), libc::SIGSEGV);
        }
    }
}

#[test]
fn unrelated_fault_chains_to_previous_handler() {
    const SHORT: &str = "unrelated_fault_chains_to_previous_handler";
    if is_child(SHORT) {
        let s = alloc(DEFAULT_STACK_SIZE).unwrap();
        recognise_guard_of(&s);
        overflow::install(test_lookup);
        std::mem::forget(overflow::ensure_altstack().unwrap());
        let addr = std::hint::black_box(16usize);
        // SAFETY: must kill the process.
        unsafe { ptr::write_volatile(addr as *mut u8, 1) };
        std::process::exit(3);
    }
    let out = run_child(SHORT, None);
    expect_signal(&out, libc::SIGSEGV);
    assert!(!out.stderr.contains("has overflowed"), "{}", out.stderr);
}

#[test]
fn kernel_thread_overflow_is_still_reported_by_std() {
    const SHORT: &str = "kernel_thread_overflow_is_still_reported_by_std";
    if is_child(SHORT) {
        let s = alloc(DEFAULT_STACK_SIZE).unwrap();
        recognise_guard_of(&s);
        overflow::install(test_lookup);
        let t = std::thread::Builder::new()
            .name("std-kernel-thread".into())
            .stack_size(128 * 1024)
            .spawn(|| recurse(0))
            .unwrap();
        let _ = t.join();
        std::process::exit(3);
    }
    let out = run_child(SHORT, None);
    expect_signal(&out, libc::SIGABRT);
    // std's own wording (recent versions add the thread id after the name).
    let report = out
        .stderr
        .lines()
        .find(|l| l.starts_with("thread 'std-kernel-thread'"));
    assert!(
        report.is_some_and(|l| l.ends_with("has overflowed its stack")),
        "std's report missing:\n{}",
        out.stderr
    );
    assert!(!out.stderr.contains(GREEN_NAME), "{}", out.stderr);
}

/// Recurses until the stack runs out.
fn recurse(n: u64) -> u64 {
    let frame = [n; 32];
    let r = std::hint::black_box(&frame)[(n % 32) as usize];
    if r == u64::MAX {
        return r;
    }
    recurse(n + 1).wrapping_add(r)
}

extern "C" fn recurse_forever() -> ! {
    let v = recurse(0);
    std::process::exit(v as i32);
}

/// Switches the calling kernel thread onto `top` and calls `f` there; never comes back.
///
/// # Safety
/// `top` must be the 16-byte aligned top of a stack nobody else uses, and `f` must not return.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
unsafe fn run_on_stack(top: *mut u8, f: extern "C" fn() -> !) -> ! {
    // SAFETY: the caller guarantees `top` is a free, aligned stack; `f` never returns, so the
    // abandoned frames of this thread's own stack are never used again.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::asm!("mov rsp, {top}", "call {f}", top = in(reg) top, f = in(reg) f,
            options(noreturn))
    }
    // SAFETY: as above.
    #[cfg(target_arch = "aarch64")]
    unsafe {
        std::arch::asm!("mov sp, {top}", "blr {f}", top = in(reg) top, f = in(reg) f,
            options(noreturn))
    }
}

/// A real overflow on a green stack, on a kernel thread whose only alternate signal stack is the
/// one `ensure_altstack` made: the report needs both the handler and that stack.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[test]
fn real_overflow_on_green_stack_is_reported() {
    const SHORT: &str = "real_overflow_on_green_stack_is_reported";
    if is_child(SHORT) {
        let t = std::thread::spawn(|| {
            disable_altstack();
            let alt = overflow::ensure_altstack().unwrap();
            assert!(alt.created());
            let s = alloc(DEFAULT_STACK_SIZE).unwrap();
            recognise_guard_of(&s);
            overflow::install(test_lookup);
            // SAFETY: `s` is ours, its top is page aligned; recurse_forever never returns.
            unsafe { run_on_stack(s.top(), recurse_forever) }
        });
        let _ = t.join();
        std::process::exit(3);
    }
    for mech in [Mechanism::MadvGuard, Mechanism::Mprotect] {
        if let Some(env) = guard_env_for(mech) {
            let out = run_child(SHORT, env);
            expect_signal(&out, libc::SIGABRT);
            assert!(
                out.stderr.contains(&format!("\n{OVERFLOW_MSG}")),
                "{mech:?}: stderr lacks the overflow report:\n{}",
                out.stderr
            );
        }
    }
}

#[test]
fn ensure_altstack_creates_only_when_missing() {
    std::thread::spawn(|| {
        disable_altstack();
        let ours = overflow::ensure_altstack().unwrap();
        assert!(ours.created());
        let cur = current_altstack();
        assert_eq!(cur.ss_flags & libc::SS_DISABLE, 0);
        assert!(cur.ss_size >= 64 * 1024);
        let sp = cur.ss_sp as usize;
        assert!(readable(sp) && readable(sp + cur.ss_size - 1));
        assert!(!readable(sp - 1), "no guard page below the alternate stack");
        let again = overflow::ensure_altstack().unwrap();
        assert!(!again.created(), "an existing alternate stack is kept");
        drop(again);
        assert_eq!(
            current_altstack().ss_sp as usize,
            sp,
            "dropping a non-owner changes nothing"
        );
        drop(ours);
        assert_ne!(
            current_altstack().ss_flags & libc::SS_DISABLE,
            0,
            "ours is removed on drop"
        );
    })
    .join()
    .unwrap();
}

// ---------------------------------------------------------------------------------------------
// The mprotect fallback, in a child process

#[test]
fn mprotect_fallback_works_and_costs_two_mappings_per_stack() {
    const SHORT: &str = "mprotect_fallback_works_and_costs_two_mappings_per_stack";
    if is_child(SHORT) {
        assert_eq!(guard_mechanism(), "mprotect");
        let n = 500;
        let before = map::count_maps().unwrap();
        let stacks: Vec<Stack> = (0..n).map(|_| alloc(DEFAULT_STACK_SIZE).unwrap()).collect();
        let grown = map::count_maps().unwrap() - before;
        assert!(
            grown >= 2 * n - 10 && grown <= 2 * n + 10,
            "{n} stacks: {grown} mappings"
        );
        drop(stacks);
        check_basic_allocation();
        return;
    }
    expect_success(&run_child(SHORT, Some("mprotect")));
}

/// Makes `madvise(_, _, MADV_GUARD_INSTALL)` report success without doing anything, for this
/// process from now on: what an emulator that ignores unknown advice does.
fn fake_madv_guard_success() {
    use seccomp::*;
    // seccomp_data: nr at offset 0, arch at 4, args[2] at 32 (its low half: little endian).
    seccomp::install(&[
        ins(LD_W_ABS, 0, 0, 4),                           // A = arch
        ins(JEQ_K, 0, 5, AUDIT_ARCH),                     // not native: allow
        ins(LD_W_ABS, 0, 0, 0),                           // A = syscall number
        ins(JEQ_K, 0, 3, libc::SYS_madvise as u32),       // not madvise: allow
        ins(LD_W_ABS, 0, 0, 32),                          // A = advice
        ins(JEQ_K, 0, 1, map::MADV_GUARD_INSTALL as u32), // other advice: allow
        ins(RET_K, 0, 0, RET_ERRNO),                      // the guard: return 0, do nothing
        ins(RET_K, 0, 0, RET_ALLOW),                      //
    ]);
}

#[test]
fn a_guard_advice_that_succeeds_without_effect_is_not_trusted() {
    const SHORT: &str = "a_guard_advice_that_succeeds_without_effect_is_not_trusted";
    if is_child(SHORT) {
        fake_madv_guard_success();
        // The filter works: the advice "succeeds" and the page stays readable.
        let base = map::map_region(map::page_size()).unwrap();
        // SAFETY: advice on the private page just mapped; no one else knows it.
        let rc = unsafe {
            libc::madvise(
                base as *mut libc::c_void,
                map::page_size(),
                map::MADV_GUARD_INSTALL,
            )
        };
        assert_eq!(rc, 0);
        assert!(readable(base), "the filter did install a guard");
        // hilos is not fooled: it uses the fallback, and its guards refuse access.
        assert_eq!(guard_mechanism(), "mprotect");
        let s = alloc(DEFAULT_STACK_SIZE).unwrap();
        assert!(!readable(s.guard().start), "stack guard readable");
        return;
    }
    expect_success(&run_child(SHORT, None));
}

#[test]
fn mprotect_fallback_explains_the_mapping_limit() {
    const SHORT: &str = "mprotect_fallback_explains_the_mapping_limit";
    if is_child(SHORT) {
        let mut stacks = Vec::with_capacity(70_000);
        let err = loop {
            match alloc(DEFAULT_STACK_SIZE) {
                Ok(s) => stacks.push(s),
                Err(e) => break e,
            }
            assert!(stacks.len() < 70_000, "never hit the mapping limit");
        };
        let msg = err.to_string();
        // Exit before anything else needs a mapping.
        if err.kind() == std::io::ErrorKind::OutOfMemory
            && msg.contains("vm.max_map_count")
            && msg.contains("mapping limit is exhausted")
            && msg.contains(&DEFAULT_STACK_SIZE.to_string())
        {
            eprintln!("after {} stacks: {msg}", stacks.len());
            std::process::exit(0);
        }
        eprintln!(
            "unexpected error after {} stacks: {:?}: {msg}",
            stacks.len(),
            err.kind()
        );
        std::process::exit(4);
    }
    let out = run_child(SHORT, Some("mprotect"));
    expect_success(&out);
    eprintln!(
        "{}",
        out.stderr
            .lines()
            .find(|l| l.starts_with("after"))
            .unwrap_or("")
    );
}

#[test]
fn exhausted_address_space_is_an_explained_error() {
    const SHORT: &str = "exhausted_address_space_is_an_explained_error";
    const SIZE: usize = 1 << 20; // 1 MiB class: a first chunk of 16 slots is 16 MiB + 64 KiB.
    if is_child(SHORT) {
        // Leave 6 MiB of address space beyond the 64 MiB a stack must leave to the rest of the
        // process: the 16- and 8-slot chunks fail, a 4-slot chunk fits.
        let vm = status_kib("VmSize:") * 1024;
        let lim = libc::rlimit {
            rlim_cur: (vm + super::map::HEADROOM + (6 << 20)) as libc::rlim_t,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: lowers this (child) process's address-space soft limit.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) }, 0);
        let mut stacks = Vec::with_capacity(64);
        let err = loop {
            match alloc(SIZE) {
                Ok(s) => stacks.push(s),
                Err(e) => break e,
            }
            assert!(stacks.len() < 64, "never ran out of address space");
        };
        let msg = err.to_string();
        if stacks.len() >= 4
            && err.kind() == std::io::ErrorKind::OutOfMemory
            && msg.contains("mmap")
            && msg.contains(&SIZE.to_string())
            && msg.contains("ulimit -v")
        {
            eprintln!("after {} stacks: {msg}", stacks.len());
            std::process::exit(0);
        }
        eprintln!(
            "unexpected after {} stacks: {:?}: {msg}",
            stacks.len(),
            err.kind()
        );
        std::process::exit(4);
    }
    if let Some(env) = guard_env_for(Mechanism::MadvGuard) {
        let out = run_child(SHORT, env);
        expect_success(&out);
        eprintln!(
            "{}",
            out.stderr
                .lines()
                .find(|l| l.starts_with("after"))
                .unwrap_or("")
        );
    }
}

/// Reservations (`scheduler`, "Spawn bursts"): reserving hands out no stack (the pool's lists and
/// this thread's cache stay as they were), stacks taken without a reservation meanwhile do not
/// use up the promised ones, every reservation's take then succeeds with a stack of its own,
/// writable and with its guard, and the units come back when stacks and reservations go.
#[test]
fn reservations_promise_stacks_that_other_takers_leave_alone() {
    // Classes used by this test only: one carved from chunks, one with a mapping per slot.
    for size in [1536 * 1024, 9 << 20] {
        let class = class_of(size).unwrap();
        let c = class.0 as usize;
        let before = (pool::pool_counts(c), pool::cached_count(c));
        let promised: Vec<Reservation> = (0..40).map(|_| reserve(class).unwrap()).collect();
        let (warm, _) = pool::pool_counts(c);
        assert_eq!(warm, before.0.0, "a reservation took or filed a warm stack");
        assert_eq!(
            pool::cached_count(c),
            before.1,
            "a reservation took a cached stack"
        );
        let others: Vec<Stack> = (0..20).map(|_| alloc(size).unwrap()).collect();
        let taken: Vec<Stack> = promised.into_iter().map(Reservation::take).collect();
        let mut tops: Vec<usize> = taken
            .iter()
            .chain(&others)
            .map(|s| s.top() as usize)
            .collect();
        tops.sort_unstable();
        tops.dedup();
        assert_eq!(tops.len(), 60, "a stack was handed out twice");
        for s in &taken {
            assert!(s.usable_size() >= size);
            // SAFETY: the top byte of a stack we own, which nothing runs on.
            unsafe { ptr::write_volatile(s.top().sub(1), 0x5A) };
            assert!(!readable(s.guard().start), "a reserved stack has no guard");
        }
        drop(taken);
        drop(others);
        // Reservations given back unused are units again: as many can be had once more.
        let again: Vec<Reservation> = (0..40).map(|_| reserve(class).unwrap()).collect();
        drop(again);
    }
}
