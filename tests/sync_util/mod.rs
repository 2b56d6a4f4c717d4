//! Helpers shared by the `sync_*` integration tests.
#![allow(dead_code)]

use std::sync::Once;
use std::time::Duration;

/// The payload of panics the tests cause on purpose (poisoning); the panic hook stays quiet for it.
pub const EXPECTED: &str = "hilos-test: expected panic";

/// Installs (once) a panic hook that does not print the panics the tests cause on purpose.
pub fn quiet_expected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let p = info.payload();
            let expected = p.downcast_ref::<&str>().is_some_and(|s| *s == EXPECTED)
                || p.downcast_ref::<String>().is_some_and(|s| s == EXPECTED);
            if !expected {
                default(info);
            }
        }));
    });
}

/// Panics with the expected payload.
pub fn expected_panic() -> ! {
    std::panic::panic_any(EXPECTED)
}

/// Runs `f` on a kernel thread and fails the test if it has not returned within `secs` seconds
/// (a deadlock, typically a kernel-blocking wait on a one-worker runtime), instead of hanging.
pub fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(());
        r
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(()) => match h.join().unwrap() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        },
        Err(_) => panic!("did not finish within {secs} s: deadlock or lost wake-up"),
    }
}

/// Runs `f` as a green thread on a fresh runtime with `workers` workers, within `secs` seconds.
pub fn on_rt<T: Send + 'static>(
    workers: usize,
    secs: u64,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    within(secs, move || {
        let rt = hilos::Runtime::builder().workers(workers).build().unwrap();
        let v = rt.block_on(f);
        drop(rt);
        v
    })
}

/// Runs `f` on a one-worker runtime and on a two-worker runtime.
pub fn on_both<T: Send + 'static>(secs: u64, f: impl Fn() -> T + Send + Sync + Clone + 'static) {
    let g = f.clone();
    on_rt(1, secs, move || {
        g();
    });
    on_rt(2, secs, move || {
        f();
    });
}

/// Spins for about `ns` nanoseconds of work (a critical section that does not switch).
pub fn busy(iters: u32) {
    let mut x = 1u64;
    for i in 0..iters {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i as u64));
    }
    std::hint::black_box(x);
}
