//! The allocation behind a green thread, and the join protocol.
//!
//! # The problem
//! Spawn+join must cost about as much as two allocations' worth of work, so a green thread is one
//! heap allocation: the control block (`task::Header`), the result slot, the join state and the
//! closure. The `JoinHandle<T>` knows `T` but not the closure type `F`; the scheduler knows
//! neither. And a scoped thread's result may borrow from the scope, so it must be dropped before
//! the scope returns, even though `Thread` handles may keep the allocation alive far longer.
//!
//! # The design
//! `Cell<F, T>` is `#[repr(C)]` with the header first and the output second; `Prefix<T>` is its
//! prefix, so a `JoinHandle<T>` reaches the output of any `Cell<_, T>`. The header's vtable runs
//! and frees the cell. The join state is one atomic word:
//! - `DONE`: the output is written (set by the finishing thread, Release);
//! - `WAITING`: a joiner stored its handle in `joiner` and waits on its `sys` token;
//! - `DROPPED`: the join handle is gone (dropped, or joined and the output taken).
//!
//! Whoever sets the second of `DONE` and `DROPPED` drops an output nobody took, so the output never
//! outlives the handle's lifetime (and so never outlives a scope). The finishing thread wakes a
//! `WAITING` joiner, and only then tells the scope it is done; the joiner never touches `joiner`
//! once it has published `WAITING`.
//!
//! A green joiner parks on the join state itself: the compare-exchange that publishes `WAITING`
//! also hands its scheduling reference to the finisher, as winning `PARKED` does for a token
//! (see `task`), and the joiner switches away. The finisher publishes `DONE`, then schedules the
//! joiner. A thread blocked this way can be resumed by nobody else, so it is alive while the
//! finisher uses the pointer, on any worker, without a reference count; and no wake-up token is
//! touched (four locked instructions fewer per join than a counted joiner waiting on its token).
//! A kernel thread, or a green thread that is panicking (it may not switch), registers a counted
//! handle and waits on its `sys` token instead.
//!
//! The state word's transitions are [`JoinState`]'s, and the three parties' halves are
//! [`Output`]'s `finish`, `join` and `handle_dropped`, which `run`, [`JoinInner::join`] and the
//! handle's drop call; the loom models (`loom_models`) run those same methods.

use std::alloc::Layout;
use std::cell::UnsafeCell;
use std::mem::ManuallyDrop;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::loom::cell as shared;
use crate::loom::sync::atomic::AtomicU32;
use crate::park;
use crate::task::{self, Header, TaskRef, Vtable};

#[cfg(all(test, loom))]
mod loom_models;

const DONE: u32 = 1;
const WAITING: u32 = 2;
const DROPPED: u32 = 4;

/// The join state word and its transitions (module doc), used by the finisher ([`run`]), the
/// joiner ([`JoinInner::join`]) and the handle's drop alike.
pub(crate) struct JoinState(AtomicU32);

impl JoinState {
    fn new() -> JoinState {
        JoinState(AtomicU32::new(0))
    }

    /// The state (Acquire: a `DONE` seen here makes the output visible).
    #[inline]
    fn load(&self) -> u32 {
        self.0.load(Ordering::Acquire)
    }

    /// Finisher, once the output is written: publishes `DONE`. If a joiner waits (`WAITING`),
    /// `take_joiner` first empties its slot (the joiner touches it no more), then `DONE` is
    /// published, then `wake` gets what the slot held. Returns the state `DONE` was added to:
    /// `DROPPED` in it means nobody will take the output, so the finisher drops it.
    #[inline]
    fn finish<J>(&self, take_joiner: impl FnOnce() -> J, wake: impl FnOnce(J)) -> u32 {
        let mut st = self.0.load(Ordering::Acquire);
        loop {
            if st & WAITING != 0 {
                let joiner = take_joiner();
                self.0.fetch_or(DONE, Ordering::AcqRel);
                wake(joiner);
                return st;
            }
            match self
                .0
                .compare_exchange_weak(st, st | DONE, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return st,
                Err(now) => st = now,
            }
        }
    }

    /// Joiner, its slot filled: publishes `WAITING` over `st`; `false` if the state changed
    /// (only `DONE` can come: the joiner holds the handle).
    #[inline]
    fn publish_waiting(&self, st: u32) -> bool {
        self.0
            .compare_exchange(st, st | WAITING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The handle goes: publishes `DROPPED`; `true` if `DONE` came first (the output is then the
    /// handle's to drop).
    #[inline]
    fn drop_handle(&self) -> bool {
        self.0.fetch_or(DROPPED, Ordering::AcqRel) & DONE != 0
    }
}

/// Bookkeeping of a `scope`: how many of its threads still run, and whether one panicked with
/// nobody joining it.
pub(crate) struct ScopeData {
    pub(crate) running: AtomicUsize,
    pub(crate) a_thread_panicked: AtomicBool,
    pub(crate) owner: TaskRef,
}

impl ScopeData {
    fn thread_done(&self) {
        if self.running.fetch_sub(1, Ordering::Release) == 1 {
            self.owner.wake();
        }
    }
}

/// Who waits in `join`.
enum Joiner {
    None,
    /// A green thread that handed its scheduling reference to the finisher when it published
    /// `WAITING` (see the module doc).
    Blocked(NonNull<Header>),
    /// A kernel thread (or a panicking green thread, which may not switch), waiting on its `sys`
    /// token.
    Counted(TaskRef),
}

/// The output half of a cell.
pub(crate) struct Output<T> {
    state: JoinState,
    joiner: shared::UnsafeCell<Joiner>,
    value: shared::UnsafeCell<Option<std::thread::Result<T>>>,
    scope: Option<Arc<ScopeData>>,
}

#[repr(C)]
struct Cell<F, T> {
    header: Header,
    out: Output<T>,
    /// Taken by the thread when it first runs. A thread that has run is pinned (`Green::home` is
    /// set just before its first switch in), so `dealloc` tells from `home` whether the closure
    /// is still here (a flag for it made the cell of a small closure one allocation class
    /// larger).
    func: UnsafeCell<ManuallyDrop<F>>,
}

#[repr(C)]
pub(crate) struct Prefix<T> {
    header: Header,
    out: Output<T>,
}

impl<F, T> Cell<F, T>
where
    F: FnOnce() -> T,
{
    const VTABLE: Vtable = Vtable {
        run: run::<F, T>,
        dealloc: dealloc::<F, T>,
    };
}

/// Allocates the cell of a new green thread, whose stack `reservation` promises (of the runtime's
/// default class if `default_stack`). Its stack is taken, and its TLS area and first frame built,
/// at its first run (`park::local`), so nothing here touches stack memory.
///
/// Returns two references to it: the join handle's and the scheduling reference.
#[track_caller]
pub(crate) fn new_task<F, T>(
    name: Option<Box<str>>,
    reservation: crate::stack::Reservation,
    default_stack: bool,
    scope: Option<Arc<ScopeData>>,
    f: F,
) -> (TaskRef, TaskRef)
where
    F: FnOnce() -> T,
{
    // Built in place: spawn is hot, and a by-value `Box::new(Cell { .. })` copied the whole cell.
    let p = crate::task::small::alloc(Layout::new::<Cell<F, T>>()).cast::<Cell<F, T>>();
    let h = p.cast::<Header>();
    // SAFETY: `p` is a fresh, properly aligned allocation for a Cell<F, T>; each field is written
    // exactly once before the cell is shared. Two references: the handle's and the scheduler's.
    unsafe {
        Header::write_green(
            std::ptr::addr_of_mut!((*p).header),
            &Cell::<F, T>::VTABLE,
            name,
            reservation,
            default_stack,
            2,
            std::panic::Location::caller(),
        );
        std::ptr::addr_of_mut!((*p).out).write(Output::new(scope));
        std::ptr::addr_of_mut!((*p).func).write(UnsafeCell::new(ManuallyDrop::new(f)));
        let h = NonNull::new_unchecked(h);
        (TaskRef::from_raw(h), TaskRef::from_raw(h))
    }
}

/// Runs the closure and publishes its result. Never unwinds.
///
/// # Safety
/// `h` is the header of a `Cell<F, T>`, called once, on the thread's own stack.
unsafe fn run<F, T>(h: NonNull<Header>)
where
    F: FnOnce() -> T,
{
    let cell = h.cast::<Cell<F, T>>().as_ptr();
    // SAFETY: called once by the thread itself, which is pinned (its home is set: see `func`);
    // nothing else touches `func`.
    let f = unsafe { ManuallyDrop::take(&mut *(*cell).func.get()) };
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    // SAFETY: the header is alive while its thread runs.
    if unsafe { h.as_ref() }
        .green()
        .is_some_and(|g| g.tls_tp.get() != 0)
    {
        // The thread's own thread-locals are destroyed now, before `join` can see it finished,
        // as std's are before its native join returns. A destructor that panics aborts, as std.
        // SAFETY: the thread runs on its own TLS area, and its closure has returned.
        unsafe { crate::tls::exit_destructors() };
    }
    // Before the result is published (after which the cell may be freed), the watchdog stops
    // reading this thread (`task::watch`).
    // SAFETY: the header is alive while its thread runs; a started thread's home is the live
    // worker it runs on.
    if let Some(home) = unsafe { h.as_ref() }.green().map(|g| g.home.get()) {
        // SAFETY: as above.
        unsafe { (*home).watch.exiting() };
    }
    // SAFETY: the cell is alive (the running thread holds its scheduling reference); we are its
    // finisher, called once.
    unsafe { (*cell).out.finish(result) };
}

/// # Safety
/// `h` is the header of a `Cell<F, T>` whose last reference is being dropped.
unsafe fn dealloc<F, T>(h: NonNull<Header>)
where
    F: FnOnce() -> T,
{
    let p = h.cast::<Cell<F, T>>().as_ptr();
    // SAFETY: the last reference gives exclusive access to a cell `new_task` initialised.
    let cell = unsafe { &mut *p };
    // A thread is pinned at its first run, just before it switches in and takes its closure.
    let started = cell.header.green().is_some_and(|g| !g.home.get().is_null());
    if !started {
        // SAFETY: the closure was never taken.
        unsafe { ManuallyDrop::drop(cell.func.get_mut()) };
    }
    if let Some(s) = cell.header.green()
        // SAFETY: last reference: exclusive access.
        && let Some(stack) = unsafe { (*s.stack.get()).take() }
    {
        crate::stack::free(stack);
    }
    // SAFETY: drop the initialised fields (the closure is ManuallyDrop, handled above), then
    // give the memory back with the layout it was allocated with.
    unsafe {
        std::ptr::drop_in_place(p);
        crate::task::small::free(p.cast(), Layout::new::<Cell<F, T>>());
    }
}

impl<T> Output<T> {
    fn new(scope: Option<Arc<ScopeData>>) -> Output<T> {
        Output {
            state: JoinState::new(),
            joiner: shared::UnsafeCell::new(Joiner::None),
            value: shared::UnsafeCell::new(None),
            scope,
        }
    }

    /// The finisher's half: publishes the thread's result and wakes a waiting joiner.
    ///
    /// # Safety
    /// Called once, by the finishing thread.
    #[inline]
    unsafe fn finish(&self, result: std::thread::Result<T>) {
        // SAFETY: only the finishing thread writes the value, before publishing DONE.
        self.value.with_mut(|v| unsafe { *v = Some(result) });
        let prev = self.state.finish(
            || {
                self.joiner.with_mut(|j| {
                    // SAFETY: the joiner published WAITING (Release) after storing itself, and
                    // touches the slot no more; join consumed the handle, so DROPPED cannot come.
                    unsafe { std::mem::replace(&mut *j, Joiner::None) }
                })
            },
            |joiner| match joiner {
                Joiner::Blocked(p) => {
                    // SAFETY: the joiner gave us its scheduling reference with WAITING; it is
                    // blocked until we schedule it, so it is alive.
                    park::schedule(unsafe { TaskRef::from_raw(p) });
                }
                Joiner::Counted(j) => j.wake(),
                Joiner::None => unreachable!("hilos: WAITING without a joiner"),
            },
        );
        if prev & DROPPED != 0 {
            // SAFETY: the handle is gone and saw no DONE, so nobody else touches the value.
            unsafe { self.drop_unjoined() };
        }
        if let Some(scope) = &self.scope {
            scope.thread_done();
        }
    }

    /// The joiner's half: waits for `DONE` and takes the result. `cur` is the calling green
    /// thread, if it is one.
    ///
    /// # Safety
    /// Called once, by the holder of the handle, which does not drop it afterwards
    /// ([`Output::handle_dropped`] is not called).
    #[inline]
    unsafe fn join(&self, cur: Option<NonNull<Header>>) -> std::thread::Result<T> {
        let st = self.state.load();
        if st & DONE == 0 {
            match cur {
                Some(p) if park::may_switch() => {
                    // SAFETY: before publishing WAITING the joiner slot is ours alone.
                    self.joiner.with_mut(|j| unsafe { *j = Joiner::Blocked(p) });
                    if self.state.publish_waiting(st) {
                        // SAFETY: WAITING handed our scheduling reference to the finisher, which
                        // schedules us exactly once, after publishing DONE.
                        unsafe { park::block_current(p, task::ThreadState::Join) };
                    } else {
                        // DONE arrived first: the finisher saw no WAITING; the slot is ours.
                        // SAFETY: as above.
                        self.joiner.with_mut(|j| unsafe { *j = Joiner::None });
                    }
                }
                _ => {
                    // SAFETY: before publishing WAITING the joiner slot is ours alone.
                    self.joiner
                        .with_mut(|j| unsafe { *j = Joiner::Counted(task::current()) });
                    if self.state.publish_waiting(st) {
                        while self.state.load() & DONE == 0 {
                            park::park(task::Which::Sys, None, task::ThreadState::Join);
                        }
                    } else {
                        // SAFETY: DONE arrived first; the slot is still ours.
                        drop(
                            self.joiner
                                .with_mut(|j| unsafe { std::mem::replace(&mut *j, Joiner::None) }),
                        );
                    }
                }
            }
            debug_assert!(self.state.load() & DONE != 0);
        }
        // SAFETY: DONE is set (Acquire) and the handle is not dropped: the value is ours.
        let v = self.value.with_mut(|v| unsafe { (*v).take() });
        v.expect("hilos: joined a thread whose result was already taken")
    }

    /// The handle's drop without a join: publishes `DROPPED`, and drops the output if the
    /// finisher already left it.
    ///
    /// # Safety
    /// Called once, by the holder of the handle, which has not joined.
    #[inline]
    unsafe fn handle_dropped(&self) {
        if self.state.drop_handle() {
            // SAFETY: DONE was set before DROPPED: the finisher left the value to us.
            unsafe { self.drop_unjoined() };
        }
    }

    /// Drops an output nobody will take, outside any unwinding (as std: a panicking drop of a
    /// thread's result aborts), and records an unjoined panic for the scope.
    ///
    /// # Safety
    /// The caller is the one party entitled to the value (see the module doc).
    unsafe fn drop_unjoined(&self) {
        // SAFETY: per the contract.
        let Some(v) = self.value.with_mut(|v| unsafe { (*v).take() }) else {
            return; // joined: nothing left to drop
        };
        let panicked = v.is_err();
        if panic::catch_unwind(AssertUnwindSafe(move || drop(v))).is_err() {
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"fatal runtime error: drop of the result of a hilos thread panicked, aborting\n",
            );
            std::process::abort();
        }
        if panicked && let Some(s) = &self.scope {
            s.a_thread_panicked.store(true, Ordering::Relaxed);
        }
    }
}

/// The shared part of `JoinHandle` and `ScopedJoinHandle`: a reference to a `Cell<_, T>`.
pub(crate) struct JoinInner<T> {
    task: TaskRef,
    _marker: std::marker::PhantomData<fn() -> T>,
}

// SAFETY: the handle moves the output (T: Send, checked at spawn) to whoever joins.
unsafe impl<T: Send> Send for JoinInner<T> {}
// SAFETY: `&JoinInner` only exposes `is_finished` and the thread's header.
unsafe impl<T> Sync for JoinInner<T> {}

impl<T> JoinInner<T> {
    /// # Safety
    /// `task` is the handle's reference to a `Cell<_, T>` made by `new_task`.
    pub(crate) unsafe fn new(task: TaskRef) -> JoinInner<T> {
        JoinInner {
            task,
            _marker: std::marker::PhantomData,
        }
    }

    fn out(&self) -> &Output<T> {
        // SAFETY: the header is the prefix of a Cell<_, T> (constructor's contract), so it is
        // also a Prefix<T>.
        unsafe { &(*self.task.as_ptr().cast::<Prefix<T>>().as_ptr()).out }
    }

    pub(crate) fn task(&self) -> &TaskRef {
        &self.task
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.out().state.load() & DONE != 0
    }

    /// Waits for the thread to finish and takes its result.
    pub(crate) fn join(self) -> std::thread::Result<T> {
        task::fork::check();
        let out = self.out();
        let cur = task::current_green();
        if let Some(p) = cur
            // SAFETY: the running green thread's header is alive while it runs.
            && let Some(g) = unsafe { p.as_ref() }.green()
        {
            // A spawner that joins is not an accept loop: its next spawns stay on its worker
            // (`scheduler`, "Placement").
            g.spawned.set(0);
        }
        // SAFETY: we hold the handle, and `join` consumes it without running its Drop.
        let v = unsafe { out.join(cur) };
        // The finisher is done with the output (it published DONE) and the value is taken, so
        // the handle's Drop (which marks DROPPED, a locked instruction) has nothing left to do:
        // release only the reference.
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used again; its only other field is a marker.
        drop(unsafe { std::ptr::read(&this.task) });
        v
    }
}

impl<T> Drop for JoinInner<T> {
    fn drop(&mut self) {
        // SAFETY: the handle goes without a join (`join` skips this Drop).
        unsafe { self.out().handle_dropped() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spawn burst keeps every thread's cell until it is joined, so the cell's size is most of
    /// a burst's memory (`scheduler`, "Spawn bursts"): the cell of a small closure returning a
    /// word must stay within `task::small`'s 256-byte class (it took 280 bytes, the 320-byte
    /// class, while the header kept a copy of the guard range and the cell a `started` flag).
    #[test]
    fn a_small_threads_cell_fits_256_bytes() {
        fn size<F: FnOnce() -> u64>(_: &F) -> usize {
            std::mem::size_of::<Cell<F, u64>>()
        }
        let i = 5u64;
        let n = size(&move || i);
        assert!(n <= 256, "a cell of {n} bytes");
    }
}
