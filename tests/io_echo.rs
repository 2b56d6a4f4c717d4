//! Echo: 10,000 concurrent connections to one 2-worker runtime, every byte checked.
//!
//! The server runs in this process; the clients run in a child process (the same binary), so that
//! each side's 10,000 descriptors fit under the descriptor limit. Both are green-thread-per-
//! connection code in plain blocking style.

mod io_util;

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hilos::net::{TcpListener, TcpStream};
use io_util::{is_child, raise_nofile, rt2, within};

const CONNS: usize = 10_000;
const ROUNDS: usize = 3;
const MSG: usize = 97;

fn pattern(conn: usize, round: usize) -> Vec<u8> {
    (0..MSG)
        .map(|i| (conn.wrapping_mul(31) ^ round.wrapping_mul(7) ^ i) as u8)
        .collect()
}

#[test]
fn echo_10k_concurrent_connections() {
    if is_child() {
        return;
    }
    raise_nofile();
    for backend in ["uring", "epoll"] {
        run_server(backend);
    }
}

fn run_server(backend: &str) {
    // The server on its own 2-worker runtime with the backend under test (the variable is read
    // when the runtime is built; children get it explicitly).
    let server_out = io_util::self_command()
        .args([
            "--exact",
            "echo_server_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("HILOS_TEST_CHILD", "1")
        .env("HILOS_ECHO_ROLE", "server")
        .env("HILOS_IO", backend)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let out = within(300, move || server_out.wait_with_output().unwrap());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{backend}: echo failed:\n{stdout}"
    );
    eprintln!(
        "{backend}: {}",
        stdout
            .lines()
            .find_map(|l| l.find("echo:").map(|i| &l[i..]))
            .unwrap_or("")
    );
}

/// The server process: serves on a 2-worker runtime, starts the client process, and checks that
/// all connections were open at once and all were served.
#[test]
fn echo_server_child() {
    if std::env::var("HILOS_ECHO_ROLE").as_deref() != Ok("server") {
        return;
    }
    raise_nofile();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let live = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let served = Arc::new(AtomicUsize::new(0));
    let (lv, pk, sv) = (live.clone(), peak.clone(), served.clone());
    let acceptor = rt2().spawn(move || {
        let mut handles = Vec::with_capacity(CONNS);
        // Every handler waits until all connections are accepted, then greets its client: so
        // all 10,000 are open at once on both sides.
        let accepted = Arc::new(AtomicUsize::new(0));
        let waiting = Arc::new(parking_lot::Mutex::new(Vec::<hilos::Thread>::new()));
        for _ in 0..CONNS {
            let (mut s, _) = l.accept().unwrap();
            let (lv, pk, sv) = (lv.clone(), pk.clone(), sv.clone());
            let (accepted, waiting) = (accepted.clone(), waiting.clone());
            handles.push(hilos::spawn(move || {
                let now = lv.fetch_add(1, Ordering::SeqCst) + 1;
                pk.fetch_max(now, Ordering::SeqCst);
                if accepted.fetch_add(1, Ordering::SeqCst) + 1 == CONNS {
                    for t in waiting.lock().drain(..) {
                        t.unpark();
                    }
                } else {
                    waiting.lock().push(hilos::current());
                    while accepted.load(Ordering::SeqCst) < CONNS {
                        hilos::park_timeout(Duration::from_millis(500));
                    }
                }
                s.write_all(b"!").unwrap();
                let mut buf = [0u8; 256];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => s.write_all(&buf[..n]).unwrap(),
                        Err(e) => panic!("server read: {e}"),
                    }
                }
                lv.fetch_sub(1, Ordering::SeqCst);
                sv.fetch_add(1, Ordering::SeqCst);
            }));
        }
        for h in handles {
            h.join().unwrap();
        }
    });
    let client = io_util::self_command()
        .args([
            "--exact",
            "echo_client_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("HILOS_TEST_CHILD", "1")
        .env("HILOS_ECHO_ROLE", "client")
        .env("HILOS_ECHO_ADDR", addr.to_string())
        .output()
        .unwrap();
    let cout = String::from_utf8_lossy(&client.stdout);
    assert!(
        client.status.success() && cout.contains("1 passed"),
        "client failed:\n{cout}\n{}",
        String::from_utf8_lossy(&client.stderr)
    );
    acceptor.join().unwrap();
    assert_eq!(served.load(Ordering::SeqCst), CONNS);
    println!(
        "echo: {CONNS} connections served, {} open at once on the server ({} I/O)",
        peak.load(Ordering::SeqCst),
        rt2().io_backend()
    );
    assert_eq!(
        peak.load(Ordering::SeqCst),
        CONNS,
        "not all connections were open at once"
    );
}

/// The client process: 10,000 green threads connect, wait for the server's greeting (sent once
/// all are accepted), then each sends `ROUNDS` messages and checks every byte of the echoes.
#[test]
fn echo_client_child() {
    if std::env::var("HILOS_ECHO_ROLE").as_deref() != Ok("client") {
        return;
    }
    raise_nofile();
    let addr: std::net::SocketAddr = std::env::var("HILOS_ECHO_ADDR").unwrap().parse().unwrap();
    rt2().block_on(move || {
        let handles: Vec<_> = (0..CONNS)
            .map(|i| {
                hilos::spawn(move || {
                    let mut s = connect_retrying(addr);
                    let mut hello = [0u8; 1];
                    s.read_exact(&mut hello).unwrap();
                    assert_eq!(&hello, b"!");
                    for round in 0..ROUNDS {
                        let msg = pattern(i, round);
                        s.write_all(&msg).unwrap();
                        let mut back = vec![0u8; MSG];
                        s.read_exact(&mut back).unwrap();
                        assert_eq!(back, msg, "connection {i} round {round}");
                    }
                    s.shutdown(std::net::Shutdown::Write).unwrap();
                    let mut rest = Vec::new();
                    s.read_to_end(&mut rest).unwrap();
                    assert!(rest.is_empty());
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}

/// A burst of 10,000 connects can overflow the SYN queue; the kernel then retries, but a refused
/// or reset attempt is retried here too.
fn connect_retrying(addr: std::net::SocketAddr) -> TcpStream {
    let mut tries = 0;
    loop {
        match TcpStream::connect(addr) {
            Ok(s) => return s,
            Err(e) if tries < 20 => {
                tries += 1;
                let _ = e;
                hilos::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("connect: {e}"),
        }
    }
}
