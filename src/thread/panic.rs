//! Panic messages that name the green thread.
//!
//! # The problem
//! std's default panic hook names the panicking thread from std's own `thread::current()`. On a
//! green thread that is not hilos's thread: with per-green-thread thread-locals it is a handle std
//! made lazily, with no name (`thread '<unnamed>' panicked`); with thread-locals shared with the
//! worker it is the worker (`thread 'hilos-worker-0' panicked`). Either way a green thread named
//! `conn-42` cannot be recognised in its own panic message.
//!
//! # Alternatives rejected
//! - Naming std's per-green-thread `Thread` handle: std has no public way to name a handle it
//!   creates, and writing into std's private thread-local layout would break with any std release.
//! - Wrapping the hook when a runtime starts: by then the program may have installed a hook of its
//!   own, and std offers no way to tell a user's hook from its default one. Wrapping a user's hook
//!   and printing hilos's message instead of calling it would take the user's hook out of charge;
//!   always calling it would keep the wrong name whenever the hook was std's default.
//!
//! # The design
//! hilos installs its hook *before `main`*, from an `.init_array` entry of the crate: no user code
//! has run yet, so the hook it replaces is known to be std's default. hilos's hook:
//! - off green threads, calls std's default hook (std's message, unchanged);
//! - on a green thread, prints what std's default hook prints, in its format, with hilos's name
//!   (`<unnamed>` for an unnamed thread) and hilos's thread id where std puts the kernel
//!   thread's id: `thread 'conn-42' (hilos 17) panicked at src/main.rs:5:9:`, then the message,
//!   then the backtrace as `RUST_BACKTRACE` asks (`0` or unset: the one-time note; `full`: every
//!   frame; anything else: the short form).
//!
//! A program that installs a hook of its own with `std::panic::set_hook` replaces hilos's, as it
//! would replace std's default: its hook is in charge, whether it was installed before or after
//! a runtime started. A hook that chains to the previous one (`take_hook`, then `set_hook` with a
//! closure calling it) chains to hilos's, and so still gets green threads named.
//!
//! Where the `.init_array` entry does not run (a platform whose loader ignores it), nothing is
//! installed and green threads' panics read as std names them.

use std::io::Write;
use std::panic::{self, PanicHookInfo};
use std::sync::atomic::{AtomicBool, Ordering};

/// Runs [`install`] before `main`, when the dynamic loader runs the executable's initialisers.
#[used]
#[unsafe(link_section = ".init_array")]
static INSTALL: extern "C" fn() = install;

/// Whether a green thread's panic already printed the "run with `RUST_BACKTRACE=1`" note.
static NOTE_PRINTED: AtomicBool = AtomicBool::new(false);

/// Replaces std's default hook (the one in place before `main`) with [`green_aware`].
extern "C" fn install() {
    // A panic must not unwind out of an `extern "C"` function: `take_hook` only panics when
    // called while panicking, which cannot be the case before `main`.
    let default = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if !green_aware(info) {
            default(info);
        }
    }));
}

/// On a green thread, prints std's panic message with hilos's thread name and returns `true`;
/// elsewhere returns `false` (std's default hook then prints).
fn green_aware(info: &PanicHookInfo<'_>) -> bool {
    let Some(cur) = crate::task::current_green() else {
        return false;
    };
    // SAFETY: the running green thread's header is alive while it runs.
    let h = unsafe { cur.as_ref() };
    let name = h.name().unwrap_or("<unnamed>");
    let payload = info.payload();
    let msg = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("Box<dyn Any>");
    let mut out = String::new();
    use std::fmt::Write as _;
    let _ = write!(
        out,
        "\nthread '{name}' (hilos {}) panicked",
        h.id().as_u64()
    );
    if let Some(loc) = info.location() {
        let _ = write!(out, " at {loc}");
    }
    let _ = writeln!(out, ":\n{msg}");
    match std::env::var("RUST_BACKTRACE").as_deref() {
        Err(_) | Ok("0") => {
            if !NOTE_PRINTED.swap(true, Ordering::Relaxed) {
                out.push_str(
                    "note: run with `RUST_BACKTRACE=1` environment variable to display a \
                     backtrace\n",
                );
            }
        }
        Ok(style) => {
            let bt = std::backtrace::Backtrace::force_capture();
            if style == "full" {
                let _ = write!(out, "stack backtrace:\n{bt:#}");
            } else {
                let _ = write!(
                    out,
                    "stack backtrace:\n{}note: Some details are omitted, run with \
                     `RUST_BACKTRACE=full` for a verbose backtrace.\n",
                    short_backtrace(&bt.to_string())
                );
            }
        }
    }
    // One write, as std's hook does, so that two panicking threads' messages do not interleave.
    let _ = std::io::stderr().write_all(out.as_bytes());
    true
}

/// std's short form of a backtrace printed by `Backtrace`'s `Display`: the frames between the
/// panic machinery (up to `__rust_end_short_backtrace`, which includes this hook) and
/// `__rust_begin_short_backtrace`, renumbered from 0.
fn short_backtrace(full: &str) -> String {
    // A frame is its "  N: symbol" line and the "at file:line" lines after it.
    let mut frames: Vec<Vec<&str>> = Vec::new();
    for line in full.lines() {
        let t = line.trim_start();
        let starts_frame = t
            .split_once(": ")
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        match frames.last_mut() {
            Some(f) if !starts_frame => f.push(line),
            _ => frames.push(vec![line]),
        }
    }
    let has = |f: &Vec<&str>, s: &str| f.first().is_some_and(|l| l.contains(s));
    let start = frames
        .iter()
        .rposition(|f| has(f, "__rust_end_short_backtrace"))
        .map_or(0, |i| i + 1);
    let mut out = String::new();
    for (n, f) in frames[start..]
        .iter()
        .take_while(|f| !has(f, "__rust_begin_short_backtrace"))
        .enumerate()
    {
        let (_, rest) = f[0].trim_start().split_once(": ").unwrap_or(("", f[0]));
        out.push_str(&format!("{n:4}: {rest}\n"));
        for l in &f[1..] {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}
