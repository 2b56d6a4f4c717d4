//! hilos: cheap threads that block.
//!
//! Write plain blocking Rust (no `async`), spawn a thread per connection or per task, and run a
//! million of them. hilos's threads are green threads: each has a stack of its own, is switched
//! by a few instructions of hand-written assembly, and runs with others on a few worker kernel
//! threads (one per core). A green thread that waits for a socket, a file, a lock or a timer
//! parks; its worker runs the others meanwhile, and io_uring does the waiting. The modules
//! [`thread`], [`sync`], [`net`], [`fs`] and [`io`] have std's names, signatures and semantics:
//! code written for std threads moves over by changing its imports.
//!
//! # A server
//! A green thread per connection, each blocking in `read` and `write` as a std thread would:
//!
//! ```
//! use std::io::{Read, Write};
//! use hilos::net::{TcpListener, TcpStream};
//!
//! fn serve(mut conn: TcpStream) -> std::io::Result<()> {
//!     let mut buf = [0; 4096];
//!     loop {
//!         let n = conn.read(&mut buf)?; // parks only this green thread
//!         if n == 0 {
//!             return Ok(());
//!         }
//!         conn.write_all(&buf[..n])?;
//!     }
//! }
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//! // The accept loop is a green thread too, so that `accept` parks only it.
//! hilos::spawn(move || {
//!     for conn in listener.incoming() {
//!         match conn {
//!             Ok(conn) => drop(hilos::spawn(move || serve(conn))),
//!             Err(e) => eprintln!("accept: {e}"),
//!         }
//!     }
//! });
//!
//! // A client on this plain kernel thread: hilos's calls block it, as std's would.
//! let mut client = TcpStream::connect(addr)?;
//! client.write_all(b"hello")?;
//! let mut back = [0; 5];
//! client.read_exact(&mut back)?;
//! assert_eq!(&back, b"hello");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! [`spawn`] uses the global runtime (one worker per core, started on first use);
//! [`Runtime::builder`] makes runtimes of your own.
//!
//! # Hazards
//! - **Blocking calls hilos did not write block the whole worker**, not just the green thread:
//!   `std::net`, `std::fs`, `std::io::stdin()`, `std::thread::sleep`, `std::sync::Mutex`, C
//!   libraries and the crates built on them. Use hilos's types, or wrap the call in [`unblock`],
//!   which runs it on a pool of kernel threads while only the calling green thread parks.
//! - **No preemption**: a green thread that computes without blocking or calling [`yield_now`]
//!   keeps its worker.
//! - **Do not hold a std lock across a blocking hilos call**: a sibling green thread waiting for
//!   it blocks the whole worker. hilos's locks ([`sync`], [`io::Stdout::lock`]) are safe to hold.
//! - **`fork()`**: only `exec` is supported in the child; hilos calls there fail with a message.
//! - **Thread-locals** are per green thread (every `thread_local!`, std's panic state and
//!   `std::thread::current()`, errno) on x86_64 and aarch64 Linux with glibc 2.36; elsewhere green
//!   threads share their worker's, which [`runtime::tls_mode`] reports, with the hazards the
//!   README lists. A library `dlopen`ed after the first runtime started that needs static TLS
//!   fails to load.
//! - A green thread that overflows its stack (256 KiB by default, [`Builder::stack_size`]) aborts
//!   the process with std's message.
//!
//! # Features
//! - Threads: [`spawn`], [`Builder`], [`JoinHandle`], [`scope`], [`park`], [`sleep`],
//!   [`yield_now`]; they work on green threads (parking only the green thread) and on kernel
//!   threads (blocking them, as std's).
//! - [`sync`]: `Mutex`, `RwLock`, `Condvar`, `Barrier`, `Once`, `OnceLock`, `LazyLock`, `mpsc`,
//!   `Semaphore`, with std's poisoning.
//! - [`net`], [`fs`], [`io`]: sockets, files, directories, pipes and the standard streams;
//!   io_uring operations where the kernel has them, an epoll driver and a blocking pool otherwise.
//! - [`os`]: std's `os::unix::{net, fs}` and `os::fd` paths for the same types, so that
//!   `use std::os::unix::net::UnixStream` moves over too.
//! - [`Runtime`]: worker count, stack size, `block_on`, shutdown.
//! - One Cargo feature, `hook` (off by default): libc's blocking calls (`read`, `recv`, `poll`,
//!   `nanosleep`, `getaddrinfo`...) are interposed so that std and C code park only the calling
//!   green thread; they pass straight through anywhere else.
//! - Seeing inside: thread dumps ([`runtime::dump`], [`Runtime::dump`], on a signal with
//!   `HILOS_DUMP_SIGNAL`), metrics ([`runtime::metrics`]), panic messages that name the green
//!   thread, and a watchdog that names a green thread holding its worker too long.
//! - Environment variables (`HILOS_IO=epoll`, `HILOS_TLS=shared`, `HILOS_STACK_GUARD=mprotect`,
//!   `HILOS_BLOCKING_THREADS`, `HILOS_RESOLVER_THREADS`, `HILOS_DUMP_SIGNAL`,
//!   `HILOS_WATCHDOG_MS`) are listed in the README.
//!
//! Linux only; x86_64 and aarch64; Rust 1.89 or later.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod arch;
mod driver;
#[cfg(feature = "hook")]
mod hook;
mod loom;
mod park;
mod real;
mod scheduler;
mod spawner;
mod stack;
mod task;
mod time;
mod tls;

pub mod fs;
pub mod io;
pub mod net;
pub mod os;
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
