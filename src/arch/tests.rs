//! Tests of the context switch: registers saved and restored, the first entry, unwinding
//! boundaries and the two resume paths.

use super::*;
use std::ptr::null_mut;

/// A test stack: 16-byte aligned heap memory, no guard page.
struct TestStack(Vec<StackChunk>);

impl TestStack {
    fn new(bytes: usize) -> Self {
        Self(vec![StackChunk([0; 16]); bytes / size_of::<StackChunk>()])
    }

    fn top(&mut self) -> *mut u8 {
        self.0.as_mut_ptr_range().end.cast()
    }
}

/// State shared by the thread running the test (`main`) and one green context (`ctx`).
/// Only ever accessed through a raw pointer once the context exists.
#[repr(C)]
struct Shared<T> {
    /// First field, at offset 0, so naked entry stubs can write to it.
    entry_sp: usize,
    /// Second field, at offset 8.
    entry_fp: usize,
    main: *mut u8,
    ctx: *mut u8,
    data: T,
}

impl<T> Shared<T> {
    fn new(data: T) -> *mut Self {
        Box::into_raw(Box::new(Self {
            entry_sp: 0,
            entry_fp: 0,
            main: null_mut(),
            ctx: null_mut(),
            data,
        }))
    }
}

/// Builds a context running `entry(sh)` on `stack` and stores its stack pointer in `sh.ctx`.
///
/// # Safety
/// `sh` is valid for the context's whole life, `stack` outlives every resumption of the
/// context, and `entry` never returns or panics.
unsafe fn start<T>(
    sh: *mut Shared<T>,
    stack: &mut TestStack,
    entry: unsafe extern "C" fn(*mut u8) -> !,
) {
    // SAFETY: `stack.top()` is the 16-aligned end of memory the caller keeps alive; the rest
    // is forwarded from this function's contract.
    unsafe { (*sh).ctx = init_stack(stack.top(), entry, sh.cast()) };
}

/// Main side: resume `sh.ctx` and come back when it switches to `sh.main`.
///
/// # Safety
/// `sh.ctx` is a suspended context that has not been resumed since it was saved.
unsafe fn resume<T>(sh: *mut Shared<T>) {
    // SAFETY: forwarded from the contract; `sh` is valid, so `main` is writable.
    unsafe { switch(&raw mut (*sh).main, (*sh).ctx) };
}

/// Context side: go back to the main side.
///
/// # Safety
/// Called on the context's own stack, with `sh.main` saved by the main side's last `resume`.
unsafe fn yield_to_main<T>(sh: *mut Shared<T>) {
    // SAFETY: forwarded from the contract; `sh` is valid, so `ctx` is writable.
    unsafe { switch(&raw mut (*sh).ctx, (*sh).main) };
}

// ---- first entry -----------------------------------------------------------------------

struct FirstEntry {
    arg_seen: usize,
    runs: u32,
}

unsafe extern "C" fn first_entry(arg: *mut u8) -> ! {
    let sh = arg.cast::<Shared<FirstEntry>>();
    loop {
        // SAFETY: `arg` is the `Shared` the test built for us; it outlives this context.
        unsafe {
            (*sh).data.arg_seen = arg.addr();
            (*sh).data.runs += 1;
        }
        // SAFETY: we run on our own stack and the test saved `main` before resuming us.
        unsafe { yield_to_main(sh) };
    }
}

#[test]
fn first_switch_calls_entry_with_its_argument() {
    let sh = Shared::new(FirstEntry {
        arg_seen: 0,
        runs: 0,
    });
    let mut stack = TestStack::new(16 * 1024);
    // SAFETY: `sh` is leaked-until-freed below and `stack` lives to the end of the test, past
    // the context's last resumption; `first_entry` loops forever and does not panic.
    unsafe { start(sh, &mut stack, first_entry) };
    // SAFETY: `sh` is valid; nothing has run on the context yet.
    let runs_before = unsafe { (*sh).data.runs };
    assert_eq!(runs_before, 0, "entry ran before the first switch");
    // SAFETY: `ctx` is the fresh context, resumed once.
    unsafe { resume(sh) };
    // SAFETY: the context is suspended; `sh` is only accessed through this raw pointer.
    let (seen, runs) = unsafe { ((*sh).data.arg_seen, (*sh).data.runs) };
    assert_eq!(seen, sh.addr(), "entry got the wrong argument");
    assert_eq!(runs, 1);
    // SAFETY: `ctx` was saved by the context's switch back and not resumed since.
    unsafe { resume(sh) };
    // SAFETY: the context is suspended again; `sh` is only accessed through this pointer.
    let runs_after = unsafe { (*sh).data.runs };
    assert_eq!(runs_after, 2, "second switch did not resume the context");
    // SAFETY: the context is suspended for good and owns nothing; `sh` came from Box.
    drop(unsafe { Box::from_raw(sh) });
}

// ---- many switches, main -> A -> B -> main ---------------------------------------------

struct Ring {
    /// Saved stack pointers of the two green contexts.
    a: *mut u8,
    b: *mut u8,
    count_a: u64,
    count_b: u64,
}

/// Context A: count, then hand over to B (a green-to-green switch).
unsafe extern "C" fn ring_a(arg: *mut u8) -> ! {
    let sh = arg.cast::<Shared<Ring>>();
    loop {
        // SAFETY: `sh` outlives both contexts; A saves itself into `a` and resumes B, which is
        // suspended (fresh or saved by its own last switch) and not resumed since.
        unsafe {
            (*sh).data.count_a += 1;
            switch(&raw mut (*sh).data.a, (*sh).data.b);
        }
    }
}

/// Context B: count, then go back to the thread that runs the test.
unsafe extern "C" fn ring_b(arg: *mut u8) -> ! {
    let sh = arg.cast::<Shared<Ring>>();
    loop {
        // SAFETY: as in `ring_a`; `main` was saved by the test's last switch into A.
        unsafe {
            (*sh).data.count_b += 1;
            switch(&raw mut (*sh).data.b, (*sh).main);
        }
    }
}

#[test]
fn a_million_switches_keep_every_context_counting() {
    const ROUNDS: u64 = 1_000_000;
    let sh = Shared::new(Ring {
        a: null_mut(),
        b: null_mut(),
        count_a: 0,
        count_b: 0,
    });
    let (mut stack_a, mut stack_b) = (TestStack::new(16 * 1024), TestStack::new(16 * 1024));
    // SAFETY: both stacks and `sh` live until after the last switch; the entries loop forever.
    unsafe {
        (*sh).data.a = init_stack(stack_a.top(), ring_a, sh.cast());
        (*sh).data.b = init_stack(stack_b.top(), ring_b, sh.cast());
    }
    for round in 1..=ROUNDS {
        // SAFETY: A is suspended (fresh, or saved by its switch to B), not resumed since.
        unsafe { switch(&raw mut (*sh).main, (*sh).data.a) };
        // SAFETY: both contexts are suspended; `sh` is only used through this raw pointer.
        let (a, b) = unsafe { ((*sh).data.count_a, (*sh).data.count_b) };
        assert!(
            a == round && b == round,
            "after round {round}: A counted {a}, B counted {b}"
        );
    }
    // SAFETY: both contexts stay suspended for good and own nothing.
    drop(unsafe { Box::from_raw(sh) });
}

// ---- callee-saved registers ------------------------------------------------------------

/// Values loaded into every callee-saved register: integer then FP.
#[cfg(target_arch = "x86_64")]
const NREGS: usize = 6; // rbx, rbp, r12, r13, r14, r15
#[cfg(target_arch = "aarch64")]
const NREGS: usize = 19; // x19..x29 (11), d8..d15 (8)

/// Loads `vals` into every callee-saved register, calls `hilos_v0_switch(save, to)` from
/// inside the same `asm!` block (so no compiler code runs in between), and returns what those
/// registers hold once some context switches back.
///
/// # Safety
/// As for [`switch`].
unsafe fn probe_switch(save: *mut *mut u8, to: *mut u8, vals: &[u64; NREGS]) -> [u64; NREGS] {
    let mut out = [0u64; NREGS];
    #[cfg(target_arch = "x86_64")]
    // The call is C ABI: rsp is 16-aligned at it (32 bytes pushed onto the 16-aligned asm
    // entry rsp) and it clobbers what `clobber_abi("C")` declares.
    // SAFETY: rbx and rbp (LLVM's) are saved and restored within the block; r12-r15 are
    // declared clobbered; `save`/`to` obey `switch`'s contract (forwarded); `vals` and `out`
    // point to NREGS u64s; the call follows the C ABI (above).
    unsafe {
        core::arch::asm!(
            "push rbx",                  // keep LLVM's rbx
            "push rbp",                  // keep LLVM's rbp
            "push {out}",                // out pointer: every caller-saved register dies
            "sub rsp, 8",                // 32 bytes pushed: rsp 16-aligned for the call
            "mov rbx, [{vals}]",
            "mov rbp, [{vals} + 8]",
            "mov r12, [{vals} + 16]",
            "mov r13, [{vals} + 24]",
            "mov r14, [{vals} + 32]",
            "mov r15, [{vals} + 40]",
            "call {switch}",             // rdi = save, rsi = to
            "mov rax, [rsp + 8]",        // rax = out
            "mov [rax], rbx",
            "mov [rax + 8], rbp",
            "mov [rax + 16], r12",
            "mov [rax + 24], r13",
            "mov [rax + 32], r14",
            "mov [rax + 40], r15",
            "add rsp, 16",
            "pop rbp",
            "pop rbx",
            vals = in(reg) vals.as_ptr(),
            out = in(reg) out.as_mut_ptr(),
            switch = sym hilos_v0_switch,
            in("rdi") save,
            in("rsi") to,
            out("r12") _, out("r13") _, out("r14") _, out("r15") _,
            clobber_abi("C"),
        );
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: x19 and x29, which LLVM reserves, are saved on the stack and restored before
    // the block ends; x20-x28 and d8-d15 are declared clobbered, x30 and the rest by
    // `clobber_abi("C")`; sp stays 16-aligned; `save`/`to` obey `switch`'s contract
    // (forwarded); `vals` and `out` point to NREGS u64s.
    unsafe {
        core::arch::asm!(
            "stp x19, x29, [sp, #-32]!", // keep LLVM's x19 and x29
            "str {out}, [sp, #16]",      // out pointer: every caller-saved register dies
            "ldp x19, x20, [{vals}, #0]",
            "ldp x21, x22, [{vals}, #16]",
            "ldp x23, x24, [{vals}, #32]",
            "ldp x25, x26, [{vals}, #48]",
            "ldp x27, x28, [{vals}, #64]",
            "ldr x29, [{vals}, #80]",
            "ldp d8, d9, [{vals}, #88]",
            "ldp d10, d11, [{vals}, #104]",
            "ldp d12, d13, [{vals}, #120]",
            "ldp d14, d15, [{vals}, #136]",
            "bl {switch}",               // x0 = save, x1 = to
            "ldr x9, [sp, #16]",         // x9 = out
            "stp x19, x20, [x9, #0]",
            "stp x21, x22, [x9, #16]",
            "stp x23, x24, [x9, #32]",
            "stp x25, x26, [x9, #48]",
            "stp x27, x28, [x9, #64]",
            "str x29, [x9, #80]",
            "stp d8, d9, [x9, #88]",
            "stp d10, d11, [x9, #104]",
            "stp d12, d13, [x9, #120]",
            "stp d14, d15, [x9, #136]",
            "ldp x19, x29, [sp], #32",
            vals = in(reg) vals.as_ptr(),
            out = in(reg) out.as_mut_ptr(),
            switch = sym hilos_v0_switch,
            in("x0") save,
            in("x1") to,
            out("x20") _, out("x21") _, out("x22") _, out("x23") _, out("x24") _,
            out("x25") _, out("x26") _, out("x27") _, out("x28") _,
            out("d8") _, out("d9") _, out("d10") _, out("d11") _,
            out("d12") _, out("d13") _, out("d14") _, out("d15") _,
            clobber_abi("C"),
        );
    }
    out
}

/// A recognisable pattern per register and per side (`side` 1..=4).
fn pattern(side: u64) -> [u64; NREGS] {
    std::array::from_fn(|i| 0x5A5A_0000_0000_0000 | (side << 40) | ((i as u64 + 1) * 0x0101_0101))
}

struct Regs {
    /// What the context saw come back from its own first probe (expected: pattern(2)).
    ctx_saw: [u64; NREGS],
}

unsafe extern "C" fn clobber_entry(arg: *mut u8) -> ! {
    let sh = arg.cast::<Shared<Regs>>();
    // SAFETY: `sh` outlives this context; `main` was saved by the test's switch into us.
    let saw = unsafe { probe_switch(&raw mut (*sh).ctx, (*sh).main, &pattern(2)) };
    // SAFETY: as above; the test resumed us after its second probe.
    unsafe { (*sh).data.ctx_saw = saw };
    loop {
        // SAFETY: as above. Clobber everything once more on the way out, for good measure.
        unsafe { probe_switch(&raw mut (*sh).ctx, (*sh).main, &pattern(4)) };
    }
}

#[test]
fn callee_saved_registers_survive_a_context_that_clobbers_them() {
    let sh = Shared::new(Regs {
        ctx_saw: [0; NREGS],
    });
    let mut stack = TestStack::new(16 * 1024);
    // SAFETY: `sh` and `stack` outlive the context; `clobber_entry` never returns or panics.
    unsafe { start(sh, &mut stack, clobber_entry) };
    // Main loads pattern 1, the context loads pattern 2 and switches back.
    // SAFETY: `ctx` is fresh; `main` is writable.
    let main_saw = unsafe { probe_switch(&raw mut (*sh).main, (*sh).ctx, &pattern(1)) };
    // Main loads pattern 3; the context resumes and records what it got back (pattern 2).
    // SAFETY: `ctx` was saved by the context's probe and not resumed since.
    let main_saw2 = unsafe { probe_switch(&raw mut (*sh).main, (*sh).ctx, &pattern(3)) };
    // SAFETY: the context is suspended; `sh` is only used through this raw pointer.
    let ctx_saw = unsafe { (*sh).data.ctx_saw };
    assert_eq!(
        main_saw,
        pattern(1),
        "main's callee-saved registers after a round trip"
    );
    assert_eq!(
        main_saw2,
        pattern(3),
        "main's callee-saved registers, second round trip"
    );
    assert_eq!(
        ctx_saw,
        pattern(2),
        "the context's callee-saved registers after a round trip"
    );
    // SAFETY: the context is suspended for good and owns nothing.
    drop(unsafe { Box::from_raw(sh) });
}

// ---- FP control --------------------------------------------------------------------------

/// The FP control state: (MXCSR, x87 control word) on x86_64; (FPCR, 0) on aarch64.
fn fp_control() -> (u32, u16) {
    #[cfg(target_arch = "x86_64")]
    {
        let (mut mxcsr, mut fcw) = (0u32, 0u16);
        // SAFETY: stmxcsr/fnstcw store 4 and 2 bytes to the locals they are given.
        unsafe {
            core::arch::asm!(
                "stmxcsr [{m}]",
                "fnstcw [{c}]",
                m = in(reg) &raw mut mxcsr,
                c = in(reg) &raw mut fcw,
                options(nostack, preserves_flags),
            );
        }
        (mxcsr, fcw)
    }
    #[cfg(target_arch = "aarch64")]
    {
        let fpcr: u64;
        // SAFETY: reading FPCR has no side effect.
        unsafe {
            core::arch::asm!(
                "mrs {}, fpcr",
                out(reg) fpcr,
                options(nomem, nostack, preserves_flags),
            );
        }
        (fpcr as u32, 0)
    }
}

/// Installs FP control state as returned by [`fp_control`].
///
/// # Safety
/// Only control values that keep every FP exception masked (no traps), and the caller restores
/// the thread's original state before it runs code it does not control.
unsafe fn set_fp_control((ctl, fcw): (u32, u16)) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: ldmxcsr/fldcw read 4 and 2 bytes from the locals given; the caller keeps
    // exceptions masked, so nothing traps.
    unsafe {
        core::arch::asm!(
            "ldmxcsr [{m}]",
            "fldcw [{c}]",
            m = in(reg) &raw const ctl,
            c = in(reg) &raw const fcw,
            options(nostack, preserves_flags),
        );
    }
    #[cfg(target_arch = "aarch64")]
    {
        let _ = fcw;
        // SAFETY: the caller keeps trap enables clear, so writing FPCR cannot make FP
        // instructions trap.
        unsafe {
            core::arch::asm!(
                "msr fpcr, {}",
                in(reg) u64::from(ctl),
                options(nomem, nostack, preserves_flags),
            );
        }
    }
}

/// Keeps only the control bits: MXCSR's status flags (bits 0-5) are caller-saved and change
/// with every inexact operation.
fn control_bits((ctl, fcw): (u32, u16)) -> (u32, u16) {
    if cfg!(target_arch = "x86_64") {
        (ctl & !0x3F, fcw)
    } else {
        (ctl, fcw)
    }
}

/// The state a fresh context must start with.
#[cfg(target_arch = "x86_64")]
const FRESH: (u32, u16) = (0x1F80, 0x037F);
#[cfg(target_arch = "aarch64")]
const FRESH: (u32, u16) = (0, 0);

/// Non-default, trap-free values for the main side and the context.
#[cfg(target_arch = "x86_64")]
const MAIN_FP: (u32, u16) = (0x1F80 | 0x6000, 0x037F | 0x0C00); // round toward zero
#[cfg(target_arch = "x86_64")]
const CTX_FP: (u32, u16) = (0x1F80 | 0x4000 | 0x8000, 0x037F | 0x0800); // up, FTZ / up
#[cfg(target_arch = "aarch64")]
const MAIN_FP: (u32, u16) = (0b11 << 22, 0); // RMode = toward zero
#[cfg(target_arch = "aarch64")]
const CTX_FP: (u32, u16) = ((0b01 << 22) | (1 << 24), 0); // toward +inf, flush-to-zero

struct Fp {
    at_start: (u32, u16),
    after_round_trip: (u32, u16),
}

unsafe extern "C" fn fp_entry(arg: *mut u8) -> ! {
    let sh = arg.cast::<Shared<Fp>>();
    let at_start = control_bits(fp_control());
    // SAFETY: CTX_FP masks every exception; this context never runs foreign code with it.
    unsafe { set_fp_control(CTX_FP) };
    // SAFETY: `sh` outlives this context; `main` was saved by the test's switch into us.
    unsafe {
        (*sh).data.at_start = at_start;
        yield_to_main(sh);
    }
    let after = control_bits(fp_control());
    // SAFETY: as above; the test resumed us once more.
    unsafe { (*sh).data.after_round_trip = after };
    loop {
        // SAFETY: as above.
        unsafe { yield_to_main(sh) };
    }
}

#[test]
fn fp_control_is_per_context_and_fresh_contexts_get_the_default() {
    let sh = Shared::new(Fp {
        at_start: (0, 0),
        after_round_trip: (0, 0),
    });
    let mut stack = TestStack::new(16 * 1024);
    let original = fp_control();
    // SAFETY: `sh` and `stack` outlive the context; `fp_entry` never returns or panics.
    unsafe { start(sh, &mut stack, fp_entry) };
    // SAFETY: MAIN_FP masks every exception; `original` is restored below before any check.
    unsafe { set_fp_control(MAIN_FP) };
    // SAFETY: `ctx` is fresh, then saved by the context's own switch back.
    unsafe { resume(sh) };
    let main_after_first = control_bits(fp_control());
    // SAFETY: as above.
    unsafe { resume(sh) };
    let main_after_second = control_bits(fp_control());
    // SAFETY: restores this thread's own state.
    unsafe { set_fp_control(original) };
    // SAFETY: the context is suspended; `sh` is only used through this raw pointer.
    let (ctx_start, ctx_after) = unsafe { ((*sh).data.at_start, (*sh).data.after_round_trip) };
    assert_eq!(
        ctx_start, FRESH,
        "a fresh context must start with the default FP control"
    );
    assert_eq!(
        main_after_first, MAIN_FP,
        "main's FP control after a round trip"
    );
    assert_eq!(
        main_after_second, MAIN_FP,
        "main's FP control after two round trips"
    );
    assert_eq!(
        ctx_after, CTX_FP,
        "the context's FP control after a round trip"
    );
    // SAFETY: the context is suspended for good and owns nothing.
    drop(unsafe { Box::from_raw(sh) });
}

// ---- stack alignment and frame chain at entry -------------------------------------------

/// Records the stack pointer and frame pointer exactly as `entry` receives them into
/// `Shared::entry_sp` / `entry_fp` (offsets 0 and 8), then tail-jumps to [`aligned_rest`], so
/// no prologue gets in between.
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
unsafe extern "C" fn aligned_entry(arg: *mut u8) -> ! {
    core::arch::naked_asm!(
        "mov [rdi], rsp",     // arg->entry_sp = rsp at entry
        "mov [rdi + 8], rbp", // arg->entry_fp = rbp at entry
        "jmp {rest}",         // same rsp, same rdi: as if the trampoline had called rest
        rest = sym aligned_rest,
    )
}

#[cfg(target_arch = "aarch64")]
#[unsafe(naked)]
unsafe extern "C" fn aligned_entry(arg: *mut u8) -> ! {
    core::arch::naked_asm!(
        "mov x9, sp",
        "str x9, [x0]",      // arg->entry_sp = sp at entry
        "str x29, [x0, #8]", // arg->entry_fp = x29 at entry
        "b {rest}",          // same sp, same x0 and x30
        rest = sym aligned_rest,
    )
}

unsafe extern "C" fn aligned_rest(arg: *mut u8) -> ! {
    let sh = arg.cast::<Shared<()>>();
    loop {
        // SAFETY: `sh` outlives this context; `main` was saved by the test's switch into us.
        unsafe { yield_to_main(sh) };
    }
}

#[test]
fn entry_runs_on_an_abi_aligned_stack_at_the_end_of_the_frame_chain() {
    for misalign_probe in 0..4 {
        let sh = Shared::new(());
        // Different stack sizes, so the test does not pass by one lucky address.
        let mut stack = TestStack::new(16 * 1024 + misalign_probe * 16);
        // SAFETY: `sh` and `stack` outlive the context; the entry never returns or panics.
        unsafe { start(sh, &mut stack, aligned_entry) };
        let top = stack.top().addr();
        // SAFETY: `ctx` is fresh.
        unsafe { resume(sh) };
        // SAFETY: the context is suspended; `sh` is only used through this raw pointer.
        let (sp, fp) = unsafe { ((*sh).entry_sp, (*sh).entry_fp) };
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(
                sp % 16,
                8,
                "rsp at entry {sp:#x}: must be 8 mod 16 (16 before call)"
            );
            assert_eq!(
                sp,
                top - 24,
                "entry's return address sits right below the padding"
            );
            assert_eq!(fp, 0, "rbp = 0 marks the outermost frame");
        }
        #[cfg(target_arch = "aarch64")]
        {
            assert_eq!(sp % 16, 0, "sp at entry {sp:#x}: must be 16-aligned");
            assert_eq!(
                fp,
                top - 16,
                "x29 must point at the zeroed frame record at the top"
            );
            // SAFETY: `top - 16` (which `fp` was just checked to equal) is inside `stack`,
            // 16-aligned, and not written while the context is suspended.
            let record = unsafe { *stack.top().sub(16).cast::<[u64; 2]>() };
            assert_eq!(
                record,
                [0, 0],
                "the frame record ending the chain must be zero"
            );
        }
        // SAFETY: the context is suspended for good and owns nothing.
        drop(unsafe { Box::from_raw(sh) });
    }
}

// ---- backtraces --------------------------------------------------------------------------

struct Bt {
    trace: Option<std::backtrace::Backtrace>,
}

#[inline(never)]
unsafe extern "C" fn backtrace_entry(arg: *mut u8) -> ! {
    let sh = arg.cast::<Shared<Bt>>();
    // Capture only (unresolved frames): symbolising is done by the test on its own stack.
    let trace = std::backtrace::Backtrace::force_capture();
    // SAFETY: `sh` outlives this context; `main` was saved by the test's switch into us.
    unsafe { (*sh).data.trace = Some(trace) };
    loop {
        // SAFETY: as above.
        unsafe { yield_to_main(sh) };
    }
}

#[test]
fn backtrace_in_a_green_context_walks_to_the_trampoline_and_stops() {
    let sh = Shared::new(Bt { trace: None });
    let mut stack = TestStack::new(256 * 1024);
    // SAFETY: `sh` and `stack` outlive the context; the entry never returns or panics.
    unsafe { start(sh, &mut stack, backtrace_entry) };
    // Put a plausible code address in the 16 bytes above the trampoline's stack pointer,
    // which init_stack zeroes and nothing reads. A zero there would also end a walk whose
    // unwinder reads it as a return address; a code address does not, so only the
    // trampoline's CFI (return address undefined) can stop the walk: that is what this
    // test is about.
    let scribble = (backtrace_entry as unsafe extern "C" fn(*mut u8) -> !) as usize + 4;
    // SAFETY: the 16 bytes below `top` are inside `stack`, 16-aligned, and unused by the
    // suspended context (see `init_stack`'s frame picture).
    unsafe { *stack.top().sub(16).cast::<[usize; 2]>() = [scribble, scribble] };
    // SAFETY: `ctx` is fresh.
    unsafe { resume(sh) };
    // SAFETY: the context is suspended; `sh` came from Box and is not used by it again.
    let shared = unsafe { Box::from_raw(sh) };
    let trace = shared
        .data
        .trace
        .expect("the context did not capture a backtrace");
    let text = trace.to_string();
    // One "N: symbol" line per frame; "at file:line" lines are not frames.
    let frames: Vec<&str> = text
        .lines()
        .map(str::trim_start)
        .filter(|l| {
            l.split_once(": ")
                .is_some_and(|(n, _)| n.parse::<u32>().is_ok())
        })
        .collect();
    assert!(
        frames.iter().any(|f| f.contains("backtrace_entry")),
        "the entry function's frame is missing:\n{text}"
    );
    let last = frames.last().copied().unwrap_or_default();
    assert!(
        last.contains("hilos_v0_trampoline"),
        "the walk must end at the trampoline, ended at {last:?}:\n{text}"
    );
    assert!(
        frames.len() < 32,
        "walk ran away ({} frames):\n{text}",
        frames.len()
    );
}

// ---- the benchmark helper ----------------------------------------------------------------

#[test]
fn bare_switch_roundtrips_runs() {
    // No timing assertion: only that it starts, round-trips and comes back.
    let _ = bare_switch_roundtrips(1000);
    let _ = bare_switch_roundtrips(0);
}
