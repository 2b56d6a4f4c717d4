//! The worker-local context, and switching a green thread away from its worker.
//!
//! # The problem
//! A green thread that yields, blocks or exits must hand its worker to the next runnable thread in
//! a few nanoseconds, and that path must not depend on the scheduler's loop (stealing, idling,
//! placement), which sits above this module (DESIGN-NOTES section 7).
//!
//! # The design
//! [`Local`] is the part of a worker that its running green threads touch: the pinned run queue
//! (`task::runq::Home`), the deque of fresh threads spawned here, the timer heap, the running
//! thread, the scheduler context's saved stack pointer and a small cache of stacks. It lives in
//! the scheduler's `Worker` on the worker kernel thread's own stack, and is reached through one
//! thread-local pointer read by the `#[inline(never)]` [`local_ptr`], re-read after every switch
//! and never borrowed across one.
//!
//! [`switch_away_from`] picks the next runnable thread of this worker and switches to it directly
//! (one switch), or, if there is none, or on every [`FAIRNESS_TICKS`]th switch, or on exit,
//! switches to the worker's scheduler context (the kernel thread's original stack), whose loop
//! (`scheduler`) polls timers, the injector, the inbox and the driver, steals and sleeps. The
//! 61-switch rule keeps the injector, timers and the local queue from being starved by two threads
//! that keep handing the "next" slot to each other.
//!
//! A finished thread's stack cannot be freed while it still runs on it, so the context that runs
//! next (another green thread, or the scheduler context) frees it right after the switch
//! ([`after_switch`]).

use std::cell::Cell;
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crossbeam_deque::{Steal, Stealer, Worker as Deque};

use crate::arch;
use crate::stack;
use crate::task::runq::Home;
use crate::task::{Header, PARKED, TaskRef, WAIT_NONE, WAIT_SLEEP, WAIT_SYS, WAIT_USER};
use crate::time::Timers;
use crate::tls::TpSwitch;

/// How many switches between two visits of the scheduler context.
pub(crate) const FAIRNESS_TICKS: u32 = 61;
/// How many default-size stacks a worker keeps for itself.
const WORKER_STACKS: usize = 32;

/// The worker-local context (module doc). Owned by the worker's kernel thread; other threads
/// reach only `home` (through its `Arc`) and the stealing half of `fresh`.
pub(crate) struct Local {
    /// The worker's index in its runtime.
    pub(crate) index: usize,
    /// Identity of the runtime (a `scheduler::Shared`) this worker belongs to, kept alive by the
    /// scheduler's `Worker` for as long as this context is installed. Opaque here: this layer
    /// sits below the scheduler.
    pub(crate) runtime: *const (),
    pub(crate) home: Arc<Home>,
    /// Fresh (unstarted, stealable) threads spawned on this worker. LIFO for the worker (the
    /// newest runs first: fan-out trees are walked depth-first), oldest first for thieves and for
    /// the worker's fairness ticks ([`Local::pop_oldest_fresh`]; `scheduler`, "Fresh threads").
    pub(crate) fresh: Deque<TaskRef>,
    /// The worker's own handle on the old end of `fresh`.
    fresh_oldest: Stealer<TaskRef>,
    /// False only when `fresh` is known to be empty: set by every push into it (a spawn here, a
    /// batch stolen into it), cleared when a pop finds it empty. Stealers only take from it, so
    /// the flag never says "empty" of a deque that holds a thread. It spares a yield, which
    /// looks at `fresh` first, the deque's call and shared loads (5 ns of a 30 ns yield).
    pub(crate) fresh_maybe: bool,
    /// The scheduler context's saved stack pointer while a green thread runs.
    pub(crate) sched_sp: *mut u8,
    /// The scheduler context's thread pointer: the worker kernel thread's own (`tls`).
    sched_tp: usize,
    /// The running green thread (it owns the thread's scheduling reference), or null.
    pub(crate) current: *const Header,
    /// A thread that exited and switched away, to be cleaned up by the next context.
    exited: Option<TaskRef>,
    pub(crate) timers: Timers,
    /// Switches made on this worker (wrapping).
    pub(crate) tick: u32,
    /// Stacks of the runtime's default size, kept by the worker for the first runs of its next
    /// default-size threads (in front of the stack pool, whose thread cache costs a class lookup
    /// and a `RefCell` per call). LIFO: the newest is the hottest.
    stacks: Vec<stack::Stack>,
    /// Exits not yet subtracted from the runtime's live count; the scheduler flushes them before
    /// it looks for the end of the runtime or sleeps (one locked instruction per batch).
    pub(crate) exits: usize,
    /// The started threads pinned here and not yet exited: an intrusive list through their
    /// `reg_prev`/`reg_next`, linked at the first run and unlinked at exit, both on this worker,
    /// and walked only by this worker's scheduler context when it answers a dump.
    pub(crate) threads: *const Header,
    /// The next worker in the debuggers' list (`park::debug`).
    pub(crate) debug_next: *mut Local,
}

impl Local {
    /// A worker's context; `runtime` identifies its runtime (see the field).
    pub(crate) fn new(
        index: usize,
        runtime: *const (),
        home: Arc<Home>,
        fresh: Deque<TaskRef>,
        sched_tp: usize,
    ) -> Local {
        Local {
            index,
            runtime,
            home,
            fresh_oldest: fresh.stealer(),
            fresh,
            fresh_maybe: true,
            sched_sp: ptr::null_mut(),
            sched_tp,
            current: ptr::null(),
            exited: None,
            timers: Timers::new(),
            tick: 0,
            stacks: Vec::with_capacity(WORKER_STACKS),
            exits: 0,
            threads: ptr::null(),
            debug_next: ptr::null_mut(),
        }
    }

    /// Makes `p` the current thread (pinning it here at its first run); returns its stack pointer,
    /// how a green thread leaving through [`switch_away_from`] should resume it (by return if
    /// `p` has run before: it then left through that one call site too; by jump to the
    /// trampoline if this is its first run: `home` is set exactly then), and its thread pointer.
    ///
    /// # Safety
    /// `p` carries the thread's scheduling reference, which moves into `self.current`.
    pub(crate) unsafe fn prepare_run(
        &mut self,
        p: NonNull<Header>,
    ) -> (*mut u8, arch::Resume, usize) {
        // SAFETY: `p` is live (we hold its scheduling reference).
        let h = unsafe { p.as_ref() };
        let g = h.green().expect("hilos: a kernel thread was queued");
        // The thread is not running, and only the kernel thread that holds its scheduling
        // reference touches its context.
        let how = if g.home.get().is_null() {
            // SAFETY: per the contract: `p` has not run, and we hold it.
            unsafe { self.pin(p) };
            arch::Resume::Jump
        } else {
            arch::Resume::Return
        };
        self.current = p.as_ptr();
        self.home.watch.switch_in(p.as_ptr());
        let tp = g.tls_tp.get();
        if tp == 0 {
            crate::task::set_current_green(p.as_ptr());
        }
        // SAFETY: as above: the saved stack pointer is ours to read while the thread is not running.
        (unsafe { *g.sp.get() }, how, tp)
    }

    /// A thread's first run: binds its stack (`bind_stack`), pins it to this worker and, with
    /// per-green-thread TLS, makes its area this worker's. Out of line, so that the switch path
    /// that inlines `prepare_run` stays small.
    ///
    /// # Safety
    /// `p` is a live green thread that has not run, whose scheduling reference we hold.
    #[inline(never)]
    unsafe fn pin(&mut self, p: NonNull<Header>) {
        // SAFETY: per the contract.
        let g = unsafe { p.as_ref() }
            .green()
            .expect("hilos: a kernel thread was queued");
        // SAFETY: per the contract.
        unsafe { self.bind_stack(p, g) };
        g.home.set(Arc::as_ptr(&self.home));
        // Into this worker's list of started threads (the dump's registry).
        g.reg_next.set(self.threads);
        if let Some(first) = NonNull::new(self.threads as *mut Header) {
            // SAFETY: listed threads are alive (unlinked at exit, before their last reference
            // goes) and their links are this worker's.
            unsafe { first.as_ref() }
                .green()
                .expect("hilos: a kernel thread in a worker's list")
                .reg_prev
                .set(p.as_ptr());
        }
        self.threads = p.as_ptr();
        let load = &self.home.load;
        // Only this worker writes `pinned`.
        load.pinned
            .store(load.pinned.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        if g.placed.get() {
            load.placed.fetch_sub(1, Ordering::Relaxed);
        }
        let tp = g.tls_tp.get();
        if tp != 0 {
            // SAFETY: the thread's area was prepared by `bind_stack` and it has not run; we are
            // the worker that runs it from now on; its `CURRENT_GREEN` is itself for good.
            unsafe {
                crate::tls::first_run(tp, self.sched_tp);
                crate::tls::write_as(tp, crate::task::current_green_slot(), p.as_ptr() as usize);
            }
        }
    }

    /// Gives a thread that has not run its stack, TLS area and first frame. It takes the stack its
    /// spawn reserved now (`scheduler`, "Spawn bursts"): for the runtime's default size the
    /// newest of this worker's own cache, which the last exit here left hot; else the kernel
    /// thread's cache or the pool, which kept one for the reservation.
    ///
    /// # Safety
    /// `p` (whose green part is `g`) is a live green thread that has not run, whose scheduling
    /// reference we hold: nobody else touches its stack fields.
    unsafe fn bind_stack(&mut self, p: NonNull<Header>, g: &crate::task::Green) {
        // SAFETY: per the contract, the stack fields are ours.
        let (slot, reserved) = unsafe { (&mut *g.stack.get(), &mut *g.reservation.get()) };
        let r = reserved
            .take()
            .expect("hilos: a thread's first run without a stack reservation");
        debug_assert!(slot.is_none());
        let hot = if g.default_stack {
            self.stacks.pop()
        } else {
            None
        };
        let stack = slot.insert(match hot {
            Some(s) => {
                // The cache's stacks are of the runtime's default class, the reservation's.
                drop(r);
                s
            }
            None => r.take(),
        });
        // With per-green-thread TLS, the thread's TLS area takes the top of its stack mapping,
        // and its stack starts below it.
        let area = crate::tls::area_size();
        let (lo, top) = (stack.limit() as usize, stack.top() as usize);
        if area != 0 {
            // SAFETY: the area is the top `area` bytes of the stack this thread owns, which
            // nothing runs on yet.
            g.tls_tp
                .set(unsafe { crate::tls::prepare(top, (lo, top - area - lo)) });
        }
        // SAFETY: `top - area` is the top of the thread's own stack; nothing runs on it yet. The
        // entry receives the header, which lives as long as the scheduling reference; the saved
        // stack pointer is ours to write (contract).
        unsafe {
            *g.sp.get() = arch::init_stack((top - area) as *mut u8, green_entry, p.as_ptr().cast());
        }
    }

    /// Returns an exited thread's stack to the pool and drops its scheduling reference.
    fn finish_exit(&mut self, t: TaskRef) {
        let g = t.green().expect("hilos: a kernel thread exited");
        // The TLS area lies in the stack's memory: cleaned up while the stack is still the
        // thread's (once in the pool, the stack may be released, unmapped or taken by anyone).
        if g.tls_tp.get() != 0 {
            // SAFETY: the thread has exited and switched away for good.
            unsafe { crate::tls::after_exit(g.tls_tp.get()) };
        }
        // SAFETY: the thread has exited and switched away for good; nothing else touches its
        // context or stack any more.
        if let Some(s) = unsafe { (*g.stack.get()).take() } {
            if g.default_stack && self.stacks.len() < WORKER_STACKS {
                self.stacks.push(s);
            } else {
                stack::free(s);
            }
        }
        self.unlist(g);
        drop(t);
        self.exits += 1;
        // A thread exits on the worker it is pinned to; only this worker writes `pinned`.
        let load = &self.home.load;
        load.pinned
            .store(load.pinned.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
    }

    /// Takes an exiting thread (`g`) out of this worker's list of started threads.
    fn unlist(&mut self, g: &crate::task::Green) {
        let (prev, next) = (g.reg_prev.get(), g.reg_next.get());
        let green = |h: *const Header| {
            // SAFETY: a listed thread is alive and its links are this worker's (see `pin`).
            unsafe { &*h }
                .green()
                .expect("hilos: a kernel thread in a worker's list")
        };
        if prev.is_null() {
            self.threads = next;
        } else {
            green(prev).reg_next.set(next);
        }
        if !next.is_null() {
            green(next).reg_prev.set(prev);
        }
    }

    /// Gives the cached stacks back to the pool (the worker is stopping).
    pub(crate) fn release_stacks(&mut self) {
        for s in self.stacks.drain(..) {
            stack::free(s);
        }
    }

    /// Makes the threads whose timers are due runnable (`pop_due` drops the entries of waits
    /// that have ended).
    pub(crate) fn fire_timers(&mut self) {
        if self.timers.is_empty() {
            return;
        }
        let now = Instant::now();
        while let Some(t) = self.timers.pop_due(now) {
            let g = t.green().expect("hilos: a timer for a kernel thread");
            let token = match g.wait_on.get() {
                WAIT_USER => &t.user,
                WAIT_SYS => &t.sys,
                WAIT_SLEEP => {
                    g.wait_on.set(WAIT_NONE);
                    // SAFETY: a sleeping thread is woken only by its timer, so its scheduling
                    // reference is ours to take; we are its home worker.
                    let r = unsafe { TaskRef::from_raw(t.as_ptr()) };
                    // SAFETY: we are the owning worker; the borrow is short.
                    unsafe { self.home.local() }.push_back(r);
                    continue;
                }
                _ => continue,
            };
            if token.cancel_park(PARKED) {
                // SAFETY: winning PARKED makes us the owner of the scheduling reference.
                let r = unsafe { TaskRef::from_raw(t.as_ptr()) };
                // SAFETY: we are the owning worker; the borrow is short.
                unsafe { self.home.local() }.push_back(r);
            }
        }
    }

    /// The oldest fresh thread of this worker (the fairness tick's pick: the newest are popped
    /// first everywhere else).
    pub(crate) fn pop_oldest_fresh(&mut self) -> Option<TaskRef> {
        if !self.fresh_maybe {
            return None;
        }
        loop {
            match self.fresh_oldest.steal() {
                Steal::Success(t) => return Some(t),
                Steal::Empty => {
                    self.fresh_maybe = false;
                    return None;
                }
                Steal::Retry => continue,
            }
        }
    }

    /// Next runnable thread for a green thread switching away: no blocking, no timers. A thread
    /// that yields lets unstarted threads go first (`fresh_first`); otherwise woken threads,
    /// which may hold resources others wait for, run before new ones start.
    pub(crate) fn pick_local(&mut self, fresh_first: bool) -> Option<TaskRef> {
        if fresh_first && self.fresh_maybe {
            match self.fresh.pop() {
                Some(t) => return Some(t),
                None => self.fresh_maybe = false,
            }
        }
        // SAFETY: we are on the worker's own kernel thread; the borrows are short.
        unsafe {
            if let Some(t) = self.home.next_slot().take() {
                return Some(t);
            }
            if let Some(t) = self.home.local().pop_front() {
                return Some(t);
            }
            if self.home.drain_inbox() > 0 {
                return self.home.local().pop_front();
            }
        }
        self.fresh.pop()
    }
}

thread_local! {
    static LOCAL: Cell<*mut Local> = const { Cell::new(ptr::null_mut()) };
}

/// This kernel thread's worker context, or null. Re-read after every switch.
#[inline(never)]
pub(crate) fn local_ptr() -> *mut Local {
    LOCAL.with(|w| w.get())
}

/// Installs `l` as this kernel thread's worker context (null to remove it). The pointer is
/// mirrored into the worker's green threads when they have thread-locals of their own (`tls`).
///
/// # Safety
/// A non-null `l` stays valid, and is used only through short borrows that never span a switch,
/// until it is removed again.
pub(crate) unsafe fn install(l: *mut Local) {
    LOCAL.with(|c| {
        let old = c.get();
        // SAFETY: `old` was installed here and is still valid (its worker is stopping); `l` is
        // valid until it is removed again, per the contract.
        unsafe {
            if !old.is_null() {
                super::debug::remove(old);
            }
            if !l.is_null() {
                super::debug::add(l);
            }
        }
        c.set(l);
        crate::tls::mirror(c.as_ptr().cast::<usize>().cast_const());
    });
}

/// Switches to the context whose saved stack pointer is `to` and thread pointer `tp`, saving
/// the running one in `save` (see `arch::switch_ret`). With per-green-thread TLS the thread
/// pointer changes in the same assembly routine (`wrfsbase`), or just before it by system call.
///
/// # Safety
/// As `arch::switch_ret`; `tp` is the resumed context's own thread pointer (ignored when
/// thread-locals are shared).
#[inline(always)]
unsafe fn switch_to(save: *mut *mut u8, to: *mut u8, how: arch::Resume, tp: usize) {
    // SAFETY: per the contract. Between `set_tp_syscall` and the switch nothing touches TLS.
    unsafe {
        match crate::tls::tp_switch() {
            TpSwitch::InSwitch => arch::switch_ret_tp(save, to, how, tp),
            TpSwitch::Syscall => {
                crate::tls::set_tp_syscall(tp);
                arch::switch_ret(save, to, how);
            }
            TpSwitch::None => arch::switch_ret(save, to, how),
        }
    }
}

/// Why a green thread switches away.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Away {
    /// Still runnable: goes to the back of the local queue.
    Yield,
    /// Parked: some waker or timer owns its scheduling reference now.
    Block,
    /// Finished: never resumes.
    Exit,
}

/// Switches the running green thread away (see the module doc). Returns when it is resumed.
///
/// # Safety
/// Called on a green thread, with the worker in a consistent state for `why`: for `Block` the
/// thread's scheduling reference has been given up to a token or timer protocol.
pub(crate) unsafe fn switch_away(why: Away) {
    // SAFETY: per the contract; the context pointer is read on this side of the switch.
    unsafe { switch_away_from(local_ptr(), why) }
}

/// [`switch_away`], for a caller that has just read this kernel thread's context pointer `w`.
///
/// # Safety
/// As for [`switch_away`]; `w` is `local_ptr()`, read since the caller's last switch.
pub(crate) unsafe fn switch_away_from(w: *mut Local, why: Away) {
    // SAFETY: we run on a green thread, so this kernel thread has a live worker; the borrow ends
    // before the switch.
    let (save, to, how, tp) = unsafe {
        let wr = &mut *w;
        let cur = NonNull::new(wr.current as *mut Header).expect("hilos: no current green thread");
        let g = cur
            .as_ref()
            .green()
            .expect("hilos: current thread is not green");
        if why == Away::Yield {
            // The scheduling reference moves from `current` to the queue.
            wr.home.local().push_back(TaskRef::from_raw(cur));
        }
        wr.tick = wr.tick.wrapping_add(1);
        let next = if wr.tick.is_multiple_of(FAIRNESS_TICKS) {
            None
        } else {
            wr.pick_local(why == Away::Yield)
        };
        if why == Away::Exit {
            // Its stack is released by the next context, after the switch (`after_switch`).
            wr.exited = Some(TaskRef::from_raw(cur));
        }
        match next {
            Some(n) if n.as_ptr() == cur => {
                // Woken (or re-queued) before we left: keep running; the scheduling reference
                // goes back to `current`. (Never for Exit: an exiting thread is in no queue.)
                std::mem::forget(n);
                return;
            }
            Some(n) => {
                let (to, how, tp) = wr.prepare_run(n.into_raw());
                (g.sp.get(), to, how, tp)
            }
            None => {
                wr.current = ptr::null();
                if g.tls_tp.get() == 0 {
                    crate::task::set_current_green(ptr::null());
                }
                (g.sp.get(), wr.sched_sp, arch::Resume::Jump, wr.sched_tp)
            }
        }
    };
    // SAFETY: `save` is the running thread's own save slot; `to` a suspended context's stack
    // pointer, saved by `switch` or built by `init_stack`. After an Exit nothing resumes `save`.
    // This is the one place where green threads leave, so `Resume::Return` (set for a thread
    // that left through here before) is predicted right.
    unsafe { switch_to(save, to, how, tp) };
    after_switch();
}

/// Switches from the scheduler context to `t` and cleans up when control comes back.
///
/// # Safety
/// Called on the scheduler context of the worker whose context `w` is; `t` is a runnable green
/// thread's scheduling reference.
pub(crate) unsafe fn run_task(w: *mut Local, t: TaskRef) {
    let p = t.into_raw();
    // SAFETY: per the contract: `w` is our worker; `p` a live green thread we now run.
    unsafe {
        let (to, _, tp) = (*w).prepare_run(p);
        match crate::tls::tp_switch() {
            TpSwitch::InSwitch => {
                arch::switch_ret_tp(&raw mut (*w).sched_sp, to, arch::Resume::Jump, tp)
            }
            TpSwitch::Syscall => {
                crate::tls::set_tp_syscall(tp);
                arch::switch(&raw mut (*w).sched_sp, to);
            }
            TpSwitch::None => arch::switch(&raw mut (*w).sched_sp, to),
        }
        // Back on the scheduler context: whoever switched here cleared `current`.
        after_switch();
    }
}

/// Runs on every context right after a switch lands in it: an exited thread's stack can only be
/// released once nobody runs on it, i.e. by the next context of its worker.
#[inline]
fn after_switch() {
    let w = local_ptr();
    // SAFETY: we run on a worker (a green thread or its scheduler context); the borrow is short.
    let wr = unsafe { &mut *w };
    if let Some(e) = wr.exited.take() {
        wr.finish_exit(e);
    }
}

/// The entry point of every green thread, called by the trampoline `init_stack` sets up.
///
/// # Safety
/// `arg` is the thread's header; the thread's scheduling reference is `current`.
pub(crate) unsafe extern "C" fn green_entry(arg: *mut u8) -> ! {
    let h = NonNull::new(arg as *mut Header).expect("hilos: null thread argument");
    // A thread's first run is a landing after a switch, like any other.
    after_switch();
    // SAFETY: the header is alive while the thread runs; `run` does not unwind.
    unsafe { ((*h.as_ptr()).vtable_run())(h) };
    // SAFETY: the thread is done; Exit hands its scheduling reference to the scheduler context.
    unsafe { switch_away(Away::Exit) };
    // A thread that exited is never resumed.
    std::process::abort()
}

/// The home (run queue) of the worker running on this kernel thread, or null.
#[inline]
pub(crate) fn current_home() -> *const Home {
    let l = local_ptr();
    // SAFETY: a non-null context is this kernel thread's live worker; a plain read of its `home`.
    unsafe { l.as_ref() }.map_or(ptr::null(), |l| Arc::as_ptr(&l.home))
}
