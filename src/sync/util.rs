//! Small helpers shared by the primitives: spinning, deadlines, padding, fairness.
//!
//! # The problem
//! Every primitive's slow path spins briefly before it parks, turns a `Duration` into a deadline
//! that cannot overflow, and decides when a waiter has waited long enough to be handed the resource
//! directly. Writing these once keeps the policy uniform.
//!
//! # The design
//! - Spinning is short (a few dozen `pause`s in total, exponential) and only done while no thread
//!   is parked on the primitive: once someone is parked, a newcomer queues behind it. A green thread
//!   that spins keeps its worker, so spinning long would be waste on a one-worker runtime.
//! - Eventual fairness ([`FairClock`]): a waiter that has waited at least [`FAIR_AFTER`] is handed
//!   the lock directly by the releaser instead of being woken to compete for it, at most once per
//!   `FAIR_AFTER` per lock (parking_lot's idea, with the age also checked per waiter).
//!
//! # Memory orderings
//! None: these helpers touch no shared memory.

use std::time::{Duration, Instant};

/// How long a waiter may wait before the resource is handed to it directly.
#[cfg_attr(all(test, loom), allow(dead_code))]
pub(crate) const FAIR_AFTER: Duration = Duration::from_micros(500);

/// How many spin rounds before parking (round `i` spins `2 << i` times).
pub(crate) const SPIN_ROUNDS: u32 = 4;

/// Spins for round `round` of a slow path.
#[cfg(not(all(test, loom)))]
#[inline]
pub(crate) fn spin(round: u32) {
    for _ in 0..(2u32 << round) {
        std::hint::spin_loop();
    }
}

/// Under loom, one step per round: a step lets the other threads run (`crate::loom::hint`), and
/// the count of steps changes nothing a model checks.
#[cfg(all(test, loom))]
pub(crate) fn spin(_round: u32) {
    crate::loom::hint::spin_loop();
}

/// `now + dur`, or `None` ("no deadline") if that is beyond what `Instant` can express.
#[inline]
pub(crate) fn deadline(dur: Duration) -> Option<Instant> {
    Instant::now().checked_add(dur)
}

/// When a lock next hands itself over to a waiter (kept under the lock's queue lock).
///
/// A release hands the lock to the first waiter only if that waiter has waited at least
/// [`FAIR_AFTER`] *and* the last hand-off was at least `FAIR_AFTER` ago. The second condition
/// matters under heavy oversubscription (a thousand threads on two workers): there every waiter is
/// old, and handing over on every release would make each acquisition wait for a parked thread to
/// be scheduled (a convoy). With it, a waiter at the front of the queue is still served within
/// about one `FAIR_AFTER`, and the lock is left to whoever takes it first the rest of the time.
pub(crate) struct FairClock {
    #[cfg_attr(all(test, loom), allow(dead_code))]
    next: Option<Instant>,
    /// Under loom: how many times `handoff_due` was asked (`crate::loom::fair`).
    #[cfg(all(test, loom))]
    asked: u32,
}

impl FairClock {
    pub(crate) const fn new() -> FairClock {
        FairClock {
            next: None,
            #[cfg(all(test, loom))]
            asked: 0,
        }
    }

    /// Under loom, the answer comes from the model's pattern instead of the time
    /// (`crate::loom::fair`): real time would make the explored runs differ.
    #[cfg(all(test, loom))]
    pub(crate) fn handoff_due(&mut self, since: Option<Instant>) -> bool {
        let n = self.asked;
        self.asked = n.wrapping_add(1);
        since.is_some() && crate::loom::fair::waited_long_enough(n)
    }

    /// Whether this release should hand the lock to the first waiter (queued since `since`).
    #[cfg(not(all(test, loom)))]
    #[inline]
    pub(crate) fn handoff_due(&mut self, since: Option<Instant>) -> bool {
        let Some(since) = since else {
            return false;
        };
        let now = Instant::now();
        if now.saturating_duration_since(since) < FAIR_AFTER {
            return false;
        }
        match self.next {
            Some(t) if now < t => false,
            _ => {
                self.next = now.checked_add(FAIR_AFTER);
                true
            }
        }
    }
}

/// Keeps `T` on its own cache lines (two, for adjacent-line prefetching).
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}
