//! The `hook` feature: std and raw libc calls on green threads park only the green thread.
//! Run with `cargo test --release --features hook --test hook` (and `HILOS_IO=epoll` for the
//! fallback). Release: the 50 ms bound on the ticker's gap is about blocking, and a debug build
//! waking 2,000 threads at once on a loaded machine can take longer than that by CPU alone.
//!
//! Every scenario runs on a fresh 1-worker runtime while a ticker green thread sleeps 1 ms in a
//! loop: had any call blocked the worker, the ticker would see a gap (the bound: 50 ms).
//! The scenarios run one at a time (a lock): they measure time. The machine may be loaded (CI
//! shares its two cores with other builds), and a worker waking 2,000 threads at once may then
//! stay busy, or wait for a CPU, longer than 50 ms without anything blocking it. So a kernel
//! thread samples the worker's scheduler statistics (`/proc/self/task/TID/schedstat`: time on a
//! CPU, time waiting for one) every millisecond, and a gap of the green ticker over 50 ms counts
//! as a blocked worker if, across it, the worker spent over half of the bound neither running nor
//! runnable: asleep in the kernel, which is what a blocking call does.
#![cfg(feature = "hook")]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// The bound on the ticker's gap.
const MAX_GAP: Duration = Duration::from_millis(50);

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `f` as a green thread of a fresh 1-worker runtime next to the ticker; returns `f`'s
/// value and asserts the worker was never blocked across a ticker gap over [`MAX_GAP`].
fn with_ticker<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    common::within(60, move || {
        let stop_k = Arc::new(AtomicBool::new(false));
        let worker_tid = Arc::new(AtomicI32::new(0));
        let sampling = Arc::new(AtomicBool::new(false));
        let (sk, tid, sg) = (stop_k.clone(), worker_tid.clone(), sampling.clone());
        let sampler = std::thread::spawn(move || sample_worker(&sk, &tid, &sg));
        let rt = hilos::Runtime::builder().workers(1).build().unwrap();
        let (v, gap) = rt.block_on(move || {
            let stop = Arc::new(AtomicBool::new(false));
            let s = stop.clone();
            let ticker = hilos::spawn(move || {
                // SAFETY: gettid has no preconditions.
                worker_tid.store(unsafe { libc::gettid() }, Ordering::Relaxed);
                while !sampling.load(Ordering::Acquire) {
                    hilos::sleep(Duration::from_millis(1));
                }
                max_gap(&s, || hilos::sleep(Duration::from_millis(1)))
            });
            hilos::sleep(Duration::from_millis(5));
            let v = f();
            stop.store(true, Ordering::Relaxed);
            (v, ticker.join().unwrap())
        });
        stop_k.store(true, Ordering::Relaxed);
        let samples = sampler.join().unwrap();
        if gap.len > MAX_GAP {
            let asleep = asleep_across(&samples, gap.from, gap.from + gap.len);
            assert!(
                asleep <= MAX_GAP / 2,
                "the ticker waited {:?}, and the worker slept in the kernel {asleep:?} of it: \
                 the worker was blocked",
                gap.len
            );
        }
        v
    })
}

/// The ticker's longest interval between two ticks, and when it began.
struct Gap {
    from: Instant,
    len: Duration,
}

/// The longest interval between two `tick()`s until `stop`.
fn max_gap(stop: &AtomicBool, tick: impl Fn()) -> Gap {
    let mut max = Gap {
        from: Instant::now(),
        len: Duration::ZERO,
    };
    let mut last = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        tick();
        let now = Instant::now();
        if now - last > max.len {
            max = Gap {
                from: last,
                len: now - last,
            };
        }
        last = now;
    }
    max
}

/// One reading of the worker's scheduler statistics: when, and its nanoseconds on a CPU plus
/// waiting for one.
type Sample = (Instant, u64);

/// Reads the worker's statistics about every millisecond, once its id is known, and once more
/// after `stop`; sets `sampling` after the first reading.
fn sample_worker(stop: &AtomicBool, tid: &AtomicI32, sampling: &AtomicBool) -> Vec<Sample> {
    let mut out = Vec::with_capacity(1 << 16);
    loop {
        let done = stop.load(Ordering::Relaxed);
        let t = tid.load(Ordering::Relaxed);
        if t != 0 {
            let text = std::fs::read_to_string(format!("/proc/self/task/{t}/schedstat")).unwrap();
            let mut f = text.split_whitespace().map(|x| x.parse::<u64>().unwrap());
            let (run, wait) = (f.next().unwrap(), f.next().unwrap());
            out.push((Instant::now(), run + wait));
            sampling.store(true, Ordering::Release);
        }
        if done {
            return out;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// How long the worker was neither running nor runnable across `[from, to]`, measured between
/// the last sample before `from` and the first after `to` (both exist: sampling starts before
/// the ticker and stops after it). A blocked worker sleeps in the kernel for the whole blocking
/// call; a busy or CPU-starved one does not.
fn asleep_across(samples: &[Sample], from: Instant, to: Instant) -> Duration {
    let a = samples
        .iter()
        .rev()
        .find(|s| s.0 <= from)
        .expect("a sample before the gap");
    let b = samples
        .iter()
        .find(|s| s.0 >= to)
        .expect("a sample after the gap");
    (b.0 - a.0).saturating_sub(Duration::from_nanos(b.1 - a.1))
}

#[test]
fn std_sleep_parks_only_the_green_thread() {
    let took = with_ticker(|| {
        let start = Instant::now();
        let hs: Vec<_> = (0..2000)
            .map(|_| hilos::spawn(|| std::thread::sleep(Duration::from_millis(100))))
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        start.elapsed()
    });
    // 2,000 sleeps of 100 ms overlap; serially they would take 200 s. Margin: 1 s.
    assert!(took >= Duration::from_millis(100), "{took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[test]
fn libc_sleep_family_parks() {
    with_ticker(|| {
        let start = Instant::now();
        let hs = vec![
            // SAFETY: plain calls.
            hilos::spawn(|| unsafe { libc::usleep(150_000) }),
            hilos::spawn(|| unsafe {
                let ts = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 150_000_000,
                };
                libc::clock_nanosleep(libc::CLOCK_MONOTONIC, 0, &ts, std::ptr::null_mut())
            }),
            // An absolute deadline on the realtime clock, 600 ms away (more than one of the
            // hook's 250 ms steps).
            hilos::spawn(|| unsafe {
                let mut ts = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts);
                ts.tv_nsec += 600_000_000;
                if ts.tv_nsec >= 1_000_000_000 {
                    ts.tv_sec += 1;
                    ts.tv_nsec -= 1_000_000_000;
                }
                let r = libc::clock_nanosleep(
                    libc::CLOCK_REALTIME,
                    libc::TIMER_ABSTIME,
                    &ts,
                    std::ptr::null_mut(),
                );
                let mut now = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                libc::clock_gettime(libc::CLOCK_REALTIME, &mut now);
                assert!((now.tv_sec, now.tv_nsec) >= (ts.tv_sec, ts.tv_nsec));
                r
            }),
        ];
        for h in hs {
            assert_eq!(h.join().unwrap(), 0);
        }
        assert!(start.elapsed() >= Duration::from_millis(150));
        // libc's EINVAL for a bad interval is kept.
        let bad = libc::timespec {
            tv_sec: 0,
            tv_nsec: 2_000_000_000,
        };
        // SAFETY: a live timespec.
        let r = unsafe { libc::nanosleep(&bad, std::ptr::null_mut()) };
        assert_eq!(r, -1);
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EINVAL)
        );
    });
}

/// A std::net echo server and 500 std::net clients, all green threads, 50 checked round trips
/// each.
#[test]
fn std_net_echo_500_clients() {
    with_ticker(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = hilos::spawn(move || {
            let mut conns = Vec::new();
            for _ in 0..500 {
                let (mut s, _) = l.accept().unwrap();
                conns.push(hilos::spawn(move || {
                    let mut buf = [0u8; 64];
                    loop {
                        let n = s.read(&mut buf).unwrap();
                        if n == 0 {
                            return;
                        }
                        s.write_all(&buf[..n]).unwrap();
                    }
                }));
            }
            for c in conns {
                c.join().unwrap();
            }
        });
        let clients: Vec<_> = (0..500u32)
            .map(|i| {
                hilos::spawn(move || {
                    let mut s = TcpStream::connect(addr).unwrap();
                    for r in 0..50u32 {
                        let msg = (i * 1000 + r).to_le_bytes();
                        s.write_all(&msg).unwrap();
                        let mut back = [0u8; 4];
                        s.read_exact(&mut back).unwrap();
                        assert_eq!(back, msg);
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        server.join().unwrap();
    });
}

#[test]
fn std_read_timeout_is_honoured() {
    with_ticker(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let _peer = l.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let start = Instant::now();
        let e = c.read(&mut [0u8; 8]).unwrap_err();
        let took = start.elapsed();
        assert!(
            matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{e:?}"
        );
        // Margin above: 1 s.
        assert!(took >= Duration::from_millis(200), "{took:?}");
        assert!(took < Duration::from_millis(1200), "{took:?}");
    });
}

/// A socket timeout set where the hook cannot see it (a raw system call) before the first
/// waiting call is still honoured: the hook looks at the descriptors the process holds the first
/// time it needs to know whether any socket may have a timeout. Runs in a child process, whose
/// first waiting call is this one.
#[test]
fn timeout_set_behind_the_hooks_back_is_found() {
    if !common::is_child() {
        let out = common::run_child("timeout_set_behind_the_hooks_back_is_found", &[]);
        assert!(
            out.status.success(),
            "child failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    use std::os::fd::AsRawFd;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let _peer = l.accept().unwrap();
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 200_000,
    };
    // SAFETY: a live timeval of the size given; the raw call bypasses the interposed setsockopt.
    let r = unsafe {
        libc::syscall(
            libc::SYS_setsockopt,
            c.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const libc::timeval,
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
    let took = with_ticker(move || {
        let start = Instant::now();
        let e = c.read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e:?}");
        start.elapsed()
    });
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(took < Duration::from_millis(1200), "{took:?}");
}

/// A blocking stream socket's `writev` and `sendmsg` send the whole vector, as libc's do: the
/// hook goes on after a partial send (12 MiB is far more than a socket's buffer holds).
#[test]
fn vectored_sends_are_whole() {
    with_ticker(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut peer, _) = l.accept().unwrap();
        const PART: usize = 4 << 20;
        let reader = hilos::spawn(move || {
            let mut buf = vec![0u8; 64 << 10];
            let (mut total, mut sum) = (0usize, 0u64);
            loop {
                let n = peer.read(&mut buf).unwrap();
                if n == 0 {
                    return (total, sum);
                }
                total += n;
                sum += buf[..n].iter().map(|&b| b as u64).sum::<u64>();
                hilos::sleep(Duration::from_micros(200));
            }
        });
        let parts: Vec<Vec<u8>> = (1..=3u8).map(|k| vec![k; PART]).collect();
        let slices: Vec<std::io::IoSlice<'_>> =
            parts.iter().map(|p| std::io::IoSlice::new(p)).collect();
        // std's write_vectored is writev.
        assert_eq!(c.write_vectored(&slices).unwrap(), 3 * PART);
        // sendmsg itself.
        use std::os::fd::AsRawFd;
        // SAFETY: an all-zero msghdr is valid; the vector points at live buffers.
        let sent = unsafe {
            let mut m: libc::msghdr = std::mem::zeroed();
            m.msg_iov = slices.as_ptr() as *mut libc::iovec;
            m.msg_iovlen = slices.len() as _;
            libc::sendmsg(c.as_raw_fd(), &m, 0)
        };
        assert_eq!(sent, (3 * PART) as isize);
        drop(c);
        let (total, sum) = reader.join().unwrap();
        assert_eq!(total, 6 * PART);
        assert_eq!(sum, 2 * (1 + 2 + 3) * PART as u64);
    });
}

/// A descriptor closed by another thread while a green thread reads it: as with libc on Linux,
/// the read is not woken by the close; it ends with the data that arrives (io_uring keeps the
/// file open while its operation is in flight, as a blocking system call does), or at the
/// socket timeout (the epoll fallback, where the close releases the socket), never hanging the
/// worker or touching freed memory.
#[test]
fn a_descriptor_closed_while_a_green_thread_reads_it() {
    use std::os::fd::IntoRawFd;
    let (took, r, err) = with_ticker(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut peer, _) = l.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let fd = c.into_raw_fd();
        let closer = hilos::spawn(move || {
            hilos::sleep(Duration::from_millis(50));
            // SAFETY: the descriptor is the test's own, no longer owned by a TcpStream.
            assert_eq!(unsafe { libc::close(fd) }, 0);
            hilos::sleep(Duration::from_millis(50));
            let _ = peer.write_all(b"x");
            peer
        });
        let start = Instant::now();
        let mut buf = [0u8; 8];
        // SAFETY: a live buffer; the descriptor may be closed meanwhile (the point of the test).
        let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        let err = std::io::Error::last_os_error().raw_os_error();
        let took = start.elapsed();
        drop(closer.join().unwrap());
        (took, r, err)
    });
    match r {
        1 => {}
        -1 => assert!(
            matches!(err, Some(libc::EAGAIN) | Some(libc::EBADF)),
            "unexpected error {err:?}"
        ),
        _ => panic!("read returned {r}"),
    }
    assert!(took < Duration::from_millis(1300), "{took:?}");
}

/// `recvfrom` and `recvmsg` on a green thread, which go to the ring on io_uring, fill in the
/// sender's address and its length as libc's do (std's `UdpSocket::recv_from` is `recvfrom`).
#[test]
fn datagram_receives_give_the_sender() {
    with_ticker(|| {
        use std::os::fd::AsRawFd;
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let sender = hilos::spawn(move || {
            hilos::sleep(Duration::from_millis(50));
            a.send_to(b"one", b_addr).unwrap();
            hilos::sleep(Duration::from_millis(50));
            a.send_to(b"two!", b_addr).unwrap();
        });
        let mut buf = [0u8; 16];
        let (n, from) = b.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"one"[..], a_addr));
        // SAFETY: zeroed sockaddr storage and msghdr are valid; every pointer is live.
        let (n, port, namelen) = unsafe {
            let mut name: libc::sockaddr_in = std::mem::zeroed();
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            let mut m: libc::msghdr = std::mem::zeroed();
            m.msg_name = (&raw mut name).cast();
            m.msg_namelen = size_of::<libc::sockaddr_in>() as _;
            m.msg_iov = &mut iov;
            m.msg_iovlen = 1;
            let n = libc::recvmsg(b.as_raw_fd(), &mut m, 0);
            (n, u16::from_be(name.sin_port), m.msg_namelen)
        };
        assert_eq!(n, 4);
        assert_eq!(&buf[..4], b"two!");
        assert_eq!(port, a_addr.port());
        assert_eq!(namelen as usize, size_of::<libc::sockaddr_in>());
        sender.join().unwrap();
    });
}

#[test]
fn nonblocking_socket_answers_at_once() {
    with_ticker(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let _peer = l.accept().unwrap();
        c.set_nonblocking(true).unwrap();
        let start = Instant::now();
        let e = c.read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WouldBlock);
        l.set_nonblocking(true).unwrap();
        assert_eq!(l.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
        // "At once": no waiting for readiness (margin: 40 ms).
        assert!(start.elapsed() < Duration::from_millis(40));
    });
}

#[test]
fn raw_read_on_a_pipe_written_later() {
    with_ticker(|| {
        let mut fds = [0; 2];
        // SAFETY: pipe writes two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let [r, w] = fds;
        let writer = hilos::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            // SAFETY: a live buffer; our pipe.
            unsafe { libc::write(w, b"late".as_ptr().cast(), 4) }
        });
        let start = Instant::now();
        let mut buf = [0u8; 16];
        // SAFETY: a live buffer; our pipe.
        let n = unsafe { libc::read(r, buf.as_mut_ptr().cast(), buf.len()) };
        assert_eq!(n, 4);
        assert_eq!(&buf[..4], b"late");
        assert!(start.elapsed() >= Duration::from_millis(300));
        assert_eq!(writer.join().unwrap(), 4);
        // SAFETY: our descriptors.
        unsafe {
            libc::close(r);
            libc::close(w);
        }
    });
}

#[test]
fn poll_waits_for_one_of_several() {
    with_ticker(|| {
        let mut a = [0; 2];
        let mut b = [0; 2];
        // SAFETY: pipe writes two descriptors.
        unsafe {
            assert_eq!(libc::pipe(a.as_mut_ptr()), 0);
            assert_eq!(libc::pipe(b.as_mut_ptr()), 0);
        }
        let w = b[1];
        let writer = hilos::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            // SAFETY: our pipe.
            unsafe { libc::write(w, b"x".as_ptr().cast(), 1) }
        });
        let mut p = [
            libc::pollfd {
                fd: a[0],
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: b[0],
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // Times out first (nothing written yet), then sees the second pipe.
        // SAFETY: a live array.
        assert_eq!(unsafe { libc::poll(p.as_mut_ptr(), 2, 20) }, 0);
        // SAFETY: a live array.
        assert_eq!(unsafe { libc::poll(p.as_mut_ptr(), 2, -1) }, 1);
        assert_eq!(p[0].revents, 0);
        assert_eq!(p[1].revents, libc::POLLIN);
        writer.join().unwrap();
        // SAFETY: our descriptors.
        unsafe {
            for fd in [a[0], a[1], b[0], b[1]] {
                libc::close(fd);
            }
        }
    });
}

#[test]
fn std_fs_and_regular_files() {
    with_ticker(|| {
        let path = std::env::temp_dir().join(format!("hilos-hook-{}", std::process::id()));
        std::fs::write(&path, b"hello file").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello file");
        let f = std::fs::File::open(&path).unwrap();
        let mut buf = [0u8; 4];
        use std::os::unix::fs::FileExt;
        assert_eq!(f.read_at(&mut buf, 6).unwrap(), 4);
        assert_eq!(&buf, b"file");
        std::fs::remove_file(&path).unwrap();
    });
}

#[test]
fn off_green_threads_pass_through() {
    // A kernel thread: libc's own behaviour, blocking the thread.
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(20));
    assert!(start.elapsed() >= Duration::from_millis(20));
    // SAFETY: -1 is not a descriptor.
    let r = unsafe { libc::read(-1, std::ptr::null_mut(), 0) };
    assert_eq!(r, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EBADF)
    );
}

#[test]
fn errno_of_a_bad_descriptor_on_a_green_thread() {
    with_ticker(|| {
        // SAFETY: -1 is not a descriptor; nothing is written.
        let r = unsafe { libc::read(-1, std::ptr::null_mut(), 0) };
        assert_eq!(r, -1);
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EBADF)
        );
        // SAFETY: as above.
        let r = unsafe { libc::recv(-1, std::ptr::null_mut(), 0, 0) };
        assert_eq!(r, -1);
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EBADF)
        );
    });
}

#[test]
fn name_resolution_on_a_green_thread() {
    with_ticker(|| {
        use std::net::ToSocketAddrs;
        let a: Vec<_> = ("localhost", 80).to_socket_addrs().unwrap().collect();
        assert!(!a.is_empty());
    });
}

#[cfg(hilos_c_probe)]
unsafe extern "C" {
    /// tests/c/hook_probe.c: `poll` for readability (up to `timeout_ms`), then `read`.
    fn hilos_c_probe_poll_then_read(
        fd: libc::c_int,
        buf: *mut libc::c_char,
        len: libc::c_ulong,
        timeout_ms: libc::c_int,
    ) -> libc::c_long;
}

/// C code linked into the program (built by build.rs) calling `poll` and `read` parks only its
/// green thread: first a poll that times out, then one that a sibling's late write ends.
#[cfg(hilos_c_probe)]
#[test]
fn c_code_calling_poll_and_read_parks_only_the_green_thread() {
    with_ticker(|| {
        let mut fds = [0; 2];
        // SAFETY: pipe writes two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let [r, w] = fds;
        let mut buf = [0 as libc::c_char; 16];
        // SAFETY: a live buffer of the length given; our pipe.
        let n = unsafe { hilos_c_probe_poll_then_read(r, buf.as_mut_ptr(), 16, 100) };
        assert_eq!(n, -2, "nothing written yet: the poll times out");
        let writer = hilos::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            // SAFETY: a live buffer; our pipe.
            unsafe { libc::write(w, b"from C".as_ptr().cast(), 6) }
        });
        let start = Instant::now();
        // SAFETY: as above.
        let n = unsafe { hilos_c_probe_poll_then_read(r, buf.as_mut_ptr(), 16, 10_000) };
        assert_eq!(n, 6);
        assert_eq!(
            buf[..6].iter().map(|&c| c as u8).collect::<Vec<_>>(),
            b"from C"
        );
        assert!(start.elapsed() >= Duration::from_millis(300));
        assert_eq!(writer.join().unwrap(), 6);
        // SAFETY: our descriptors.
        unsafe {
            libc::close(r);
            libc::close(w);
        }
    });
}

/// Without a C compiler the probe above is not built; CI sets `HILOS_REQUIRE_C_PROBE=1`, which
/// makes that a build error instead.
#[cfg(not(hilos_c_probe))]
#[test]
fn c_probe_not_built() {
    eprintln!("tests/c/hook_probe.c was not built (no C compiler): its test did not run");
}

/// A minimal HTTP/1.1 server on hilos's own sockets: each connection gets one `hello <path>`
/// response and is closed. Serves `n` connections, then its accept loop ends.
fn hilos_http_server(n: usize) -> std::net::SocketAddr {
    let listener = hilos::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    hilos::spawn(move || {
        for conn in listener.incoming().take(n) {
            let mut conn = conn.unwrap();
            hilos::spawn(move || {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).unwrap() {
                        0 => return,
                        n => req.extend_from_slice(&buf[..n]),
                    }
                }
                let path = String::from_utf8_lossy(&req)
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("")
                    .to_string();
                let body = format!("hello {path}");
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                conn.write_all(head.as_bytes()).unwrap();
                conn.write_all(body.as_bytes()).unwrap();
            });
        }
    });
    addr
}

/// ureq 3 with its default connector (std::net underneath) from 200 green threads, against a
/// hilos server in the same 1-worker runtime: without the feature the first client's `recv`
/// blocks the only worker, and the server never answers.
#[test]
fn ureq_from_200_green_threads_against_a_server_in_the_same_runtime() {
    with_ticker(|| {
        let addr = hilos_http_server(200);
        let clients: Vec<_> = (0..200)
            .map(|i| {
                hilos::spawn(move || {
                    let mut resp = ureq::get(format!("http://{addr}/{i}")).call().unwrap();
                    assert_eq!(resp.status(), 200);
                    resp.body_mut().read_to_string().unwrap()
                })
            })
            .collect();
        for (i, c) in clients.into_iter().enumerate() {
            assert_eq!(c.join().unwrap(), format!("hello /{i}"));
        }
    });
}
