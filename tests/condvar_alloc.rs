//! `Condvar::notify_all` allocates nothing, however many threads wait (std's does not either; a
//! notifier that needed memory could fail where `unpark` recovers). Its own test binary: the
//! global allocator here counts the allocations made by the threads that ask it to.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static COUNTED: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn note() {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        COUNTED.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged; counting touches only a
// `const` thread-local and an atomic, neither of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note();
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        note();
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        note();
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.realloc(p, l, new) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// 100,000 green threads wait on one condition variable; a kernel thread wakes them all with one
/// `notify_all`, which makes no allocation (it made about 17, for a list of 100,000 threads).
#[test]
fn notify_all_of_100_000_waiters_allocates_nothing() {
    // Under the aarch64 emulator stacks are guarded with mprotect, two mappings each, and
    // 100,000 of them do not fit the mapping limit: 10,000 there (a list would still allocate).
    let n: usize = if std::env::var_os("HILOS_TEST_RUNNER").is_some() {
        10_000
    } else {
        100_000
    };
    let state = Arc::new((
        hilos::sync::Mutex::new((0usize, false)),
        hilos::sync::Condvar::new(),
    ));
    // The notifier: a kernel thread (outside the runtime, so its waiting blocks no worker).
    let s = state.clone();
    let notifier = std::thread::spawn(move || {
        let (m, cv) = &*s;
        loop {
            let mut g = m.lock().unwrap();
            if g.0 == n {
                g.1 = true;
                COUNTING.with(|c| c.set(true));
                cv.notify_all();
                COUNTING.with(|c| c.set(false));
                return COUNTED.load(Ordering::Relaxed);
            }
            drop(g);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    });
    let rt = hilos::Runtime::builder().workers(2).build().unwrap();
    rt.block_on(|| {
        let waiters: Vec<_> = (0..n)
            .map(|_| {
                let s = state.clone();
                hilos::spawn(move || {
                    let (m, cv) = &*s;
                    let mut g = m.lock().unwrap();
                    g.0 += 1;
                    while !g.1 {
                        g = cv.wait(g).unwrap();
                    }
                })
            })
            .collect();
        for w in waiters {
            w.join().unwrap();
        }
    });
    let counted = notifier.join().unwrap();
    assert_eq!(
        counted, 0,
        "notify_all of {n} waiters made {counted} allocations"
    );
}
