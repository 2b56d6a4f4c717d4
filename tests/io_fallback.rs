//! The fallback when io_uring is really unavailable, not just declined with `HILOS_IO=epoll`.
//!
//! Each case runs in a child process (this test binary again) that first installs a seccomp filter
//! making the io_uring system calls fail with a chosen error, the way a container's seccomp
//! profile or `kernel.io_uring_disabled` does. The child then builds runtimes and checks that they
//! chose the epoll backend, said so once on stderr, and serve sockets, pipes, files, timers and
//! `unblock` as usual. The parent checks the child's exit status and its stderr.

mod io_util;
#[path = "common/seccomp.rs"]
mod seccomp;

use std::io::{Read, Write};
use std::time::Duration;

use hilos::io::IoBackend;

const CHILD_ENV: &str = "HILOS_TEST_SECCOMP";
const OK_MARK: &str = "fallback child: all good";

/// io_uring_setup, io_uring_enter, io_uring_register: the same numbers on x86_64 and aarch64
/// (system calls added since Linux 5.0 share one numbering across architectures).
const SYS_IO_URING_SETUP: u32 = 425;
const SYS_IO_URING_REGISTER: u32 = 427;

/// Makes system calls `first..=last` fail with `errno` for this thread and the threads it starts
/// from now on.
fn deny_syscalls(first: u32, last: u32, errno: i32) {
    use seccomp::*;
    // seccomp_data: nr at offset 0, arch at offset 4.
    seccomp::install(&[
        ins(LD_W_ABS, 0, 0, 4),                                // A = arch
        ins(JEQ_K, 1, 0, AUDIT_ARCH),                          // native? go on : allow
        ins(RET_K, 0, 0, RET_ALLOW),                           //
        ins(LD_W_ABS, 0, 0, 0),                                // A = syscall number
        ins(JGE_K, 0, 2, first),                               // below first: allow
        ins(JGT_K, 1, 0, last),                                // above last: allow
        ins(RET_K, 0, 0, RET_ERRNO | (errno as u32 & 0xffff)), // in range: fail with errno
        ins(RET_K, 0, 0, RET_ALLOW),                           //
    ]);
}

/// The child's side: `spec` is "setup:ERRNO" (every io_uring call fails) or "register:ERRNO"
/// (rings can be made, but registering, and so probing the opcodes, fails).
fn child(spec: &str) {
    let (what, errno) = spec.split_once(':').unwrap();
    let errno: i32 = errno.parse().unwrap();
    match what {
        "setup" => deny_syscalls(SYS_IO_URING_SETUP, SYS_IO_URING_REGISTER, errno),
        "register" => deny_syscalls(SYS_IO_URING_REGISTER, SYS_IO_URING_REGISTER, errno),
        _ => panic!("bad spec {spec}"),
    }
    // Two runtimes: the note on stderr must still come once.
    let rt1 = hilos::Runtime::builder().workers(1).build().unwrap();
    let rt2 = hilos::Runtime::builder().workers(2).build().unwrap();
    assert_eq!(rt1.io_backend(), IoBackend::Epoll);
    assert_eq!(rt2.io_backend(), IoBackend::Epoll);
    for rt in [&rt1, &rt2] {
        rt.block_on(exercise);
    }
    println!("{OK_MARK}");
}

/// Sockets, a pipe, a file, a sleep and `unblock`, with a green thread counting alongside.
fn exercise() {
    let listener = hilos::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = hilos::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        s.write_all(&buf).unwrap();
    });
    let mut c = hilos::net::TcpStream::connect(addr).unwrap();
    c.write_all(b"hello").unwrap();
    let mut back = [0u8; 5];
    c.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"hello");
    server.join().unwrap();

    let (mut r, mut w) = hilos::io::pipe().unwrap();
    let writer = hilos::thread::spawn(move || {
        hilos::thread::sleep(Duration::from_millis(20));
        w.write_all(b"through the pipe").unwrap();
    });
    let mut got = String::new();
    r.read_to_string(&mut got).unwrap();
    assert_eq!(got, "through the pipe");
    writer.join().unwrap();

    let dir = std::env::temp_dir().join(format!("hilos-fallback-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("f");
    hilos::fs::write(&path, b"file bytes").unwrap();
    assert_eq!(hilos::fs::read(&path).unwrap(), b"file bytes");
    std::fs::remove_dir_all(&dir).unwrap();

    assert_eq!(hilos::unblock(|| 6 * 7), 42);
}

#[test]
fn unavailable_io_uring_falls_back_to_epoll() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        return child(&spec);
    }
    let cases = [
        ("setup", libc::EPERM),
        ("setup", libc::ENOSYS),
        ("setup", libc::ENOMEM),
        ("register", libc::EPERM),
    ];
    for (what, errno) in cases {
        let spec = format!("{what}:{errno}");
        let out = io_util::within(120, {
            let spec = spec.clone();
            move || {
                io_util::self_command()
                    .args(["--exact", "unavailable_io_uring_falls_back_to_epoll"])
                    .args(["--nocapture", "--test-threads=1"])
                    .env(CHILD_ENV, &spec)
                    .env_remove("HILOS_IO")
                    .output()
                    .unwrap()
            }
        });
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains(OK_MARK),
            "case {spec}: the child failed:\n{stdout}\n{stderr}"
        );
        let notes = stderr.matches("io_uring is not available").count();
        assert_eq!(
            notes, 1,
            "case {spec}: want the fallback note once on stderr, got {notes}:\n{stderr}"
        );
    }
}
