//! Runtimes: a pool of worker kernel threads that run green threads.
//!
//! Most programs never name a runtime: [`crate::spawn`] starts the global runtime on first use,
//! with one worker per available core. [`Builder::build_global`] configures it before that, as
//! rayon's `ThreadPoolBuilder::build_global` does. A [`Runtime`] of your own runs green threads
//! apart from the global one, e.g. with a single worker.
//!
//! # Dropping a runtime
//! Dropping a [`Runtime`] shuts it down: new spawns onto it still work while its threads run, and
//! the drop waits until every green thread of the runtime has finished, then joins the workers. A
//! stack is never freed while a thread still runs on it. If threads are still alive after a second
//! (blocked on something that never comes), the drop says so on stderr, naming how many, and
//! keeps waiting, repeating the message every ten seconds: it never hangs silently. To not wait,
//! use [`Runtime::shutdown_background`]: the workers then exit on their own once the last thread
//! finishes. A runtime dropped from one of its own green threads cannot wait for itself, so it is
//! shut down in the background.

use std::io;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::park;
pub use crate::scheduler::ThreadInfo;
use crate::scheduler::{self, Shared};
use crate::spawner::{self, JoinHandle};
use crate::stack;
use crate::task::{self, Which};
pub use crate::task::{IoOp, ThreadState};
pub use crate::tls::TlsMode;
pub use dump::{ThreadDump, dump};
pub use metrics::{RuntimeMetrics, WorkerMetrics, metrics};

mod dump;
mod metrics;
mod signal;

/// How green threads get their thread-locals in this process: each its own (the default on
/// x86_64 Linux with glibc 2.36), or shared with their worker kernel thread where that cannot be
/// had (said once on stderr). Decided when the first runtime is built; `SharedPerWorker` before.
/// See the crate documentation's "Thread-locals".
///
/// # Examples
///
/// ```
/// let rt = hilos::Runtime::builder().workers(1).build().unwrap();
/// thread_local! { static N: std::cell::Cell<u32> = const { std::cell::Cell::new(0) }; }
/// let mode = hilos::runtime::tls_mode();
/// let seen = rt.block_on(|| {
///     let h = hilos::spawn(|| N.with(|n| n.set(n.get() + 1)));
///     h.join().unwrap();
///     N.with(|n| n.get())
/// });
/// // With per-green-thread thread-locals the child's increment was its own.
/// assert_eq!(seen == 0, mode.per_green_thread());
/// ```
pub fn tls_mode() -> TlsMode {
    crate::tls::mode()
}

/// Configures and starts a [`Runtime`].
///
/// # Examples
///
/// ```
/// let rt = hilos::runtime::Builder::new()
///     .workers(2)
///     .stack_size(128 * 1024)
///     .build()
///     .unwrap();
/// assert_eq!(rt.workers(), 2);
/// assert_eq!(rt.block_on(|| 1 + 1), 2);
///
/// // Zero workers is an error, not a panic.
/// let err = hilos::runtime::Builder::new().workers(0).build().unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
/// ```
#[derive(Debug, Clone)]
#[must_use = "call build() or build_global()"]
pub struct Builder {
    workers: Option<usize>,
    stack_size: usize,
    /// `None`: from `HILOS_WATCHDOG_MS`, else 100 ms.
    watchdog: Option<Option<Duration>>,
    dump_signal: Option<i32>,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder {
            workers: None,
            stack_size: stack::DEFAULT_STACK_SIZE,
            watchdog: None,
            dump_signal: None,
        }
    }
}

impl Builder {
    /// Defaults: one worker per available core (`std::thread::available_parallelism`), 256 KiB
    /// stacks.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// The number of worker kernel threads (at least 1).
    pub fn workers(mut self, n: usize) -> Builder {
        self.workers = Some(n);
        self
    }

    /// The default usable stack size of green threads spawned on this runtime, in bytes (rounded
    /// up to whole pages; memory is committed only as a thread touches it).
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = bytes;
        self
    }

    /// The watchdog's threshold: when one green thread has held its worker that long while
    /// other green threads of that worker wait, hilos writes one line to stderr naming it (id
    /// and name), for how long, and the system call its worker is blocked in, once per episode.
    /// `None` turns it off. Default: `HILOS_WATCHDOG_MS` from the environment (0: off), else
    /// 100 ms.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let rt = hilos::Runtime::builder()
    ///     .workers(1)
    ///     .watchdog(Some(Duration::from_millis(500)))
    ///     .build()
    ///     .unwrap();
    /// rt.block_on(|| hilos::sleep(Duration::from_millis(1)));
    /// ```
    pub fn watchdog(mut self, threshold: Option<Duration>) -> Builder {
        self.watchdog = Some(threshold);
        self
    }

    /// Prints a thread dump of this runtime ([`Runtime::dump`]) and its metrics to stderr
    /// whenever the process receives `signal` (e.g. `libc::SIGQUIT`, as Go does, or
    /// `libc::SIGUSR1`). The environment variable `HILOS_DUMP_SIGNAL` (`QUIT`, `USR1`, `USR2`,
    /// `HUP` or a number) does the same for every runtime built without this setting. The
    /// signal's handler only sets a flag and wakes a kernel thread of hilos, which takes the dump;
    /// it replaces the signal's previous disposition.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = hilos::Runtime::builder()
    ///     .workers(1)
    ///     .dump_on_signal(libc::SIGUSR1)
    ///     .build()
    ///     .unwrap();
    /// // `kill -USR1 <pid>` now prints the dump on stderr.
    /// # drop(rt);
    /// ```
    pub fn dump_on_signal(mut self, signal: i32) -> Builder {
        self.dump_signal = Some(signal);
        self
    }

    /// Starts the runtime's workers.
    ///
    /// Fails with `InvalidInput` for zero workers or an unusable stack size, or with the OS error
    /// if a worker thread, a stack or a worker's I/O driver cannot be had. io_uring being
    /// unavailable is not an error: the runtime then uses the epoll fallback (see
    /// [`Runtime::io_backend`]).
    pub fn build(self) -> io::Result<Runtime> {
        if crate::task::fork::forked() {
            return Err(crate::task::fork::error());
        }
        crate::task::fork::watch();
        let n = match self.workers {
            Some(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a hilos runtime needs at least one worker",
                ));
            }
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        // Thread-locals per green thread where the platform allows (once per process).
        crate::tls::init();
        // Check the stack size now, so a bad one is an error here and not at every spawn.
        stack::free(stack::alloc(
            self.stack_size.saturating_add(crate::tls::area_size()),
        )?);
        stack::overflow::install(task::overflow_lookup);
        // Probe io_uring once per runtime (HILOS_IO=epoll forces the fallback).
        let backend = crate::driver::choose_backend();
        let watchdog = self.watchdog.unwrap_or_else(scheduler::watchdog_from_env);
        let (shared, seeds) = Shared::new(n, self.stack_size, backend, watchdog)
            .map_err(|e| context(e, "cannot set up the hilos runtime's wake-up descriptors"))?;
        let mut workers = Vec::with_capacity(n);
        // Each worker creates its I/O driver on its own kernel thread and reports here.
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let mut failure = None;
        for seed in seeds {
            let s = shared.clone();
            let ready = ready_tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("hilos-worker-{}", workers.len()))
                .spawn(move || scheduler::run_worker(s, seed, ready));
            match spawned {
                Ok(h) => workers.push(h),
                Err(e) => {
                    failure = Some(context(e, "cannot start a hilos worker thread"));
                    break;
                }
            }
        }
        drop(ready_tx);
        let mut io_backend = backend;
        for _ in 0..workers.len() {
            match ready_rx.recv() {
                Ok(Ok(b)) => {
                    if b != backend {
                        io_backend = b;
                    }
                }
                Ok(Err(e)) => {
                    failure.get_or_insert(context(e, "cannot set up a hilos worker's I/O driver"));
                }
                Err(_) => break,
            }
        }
        if failure.is_none() && (n > 1 || watchdog.is_some()) {
            // With several workers, the monitor wakes a sleeping one when a busy one sits on
            // threads nobody takes (see `scheduler::monitor`); it also runs the watchdog's looks
            // (`scheduler::watchdog`). Joined with the workers.
            match scheduler::start_monitor(shared.clone()) {
                Ok(h) => workers.push(h),
                Err(e) => failure = Some(context(e, "cannot start a hilos monitor thread")),
            }
        }
        if let Some(e) = failure {
            // Stop the ones already started; nothing was spawned on them yet.
            shared.begin_shutdown();
            for h in workers {
                let _ = h.join();
            }
            return Err(e);
        }
        let rt = Runtime {
            shared,
            workers,
            background: false,
            io_backend,
        };
        if let Some(sig) = self.dump_signal.or_else(signal::from_env) {
            signal::register(&rt.shared, sig)
                .map_err(|e| context(e, "cannot set up thread dumps on a signal"))?;
        }
        Ok(rt)
    }

    /// Builds the runtime and makes it the global one, used by [`crate::spawn`] and friends from
    /// outside any runtime. Fails with `AlreadyExists` if the global runtime already started.
    pub fn build_global(self) -> io::Result<()> {
        let already = || {
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the global hilos runtime is already running",
            )
        };
        if GLOBAL.get().is_some() {
            return Err(already());
        }
        // A racing first use may win between the check and the set: then ours is shut down.
        GLOBAL.set(self.build()?).map_err(|_| already())
    }
}

/// A pool of worker kernel threads running green threads.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let rt = hilos::Runtime::builder().workers(1).build().unwrap();
/// let h = rt.spawn(|| {
///     hilos::sleep(Duration::from_millis(1));
///     "done"
/// });
/// // `block_on` may borrow from the caller; `h.join()` from a kernel thread blocks it.
/// let local = String::from("borrowed");
/// assert_eq!(rt.block_on(|| local.len()), 8);
/// assert_eq!(h.join().unwrap(), "done");
/// // Dropping the runtime waits for its green threads, then stops its workers.
/// drop(rt);
/// ```
pub struct Runtime {
    shared: Arc<Shared>,
    /// The workers' kernel threads, and the monitor's if there is one.
    workers: Vec<std::thread::JoinHandle<()>>,
    background: bool,
    io_backend: crate::io::IoBackend,
}

/// `e` with what was being done, and for an exhausted descriptor table, which limit and how
/// to raise it (a bare "Too many open files" names neither).
fn context(e: io::Error, what: &str) -> io::Error {
    let hint = match e.raw_os_error() {
        Some(libc::EMFILE) => {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit writes the limit into `lim`.
            let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
                lim.rlim_cur.to_string()
            } else {
                "?".into()
            };
            format!(
                " (this process's open-descriptor limit, `ulimit -n` = {soft}, is reached: each \
                 worker needs 2 or 3 descriptors; raise the limit or close descriptors)"
            )
        }
        Some(libc::ENFILE) => " (the system-wide open-file limit, fs.file-max, is reached)".into(),
        _ => String::new(),
    };
    io::Error::new(e.kind(), format!("{what}: {e}{hint}"))
}

static GLOBAL: OnceLock<Runtime> = OnceLock::new();

/// The global runtime's scheduler, started on first use.
pub(crate) fn global_shared() -> Arc<Shared> {
    GLOBAL
        .get_or_init(|| {
            Builder::new()
                .build()
                .unwrap_or_else(|e| panic!("hilos: cannot start the global runtime: {e}"))
        })
        .shared
        .clone()
}

impl Runtime {
    /// A runtime with the default configuration.
    pub fn new() -> io::Result<Runtime> {
        Builder::new().build()
    }

    /// A builder to configure a runtime.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// The number of worker kernel threads.
    pub fn workers(&self) -> usize {
        self.shared.workers.len()
    }

    /// The I/O backend this runtime's workers use: [`IoBackend::IoUring`] normally, or
    /// [`IoBackend::Epoll`] where io_uring is unavailable or `HILOS_IO=epoll` is set (see
    /// [`crate::io`]).
    ///
    /// [`IoBackend::IoUring`]: crate::io::IoBackend::IoUring
    /// [`IoBackend::Epoll`]: crate::io::IoBackend::Epoll
    pub fn io_backend(&self) -> crate::io::IoBackend {
        self.io_backend
    }

    /// Green threads of this runtime that have been spawned and have not finished. (Exits are
    /// counted in batches by each worker, so this may briefly over-count, never under-count.)
    pub fn live_threads(&self) -> usize {
        self.shared.live()
    }

    /// Runs `f` as a green thread of this runtime and blocks the caller (a kernel thread, or only
    /// the calling green thread) until it returns its value. A panic in `f` is resumed here.
    ///
    /// `f` may borrow from the caller: the call does not return before `f` has finished.
    #[track_caller]
    pub fn block_on<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        // SAFETY: we join the thread before returning (join only returns once it finished and
        // its result is taken), so whatever `f` and `T` borrow outlives the thread.
        let inner = unsafe { spawner::spawn_unchecked(&self.shared, None, None, None, f) }
            .expect("failed to spawn thread");
        match inner.join() {
            Ok(v) => v,
            Err(payload) => std::panic::resume_unwind(payload),
        }
    }

    /// Spawns a green thread on this runtime, as [`crate::spawn`].
    ///
    /// # Panics
    /// Panics with `failed to spawn thread` if no stack could be had.
    #[track_caller]
    pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        spawner::Builder::new()
            .spawn_on(&self.shared, f)
            .expect("failed to spawn thread")
    }

    /// Spawns a green thread on this runtime with a [`crate::thread::Builder`]'s settings.
    #[track_caller]
    pub fn spawn_with<F, T>(&self, builder: spawner::Builder, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        builder.spawn_on(&self.shared, f)
    }

    /// Shuts down without waiting: the workers exit once the last green thread has finished.
    pub fn shutdown_background(mut self) {
        self.background = true;
    }

    /// Shuts down, waiting at most `timeout` for the green threads to finish. Gives the runtime
    /// back (still shutting down) if some are still alive then.
    pub fn shutdown_timeout(self, timeout: Duration) -> Result<(), Runtime> {
        let deadline = Instant::now() + timeout;
        self.shared.set_shutdown_waiter(Some(task::current()));
        self.shared.begin_shutdown();
        while self.shared.live() > 0 {
            if !park::park(Which::Sys, Some(deadline), task::ThreadState::Join)
                && Instant::now() >= deadline
            {
                break;
            }
        }
        self.shared.set_shutdown_waiter(None);
        if self.shared.live() > 0 {
            return Err(self);
        }
        drop(self);
        Ok(())
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if !self.background && !scheduler::on_runtime(&self.shared) {
            self.shared.set_shutdown_waiter(Some(task::current()));
        }
        self.shared.begin_shutdown();
        if self.background || scheduler::on_runtime(&self.shared) {
            // Detach: dropping the JoinHandles lets the workers run until the last thread ends.
            return;
        }
        let start = Instant::now();
        let mut next_note = Duration::from_secs(1);
        while self.shared.live() > 0 {
            park::park(
                Which::Sys,
                Some(Instant::now() + Duration::from_millis(250)),
                task::ThreadState::Join,
            );
            let waited = start.elapsed();
            let live = self.shared.live();
            if live > 0 && waited >= next_note {
                eprintln!(
                    "hilos: dropping a Runtime: still waiting for {live} green thread(s) to finish \
                     after {}s (blocked or parked threads keep it alive; \
                     Runtime::shutdown_background does not wait)",
                    waited.as_secs()
                );
                next_note = waited + Duration::from_secs(10);
            }
        }
        self.shared.set_shutdown_waiter(None);
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("workers", &self.workers())
            .field("live_threads", &self.live_threads())
            .field("io_backend", &self.io_backend)
            .finish()
    }
}

// A panic that unwinds past a `&Runtime` leaves it fully usable: its state is atomics and queues
// that no user code runs inside of.
impl std::panic::RefUnwindSafe for Runtime {}
impl std::panic::UnwindSafe for Runtime {}
