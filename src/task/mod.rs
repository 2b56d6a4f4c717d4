//! The thread control block and its park/wake handle: the leaf that `scheduler`, `sync` and `io`
//! all stand on.
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
//! swap is total, a wake-up that lands before the waiter's compare-exchange is seen by it.
//!
//! # Green threads stay home
//! A green thread that has run is pinned to its worker (DESIGN-NOTES section 1), whose [`Home`] is
//! the pinned run queue: a local queue and a "next" slot touched only by the worker's own kernel
//! thread, and an MPSC *inbox* for wake-ups from every other thread (and for fresh threads a
//! spawner placed on this worker, which pins them at their first run: `scheduler`, "Placement"). A remote waker pushes to the
//! inbox, issues a `SeqCst` fence, and wakes the worker only if it announced it is asleep; the
//! worker announces, fences, and looks at the inbox once more before it sleeps. One of the two
//! always sees the other (store-buffering with fences on both sides), so the wake-up is not lost.
//!
//! # The scheduling reference
//! A live green thread has exactly one "scheduling" reference: it sits in a queue, or is the
//! worker's current thread, or, while the thread is parked, is held implicitly by the parked state.
//! The waker that replaces `PARKED` takes that reference over ([`TaskRef::from_raw`]); no reference
//! count is touched on the wake-up path. Other protocols may hold it the same way: a green thread
//! waiting in `join` hands it to the finishing thread through the join state (`thread::cell`),
//! which passes it to [`schedule`].

pub(crate) mod futex;
pub(crate) mod small;
pub(crate) mod wakefd;

use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::num::NonZeroU64;
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use crate::stack::Stack;

/// A unique identifier for a running thread of hilos, green or kernel.
///
/// As std's [`std::thread::ThreadId`]: identifiers are never reused in a process. Green threads
/// and the kernel threads that call into hilos share one sequence; a hilos `ThreadId` is not
/// comparable with a std one.
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
    const fn new() -> Token {
        Token(AtomicU32::new(EMPTY))
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
    fn notify(&self) -> u32 {
        self.0.swap(NOTIFIED, Ordering::AcqRel)
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
    /// Saved stack pointer while the thread is not running.
    pub(crate) sp: UnsafeCell<*mut u8>,
    /// The thread's stack; `None` once it has exited and the stack went back to the pool.
    pub(crate) stack: UnsafeCell<Option<Stack>>,
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
    /// Guard range of the stack, copied for the async-signal-safe overflow check.
    pub(crate) guard: (usize, usize),
    /// Threads this thread spawned since it last joined one (saturating): the scheduler's sign
    /// of a spawner that spawns and carries on, such as an accept loop (see `scheduler`,
    /// "Placement"). Touched only by the thread itself, while it runs.
    pub(crate) spawned: Cell<u32>,
    /// Placed on another worker's inbox before its first run, and counted there as placed
    /// (`scheduler`, "Placement"). Written by the placer before the inbox push, read by the
    /// worker that pins it after draining the inbox.
    pub(crate) placed: Cell<bool>,
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
    /// Writes, in place, a new header with `refs` references for a green thread whose stack is
    /// `stack` and saved stack pointer `sp`. (In place: spawn is hot, and building the header on
    /// the stack and copying it into the allocation showed up in profiles.)
    ///
    /// # Safety
    /// `dst` is valid for writes of a `Header` and properly aligned.
    #[inline]
    pub(crate) unsafe fn write_green(
        dst: *mut Header,
        vtable: &'static Vtable,
        name: Option<Box<str>>,
        stack: Stack,
        default_stack: bool,
        sp: *mut u8,
        refs: usize,
    ) {
        let g = stack.guard();
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
                sp: UnsafeCell::new(sp),
                stack: UnsafeCell::new(Some(stack)),
                home: Cell::new(ptr::null()),
                default_stack,
                wait_gen: Cell::new(0),
                wait_on: Cell::new(WAIT_NONE),
                guard: (g.start, g.end),
                spawned: Cell::new(0),
                placed: Cell::new(false),
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

    /// Wakes the thread through its `sys` token (hilos's own blocking code uses this).
    #[inline]
    pub(crate) fn wake(&self) {
        wake_token(self.0, Which::Sys);
    }

    /// Wakes the thread through its `user` token, as [`crate::Thread::unpark`].
    pub(crate) fn unpark(&self) {
        match &self.kind {
            Kind::Kernel(t) => t.unpark(),
            Kind::Green(_) => wake_token(self.0, Which::User),
        }
    }
}

/// Delivers a wake-up on one token of the thread at `ptr`.
#[inline]
fn wake_token(ptr: NonNull<Header>, which: Which) {
    // SAFETY: the caller holds a reference to the header for the duration of the call.
    let h = unsafe { ptr.as_ref() };
    let token = h.token(which);
    match token.notify() {
        PARKED => {
            // SAFETY: replacing PARKED makes us the owner of the parked thread's scheduling
            // reference (module doc).
            let t = unsafe { TaskRef::from_raw(ptr) };
            schedule(t);
        }
        PARKED_OS => futex::wake(token.word(), 1),
        _ => {}
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
    /// The home of the worker running on this kernel thread, or null.
    static CURRENT_HOME: Cell<*const Home> = const { Cell::new(ptr::null()) };
    /// Lazily made header of a kernel thread that calls into hilos.
    static KERNEL_SELF: std::cell::OnceCell<TaskRef> = const { std::cell::OnceCell::new() };
}

/// The green thread running on this kernel thread, if any.
///
/// `#[inline(never)]`: re-read after every switch, never cached by the caller's code generation.
#[inline(never)]
pub(crate) fn current_green() -> Option<NonNull<Header>> {
    NonNull::new(CURRENT_GREEN.with(|c| c.get()) as *mut Header)
}

/// Called by the scheduler at every switch.
#[inline]
pub(crate) fn set_current_green(h: *const Header) {
    CURRENT_GREEN.with(|c| c.set(h));
}

/// Called by the scheduler when a worker starts and stops.
pub(crate) fn set_current_home(h: *const Home) {
    CURRENT_HOME.with(|c| c.set(h));
}

#[inline(never)]
fn current_home() -> *const Home {
    CURRENT_HOME.with(|c| c.get())
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
/// reads one const-initialised thread-local and immutable fields.
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
    if !(g.guard.0..g.guard.1).contains(&addr) {
        return None;
    }
    let name = h.name().unwrap_or("<unnamed>").as_bytes();
    let n = name.len().min(buf.len());
    buf[..n].copy_from_slice(&name[..n]);
    Some(n)
}

// ---------------------------------------------------------------------------------------------
// The pinned run queue of a worker.

/// A FIFO of scheduling references: a power-of-two ring that doubles when full. The switch path
/// pushes and pops it on every yield, where `VecDeque`'s general bookkeeping showed in profiles.
pub(crate) struct RunQueue {
    buf: Box<[*const Header]>,
    head: usize,
    len: usize,
}

impl RunQueue {
    fn with_capacity(cap: usize) -> RunQueue {
        let cap = cap.next_power_of_two().max(2);
        RunQueue {
            buf: vec![ptr::null(); cap].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub(crate) fn push_back(&mut self, t: TaskRef) {
        if self.len == self.buf.len() {
            self.grow();
        }
        let mask = self.buf.len() - 1;
        self.buf[(self.head + self.len) & mask] = t.into_raw().as_ptr();
        self.len += 1;
    }

    #[inline]
    pub(crate) fn pop_front(&mut self) -> Option<TaskRef> {
        if self.len == 0 {
            return None;
        }
        let p = self.buf[self.head];
        self.head = (self.head + 1) & (self.buf.len() - 1);
        self.len -= 1;
        // SAFETY: every slot in the live range holds a reference leaked by `push_back`.
        Some(unsafe { TaskRef::from_raw(NonNull::new_unchecked(p as *mut Header)) })
    }

    #[cold]
    fn grow(&mut self) {
        let old = self.buf.len();
        let mut buf = vec![ptr::null(); old * 2].into_boxed_slice();
        for (i, slot) in buf.iter_mut().take(self.len).enumerate() {
            *slot = self.buf[(self.head + i) & (old - 1)];
        }
        self.buf = buf;
        self.head = 0;
    }
}

impl Extend<TaskRef> for RunQueue {
    fn extend<I: IntoIterator<Item = TaskRef>>(&mut self, iter: I) {
        for t in iter {
            self.push_back(t);
        }
    }
}

impl Drop for RunQueue {
    fn drop(&mut self) {
        while self.pop_front().is_some() {}
    }
}

/// The run queue of one worker's pinned green threads (see the module doc).
pub(crate) struct Home {
    /// Runnable pinned threads, oldest first. Owner only.
    local: UnsafeCell<RunQueue>,
    /// The most recently readied thread, run before the queue (bounded by the scheduler). Owner only.
    next: UnsafeCell<Option<TaskRef>>,
    /// Wake-ups from other kernel threads: a Treiber stack the owner empties with one swap.
    inbox: AtomicPtr<Header>,
    /// Set by the owner just before it sleeps, cleared when it wakes.
    pub(crate) sleeping: AtomicBool,
    /// The owner sleeps in its I/O driver's wait; this eventfd ends that wait (see `wakefd`).
    pub(crate) parker: wakefd::WakeFd,
}

// SAFETY: `local` and `next` are touched only by the owning worker's kernel thread (checked by
// comparing CURRENT_HOME in `schedule`); the rest is atomic.
unsafe impl Sync for Home {}
// SAFETY: as above.
unsafe impl Send for Home {}

impl Home {
    pub(crate) fn new() -> std::io::Result<Home> {
        Ok(Home {
            local: UnsafeCell::new(RunQueue::with_capacity(256)),
            next: UnsafeCell::new(None),
            inbox: AtomicPtr::new(ptr::null_mut()),
            sleeping: AtomicBool::new(false),
            parker: wakefd::WakeFd::new()?,
        })
    }

    /// Owner only: the local queue.
    ///
    /// # Safety
    /// The caller runs on the owning worker's kernel thread and holds no other borrow of it.
    #[allow(clippy::mut_from_ref)]
    #[inline]
    pub(crate) unsafe fn local(&self) -> &mut RunQueue {
        // SAFETY: owner-only access, per the caller's contract.
        unsafe { &mut *self.local.get() }
    }

    /// Owner only: the "next" slot.
    ///
    /// # Safety
    /// As [`Home::local`].
    #[allow(clippy::mut_from_ref)]
    #[inline]
    pub(crate) unsafe fn next_slot(&self) -> &mut Option<TaskRef> {
        // SAFETY: owner-only access, per the caller's contract.
        unsafe { &mut *self.next.get() }
    }

    /// Any thread: queue `t` on the inbox and wake the owner if it sleeps. The caller keeps the
    /// `Home` alive until this returns (once `t` is in the inbox it may run, exit, and with it end
    /// the last reason for the runtime's workers to stay).
    pub(crate) fn push_remote(&self, t: TaskRef) {
        let raw = t.into_raw();
        // SAFETY: we own the reference `raw` carries; the header is alive.
        let link = unsafe { &raw.as_ref().link };
        let mut head = self.inbox.load(Ordering::Relaxed);
        loop {
            link.store(head, Ordering::Relaxed);
            match self.inbox.compare_exchange_weak(
                head,
                raw.as_ptr(),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(h) => head = h,
            }
        }
        // Pairs with the fence in the owner's sleep path (module doc).
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) {
            self.parker.wake();
        }
    }

    /// Whether the inbox has anything (any thread; used before sleeping).
    #[inline]
    pub(crate) fn inbox_nonempty(&self) -> bool {
        !self.inbox.load(Ordering::Relaxed).is_null()
    }

    /// Owner only: moves the inbox into the local queue, oldest first. Returns how many.
    ///
    /// # Safety
    /// As [`Home::local`].
    #[inline]
    pub(crate) unsafe fn drain_inbox(&self) -> usize {
        if !self.inbox_nonempty() {
            return 0;
        }
        // SAFETY: per the contract.
        unsafe { self.drain_inbox_slow() }
    }

    /// # Safety
    /// As [`Home::local`].
    #[cold]
    unsafe fn drain_inbox_slow(&self) -> usize {
        let mut p = self.inbox.swap(ptr::null_mut(), Ordering::Acquire);
        // The stack is newest first: collect, then append in reverse.
        let mut batch: Vec<TaskRef> = Vec::new();
        while let Some(nn) = NonNull::new(p) {
            // SAFETY: every pointer in the inbox carries a reference pushed by push_remote, and
            // its link was written before the Release CAS we synchronise with.
            unsafe {
                p = nn.as_ref().link.load(Ordering::Relaxed);
                batch.push(TaskRef::from_raw(nn));
            }
        }
        let n = batch.len();
        // SAFETY: owner-only, per the caller's contract.
        let local = unsafe { self.local() };
        local.extend(batch.into_iter().rev());
        n
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        // Drop what is left (only at runtime teardown, when nothing can be runnable).
        let mut p = *self.inbox.get_mut();
        while let Some(nn) = NonNull::new(p) {
            // SAFETY: as in drain_inbox; we have exclusive access.
            unsafe {
                p = nn.as_ref().link.load(Ordering::Relaxed);
                drop(TaskRef::from_raw(nn));
            }
        }
    }
}

/// Makes the green thread `t` runnable on its home worker. `t` is its scheduling reference.
pub(crate) fn schedule(t: TaskRef) {
    let g = t.green().expect("hilos: scheduled a kernel thread");
    // `home` is written once, at the first run, before the thread can ever park; we read it after
    // winning PARKED (Acquire) from the thread's own Release, so it is set and stable.
    let home = g.home.get();
    assert!(!home.is_null(), "hilos: woke a thread that never ran");
    if ptr::eq(home, current_home()) {
        // On the home worker: the new thread runs next; the one it displaces queues up.
        // SAFETY: the thread is alive and blocked (we hold its scheduling reference), so its
        // runtime's workers, which own the Home, are alive; we are on the owning kernel thread and
        // no other borrow is live.
        unsafe {
            let home = &*home;
            let next = home.next_slot();
            if let Some(old) = next.replace(t) {
                home.local().push_back(old);
            }
        }
    } else {
        // Keep the home alive past the push: once `t` is in the inbox it may run and exit, and
        // with it the last thread keeping the runtime's workers alive.
        // SAFETY: `home` came from `Arc::as_ptr` of a `Home` the runtime's workers own; the thread
        // is alive and blocked (we hold its scheduling reference), so that Arc is alive while we
        // take our own count.
        let home = unsafe {
            Arc::increment_strong_count(home);
            Arc::from_raw(home)
        };
        home.push_remote(t);
    }
}

/// Timers' wake-up: make `t` runnable at the back of its (local) queue.
///
/// # Safety
/// Call on `t`'s home worker; `t` is its scheduling reference.
pub(crate) unsafe fn schedule_local_back(home: &Home, t: TaskRef) {
    // SAFETY: the caller is the owning worker.
    unsafe { home.local() }.push_back(t);
}

/// Blocks a kernel thread (or a green thread that may not switch) on `token` until a wake-up or
/// `deadline`. Returns `false` on timeout.
pub(crate) fn wait_os(token: &Token, deadline: Option<Instant>) -> bool {
    if token.try_consume() {
        return true;
    }
    if !token.begin_park(PARKED_OS) {
        return true;
    }
    loop {
        let timeout = match deadline {
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    if token.cancel_park(PARKED_OS) {
                        return false;
                    }
                    token.end_park();
                    return true;
                }
                Some(d - now)
            }
            None => None,
        };
        futex::wait(token.word(), PARKED_OS, timeout);
        if token.try_consume() {
            return true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_queue_is_fifo_across_wrap_and_growth_and_drops_its_references() {
        let items: Vec<TaskRef> = (0..700).map(|_| new_kernel()).collect();
        let mut q = RunQueue::with_capacity(4);
        let mut expected = std::collections::VecDeque::new();
        // Interleave pushes and pops so the head wraps before and after each growth.
        for (i, t) in items.iter().enumerate() {
            q.push_back(t.clone());
            expected.push_back(t.as_ptr());
            if i % 3 == 0 {
                assert_eq!(q.pop_front().map(|t| t.as_ptr()), expected.pop_front());
            }
        }
        while let Some(e) = expected.pop_front() {
            assert_eq!(q.pop_front().map(|t| t.as_ptr()), Some(e));
        }
        assert!(q.is_empty() && q.pop_front().is_none());
        // References left in a queue are released when it drops.
        q.extend(items.iter().take(10).cloned());
        drop(q);
        for t in &items {
            assert_eq!(t.refs.load(Ordering::Relaxed), 1);
        }
    }
}
