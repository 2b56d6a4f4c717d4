//! Every green thread has its own thread-locals (src/tls): std's `thread_local!`, the panic
//! state, `std::thread::current()`, errno; and what must stay per kernel thread keeps working
//! (malloc's caches, the stack protector's canary). Each test runs on a 1-worker and a 2-worker
//! runtime; CI runs the file on both I/O backends.
//!
//! Per-green-thread TLS exists on x86_64 and aarch64 with glibc 2.36; elsewhere hilos falls back
//! to shared thread-locals, where these tests would show exactly the faults they guard against,
//! so they first check that the mode is per green thread (and fail if it is not on those).

mod common;

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{is_child, on_both, run_child, within};

fn per_green_mode() -> bool {
    let _ = common::one_worker();
    let mode = hilos::runtime::tls_mode();
    if std::env::var("HILOS_TLS").as_deref() == Ok("shared") {
        // The fallback forced (CI runs the whole suite so once): these tests do not apply.
        return false;
    }
    if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        assert!(
            mode.per_green_thread(),
            "x86_64/aarch64 with glibc: expected per-green TLS, got {mode}"
        );
    }
    mode.per_green_thread()
}

/// The issue's first program, on a runtime's green thread: a lazily initialised thread-local
/// whose initialiser parks, read by two green threads. Returns both reads.
fn lazy_initialiser_program() -> (u8, u8) {
    thread_local! {
        static X: Vec<u8> = {
            hilos::sleep(Duration::from_millis(10));
            vec![0xAA; 64]
        };
    }
    let a = hilos::spawn(|| {
        X.with(|v| {
            let s: &[u8] = &v[..];
            hilos::sleep(Duration::from_millis(50));
            s[0]
        })
    });
    hilos::sleep(Duration::from_millis(2));
    let b = hilos::spawn(|| X.with(|v| v[0]));
    (a.join().unwrap(), b.join().unwrap())
}

/// The issue's use-after-free: with shared thread-locals the second initialiser to finish
/// replaced (and freed) the value the first still borrowed; now each green thread has its own
/// value: both reads give 0xaa.
#[test]
fn a_lazy_initialiser_that_parks_gives_each_thread_its_own_value() {
    if !per_green_mode() {
        return;
    }
    within(60, || {
        on_both(|| assert_eq!(lazy_initialiser_program(), (0xAA, 0xAA)))
    });
}

/// The same program under Valgrind's memcheck, with `mprotect` stack guards (Valgrind does not
/// know newer guard advice): both reads give 0xaa and memcheck reports no error at all (green
/// stacks are registered with Valgrind, so a switch is not taken for a huge frame). Needs
/// `valgrind` (CI installs it); not under qemu, which Valgrind cannot run.
#[test]
fn the_lazy_initialiser_program_is_clean_under_valgrind() {
    const NAME: &str = "the_lazy_initialiser_program_is_clean_under_valgrind";
    if is_child() {
        let rt = hilos::Runtime::builder().workers(1).build().unwrap();
        let (a, b) = rt.block_on(lazy_initialiser_program);
        println!("reads {a:#x} {b:#x}");
        return;
    }
    if !per_green_mode() || std::env::var_os("HILOS_TEST_RUNNER").is_some() {
        return;
    }
    let out = std::process::Command::new("valgrind")
        .args(["--error-exitcode=99", "--quiet"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
        .env("HILOS_TEST_CHILD", "1")
        .env("HILOS_STACK_GUARD", "mprotect")
        .output()
        .expect("valgrind (apt-get install valgrind) is needed for this test");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(stdout.contains("reads 0xaa 0xaa"), "{stdout}\n{stderr}");
    assert!(
        out.status.success() && !stderr.contains("== Invalid") && !stderr.contains("uninitialised"),
        "memcheck reported errors ({:?}):\n{stderr}",
        out.status
    );
}

/// The issue's deadlock: a green thread that panics while a sibling of the same worker holds a
/// lock, and whose unwinding (a Drop) waits for that lock. The panic count is the green thread's
/// own, so it parks while unwinding, the holder runs, and everything finishes.
#[test]
fn a_green_thread_may_park_while_it_unwinds() {
    struct LockOnDrop(Arc<hilos::sync::Mutex<()>>);
    impl Drop for LockOnDrop {
        fn drop(&mut self) {
            let _g = self.0.lock();
            assert!(std::thread::panicking());
        }
    }
    if !per_green_mode() {
        return;
    }
    within(60, || {
        on_both(|| {
            let m = Arc::new(hilos::sync::Mutex::new(()));
            let m2 = m.clone();
            let holder = hilos::spawn(move || {
                let _g = m2.lock().unwrap();
                // The sibling's panic must not be seen here.
                hilos::sleep(Duration::from_millis(20));
                assert!(!std::thread::panicking());
            });
            hilos::sleep(Duration::from_millis(5));
            let r = hilos::spawn(move || {
                let _d = LockOnDrop(m);
                panic!("boom")
            })
            .join();
            assert!(r.is_err());
            holder.join().unwrap();
            assert!(!std::thread::panicking());
        })
    });
}

/// The issue's wrong answers: a thread-per-connection server that counts each connection's lines
/// in a thread-local. Three connections of five lines each, interleaved: 5/5/5.
#[test]
fn per_connection_thread_local_counts_are_per_green_thread() {
    use std::io::{BufRead, BufReader, Write};
    thread_local! { static LINES: Cell<usize> = const { Cell::new(0) }; }
    if !per_green_mode() {
        return;
    }
    within(60, || {
        on_both(|| {
            let listener = hilos::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let server = hilos::spawn(move || {
                let mut conns = Vec::new();
                for s in listener.incoming().take(3) {
                    let s = s.unwrap();
                    conns.push(hilos::spawn(move || {
                        for line in BufReader::new(s).lines() {
                            line.unwrap();
                            LINES.with(|n| n.set(n.get() + 1));
                        }
                        LINES.with(|n| n.get())
                    }));
                }
                conns
                    .into_iter()
                    .map(|c| c.join().unwrap())
                    .collect::<Vec<_>>()
            });
            let mut clients: Vec<_> = (0..3)
                .map(|_| hilos::net::TcpStream::connect(addr).unwrap())
                .collect();
            for _ in 0..5 {
                for c in &mut clients {
                    c.write_all(b"line\n").unwrap();
                    hilos::sleep(Duration::from_millis(1));
                }
            }
            drop(clients);
            assert_eq!(server.join().unwrap(), vec![5, 5, 5]);
        })
    });
}

/// A `RefCell` thread-local borrowed across a park: never "already borrowed".
#[test]
fn a_thread_local_refcell_borrowed_across_a_park_is_not_shared() {
    thread_local! { static LOG: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) }; }
    if !per_green_mode() {
        return;
    }
    within(60, || {
        on_both(|| {
            let hs: Vec<_> = (0..100u32)
                .map(|i| {
                    hilos::spawn(move || {
                        LOG.with(|l| {
                            let mut l = l.borrow_mut();
                            l.push(i);
                            hilos::yield_now();
                            hilos::sleep(Duration::from_millis(1));
                            l.push(i);
                            l.clone()
                        })
                    })
                })
                .collect();
            for (i, h) in hs.into_iter().enumerate() {
                assert_eq!(h.join().unwrap(), vec![i as u32, i as u32]);
            }
        })
    });
}

/// Destructors of thread-locals run exactly once per green thread, before `join` returns,
/// over 10,000 threads whose initialisers park.
#[test]
fn thread_local_destructors_run_once_per_green_thread() {
    static INITS: AtomicUsize = AtomicUsize::new(0);
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    struct Counted(u32);
    impl Drop for Counted {
        fn drop(&mut self) {
            assert_eq!(self.0, 0xD0D0);
            DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }
    thread_local! {
        static T: Counted = {
            INITS.fetch_add(1, Ordering::SeqCst);
            hilos::yield_now();
            Counted(0xD0D0)
        };
    }
    if !per_green_mode() {
        return;
    }
    within(120, || {
        for rt in [common::one_worker(), common::two_workers()] {
            INITS.store(0, Ordering::SeqCst);
            DROPS.store(0, Ordering::SeqCst);
            rt.block_on(|| {
                for _ in 0..10 {
                    let hs: Vec<_> = (0..1000)
                        .map(|_| hilos::spawn(|| T.with(|t| assert_eq!(t.0, 0xD0D0))))
                        .collect();
                    for h in hs {
                        h.join().unwrap();
                    }
                }
            });
            assert_eq!(INITS.load(Ordering::SeqCst), 10_000);
            assert_eq!(DROPS.load(Ordering::SeqCst), 10_000);
        }
    });
}

/// `std::thread::current()` and its id are the green thread's own: distinct per green thread,
/// stable across parks, different from the worker's and the spawner's.
#[test]
fn std_thread_current_is_per_green_thread() {
    if !per_green_mode() {
        return;
    }
    within(60, || {
        on_both(|| {
            let me = std::thread::current().id();
            let hs: Vec<_> = (0..50)
                .map(|_| {
                    hilos::spawn(|| {
                        let a = std::thread::current().id();
                        hilos::sleep(Duration::from_millis(1));
                        assert_eq!(std::thread::current().id(), a);
                        a
                    })
                })
                .collect();
            let mut ids: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
            assert!(!ids.contains(&me));
            ids.sort_by_key(|id| format!("{id:?}"));
            ids.dedup();
            assert_eq!(ids.len(), 50);
        })
    });
}

/// errno is per green thread: set by one, it survives a park while another sets its own.
#[test]
fn errno_set_by_one_green_thread_is_not_seen_by_another() {
    fn errno() -> i32 {
        std::io::Error::last_os_error().raw_os_error().unwrap()
    }
    fn set_errno(v: i32) {
        // SAFETY: errno's location of the calling thread.
        unsafe { *libc::__errno_location() = v };
    }
    if !per_green_mode() {
        return;
    }
    within(60, || {
        on_both(|| {
            let hs: Vec<_> = [libc::EBADF, libc::ENOENT, libc::EAGAIN]
                .into_iter()
                .map(|e| {
                    hilos::spawn(move || {
                        set_errno(e);
                        for _ in 0..3 {
                            hilos::yield_now();
                            hilos::sleep(Duration::from_millis(1));
                        }
                        errno()
                    })
                })
                .collect();
            let got: Vec<i32> = hs.into_iter().map(|h| h.join().unwrap()).collect();
            assert_eq!(got, vec![libc::EBADF, libc::ENOENT, libc::EAGAIN]);
        })
    });
}

/// A million green threads that allocate and free leave the process's memory where it was:
/// malloc's per-thread cache is the worker's, not one per green thread.
#[test]
fn a_million_green_threads_that_malloc_leave_rss_flat() {
    fn rss_kib() -> usize {
        let s = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
    if !is_child() {
        let out = run_child("a_million_green_threads_that_malloc_leave_rss_flat", &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "child failed: {err}");
        return;
    }
    if !per_green_mode() {
        return;
    }
    let rt = hilos::Runtime::builder().workers(2).build().unwrap();
    let round = || {
        rt.block_on(|| {
            for _ in 0..100 {
                let hs: Vec<_> = (0..1000)
                    .map(|i| {
                        hilos::spawn(move || {
                            let v = std::hint::black_box(vec![i as u8; 64]);
                            let b = std::hint::black_box(Box::new([0u8; 200]));
                            v.len() + b.len()
                        })
                    })
                    .collect();
                for h in hs {
                    assert_eq!(h.join().unwrap(), 264);
                }
            }
        })
    };
    // Warm-up: stacks, caches and pools reach their steady size.
    round();
    let before = rss_kib();
    for _ in 0..9 {
        round();
    }
    let after = rss_kib();
    eprintln!("RSS after 100,000 threads {before} KiB, after 1,000,000 {after} KiB");
    assert!(
        after <= before + 16 * 1024,
        "RSS grew by {} KiB over 900,000 green threads",
        after - before
    );
}

/// C code compiled with -fstack-protector-all, parked in the middle of a function whose frame
/// has a canary: the canary (%fs:0x28) of every green thread is the process's, so every return
/// checks out. Also a `__thread` variable of a dlopen'ed library is per green thread.
#[test]
fn c_code_with_stack_protector_and_its_own_tls_runs_on_green_threads() {
    if !per_green_mode() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("hilos-tls-c-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("ssp.c");
    let lib = dir.join("libssp.so");
    std::fs::write(
        &src,
        r#"
#include <string.h>
static __thread int counter;
/* A frame with a char array: -fstack-protector-all puts a canary in it, checked on return. */
int hilos_test_ssp(void (*park)(void), int id) {
    char buf[64];
    memset(buf, id, sizeof buf);
    for (int i = 0; i < 3; i++) {
        counter += 1;
        park();
    }
    return buf[0] + buf[63] + counter * 1000;
}
"#,
    )
    .unwrap();
    // The library's TLS goes through its dtv (x86_64's default dialect) or TLS descriptors
    // (aarch64's), which glibc no longer serves from static TLS (hilos closes the surplus), so
    // it is allocated per green thread.
    build_c_lib(&src, &lib, &[]);
    let path = std::ffi::CString::new(lib.to_str().unwrap()).unwrap();
    // SAFETY: a library built just above, with no constructors.
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW) };
    assert!(!handle.is_null());
    // SAFETY: looking up a function of that library.
    let f = unsafe { libc::dlsym(handle, c"hilos_test_ssp".as_ptr()) };
    assert!(!f.is_null());
    type Ssp = unsafe extern "C" fn(extern "C" fn(), i32) -> i32;
    // SAFETY: the C signature above.
    let f: Ssp = unsafe { std::mem::transmute::<*mut libc::c_void, Ssp>(f) };
    extern "C" fn park() {
        hilos::sleep(Duration::from_millis(1));
    }
    within(60, move || {
        on_both(|| {
            // Several rounds: later threads reuse the stacks (and TLS areas) of earlier ones,
            // whose blocks of the dlopen'ed library were freed when they exited.
            for _ in 0..3 {
                let hs: Vec<_> = (1..=20)
                    .map(|id| {
                        // SAFETY: `f` takes a callback and an int; the callback may park.
                        hilos::spawn(move || unsafe { f(park, id) })
                    })
                    .collect();
                for (id, h) in (1..=20).zip(hs) {
                    // Each thread's own `counter` (3), and its own buffer (2 * id).
                    assert_eq!(h.join().unwrap(), 2 * id + 3000);
                }
            }
        })
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// Builds `src` into the shared library `lib` with the C compiler for the target (the aarch64
/// suite runs under qemu on an x86_64 host), with `extra` flags.
fn build_c_lib(src: &std::path::Path, lib: &std::path::Path, extra: &[&str]) {
    let cc = if cfg!(target_arch = "aarch64")
        && std::process::Command::new("aarch64-linux-gnu-gcc")
            .arg("--version")
            .output()
            .is_ok()
    {
        "aarch64-linux-gnu-gcc"
    } else {
        "gcc"
    };
    let st = std::process::Command::new(cc)
        .args(extra)
        .args(["-O1", "-fstack-protector-all", "-fPIC", "-shared", "-o"])
        .arg(lib)
        .arg(src)
        .status()
        .expect("gcc (needed to build the C side of this test)");
    assert!(st.success());
}

/// A library that needs static TLS (initial-exec model), `dlopen`ed once the runtime exists,
/// fails to load with glibc's own error: hilos closed glibc's static TLS surplus, which green
/// threads' areas have no room for (with room, such a library's TLS would read zeros on green
/// threads that existed before it was loaded). Loading it did not disturb anything: green
/// threads run after the attempt.
#[test]
fn a_library_needing_static_tls_loaded_after_start_fails_to_load() {
    if !per_green_mode() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("hilos-tls-ie-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (src, lib) = (dir.join("ie.c"), dir.join("libie.so"));
    std::fs::write(
        &src,
        "__thread int hilos_ie_v __attribute__((tls_model(\"initial-exec\"))) = 5;\n\
         int hilos_test_ie(void) { return ++hilos_ie_v; }\n",
    )
    .unwrap();
    build_c_lib(&src, &lib, &[]);
    let path = std::ffi::CString::new(lib.to_str().unwrap()).unwrap();
    // SAFETY: a library built just above, with no constructors; dlerror's string is read at once.
    let (handle, err) = unsafe {
        let h = libc::dlopen(path.as_ptr(), libc::RTLD_NOW);
        let e = libc::dlerror();
        let e = if e.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(e).to_string_lossy().into_owned()
        };
        (h, e)
    };
    assert!(
        handle.is_null(),
        "an initial-exec TLS library loaded after start"
    );
    assert!(err.contains("static TLS"), "{err}");
    within(30, || {
        on_both(|| {
            let hs: Vec<_> = (0..10).map(|i| hilos::spawn(move || i * 2)).collect();
            let sum: i32 = hs.into_iter().map(|h| h.join().unwrap()).sum();
            assert_eq!(sum, 90);
        })
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// Name resolution through the blocking pool, from green threads.
#[test]
fn getaddrinfo_through_unblock_works_on_green_threads() {
    use std::net::ToSocketAddrs;
    within(60, || {
        on_both(|| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    hilos::spawn(|| {
                        hilos::unblock(|| ("localhost", 80).to_socket_addrs().map(|a| a.count()))
                    })
                })
                .collect();
            for h in hs {
                assert!(h.join().unwrap().unwrap() >= 1);
            }
        })
    });
}

/// A panic inside a Drop that runs during unwinding aborts the process, as std does.
#[test]
fn a_panic_in_a_drop_during_unwinding_aborts_as_std() {
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("second panic, in a destructor");
        }
    }
    if !is_child() {
        let out = run_child("a_panic_in_a_drop_during_unwinding_aborts_as_std", &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(libc::SIGABRT), "stderr: {err}");
        assert!(
            err.contains("panic in a destructor during cleanup"),
            "stderr: {err}"
        );
        assert!(!err.contains("NOT REACHED"), "stderr: {err}");
        return;
    }
    let rt = hilos::Runtime::builder().workers(1).build().unwrap();
    rt.block_on(|| {
        let h = hilos::spawn(|| {
            let _d = PanicOnDrop;
            hilos::yield_now();
            panic!("first panic");
        });
        let _ = h.join();
        eprintln!("NOT REACHED");
    });
}

/// A thread-local with a destructor that parks (locks a contended hilos mutex) still runs, once,
/// on its green thread.
#[test]
fn a_thread_local_destructor_may_park() {
    static DONE: AtomicUsize = AtomicUsize::new(0);
    struct Parks(Arc<hilos::sync::Mutex<u32>>);
    impl Drop for Parks {
        fn drop(&mut self) {
            *self.0.lock().unwrap() += 1;
            DONE.fetch_add(1, Ordering::SeqCst);
        }
    }
    thread_local! { static P: RefCell<Option<Parks>> = const { RefCell::new(None) }; }
    if !per_green_mode() {
        return;
    }
    within(60, || {
        DONE.store(0, Ordering::SeqCst);
        on_both(|| {
            let m = Arc::new(hilos::sync::Mutex::new(0));
            let g = m.lock().unwrap();
            let hs: Vec<_> = (0..10)
                .map(|_| {
                    let m = m.clone();
                    hilos::spawn(move || P.with(|p| *p.borrow_mut() = Some(Parks(m))))
                })
                .collect();
            hilos::sleep(Duration::from_millis(5));
            drop(g);
            for h in hs {
                h.join().unwrap();
            }
            assert_eq!(*m.lock().unwrap(), 10);
        });
        assert_eq!(DONE.load(Ordering::SeqCst), 20);
    });
}

/// A child does not see its spawner's thread-local values (it starts from the initial value),
/// and the spawner's value is untouched by the child.
#[test]
fn thread_locals_of_the_spawner_are_not_the_childs() {
    thread_local! { static MARK: Cell<u32> = const { Cell::new(0) }; }
    if !per_green_mode() {
        return;
    }
    within(60, || {
        on_both(|| {
            MARK.with(|m| m.set(7));
            let seen = Arc::new(Mutex::new(Vec::new()));
            let s = seen.clone();
            hilos::spawn(move || s.lock().unwrap().push(MARK.with(|m| m.get())))
                .join()
                .unwrap();
            assert_eq!(*seen.lock().unwrap(), vec![0]);
            assert_eq!(MARK.with(|m| m.get()), 7);
        })
    });
}

/// Where thread-locals are shared (forced here with `HILOS_TLS=shared`), hilos says so once on
/// stderr and through `tls_mode()`; with `HILOS_TLS=arch_prctl` the syscall setter is used.
#[test]
fn the_mode_is_said_once_and_can_be_queried() {
    use hilos::runtime::TlsMode;
    if is_child() {
        for _ in 0..3 {
            let rt = hilos::Runtime::builder().workers(1).build().unwrap();
            rt.block_on(|| ());
        }
        println!("mode: {:?}", hilos::runtime::tls_mode());
        return;
    }
    let out = run_child(
        "the_mode_is_said_once_and_can_be_queried",
        &[("HILOS_TLS", "shared")],
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains(&format!("mode: {:?}", TlsMode::SharedPerWorker)),
        "{stdout}"
    );
    assert_eq!(
        stderr.matches("share their worker's thread-locals").count(),
        1,
        "{stderr}"
    );
    if cfg!(target_arch = "x86_64") && per_green_mode() {
        let out = run_child(
            "the_mode_is_said_once_and_can_be_queried",
            &[("HILOS_TLS", "arch_prctl")],
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success());
        assert!(
            stdout.contains(&format!("mode: {:?}", TlsMode::PerThreadSyscall)),
            "{stdout}"
        );
    }
}
