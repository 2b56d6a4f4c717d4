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

use std::alloc::Layout;
use std::cell::UnsafeCell;
use std::mem::ManuallyDrop;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use crate::park;
use crate::task::{self, Header, TaskRef, Vtable};

const DONE: u32 = 1;
const WAITING: u32 = 2;
const DROPPED: u32 = 4;

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
    state: AtomicU32,
    joiner: UnsafeCell<Joiner>,
    value: UnsafeCell<Option<std::thread::Result<T>>>,
    scope: Option<Arc<ScopeData>>,
}

#[repr(C)]
struct Cell<F, T> {
    header: Header,
    out: Output<T>,
    func: UnsafeCell<ManuallyDrop<F>>,
    started: UnsafeCell<bool>,
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

/// Allocates the cell of a new green thread and builds its stack frame.
///
/// Returns two references to it: the join handle's and the scheduling reference.
pub(crate) fn new_task<F, T>(
    name: Option<Box<str>>,
    stack: crate::stack::Stack,
    default_stack: bool,
    scope: Option<Arc<ScopeData>>,
    f: F,
) -> (TaskRef, TaskRef)
where
    F: FnOnce() -> T,
{
    // With per-green-thread TLS, the thread's TLS area takes the top of its stack mapping, and
    // its stack starts below it.
    let area = crate::tls::area_size();
    let tls_tp = if area == 0 {
        0
    } else {
        let top = stack.top() as usize;
        let lo = stack.limit() as usize;
        // SAFETY: the area is the top `area` bytes of a stack we own that nothing runs on.
        unsafe { crate::tls::prepare(top, (lo, top - area - lo)) }
    };
    let top = stack.top().wrapping_sub(area);
    // Built in place: spawn is hot, and a by-value `Box::new(Cell { .. })` copied the whole cell.
    let p = crate::task::small::alloc(Layout::new::<Cell<F, T>>()).cast::<Cell<F, T>>();
    let h = p.cast::<Header>();
    // SAFETY: `top` is the top of the stack this cell will own; nothing runs on it yet. The entry
    // receives the header, which lives as long as the scheduling reference.
    let sp = unsafe { crate::arch::init_stack(top, park::green_entry, h as *mut u8) };
    // SAFETY: `p` is a fresh, properly aligned allocation for a Cell<F, T>; each field is written
    // exactly once before the cell is shared. Two references: the handle's and the scheduler's.
    unsafe {
        Header::write_green(
            std::ptr::addr_of_mut!((*p).header),
            &Cell::<F, T>::VTABLE,
            name,
            stack,
            default_stack,
            sp,
            tls_tp,
            2,
        );
        std::ptr::addr_of_mut!((*p).out).write(Output {
            state: AtomicU32::new(0),
            joiner: UnsafeCell::new(Joiner::None),
            value: UnsafeCell::new(None),
            scope,
        });
        std::ptr::addr_of_mut!((*p).func).write(UnsafeCell::new(ManuallyDrop::new(f)));
        std::ptr::addr_of_mut!((*p).started).write(UnsafeCell::new(false));
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
    // SAFETY: called once by the thread itself; nothing else touches `func`/`started`.
    let f = unsafe {
        *(*cell).started.get() = true;
        ManuallyDrop::take(&mut *(*cell).func.get())
    };
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    // SAFETY: the header is alive while its thread runs.
    if unsafe { h.as_ref() }.green().is_some_and(|g| g.tls_tp != 0) {
        // The thread's own thread-locals are destroyed now, before `join` can see it finished,
        // as std's are before its native join returns. A destructor that panics aborts, as std.
        // SAFETY: the thread runs on its own TLS area, and its closure has returned.
        unsafe { crate::tls::exit_destructors() };
    }
    // SAFETY: the cell is alive (the running thread holds its scheduling reference).
    let out = unsafe { &(*cell).out };
    // SAFETY: only the finishing thread writes the value, before publishing DONE.
    unsafe { *out.value.get() = Some(result) };
    let mut st = out.state.load(Ordering::Acquire);
    let prev = loop {
        if st & WAITING != 0 {
            // SAFETY: the joiner published WAITING (Release) after storing itself, and touches
            // the slot no more; join consumed the handle, so DROPPED cannot come.
            let joiner = unsafe { std::mem::replace(&mut *out.joiner.get(), Joiner::None) };
            match joiner {
                Joiner::Blocked(p) => {
                    out.state.fetch_or(DONE, Ordering::AcqRel);
                    // SAFETY: the joiner gave us its scheduling reference with WAITING; it is
                    // blocked until we schedule it, so it is alive.
                    park::schedule(unsafe { TaskRef::from_raw(p) });
                }
                Joiner::Counted(j) => {
                    out.state.fetch_or(DONE, Ordering::AcqRel);
                    j.wake();
                }
                Joiner::None => unreachable!("hilos: WAITING without a joiner"),
            }
            break st;
        }
        match out
            .state
            .compare_exchange_weak(st, st | DONE, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => break st,
            Err(now) => st = now,
        }
    };
    if prev & DROPPED != 0 {
        // SAFETY: the handle is gone and saw no DONE, so nobody else touches the value.
        unsafe { out.drop_unjoined() };
    }
    if let Some(scope) = &out.scope {
        scope.thread_done();
    }
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
    if !*cell.started.get_mut() {
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
    /// Drops an output nobody will take, outside any unwinding (as std: a panicking drop of a
    /// thread's result aborts), and records an unjoined panic for the scope.
    ///
    /// # Safety
    /// The caller is the one party entitled to the value (see the module doc).
    unsafe fn drop_unjoined(&self) {
        // SAFETY: per the contract.
        let Some(v) = (unsafe { (*self.value.get()).take() }) else {
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
        self.out().state.load(Ordering::Acquire) & DONE != 0
    }

    /// Waits for the thread to finish and takes its result.
    pub(crate) fn join(self) -> std::thread::Result<T> {
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
        let st = out.state.load(Ordering::Acquire);
        if st & DONE == 0 {
            match cur {
                Some(p) if park::may_switch() => {
                    // SAFETY: before publishing WAITING the joiner slot is ours alone.
                    unsafe { *out.joiner.get() = Joiner::Blocked(p) };
                    match out.state.compare_exchange(
                        st,
                        st | WAITING,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        // SAFETY: WAITING handed our scheduling reference to the finisher, which
                        // schedules us exactly once, after publishing DONE.
                        Ok(_) => unsafe { park::block_current() },
                        // DONE arrived first: the finisher saw no WAITING; the slot is ours.
                        // SAFETY: as above.
                        Err(_) => unsafe { *out.joiner.get() = Joiner::None },
                    }
                }
                _ => {
                    // SAFETY: before publishing WAITING the joiner slot is ours alone.
                    unsafe { *out.joiner.get() = Joiner::Counted(task::current()) };
                    match out.state.compare_exchange(
                        st,
                        st | WAITING,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => {
                            while out.state.load(Ordering::Acquire) & DONE == 0 {
                                park::park(task::Which::Sys, None);
                            }
                        }
                        Err(_) => {
                            // SAFETY: DONE arrived first; the slot is still ours.
                            drop(unsafe {
                                std::mem::replace(&mut *out.joiner.get(), Joiner::None)
                            });
                        }
                    }
                }
            }
            debug_assert!(out.state.load(Ordering::Acquire) & DONE != 0);
        }
        // SAFETY: DONE is set (Acquire) and the handle is not dropped: the value is ours.
        let v = unsafe { (*out.value.get()).take() };
        // The finisher is done with the output (it published DONE) and the value is taken, so
        // the handle's Drop (which marks DROPPED, a locked instruction) has nothing left to do:
        // release only the reference.
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used again; its only other field is a marker.
        drop(unsafe { std::ptr::read(&this.task) });
        v.expect("hilos: joined a thread whose result was already taken")
    }
}

impl<T> Drop for JoinInner<T> {
    fn drop(&mut self) {
        let out = self.out();
        let prev = out.state.fetch_or(DROPPED, Ordering::AcqRel);
        if prev & DONE != 0 {
            // SAFETY: DONE was set before DROPPED: the finisher left the value to us.
            unsafe { out.drop_unjoined() };
        }
    }
}
