//! The crate's concurrency primitives, from one place: std's normally, loom's model-checked
//! ones when built with `RUSTFLAGS="--cfg loom"` (see `.ci/run` and the README's Tests section).
//!
//! The protocols that loom models check (the park/wake token, the run queue's inbox against the
//! worker's sleep announcement, the mutex hand-off, the join state machine) take their atomics
//! from here, so the models run the real code. Atomics that no model covers (statistics,
//! statics that need a `const` initialiser) use std's directly.

#[cfg(not(loom))]
pub(crate) mod sync {
    pub(crate) mod atomic {
        pub(crate) use std::sync::atomic::{
            AtomicBool, AtomicPtr, AtomicU32, AtomicUsize, Ordering, fence,
        };
    }
}

#[cfg(loom)]
pub(crate) mod sync {
    pub(crate) mod atomic {
        pub(crate) use ::loom::sync::atomic::{
            AtomicBool, AtomicPtr, AtomicU32, AtomicUsize, Ordering, fence,
        };
    }
}
