//! Timeouts racing completions: many readers with a 1 ms read timeout while their peers write at
//! random moments. A read that times out must leave its buffer untouched, and a read whose
//! completion raced its cancellation must still deliver its bytes: the stream arrives whole, in
//! order, with nothing written past what each read returned.

mod io_util;

use std::io::{ErrorKind, Read, Write};
use std::time::Duration;

use hilos::net::{TcpListener, TcpStream};
use io_util::{rt2, within};

const PAIRS: usize = 40;
const BYTES: usize = 3000;

fn byte(conn: usize, i: usize) -> u8 {
    (i.wrapping_mul(131) ^ conn.wrapping_mul(17)) as u8
}

#[test]
fn reads_with_short_timeouts_lose_nothing_and_write_nothing_late() {
    within(120, || {
        rt2().block_on(|| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let a = l.local_addr().unwrap();
            let mut hs = Vec::new();
            let mut timeouts_seen = 0usize;
            for conn in 0..PAIRS {
                let c = TcpStream::connect(a).unwrap();
                let (s, _) = l.accept().unwrap();
                // The writer: random chunk sizes at random moments (xorshift, seeded per pair).
                hs.push(hilos::spawn(move || {
                    let mut rng = 0x2545_F491u32 ^ (conn as u32 + 1).wrapping_mul(0x9E37_79B9);
                    let mut next = || {
                        rng ^= rng << 13;
                        rng ^= rng >> 17;
                        rng ^= rng << 5;
                        rng
                    };
                    let mut i = 0;
                    while i < BYTES {
                        let n = (1 + next() as usize % 60).min(BYTES - i);
                        let chunk: Vec<u8> = (i..i + n).map(|k| byte(conn, k)).collect();
                        (&c).write_all(&chunk).unwrap();
                        i += n;
                        match next() % 4 {
                            0 => hilos::sleep(Duration::from_micros(next() as u64 % 3000)),
                            1 => hilos::yield_now(),
                            _ => {}
                        }
                    }
                    0usize
                }));
                // The reader.
                hs.push(hilos::spawn(move || {
                    s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
                    let mut got = Vec::with_capacity(BYTES);
                    let mut timeouts = 0;
                    while got.len() < BYTES {
                        let mut buf = [0xEEu8; 64];
                        match (&s).read(&mut buf) {
                            Ok(0) => panic!("early end of stream at {}", got.len()),
                            Ok(n) => {
                                assert!(
                                    buf[n..].iter().all(|&b| b == 0xEE),
                                    "written past the returned length"
                                );
                                got.extend_from_slice(&buf[..n]);
                            }
                            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                                timeouts += 1;
                                // Give a late write by the kernel a chance to show.
                                hilos::yield_now();
                                assert!(
                                    buf.iter().all(|&b| b == 0xEE),
                                    "a timed-out read wrote into its buffer"
                                );
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                    for (k, &b) in got.iter().enumerate() {
                        assert_eq!(b, byte(conn, k), "conn {conn}: byte {k} wrong");
                    }
                    timeouts
                }));
            }
            for h in hs {
                timeouts_seen += h.join().unwrap();
            }
            // The test only means something if timeouts did happen.
            assert!(timeouts_seen > 0, "no read ever timed out");
        })
    });
}

#[test]
fn under_epoll() {
    io_util::rerun_under_epoll("under_epoll");
}
