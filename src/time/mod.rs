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
//! (lazy deletion; the entry keeps only the thread's control block alive, not its stack).
//!
//! Rejected: a hashed timer wheel (cheaper inserts but a tick, i.e. periodic wake-ups, and coarse
//! deadlines); cancelling entries eagerly (needs an index per thread, more memory per sleeper).

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::task::TaskRef;

struct Entry {
    deadline: Instant,
    seq: u64,
    wait_no: u64,
    task: TaskRef,
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
}

impl Timers {
    pub(crate) fn new() -> Timers {
        Timers {
            heap: BinaryHeap::new(),
            seq: 0,
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

    pub(crate) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|e| e.deadline)
    }

    /// The next entry due at `now`, as `(wait number, thread)`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(u64, TaskRef)> {
        if self.heap.peek()?.deadline > now {
            return None;
        }
        self.heap.pop().map(|e| (e.wait_no, e.task))
    }
}
