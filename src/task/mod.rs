//! The thread control block: the leaf that `park`, `driver`, `scheduler`, `sync` and `io` all
//! stand on.
//!
//! # The problem
//! A thread of hilos is either a green thread (a stack switched by `arch`, run by a worker) or a
//! plain kernel thread that calls into hilos (`join` from `main`, a `Mutex` shared with a std
//! thread). Blocking code must be written once for both, and a wake-up must never be lost, whatever
//! order the waker and the sleeper run in, on whichever kernel threads.
//!
//! # The design
//! Every thread has a [`Header`], reached through the refcounted [`TaskRef`]. A header carries two
//! independent wake-up *tokens* (std's park token semantics: at most one pending wake-up):
//! - `user`: the token of [`crate::thread::park`] / [`crate::Thread::unpark`];
//! - `sys`: the token that hilos's own blocking code (join, locks, channels, I/O) waits on, so that
//!   a user's `unpark` and an internal wake-up never consume each other's token.
//!
//! A token is one `AtomicU32`: `EMPTY`, `NOTIFIED`, `PARKED` (a green thread switched away) or
//! `PARKED_OS` (a kernel thread, or a green thread that may not switch, waits on the futex word
//! itself). A waiter moves `EMPTY -> PARKED*` with a compare-exchange; a waker *swaps* in
//! `NOTIFIED` and acts on what it replaced: `PARKED` means the waker now owns the sleeper's
//! scheduling reference and must make it runnable; `PARKED_OS` means a futex wake. Exactly one party
//! sees each `PARKED`, so a green thread is made runnable at most once per wait, and because the
//! swap is total, a wake-up that lands before the waiter's compare-exchange is seen by it. The
//! waiting and waking sides of this protocol are `park` (which also model-checks it under loom).
//!
//! A green thread that has run is pinned to its worker (DESIGN-NOTES section 1), whose run queue
//! ([`runq::Home`], in its own file) its header names.
//!
//! # The scheduling reference
//! A live green thread has exactly one "scheduling" reference: it sits in a queue, or is the
//! worker's current thread, or, while the thread is parked, is held implicitly by the parked state.
//! The waker that replaces `PARKED` takes that reference over ([`TaskRef::from_raw`]); no reference
//! count is touched on the wake-up path. Other protocols may hold it the same way: a green thread
//! waiting in `join` hands it to the finishing thread through the join state (`spawner::cell`),
//! which passes it to `park::schedule`.

pub(crate) mod fork;
pub(crate) mod futex;
pub(crate) mod runq;
pub(crate) mod small;
pub(crate) mod stats;
pub(crate) mod wait;
pub(crate) mod wakefd;
pub(crate) mod watch;

use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::num::NonZeroU64;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::loom::sync::atomic::{AtomicPtr, AtomicU32};

use crate::stack::Stack;
use runq::Home;
pub use wait::{IoOp, ThreadState};

/// A unique identifier for a running thread of hilos, green or kernel.
///
/// As std's [`std::thread::ThreadId`]: identifiers are never reused in a process. Green threads
/// and the kernel threads that call into hilos share one sequence; a hilos `ThreadId` is not
/// comparable with a std one.
///
/// # Examples
///
/// ```
/// let here = hilos::thread::current().id();
/// let there = hilos::spawn(|| hilos::thread::current().id()).join().unwrap();
/// assert_ne!(here, there);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ThreadId(NonZeroU64);

impl ThreadId {
    /// A fresh id. Ids are handed to each kernel thread in blocks, so spawning on several workers
    /// does not contend on one shared counter.
    #[inline]
    fn next() -> ThreadId {
        const BLOCK: u64 = 1024;
        static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);
        thread_local! {
            // (next id, end of the block)
            static IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
        }
        let take_block = || {
            let start = NEXT_BLOCK.fetch_add(BLOCK, Ordering::Relaxed);
            assert!(
                start < u64::MAX - BLOCK,
                "hilos: thread id counter exhausted"
            );
            (start, start + BLOCK)
        };
        let id = IDS
            .try_with(|c| {
                let (mut next, mut end) = c.get();
                if next == end {
                    (next, end) = take_block();
                }
                c.set((next + 1, end));
                next
            })
            .unwrap_or_else(|_| take_block().0);
        ThreadId(NonZeroU64::new(id).expect("hilos: thread ids start at 1"))
    }

    /// The identifier as a number, unique within the process.
    pub fn as_u64(&self) -> NonZeroU64 {
        self.0
    }
}

impl fmt::Debug for ThreadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ThreadId").field(&self.0).finish()
    }
}

pub(crate) const EMPTY: u32 = 0;
pub(crate) const NOTIFIED: u32 = 1;
pub(crate) const PARKED: u32 = 2;
pub(crate) const PARKED_OS: u32 = 3;

/// A wake-up token (see the module doc for its states and protocol).
pub(crate) struct Token(AtomicU32);

impl Token {
    crate::loom::const_fn! {
        pub(crate) const fn new() -> Token {
            Token(AtomicU32::new(EMPTY))
        }
    }

    /// Consumes a pending wake-up, if there is one.
    #[inline]
    pub(crate) fn try_consume(&self) -> bool {
        self.0
            .compare_exchange(NOTIFIED, EMPTY, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Moves `EMPTY` to `parked_state`; `false` if a wake-up arrived first (it is consumed).
    #[inline]
    pub(crate) fn begin_park(&self, parked_state: u32) -> bool {
        match self
            .0
            .compare_exchange(EMPTY, parked_state, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(_) => {
                // The only other state a waiter can see here is NOTIFIED: consume it.
                self.0.store(EMPTY, Ordering::Relaxed);
                false
            }
        }
    }

    /// Ends a wait of either kind: consumes whatever wake-up is pending.
    #[inline]
    pub(crate) fn end_park(&self) {
        self.0.swap(EMPTY, Ordering::Acquire);
    }

    /// Ends a green wait: consumes whatever wake-up is pending; `true` if there was one (the
    /// thread was woken, not timed out).
    ///
    /// A load and a conditional store instead of a swap: the thread is running, so the token is
    /// `NOTIFIED` or `EMPTY`, and the only concurrent change is a waker storing `NOTIFIED` again
    /// (it sees no `PARKED`, so it does nothing else). Either order of that store and ours is a
    /// valid linearisation ("the wake-up came before the consume"), and we save a locked
    /// instruction on every wake-up.
    #[inline]
    pub(crate) fn finish_wait(&self) -> bool {
        if self.0.load(Ordering::Acquire) == NOTIFIED {
            self.0.store(EMPTY, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// A timer's way out of `PARKED`: `true` if the timer won (no waker will touch the thread).
    #[inline]
    pub(crate) fn cancel_park(&self, parked_state: u32) -> bool {
        self.0
            .compare_exchange(parked_state, EMPTY, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    pub(crate) fn word(&self) -> &AtomicU32 {
        &self.0
    }

    /// Delivers a wake-up; returns the state it replaced.
    #[inline]
    pub(crate) fn notify(&self) -> u32 {
        self.0.swap(NOTIFIED, Ordering::AcqRel)
    }

    /// Delivers a wake-up and acts on the state it replaced: `PARKED` hands the caller the
    /// sleeper's scheduling reference, which `schedule` must make runnable; `PARKED_OS` means a
    /// futex wake (module doc). The waking half of the protocol, in one place for `park` and the
    /// loom models.
    #[inline]
    pub(crate) fn wake(&self, schedule: impl FnOnce()) {
        match self.notify() {
            PARKED => schedule(),
            PARKED_OS => futex::wake(&self.0, 1),
            _ => {}
        }
    }
}

/// Which of a thread's two tokens.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Which {
    User,
    Sys,
}

/// Per-type operations of a task allocation (the header is the prefix of a larger, generic cell).
pub(crate) struct Vtable {
    /// Runs the thread's body on its own stack. Must not unwind.
    pub(crate) run: unsafe fn(NonNull<Header>),
    /// Drops and deallocates the whole cell; called when the last reference goes.
    pub(crate) dealloc: unsafe fn(NonNull<Header>),
}

/// The state only a green thread has.
pub(crate) struct Green {
    /// Saved stack pointer while the thread is not running (null before its first run, which
    /// builds its first frame: `park::local`).
    pub(crate) sp: UnsafeCell<*mut u8>,
    /// The thread's stack: bound at its first run (`scheduler`, "Spawn bursts"); `None` before
    /// that and once it has exited and the stack went back to the pool.
    pub(crate) stack: UnsafeCell<Option<Stack>>,
    /// The stack promised at spawn, until the first run takes it.
    pub(crate) reservation: UnsafeCell<Option<crate::stack::Reservation>>,
    /// The worker the thread is pinned to; set at its first run, never changed afterwards. Not
    /// counted: a worker's `Home` lives as long as its runtime's workers, which do not exit while
    /// any of their threads is alive (see `schedule` for the remote waker).
    pub(crate) home: Cell<*const Home>,
    /// The stack has the runtime's default size (so it may go to the worker's stack cache).
    pub(crate) default_stack: bool,
    /// Number of the current wait, so that a stale timer recognises it is stale.
    pub(crate) wait_gen: Cell<u64>,
    /// What the current wait is on: `WAIT_*`.
    pub(crate) wait_on: Cell<u8>,
    /// The thread pointer of the thread's own TLS area (`tls`), or 0 when thread-locals are
    /// shared with the worker. Set before the thread first runs (0 until then), fixed from then
    /// on.
    pub(crate) tls_tp: Cell<usize>,
    /// Bursts of spawns this thread made since it last joined a thread (saturating): spawns with
    /// a switch of its worker between them. The scheduler's sign of a spawner that spawns and
    /// carries on, such as an accept loop (see `scheduler`, "Placement"). Touched only by the
    /// thread itself, while it runs.
    pub(crate) spawned: Cell<u32>,
    /// The worker's switch count (`park::local::Local::tick`) at this thread's last spawn: a
    /// spawn at the same count belongs to the same burst as the last one, and is not counted
    /// in `spawned` again (`scheduler`, "Placement"). Touched only by the thread itself.
    pub(crate) spawn_tick: Cell<u32>,
    /// Placed on another worker's inbox before its first run, and counted there as placed
    /// (`scheduler`, "Placement"). Written by the placer before the inbox push, read by the
    /// worker that pins it after draining the inbox.
    pub(crate) placed: Cell<bool>,
    /// What the thread waits on while parked, `Runnable` otherwise (`wait`; for dumps).
    pub(crate) state: Cell<ThreadState>,
    /// When it parked, on the coarse clock (`wait::coarse_now`).
    pub(crate) since_ms: Cell<u32>,
    /// Where it was spawned (the `#[track_caller]` location of the spawning call).
    pub(crate) spawned_at: &'static std::panic::Location<'static>,
    /// Links of its home worker's list of started threads (`park::local`, the dump's registry).
    /// Touched only by that worker's kernel thread.
    pub(crate) reg_prev: Cell<*const Header>,
    pub(crate) reg_next: Cell<*const Header>,
}

pub(crate) const WAIT_NONE: u8 = 0;
pub(crate) const WAIT_USER: u8 = 1;
pub(crate) const WAIT_SYS: u8 = 2;
pub(crate) const WAIT_SLEEP: u8 = 3;

pub(crate) enum Kind {
    Green(Green),
    Kernel(std::thread::Thread),
}

/// The control block shared by every thread of hilos.
#[repr(C)]
pub(crate) struct Header {
    refs: AtomicUsize,
    vtable: &'static Vtable,
    id: ThreadId,
    name: Option<Box<str>>,
    pub(crate) user: Token,
    pub(crate) sys: Token,
    /// Link of the intrusive inbox (green threads only).
    link: AtomicPtr<Header>,
    pub(crate) kind: Kind,
}

// SAFETY: the fields shared between kernel threads are atomics or immutable after construction;
// the `UnsafeCell`/`Cell` fields of `Green` are touched only by the kernel thread that currently
// owns the green thread (its home worker, or before the first run the one that popped it), as the
// protocols in this module and in `scheduler` ensure.
unsafe impl Sync for Header {}
// SAFETY: as above; a header moves between kernel threads only through the queues' hand-offs.
unsafe impl Send for Header {}

impl Header {
    /// Writes, in place, a new header with `refs` references for a green thread that has not
    /// run, whose stack `reservation` promises for its first run (of the runtime's default class
    /// if `default_stack`). (In place: spawn is hot, and building the header on the stack and
    /// copying it into the allocation showed up in profiles.)
    ///
    /// # Safety
    /// `dst` is valid for writes of a `Header` and properly aligned.
    #[inline]
    pub(crate) unsafe fn write_green(
        dst: *mut Header,
        vtable: &'static Vtable,
        name: Option<Box<str>>,
        reservation: crate::stack::Reservation,
        default_stack: bool,
        refs: usize,
        spawned_at: &'static std::panic::Location<'static>,
    ) {
        // SAFETY: per the contract, every field pointer is valid for writes.
        unsafe {
            ptr::addr_of_mut!((*dst).refs).write(AtomicUsize::new(refs));
            ptr::addr_of_mut!((*dst).vtable).write(vtable);
            ptr::addr_of_mut!((*dst).id).write(ThreadId::next());
            ptr::addr_of_mut!((*dst).name).write(name);
            ptr::addr_of_mut!((*dst).user).write(Token::new());
            ptr::addr_of_mut!((*dst).sys).write(Token::new());
            ptr::addr_of_mut!((*dst).link).write(AtomicPtr::new(ptr::null_mut()));
            ptr::addr_of_mut!((*dst).kind).write(Kind::Green(Green {
                sp: UnsafeCell::new(ptr::null_mut()),
                stack: UnsafeCell::new(None),
                reservation: UnsafeCell::new(Some(reservation)),
                home: Cell::new(ptr::null()),
                default_stack,
                wait_gen: Cell::new(0),
                wait_on: Cell::new(WAIT_NONE),
                tls_tp: Cell::new(0),
                spawned: Cell::new(0),
                spawn_tick: Cell::new(0),
                placed: Cell::new(false),
                state: Cell::new(ThreadState::Runnable),
                since_ms: Cell::new(0),
                spawned_at,
                reg_prev: Cell::new(ptr::null()),
                reg_next: Cell::new(ptr::null()),
            }));
        }
    }

    pub(crate) fn id(&self) -> ThreadId {
        self.id
    }

    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    pub(crate) fn green(&self) -> Option<&Green> {
        match &self.kind {
            Kind::Green(g) => Some(g),
            Kind::Kernel(_) => None,
        }
    }

    /// The body-running function of this thread's cell.
    pub(crate) fn vtable_run(&self) -> unsafe fn(NonNull<Header>) {
        self.vtable.run
    }

    pub(crate) fn token(&self, which: Which) -> &Token {
        match which {
            Which::User => &self.user,
            Which::Sys => &self.sys,
        }
    }
}

/// A counted reference to a [`Header`].
pub(crate) struct TaskRef(NonNull<Header>);

// SAFETY: `Header` is Send + Sync (see above) and the count is atomic.
unsafe impl Send for TaskRef {}
// SAFETY: as above.
unsafe impl Sync for TaskRef {}

impl TaskRef {
    /// Takes over a reference previously leaked by [`TaskRef::into_raw`] (or implied by a
    /// protocol, such as the scheduling reference of a parked thread).
    ///
    /// # Safety
    /// `ptr` must carry one reference that the caller owns and gives up.
    #[inline]
    pub(crate) unsafe fn from_raw(ptr: NonNull<Header>) -> TaskRef {
        TaskRef(ptr)
    }

    /// Leaks the reference as a raw pointer (see [`TaskRef::from_raw`]).
    #[inline]
    pub(crate) fn into_raw(self) -> NonNull<Header> {
        let p = self.0;
        std::mem::forget(self);
        p
    }

    #[inline]
    pub(crate) fn as_ptr(&self) -> NonNull<Header> {
        self.0
    }

    /// A new counted reference to the header `ptr` points at.
    ///
    /// # Safety
    /// `ptr` must point at a live header (some reference to it is held for the duration).
    #[inline]
    pub(crate) unsafe fn clone_from_ptr(ptr: NonNull<Header>) -> TaskRef {
        // SAFETY: the caller guarantees the header is live.
        unsafe { ptr.as_ref() }.refs.fetch_add(1, Ordering::Relaxed);
        TaskRef(ptr)
    }
}
impl Clone for TaskRef {
    #[inline]
    fn clone(&self) -> TaskRef {
        // Relaxed is enough for an increment: the new reference is derived from a live one.
        self.refs.fetch_add(1, Ordering::Relaxed);
        TaskRef(self.0)
    }
}

impl Drop for TaskRef {
    #[inline]
    fn drop(&mut self) {
        if self.refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        std::sync::atomic::fence(Ordering::Acquire);
        // SAFETY: this was the last reference; the vtable matches the allocation.
        unsafe { (self.vtable.dealloc)(self.0) }
    }
}

impl std::ops::Deref for TaskRef {
    type Target = Header;
    #[inline]
    fn deref(&self) -> &Header {
        // SAFETY: a TaskRef keeps its header alive.
        unsafe { self.0.as_ref() }
    }
}

impl PartialEq for TaskRef {
    fn eq(&self, other: &TaskRef) -> bool {
        self.0 == other.0
    }
}

// ---------------------------------------------------------------------------------------------
// Kernel threads' headers.

#[repr(C)]
struct KernelCell {
    header: Header,
}

static KERNEL_VTABLE: Vtable = Vtable {
    run: kernel_run,
    dealloc: kernel_dealloc,
};

/// # Safety
/// Never called: a kernel thread's header is not scheduled.
unsafe fn kernel_run(_: NonNull<Header>) {
    unreachable!("hilos: a kernel thread's header was scheduled")
}

/// # Safety
/// `h` must be the last reference to a header made by `new_kernel`.
unsafe fn kernel_dealloc(h: NonNull<Header>) {
    // SAFETY: allocated as a Box<KernelCell> whose first field is the header (repr(C)).
    drop(unsafe { Box::from_raw(h.as_ptr() as *mut KernelCell) });
}

fn new_kernel() -> TaskRef {
    let std_thread = std::thread::current();
    let name = std_thread.name().map(Box::from);
    let cell = Box::new(KernelCell {
        header: Header {
            refs: AtomicUsize::new(1),
            vtable: &KERNEL_VTABLE,
            id: ThreadId::next(),
            name,
            user: Token::new(),
            sys: Token::new(),
            link: AtomicPtr::new(ptr::null_mut()),
            kind: Kind::Kernel(std_thread),
        },
    });
    let p = NonNull::from(Box::leak(cell)).cast::<Header>();
    // SAFETY: the fresh allocation carries the one reference we give to the TaskRef.
    unsafe { TaskRef::from_raw(p) }
}

thread_local! {
    /// The green thread running on this kernel thread (null on the scheduler's own stack and on
    /// kernel threads that are not workers). Set by the scheduler at every switch.
    static CURRENT_GREEN: Cell<*const Header> = const { Cell::new(ptr::null()) };
}

crate::loom::thread_local! {
    /// Lazily made header of a kernel thread that calls into hilos (under loom, one per loom
    /// thread and execution: the header holds the execution's atomics).
    static KERNEL_SELF: std::cell::OnceCell<TaskRef> = const { std::cell::OnceCell::new() };
}

/// The green thread running on this kernel thread, if any.
///
/// `#[inline(never)]`: re-read after every switch, never cached by the caller's code generation.
#[inline(never)]
pub(crate) fn current_green() -> Option<NonNull<Header>> {
    NonNull::new(CURRENT_GREEN.with(|c| c.get()) as *mut Header)
}

/// Whether a green thread is running on this kernel thread: one thread-local load, inlined, for
/// the `hook` feature's pass-through test (kernel threads, workers' scheduler contexts and pool
/// threads read null). Not for anything that lives across a switch: use [`current_green`].
#[cfg(feature = "hook")]
#[inline(always)]
pub(crate) fn on_green() -> bool {
    !CURRENT_GREEN.with(|c| c.get()).is_null()
}

/// Called by the switch when green threads share the worker's thread-locals. With
/// per-green-thread TLS (`tls`, a thread's `Green::tls_tp` is non-zero) each green thread's own
/// `CURRENT_GREEN` holds itself for good ([`current_green_slot`]) and the worker's stays null,
/// so the switch does not call this.
#[inline]
pub(crate) fn set_current_green(h: *const Header) {
    CURRENT_GREEN.with(|c| c.set(h));
}

/// The address of the calling thread's `CURRENT_GREEN`, for `tls::write_as`.
pub(crate) fn current_green_slot() -> *const usize {
    CURRENT_GREEN.with(|c| c.as_ptr().cast::<usize>().cast_const())
}

/// The calling thread, green or kernel.
pub(crate) fn current() -> TaskRef {
    match current_green() {
        // SAFETY: the running green thread is alive while it runs.
        Some(p) => unsafe { TaskRef::clone_from_ptr(p) },
        None => KERNEL_SELF
            .try_with(|k| k.get_or_init(new_kernel).clone())
            // During thread-local destruction: a fresh header (its id is new; nothing better).
            .unwrap_or_else(|_| new_kernel()),
    }
}

/// For the stack-overflow handler: if `addr` is in the guard of the green stack running on this
/// kernel thread, writes its name into `buf` and returns the name's length. Async-signal-safe:
/// reads one const-initialised thread-local and fields fixed before the thread first ran.
pub(crate) fn overflow_lookup(addr: usize, buf: &mut [u8]) -> Option<usize> {
    let cur = CURRENT_GREEN.try_with(|c| c.get()).ok()?;
    if cur.is_null() {
        return None;
    }
    // SAFETY: the running green thread's header is alive while it runs.
    let h = unsafe { &*cur };
    let g = h.green()?;
    // Only the guard itself: Rust probes large frames page by page, so an overflow faults there
    // first; memory below it belongs to the neighbouring stack of the chunk.
    // SAFETY: a running thread's stack is bound (before its first switch in) and stays until it
    // has switched away for good; a plain read of it on the thread's own kernel thread.
    let stack = unsafe { (*g.stack.get()).as_ref() }?;
    if !stack.guard().contains(&addr) {
        return None;
    }
    let name = h.name().unwrap_or("<unnamed>").as_bytes();
    let n = name.len().min(buf.len());
    buf[..n].copy_from_slice(&name[..n]);
    Some(n)
}
