//! TCP: timeouts, the stack buffer after a timeout, bad input, conversions.

mod io_util;

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use hilos::net::{TcpListener, TcpStream};
use io_util::{is_child, rt1, rt2, within};

/// Generous: CI machines are noisy, and these run in debug builds.
const SLACK: Duration = Duration::from_millis(1500);

fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (c, s)
}

#[test]
fn read_timeout_is_honoured_and_the_buffer_is_left_alone() {
    within(60, || {
        rt1().block_on(|| {
            let (c, s) = pair();
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            assert_eq!(s.read_timeout().unwrap(), Some(Duration::from_millis(200)));
            let mut buf = [0xAAu8; 64];
            let t0 = Instant::now();
            let e = (&s).read(&mut buf).unwrap_err();
            let took = t0.elapsed();
            assert!(
                matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
                "{e:?}"
            );
            assert!(
                took >= Duration::from_millis(200),
                "returned early: {took:?}"
            );
            assert!(took < Duration::from_millis(200) + SLACK, "late: {took:?}");
            // Data sent after the timeout must not land in the old buffer...
            (&c).write_all(b"late data").unwrap();
            hilos::sleep(Duration::from_millis(100));
            assert!(buf.iter().all(|&b| b == 0xAA), "written after the timeout");
            // ...and is not lost either.
            s.set_read_timeout(None).unwrap();
            let mut buf2 = [0u8; 64];
            let n = (&s).read(&mut buf2).unwrap();
            assert_eq!(&buf2[..n], b"late data");
        })
    });
}

#[test]
fn peek_and_timeouts_on_peek() {
    rt1().block_on(|| {
        let (c, s) = pair();
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(s.peek(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
        (&c).write_all(b"abc").unwrap();
        s.set_read_timeout(None).unwrap();
        assert_eq!(s.peek(&mut buf).unwrap(), 3);
        assert_eq!((&s).read(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"abc");
    });
}

#[test]
fn non_blocking_mode_as_std() {
    within(60, || {
        rt1().block_on(|| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.set_nonblocking(true).unwrap();
            let t0 = Instant::now();
            assert_eq!(l.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
            let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let s = loop {
                match l.accept() {
                    Ok((s, _)) => break s,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => hilos::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            };
            s.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 8];
            assert_eq!(
                (&s).read(&mut buf).unwrap_err().kind(),
                ErrorKind::WouldBlock
            );
            assert!(t0.elapsed() < Duration::from_secs(2));
            (&c).write_all(b"now").unwrap();
            let n = loop {
                match (&s).read(&mut buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => hilos::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            };
            assert_eq!(&buf[..n], b"now");
            // The mode carries over to std and back.
            let std_s = std::net::TcpStream::from(s);
            assert_eq!(
                (&std_s).read(&mut buf).unwrap_err().kind(),
                ErrorKind::WouldBlock
            );
            std_s.set_nonblocking(false).unwrap();
            let s = TcpStream::from(std_s);
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            assert_eq!(
                (&s).read(&mut buf).unwrap_err().kind(),
                ErrorKind::WouldBlock
            );
            assert!(!l.local_addr().unwrap().ip().is_unspecified());
        })
    });
}

#[test]
fn zero_timeouts_are_rejected_as_std() {
    rt1().block_on(|| {
        let (c, _s) = pair();
        assert_eq!(
            c.set_read_timeout(Some(Duration::ZERO)).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        let a = c.peer_addr().unwrap();
        assert_eq!(
            TcpStream::connect_timeout(&a, Duration::ZERO)
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidInput
        );
    });
}

#[test]
fn write_timeout_when_the_peer_does_not_read() {
    within(60, || {
        rt1().block_on(|| {
            let (c, _s) = pair();
            c.set_write_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let chunk = vec![1u8; 1 << 16];
            let t0 = Instant::now();
            let e = loop {
                let t = Instant::now();
                match (&c).write(&chunk) {
                    Ok(n) => assert!(
                        n > 0 && t0.elapsed() < Duration::from_secs(20),
                        "never filled"
                    ),
                    Err(e) => break (e, t.elapsed()),
                }
            };
            assert!(
                matches!(e.0.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
                "{e:?}"
            );
            assert!(e.1 >= Duration::from_millis(200) && e.1 < Duration::from_millis(200) + SLACK);
        })
    });
}

#[test]
fn connect_timeout_to_a_full_backlog() {
    within(60, || {
        rt1().block_on(|| {
            // A listener with a backlog of 0 that never accepts: once its queue is full the
            // kernel drops further SYNs, so a connect hangs (on loopback, no network needed).
            // SAFETY: plain system call.
            let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
            // SAFETY: `fd` is a fresh socket nothing else owns.
            let std_l =
                unsafe { <std::net::TcpListener as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            let sa = libc::sockaddr_in {
                sin_family: libc::AF_INET as _,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: a live sockaddr_in of the right size.
            assert_eq!(
                unsafe {
                    libc::bind(
                        fd,
                        (&raw const sa).cast(),
                        std::mem::size_of_val(&sa) as u32,
                    )
                },
                0
            );
            // SAFETY: plain system call.
            assert_eq!(unsafe { libc::listen(fd, 0) }, 0);
            let a = std_l.local_addr().unwrap();
            let mut held = Vec::new();
            let mut timed_out = None;
            for _ in 0..16 {
                let t0 = Instant::now();
                match TcpStream::connect_timeout(&a, Duration::from_millis(300)) {
                    Ok(s) => held.push(s),
                    Err(e) => {
                        timed_out = Some((e, t0.elapsed()));
                        break;
                    }
                }
            }
            let (e, took) = timed_out.expect("no connect timed out");
            assert_eq!(e.kind(), ErrorKind::TimedOut, "{e:?}");
            assert!(
                took >= Duration::from_millis(300) && took < Duration::from_millis(300) + SLACK,
                "{took:?}"
            );
        })
    });
}

#[test]
fn reset_peer_and_closed_peer_give_errors_and_the_listener_keeps_serving() {
    within(60, || {
        rt2().block_on(|| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let a = l.local_addr().unwrap();
            // A peer that resets: SO_LINGER 0 then close sends RST.
            let c = TcpStream::connect(a).unwrap();
            let (s, _) = l.accept().unwrap();
            let lin = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: a live linger struct on a socket we own.
            unsafe {
                libc::setsockopt(
                    c.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&raw const lin).cast(),
                    std::mem::size_of_val(&lin) as u32,
                )
            };
            drop(c);
            let mut buf = [0u8; 16];
            let e = (&s).read(&mut buf).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e:?}");
            // A peer that closed: end of stream, then writes fail.
            let c = TcpStream::connect(a).unwrap();
            let (s, _) = l.accept().unwrap();
            drop(c);
            assert_eq!((&s).read(&mut buf).unwrap(), 0);
            let mut failed = None;
            for _ in 0..100 {
                if let Err(e) = (&s).write(b"into the void") {
                    failed = Some(e);
                    break;
                }
                hilos::sleep(Duration::from_millis(5));
            }
            let e = failed.expect("writes to a closed peer kept succeeding");
            assert!(
                matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
                "{e:?}"
            );
            // Our own shutdown: reads see end of stream, writes fail.
            let c = TcpStream::connect(a).unwrap();
            let (s, _) = l.accept().unwrap();
            s.shutdown(Shutdown::Both).unwrap();
            assert_eq!((&s).read(&mut buf).unwrap(), 0);
            assert_eq!((&s).write(b"x").unwrap_err().kind(), ErrorKind::BrokenPipe);
            drop(c);
            // Connection refused.
            let dead = {
                let l2 = TcpListener::bind("127.0.0.1:0").unwrap();
                l2.local_addr().unwrap()
            };
            assert_eq!(
                TcpStream::connect(dead).unwrap_err().kind(),
                ErrorKind::ConnectionRefused
            );
            // The listener still serves.
            let c = TcpStream::connect(a).unwrap();
            let (s, _) = l.accept().unwrap();
            (&c).write_all(b"still here").unwrap();
            let n = (&s).read(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"still here");
        })
    });
}

#[test]
fn closed_descriptors_give_errors() {
    // A descriptor number at the limit cannot be open.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a live rlimit struct.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    let bad = lim.rlim_cur.min(i32::MAX as u64) as i32;
    let check = move || {
        // SAFETY (I/O safety aside, this only asks the kernel about a number): nothing is
        // closed or read through it.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(bad) };
        let e = hilos::io::wait_readable(fd, Some(Duration::from_secs(5))).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF), "{e:?}");
    };
    within(60, move || {
        rt1().block_on(check);
        check();
    });
}

#[test]
fn emfile_on_accept() {
    // Lowers the process's descriptor limit: only in a child process of its own.
    if !is_child() || std::env::var_os("HILOS_EMFILE").is_none() {
        if is_child() {
            return;
        }
        for backend in ["uring", "epoll"] {
            let out = io_util::self_command()
                .args(["--exact", "emfile_on_accept", "--test-threads=1"])
                .env("HILOS_TEST_CHILD", "1")
                .env("HILOS_EMFILE", "1")
                .env("HILOS_IO", backend)
                .output()
                .unwrap();
            assert!(
                out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
                "{backend}: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        return;
    }
    within(60, || {
        rt1().block_on(|| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let a = l.local_addr().unwrap();
            // Clients connect (the kernel completes the handshakes before accept).
            let clients: Vec<_> = (0..3)
                .map(|_| std::net::TcpStream::connect(a).unwrap())
                .collect();
            // The lowest free descriptor number becomes the limit: no new descriptor fits.
            // SAFETY: plain system calls.
            let lowest = unsafe { libc::dup(0) };
            assert!(lowest > 0);
            // SAFETY: closes the descriptor dup just made.
            unsafe { libc::close(lowest) };
            let mut old = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: live rlimit structs.
            unsafe {
                libc::getrlimit(libc::RLIMIT_NOFILE, &mut old);
                let low = libc::rlimit {
                    rlim_cur: lowest as u64,
                    rlim_max: old.rlim_max,
                };
                assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &low), 0);
            }
            let e = l.accept().unwrap_err();
            // SAFETY: a live rlimit struct.
            unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &old) };
            assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e:?}");
            // The listener keeps serving: every queued client is accepted and answered.
            for c in &clients {
                let (s, _) = l.accept().unwrap();
                (&s).write_all(b"ok").unwrap();
                let mut buf = [0u8; 2];
                (&*c).read_exact(&mut buf).unwrap();
                assert_eq!(&buf, b"ok");
            }
        })
    });
}

#[test]
fn conversions_to_and_from_std_and_kernel_thread_use() {
    // From a plain kernel thread, hilos sockets block as std's.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut s = std::net::TcpStream::from(s);
        // Back in blocking mode for std.
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        s.write_all(&buf).unwrap();
    });
    let std_c = std::net::TcpStream::connect(a).unwrap();
    std_c
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let c = TcpStream::from(std_c);
    assert_eq!(c.read_timeout().unwrap(), Some(Duration::from_secs(30)));
    rt1().block_on(|| {
        (&c).write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        (&c).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
    });
    t.join().unwrap();
    // A kernel thread's read with a timeout.
    let (c, _s) = rt1().block_on(pair);
    c.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let e = (&c).read(&mut [0u8; 4]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    // Connect, accept, read and write from kernel threads only.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        (&s).write_all(b"from a kernel thread").unwrap();
    });
    let k = TcpStream::connect(a).unwrap();
    let mut got = String::new();
    (&k).read_to_string(&mut got).unwrap();
    assert_eq!(got, "from a kernel thread");
    t.join().unwrap();
    // Socket options pass through.
    c.set_nodelay(true).unwrap();
    assert!(c.nodelay().unwrap());
    c.set_ttl(42).unwrap();
    assert_eq!(c.ttl().unwrap(), 42);
    assert!(c.take_error().unwrap().is_none());
    let c2 = c.try_clone().unwrap();
    assert_eq!(c2.local_addr().unwrap(), c.local_addr().unwrap());
}

#[test]
fn vectored_io_and_name_resolution() {
    rt1().block_on(|| {
        let l = TcpListener::bind(("localhost", 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        let c = TcpStream::connect(format!("localhost:{port}")).unwrap();
        let (s, _) = l.accept().unwrap();
        let n = (&c)
            .write_vectored(&[std::io::IoSlice::new(b"ab"), std::io::IoSlice::new(b"cd")])
            .unwrap();
        assert_eq!(n, 4);
        let (mut x, mut y) = ([0u8; 1], [0u8; 3]);
        let mut got = 0;
        while got < 4 {
            let mut bufs = [
                std::io::IoSliceMut::new(&mut x),
                std::io::IoSliceMut::new(&mut y),
            ];
            got += (&s).read_vectored(&mut bufs).unwrap();
        }
        assert_eq!((&x, &y), (b"a", b"bcd"));
    });
}

#[test]
fn under_epoll() {
    io_util::rerun_under_epoll("under_epoll");
}

/// `TcpListener::only_v6`, as std's (deprecated there too): an IPv6 listener (where the machine
/// has IPv6) answers as std's does.
#[test]
#[allow(deprecated)]
fn listener_only_v6_as_std() {
    within(30, || {
        rt1().block_on(|| {
            if let Ok(l) = TcpListener::bind("[::1]:0") {
                let std_l = std::net::TcpListener::bind("[::1]:0").unwrap();
                assert_eq!(l.only_v6().unwrap(), std_l.only_v6().unwrap());
            }
        })
    });
}
