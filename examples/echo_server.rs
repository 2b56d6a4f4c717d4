//! A TCP echo server in plain blocking style: one green thread per connection.
//!
//! ```text
//! cargo run --release --example echo_server -- 127.0.0.1:8080
//! ```
//!
//! Every byte a client sends comes back. Each connection's green thread blocks in `read` and
//! `write` as a std thread would, but only that green thread waits: thousands of connections
//! share a few worker kernel threads.

use std::io::{Read, Write};

use hilos::net::{TcpListener, TcpStream};

fn serve(mut stream: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let listener = TcpListener::bind(&addr).unwrap_or_else(|e| {
        eprintln!("echo_server: cannot listen on {addr}: {e}");
        std::process::exit(1);
    });
    // The accept loop is a green thread too, so that `accept` parks only it.
    let acceptor = hilos::spawn(move || {
        eprintln!(
            "echo_server: listening on {} ({} I/O)",
            listener.local_addr().unwrap(),
            hilos::io::current_backend().map_or("?", |b| b.as_str())
        );
        for stream in listener.incoming() {
            match stream {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    hilos::spawn(move || serve(s));
                }
                Err(e) => {
                    // Out of descriptors, a connection reset before it was accepted...: report
                    // it, give the load a moment to ease, and keep serving.
                    eprintln!("echo_server: accept: {e}");
                    hilos::sleep(std::time::Duration::from_millis(10));
                }
            }
        }
    });
    acceptor.join().unwrap();
}
