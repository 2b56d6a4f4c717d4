//! A worker takes every receive whose data has arrived in one pass, not the kernel's 20 per
//! enter (`driver/uring.rs`, "Draining"): 300 green threads of one worker wait in `read`; while
//! the worker is kept busy, a kernel thread writes to all 300 peers; when the first reader wakes,
//! no socket may still hold its data unread. Before, 280 did (the data waited in the kernel, in
//! io_uring's deferred list, behind 14 more passes of the worker).

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hilos::io::IoBackend;
use hilos::net::UnixStream;

const READERS: usize = 300;

/// Bytes queued, unread, in the receive buffer of socket `fd` (`FIONREAD`).
fn unread(fd: RawFd) -> i32 {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer.
    let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    assert_eq!(r, 0, "FIONREAD: {}", std::io::Error::last_os_error());
    n
}

#[test]
fn a_pass_takes_every_arrived_receive() {
    let rt = hilos::Runtime::builder().workers(1).build().unwrap();
    if rt.io_backend() != IoBackend::IoUring {
        // The epoll fallback wakes readers by readiness; each reads its own data when it runs.
        eprintln!("skipped: the epoll backend has no deferred completions");
        return;
    }
    let (ours, theirs): (Vec<UnixStream>, Vec<UnixStream>) =
        (0..READERS).map(|_| UnixStream::pair().unwrap()).unzip();
    let fds: Arc<Vec<RawFd>> = Arc::new(theirs.iter().map(|s| s.as_raw_fd()).collect());
    let parked = Arc::new(AtomicUsize::new(0));
    let written = Arc::new(AtomicBool::new(false));
    // What the first reader to wake saw: how many sockets still held their byte.
    let first_saw: Arc<Mutex<Option<usize>>> = Arc::new(Mutex::new(None));
    let (parked2, written2, first2, fds2) = (
        parked.clone(),
        written.clone(),
        first_saw.clone(),
        fds.clone(),
    );
    let writer = std::thread::spawn(move || {
        let mut ours = ours;
        while parked2.load(Ordering::SeqCst) < READERS {
            std::thread::sleep(Duration::from_millis(1));
        }
        // The readers' receives are queued in the kernel once they are parked, and the worker is
        // busy in the holder below (it does not poll until it yields).
        std::thread::sleep(Duration::from_millis(20));
        for s in ours.iter_mut() {
            s.write_all(b"x").unwrap();
        }
        written2.store(true, Ordering::SeqCst);
        ours
    });
    let seen = rt.block_on(move || {
        let readers: Vec<_> = theirs
            .into_iter()
            .map(|mut s| {
                let (parked, first, fds) = (parked.clone(), first2.clone(), fds2.clone());
                hilos::spawn(move || {
                    parked.fetch_add(1, Ordering::SeqCst);
                    let mut b = [0u8; 1];
                    assert_eq!(s.read(&mut b).unwrap(), 1);
                    let mut first = first.lock().unwrap();
                    if first.is_none() {
                        *first = Some(fds.iter().filter(|&&fd| unread(fd) > 0).count());
                    }
                    s
                })
            })
            .collect();
        // Let every reader park in its read (their receives go to the kernel at the next pass),
        // then hold the worker, without yielding, until all the data has been written.
        while parked.load(Ordering::SeqCst) < READERS {
            hilos::yield_now();
        }
        hilos::yield_now();
        let start = Instant::now();
        while !written.load(Ordering::SeqCst) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the writer never finished"
            );
            std::hint::spin_loop();
        }
        let socks: Vec<UnixStream> = readers.into_iter().map(|h| h.join().unwrap()).collect();
        drop(socks);
        first_saw.lock().unwrap().unwrap()
    });
    drop(writer.join().unwrap());
    assert_eq!(
        seen, 0,
        "when the first reader woke, {seen} of {READERS} sockets still held their unread data"
    );
}
