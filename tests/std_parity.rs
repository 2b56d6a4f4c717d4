//! std's names through hilos's module paths (`hilos::thread`, `hilos::io`, `hilos::net`), on
//! green threads and on kernel threads.

mod common;

use std::cell::Cell;

use common::on_both;

thread_local! {
    static COUNT: Cell<u32> = const { Cell::new(0) };
}

fn bump(key: &'static hilos::thread::LocalKey<Cell<u32>>) -> u32 {
    key.with(|c| {
        c.set(c.get() + 1);
        c.get()
    })
}

/// `available_parallelism`, `panicking`, `Result`, `LocalKey`: the same answers as std's, per
/// green thread where they are per thread.
fn thread_names() {
    assert!(hilos::thread::available_parallelism().unwrap().get() >= 1);
    assert!(!hilos::thread::panicking());
    // A green thread's panic state is its own: its Drop sees `panicking`, its sibling does not.
    struct SeesPanicking(std::sync::mpsc::Sender<bool>);
    impl Drop for SeesPanicking {
        fn drop(&mut self) {
            let _ = self.0.send(hilos::thread::panicking());
        }
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let r: hilos::thread::Result<()> = hilos::spawn(move || {
        let _d = SeesPanicking(tx);
        panic!("on purpose");
    })
    .join();
    assert!(r.is_err());
    assert!(rx.recv().unwrap(), "the panicking thread sees it panicking");
    assert!(!hilos::thread::panicking());
    // Each thread's `LocalKey` starts afresh (where green threads have thread-locals of their
    // own: not with `HILOS_TLS=shared`, which CI also runs).
    if !hilos::runtime::tls_mode().per_green_thread() {
        return;
    }
    assert_eq!(
        hilos::spawn(|| (bump(&COUNT), bump(&COUNT)))
            .join()
            .unwrap(),
        (1, 2)
    );
    assert_eq!(hilos::spawn(|| bump(&COUNT)).join().unwrap(), 1);
}

/// `hilos::io` stands for `std::io`: its `Result`, `Error`, `ErrorKind`, and std's traits and
/// adapters over hilos's own readers and writers.
fn io_names() -> hilos::io::Result<()> {
    use hilos::io::{BufRead, BufReader, Read, Write};
    let (r, mut w) = hilos::io::pipe()?;
    let writer = hilos::spawn(move || -> hilos::io::Result<()> {
        w.write_all(b"one\ntwo\n")?;
        Ok(())
    });
    let mut lines = BufReader::new(r).lines();
    assert_eq!(lines.next().transpose()?.as_deref(), Some("one"));
    assert_eq!(lines.next().transpose()?.as_deref(), Some("two"));
    writer.join().unwrap()?;
    let mut c = hilos::io::Cursor::new(vec![1u8, 2, 3]);
    let mut buf = Vec::new();
    c.read_to_end(&mut buf)?;
    assert_eq!(buf, [1, 2, 3]);
    let e = hilos::io::Error::new(hilos::io::ErrorKind::InvalidData, "bad");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    Ok(())
}

#[test]
fn std_thread_names_through_hilos_thread() {
    on_both(thread_names);
    thread_names();
}

#[test]
fn std_io_names_through_hilos_io() {
    on_both(|| io_names().unwrap());
    io_names().unwrap();
}

#[test]
fn addr_parse_error_through_hilos_net() {
    let e: hilos::net::AddrParseError = "not an address".parse::<hilos::net::IpAddr>().unwrap_err();
    assert!(!e.to_string().is_empty());
}

/// `Builder::spawn_unchecked`: the closure borrows the caller's data and returns a borrow of it;
/// the caller joins before the data goes.
fn borrowing_spawn() {
    let data: Vec<u64> = (1..=100).collect();
    let slice = &data[..];
    // SAFETY: joined below, while `data` lives.
    let h = unsafe {
        hilos::thread::Builder::new()
            .name("unchecked".into())
            .spawn_unchecked(move || {
                assert_eq!(hilos::thread::current().name(), Some("unchecked"));
                (slice.iter().sum::<u64>(), &slice[..3])
            })
    }
    .unwrap();
    let (sum, head) = h.join().unwrap();
    assert_eq!(sum, 5050);
    assert_eq!(head, [1, 2, 3]);
}

#[test]
fn builder_spawn_unchecked_may_borrow() {
    on_both(borrowing_spawn);
    borrowing_spawn();
}

/// A pipe end given to a child (`From<PipeReader> for Stdio`, std's) is a blocking descriptor
/// there, as children expect: `cat` starts on an empty pipe and waits for data written 50 ms
/// later (with the non-blocking description hilos uses itself, it failed with EAGAIN at once).
/// The parent's writes to the other end still park only the green thread.
fn pipe_to_child() {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let (r, mut w) = hilos::io::pipe().unwrap();
    let child = Command::new("cat")
        .stdin(r)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let child = child.unwrap();
    hilos::sleep(std::time::Duration::from_millis(50));
    w.write_all(b"late data").unwrap();
    drop(w);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        (
            out.stdout.as_slice(),
            String::from_utf8_lossy(&out.stderr).as_ref()
        ),
        (&b"late data"[..], "")
    );
    // The writing end goes to a child too, reading back what it wrote.
    let (mut r, w) = hilos::io::pipe().unwrap();
    let status = Command::new("echo")
        .arg("from the child")
        .stdout(w)
        .status()
        .unwrap();
    assert!(status.success());
    let mut got = String::new();
    std::io::Read::read_to_string(&mut r, &mut got).unwrap();
    assert_eq!(got, "from the child\n");
}

#[test]
fn pipe_ends_given_to_a_child_are_blocking_there() {
    on_both(pipe_to_child);
    pipe_to_child();
}
