//! Context switch: the one place where hilos changes the stack a kernel thread runs on. (Also
//! home to the other instruction sequences hilos writes by hand: Valgrind's client requests,
//! [`valgrind`], which tell Valgrind where the green stacks are.)
//!
//! # The problem
//!
//! A green thread is a stack plus the few registers that make it resumable. To park one green
//! thread and run another on the same kernel thread, a worker must store the running thread's
//! registers, point the CPU at another stack, and load that stack's registers, in user space,
//! without the kernel, in a few nanoseconds. Rust cannot say "from here on, `sp` is this other
//! stack"; only assembly can. The same code must start a thread on a fresh stack, and must leave
//! the stacks in a shape that debuggers, profilers and Rust's own backtraces can walk.
//!
//! # Alternatives rejected
//!
//! - **`getcontext`/`makecontext`/`swapcontext`** (`ucontext_t`): every switch saves and restores
//!   the signal mask with an `rt_sigprocmask` system call, which alone costs far more than the
//!   whole switch below; they also copy the full register file and FP environment (nearly 1 KiB).
//!   POSIX dropped them in 2008 and musl does not ship them.
//! - **`setjmp`/`longjmp`**: cannot start a function on a new stack without a non-portable trick,
//!   jumping into a frame that is not an ancestor of the current one is undefined behaviour, glibc
//!   mangles the saved pointers and its fortified `longjmp` aborts ("longjmp causes uninitialized
//!   stack frame") whenever the target stack lies below the current one, and `sigsetjmp` brings
//!   the signal-mask system call back.
//! - **Naked functions / `asm!` in Rust source**: would work, but the instructions would then live
//!   inside Rust, where a C harness cannot assemble them, and the aarch64 version could only be
//!   tested on aarch64 Rust. A plain `.s` text is assembled both by `global_asm!` for the crate and
//!   by `gcc`/`aarch64-linux-gnu-gcc` for `tests/arch/harness.c` (run under `qemu-aarch64`), so
//!   the code tested on both architectures is byte for byte the code that ships. (Inline `asm!` at
//!   every call site, which would let the compiler spill only live registers, may not even
//!   declare as clobbered the registers LLVM reserves, `rbx`/`rbp` and `x19`/`x29`, so it must
//!   save those by hand anyway, and the trampoline with its CFI still needs a symbol of its own.)
//!
//! # The design
//!
//! - **A suspended context is one pointer**, its saved stack pointer. Everything else it needs to
//!   resume lives on its own stack, in a fixed *switch frame* just below that pointer (pictures in
//!   `x86_64.s` and `aarch64.s`).
//! - **[`switch`] is an ordinary `extern "C"` call** into `hilos_v0_switch`. Because it is a call,
//!   the compiler has already given up every caller-saved register at the call site, so the
//!   assembly saves exactly the callee-saved state and nothing more: on x86_64 (System V) `rbx`,
//!   `rbp`, `r12`-`r15`, `rsp`, the MXCSR and the x87 control word; on aarch64 (AAPCS64)
//!   `x19`-`x29`, the return address in `x30`, `sp`, `d8`-`d15` and FPCR. It pushes the frame,
//!   stores `sp` to `*save`, loads `sp = to`, pops the other frame, and resumes it.
//! - **Two ways to resume, one frame.** [`switch`] resumes with `pop`+`jmp` (x86_64) / `br x30`
//!   (aarch64); [`switch_ret`] with `ret`. A `ret` is predicted from the return stack, whose top is
//!   the call into switch made by the context that is *leaving*. When the two contexts called
//!   switch from different places (the scheduler loop and a green thread) a `ret` mispredicts
//!   every time, and an indirect jump, predicted by the branch target buffer, learns the pattern.
//!   Measured with [`bare_switch_roundtrips`] (release, best of 5 x 10M round trips, one round
//!   trip = two switches, 2-core AMD EPYC VM shared with other builds): 13.8-16.2 ns with
//!   `pop`+`jmp`, 29.0-33.5 ns with `ret`, 2.1x in every run. But the jump leaves the call's
//!   return-stack entry unconsumed, so the resumed context's next returns are predicted one frame
//!   off. When both contexts called switch from the *same* call site (one green thread handing the
//!   worker straight to another inside the scheduler's `switch_away`), `ret` is predicted exactly,
//!   and so are the returns after it wherever the two run the same code: a channel ping-pong on
//!   one worker went from 128-135 ns to 105-109 ns per round trip. The scheduler picks
//!   ([`Resume`]). About half of a switch is saving MXCSR, nearly all of that `stmxcsr`, which is
//!   slow on this CPU (without MXCSR: 7.4-8.2 ns; skipping only the `ldmxcsr` saves nothing, and
//!   skipping it when the value is unchanged made a round trip 2.4 ns slower; the x87 control word
//!   costs nothing measurable; issuing `stmxcsr` earlier made it slower). It stays: FP control is
//!   per green thread by the design notes.
//! - **[`init_stack`] builds a switch frame** on a fresh stack whose resume address is
//!   `hilos_v0_trampoline` (just after its leading `nop`) and whose callee-saved slots carry
//!   `entry` and `arg`. The first switch
//!   to it therefore "returns" into the trampoline, which calls `entry(arg)` with the ABI's
//!   alignment (x86_64: `rsp % 16 == 8` at entry of `entry`; aarch64: `sp % 16 == 0`).
//! - **FP control of a fresh context is the ABI default** (x86_64 MXCSR `0x1F80`, x87 control
//!   word `0x037F`; aarch64 FPCR `0`), not a copy of the creator's: the creator is whichever thread
//!   called spawn, and a green thread that has not run yet may be stolen by another worker, so
//!   copying would make its rounding mode depend on who spawned it and where. After that, each
//!   context keeps its own FP control across switches. aarch64 writes FPCR only when the resumed
//!   value differs from the current one, since FPCR writes are slow on some cores and almost
//!   every switch carries the same value; on x86_64 skipping an equal `ldmxcsr` measured slower.
//! - **Stacks are walkable.** The switch and the trampoline carry CFI. The trampoline's says
//!   "no return address" (`.cfi_undefined rip` / `x30`), which DWARF unwinders (libgcc's, used by
//!   `std::backtrace::Backtrace` and panics; gdb; `perf --call-graph=dwarf`) take as the outermost
//!   frame; frame-pointer walkers stop on `rbp = 0` (x86_64) or on the zeroed frame record
//!   `x29` points at (aarch64). While a switch is half done, the CFI of `hilos_v0_switch` stays
//!   valid because both stacks hold the same frame layout.
//! - **Symbols** are `hilos_v0_switch`, `hilos_v0_switch_ret`, `hilos_v0_init_stack` and
//!   `hilos_v0_trampoline`, hidden
//!   (not exported from a shared object), with a crate/version prefix so that two copies of the
//!   crate, or a C library, cannot clash.
//!
//! # Invariants
//!
//! The callers (the scheduler, the benchmarks, the tests below) uphold these; the functions
//! cannot check them.
//!
//! 1. `to` is a stack pointer returned by [`init_stack`] or stored into `*save` by [`switch`], and
//!    each such value is resumed **at most once**: resuming it again would run the same frames a
//!    second time, over memory they have since changed.
//! 2. `*save` is written before the other context runs, so that context may resume the one that
//!    just left straight away (it is how a green thread gets back to its scheduler).
//! 3. A context's stack stays allocated, and is not moved, while the context runs or is
//!    suspended. A context that will never be resumed may have its stack freed; nothing on that
//!    stack is dropped, so such a context must own nothing that needs dropping, or leak it.
//! 4. Panics never unwind through the assembly: `entry` is `extern "C" fn(..) -> !`, so a panic
//!    escaping it aborts; the green thread's real entry catches panics itself (design note 2), and
//!    no one switches away while `std::thread::panicking()`. `entry` never returns; if it did, the
//!    trampoline traps (`ud2` / `brk`).
//! 5. A context that has started runs only on the kernel thread it started on, unless its code is
//!    known to hold no thread-tied state across a switch (design note 1). Nothing here tracks it:
//!    the switch itself would work on any thread, which is exactly why the rule is needed.
//! 6. The stack has room for the frame [`init_stack`] builds (80 bytes on x86_64, 192 on aarch64),
//!    for `entry` and everything it calls, and for a signal handler's frame, since handlers run on
//!    the interrupted stack unless an alternate signal stack is set.

#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(include_str!("x86_64.s"), options(att_syntax, raw));

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(include_str!("aarch64.s"), options(raw));

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!(
    "hilos: the context switch (src/arch) is written for x86_64 and aarch64 only; \
     porting to another architecture means adding its assembly file there"
);

unsafe extern "C" {
    /// The assembly behind [`switch`]; see `x86_64.s` / `aarch64.s`.
    fn hilos_v0_switch(save: *mut *mut u8, to: *mut u8);

    /// The same, resuming by `ret` ([`switch_ret`]).
    fn hilos_v0_switch_ret(save: *mut *mut u8, to: *mut u8);

    /// The assembly behind [`init_stack`]; a leaf that only writes below `top`.
    fn hilos_v0_init_stack(
        top: *mut u8,
        entry: unsafe extern "C" fn(arg: *mut u8) -> !,
        arg: *mut u8,
    ) -> *mut u8;
}

/// Switches from the running context to the suspended context whose saved stack pointer is `to`,
/// first saving the running context (callee-saved registers + FP control) on its own stack and
/// storing its stack pointer into `*save`. Returns when some other context switches back to
/// `*save`.
///
/// # Safety
///
/// - `save` is valid for a pointer-sized write; it is written before `to` runs.
/// - `to` is a stack pointer returned by [`init_stack`] or stored by an earlier `switch`, that has
///   not been resumed since (each one is resumed at most once), and its stack is still allocated.
/// - The running stack stays allocated while this context is suspended, and whoever resumes it
///   later does so on a kernel thread where that is sound (module invariant 5).
/// - Not called while unwinding a panic.
#[inline]
pub(crate) unsafe fn switch(save: *mut *mut u8, to: *mut u8) {
    debug_assert!(!save.is_null(), "switch: null save slot");
    debug_assert!(
        !to.is_null() && to.addr().is_multiple_of(16),
        "switch: target stack pointer {to:p} is null or misaligned"
    );
    // SAFETY: the caller guarantees `save` is writable and `to` is a suspended context's stack
    // pointer (the contract above); the assembly preserves every callee-saved register and the
    // FP control state of this context, exactly what an `extern "C"` call must preserve, and
    // clobbers only caller-saved registers.
    unsafe { hilos_v0_switch(save, to) }
}

/// How [`switch_ret`] resumes the other context; only branch prediction differs (module doc).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Resume {
    /// `pop`+`jmp` / `br x30`: for contexts that left by a different call site.
    Jump,
    /// `ret`: for contexts that left by this very call site.
    Return,
}

/// [`switch`], choosing how to resume `to`. Every call site of this function is one call
/// instruction for both ways (the choice is a function pointer), so a context that left through a
/// given call site and is resumed through the same one is predicted right with [`Resume::Return`],
/// whichever way it was itself resumed before.
///
/// # Safety
///
/// As for [`switch`]; `how` affects only speed.
#[inline]
pub(crate) unsafe fn switch_ret(save: *mut *mut u8, to: *mut u8, how: Resume) {
    debug_assert!(!save.is_null(), "switch: null save slot");
    debug_assert!(
        !to.is_null() && to.addr().is_multiple_of(16),
        "switch: target stack pointer {to:p} is null or misaligned"
    );
    let f: unsafe extern "C" fn(*mut *mut u8, *mut u8) = match how {
        Resume::Jump => hilos_v0_switch,
        Resume::Return => hilos_v0_switch_ret,
    };
    // `black_box`: keep one indirect call rather than letting the optimizer split it into two
    // direct calls, which would be two call sites with two different return addresses.
    let f = std::hint::black_box(f);
    // SAFETY: as in `switch`; both entry points save and restore the same frame.
    unsafe { f(save, to) }
}

unsafe extern "C" {
    /// [`hilos_v0_switch`] that also loads the resumed context's thread pointer (the fs base on
    /// x86_64, `tpidr_el0` on aarch64).
    fn hilos_v0_switch_tp(save: *mut *mut u8, to: *mut u8, tp: usize);
    /// [`hilos_v0_switch_ret`] that also loads the resumed context's thread pointer.
    fn hilos_v0_switch_ret_tp(save: *mut *mut u8, to: *mut u8, tp: usize);
}

/// [`switch_ret`] that also makes `tp` the thread pointer of the resumed context, in the same
/// assembly routine (after its registers are restored, before it runs), so no thread-local access
/// of either context can see the other's TLS (`tls`, per-green-thread mode).
///
/// # Safety
///
/// As for [`switch_ret`]; and `tp` is the resumed context's own thread pointer (its TLS area, or
/// the worker's for the scheduler context), and on x86_64 the kernel allows `wrfsbase` (`tls`
/// checks).
#[inline]
pub(crate) unsafe fn switch_ret_tp(save: *mut *mut u8, to: *mut u8, how: Resume, tp: usize) {
    debug_assert!(!save.is_null(), "switch: null save slot");
    debug_assert!(
        !to.is_null() && to.addr().is_multiple_of(16),
        "switch: target stack pointer {to:p} is null or misaligned"
    );
    let f: unsafe extern "C" fn(*mut *mut u8, *mut u8, usize) = match how {
        Resume::Jump => hilos_v0_switch_tp,
        Resume::Return => hilos_v0_switch_ret_tp,
    };
    // One indirect call site, as in `switch_ret`.
    let f = std::hint::black_box(f);
    // SAFETY: as in `switch_ret`; `tp` is a valid thread pointer for the resumed context.
    unsafe { f(save, to, tp) }
}

/// Prepares a fresh stack whose highest address (exclusive) is `top` (16-byte aligned, at least a
/// few hundred bytes usable below it) so that the first `switch` to the returned stack pointer
/// calls `entry(arg)` on that stack with a correctly aligned ABI frame. `entry` never returns.
///
/// Writes 80 bytes below `top` on x86_64, 192 on aarch64; the frame layout is pictured in the
/// assembly file. The new context starts with default FP control (x86_64 MXCSR `0x1F80`, x87
/// control word `0x037F`; aarch64 FPCR `0`).
///
/// # Safety
///
/// - `top` is 16-byte aligned and the memory below it is writable and owned by the caller: at
///   least the frame written here plus what `entry` needs.
/// - That memory stays allocated and unmoved while the new context may still be resumed.
/// - `entry` catches its own panics (one escaping it aborts) and never returns.
#[inline]
pub(crate) unsafe fn init_stack(
    top: *mut u8,
    entry: unsafe extern "C" fn(arg: *mut u8) -> !,
    arg: *mut u8,
) -> *mut u8 {
    debug_assert!(
        top.addr().is_multiple_of(16),
        "init_stack: stack top {top:p} is not 16-byte aligned"
    );
    // SAFETY: the caller guarantees that `top` is 16-aligned with writable memory below it that it
    // owns; the assembly only writes the 80 (x86_64) or 192 (aarch64) bytes just below `top` and
    // touches no callee-saved register.
    unsafe { hilos_v0_init_stack(top, entry, arg) }
}

/// 16 bytes of stack memory, 16-byte aligned, so that a `Vec` of them has an aligned top.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct StackChunk([u8; 16]);

/// Times `iters` round trips (this thread -> a green context -> back) of the bare switch, on a
/// 64 KiB stack. Nothing else runs in between, so this is the floor under any hilos switch.
pub(crate) fn bare_switch_roundtrips(iters: u64) -> std::time::Duration {
    /// The two saved stack pointers, shared by both sides.
    struct Pair {
        main: *mut u8,
        ctx: *mut u8,
    }

    /// The green side: switch straight back, forever. It owns nothing, so its stack may be freed
    /// while it is suspended.
    unsafe extern "C" fn bounce(arg: *mut u8) -> ! {
        let pair = arg.cast::<Pair>();
        loop {
            // SAFETY: `pair` points to the `Pair` in `bare_switch_roundtrips`' frame, which stays
            // alive for as long as this context is resumed; `main` was stored by the switch that
            // resumed us and is resumed once; our own stack outlives this suspension.
            unsafe { switch(&raw mut (*pair).ctx, (*pair).main) };
        }
    }

    // 64 KiB, 16-byte aligned, no guard: `bounce` needs a few dozen bytes.
    let mut stack = vec![StackChunk([0; 16]); 64 * 1024 / size_of::<StackChunk>()];
    let top = stack.as_mut_ptr_range().end.cast::<u8>();
    let mut pair = Pair {
        main: std::ptr::null_mut(),
        ctx: std::ptr::null_mut(),
    };
    let pair = &raw mut pair;
    // SAFETY: `top` is the 16-aligned end of a 64 KiB buffer owned by this frame and kept until
    // the context is never resumed again; `bounce` never returns and cannot panic.
    unsafe { (*pair).ctx = init_stack(top, bounce, pair.cast()) };
    // SAFETY: `ctx` is the fresh context built above, resumed once; `main` is writable. This
    // first switch runs the trampoline and parks `bounce` at its first switch, outside the timing.
    unsafe { switch(&raw mut (*pair).main, (*pair).ctx) };
    let start = std::time::Instant::now();
    for _ in 0..iters {
        // SAFETY: `ctx` was stored by `bounce`'s last switch and not resumed since; its stack
        // (`stack`) is alive; `main` is writable.
        unsafe { switch(&raw mut (*pair).main, (*pair).ctx) };
    }
    let elapsed = start.elapsed();
    // `bounce` stays suspended for good; it owns nothing, so freeing its stack is all there is.
    drop(stack);
    elapsed
}

#[cfg(test)]
mod tests;
pub(crate) mod valgrind;
