//! What the `hook` feature costs a call that is not on a green thread: `read(-1)` on a plain
//! kernel thread through hilos's interposed `read` (one thread-local check, then libc's) against
//! libc's own `read`, found with `dlsym(RTLD_NEXT)` as the hook finds it. Both fail at once with
//! `EBADF` in the kernel, so the difference is the hook's.
//!
//! Criterion times each alone, so the two figures carry the run-to-run noise of a system call
//! (about ±10 ns here), more than the difference sought (the bound: 5 ns). So the bench
//! first measures the difference itself: rounds of 2,000 hooked calls and 2,000 libc calls,
//! back to back, in alternating order, and prints the median per-call difference of 501 rounds
//! with its quartiles; noise that lasts longer than a round cancels out.
//!
//! `cargo bench --features hook --bench hook`

use std::hint::black_box;

use criterion::{Criterion, criterion_group};

type ReadFn = unsafe extern "C" fn(libc::c_int, *mut libc::c_void, libc::size_t) -> libc::ssize_t;

fn libc_read() -> ReadFn {
    // SAFETY: dlsym with a NUL-terminated name; RTLD_NEXT is valid from the executable.
    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, c"read".as_ptr()) };
    assert!(!p.is_null(), "libc's read not found");
    // SAFETY: libc's `read` has this signature.
    unsafe { std::mem::transmute::<*mut libc::c_void, ReadFn>(p) }
}

fn read_on_a_kernel_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("read(-1) on a kernel thread");
    let mut buf = [0u8; 8];
    g.bench_function("hooked read", |b| {
        b.iter(|| {
            // SAFETY: a bad descriptor: the call fails with EBADF, touching nothing.
            unsafe { libc::read(black_box(-1), buf.as_mut_ptr().cast(), buf.len()) }
        })
    });
    let real = libc_read();
    g.bench_function("libc's read", |b| {
        b.iter(|| {
            // SAFETY: as above, libc's own definition.
            unsafe { real(black_box(-1), buf.as_mut_ptr().cast(), buf.len()) }
        })
    });
    g.finish();
}

/// The hooked call's extra cost over libc's, per call: median and quartiles of paired rounds
/// (module doc).
fn paired_difference() {
    const ROUNDS: usize = 501;
    const CALLS: u32 = 2_000;
    let real = libc_read();
    let mut buf = [0u8; 8];
    let mut hooked = || {
        let t = std::time::Instant::now();
        for _ in 0..CALLS {
            // SAFETY: a bad descriptor: the call fails with EBADF, touching nothing.
            unsafe { libc::read(black_box(-1), buf.as_mut_ptr().cast(), buf.len()) };
        }
        t.elapsed().as_secs_f64() * 1e9 / CALLS as f64
    };
    let mut buf2 = [0u8; 8];
    let mut plain = || {
        let t = std::time::Instant::now();
        for _ in 0..CALLS {
            // SAFETY: as above, libc's own definition.
            unsafe { real(black_box(-1), buf2.as_mut_ptr().cast(), buf2.len()) };
        }
        t.elapsed().as_secs_f64() * 1e9 / CALLS as f64
    };
    // Warm-up: resolves libc's definition for the hook and warms the caches.
    hooked();
    plain();
    let mut diffs: Vec<f64> = (0..ROUNDS)
        .map(|i| {
            if i % 2 == 0 {
                let h = hooked();
                h - plain()
            } else {
                let p = plain();
                hooked() - p
            }
        })
        .collect();
    diffs.sort_by(f64::total_cmp);
    let q = |f: f64| diffs[((ROUNDS - 1) as f64 * f) as usize];
    println!(
        "read(-1) on a kernel thread, hooked minus libc's, per call: median {:+.2} ns \
         (quartiles {:+.2} to {:+.2} ns; {ROUNDS} paired rounds of {CALLS} calls)",
        q(0.5),
        q(0.25),
        q(0.75)
    );
}

criterion_group!(benches, read_on_a_kernel_thread);

fn main() {
    paired_difference();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
