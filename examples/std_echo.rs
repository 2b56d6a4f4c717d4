//! A TCP echo server written with std's types only (`std::net`, `std::io`), a green thread per
//! connection. Run it with the `hook` feature, which makes std's blocking calls park only the
//! calling green thread:
//!
//! ```text
//! cargo run --release --features hook --example std_echo -- 127.0.0.1:8080
//! ```
//!
//! Only `hilos::spawn` is hilos's: the rest is the code a std-threads server would have. Without
//! the feature every `read` here would block a whole worker kernel thread, so a few idle
//! connections would stall all the others.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

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
        eprintln!("std_echo: cannot listen on {addr}: {e}");
        std::process::exit(1);
    });
    eprintln!("std_echo: listening on {}", listener.local_addr().unwrap());
    // The accept loop runs on a green thread too, so that std's `accept` parks only it.
    let acceptor = hilos::spawn(move || {
        for stream in listener.incoming() {
            match stream {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    hilos::spawn(move || serve(s));
                }
                Err(e) => {
                    eprintln!("std_echo: accept: {e}");
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
        }
    });
    acceptor.join().unwrap();
}
