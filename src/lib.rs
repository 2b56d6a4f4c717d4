//! hilos: cheap threads that block.
//!
//! An M:N green-thread runtime with the API of `std::thread`: stackful green threads, switched by
//! hand-written assembly, run on a small pool of worker kernel threads.
//!
//! ```
//! let h = hilos::spawn(|| 40 + 2);
//! assert_eq!(h.join().unwrap(), 42);
//! ```
//!
//! Each green thread has thread-locals of its own (every `thread_local!`, std's panic state and
//! `std::thread::current()`, errno), as a std thread has: see [`runtime::tls_mode`] and the
//! README's "Thread-locals" for how, and for the platforms where green threads share their
//! worker's instead.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod arch;
mod driver;
mod loom;
mod park;
mod scheduler;
mod spawner;
mod stack;
mod task;
mod time;
mod tls;

pub mod fs;
pub mod io;
pub mod net;
pub mod runtime;
pub mod sync;
pub mod thread;

pub use io::unblock;
pub use runtime::Runtime;
pub use thread::{
    Builder, JoinHandle, Scope, ScopedJoinHandle, Thread, ThreadId, current, park, park_timeout,
    scope, sleep, spawn, yield_now,
};

/// Internals the crate's own benchmarks and comparison harness measure. Not a stable API.
#[doc(hidden)]
pub mod __private {
    /// Times `iters` round trips (there and back) of the bare context switch between two
    /// contexts on one kernel thread, with no scheduler involved.
    pub fn bare_switch_roundtrips(iters: u64) -> std::time::Duration {
        crate::arch::bare_switch_roundtrips(iters)
    }

    /// Stacks handed out so far in this process whose memory had not been touched since it was
    /// mapped or released (freshly carved slots and cold pooled stacks), each a source of page
    /// faults at its first use.
    pub fn untouched_stacks_taken() -> u64 {
        crate::stack::untouched_stacks_taken()
    }

    /// The stack guard mechanism in use: `"madv_guard_install"` or `"mprotect"`.
    pub fn stack_guard_mechanism() -> &'static str {
        crate::stack::guard_mechanism()
    }
}
