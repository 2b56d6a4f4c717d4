//! Idling: a worker with nothing to run spins a little, then sleeps without losing a wake-up.
//!
//! # Wake-up ordering
//! A worker with nothing to do first spins a little, stealing (at most half the workers spin at
//! once), then announces itself asleep (`Home::sleeping`, the runtime's idle list), issues a
//! `SeqCst` fence, re-checks its inbox, the injector and every deque, and only then sleeps with the
//! earliest timer deadline as timeout, in its I/O driver's wait (`driver`), which its eventfd
//! ends. Producers push, fence, and then look at the announcements:
//! a remote wake-up, or a placed fresh thread, unparks the worker whose inbox it went to if that
//! worker sleeps (the inbox protocol of `task::runq`); a spawn to the spawner's own deque wakes an idle
//! worker if there is
//! more queued work than the spawner itself is about to run and no worker is spinning. Either the
//! producer sees the announcement or the worker's re-check sees the work. A lone spawn therefore
//! wakes nobody (so `spawn(f).join()` stays on one worker); if its spawner then keeps its worker
//! busy without switching, the runtime's monitor thread (`monitor`) notices the untaken thread and
//! wakes a sleeper, within a few milliseconds. A wake-up is a write to
//! the worker's eventfd, made only when the worker announced it sleeps; a write that lands before
//! the worker enters its wait is kept in the eventfd's counter and ends that wait at once.
//!

use std::sync::atomic::{Ordering, fence};
use std::time::{Duration, Instant};

use super::Shared;
use super::worker::Worker;
use crate::driver;
use crate::task::TaskRef;

/// How many rounds an idle worker tries to steal before it sleeps.
const SPIN_ROUNDS: u32 = 64;

impl Shared {
    pub(super) fn wake_idle_if_none_spinning(&self) {
        if self.num_idle.load(Ordering::Relaxed) > 0 && self.spinning.load(Ordering::Relaxed) == 0 {
            self.wake_idle();
        }
    }

    /// Wakes one sleeping worker, if any.
    pub(super) fn wake_idle(&self) {
        if self.num_idle.load(Ordering::Relaxed) == 0 {
            return;
        }
        let i = {
            let mut idle = self.idle.lock();
            let i = idle.pop();
            if i.is_some() {
                self.num_idle.fetch_sub(1, Ordering::Relaxed);
            }
            i
        };
        if let Some(i) = i {
            self.workers[i].home.parker.wake();
        }
    }

    /// Wakes every sleeping worker (shutdown). The callers' `SeqCst` store of the state the
    /// workers re-check, then this fence, pairs with the fence in `Worker::idle`.
    pub(super) fn wake_all(&self) {
        fence(Ordering::SeqCst);
        for w in self.workers.iter() {
            if w.home.sleeping.load(Ordering::Relaxed) {
                w.home.parker.wake();
            }
        }
        self.monitor.unpark();
    }
}

impl Worker {
    /// Nothing to run: spin a little, then sleep until woken or the next timer. Returns work
    /// found while spinning.
    pub(super) fn idle(&mut self) -> Option<TaskRef> {
        let n = self.shared.workers.len();
        if n > 1 && 2 * self.shared.spinning.load(Ordering::Relaxed) < n {
            self.shared.spinning.fetch_add(1, Ordering::SeqCst);
            for _ in 0..SPIN_ROUNDS {
                if let Some(t) = self.steal().or_else(|| self.pop_injector()) {
                    self.shared.spinning.fetch_sub(1, Ordering::SeqCst);
                    // We were the one looking: if there is more, let another look too.
                    if !self.local.fresh.is_empty() {
                        self.shared.wake_idle_if_none_spinning();
                    }
                    return Some(t);
                }
                if self.local.home.inbox_nonempty() || self.shared.is_done() {
                    break;
                }
                for _ in 0..32 {
                    std::hint::spin_loop();
                }
            }
            self.shared.spinning.fetch_sub(1, Ordering::SeqCst);
        }

        // Announce, fence, re-check, sleep (module doc; the sequence is `Home::prepare_sleep`).
        let may_sleep = self.local.home.prepare_sleep(
            || {
                let mut idle = self.shared.idle.lock();
                idle.push(self.local.index);
                self.shared.num_idle.fetch_add(1, Ordering::Relaxed);
            },
            // A dump posted since this pass's check: the eventfd write that came with it may
            // have been reaped by this pass's `driver::poll`, and would not end the sleep.
            || {
                self.shared.has_other_work()
                    || self.shared.is_done()
                    || self.shared.workers[self.local.index]
                        .dump_posted
                        .load(Ordering::Acquire)
            },
        );
        if may_sleep {
            let timeout = self
                .local
                .timers
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()));
            if timeout != Some(Duration::ZERO) {
                crate::task::stats::bump(&self.local.home.stats.sleeps, 1);
                // Sleeps in io_uring_enter / epoll_wait: an I/O completion, the eventfd (a remote
                // wake-up) or the next timer deadline ends it; completions are reaped after it.
                driver::wait(timeout);
            }
        }
        self.local.home.end_sleep();
        {
            let mut idle = self.shared.idle.lock();
            if let Some(pos) = idle.iter().position(|&i| i == self.local.index) {
                idle.swap_remove(pos);
                self.shared.num_idle.fetch_sub(1, Ordering::Relaxed);
            }
        }
        if n > 1 {
            self.shared.monitor.worker_woke();
        }
        None
    }
}
