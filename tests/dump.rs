//! Thread dumps: every state a green thread can wait in is named on its line, on 2 workers (run
//! this file with `HILOS_IO=epoll` too for the fallback backend); 100,000 parked threads are all
//! listed, quickly.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hilos::runtime::ThreadState;
use hilos::sync::{Arc, Barrier, Condvar, Mutex, RwLock, Semaphore, mpsc};

/// Polls dumps until `done` holds for one (at most 10 s); returns that dump's text.
fn dump_until(rt: &hilos::Runtime, done: impl Fn(&hilos::runtime::ThreadDump) -> bool) -> String {
    let start = Instant::now();
    loop {
        let d = rt.dump();
        if done(&d) {
            return d.to_string();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never reached:\n{d}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Named green threads started for the test, and the state word each one's line must show.
struct Cases {
    rt: &'static hilos::Runtime,
    expect: Vec<(String, String)>,
    handles: Vec<hilos::JoinHandle<()>>,
}

impl Cases {
    fn start(&mut self, name: &str, word: impl Into<String>, f: Box<dyn FnOnce() + Send>) {
        self.expect.push((name.into(), word.into()));
        let b = hilos::Builder::new().name(name.into());
        self.handles.push(self.rt.spawn_with(b, f).unwrap());
    }
}

#[test]
fn every_wait_state_is_named_in_the_dump() {
    // Leaked: a failing assertion must not hang in the runtime's drop, waiting for the parked.
    let rt: &'static hilos::Runtime = Box::leak(Box::new(
        hilos::Runtime::builder().workers(2).build().unwrap(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let mut c = Cases {
        rt,
        expect: Vec::new(),
        handles: Vec::new(),
    };
    // A body that calls `wait` until the test stops it.
    let until_stopped = |wait: fn()| -> Box<dyn FnOnce() + Send> {
        let s = stop.clone();
        Box::new(move || {
            while !s.load(Ordering::Acquire) {
                wait();
            }
        })
    };
    c.start("st-runnable", "[runnable]", until_stopped(hilos::yield_now));
    c.start("st-park", "[park, ", until_stopped(hilos::park));
    c.start(
        "st-sleep",
        "[sleep until +",
        until_stopped(|| hilos::sleep(Duration::from_millis(50))),
    );
    // join: joins a child that parks until stopped.
    let child = until_stopped(|| hilos::park_timeout(Duration::from_millis(20)));
    c.start(
        "st-join",
        "[join, ",
        Box::new(move || hilos::spawn(child).join().unwrap()),
    );

    // mutex
    let m = Arc::new(Mutex::new(()));
    let held = m.lock().unwrap();
    let m2 = m.clone();
    c.start(
        "st-mutex",
        "[mutex, ",
        Box::new(move || drop(m2.lock().unwrap())),
    );

    // rwlock
    let rw = Arc::new(RwLock::new(()));
    let wheld = rw.write().unwrap();
    let rw2 = rw.clone();
    c.start(
        "st-rwlock",
        "[rwlock, ",
        Box::new(move || drop(rw2.read().unwrap())),
    );

    // condvar
    let cv = Arc::new((Mutex::new(false), Condvar::new()));
    let cv2 = cv.clone();
    c.start(
        "st-condvar",
        "[condvar, ",
        Box::new(move || {
            let (m, c) = &*cv2;
            let mut g = m.lock().unwrap();
            while !*g {
                g = c.wait(g).unwrap();
            }
        }),
    );

    // channel recv and send
    let (tx, rx) = mpsc::channel::<u32>();
    c.start(
        "st-recv",
        "[channel recv, ",
        Box::new(move || {
            let _ = rx.recv();
        }),
    );
    let (stx, srx) = mpsc::sync_channel::<u32>(0);
    c.start(
        "st-send",
        "[channel send, ",
        Box::new(move || {
            let _ = stx.send(1);
        }),
    );

    // semaphore
    let sem = Arc::new(Semaphore::new(0));
    let sem2 = sem.clone();
    c.start(
        "st-semaphore",
        "[semaphore, ",
        Box::new(move || drop(sem2.acquire())),
    );

    // barrier
    let bar = Arc::new(Barrier::new(2));
    let bar2 = bar.clone();
    c.start(
        "st-barrier",
        "[barrier, ",
        Box::new(move || {
            bar2.wait();
        }),
    );

    // unblock
    let (utx, urx) = std::sync::mpsc::channel::<()>();
    c.start(
        "st-unblock",
        "[unblock, ",
        Box::new(move || {
            hilos::unblock(move || {
                let _ = urx.recv();
            })
        }),
    );

    // I/O: read on a pipe, poll on a pipe, accept, recv, send.
    let (mut pr, mut pw) = hilos::io::pipe().unwrap();
    c.start(
        "st-read",
        format!("[read fd {}, ", pr.as_raw_fd()),
        Box::new(move || {
            let mut b = [0u8; 1];
            let _ = pr.read(&mut b);
        }),
    );
    let (pr2, mut pw2) = hilos::io::pipe().unwrap();
    c.start(
        "st-poll",
        format!("[poll fd {}, ", pr2.as_raw_fd()),
        Box::new(move || drop(hilos::io::wait_readable(&pr2, None))),
    );
    // connect: a listener with a backlog of 0 holds one connection; the kernel drops the next
    // one's SYN until the queue has room, so that connect waits.
    let full = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // SAFETY: `listen` on a socket we own, to shrink its backlog.
    assert_eq!(unsafe { libc::listen(full.as_raw_fd(), 0) }, 0);
    let full_addr = full.local_addr().unwrap();
    let _queued = std::net::TcpStream::connect(full_addr).unwrap();
    c.start(
        "st-connect",
        "[connect fd ",
        Box::new(move || drop(hilos::net::TcpStream::connect(full_addr))),
    );
    // write: a pipe nobody reads, filled past its capacity.
    let (mut pr3, mut pw3) = hilos::io::pipe().unwrap();
    c.start(
        "st-write",
        format!("[write fd {}, ", pw3.as_raw_fd()),
        Box::new(move || drop(pw3.write_all(&vec![0u8; 1 << 20]))),
    );
    let listener = hilos::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    c.start(
        "st-accept",
        format!("[accept fd {}, ", listener.as_raw_fd()),
        Box::new(move || drop(listener.accept().unwrap())),
    );
    // Two connected sockets whose peers (kept by this kernel thread) neither send nor read.
    let peer = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = hilos::net::TcpStream::connect(peer.local_addr().unwrap()).unwrap();
    let client2 = hilos::net::TcpStream::connect(peer.local_addr().unwrap()).unwrap();
    let (mut peer1, _) = peer.accept().unwrap();
    let (_peer2, _) = peer.accept().unwrap();
    let mut c2 = client2.try_clone().unwrap();
    let mut cr = client.try_clone().unwrap();
    c.start(
        "st-recv-sock",
        format!("[recv fd {}, ", cr.as_raw_fd()),
        Box::new(move || {
            let mut b = [0u8; 1];
            let _ = cr.read(&mut b);
        }),
    );
    c.start(
        "st-send-sock",
        format!("[send fd {}, ", c2.as_raw_fd()),
        Box::new(move || {
            let big = vec![0u8; 64 << 20];
            let _ = c2.write_all(&big);
        }),
    );

    // running: the thread taking the dump.
    let text = dump_until(rt, |d| {
        c.expect.iter().all(|(name, word)| {
            d.iter()
                .any(|t| t.name() == Some(name) && t.to_string().contains(word.as_str()))
        })
    });
    assert!(
        text.lines()
            .all(|l| !l.starts_with("thread ") || l.contains(" spawned at tests/dump.rs:")),
        "{text}"
    );
    let (mine, line) = (rt.block_on(|| rt.dump()), line!());
    let running: Vec<_> = mine
        .iter()
        .filter(|t| t.state() == ThreadState::Running)
        .collect();
    assert_eq!(running.len(), 1, "{mine}");
    assert!(running[0].to_string().contains("[running]"));
    // `block_on`'s caller is where its thread was spawned.
    assert_eq!(running[0].spawned_at().file(), "tests/dump.rs");
    assert_eq!(running[0].spawned_at().line(), line);

    // Release everything, and check the threads all finish.
    stop.store(true, Ordering::Release);
    for h in &c.handles {
        h.thread().unpark();
    }
    drop(held);
    drop(wheld);
    *cv.0.lock().unwrap() = true;
    cv.1.notify_all();
    tx.send(1).unwrap();
    srx.recv().unwrap();
    sem.release();
    bar.wait();
    utx.send(()).unwrap();
    pw.write_all(b"x").unwrap();
    pw2.write_all(b"x").unwrap();
    // The waiting connect completes at its SYN's next retransmission (about a second).
    drop(full.accept().unwrap());
    // Drain the filled pipe on a kernel thread until the writer is done.
    let drain = std::thread::spawn(move || std::io::copy(&mut pr3, &mut std::io::sink()));
    peer1.write_all(b"x").unwrap();
    drop(client2);
    drop(_peer2);
    drop(hilos::net::TcpStream::connect(addr));
    dump_until(rt, |_| c.handles.iter().all(|h| h.is_finished()));
    for h in c.handles {
        h.join().unwrap();
    }
    assert_eq!(drain.join().unwrap().unwrap(), 1 << 20);
    assert!(rt.dump().is_empty());
}

#[test]
fn dump_of_100_000_parked_threads_lists_them_all_quickly() {
    const N: usize = 100_000;
    let rt = hilos::Runtime::builder()
        .workers(2)
        .stack_size(16 * 1024)
        .build()
        .unwrap();
    let parked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..N)
        .map(|_| {
            let (p, s) = (parked.clone(), stop.clone());
            rt.spawn(move || {
                p.fetch_add(1, Ordering::Relaxed);
                while !s.load(Ordering::Acquire) {
                    hilos::park();
                }
            })
        })
        .collect();
    while parked.load(Ordering::Relaxed) < N {
        std::thread::sleep(Duration::from_millis(5));
    }
    // The best of three, so that a build running beside the test does not fail it.
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let d = rt.dump();
        best = best.min(t.elapsed());
        assert_eq!(d.len(), N);
        assert!(d.iter().all(|t| t.state() == ThreadState::Park));
        assert_eq!(
            d.to_string()
                .lines()
                .filter(|l| l.starts_with("thread "))
                .count(),
            N
        );
    }
    // The bound is 100 ms; unoptimised builds (`cargo test`) get ten times that.
    let bound = if cfg!(debug_assertions) {
        Duration::from_secs(1)
    } else {
        Duration::from_millis(100)
    };
    assert!(best < bound, "dumping {N} threads took {best:?}");
    eprintln!("dump of {N} parked threads: {best:?}");
    stop.store(true, Ordering::Release);
    for h in &handles {
        h.thread().unpark();
    }
    for h in handles {
        h.join().unwrap();
    }
}

/// On a one-worker runtime, its only green thread spawns `N` named children and, if `dump`,
/// takes a dump before it yields; then joins them. Returns the children's run order and the
/// dump.
fn children_run_order(dump: bool) -> (Vec<usize>, Option<hilos::runtime::ThreadDump>) {
    const N: usize = 40;
    let rt = hilos::Runtime::builder().workers(1).build().unwrap();
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let d = rt.block_on(|| {
        let handles: Vec<_> = (0..N)
            .map(|i| {
                let o = order.clone();
                let b = hilos::Builder::new().name(format!("child-{i}"));
                rt.spawn_with(b, move || o.lock().unwrap().push(i)).unwrap()
            })
            .collect();
        let d = dump.then(|| rt.dump());
        for h in handles {
            h.join().unwrap();
        }
        d
    });
    let order = order.lock().unwrap().clone();
    assert_eq!(order.len(), N);
    (order, d)
}

#[test]
fn threads_not_started_are_listed_and_then_run_in_their_order() {
    let (plain, _) = children_run_order(false);
    let (order, d) = children_run_order(true);
    let d = d.unwrap();
    let text = d.to_string();
    for i in 0..plain.len() {
        let name = format!("child-{i}");
        let t = d
            .iter()
            .find(|t| t.name() == Some(name.as_str()))
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"));
        assert!(!t.started(), "{t}");
        assert_eq!(t.state(), ThreadState::Runnable);
        assert_eq!(t.worker(), Some(0));
        let line = t.to_string();
        assert!(
            line.contains(&format!(
                "'{name}' [runnable (not started)] worker 0, spawned at tests/dump.rs:"
            )),
            "{line}"
        );
    }
    assert_eq!(d.unstarted(), plain.len(), "{text}");
    assert_eq!(d.len(), plain.len() + 1, "{text}");
    assert_eq!(d.unlisted(), 0, "{text}");
    // The dump took them out of the worker's deque and put them back: same order as without.
    assert_eq!(order, plain);
}

#[test]
fn threads_spawned_from_outside_are_listed_in_the_injector_and_still_run() {
    let rt = hilos::Runtime::builder().workers(1).build().unwrap();
    let spawned = Arc::new(AtomicBool::new(false));
    let holding = Arc::new(AtomicBool::new(false));
    let (s, h) = (spawned.clone(), holding.clone());
    let rt2: &hilos::Runtime = &rt;
    std::thread::scope(|scope| {
        // The only worker is held by this thread (no switch) while the main thread spawns.
        let dumper = scope.spawn(move || {
            rt2.block_on(|| {
                h.store(true, Ordering::Release);
                while !s.load(Ordering::Acquire) {
                    std::hint::spin_loop();
                }
                rt2.dump()
            })
        });
        while !holding.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        let ran = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..5)
            .map(|i| {
                let r = ran.clone();
                let b = hilos::Builder::new().name(format!("outside-{i}"));
                rt.spawn_with(b, move || r.fetch_add(1, Ordering::Relaxed))
                    .unwrap()
            })
            .collect();
        spawned.store(true, Ordering::Release);
        let d = dumper.join().unwrap();
        let text = d.to_string();
        for i in 0..5 {
            let name = format!("'outside-{i}' [runnable (not started)] injector, spawned at");
            assert!(text.contains(&name), "{name}:\n{text}");
        }
        assert_eq!(d.unstarted(), 5, "{text}");
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(ran.load(Ordering::Relaxed), 5);
    });
}
