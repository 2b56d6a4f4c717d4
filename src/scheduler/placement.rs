//! Placement: on which worker a fresh green thread starts, and so stays.
//!
//! A fresh thread normally goes to its spawner's own deque, so that
//! `spawn(f).join()` runs the child on the joiner's worker (about 150 ns; on another worker each
//! join would be a cross-worker wake-up of microseconds). But a spawner that spawns and carries
//! on, such as an accept loop, would then pin nearly all its children to its own worker: it
//! parks (in `accept`) right after each spawn, its worker runs the child at once, and the other
//! workers, asleep, are never asked to steal. Such children live long (connections), so how
//! they are spread at their first run decides the load for good. The rule: a green thread that
//! has spawned more than [`SPREAD_AFTER`] bursts of threads without joining one
//! (`Green::spawned`, reset by every join) has each further child placed on the worker holding
//! fewest threads, if that one holds more than [`SPREAD_SLACK`] fewer than its own: the child
//! goes to that worker's inbox, which runs and pins it there. A burst is a run of spawns with no
//! switch of the spawner's worker between them (`Green::spawn_tick` holds the worker's switch
//! count at the last spawn): what matters is whether the worker ran something else, such as the
//! last child, between two spawns. An accept loop parks between two spawns, so each of its
//! spawns is a burst; a skynet node spawns its 10 children in one burst and then blocks for their
//! results, and a spawn burst (spawn N, then join each) is one burst too: their children stay in
//! the spawner's deque, run newest first there (`scheduler`, "Fresh threads"), and idle workers
//! steal the oldest half. (Counting every spawn, as before, placed skynet's 5th to 10th children
//! of every node on the other worker's inbox: a cross-worker push, and often a wake-up, per
//! spawn, and those children ran in the inbox's FIFO order, breadth-first.) A worker's load
//! (`Load`) counts the threads pinned to it and not exited (written by the worker alone, at first
//! run and exit: no locked instruction on the spawn path) plus the threads placed on it and not
//! yet run (so that a burst of spawns does not all go to the worker that was lightest before it
//! started). Otherwise, or if no worker is lighter, the child goes to the spawner's deque as
//! before. Rejected: round-robin over the workers once spreading (blind to threads' exits, and to
//! load placed by other spawners); waking an idle worker at every spawn to steal (a cross-worker
//! wake-up per spawn, and a race that the spawner's worker, already awake, mostly wins);
//! migrating a thread at its first park (unsound, DESIGN-NOTES section 1). Load is not CPU time:
//! a worker busy with one thread that never parks still gets its share of the placed children.

use std::sync::atomic::Ordering;

use super::Shared;
use crate::park::local::Local;
use crate::task::{Header, TaskRef};

/// A green thread that has spawned this many bursts of threads without joining one may have its
/// next spawns placed on another worker...
const SPREAD_AFTER: u32 = 4;
/// ...when that worker holds more than this many threads fewer than the spawner's.
const SPREAD_SLACK: usize = 4;

impl Shared {
    /// Counts a spawn by the green thread running on `w` and, if that thread spawns and carries
    /// on (module doc), places the fresh thread `t` on a lighter worker. Gives `t` back if it was
    /// not placed.
    #[inline]
    pub(super) fn place_if_spreading(&self, w: &Local, t: TaskRef) -> Option<TaskRef> {
        // SAFETY: a non-null `current` is the green thread running this code, alive while it
        // runs; its `spawned` cell is touched only by itself.
        if let Some(g) = unsafe { w.current.as_ref() }.and_then(Header::green) {
            // Spawns with no switch of the worker between them are one burst, counted once.
            let mut n = g.spawned.get();
            if n == 0 || g.spawn_tick.get() != w.tick {
                g.spawn_tick.set(w.tick);
                n = n.saturating_add(1);
                g.spawned.set(n);
            }
            if n > SPREAD_AFTER
                && let Some(i) = self.lighter_worker(w.index)
            {
                self.place(i, t);
                return None;
            }
        }
        Some(t)
    }

    /// Another worker holding more than [`SPREAD_SLACK`] threads fewer than worker `me`, the
    /// one holding fewest, if any.
    fn lighter_worker(&self, me: usize) -> Option<usize> {
        let mine = self.workers[me].home.load.get();
        if mine <= SPREAD_SLACK {
            return None;
        }
        let (i, least) = self
            .workers
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != me)
            .map(|(i, w)| (i, w.home.load.get()))
            .min_by_key(|&(_, l)| l)?;
        (least + SPREAD_SLACK < mine).then_some(i)
    }

    /// Places the fresh thread `t` on worker `i`'s inbox: `i` runs it and pins it (module doc,
    /// "Placement").
    #[cold]
    fn place(&self, i: usize, t: TaskRef) {
        let g = t.green().expect("hilos: spawned a kernel thread");
        // The thread has not run and we hold its only scheduling reference: its cells are ours
        // until the inbox push hands it over (Release, paired with the owner's Acquire drain).
        g.placed.set(true);
        // Counted before the push, so the owner's subtraction at the first run comes after it.
        self.workers[i]
            .home
            .load
            .placed
            .fetch_add(1, Ordering::Relaxed);
        self.workers[i].home.push_remote(t);
    }
}
