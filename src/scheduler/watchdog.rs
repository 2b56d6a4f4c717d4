//! The watchdog: names a green thread that holds its worker too long while other green threads
//! of that worker wait, once per episode, on stderr.
//!
//! # The problem
//! A green thread that blocks in a call hilos did not write (`std::thread::sleep`, `std::net`, a
//! std `Mutex`, a C library) or computes for long stalls every other green thread of its worker,
//! silently: hilos has no preemption. Users need to be told which thread, for how long, and in
//! what.
//!
//! # The design
//! The monitor thread (`monitor`), which every runtime with the watchdog on now has, calls
//! [`Watchdog::look`] at most every [`LOOK_EVERY`]. A worker is making progress if the green
//! thread it runs changed (`task::watch` records each switch into one), or its switch count
//! (published at every pass through its scheduler loop, at least every 61 switches), or its spawn
//! count (a spawner that spawns without switching is working, not stuck) changed since the last
//! look, or if it sleeps. (The switch count alone moved too rarely: a contended lock handing
//! itself over every half millisecond makes 61 switches in 30 ms or more, and the harness's mutex
//! rows drew false reports.) Otherwise, if another green thread is pinned or
//! placed on it or its deque holds fresh threads, and the same state has lasted the threshold
//! (100 ms by default; `runtime::Builder::watchdog`, `HILOS_WATCHDOG_MS`), the watchdog prints one
//! line: the green thread's id and name (read safely: `task::watch`), how long, and the system
//! call its worker's kernel thread is in (`/proc/self/task/TID/syscall`), with a hint. Then
//! nothing more until that worker makes progress again (one line per episode).
//!
//! Two kinds of stall are not the running green thread's doing, and are told apart by what the
//! worker's kernel thread did meanwhile (`/proc/self/task/TID/schedstat` and `stat`: time on a
//! CPU, time waiting for one, user and system time):
//! - the machine does not run the worker (an overloaded machine): it waited for a CPU;
//! - the kernel keeps the worker busy inside a system call that does not block, such as a
//!   non-blocking `send` on loopback that runs the receiving side's network processing, or the
//!   driver's `io_uring_enter` doing the same for a batch (seen in the harness at 1,000 and 10,000
//!   connections on a loaded machine: 100-111 ms inside `send`): it ran, mostly in the kernel.
//!
//! So once an episode has lasted half the threshold, the watchdog reads those figures, and when
//! the threshold is reached (and at least 50 ms later: user and system time come in 10 ms clock
//! ticks) it reports only if, since then, the worker slept in the kernel over half the time (a
//! blocking call), or ran at least as long as it waited for a CPU, mostly in user space (a long
//! computation); otherwise it starts that window again. The price: a system call that keeps the CPU busy in the
//! kernel for long (reading a large file from the page cache) is not named.
//!
//! "Other green threads are runnable" is approximated by "other green threads are on the
//! worker": a thread parked with no deadline counts too. A worker's run queue and timers are its
//! own, and reading them from here would cost the hot paths; the approximation errs towards
//! speaking when a thread holds a worker that has others to serve.
//!
//! Cost: nothing on the switch path beyond the stores of `task::watch`; the looks run on the
//! monitor's thread (a few loads per worker every 10 ms while a worker is awake).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Shared;

/// Longest time between two looks at the workers.
pub(crate) const LOOK_EVERY: Duration = Duration::from_millis(10);

/// The default threshold.
pub(crate) const DEFAULT_THRESHOLD: Duration = Duration::from_millis(100);

/// The threshold from `HILOS_WATCHDOG_MS` (0: off), or the default.
pub(crate) fn threshold_from_env() -> Option<Duration> {
    match std::env::var("HILOS_WATCHDOG_MS") {
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(0) => None,
            Ok(ms) => Some(Duration::from_millis(ms)),
            Err(_) => {
                eprintln!("hilos: HILOS_WATCHDOG_MS={v:?} is not a number of milliseconds");
                Some(DEFAULT_THRESHOLD)
            }
        },
        Err(_) => Some(DEFAULT_THRESHOLD),
    }
}

/// What the watchdog saw of one worker at its last look.
#[derive(Clone, Copy)]
struct Seen {
    progress: u32,
    spawns: u64,
    running: usize,
    /// Since when the worker has shown no progress.
    since: Instant,
    /// This episode was reported.
    reported: bool,
    /// When the worker's CPU times were last read in this episode, and what they were (`None`
    /// where Linux does not tell: the episode is then reported at the threshold, unjudged).
    probe: Option<(Instant, Option<CpuTimes>)>,
}

/// The watchdog's state, kept by the monitor thread.
pub(crate) struct Watchdog {
    threshold: Duration,
    last_look: Instant,
    seen: Vec<Seen>,
}

impl Watchdog {
    pub(crate) fn new(threshold: Duration, workers: usize) -> Watchdog {
        // Before the first read: the exits' side of the read protocol gets cheaper once the
        // process is registered (`task::watch`).
        crate::task::watch::asymmetric();
        let now = Instant::now();
        let seen = Seen {
            progress: 0,
            spawns: 0,
            running: 0,
            since: now,
            reported: false,
            probe: None,
        };
        Watchdog {
            threshold,
            last_look: now,
            seen: vec![seen; workers],
        }
    }

    /// Looks at the workers if [`LOOK_EVERY`] has passed; reports new stalls.
    pub(crate) fn look(&mut self, shared: &Shared) {
        let now = Instant::now();
        if now.duration_since(self.last_look) < LOOK_EVERY {
            return;
        }
        self.last_look = now;
        for (index, (w, seen)) in shared.workers.iter().zip(self.seen.iter_mut()).enumerate() {
            let progress = w.home.load.progress.load(Ordering::Relaxed);
            let spawns = w.home.watch.spawns();
            let running = w.home.watch.running_addr();
            let asleep = w.home.sleeping.load(Ordering::Relaxed);
            if asleep
                || progress != seen.progress
                || spawns != seen.spawns
                || running != seen.running
            {
                *seen = Seen {
                    progress,
                    spawns,
                    running,
                    since: now,
                    reported: false,
                    probe: None,
                };
                continue;
            }
            let held = now.duration_since(seen.since);
            let others = w.home.load.get() > 1 || !w.stealer.is_empty();
            if seen.reported || !others || held < self.threshold / 2 {
                continue;
            }
            let tid = w.home.watch.tid.load(Ordering::Relaxed);
            let Some((at, before)) = seen.probe else {
                seen.probe = Some((now, CpuTimes::of(tid)));
                continue;
            };
            // Judged over at least 50 ms: user and system time come in 10 ms clock ticks.
            let judge_after = (self.threshold / 2).max(Duration::from_millis(50));
            if held < self.threshold || (before.is_some() && now.duration_since(at) < judge_after) {
                continue;
            }
            if let (Some(before), Some(c)) = (before, CpuTimes::of(tid)) {
                let window = now.duration_since(at).as_nanos() as u64;
                let waited = c.wait_ns.saturating_sub(before.wait_ns);
                let ran = c.run_ns.saturating_sub(before.run_ns);
                let user = c.user_ticks.saturating_sub(before.user_ticks);
                let system = c.system_ticks.saturating_sub(before.system_ticks);
                // Neither running nor waiting for a CPU: asleep in the kernel.
                let asleep = window.saturating_sub(ran + waited);
                let computing = ran >= waited && user > 0 && user >= system;
                if asleep <= window / 2 && !computing {
                    // Starved of CPU, or busy in the kernel: look again over a new window.
                    seen.probe = Some((now, Some(c)));
                    continue;
                }
            }
            seen.reported = true;
            let Some(running) = w.home.watch.read_running() else {
                continue;
            };
            let mut line = format!("hilos: green thread {}", running.id.as_u64());
            if let Some(name) = &running.name {
                let _ = write!(line, " '{name}'");
            }
            let _ = write!(
                line,
                " has held worker {index} for {} ms while other green threads wait",
                held.as_millis()
            );
            match blocked_in(tid) {
                Some(call) => {
                    let _ = write!(line, ", blocked in system call `{call}`");
                }
                None => line.push_str(" (running in user space)"),
            }
            line.push_str(
                "; a blocking call hilos did not write? Use hilos's own types, \
                 hilos::unblock(|| ...), or the `hook` feature",
            );
            eprintln!("{line}");
        }
    }
}

/// What a kernel thread of this process has done so far, as Linux accounts it.
#[derive(Clone, Copy)]
struct CpuTimes {
    /// On a CPU (ns; `schedstat`).
    run_ns: u64,
    /// Runnable, waiting for a CPU (ns; `schedstat`).
    wait_ns: u64,
    /// In user space and in the kernel (clock ticks; `stat`).
    user_ticks: u64,
    system_ticks: u64,
}

impl CpuTimes {
    /// The figures of the kernel thread `tid` of this process; `None` where Linux does not
    /// tell.
    fn of(tid: i32) -> Option<CpuTimes> {
        if tid == 0 {
            return None;
        }
        let sched = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
        let mut s = sched.split_whitespace().map(|v| v.parse::<u64>().ok());
        let (run_ns, wait_ns) = (s.next()??, s.next()??);
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
        // The fields after the command name (which may hold spaces) start after its ')':
        // state first, utime and stime 12th and 13th.
        let mut f = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
        let user_ticks = f.next()?.parse().ok()?;
        let system_ticks = f.next()?.parse().ok()?;
        Some(CpuTimes {
            run_ns,
            wait_ns,
            user_ticks,
            system_ticks,
        })
    }
}

/// The system call the kernel thread `tid` of this process is in, from
/// `/proc/self/task/TID/syscall`, by name where known: `None` if it is running in user space
/// (or Linux does not tell).
fn blocked_in(tid: i32) -> Option<String> {
    if tid == 0 {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")).ok()?;
    let first = text.split_whitespace().next()?;
    let nr: libc::c_long = first.parse().ok()?;
    Some(syscall_name(nr).map_or_else(|| format!("#{nr}"), str::to_owned))
}

/// Names of the system calls a stalled worker is most often found in.
fn syscall_name(nr: libc::c_long) -> Option<&'static str> {
    let known: &[(libc::c_long, &str)] = &[
        (libc::SYS_read, "read"),
        (libc::SYS_write, "write"),
        (libc::SYS_readv, "readv"),
        (libc::SYS_writev, "writev"),
        (libc::SYS_pread64, "pread64"),
        (libc::SYS_pwrite64, "pwrite64"),
        (libc::SYS_recvfrom, "recvfrom"),
        (libc::SYS_sendto, "sendto"),
        (libc::SYS_recvmsg, "recvmsg"),
        (libc::SYS_sendmsg, "sendmsg"),
        (libc::SYS_accept4, "accept4"),
        (libc::SYS_connect, "connect"),
        (libc::SYS_ppoll, "ppoll"),
        (libc::SYS_pselect6, "pselect6"),
        (libc::SYS_epoll_pwait, "epoll_pwait"),
        (libc::SYS_futex, "futex"),
        (libc::SYS_nanosleep, "nanosleep"),
        (libc::SYS_clock_nanosleep, "clock_nanosleep"),
        (libc::SYS_wait4, "wait4"),
        (libc::SYS_waitid, "waitid"),
        (libc::SYS_flock, "flock"),
        (libc::SYS_fsync, "fsync"),
        (libc::SYS_openat, "openat"),
        #[cfg(target_arch = "x86_64")]
        (libc::SYS_poll, "poll"),
        #[cfg(target_arch = "x86_64")]
        (libc::SYS_select, "select"),
        #[cfg(target_arch = "x86_64")]
        (libc::SYS_accept, "accept"),
        #[cfg(target_arch = "x86_64")]
        (libc::SYS_epoll_wait, "epoll_wait"),
    ];
    known.iter().find(|(n, _)| *n == nr).map(|(_, name)| *name)
}
