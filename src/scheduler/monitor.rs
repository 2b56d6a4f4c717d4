//! The monitor: a kernel thread per runtime (with several workers, or with the watchdog on) that
//! wakes a sleeping worker when a busy one sits on threads nobody is taking, and runs the
//! watchdog's looks (`watchdog`).
//!
//! # The problem
//! A spawn puts the fresh thread on the spawner's own deque and wakes a sleeping worker only if
//! the spawner already had queued work (module doc of the scheduler): a futex or eventfd wake-up
//! per spawn would cost microseconds, and `spawn(f).join()` would then mostly run `f` on another
//! worker. But `let h = spawn(heavy); other_heavy(); h.join()` must run both halves in parallel,
//! as std threads and goroutines do. Without help the child waits on the deque until the spawner
//! switches away, while the other workers sleep: measured, two 100 ms computations took 200 ms on
//! two workers.
//!
//! # Alternatives rejected
//! - Waking a sleeper at every spawn (Go's `wakep`): a system call per spawn, and the woken
//!   worker then steals most `spawn(f).join()` children, making each join a cross-worker wake-up.
//! - Sleepers that time out and look again while another worker is awake: a worker that went to
//!   sleep while every other one slept has no reason to, and waking the others on each "first
//!   worker awake again" transition costs a system call there (per message of a ping-pong across
//!   workers).
//! - Preempting the spawner: there is no preemption in hilos.
//!
//! # The design
//! Every worker publishes a progress counter, its switch count, at each pass through its scheduler
//! loop, which it makes at least every 61 switches (a plain store to a line of its own, off the
//! direct green-to-green path). The monitor looks at every worker each `interval`: a worker whose
//! stealable deque held threads at two looks in a row with no published progress in between is
//! stuck running one thread (or switching rarely, in which case another worker stealing is welcome
//! too). If a worker sleeps and none is spinning, the monitor wakes one, which steals. The
//! interval starts at [`MIN_INTERVAL`] and doubles up to [`MAX_INTERVAL`] while there is nothing to
//! do; a wake-up resets it. `spawn(f).join()` loops are never touched: their worker switches all
//! the time. When every worker has slept through [`PARK_AFTER`] looks in a row, the monitor parks
//! itself (no timer left running in an idle process); the first worker to leave its sleep after
//! that unparks it.
//!
//! Cost, measured on the 2-core development VM during a spawn+join loop (the runtime busy, so the
//! monitor at its longest interval): about 475 looks a second and 1% of one core (40 ms of CPU in
//! 4 s, from `/proc`). A longer maximum interval would cost less and delay a busy spawner's child
//! more (two 100 ms halves took 112-116 ms with a 10 ms maximum, 100.3-102.6 ms with 2 ms).
//!
//! # Orderings
//! Parking is a store-buffering pair: the monitor stores `parked` and then reads the idle count;
//! a worker leaving its sleep decrements the idle count and then reads `parked`; both with a
//! `SeqCst` fence between, so either the monitor sees a worker awake (and does not park) or the
//! worker sees `parked` (and unparks it). A missed look costs only parallelism, never a lost
//! wake-up of a green thread: those have their own protocols.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::time::Duration;

use super::Shared;

/// First interval between looks, and the one after a wake-up.
const MIN_INTERVAL: Duration = Duration::from_micros(20);
/// Longest interval between looks while any worker is awake.
const MAX_INTERVAL: Duration = Duration::from_millis(2);
/// Looks in a row with every worker asleep after which the monitor parks.
const PARK_AFTER: u32 = 8;

/// The monitor's handle in the runtime's shared state.
pub(crate) struct Monitor {
    /// The monitor's kernel thread, once started.
    thread: OnceLock<std::thread::Thread>,
    /// The monitor is parked (or about to be) until a worker wakes up.
    parked: AtomicBool,
}

impl Monitor {
    pub(crate) const fn new() -> Monitor {
        Monitor {
            thread: OnceLock::new(),
            parked: AtomicBool::new(false),
        }
    }

    /// Unparks the monitor if it parked; called by a worker that just left its sleep (after
    /// making that visible: see the module doc), and at shutdown.
    pub(crate) fn worker_woke(&self) {
        fence(Ordering::SeqCst);
        if self.parked.load(Ordering::Relaxed) && self.parked.swap(false, Ordering::Relaxed) {
            self.unpark();
        }
    }

    /// Makes the monitor look now (shutdown).
    pub(crate) fn unpark(&self) {
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }
}

/// Starts the monitor of `shared` (a runtime with several workers); it returns once the runtime
/// is done.
pub(crate) fn start(
    shared: std::sync::Arc<Shared>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let s = shared.clone();
    let h = std::thread::Builder::new()
        .name("hilos-monitor".into())
        .spawn(move || run(&s))?;
    let _ = shared.monitor.thread.set(h.thread().clone());
    Ok(h)
}

fn run(shared: &Shared) {
    let n = shared.workers.len();
    let mut watchdog = shared
        .watchdog
        .map(|t| super::watchdog::Watchdog::new(t, n));
    // Per worker: the progress counter and whether its deque held threads, at the last look.
    let mut last: Vec<(u32, bool)> = vec![(0, false); n];
    let mut interval = MIN_INTERVAL;
    let mut asleep_looks = 0u32;
    while !shared.is_done() {
        std::thread::park_timeout(interval);
        if let Some(w) = &mut watchdog {
            w.look(shared);
        }
        let mut stuck = false;
        for (w, seen) in shared.workers.iter().zip(last.iter_mut()) {
            let now = (
                w.home.load.progress.load(Ordering::Relaxed),
                !w.stealer.is_empty(),
            );
            stuck |= now.1 && seen.1 && now.0 == seen.0;
            *seen = now;
        }
        let idle = shared.num_idle.load(Ordering::Relaxed);
        if stuck && idle > 0 && shared.spinning.load(Ordering::Relaxed) == 0 {
            shared.wake_idle();
            interval = MIN_INTERVAL;
        } else {
            interval = (interval * 2).min(MAX_INTERVAL);
        }
        asleep_looks = if idle == n { asleep_looks + 1 } else { 0 };
        if asleep_looks >= PARK_AFTER {
            shared.monitor.parked.store(true, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            if shared.num_idle.load(Ordering::Relaxed) == n && !shared.is_done() {
                // Unparked by a worker leaving its sleep, or at shutdown. A spurious return is
                // harmless: the loop looks and parks again.
                std::thread::park();
            }
            shared.monitor.parked.store(false, Ordering::Relaxed);
            asleep_looks = 0;
            interval = MIN_INTERVAL;
        }
    }
}
