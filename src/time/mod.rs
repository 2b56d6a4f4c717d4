//! Per-worker timers: the deadlines of the green threads pinned to one worker.
//!
//! # The problem
//! A million sleeping green threads must not cost a million kernel timers, and a timer must never
//! wake a thread that has since been woken and is waiting on something else.
//!
//! # The design
//! Each worker owns one binary heap of `(deadline, wait number, thread)`; only that worker touches
//! it (a thread waits only on its own home worker, so no lock is needed). The worker's idle sleep
//! uses the earliest deadline as its timeout, so one kernel wait serves every timer of the worker.
//! A thread that is woken early leaves its entry in the heap: the entry carries the wait number
//! (`Green::wait_gen`) it was made for, and is ignored when it fires if the thread has moved on
//! (lazy deletion). Left at that, early-ended waits with far deadlines piled up until their
//! deadlines: 5,000,000 `park_timeout(1 h)` woken early by `unpark` held 195 MB for an hour,
//! and each entry kept its thread's control block (with the closure's captures) alive. So the
//! worker counts the timed waits that ended early ([`Timers::ended_early`]), and once they are at
//! least [`COMPACT_MIN`] and half the heap, the entries whose wait has ended are dropped (a linear
//! pass and a rebuild, which removes at least half the heap: O(1) amortised per ended wait) and
//! the heap's memory shrinks with it. So the heap holds at most about twice its live entries (or
//! [`COMPACT_MIN`] stale ones), whether or not more timers come. An entry is live while its
//! thread's wait number is still the entry's and the thread still waits (`wait_on` is not
//! `WAIT_NONE`): every thread with an entry here is pinned to this worker, which alone reads and
//! writes those fields.
//!
//! Rejected: a hashed timer wheel (cheaper inserts but a tick, i.e. periodic wake-ups, and coarse
//! deadlines); cancelling entries eagerly (needs an index per thread kept in step with the heap's
//! moves, more memory per sleeper and work on every early wake-up).

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::task::{TaskRef, WAIT_NONE};

/// Fewest ended waits worth a compaction.
const COMPACT_MIN: usize = 64;

struct Entry {
    deadline: Instant,
    seq: u64,
    wait_no: u64,
    task: TaskRef,
}

impl Entry {
    /// Whether the entry's wait is still on: its thread's wait number is still the entry's and
    /// the thread still waits (module doc). Home worker only.
    fn live(&self) -> bool {
        let g = self
            .task
            .green()
            .expect("hilos: a timer for a kernel thread");
        g.wait_gen.get() == self.wait_no && g.wait_on.get() != WAIT_NONE
    }
}

impl PartialEq for Entry {
    fn eq(&self, o: &Entry) -> bool {
        self.deadline == o.deadline && self.seq == o.seq
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Entry) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    // Reversed: BinaryHeap is a max-heap and we want the earliest deadline (then the oldest) on top.
    fn cmp(&self, o: &Entry) -> Ordering {
        o.deadline
            .cmp(&self.deadline)
            .then_with(|| o.seq.cmp(&self.seq))
    }
}

/// The timers of one worker.
pub(crate) struct Timers {
    heap: BinaryHeap<Entry>,
    seq: u64,
    /// Entries whose wait ended early, as far as the worker knows (an estimate: never fewer than
    /// the heap holds, reset by each compaction).
    stale: usize,
}

impl Timers {
    pub(crate) fn new() -> Timers {
        Timers {
            heap: BinaryHeap::new(),
            seq: 0,
            stale: 0,
        }
    }

    /// Wakes `task` at `deadline` unless its wait number has moved past `wait_no` by then.
    pub(crate) fn push(&mut self, deadline: Instant, wait_no: u64, task: TaskRef) {
        self.seq += 1;
        self.heap.push(Entry {
            deadline,
            seq: self.seq,
            wait_no,
            task,
        });
    }

    /// Notes that a timed wait with an entry here ended before its deadline; compacts the heap
    /// once such entries are many (module doc).
    pub(crate) fn ended_early(&mut self) {
        self.stale += 1;
        if self.stale >= COMPACT_MIN && 2 * self.stale >= self.heap.len() {
            self.compact();
        }
    }

    /// Drops the entries whose wait has ended (module doc), and the memory they took.
    fn compact(&mut self) {
        self.heap.retain(Entry::live);
        self.stale = 0;
        let keep = (2 * self.heap.len()).max(COMPACT_MIN);
        if self.heap.capacity() > 2 * keep {
            self.heap.shrink_to(keep);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|e| e.deadline)
    }

    /// The thread of the next entry due at `now` whose wait has not ended (the entries of ended
    /// waits that come due are dropped on the way).
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<TaskRef> {
        loop {
            if self.heap.peek()?.deadline > now {
                return None;
            }
            let e = self.heap.pop()?;
            if e.live() {
                return Some(e.task);
            }
            self.stale = self.stale.saturating_sub(1);
        }
    }
}
