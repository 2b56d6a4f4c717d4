//! hilos: cheap threads that block.
#![deny(unsafe_op_in_unsafe_fn)]

mod arch;
mod scheduler;
mod stack;
mod task;
mod time;

pub mod io;
pub mod runtime;
pub mod sync;
pub mod thread;
