//! Scoped green threads, as [`std::thread::scope`].
//!
//! A scope counts its running threads (`ScopeData::running`); each thread decrements the count as
//! its very last act on user data, after its result has been handed to a joiner or dropped (see
//! `cell`). `scope` waits for the count to reach zero on the caller's `sys` token, whether the
//! scope's closure returned or panicked, so nothing a scoped thread borrows can end before it.

use std::io;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::{Thread, spawn_target};
use crate::park;
use crate::scheduler::Shared;
use crate::spawner::cell::{JoinInner, ScopeData};
use crate::spawner::{spawn_unchecked, thread_ref};
use crate::task::{self, Which};

/// A scope to spawn scoped green threads in, as [`std::thread::Scope`].
///
/// # Examples
///
/// ```
/// let mut counts = [0u32; 4];
/// hilos::thread::scope(|s: &hilos::thread::Scope<'_, '_>| {
///     for c in counts.iter_mut() {
///         s.spawn(move || *c += 1);
///     }
/// });
/// assert_eq!(counts, [1; 4]);
/// ```
pub struct Scope<'scope, 'env: 'scope> {
    data: Arc<ScopeData>,
    shared: Arc<Shared>,
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

/// An owned permission to join a scoped green thread, as [`std::thread::ScopedJoinHandle`].
///
/// # Examples
///
/// ```
/// let text = String::from("borrowed, not moved");
/// let n = hilos::thread::scope(|s| {
///     let h: hilos::thread::ScopedJoinHandle<'_, usize> = s.spawn(|| text.len());
///     h.join().unwrap()
/// });
/// assert_eq!(n, text.len());
/// ```
pub struct ScopedJoinHandle<'scope, T> {
    inner: JoinInner<T>,
    _scope: PhantomData<&'scope ()>,
}

/// Creates a scope for spawning scoped green threads, as [`std::thread::scope`]: every thread
/// spawned in it is joined before `scope` returns, so they may borrow non-`'static` data.
///
/// # Panics
/// If the closure panics, or any thread that was not joined panicked, `scope` panics after all
/// threads are joined (with the closure's payload, or "a scoped thread panicked").
///
/// # Examples
///
/// ```
/// let data = vec![1, 2, 3, 4, 5, 6];
/// let (left, right) = data.split_at(3);
/// let total = hilos::thread::scope(|s| {
///     let a = s.spawn(|| left.iter().sum::<i32>());
///     let b = s.spawn(|| right.iter().sum::<i32>());
///     a.join().unwrap() + b.join().unwrap()
/// });
/// assert_eq!(total, 21);
/// ```
#[track_caller]
pub fn scope<'env, F, T>(f: F) -> T
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
{
    let scope = Scope {
        data: Arc::new(ScopeData {
            running: AtomicUsize::new(0),
            a_thread_panicked: AtomicBool::new(false),
            owner: task::current(),
        }),
        shared: spawn_target(),
        scope: PhantomData,
        env: PhantomData,
    };
    let result = catch_unwind(AssertUnwindSafe(|| f(&scope)));
    while scope.data.running.load(Ordering::Acquire) != 0 {
        park::park(Which::Sys, None, crate::task::ThreadState::Join);
    }
    match result {
        Err(e) => resume_unwind(e),
        Ok(_) if scope.data.a_thread_panicked.load(Ordering::Relaxed) => {
            panic!("a scoped thread panicked")
        }
        Ok(v) => v,
    }
}

impl<'scope, 'env> Scope<'scope, 'env> {
    /// Spawns a scoped green thread, as [`std::thread::Scope::spawn`].
    ///
    /// # Panics
    /// Panics with `failed to spawn thread` if no stack could be had.
    #[track_caller]
    pub fn spawn<F, T>(&'scope self, f: F) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        self.spawn_with(None, None, f)
            .expect("failed to spawn thread")
    }

    #[track_caller]
    pub(crate) fn spawn_with<F, T>(
        &'scope self,
        name: Option<String>,
        stack_size: Option<usize>,
        f: F,
    ) -> io::Result<ScopedJoinHandle<'scope, T>>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        // `scope` waits until `running` is zero before returning, and a thread decrements it
        // only after its closure has returned and its result has been taken or dropped
        // (`cell::run`). A result left in a forgotten handle is leaked, never dropped late.
        let data = Some(self.data.clone());
        // SAFETY: so nothing borrowed for 'scope is used after 'scope ends (above).
        let inner = unsafe { spawn_unchecked(&self.shared, name, stack_size, data, f)? };
        Ok(ScopedJoinHandle {
            inner,
            _scope: PhantomData,
        })
    }
}

impl<T> ScopedJoinHandle<'_, T> {
    /// Waits for the thread to finish; `Err` carries its panic payload.
    pub fn join(self) -> std::thread::Result<T> {
        self.inner.join()
    }

    /// The thread's handle.
    pub fn thread(&self) -> &Thread {
        thread_ref(self.inner.task())
    }

    /// Whether the thread has finished running its closure.
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }
}

impl std::fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("running", &self.data.running.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<T> std::fmt::Debug for ScopedJoinHandle<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopedJoinHandle").finish_non_exhaustive()
    }
}

impl std::panic::RefUnwindSafe for Scope<'_, '_> {}
impl<T> std::panic::RefUnwindSafe for ScopedJoinHandle<'_, T> {}
impl<T> std::panic::UnwindSafe for ScopedJoinHandle<'_, T> {}
