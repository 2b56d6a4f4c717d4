//! UDP and Unix domain sockets.

mod io_util;

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use hilos::net::{UdpSocket, UnixDatagram, UnixListener, UnixStream};
use io_util::{rt1, rt2, within};

fn tmp(name: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!(
        "hilos-{}-{}-{name}",
        std::process::id(),
        std::env::var("HILOS_IO").unwrap_or_default()
    ));
    let _ = std::fs::remove_file(&p);
    p
}

#[test]
fn udp_round_trips() {
    within(60, || {
        rt2().block_on(|| {
            let a = UdpSocket::bind("127.0.0.1:0").unwrap();
            let b = UdpSocket::bind(("127.0.0.1", 0)).unwrap();
            let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
            let h = hilos::spawn(move || {
                let mut buf = [0u8; 64];
                for _ in 0..100 {
                    let (n, from) = b.recv_from(&mut buf).unwrap();
                    b.send_to(&buf[..n], from).unwrap();
                }
            });
            for i in 0..100u32 {
                let msg = i.to_le_bytes();
                assert_eq!(a.send_to(&msg, ba).unwrap(), 4);
                let mut buf = [0u8; 64];
                let (n, from) = a.recv_from(&mut buf).unwrap();
                assert_eq!((&buf[..n], from), (&msg[..], ba));
            }
            h.join().unwrap();
            // Connected sockets, peek.
            let c = UdpSocket::bind("127.0.0.1:0").unwrap();
            c.connect(aa).unwrap();
            assert_eq!(c.peer_addr().unwrap(), aa);
            c.send(b"connected").unwrap();
            let mut buf = [0u8; 64];
            let (n, from) = a.peek_from(&mut buf).unwrap();
            assert_eq!(
                (&buf[..n], from),
                (&b"connected"[..], c.local_addr().unwrap())
            );
            let (n, _) = a.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"connected");
            a.send_to(b"back", c.local_addr().unwrap()).unwrap();
            assert_eq!(c.peek(&mut buf).unwrap(), 4);
            assert_eq!(c.recv(&mut buf).unwrap(), 4);
            assert_eq!(&buf[..4], b"back");
        })
    });
}

#[test]
fn udp_recv_timeout_leaves_the_buffer_alone() {
    within(60, || {
        rt1().block_on(|| {
            let a = UdpSocket::bind("127.0.0.1:0").unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").unwrap();
            a.set_read_timeout(Some(Duration::from_millis(150)))
                .unwrap();
            let mut buf = [0x55u8; 32];
            let t0 = Instant::now();
            let e = a.recv_from(&mut buf).unwrap_err();
            let took = t0.elapsed();
            assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e:?}");
            assert!(
                took >= Duration::from_millis(150) && took < Duration::from_secs(2),
                "{took:?}"
            );
            b.send_to(b"late", a.local_addr().unwrap()).unwrap();
            hilos::sleep(Duration::from_millis(50));
            assert!(buf.iter().all(|&x| x == 0x55));
            let (n, _) = a.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"late");
        })
    });
}

#[test]
fn unix_stream_echo_through_a_listener() {
    within(60, || {
        rt2().block_on(|| {
            let path = tmp("stream.sock");
            let l = UnixListener::bind(&path).unwrap();
            let p2 = path.clone();
            let server = hilos::spawn(move || {
                for _ in 0..3 {
                    let (mut s, _) = l.accept().unwrap();
                    hilos::spawn(move || {
                        let mut buf = [0u8; 128];
                        loop {
                            match s.read(&mut buf).unwrap() {
                                0 => break,
                                n => s.write_all(&buf[..n]).unwrap(),
                            }
                        }
                    });
                }
            });
            let clients: Vec<_> = (0..3)
                .map(|i| {
                    let p = p2.clone();
                    hilos::spawn(move || {
                        let mut c = UnixStream::connect(&p).unwrap();
                        assert_eq!(c.peer_addr().unwrap().as_pathname(), Some(p.as_path()));
                        let msg = format!("hello from {i}");
                        c.write_all(msg.as_bytes()).unwrap();
                        let mut back = vec![0u8; msg.len()];
                        c.read_exact(&mut back).unwrap();
                        assert_eq!(back, msg.as_bytes());
                    })
                })
                .collect();
            for c in clients {
                c.join().unwrap();
            }
            server.join().unwrap();
            let _ = std::fs::remove_file(&path);
        })
    });
}

#[test]
fn unix_datagrams_and_timeouts() {
    within(60, || {
        rt1().block_on(|| {
            let (pa, pb) = (tmp("a.dgram"), tmp("b.dgram"));
            let a = UnixDatagram::bind(&pa).unwrap();
            let b = UnixDatagram::bind(&pb).unwrap();
            b.send_to(b"to a", &pa).unwrap();
            let mut buf = [0u8; 16];
            let (n, from) = a.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"to a");
            assert_eq!(from.as_pathname(), Some(pb.as_path()));
            a.send_to_addr(b"to b", &from).unwrap();
            assert_eq!(b.recv(&mut buf).unwrap(), 4);
            // From an unbound socket: an unnamed sender.
            let u = UnixDatagram::unbound().unwrap();
            u.send_to(b"anon", &pa).unwrap();
            let (n, from) = a.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"anon");
            assert!(from.is_unnamed());
            // Timeout.
            a.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let t0 = Instant::now();
            assert_eq!(a.recv(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
            assert!(t0.elapsed() >= Duration::from_millis(100));
            // Pairs.
            let (x, y) = UnixDatagram::pair().unwrap();
            x.send(b"pair").unwrap();
            assert_eq!(y.recv(&mut buf).unwrap(), 4);
            let _ = std::fs::remove_file(&pa);
            let _ = std::fs::remove_file(&pb);
        })
    });
}

#[test]
fn under_epoll() {
    io_util::rerun_under_epoll("under_epoll");
}

/// std's multicast options, set and read back through hilos's `UdpSocket`, on a green thread and
/// on a kernel thread.
#[test]
fn udp_multicast_options_as_std() {
    fn check() {
        let v4 = UdpSocket::bind("127.0.0.1:0").unwrap();
        v4.set_multicast_loop_v4(false).unwrap();
        assert!(!v4.multicast_loop_v4().unwrap());
        v4.set_multicast_loop_v4(true).unwrap();
        assert!(v4.multicast_loop_v4().unwrap());
        v4.set_multicast_ttl_v4(7).unwrap();
        assert_eq!(v4.multicast_ttl_v4().unwrap(), 7);
        // IPv6 may be missing on a machine: then there is nothing to check.
        if let Ok(v6) = UdpSocket::bind("[::1]:0") {
            v6.set_multicast_loop_v6(false).unwrap();
            assert!(!v6.multicast_loop_v6().unwrap());
        }
    }
    within(30, || {
        rt2().block_on(check);
        check();
    });
}
