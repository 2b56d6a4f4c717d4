//! The blocking pool: [`unblock`] runs a blocking closure on a kernel thread of a bounded pool
//! while only the calling green thread parks.
//!
//! # The problem
//! Calls with no hilos shim (`getaddrinfo`, `std::fs`, C libraries) block the kernel thread they
//! run on. On a worker that stalls every green thread pinned to it.
//!
//! # The design
//! One process-wide pool of at most `HILOS_BLOCKING_THREADS` kernel threads (default 64). Threads
//! are spawned on demand when a job finds none idle, and retire after idling for 10 seconds. A
//! job is the caller's closure, run under `catch_unwind`; its result goes into a slot on the
//! caller's stack, and the caller parks on its `sys` token until the slot is marked done. A panic
//! is resumed in the caller.
//!
//! The closure may borrow from the caller (it need not be `'static`): the caller cannot return,
//! unwind or be freed before the job has finished, because it waits for the slot without a
//! timeout, and a parked green thread's stack stays where it is. The job marks the slot done as
//! its very last access to it, and wakes the caller through a thread reference of its own.
//!
//! Name resolution (`ToSocketAddrs` for host names, hence `TcpStream::connect("host:port")`) has
//! a pool of its own, of at most `HILOS_RESOLVER_THREADS` threads (default 8): sharing the
//! general pool, a connect waited behind 64 slow blocking jobs (seconds); and a resolver that
//! hangs (an unreachable DNS server) cannot take the general pool's threads either.
//!
//! Rejected: one kernel thread per call (unbounded under load); a fixed-size pool started up front
//! (64 idle threads in every program that never blocks).

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::park;
use crate::task::{self, Which};

/// How long a pool thread waits for a job before it exits.
const IDLE_RETIRE: Duration = Duration::from_secs(10);
/// The default bound on pool threads.
const DEFAULT_MAX: usize = 64;
/// The default bound on name-resolution threads.
const DEFAULT_RESOLVER_MAX: usize = 8;

type Job = Box<dyn FnOnce() + Send + 'static>;

struct Pool {
    state: Mutex<State>,
    cv: Condvar,
    max: usize,
    /// Its threads' name.
    name: &'static str,
}

struct State {
    queue: VecDeque<Job>,
    threads: usize,
    idle: usize,
}

impl Pool {
    /// A pool of at most `$var` threads (`default` when unset or not a positive number).
    fn new(var: &str, default: usize, name: &'static str) -> Pool {
        let max = std::env::var(var)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or(default);
        Pool {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                threads: 0,
                idle: 0,
            }),
            cv: Condvar::new(),
            max,
            name,
        }
    }
}

static POOL: OnceLock<Pool> = OnceLock::new();
static RESOLVER_POOL: OnceLock<Pool> = OnceLock::new();

fn pool() -> &'static Pool {
    POOL.get_or_init(|| Pool::new("HILOS_BLOCKING_THREADS", DEFAULT_MAX, "hilos-blocking"))
}

/// The blocking pools' threads running a job, and jobs waiting for a thread (for metrics; the
/// pools that have not started count nothing).
pub(crate) fn pool_counts() -> (usize, usize) {
    let (mut busy, mut queued) = (0, 0);
    for p in [POOL.get(), RESOLVER_POOL.get()].into_iter().flatten() {
        let st = p.state.lock();
        busy += st.threads - st.idle;
        queued += st.queue.len();
    }
    (busy, queued)
}

fn resolver_pool() -> &'static Pool {
    RESOLVER_POOL.get_or_init(|| {
        Pool::new(
            "HILOS_RESOLVER_THREADS",
            DEFAULT_RESOLVER_MAX,
            "hilos-resolver",
        )
    })
}

impl Pool {
    fn submit(&'static self, job: Job) {
        let spawn = {
            let mut st = self.state.lock();
            st.queue.push_back(job);
            if st.idle > 0 {
                self.cv.notify_one();
                false
            } else if st.threads < self.max {
                st.threads += 1;
                true
            } else {
                false
            }
        };
        if spawn {
            let r = std::thread::Builder::new()
                .name(self.name.into())
                .spawn(move || self.run());
            if r.is_err() {
                let mut st = self.state.lock();
                st.threads -= 1;
                if st.threads == 0 {
                    // No thread at all to run it: run the queue here rather than never.
                    let jobs: Vec<Job> = st.queue.drain(..).collect();
                    drop(st);
                    for j in jobs {
                        j();
                    }
                }
            }
        }
    }

    fn run(&self) {
        let mut st = self.state.lock();
        loop {
            if let Some(job) = st.queue.pop_front() {
                drop(st);
                job();
                st = self.state.lock();
                continue;
            }
            st.idle += 1;
            let timed_out = self.cv.wait_for(&mut st, IDLE_RETIRE).timed_out();
            st.idle -= 1;
            if timed_out && st.queue.is_empty() {
                st.threads -= 1;
                return;
            }
        }
    }
}

/// Where a job leaves its result for the caller.
struct Slot<T> {
    result: UnsafeCell<Option<std::thread::Result<T>>>,
    done: AtomicBool,
}

/// A pointer to the caller's slot, sent to the pool thread.
struct SlotPtr<T>(*const Slot<T>);
// SAFETY: the slot is written by the pool thread only before `done` is set (Release) and read by
// the caller only after it saw `done` (Acquire); `T: Send` lets the value cross threads.
unsafe impl<T: Send> Send for SlotPtr<T> {}

/// Runs the blocking closure `f` on a kernel thread of hilos's blocking pool and returns its
/// value. Only the calling green thread waits; the other green threads of its worker keep
/// running. A panic in `f` is resumed in the caller.
///
/// Use it for calls that block the kernel thread and that hilos has no green version of: a C
/// library, `std::fs` or `std::process`, a `std::sync::Mutex` held by a kernel thread. The pool
/// has at most `HILOS_BLOCKING_THREADS` threads (default 64), started on demand and retired
/// after idling; jobs beyond that wait their turn.
///
/// Called from a kernel thread rather than a green thread, `f` simply runs on the caller.
///
/// # Examples
/// ```
/// let h = hilos::spawn(|| hilos::unblock(|| std::fs::read_dir(".").map(|d| d.count())));
/// assert!(h.join().unwrap().unwrap() > 0);
/// ```
pub fn unblock<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    run_on(pool(), f)
}

/// As [`unblock`], on the name-resolution pool (module doc).
pub(crate) fn unblock_resolve<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    run_on(resolver_pool(), f)
}

fn run_on<F, T>(pool: &'static Pool, f: F) -> T
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    if task::current_green().is_none() {
        return f();
    }
    let slot = Slot {
        result: UnsafeCell::new(None),
        done: AtomicBool::new(false),
    };
    let ptr = SlotPtr(&slot);
    let me = task::current();
    let job = move || {
        let ptr = ptr;
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        // SAFETY: the caller waits until `done`; nobody else touches the slot before then.
        unsafe {
            *(*ptr.0).result.get() = Some(r);
            (*ptr.0).done.store(true, Ordering::Release);
        }
        // The slot may be gone from here on; `me` is our own reference.
        me.wake();
    };
    let job: Box<dyn FnOnce() + Send + '_> = Box::new(job);
    // SAFETY: only the lifetime is erased. Everything the job borrows outlives it: the caller
    // (this frame) does not return before `done` is set, and the job touches nothing it borrows
    // after that (`f` and its result are gone by then).
    let job: Job = unsafe { std::mem::transmute::<Box<dyn FnOnce() + Send + '_>, Job>(job) };
    pool.submit(job);
    while !slot.done.load(Ordering::Acquire) {
        park::park(Which::Sys, None, crate::task::ThreadState::Unblock);
    }
    // SAFETY: `done` was set after the result was written (Release/Acquire).
    match unsafe { (*slot.result.get()).take() } {
        Some(Ok(v)) => v,
        Some(Err(p)) => std::panic::resume_unwind(p),
        None => unreachable!("hilos: blocking job finished without a result"),
    }
}
