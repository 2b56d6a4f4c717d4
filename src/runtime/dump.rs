//! Thread dumps of a running runtime: [`Runtime::dump`], [`dump`] (how each worker answers, and
//! why that is safe and cheap, is in the scheduler's `dump`).

use std::fmt;

use super::Runtime;
use crate::scheduler::{Collected, Shared, ThreadInfo};

/// A snapshot of a runtime's green threads: one [`ThreadInfo`] per live thread, sorted by id,
/// the threads not yet started included.
///
/// Its [`Display`](fmt::Display) prints a heading, then one line per thread:
///
/// ```text
/// thread 17 'conn-42' [read fd 9, 2.301s] worker 1, spawned at src/main.rs:10:5
/// thread 18 'conn-43' [runnable (not started)] worker 0, spawned at src/main.rs:10:5
/// thread 19 '<unnamed>' [runnable (not started)] injector, spawned at src/main.rs:22:9
/// ```
///
/// The state words are [`ThreadState`](crate::runtime::ThreadState)'s. A thread not started
/// is `runnable (not started)`, followed by the worker whose queue holds it, or `injector` for
/// a thread spawned from outside the runtime and not yet taken by a worker. Times are
/// approximate (each worker's coarse clock, read on every pass through its scheduler loop). A
/// worker busy in one green thread for more than a second does not answer: the dump says
/// which, and lacks its threads. A thread moving between two queues while the dump is taken
/// (stolen by an idle worker) may be missing: the dump gives how many it did not list.
///
/// # Examples
///
/// ```
/// use hilos::runtime::ThreadState;
/// use hilos::sync::{Arc, Mutex};
///
/// let rt = hilos::Runtime::builder().workers(2).build().unwrap();
/// let lock = Arc::new(Mutex::new(()));
/// let held = lock.lock().unwrap();
/// let l = lock.clone();
/// let waiter = rt
///     .spawn_with(hilos::Builder::new().name("waiter".into()), move || drop(l.lock()))
///     .unwrap();
/// // Wait until the waiter is parked on the mutex.
/// while !rt.dump().iter().any(|t| t.state() == ThreadState::Mutex) {
///     std::thread::yield_now();
/// }
/// let dump = rt.dump();
/// assert!(dump.to_string().contains("'waiter' [mutex"));
/// drop(held);
/// waiter.join().unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct ThreadDump {
    threads: Vec<ThreadInfo>,
    silent: Vec<usize>,
    unlisted: usize,
    workers: usize,
}

impl ThreadDump {
    pub(super) fn new(shared: &Shared) -> ThreadDump {
        let Collected {
            threads,
            silent,
            unlisted,
        } = shared.collect_dump();
        ThreadDump {
            threads,
            silent,
            unlisted,
            workers: shared.workers.len(),
        }
    }

    /// The threads listed, sorted by id.
    pub fn iter(&self) -> std::slice::Iter<'_, ThreadInfo> {
        self.threads.iter()
    }

    /// How many threads are listed.
    pub fn len(&self) -> usize {
        self.threads.len()
    }

    /// Whether no thread is listed.
    pub fn is_empty(&self) -> bool {
        self.threads.is_empty()
    }

    /// How many of the threads listed had not started ([`ThreadInfo::started`]).
    pub fn unstarted(&self) -> usize {
        self.threads.iter().filter(|t| !t.started()).count()
    }

    /// Live threads the dump did not list (approximate: the runtime's live count less the
    /// threads listed): those of [silent workers](ThreadDump::silent_workers), and threads
    /// moving between two queues while the dump was taken; threads that start or exit while
    /// the dump is taken make it off by as many.
    pub fn unlisted(&self) -> usize {
        self.unlisted
    }

    /// Workers that did not answer in time (busy running one green thread): their threads are
    /// missing.
    pub fn silent_workers(&self) -> &[usize] {
        &self.silent
    }
}

impl<'a> IntoIterator for &'a ThreadDump {
    type Item = &'a ThreadInfo;
    type IntoIter = std::slice::Iter<'a, ThreadInfo>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl fmt::Display for ThreadInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "thread {} '{}' [{}",
            self.id().as_u64(),
            self.name().unwrap_or("<unnamed>"),
            self.state()
        )?;
        if !self.started() {
            f.write_str(" (not started)")?;
        }
        if let Some(d) = self.waiting_for() {
            write!(f, ", {:.3}s", d.as_secs_f64())?;
        }
        f.write_str("]")?;
        match self.worker() {
            Some(w) => write!(f, " worker {w},")?,
            None if !self.started() => f.write_str(" injector,")?,
            None => {}
        }
        write!(f, " spawned at {}", self.spawned_at())
    }
}

impl fmt::Display for ThreadDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "hilos thread dump: {} green threads ({} not started) on {} workers",
            self.threads.len(),
            self.unstarted(),
            self.workers
        )?;
        for t in &self.threads {
            writeln!(f, "{t}")?;
        }
        if self.unlisted > 0 {
            writeln!(
                f,
                "(and about {} threads not listed: on silent workers, or moving between queues)",
                self.unlisted
            )?;
        }
        for w in &self.silent {
            writeln!(
                f,
                "(worker {w} did not answer within {:?}: it runs one green thread without \
                 switching; its threads are missing)",
                crate::scheduler::DUMP_PATIENCE
            )?;
        }
        Ok(())
    }
}

impl Runtime {
    /// A snapshot of this runtime's green threads (see [`ThreadDump`]). Each worker lists its
    /// own threads when it next passes through its scheduler loop (the caller's own worker
    /// right away, when the caller is one of the runtime's green threads); none is stopped for
    /// longer than that. Waits at most a second for a worker busy in one green thread.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = hilos::Runtime::builder().workers(1).build().unwrap();
    /// let dump = rt.block_on(|| rt.dump());
    /// // The thread that took the dump is the one running.
    /// assert_eq!(dump.len(), 1);
    /// assert!(dump.to_string().contains("[running]"));
    /// ```
    pub fn dump(&self) -> ThreadDump {
        ThreadDump::new(&self.shared)
    }
}

/// A snapshot of the global runtime's green threads (see [`Runtime::dump`]); starts the global
/// runtime if it has not started.
///
/// # Examples
///
/// ```
/// let h = hilos::Builder::new()
///     .name("napper".into())
///     .spawn(|| hilos::sleep(std::time::Duration::from_millis(300)))
///     .unwrap();
/// let mut seen = false;
/// for _ in 0..100 {
///     let d = hilos::runtime::dump();
///     if d.iter().any(|t| t.name() == Some("napper") && t.to_string().contains("[sleep until")) {
///         seen = true;
///         break;
///     }
///     std::thread::sleep(std::time::Duration::from_millis(2));
/// }
/// assert!(seen);
/// h.join().unwrap();
/// ```
pub fn dump() -> ThreadDump {
    ThreadDump::new(&super::global_shared())
}
