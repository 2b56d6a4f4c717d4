//! The standard streams as std's: `Stdin::{read_line, lines, lock}` over one shared buffer,
//! `Stdout::lock`/`Stderr::lock` reentrant per green thread, `is_terminal`. Each case runs in a
//! child process whose standard streams the test owns, on a green thread of a 1-worker runtime
//! (where anything blocking the worker would hang) and on a plain kernel thread.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::{is_child, one_worker, self_command, within};

/// Starts this binary again running only `test`, with piped standard streams.
fn child(test: &str, on_green: bool) -> Child {
    self_command()
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("HILOS_TEST_CHILD", "1")
        .env("ON_GREEN", if on_green { "1" } else { "0" })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// In a child: runs `f` on a green thread of a 1-worker runtime, or on this kernel thread.
fn in_child(f: fn()) {
    if std::env::var("ON_GREEN").as_deref() == Ok("1") {
        one_worker().block_on(f);
    } else {
        f();
    }
}

/// Waits for the child and fails with its standard error if it failed.
fn check(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "child failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Reads by `read`, `read_line`, `lock().read_line` and `lines` in turn: nothing is lost between
/// them, since they share one buffer.
fn mixed_reads() {
    let stdin = hilos::io::stdin();
    let mut two = [0u8; 2];
    (&stdin).read_exact(&mut two).unwrap();
    assert_eq!(&two, b"ab");
    let mut line = String::new();
    assert_eq!(stdin.read_line(&mut line).unwrap(), 2);
    assert_eq!(line, "c\n");
    line.clear();
    stdin.lock().read_line(&mut line).unwrap();
    assert_eq!(line, "def\n");
    let rest: Vec<String> = stdin.lines().map(Result::unwrap).collect();
    assert_eq!(rest, ["g", "h"]);
    // At the end of input: 0 bytes, as std's.
    line.clear();
    assert_eq!(hilos::io::stdin().read_line(&mut line).unwrap(), 0);
}

#[test]
fn stdin_reads_share_one_buffer() {
    if is_child() {
        return in_child(mixed_reads);
    }
    for on_green in [true, false] {
        let mut c = child("stdin_reads_share_one_buffer", on_green);
        c.stdin
            .take()
            .unwrap()
            .write_all(b"abc\ndef\ng\nh\n")
            .unwrap();
        check(c);
    }
}

/// A green thread waiting in `read_line` parks only itself: its sibling on the same worker runs
/// and asks the parent (through standard output) for the line the reader waits for.
fn reader_parks_only_itself() {
    static SIBLING_RAN: AtomicBool = AtomicBool::new(false);
    let sibling = hilos::spawn(|| {
        hilos::thread::sleep(std::time::Duration::from_millis(20));
        SIBLING_RAN.store(true, Ordering::SeqCst);
        writeln!(hilos::io::stdout(), "send").unwrap();
    });
    let mut line = String::new();
    hilos::io::stdin().read_line(&mut line).unwrap();
    assert_eq!(line, "second\n");
    assert!(SIBLING_RAN.load(Ordering::SeqCst));
    sibling.join().unwrap();
}

#[test]
fn a_green_thread_waiting_for_stdin_parks_only_itself() {
    if is_child() {
        return in_child(reader_parks_only_itself);
    }
    within(60, || {
        let mut c = child("a_green_thread_waiting_for_stdin_parks_only_itself", true);
        let mut out = BufReader::new(c.stdout.take().unwrap());
        let mut line = String::new();
        // The child's sibling writes "send" (after libtest's "test ... " prefix) only if it
        // runs while the reader waits.
        while !line.trim_end().ends_with("send") {
            line.clear();
            assert_ne!(out.read_line(&mut line).unwrap(), 0, "child ended early");
        }
        c.stdin.take().unwrap().write_all(b"second\n").unwrap();
        let mut rest = String::new();
        out.read_to_string(&mut rest).unwrap();
        check(c);
    });
}

/// Two green threads of one worker each write 100 pieces under the lock, yielding between
/// pieces (and writing through a second handle, which the same thread may do): their runs come
/// out whole.
fn locked_runs() {
    static STARTED: AtomicUsize = AtomicUsize::new(0);
    let writer = |piece: &'static str| {
        move || {
            let mut out = hilos::io::stdout().lock();
            STARTED.fetch_add(1, Ordering::SeqCst);
            for i in 0..100 {
                if i % 2 == 0 {
                    out.write_all(piece.as_bytes()).unwrap();
                } else {
                    // Reentrant: the same green thread, another handle.
                    write!(hilos::io::stdout(), "{piece}").unwrap();
                }
                hilos::yield_now();
            }
        }
    };
    let a = hilos::spawn(writer("A"));
    let b = hilos::spawn(writer("B"));
    a.join().unwrap();
    b.join().unwrap();
    assert_eq!(STARTED.load(Ordering::SeqCst), 2);
    // Standard error: reentrant as well.
    let mut err = hilos::io::stderr().lock();
    let mut again = hilos::io::stderr().lock();
    writeln!(err, "one").unwrap();
    writeln!(again, "two").unwrap();
}

#[test]
fn stdout_lock_keeps_a_green_threads_writes_together() {
    if is_child() {
        return in_child(locked_runs);
    }
    for on_green in [true, false] {
        let c = child(
            "stdout_lock_keeps_a_green_threads_writes_together",
            on_green,
        );
        let out = check(c);
        let (a, b) = ("A".repeat(100), "B".repeat(100));
        assert!(
            out.contains(&format!("{a}{b}")) || out.contains(&format!("{b}{a}")),
            "runs interleaved: {out:?}"
        );
    }
}

#[test]
fn is_terminal_answers_as_std() {
    let on = |_: ()| {
        (
            hilos::io::stdin().is_terminal(),
            hilos::io::stdout().is_terminal(),
            hilos::io::stderr().is_terminal(),
        )
    };
    use std::io::IsTerminal;
    let std_answer = (
        std::io::stdin().is_terminal(),
        std::io::stdout().is_terminal(),
        std::io::stderr().is_terminal(),
    );
    assert_eq!(on(()), std_answer);
    assert_eq!(one_worker().block_on(move || on(())), std_answer);
}

/// Piped streams are not terminals.
fn not_terminals() {
    assert!(!hilos::io::stdin().is_terminal());
    assert!(!hilos::io::stdout().is_terminal());
    assert!(!hilos::io::stderr().is_terminal());
}

#[test]
fn piped_streams_are_not_terminals() {
    if is_child() {
        return in_child(not_terminals);
    }
    check(child("piped_streams_are_not_terminals", true));
}
