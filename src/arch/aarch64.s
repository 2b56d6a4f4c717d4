// hilos context switch for aarch64, AAPCS64 (Linux).
//
// This one text is assembled twice: by rustc (global_asm! with options(raw)) for the crate, and by
// aarch64-linux-gnu-gcc for tests/arch/harness.c (run under qemu-aarch64).  So: only directives
// both the LLVM and the GNU assembler accept, no C preprocessor, no curly braces, DWARF register
// numbers (72..79 = d8..d15) in CFI because the two assemblers spell FP registers differently.
//
// Protocol, in short (src/arch/mod.rs has the long form):
//   * A suspended context is one stack pointer.  At that address sits a 176-byte "switch frame":
//
//       sp+168  x30 (lr)   resume address (a return address, or the trampoline)
//       sp+160  x29 (fp)
//       sp+152  padding
//       sp+144  FPCR
//       sp+80   d8 .. d15  (low 64 bits of v8..v15; 8 bytes each, d8 lowest)
//       sp+0    x19 .. x28 (8 bytes each, x19 lowest)                  <- saved sp, 16-aligned
//
//   * hilos_v0_switch stores that frame on the running stack, stores sp, loads the other sp,
//     loads the other frame and branches to its x30.
//   * hilos_v0_init_stack writes such a frame on a fresh stack, with the trampoline as x30 and
//     arg/entry in x19/x20, so the very first switch into it starts the trampoline.
//
// AAPCS64 makes callee-saved exactly: x19-x28, x29 (frame pointer), sp, the low 64 bits of v8-v15,
// and the link register x30 in the sense that the callee must return to it.  FPCR (rounding mode,
// flush-to-zero, default NaN) is "global" state that a call must preserve unless documented, so it
// is saved too.  Everything else (x0-x18, x30 after use, v0-v7, v16-v31, the high halves of v8-v15,
// NZCV, FPSR) is caller-saved or flags, dead across the call into switch.  x18 is the platform
// register; on Linux it is an ordinary temporary.
//
// Two ways to resume, two entry points over the same frame (the reasoning and the x86_64
// measurements are in x86_64.s).  `ret` is predicted from the return-address stack, whose top is
// the return address of the last `bl`: the one into switch made by the context that is leaving.
//   * hilos_v0_switch resumes with `br x30`, predicted by the indirect branch predictor, which
//     learns the scheduler <-> thread pattern, where the two sides call switch from different
//     places and `ret` would miss every time.
//   * hilos_v0_switch_ret resumes with `ret`, for the case where both sides called switch from the
//     same call site (green thread to green thread inside the scheduler's switch_away): the stack's
//     top is then exactly the resume address.
// Not measured on aarch64 hardware (timings under qemu mean nothing).

// Pointer authentication and BTI: nothing here signs or authenticates x30, and the file carries no
// .note.gnu.property, so linking it turns BTI off for the binary.

        .text

// ---------------------------------------------------------------------------------------------
// void hilos_v0_switch(void **save, void *to)       resumes `to` with br x30
// void hilos_v0_switch_ret(void **save, void *to)   resumes `to` with ret (same call site only)
//   Both build and consume the same frame (the macro hilos_switch_frame); a context suspended by
//   either may be resumed by either.
//   x0 = save: where to store the stack pointer of the context that is leaving
//   x1 = to:   the stack pointer of the context to resume (a switch frame, see above)
//   x30 = return address into the caller (the leaving context's resume address)
//
// Stack at entry:  sp is 16-aligned (AAPCS64 requires it at every public interface); nothing of
// ours is on it yet:
//
//       ...  caller's frame  ...                     <- sp
//
// Stack after the stores, just before sp is written to *save:
//
//       sp+168  x30   return address into the caller
//       sp+160  x29   caller's frame pointer      (sp+160 is a valid frame record: fp, lr)
//       sp+152  padding (not written)
//       sp+144  FPCR
//       sp+136  d15 ... sp+80 d8
//       sp+72   x28 ... sp+0  x19                    <- sp = entry sp - 176, 16-aligned
//
// CFI: after `mov sp, x1` the stack is the other context's, whose switch frame has the same
// layout, so the same CFI stays true at every instruction: an unwinder stopped there sees the
// resumed context's caller (or the trampoline of a fresh stack).
// ---------------------------------------------------------------------------------------------
        .macro  hilos_switch_frame
        sub     sp, sp, #176            // reserve the switch frame; sp stays 16-aligned
        .cfi_def_cfa_offset 176
        stp     x29, x30, [sp, #160]    // frame pointer and return address (= resume address)
        .cfi_offset x29, -16
        .cfi_offset x30, -8
        stp     x19, x20, [sp, #0]      // x19, x20: callee-saved (arg, entry in a fresh frame)
        .cfi_offset x19, -176
        .cfi_offset x20, -168
        stp     x21, x22, [sp, #16]     // x21, x22: callee-saved
        .cfi_offset x21, -160
        .cfi_offset x22, -152
        stp     x23, x24, [sp, #32]     // x23, x24: callee-saved
        .cfi_offset x23, -144
        .cfi_offset x24, -136
        stp     x25, x26, [sp, #48]     // x25, x26: callee-saved
        .cfi_offset x25, -128
        .cfi_offset x26, -120
        stp     x27, x28, [sp, #64]     // x27, x28: callee-saved
        .cfi_offset x27, -112
        .cfi_offset x28, -104
        stp     d8, d9, [sp, #80]       // d8, d9: low halves of v8, v9 (callee-saved)
        .cfi_offset 72, -96
        .cfi_offset 73, -88
        stp     d10, d11, [sp, #96]     // d10, d11
        .cfi_offset 74, -80
        .cfi_offset 75, -72
        stp     d12, d13, [sp, #112]    // d12, d13
        .cfi_offset 76, -64
        .cfi_offset 77, -56
        stp     d14, d15, [sp, #128]    // d14, d15
        .cfi_offset 78, -48
        .cfi_offset 79, -40
        mrs     x9, fpcr                // x9 = FPCR of the leaving context (x9: scratch)
        str     x9, [sp, #144]          // save it in the frame
        mov     x10, sp                 // x10 = sp (str cannot store sp directly)
        str     x10, [x0]               // *save = sp: the leaving context is now fully suspended

        mov     sp, x1                  // sp = to: from here on we run on the resumed stack

        ldr     x10, [sp, #144]         // x10 = FPCR of the resumed context (0 in a fresh one)
        cmp     x9, x10                 // x9 still holds the leaving context's FPCR
        b.eq    1f                      // same value: skip the write (NZCV is caller-saved)
        msr     fpcr, x10               // install it; writes can be slow, so only when it differs
1:
        ldp     x19, x20, [sp, #0]      // x19, x20 of the resumed context (arg, entry if fresh)
        ldp     x21, x22, [sp, #16]     // x21, x22
        ldp     x23, x24, [sp, #32]     // x23, x24
        ldp     x25, x26, [sp, #48]     // x25, x26
        ldp     x27, x28, [sp, #64]     // x27, x28
        ldp     d8, d9, [sp, #80]       // d8, d9 (the high halves of v8, v9 are caller-saved)
        ldp     d10, d11, [sp, #96]     // d10, d11
        ldp     d12, d13, [sp, #112]    // d12, d13
        ldp     d14, d15, [sp, #128]    // d14, d15
        ldp     x29, x30, [sp, #160]    // x29 = its frame pointer, x30 = its resume address
        add     sp, sp, #176            // pop the frame: sp is what the resumed caller had
        .cfi_def_cfa_offset 0
        .cfi_restore x19
        .cfi_restore x20
        .cfi_restore x21
        .cfi_restore x22
        .cfi_restore x23
        .cfi_restore x24
        .cfi_restore x25
        .cfi_restore x26
        .cfi_restore x27
        .cfi_restore x28
        .cfi_restore 72
        .cfi_restore 73
        .cfi_restore 74
        .cfi_restore 75
        .cfi_restore 76
        .cfi_restore 77
        .cfi_restore 78
        .cfi_restore 79
        .cfi_restore x29
        .cfi_restore x30
        .endm                           // x30 = the resumed context's resume address

        .p2align 4
        .globl  hilos_v0_switch
        .hidden hilos_v0_switch
        .type   hilos_v0_switch, %function
hilos_v0_switch:
        .cfi_startproc
        hilos_switch_frame              // save this context, load the other one's registers
        br      x30                     // resume, predicted by the indirect branch predictor
        .cfi_endproc
        .size   hilos_v0_switch, .-hilos_v0_switch

        .p2align 4
        .globl  hilos_v0_switch_ret
        .hidden hilos_v0_switch_ret
        .type   hilos_v0_switch_ret, %function
hilos_v0_switch_ret:
        .cfi_startproc
        hilos_switch_frame              // save this context, load the other one's registers
        ret                             // resume, predicted by the return-address stack: right
                                        // when the resumed context left by this same call site
        .cfi_endproc
        .size   hilos_v0_switch_ret, .-hilos_v0_switch_ret

// ---------------------------------------------------------------------------------------------
// void hilos_v0_switch_tp(void **save, void *to, uintptr_t tp)       br x30, and loads tpidr_el0
// void hilos_v0_switch_ret_tp(void **save, void *to, uintptr_t tp)   ret, and loads tpidr_el0
//   x0 = save, x1 = to: as above
//   x2 = tp:   the thread pointer of the context being resumed (its TLS area: glibc's 16-byte
//              thread control block at tp, the static TLS blocks above it, struct pthread below)
//
// Used when every green thread has its own thread-locals (src/tls).  The stack at entry and the
// frames are exactly those of hilos_v0_switch.  tpidr_el0 changes after the resumed context's
// registers are loaded and before it runs; nothing in this routine reads memory through the
// thread pointer, so each context's TLS accesses see its own area.  The leaving context's thread
// pointer is not saved: the runtime knows it.  x2 is caller-saved and the frame macro does not
// touch it.  tpidr_el0 is writable from user space on every aarch64 Linux.
// ---------------------------------------------------------------------------------------------
        .p2align 4
        .globl  hilos_v0_switch_tp
        .hidden hilos_v0_switch_tp
        .type   hilos_v0_switch_tp, %function
hilos_v0_switch_tp:
        .cfi_startproc
        hilos_switch_frame              // save this context, load the other one's registers
        msr     tpidr_el0, x2           // thread pointer = the resumed context's
        br      x30                     // resume, predicted by the indirect branch predictor
        .cfi_endproc
        .size   hilos_v0_switch_tp, .-hilos_v0_switch_tp

        .p2align 4
        .globl  hilos_v0_switch_ret_tp
        .hidden hilos_v0_switch_ret_tp
        .type   hilos_v0_switch_ret_tp, %function
hilos_v0_switch_ret_tp:
        .cfi_startproc
        hilos_switch_frame              // save this context, load the other one's registers
        msr     tpidr_el0, x2           // thread pointer = the resumed context's
        ret                             // resume, predicted by the return-address stack
        .cfi_endproc
        .size   hilos_v0_switch_ret_tp, .-hilos_v0_switch_ret_tp

// ---------------------------------------------------------------------------------------------
// void *hilos_v0_init_stack(void *top, void (*entry)(void *), void *arg)
//   x0 = top:   highest address (exclusive) of the fresh stack, 16-aligned
//   x1 = entry: function the new context runs first; never returns
//   x2 = arg:   its argument
//   returns x0 = the stack pointer to pass to hilos_v0_switch as `to`
//
// A leaf: uses only x0-x3, x9 and the memory below `top`; its own stack is untouched.
//
// The frame it builds below `top` (192 bytes; the returned sp = top - 192 is 16-aligned):
//
//       top-8    0                     zeroed frame record: lr = 0  (end of the frame chain;
//       top-16   0                     zeroed frame record: fp = 0   the trampoline's x29 -> here)
//       top-24   trampoline (+4)       x30, resume address   --+
//       top-32   0                     x29                     |
//       top-40   0                     padding                 |
//       top-48   0                     FPCR = 0                |
//       top-56   0                     d15                     |  an ordinary switch frame,
//         ...    0                     d14 .. d9               |  as hilos_v0_switch leaves
//       top-112  0                     d8                      |  behind it
//       top-120  0                     x28                     |
//         ...    0                     x27 .. x22              |
//       top-176  0                     x21                     |
//       top-184  entry                 x20                     |
//       top-192  arg                   x19                   --+  <- returned sp
//
// After the first switch loads this frame, the trampoline starts with sp = top - 16 (16-aligned,
// pointing at the zeroed frame record), x19 = arg, x20 = entry and FPCR = 0: round to nearest, no
// flush-to-zero, IEEE NaNs, the value Linux gives a new process.  A fresh context gets that rather
// than its creator's FPCR, because the creator is whichever thread called spawn, and a thread that
// has not run yet may be stolen by another worker; its FP behaviour must not depend on either.
// ---------------------------------------------------------------------------------------------
        .p2align 4
        .globl  hilos_v0_init_stack
        .hidden hilos_v0_init_stack
        .type   hilos_v0_init_stack, %function
hilos_v0_init_stack:
        .cfi_startproc
        sub     x3, x0, #192            // x3 = top - 192: the new context's saved stack pointer
        stp     xzr, xzr, [x3, #176]    // top-16: zeroed frame record (fp = 0, lr = 0)
        adr     x9, .Lhilos_v0_trampoline_resume // x9 = trampoline, after its nop (PC-relative)
        stp     xzr, x9, [x3, #160]     // top-32: x29 = 0, x30 = resume address = trampoline
        stp     xzr, xzr, [x3, #144]    // top-48: FPCR = 0, padding = 0
        stp     xzr, xzr, [x3, #128]    // d14, d15 = 0
        stp     xzr, xzr, [x3, #112]    // d12, d13 = 0
        stp     xzr, xzr, [x3, #96]     // d10, d11 = 0
        stp     xzr, xzr, [x3, #80]     // d8, d9 = 0
        stp     xzr, xzr, [x3, #64]     // x27, x28 = 0
        stp     xzr, xzr, [x3, #48]     // x25, x26 = 0
        stp     xzr, xzr, [x3, #32]     // x23, x24 = 0
        stp     xzr, xzr, [x3, #16]     // x21, x22 = 0
        stp     x2, x1, [x3, #0]        // x19 = arg, x20 = entry
        mov     x0, x3                  // return the new stack pointer
        ret                             // an ordinary leaf return (x30 untouched)
        .cfi_endproc
        .size   hilos_v0_init_stack, .-hilos_v0_init_stack

// ---------------------------------------------------------------------------------------------
// hilos_v0_trampoline: first code run on a fresh stack; never called, only switched to.
//
// Stack at entry (reached by the `br x30` or `ret` that ends hilos_v0_switch or _switch_ret):
//
//       top-8   0   lr of the zeroed frame record
//       top-16  0   fp of the zeroed frame record        <- sp, 16-aligned
//   (execution starts after the leading nop, see below)
//   registers: x19 = arg, x20 = entry, x29 = 0, x30 = this address, FPCR = 0
//
// It points x29 at the zeroed record, as a normal prologue would at its own frame record, then
// calls entry(arg).  entry's prologue stores (x29, x30) as its own record, so a frame-pointer
// walk goes entry -> zeroed record and stops there (fp = 0 ends the chain, AAPCS64 6.4.6).
//
// CFI: `.cfi_undefined x30` says this frame has no return address, which DWARF unwinders (libgcc's
// _Unwind_Backtrace used by Rust's Backtrace and panics, gdb, perf --call-graph=dwarf) take as the
// outermost frame, so a walk up a green stack ends here.
//
// The leading nop: init_stack stores the address just after it (.Lhilos_v0_trampoline_resume) as
// the resume address.  An unwinder looks up "return address - 1" to find the caller's frame.  If
// a sample or a debugger stops in hilos_v0_switch after the stack swap on a fresh stack, the
// "return address" is that resume address, and minus one it must still fall in this FDE and this
// symbol, so the walk names the trampoline and stops there.
// ---------------------------------------------------------------------------------------------
        .p2align 4
        .globl  hilos_v0_trampoline
        .hidden hilos_v0_trampoline
        .type   hilos_v0_trampoline, %function
hilos_v0_trampoline:
        .cfi_startproc
        .cfi_undefined x30              // no caller: this is the outermost frame
        nop                             // never run: makes "resume address - 1" fall in here
.Lhilos_v0_trampoline_resume:
        mov     x29, sp                 // x29 = &zeroed frame record: the frame chain ends here
        mov     x0, x19                 // x0 = arg, first integer argument of entry
        blr     x20                     // entry(arg); sp is 16-aligned, x30 = the brk below
        brk     #0x1                    // entry returned although it must not: trap at once
        .cfi_endproc
        .size   hilos_v0_trampoline, .-hilos_v0_trampoline

// No executable stack needed (silences GNU ld's warning in the C harness; LLVM emits it too).
        .pushsection .note.GNU-stack, "", %progbits
        .popsection
