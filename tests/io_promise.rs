//! The promise of hilos: while one green thread blocks on I/O, the other green threads of its
//! worker keep running. On a 1-worker runtime, a green thread blocks on each kind of operation
//! while another completes 1,000,000 `yield_now` calls; if the blocked operation held the worker
//! kernel thread, the yields could never complete and the watchdog fails the test.

mod io_util;

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use io_util::{rt1, within, yields};

const YIELDS: u32 = 1_000_000;

/// Spawns `blocker` (which blocks until `release` runs), completes the yields meanwhile, checks
/// the blocker is still blocked, then releases it and joins it.
fn while_blocked<B, R>(blocker: B, release: R)
where
    B: FnOnce() + Send + 'static,
    R: FnOnce() + Send + 'static,
{
    within(120, move || {
        rt1().block_on(move || {
            let done = Arc::new(AtomicBool::new(false));
            let d = done.clone();
            let b = hilos::spawn(move || {
                blocker();
                d.store(true, Ordering::SeqCst);
            });
            // Let the blocker start and block.
            yields(10);
            let c = hilos::spawn(|| yields(YIELDS));
            c.join().unwrap();
            assert!(
                !done.load(Ordering::SeqCst),
                "the blocking operation returned before it was released"
            );
            release();
            b.join().unwrap();
        })
    });
}

#[test]
fn accept_with_no_client() {
    let l = Arc::new(hilos::net::TcpListener::bind("127.0.0.1:0").unwrap());
    let addr = l.local_addr().unwrap();
    let l2 = l.clone();
    while_blocked(
        move || {
            let (_s, peer) = l2.accept().unwrap();
            assert!(peer.ip().is_loopback());
        },
        move || {
            hilos::net::TcpStream::connect(addr).unwrap();
        },
    );
}

#[test]
fn tcp_read_with_no_data() {
    let l = hilos::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let c = hilos::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    while_blocked(
        move || {
            let mut s = s;
            let mut buf = [0u8; 16];
            let n = s.read(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"hi");
        },
        move || {
            (&c).write_all(b"hi").unwrap();
        },
    );
}

#[test]
fn udp_recv() {
    let a = hilos::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = hilos::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = a.local_addr().unwrap();
    while_blocked(
        move || {
            let mut buf = [0u8; 16];
            let (n, _) = a.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"dgram");
        },
        move || {
            b.send_to(b"dgram", to).unwrap();
        },
    );
}

#[test]
fn unix_stream_read() {
    let (a, b) = hilos::net::UnixStream::pair().unwrap();
    while_blocked(
        move || {
            let mut buf = [0u8; 16];
            let n = (&a).read(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"unix");
        },
        move || (&b).write_all(b"unix").unwrap(),
    );
}

#[test]
fn pipe_read() {
    let (r, w) = hilos::io::pipe().unwrap();
    while_blocked(
        move || {
            let mut r = r;
            let mut buf = [0u8; 16];
            let n = r.read(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"pipe");
        },
        move || {
            let mut w = w;
            w.write_all(b"pipe").unwrap();
        },
    );
}

#[test]
fn wait_readable_on_a_foreign_descriptor() {
    // A std socket pair: hilos does not own these descriptors.
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    while_blocked(
        move || {
            hilos::io::wait_readable(&a, None).unwrap();
            let mut buf = [0u8; 4];
            a.set_nonblocking(true).unwrap();
            assert_eq!((&a).read(&mut buf).unwrap(), 1);
        },
        move || {
            (&b).write_all(b"x").unwrap();
        },
    );
}

#[test]
fn wait_writable_on_a_full_pipe() {
    let (r, w) = hilos::io::pipe().unwrap();
    // Fill the pipe (the descriptor is non-blocking: a std write would fail with WouldBlock).
    let chunk = [7u8; 4096];
    // SAFETY: writes from a live buffer to our own pipe.
    while unsafe { libc::write(w.as_fd_raw(), chunk.as_ptr().cast(), chunk.len()) } > 0 {}
    while_blocked(
        move || {
            hilos::io::wait_writable(&w, None).unwrap();
        },
        move || {
            let mut r = r;
            let mut buf = vec![0u8; 1 << 20];
            let _ = r.read(&mut buf).unwrap();
        },
    );
}

trait RawFdExt {
    fn as_fd_raw(&self) -> i32;
}
impl<T: std::os::fd::AsRawFd> RawFdExt for T {
    fn as_fd_raw(&self) -> i32 {
        self.as_raw_fd()
    }
}

#[test]
fn slow_unblock() {
    let (tx, rx) = std::sync::mpsc::channel::<u32>();
    while_blocked(
        move || {
            // A std channel blocks its kernel thread: fine on the pool, fatal on the worker.
            let v = hilos::unblock(move || rx.recv().unwrap());
            assert_eq!(v, 42);
        },
        move || tx.send(42).unwrap(),
    );
}

#[test]
fn long_sleep() {
    within(120, || {
        rt1().block_on(|| {
            let t0 = Instant::now();
            let sleeper = hilos::spawn(|| hilos::sleep(Duration::from_secs(3)));
            yields(10);
            hilos::spawn(|| yields(YIELDS)).join().unwrap();
            let yields_took = t0.elapsed();
            sleeper.join().unwrap();
            let slept = t0.elapsed();
            assert!(slept >= Duration::from_secs(3), "woke early: {slept:?}");
            if yields_took < Duration::from_secs(3) {
                assert!(slept >= yields_took);
            }
        })
    });
}

#[test]
fn many_sleepers_share_one_kernel_wait() {
    // 20,000 green threads sleep at once: no kernel thread, timer or descriptor each (the worker's
    // timer heap and its one ring wait serve them all), and each wakes on time.
    const N: usize = 20_000;
    let fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    let threads = || std::fs::read_dir("/proc/self/task").unwrap().count();
    within(120, move || {
        rt1().block_on(move || {
            let (fd0, th0) = (fds(), threads());
            let t0 = Instant::now();
            let hs: Vec<_> = (0..N)
                .map(|i| {
                    hilos::Builder::new()
                        .spawn(move || {
                            let d = Duration::from_millis(300 + (i % 100) as u64);
                            let t = Instant::now();
                            hilos::sleep(d);
                            t.elapsed() >= d
                        })
                        .unwrap()
                })
                .collect();
            hilos::sleep(Duration::from_millis(100));
            // Everybody is asleep now (nothing else runs on this worker).
            let (fd1, th1) = (fds(), threads());
            let mut on_time = 0;
            for h in hs {
                on_time += h.join().unwrap() as usize;
            }
            assert_eq!(on_time, N, "some sleeper woke early");
            assert!(t0.elapsed() < Duration::from_secs(60));
            // Other tests run in this process too: allow a little slack, far below N.
            assert!(fd1 < fd0 + 100, "descriptors grew from {fd0} to {fd1}");
            assert!(th1 < th0 + 100, "threads grew from {th0} to {th1}");
        })
    });
}

#[test]
fn under_epoll() {
    io_util::rerun_under_epoll("under_epoll");
}
