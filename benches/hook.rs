//! What the `hook` feature costs a call that is not on a green thread: `read(-1)` on a plain
//! kernel thread through hilos's interposed `read` (one thread-local check, then libc's) against
//! libc's own `read`, found with `dlsym(RTLD_NEXT)` as the hook finds it. Both fail at once with
//! `EBADF` in the kernel, so the difference is the hook's.
//!
//! `cargo bench --features hook --bench hook`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

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

criterion_group!(benches, read_on_a_kernel_thread);
criterion_main!(benches);
