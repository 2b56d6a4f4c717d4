//! `hilos::sync::Condvar`: notification, timeouts, no lost notification, mixed green/kernel use,
//! poisoning.

mod sync_util;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hilos::sync::{Condvar, Mutex};
use sync_util::*;

#[test]
fn notify_one_and_wait_while() {
    on_both(20, || {
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let p2 = pair.clone();
        let h = hilos::spawn(move || {
            let (m, c) = &*p2;
            let g = c.wait_while(m.lock().unwrap(), |ready| !*ready).unwrap();
            assert!(*g);
        });
        hilos::yield_now();
        let (m, c) = &*pair;
        *m.lock().unwrap() = true;
        c.notify_one();
        h.join().unwrap();
        assert_eq!(format!("{c:?}"), "Condvar { .. }");
    });
}

/// A bounded producer/consumer queue built the textbook way, many producers and consumers.
#[test]
fn producer_consumer_queue() {
    on_both(30, || {
        struct Q {
            q: Mutex<VecDeque<u64>>,
            not_empty: Condvar,
            not_full: Condvar,
        }
        let q = Arc::new(Q {
            q: Mutex::new(VecDeque::new()),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
        });
        let producers: Vec<_> = (0..8u64)
            .map(|p| {
                let q = q.clone();
                hilos::spawn(move || {
                    for i in 0..500 {
                        let mut g = q
                            .not_full
                            .wait_while(q.q.lock().unwrap(), |v| v.len() >= 4)
                            .unwrap();
                        g.push_back(p * 1000 + i);
                        drop(g);
                        q.not_empty.notify_one();
                    }
                })
            })
            .collect();
        let consumers: Vec<_> = (0..4)
            .map(|_| {
                let q = q.clone();
                hilos::spawn(move || {
                    let mut sum = 0;
                    for _ in 0..1000 {
                        let mut g = q
                            .not_empty
                            .wait_while(q.q.lock().unwrap(), |v| v.is_empty())
                            .unwrap();
                        sum += g.pop_front().unwrap();
                        drop(g);
                        q.not_full.notify_one();
                    }
                    sum
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        let total: u64 = consumers.into_iter().map(|c| c.join().unwrap()).sum();
        let expect: u64 = (0..8u64)
            .map(|p| (0..500).map(|i| p * 1000 + i).sum::<u64>())
            .sum();
        assert_eq!(total, expect);
    });
}

/// A timed wait on a one-worker runtime times out, and meanwhile the worker runs other green
/// threads (it is not blocked in the kernel).
#[test]
fn wait_timeout_times_out_without_blocking_the_worker() {
    on_rt(1, 20, || {
        let pair = Arc::new((Mutex::new(0), Condvar::new()));
        let ticks = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (ticks, stop) = (ticks.clone(), stop.clone());
            hilos::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    ticks.fetch_add(1, Ordering::Relaxed);
                    hilos::sleep(Duration::from_millis(1));
                }
            })
        };
        let (m, c) = &*pair;
        let t = Instant::now();
        let (g, r) = c
            .wait_timeout(m.lock().unwrap(), Duration::from_millis(50))
            .unwrap();
        assert!(r.timed_out());
        assert!(t.elapsed() >= Duration::from_millis(50));
        assert_eq!(*g, 0);
        drop(g);
        assert!(
            ticks.load(Ordering::Relaxed) >= 5,
            "the worker was blocked during the wait"
        );
        // wait_timeout_while: times out with the condition still true.
        let (g, r) = c
            .wait_timeout_while(m.lock().unwrap(), Duration::from_millis(20), |v| *v == 0)
            .unwrap();
        assert!(r.timed_out());
        drop(g);
        stop.store(true, Ordering::Relaxed);
        ticker.join().unwrap();
    });
}

#[test]
fn wait_timeout_while_satisfied_in_time() {
    on_both(20, || {
        let pair = Arc::new((Mutex::new(0), Condvar::new()));
        let p2 = pair.clone();
        let h = hilos::spawn(move || {
            hilos::sleep(Duration::from_millis(5));
            let (m, c) = &*p2;
            *m.lock().unwrap() = 1;
            c.notify_all();
        });
        let (m, c) = &*pair;
        let (g, r) = c
            .wait_timeout_while(m.lock().unwrap(), Duration::from_secs(10), |v| *v == 0)
            .unwrap();
        assert!(!r.timed_out());
        assert_eq!(*g, 1);
        drop(g);
        h.join().unwrap();
        // A huge timeout is "no deadline".
        let (g, r) = c
            .wait_timeout_while(m.lock().unwrap(), Duration::MAX, |v| *v == 0)
            .unwrap();
        assert!(!r.timed_out());
        drop(g);
    });
}

#[test]
fn notify_all_wakes_everyone() {
    on_both(20, || {
        let n = 50;
        let state = Arc::new((Mutex::new((0usize, false)), Condvar::new()));
        let hs: Vec<_> = (0..n)
            .map(|_| {
                let s = state.clone();
                hilos::spawn(move || {
                    let (m, c) = &*s;
                    let mut g = m.lock().unwrap();
                    g.0 += 1;
                    let g = c.wait_while(g, |g| !g.1).unwrap();
                    drop(g);
                })
            })
            .collect();
        let (m, c) = &*state;
        loop {
            if m.lock().unwrap().0 == n {
                break;
            }
            // (Not yield_now: a yield loop does not let threads that never ran start.)
            hilos::sleep(Duration::from_micros(100));
        }
        m.lock().unwrap().1 = true;
        c.notify_all();
        for h in hs {
            h.join().unwrap();
        }
    });
}

/// A notification given to a waiter whose timeout expires at the same moment must not be lost:
/// the waiter either reports "not timed out" (and then passes the notification on, as correct user
/// code must), or the notification goes to another waiter. Blocking waiters (no timeout) consume
/// the tokens; timed waiters keep timing out around them. A lost notification leaves a blocking
/// waiter asleep with a token available: the test then does not finish.
#[test]
fn no_notification_lost_to_a_timeout() {
    for workers in [1, 2] {
        on_rt(workers, 30, || {
            struct S {
                m: Mutex<usize>,
                c: Condvar,
                done: AtomicBool,
            }
            let s = Arc::new(S {
                m: Mutex::new(0),
                c: Condvar::new(),
                done: AtomicBool::new(false),
            });
            let rounds = 2000;
            // Everyone has started before the first notification.
            let start = Arc::new(hilos::sync::Barrier::new(9));
            let consumers: Vec<_> = (0..4)
                .map(|_| {
                    let (s, start) = (s.clone(), start.clone());
                    hilos::spawn(move || {
                        start.wait();
                        let mut got = 0;
                        loop {
                            let mut g =
                                s.c.wait_while(s.m.lock().unwrap(), |t| {
                                    *t == 0 && !s.done.load(Ordering::Relaxed)
                                })
                                .unwrap();
                            if *g == 0 {
                                return got;
                            }
                            *g -= 1;
                            got += 1;
                        }
                    })
                })
                .collect();
            let timers: Vec<_> = (0..4)
                .map(|k| {
                    let (s, start) = (s.clone(), start.clone());
                    hilos::spawn(move || {
                        start.wait();
                        let mut i = 0u64;
                        while !s.done.load(Ordering::Relaxed) {
                            let g = s.m.lock().unwrap();
                            let d = Duration::from_micros(1 + (i * 7 + k) % 40);
                            let (g, r) = s.c.wait_timeout(g, d).unwrap();
                            drop(g);
                            if !r.timed_out() {
                                // Not ours to consume: pass it on.
                                s.c.notify_one();
                            }
                            i += 1;
                        }
                    })
                })
                .collect();
            start.wait();
            for i in 0..rounds {
                *s.m.lock().unwrap() += 1;
                s.c.notify_one();
                if i % 8 == 0 {
                    hilos::yield_now();
                }
            }
            // Wait until every token is consumed, then stop everyone.
            loop {
                if *s.m.lock().unwrap() == 0 {
                    break;
                }
                hilos::sleep(Duration::from_micros(100));
            }
            s.done.store(true, Ordering::Relaxed);
            {
                let _g = s.m.lock().unwrap();
                s.c.notify_all();
            }
            let got: usize = consumers.into_iter().map(|h| h.join().unwrap()).sum();
            for h in timers {
                h.join().unwrap();
            }
            assert_eq!(got, rounds);
        });
    }
}

#[test]
fn mixed_green_and_kernel() {
    within(20, || {
        let rt = hilos::Runtime::builder().workers(1).build().unwrap();
        // Kernel waiter, green notifier.
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let p2 = pair.clone();
        let k = std::thread::spawn(move || {
            let (m, c) = &*p2;
            drop(c.wait_while(m.lock().unwrap(), |r| !*r).unwrap());
        });
        std::thread::sleep(Duration::from_millis(10));
        let p3 = pair.clone();
        rt.block_on(move || {
            let (m, c) = &*p3;
            *m.lock().unwrap() = true;
            c.notify_one();
        });
        k.join().unwrap();

        // Green waiter, kernel notifier; the worker keeps running other green threads meanwhile.
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let p2 = pair.clone();
        let ran = Arc::new(AtomicBool::new(false));
        let ran2 = ran.clone();
        let waiter = rt.spawn(move || {
            let (m, c) = &*p2;
            drop(c.wait_while(m.lock().unwrap(), |r| !*r).unwrap());
        });
        rt.spawn(move || ran2.store(true, Ordering::SeqCst))
            .join()
            .unwrap();
        assert!(ran.load(Ordering::SeqCst));
        let (m, c) = &*pair;
        *m.lock().unwrap() = true;
        c.notify_one();
        waiter.join().unwrap();
    });
}

#[test]
fn poisoned_mutex_reported_after_wait() {
    quiet_expected_panics();
    on_both(20, || {
        // (waiter is waiting, value)
        let pair = Arc::new((Mutex::new((false, 0)), Condvar::new()));
        let p2 = pair.clone();
        let waiter = hilos::spawn(move || {
            let (m, c) = &*p2;
            let mut g = m.lock().unwrap();
            g.0 = true;
            let r = c.wait_while(g, |v| v.1 == 0);
            assert!(r.is_err(), "poisoning while waiting must be reported");
            let (g, to) = c
                .wait_timeout(r.unwrap_err().into_inner(), Duration::from_millis(1))
                .unwrap_err()
                .into_inner();
            assert!(to.timed_out());
            assert_eq!(g.1, 1);
        });
        let p3 = pair.clone();
        let _ = hilos::spawn(move || {
            let (m, c) = &*p3;
            loop {
                let mut g = m.lock().unwrap();
                if !g.0 {
                    // The waiter has not started waiting yet.
                    drop(g);
                    hilos::yield_now();
                    continue;
                }
                g.1 = 1;
                c.notify_all();
                expected_panic();
            }
        })
        .join();
        waiter.join().unwrap();
    });
}
