//! A minimal HTTP/1.1 server in plain blocking style: one green thread per connection, keep-alive,
//! answering every request `200 OK` with the body `Hello, world!`.
//!
//! ```text
//! cargo run --release --example http_hello -- 127.0.0.1:8080
//! curl http://127.0.0.1:8080/
//! ```

use std::io::{Read, Write};

use hilos::net::{TcpListener, TcpStream};

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!";

/// Serves one connection until the client closes it or asks to (`Connection: close`, or
/// HTTP/1.0 without keep-alive). Pipelined requests are answered in one write.
fn serve(mut stream: TcpStream) -> std::io::Result<()> {
    let mut buf = vec![0u8; 8192];
    let mut filled = 0;
    let mut out = Vec::with_capacity(4096);
    loop {
        if filled == buf.len() {
            // A request head larger than the buffer: too large for this server.
            stream.write_all(b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
            return Ok(());
        }
        let n = stream.read(&mut buf[filled..])?;
        if n == 0 {
            return Ok(());
        }
        filled += n;
        let mut start = 0;
        let mut close = false;
        while start < filled {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf[start..filled]) {
                Ok(httparse::Status::Complete(head)) => {
                    let mut body = 0usize;
                    let mut keep_alive = req.version == Some(1);
                    for h in req.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-length") {
                            body = std::str::from_utf8(h.value)
                                .ok()
                                .and_then(|v| v.trim().parse().ok())
                                .unwrap_or(0);
                        } else if h.name.eq_ignore_ascii_case("connection") {
                            let v = h.value.to_ascii_lowercase();
                            if v.starts_with(b"close") {
                                keep_alive = false;
                            } else if v.starts_with(b"keep-alive") {
                                keep_alive = true;
                            }
                        }
                    }
                    if filled - start < head + body {
                        break; // The body is still coming.
                    }
                    start += head + body;
                    out.extend_from_slice(RESPONSE);
                    if !keep_alive {
                        close = true;
                        break;
                    }
                }
                Ok(httparse::Status::Partial) => break,
                Err(_) => {
                    out.extend_from_slice(
                        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    close = true;
                    break;
                }
            }
        }
        if !out.is_empty() {
            stream.write_all(&out)?;
            out.clear();
        }
        if close {
            return Ok(());
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
    }
}

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let listener = TcpListener::bind(&addr).unwrap_or_else(|e| {
        eprintln!("http_hello: cannot listen on {addr}: {e}");
        std::process::exit(1);
    });
    let acceptor = hilos::spawn(move || {
        eprintln!(
            "http_hello: listening on http://{} ({} I/O)",
            listener.local_addr().unwrap(),
            hilos::io::current_backend().map_or("?", |b| b.as_str())
        );
        for stream in listener.incoming() {
            match stream {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    hilos::spawn(move || {
                        let _ = serve(s);
                    });
                }
                Err(e) => {
                    // Out of descriptors, a connection reset before it was accepted...: report
                    // it, give the load a moment to ease, and keep serving.
                    eprintln!("http_hello: accept: {e}");
                    hilos::sleep(std::time::Duration::from_millis(10));
                }
            }
        }
    });
    acceptor.join().unwrap();
}
