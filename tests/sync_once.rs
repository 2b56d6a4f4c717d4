//! `hilos::sync::OnceLock` and `LazyLock`: one initialisation, waiters parked (not blocking the
//! worker) while the initialiser itself parks, panics in initialisers, and std's API.

mod sync_util;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hilos::sync::{LazyLock, OnceLock};
use sync_util::*;

/// The initialiser sleeps (parks its green thread); the other green threads of the single worker
/// wait for it by parking. A kernel-blocking wait would deadlock the runtime.
#[test]
fn once_lock_initialiser_parks_others_wait() {
    on_both(20, || {
        let cell = Arc::new(OnceLock::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..20)
            .map(|i| {
                let (cell, runs) = (cell.clone(), runs.clone());
                hilos::spawn(move || {
                    *cell.get_or_init(|| {
                        runs.fetch_add(1, Ordering::SeqCst);
                        hilos::sleep(Duration::from_millis(20));
                        i
                    })
                })
            })
            .collect();
        let vals: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(vals.iter().all(|&v| v == vals[0]));
        assert_eq!(cell.get(), Some(&vals[0]));
    });
}

#[test]
fn once_lock_panicking_initialiser_lets_the_next_one_run() {
    quiet_expected_panics();
    on_both(20, || {
        let cell = Arc::new(OnceLock::<u32>::new());
        let c2 = cell.clone();
        let first = hilos::spawn(move || {
            c2.get_or_init(|| {
                hilos::sleep(Duration::from_millis(10));
                expected_panic()
            });
        });
        hilos::sleep(Duration::from_millis(2));
        let c3 = cell.clone();
        let second = hilos::spawn(move || *c3.get_or_init(|| 7));
        assert!(first.join().is_err());
        assert_eq!(second.join().unwrap(), 7);
        assert_eq!(cell.get(), Some(&7));
    });
}

#[test]
fn once_lock_api() {
    let c = OnceLock::new();
    assert_eq!(format!("{c:?}"), "OnceLock(<uninit>)");
    assert_eq!(c.get(), None);
    assert_eq!(c.set(1), Ok(()));
    assert_eq!(c.set(2), Err(2));
    assert_eq!(c.get_or_init(|| 3), &1);
    assert_eq!(format!("{c:?}"), "OnceLock(1)");
    assert_eq!(c.clone(), c);
    assert_ne!(OnceLock::from(2), c);
    assert_eq!(OnceLock::<u8>::new(), OnceLock::default());
    let mut c = c;
    *c.get_mut().unwrap() += 10;
    assert_eq!(c.take(), Some(11));
    assert_eq!(c.get(), None);
    assert_eq!(c.get_mut(), None);
    c.set(4).unwrap();
    assert_eq!(c.into_inner(), Some(4));
    // Values are dropped exactly once.
    let drops = Arc::new(());
    {
        let c = OnceLock::new();
        c.set(drops.clone()).unwrap();
        assert_eq!(Arc::strong_count(&drops), 2);
        let c2 = c.clone();
        assert_eq!(Arc::strong_count(&drops), 3);
        drop(c2);
    }
    assert_eq!(Arc::strong_count(&drops), 1);
    static S: OnceLock<String> = OnceLock::new();
    assert_eq!(S.get_or_init(|| "x".into()), "x");
}

/// `wait` on green threads for a value a kernel thread sets later, and the other way round.
#[test]
fn once_lock_wait_mixed() {
    within(20, || {
        let rt = hilos::Runtime::builder().workers(1).build().unwrap();
        let cell = Arc::new(OnceLock::new());
        let waiters: Vec<_> = (0..5)
            .map(|_| {
                let cell = cell.clone();
                rt.spawn(move || *cell.wait())
            })
            .collect();
        assert_eq!(rt.spawn(|| 1).join().unwrap(), 1, "worker blocked");
        std::thread::sleep(Duration::from_millis(10));
        cell.set(9).unwrap();
        for w in waiters {
            assert_eq!(w.join().unwrap(), 9);
        }
        let cell = Arc::new(OnceLock::new());
        let c2 = cell.clone();
        let k = std::thread::spawn(move || *c2.wait());
        std::thread::sleep(Duration::from_millis(10));
        let c3 = cell.clone();
        rt.block_on(move || c3.set(3).unwrap());
        assert_eq!(k.join().unwrap(), 3);
    });
}

#[test]
fn lazy_lock_initialiser_parks_others_wait() {
    on_both(20, || {
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let lazy = Arc::new(LazyLock::new(|| {
            RUNS.fetch_add(1, Ordering::SeqCst);
            hilos::sleep(Duration::from_millis(20));
            42
        }));
        let before = RUNS.load(Ordering::SeqCst);
        let hs: Vec<_> = (0..20)
            .map(|_| {
                let lazy = lazy.clone();
                hilos::spawn(move || *LazyLock::force(&lazy))
            })
            .collect();
        for h in hs {
            assert_eq!(h.join().unwrap(), 42);
        }
        assert_eq!(RUNS.load(Ordering::SeqCst) - before, 1);
    });
}

#[test]
fn lazy_lock_poisoned_by_panic() {
    quiet_expected_panics();
    on_both(20, || {
        let lazy: Arc<LazyLock<u32>> = Arc::new(LazyLock::new(|| {
            hilos::sleep(Duration::from_millis(10));
            expected_panic()
        }));
        let l2 = lazy.clone();
        let first = hilos::spawn(move || *LazyLock::force(&l2));
        hilos::sleep(Duration::from_millis(2));
        let l3 = lazy.clone();
        let waiter = hilos::spawn(move || *LazyLock::force(&l3));
        assert!(first.join().is_err());
        let e = waiter.join().unwrap_err();
        let msg = e
            .downcast_ref::<&str>()
            .copied()
            .map(String::from)
            .or_else(|| e.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        assert!(msg.contains("poisoned"), "{msg}");
        assert!(LazyLock::get(&lazy).is_none());
    });
}

#[test]
fn lazy_lock_api() {
    let mut l = LazyLock::new(|| vec![1, 2]);
    assert_eq!(format!("{l:?}"), "LazyLock(<uninit>)");
    assert_eq!(LazyLock::get(&l), None);
    assert_eq!(LazyLock::get_mut(&mut l), None);
    LazyLock::force_mut(&mut l).push(3);
    l.push(4);
    assert_eq!(*l, [1, 2, 3, 4]);
    assert_eq!(format!("{l:?}"), "LazyLock([1, 2, 3, 4])");
    assert_eq!(LazyLock::get(&l).map(|v| v.len()), Some(4));
    let d: LazyLock<Vec<u8>> = LazyLock::default();
    assert!(d.is_empty());
    static S: LazyLock<String> = LazyLock::new(|| "s".repeat(3));
    assert_eq!(*S, "sss");
    // The closure is dropped if never run, the value if it was.
    let token = Arc::new(());
    let t2 = token.clone();
    let never = LazyLock::new(move || t2.clone());
    assert_eq!(Arc::strong_count(&token), 2);
    drop(never);
    assert_eq!(Arc::strong_count(&token), 1);
    let t3 = token.clone();
    let forced = LazyLock::new(move || t3);
    LazyLock::force(&forced);
    assert_eq!(Arc::strong_count(&token), 2);
    drop(forced);
    assert_eq!(Arc::strong_count(&token), 1);
    // force_mut poisons on panic too.
    quiet_expected_panics();
    let mut p: LazyLock<u8> = LazyLock::new(|| expected_panic());
    assert!(
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| *LazyLock::force_mut(
            &mut p
        )))
        .is_err()
    );
    assert!(
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| *LazyLock::force(&p))).is_err()
    );
}

/// `Once::call_once` whose closure parks: the other green threads of the worker wait by parking
/// (std's `Once` would block the worker: a deadlock on one worker), the closure runs once, and
/// `wait` returns once it has.
#[test]
fn once_call_parks_others_wait() {
    on_both(20, || {
        let once = Arc::new(hilos::sync::Once::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let waiter = {
            let once = once.clone();
            hilos::spawn(move || once.wait())
        };
        let hs: Vec<_> = (0..20)
            .map(|_| {
                let (once, runs) = (once.clone(), runs.clone());
                hilos::spawn(move || {
                    once.call_once(|| {
                        hilos::sleep(Duration::from_millis(20));
                        runs.fetch_add(1, Ordering::SeqCst);
                    });
                    // Whoever returns sees the call done.
                    assert_eq!(runs.load(Ordering::SeqCst), 1);
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        waiter.join().unwrap();
        assert!(once.is_completed());
    });
}

/// std's poisoning: a panicking closure poisons the `Once`; `call_once` and `wait` then panic
/// with std's message; `call_once_force` runs (told it is poisoned) and clears it. Also on a
/// kernel thread.
#[test]
fn once_poisoning_as_std() {
    fn check() {
        let once = hilos::sync::Once::new();
        let r = std::panic::catch_unwind(|| once.call_once(|| panic!("first")));
        assert!(r.is_err());
        assert!(!once.is_completed());
        for r in [
            std::panic::catch_unwind(|| once.call_once(|| ())),
            std::panic::catch_unwind(|| once.wait()),
        ] {
            let p = r.unwrap_err();
            let msg = p.downcast_ref::<String>().cloned().unwrap_or_default();
            assert!(msg.contains("previously been poisoned"), "{msg}");
        }
        let mut seen = None;
        once.call_once_force(|s| seen = Some(s.is_poisoned()));
        assert_eq!(seen, Some(true));
        assert!(once.is_completed());
        once.call_once(|| panic!("must not run again"));
        once.wait();
    }
    on_both(20, check);
    check();
}

/// `wait_force` (std's): on a poisoned `Once` it waits, parked, for a forced call to complete
/// it, instead of panicking as `wait` does; three green waiters on one worker stay parked while
/// the worker runs the forcing thread, which parks in the middle of its call. Also from a kernel
/// thread waiting on green threads.
#[test]
fn once_wait_force_waits_out_poison() {
    fn check() {
        let once = Arc::new(hilos::sync::Once::new());
        let o = once.clone();
        let _ = hilos::spawn(move || o.call_once(|| panic!("poisons it (expected)"))).join();
        let woke = Arc::new(AtomicUsize::new(0));
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let (o, woke) = (once.clone(), woke.clone());
                hilos::spawn(move || {
                    o.wait_force();
                    woke.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        hilos::sleep(Duration::from_millis(20));
        assert_eq!(
            woke.load(Ordering::SeqCst),
            0,
            "a waiter passed a poisoned Once"
        );
        let o = once.clone();
        let w = woke.clone();
        hilos::spawn(move || {
            o.call_once_force(|s| {
                assert!(s.is_poisoned());
                hilos::sleep(Duration::from_millis(10)); // parks mid-call
                assert_eq!(
                    w.load(Ordering::SeqCst),
                    0,
                    "a waiter passed a running call"
                );
            })
        })
        .join()
        .unwrap();
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(woke.load(Ordering::SeqCst), 3);
        assert!(once.is_completed());
        once.wait_force(); // completed: returns at once
    }
    on_both(20, check);
    check();
}
