//! What a green thread waits on, as recorded for thread dumps (`runtime::dump`).
//!
//! A green thread that parks stores its [`ThreadState`] in its control block (`Green::state`)
//! and the coarse time of the park (`Green::since_ms`, from [`coarse_now`]), just
//! before it switches away, and resets the state to [`ThreadState::Runnable`] when it resumes.
//! Both are plain `Cell`s: written by the thread itself while it runs on its worker, read by that
//! same worker, in its scheduler context, when it answers a dump (`scheduler::dump`), so never
//! concurrently. A unit variant is a one-byte store; the coarse time a plain load of a global
//! and a four-byte store.
//!
//! The coarse clock is one global word of milliseconds that every worker refreshes on each pass
//! through its scheduler loop ([`tick_clock`]; at least every 61 switches, and when it wakes):
//! reading it costs no system call and no thread-local access on the park path.

use std::fmt;
use std::os::fd::RawFd;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// What a green thread was doing when a dump was taken: running, ready to run, or parked waiting
/// for something. Its [`Display`](fmt::Display) is the word thread dumps print (`mutex`,
/// `channel recv`, `read fd 7`, ...), stable for people and scripts to grep.
///
/// # Examples
///
/// ```
/// use hilos::runtime::{IoOp, ThreadState};
///
/// assert_eq!(ThreadState::Mutex.to_string(), "mutex");
/// assert_eq!(ThreadState::ChannelRecv.to_string(), "channel recv");
/// let read = ThreadState::Io { op: IoOp::Read, fd: 7 };
/// assert_eq!(read.to_string(), "read fd 7");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ThreadState {
    /// Running on its worker (in a dump: the thread that takes the dump).
    Running,
    /// Ready to run (it yielded, or waits for its turn).
    /// (A thread woken from a wait and not yet run again still shows what it waited on: the
    /// record changes when the thread itself runs.)
    Runnable,
    /// Waiting for another thread to finish (`join`, the end of a `scope`).
    Join,
    /// Waiting for a [`Mutex`](crate::sync::Mutex).
    Mutex,
    /// Waiting for an [`RwLock`](crate::sync::RwLock).
    RwLock,
    /// Waiting on a [`Condvar`](crate::sync::Condvar).
    Condvar,
    /// Waiting to send on a channel (a bounded or rendezvous [`mpsc`](crate::sync::mpsc)).
    ChannelSend,
    /// Waiting to receive from a channel.
    ChannelRecv,
    /// Waiting for a [`Semaphore`](crate::sync::Semaphore) permit.
    Semaphore,
    /// Waiting at a [`Barrier`](crate::sync::Barrier).
    Barrier,
    /// Waiting for a `Once`, `OnceLock` or `LazyLock` another thread initialises.
    Once,
    /// In [`sleep`](crate::sleep) until `until`.
    Sleep {
        /// When the sleep ends.
        until: Instant,
    },
    /// In [`park`](crate::park) or [`park_timeout`](crate::park_timeout).
    Park,
    /// Waiting for a closure run by [`unblock`](crate::unblock) on the blocking pool.
    Unblock,
    /// Waiting for an I/O operation on descriptor `fd`.
    Io {
        /// The operation.
        op: IoOp,
        /// The descriptor (negative for operations on paths, such as `open`).
        fd: RawFd,
    },
}

/// The I/O operation a green thread waits for (see [`ThreadState::Io`]).
///
/// # Examples
///
/// ```
/// assert_eq!(hilos::runtime::IoOp::Accept.to_string(), "accept");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IoOp {
    /// `read` (files, pipes, standard streams).
    Read,
    /// `write` (files, pipes, standard streams).
    Write,
    /// `recv` and its kin on a socket.
    Recv,
    /// `send` and its kin on a socket.
    Send,
    /// `accept` on a listening socket.
    Accept,
    /// `connect` on a socket.
    Connect,
    /// Waiting for readiness (`poll`), not for an operation.
    Poll,
    /// Another file-system operation (`open`, `fsync`, `stat`, ...).
    File,
}

impl fmt::Display for IoOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IoOp::Read => "read",
            IoOp::Write => "write",
            IoOp::Recv => "recv",
            IoOp::Send => "send",
            IoOp::Accept => "accept",
            IoOp::Connect => "connect",
            IoOp::Poll => "poll",
            IoOp::File => "file",
        })
    }
}

impl fmt::Display for ThreadState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match self {
            ThreadState::Running => "running",
            ThreadState::Runnable => "runnable",
            ThreadState::Join => "join",
            ThreadState::Mutex => "mutex",
            ThreadState::RwLock => "rwlock",
            ThreadState::Condvar => "condvar",
            ThreadState::ChannelSend => "channel send",
            ThreadState::ChannelRecv => "channel recv",
            ThreadState::Semaphore => "semaphore",
            ThreadState::Barrier => "barrier",
            ThreadState::Once => "once",
            ThreadState::Park => "park",
            ThreadState::Unblock => "unblock",
            ThreadState::Sleep { until } => {
                let left = until.saturating_duration_since(Instant::now());
                return write!(f, "sleep until +{:.3}s", left.as_secs_f64());
            }
            ThreadState::Io { op, fd } if *fd >= 0 => return write!(f, "{op} fd {fd}"),
            ThreadState::Io { op, .. } => return write!(f, "{op}"),
        };
        f.write_str(word)
    }
}

/// The process's reference point of the coarse clock.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Milliseconds since the process's reference point (wraps after 49 days; dumps take the
/// difference modulo 2^32).
pub(crate) fn coarse_ms() -> u32 {
    epoch().elapsed().as_millis() as u32
}

/// The coarse clock (module doc).
static COARSE: AtomicU32 = AtomicU32::new(0);

/// Refreshes the coarse clock (each worker, on each pass through its scheduler loop).
pub(crate) fn tick_clock() {
    COARSE.store(coarse_ms(), Ordering::Relaxed);
}

/// The coarse clock's time, as of the last refresh by any worker.
#[inline]
pub(crate) fn coarse_now() -> u32 {
    COARSE.load(Ordering::Relaxed)
}

/// How long ago the coarse time `since` was, seen from the coarse time `now`.
pub(crate) fn elapsed_ms(now: u32, since: u32) -> Duration {
    Duration::from_millis(now.wrapping_sub(since) as u64)
}
