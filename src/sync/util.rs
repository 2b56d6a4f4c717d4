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
//! - Eventual fairness: a waiter that has waited at least [`FAIR_AFTER`] is handed the resource
//!   directly by the releaser instead of being woken to compete for it (parking_lot's idea, with
//!   the age measured per waiter).
//!
//! # Memory orderings
//! None: these helpers touch no shared memory.

use std::time::{Duration, Instant};

/// How long a waiter may wait before the resource is handed to it directly.
pub(crate) const FAIR_AFTER: Duration = Duration::from_micros(500);

/// How many spin rounds before parking (round `i` spins `2 << i` times).
pub(crate) const SPIN_ROUNDS: u32 = 4;

/// Spins for round `round` of a slow path.
#[inline]
pub(crate) fn spin(round: u32) {
    for _ in 0..(2u32 << round) {
        std::hint::spin_loop();
    }
}

/// `now + dur`, or `None` ("no deadline") if that is beyond what `Instant` can express.
#[inline]
pub(crate) fn deadline(dur: Duration) -> Option<Instant> {
    Instant::now().checked_add(dur)
}

/// Whether a waiter that started waiting at `since` is owed a direct hand-off.
#[inline]
pub(crate) fn owed_handoff(since: Option<Instant>) -> bool {
    since.is_some_and(|t| t.elapsed() >= FAIR_AFTER)
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
