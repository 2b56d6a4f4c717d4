//! The watchdog: a green thread that holds its worker too long while others wait is named on
//! stderr, once per episode; busy runtimes that keep switching produce no line. Each case runs
//! in a child process whose stderr the test reads.

mod common;

use std::time::Duration;

use common::{is_child, run_child};

/// What every watchdog line says (and no other message of hilos).
const MARK: &str = " has held worker ";

/// The watchdog's lines in a child's stderr.
fn lines(test: &str, env: &[(&str, &str)]) -> Vec<String> {
    let out = run_child(test, env);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "child failed: {}\n{err}", out.status);
    err.lines()
        .filter(|l| l.contains(MARK))
        .map(String::from)
        .collect()
}

/// On a 1-worker runtime, `sleeper` blocks its worker in std's sleep for 500 ms while a sibling
/// waits to run.
fn block_the_worker(rt: hilos::Runtime) {
    hold_the_worker(rt, "sleeper", || {
        std::thread::sleep(Duration::from_millis(500))
    });
}

/// On `rt`, a green thread named `name` runs `work` while a sibling waits to run.
fn hold_the_worker(rt: hilos::Runtime, name: &str, work: fn()) {
    rt.block_on(move || {
        let sibling = hilos::spawn(|| hilos::sleep(Duration::from_millis(1)));
        let holder = hilos::thread::Builder::new()
            .name(name.into())
            .spawn(work)
            .unwrap();
        holder.join().unwrap();
        sibling.join().unwrap();
    });
}

#[test]
fn a_green_thread_blocking_its_worker_is_named_once() {
    if is_child() {
        return block_the_worker(hilos::Runtime::builder().workers(1).build().unwrap());
    }
    let found = lines("a_green_thread_blocking_its_worker_is_named_once", &[]);
    assert_eq!(found.len(), 1, "expected one line: {found:#?}");
    let l = &found[0];
    assert!(l.contains("'sleeper'"), "{l}");
    assert!(l.contains("blocked in system call"), "{l}");
    // Under CI's aarch64 emulator, /proc shows the host's system call number (x86_64's), which
    // the aarch64 table does not name; natively the name is there.
    if std::env::var_os("HILOS_TEST_RUNNER").is_none() {
        assert!(l.contains("nanosleep"), "the system call is named: {l}");
    }
    assert!(l.contains("has held worker 0 for"), "{l}");
    assert!(l.contains("hilos::unblock"), "with a hint: {l}");
}

#[test]
fn the_watchdog_can_be_turned_off() {
    if is_child() {
        let rt = hilos::Runtime::builder().workers(1).watchdog(None).build();
        return block_the_worker(rt.unwrap());
    }
    assert!(lines("the_watchdog_can_be_turned_off", &[]).is_empty());
}

#[test]
fn the_environment_sets_the_threshold() {
    if is_child() {
        return block_the_worker(hilos::Runtime::builder().workers(1).build().unwrap());
    }
    let test = "the_environment_sets_the_threshold";
    assert!(
        lines(test, &[("HILOS_WATCHDOG_MS", "0")]).is_empty(),
        "0 is off"
    );
    assert!(
        lines(test, &[("HILOS_WATCHDOG_MS", "2000")]).is_empty(),
        "over 500 ms"
    );
    assert_eq!(lines(test, &[("HILOS_WATCHDOG_MS", "50")]).len(), 1);
}

/// Spawn/join loops, ping-pong and a spawn burst keep switching: no line. (Sizes that keep
/// each runtime busy across many of the watchdog's 10 ms looks, and stay bearable under CI's
/// aarch64 emulator.)
fn busy_runtimes() {
    for workers in [1, 2] {
        let rt = hilos::Runtime::builder().workers(workers).build().unwrap();
        rt.block_on(|| {
            for i in 0..20_000u64 {
                assert_eq!(hilos::spawn(move || i).join().unwrap(), i);
            }
            let hs: Vec<_> = (0..10_000u64).map(|i| hilos::spawn(move || i)).collect();
            let sum: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
            assert_eq!(sum, 10_000 * 9_999 / 2);
            let (tx, rx) = hilos::sync::mpsc::channel::<u32>();
            let (back_tx, back_rx) = hilos::sync::mpsc::channel::<u32>();
            let echo = hilos::spawn(move || rx.iter().for_each(|v| back_tx.send(v).unwrap()));
            for i in 0..20_000 {
                tx.send(i).unwrap();
                assert_eq!(back_rx.recv().unwrap(), i);
            }
            drop(tx);
            echo.join().unwrap();
        });
    }
}

#[test]
fn busy_runtimes_that_keep_switching_produce_no_line() {
    if is_child() {
        return busy_runtimes();
    }
    let found = lines("busy_runtimes_that_keep_switching_produce_no_line", &[]);
    assert!(found.is_empty(), "{found:#?}");
}

/// On a 1-worker runtime, a green thread named `computer` runs `work` while a sibling waits.
fn hold_the_worker_with(work: fn()) {
    let rt = hilos::Runtime::builder().workers(1).build().unwrap();
    hold_the_worker(rt, "computer", work);
}

/// A long computation in user space holds the worker too: named, as running in user space.
#[test]
fn a_long_computation_is_named() {
    if is_child() {
        return hold_the_worker_with(|| {
            let start = std::time::Instant::now();
            let mut x = 1u64;
            while start.elapsed() < Duration::from_millis(400) {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        });
    }
    let found = lines("a_long_computation_is_named", &[]);
    assert_eq!(found.len(), 1, "expected one line: {found:#?}");
    assert!(found[0].contains("'computer'"), "{}", found[0]);
    assert!(found[0].contains("running in user space"), "{}", found[0]);
}

/// A system call that keeps the CPU busy in the kernel without blocking is not blamed on its
/// green thread (module doc of the watchdog: such are hilos's own non-blocking sends under
/// heavy loopback traffic). Here: reads of 256 MiB from /dev/zero, the kernel clearing memory,
/// for 400 ms, at a 50 ms threshold.
#[test]
fn a_system_call_busy_in_the_kernel_is_not_blamed() {
    if is_child() {
        return hold_the_worker_with(|| {
            use std::io::Read;
            // Zeroed: mapped by the kernel, not filled in user space.
            let mut buf = vec![0u8; 256 << 20];
            let mut zero = std::fs::File::open("/dev/zero").unwrap();
            let start = std::time::Instant::now();
            while start.elapsed() < Duration::from_millis(400) {
                zero.read_exact(&mut buf).unwrap();
            }
        });
    }
    let found = lines(
        "a_system_call_busy_in_the_kernel_is_not_blamed",
        &[("HILOS_WATCHDOG_MS", "50")],
    );
    assert!(found.is_empty(), "{found:#?}");
}
