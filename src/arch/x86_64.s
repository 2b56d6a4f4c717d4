# hilos context switch for x86_64, System V ABI (Linux).  AT&T syntax.
#
# This one text is assembled twice: by rustc (global_asm! with options(att_syntax, raw)) for the
# crate, and by gcc for tests/arch/harness.c.  So: only directives both the LLVM and the GNU
# assembler accept, no C preprocessor, no curly braces, and no comment that starts with a digit
# right after the hash (GNU as would read it as a line marker).
#
# Protocol, in short (src/arch/mod.rs has the long form):
#   * A suspended context is one stack pointer.  At that address sits a 64-byte "switch frame":
#
#       sp+56  resume address   where execution continues (a return address, or the trampoline)
#       sp+48  rbp
#       sp+40  rbx
#       sp+32  r12
#       sp+24  r13
#       sp+16  r14
#       sp+8   r15
#       sp+4   x87 control word (16 bits), then 2 bytes of padding
#       sp+0   MXCSR (32 bits)                                     <- saved sp, always 16-aligned
#
#   * hilos_v0_switch pushes that frame on the running stack, stores rsp, loads the other rsp,
#     pops the other frame and jumps to its resume address.
#   * hilos_v0_init_stack writes such a frame on a fresh stack, with the trampoline as resume
#     address and entry/arg in r12/rbx, so the very first switch into it starts the trampoline.
#
# Everything the ABI calls caller-saved (rax rcx rdx rsi rdi r8-r11, all of xmm/ymm/zmm, the x87
# register stack, the flags, the MXCSR status bits) is dead at a call, so it is not saved: the
# caller of switch already assumed a call clobbers it.  rsp is saved implicitly (it is the handle).
# The direction flag is clear at every call and return by the ABI, so it needs no saving either.
#
# Two ways to resume, two entry points over the same frame.  The CPU predicts a ret from its
# return stack buffer (RSB), whose top is the address pushed by the *last call*: the call into
# switch made by the context that is leaving.  So:
#   * hilos_v0_switch resumes by pop+jmp.  An indirect jmp is predicted by the branch target
#     buffer, keyed on the branch's address and recent history, which learns the usual patterns
#     (scheduler loop <-> thread, where the two sides call switch from different places and a ret
#     would miss every time).  Its cost: the call into switch leaves an RSB entry that no ret
#     consumes, so the resumed context's returns after the switch are predicted one frame off and
#     miss until its calls and returns balance the RSB again.
#   * hilos_v0_switch_ret resumes by ret.  It is for the case where the leaving and the resumed
#     context called switch from the *same* call site (a green thread handing over directly to
#     another green thread, both inside the scheduler's switch_away): the RSB's top is then exactly
#     the resume address, and the resumed context's next returns are predicted from the leaving
#     context's call chain, right whenever the two run the same code (a ping-pong).
# Measured, release, 2-core AMD EPYC VM: bare switch round trips between a loop and a thread
# (different call sites) 13.8-16.2 ns with pop+jmp, 29.0-33.5 ns with ret; a channel ping-pong
# between two green threads of one worker (same call site) 128-135 ns with pop+jmp only, 105-109 ns
# with ret for green-to-green switches.
#
# Control-flow enforcement: this file carries no .note.gnu.property, so linking it turns IBT and
# shadow stacks off for the binary (both would reject a stack switch done like this anyway).

        .text

# ---------------------------------------------------------------------------------------------
# void hilos_v0_switch(void **save, void *to)       resumes `to` by pop+jmp
# void hilos_v0_switch_ret(void **save, void *to)   resumes `to` by ret (same call site only)
#   rdi = save: where to store the stack pointer of the context that is leaving
#   rsi = to:   the stack pointer of the context to resume (a switch frame, see above)
#
# Both build and consume the same switch frame, so a context suspended by either may be resumed by
# either.  The common part is the macro hilos_switch_frame; each function adds its last step.
#
# Stack at entry (the running context's stack):
#
#       ...  caller's frame  ...
#       rsp+0  return address into the caller        rsp % 16 == 8 here, as at any function entry
#
# Stack after the pushes, just before rsp is stored into *save:
#
#       rsp+56 return address into the caller        (becomes the "resume address")
#       rsp+48 saved rbp
#       rsp+40 saved rbx
#       rsp+32 saved r12
#       rsp+24 saved r13
#       rsp+16 saved r14
#       rsp+8  saved r15
#       rsp+4  x87 control word, 2 bytes padding
#       rsp+0  MXCSR                                  rsp % 16 == 0 (8 + 56 bytes below the
#                                                     16-aligned rsp of the call site)
#
# After the macro, rsp points at the resumed context's resume address:
#
#       rsp+0  resume address (a return address into its caller, or the trampoline)
#
# CFI: after `movq %rsi, %rsp` the stack is the other context's, but its switch frame has exactly
# the same layout, so the same CFI (CFA = rsp + 64 at the same instruction) stays true: an
# unwinder stopped there sees the resumed context's caller (or the trampoline of a fresh stack).
# ---------------------------------------------------------------------------------------------
        .macro  hilos_switch_frame
        pushq   %rbp                    # rbp: caller's frame pointer (callee-saved); slot sp+48
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %rbp, 0
        pushq   %rbx                    # rbx: callee-saved; in a fresh frame this slot is `arg`
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %rbx, 0
        pushq   %r12                    # r12: callee-saved; in a fresh frame this slot is `entry`
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %r12, 0
        pushq   %r13                    # r13: callee-saved
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %r13, 0
        pushq   %r14                    # r14: callee-saved
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %r14, 0
        pushq   %r15                    # r15: callee-saved
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %r15, 0
        subq    $8, %rsp                # room for the FP control words; rsp is now 16-aligned
        .cfi_adjust_cfa_offset 8

        stmxcsr (%rsp)                  # MXCSR: rounding mode, FTZ/DAZ, exception masks (+ flags)
        fnstcw  4(%rsp)                 # x87 control word: precision, rounding, masks (no wait)
        movq    %rsp, (%rdi)            # *save = rsp: the leaving context is now fully suspended

        movq    %rsi, %rsp              # rsp = to: from here on we run on the resumed stack

        ldmxcsr (%rsp)                  # MXCSR of the resumed context (0x1F80 in a fresh one)
        fldcw   4(%rsp)                 # x87 control word of the resumed context (0x037F if fresh)
        addq    $8, %rsp                # drop the FP control slot
        .cfi_adjust_cfa_offset -8
        popq    %r15                    # r15 of the resumed context
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r15
        popq    %r14                    # r14 of the resumed context
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r14
        popq    %r13                    # r13 of the resumed context
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r13
        popq    %r12                    # r12 of the resumed context (`entry` if fresh)
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r12
        popq    %rbx                    # rbx of the resumed context (`arg` if fresh)
        .cfi_adjust_cfa_offset -8
        .cfi_restore %rbx
        popq    %rbp                    # rbp of the resumed context (0 if fresh: outermost frame)
        .cfi_adjust_cfa_offset -8
        .cfi_restore %rbp
        .endm                           # rsp -> the resumed context's resume address

        .p2align 4
        .globl  hilos_v0_switch
        .hidden hilos_v0_switch
        .type   hilos_v0_switch, @function
hilos_v0_switch:
        .cfi_startproc
        hilos_switch_frame              # save this context, load the other one's registers
        popq    %rcx                    # rcx = resume address; rcx is caller-saved, so free.
        .cfi_adjust_cfa_offset -8       # rsp is back where the resumed caller had it (+8), as
        .cfi_register %rip, %rcx        # after a ret: rsp % 16 == 0 at the resume address
        jmpq    *%rcx                   # resume, predicted by the branch target buffer
        .cfi_endproc
        .size   hilos_v0_switch, .-hilos_v0_switch

        .p2align 4
        .globl  hilos_v0_switch_ret
        .hidden hilos_v0_switch_ret
        .type   hilos_v0_switch_ret, @function
hilos_v0_switch_ret:
        .cfi_startproc
        hilos_switch_frame              # save this context, load the other one's registers
        ret                             # resume, predicted by the RSB: right when the resumed
                                        # context left by this same call site
        .cfi_endproc
        .size   hilos_v0_switch_ret, .-hilos_v0_switch_ret

# ---------------------------------------------------------------------------------------------
# void hilos_v0_switch_tp(void **save, void *to, uintptr_t tp)       pop+jmp, and loads fs base
# void hilos_v0_switch_ret_tp(void **save, void *to, uintptr_t tp)   ret, and loads fs base
#   rdi = save, rsi = to: as above
#   rdx = tp:   the thread pointer of the context being resumed (its TLS area: glibc's control
#               block at tp, its static TLS blocks below), loaded into the fs base
#
# Used when every green thread has its own thread-locals (src/tls).  The stack at entry and the
# frames are exactly those of hilos_v0_switch above.  The fs base changes after the resumed
# context's registers are popped and before it runs: no instruction of this routine reads memory
# through %fs, so the leaving context's last TLS access and the resumed context's first one each
# see their own area.  The leaving context's thread pointer is not saved: the runtime knows it
# (the green thread's area, or the worker's own for the scheduler context).  wrfsbase needs the
# kernel to allow it in user space (FSGSBASE, AT_HWCAP2 bit 1); src/tls checks before using these.
# ---------------------------------------------------------------------------------------------
        .p2align 4
        .globl  hilos_v0_switch_tp
        .hidden hilos_v0_switch_tp
        .type   hilos_v0_switch_tp, @function
hilos_v0_switch_tp:
        .cfi_startproc
        hilos_switch_frame              # save this context, load the other one's registers
        wrfsbase %rdx                   # fs base = the resumed context's thread pointer
        popq    %rcx                    # rcx = resume address; rcx is caller-saved, so free.
        .cfi_adjust_cfa_offset -8       # rsp is back where the resumed caller had it (+8), as
        .cfi_register %rip, %rcx        # after a ret: rsp % 16 == 0 at the resume address
        jmpq    *%rcx                   # resume, predicted by the branch target buffer
        .cfi_endproc
        .size   hilos_v0_switch_tp, .-hilos_v0_switch_tp

        .p2align 4
        .globl  hilos_v0_switch_ret_tp
        .hidden hilos_v0_switch_ret_tp
        .type   hilos_v0_switch_ret_tp, @function
hilos_v0_switch_ret_tp:
        .cfi_startproc
        hilos_switch_frame              # save this context, load the other one's registers
        wrfsbase %rdx                   # fs base = the resumed context's thread pointer
        ret                             # resume, predicted by the RSB (same call site)
        .cfi_endproc
        .size   hilos_v0_switch_ret_tp, .-hilos_v0_switch_ret_tp

# ---------------------------------------------------------------------------------------------
# void *hilos_v0_init_stack(void *top, void (*entry)(void *), void *arg)
#   rdi = top:   highest address (exclusive) of the fresh stack, 16-aligned
#   rsi = entry: function the new context runs first; never returns
#   rdx = arg:   its argument
#   returns rax = the stack pointer to pass to hilos_v0_switch as `to`
#
# A leaf: touches only caller-saved registers and the memory below `top`.  Stack at entry is just
# the return address (rsp+0); nothing else is used.
#
# The frame it builds below `top` (80 bytes; the returned sp = top - 80 is 16-aligned):
#
#       top-8   0                       fake return address of the trampoline: "no caller"
#       top-16  0                       padding, keeps the trampoline's rsp 16-aligned
#       top-24  trampoline (+1)         resume address  --+
#       top-32  0                       rbp = 0            |
#       top-40  arg                     rbx                |  an ordinary switch frame,
#       top-48  entry                   r12                |  as hilos_v0_switch leaves
#       top-56  0                       r13                |  behind it
#       top-64  0                       r14                |
#       top-72  0                       r15                |
#       top-80  0x1F80 | 0x037F << 32   MXCSR, x87 CW  ----+  <- returned sp
#
# After the first switch pops this frame, the trampoline starts with rsp = top - 16 (16-aligned),
# rbp = 0, rbx = arg, r12 = entry, MXCSR = 0x1F80 and x87 CW = 0x037F, the values the ABI gives a
# new process: a fresh context gets the defaults rather than its creator's control words, because
# the creator is whichever thread happened to call spawn, and a thread that is not run yet may be
# stolen by another worker; its floating-point behaviour must not depend on either.
# ---------------------------------------------------------------------------------------------
        .p2align 4
        .globl  hilos_v0_init_stack
        .hidden hilos_v0_init_stack
        .type   hilos_v0_init_stack, @function
hilos_v0_init_stack:
        .cfi_startproc
        leaq    -80(%rdi), %rax         # rax = top - 80: the new context's saved stack pointer
        movq    $0, 72(%rax)            # top-8:  fake return address 0 above the trampoline
        movq    $0, 64(%rax)            # top-16: padding (zero, so nothing stale is left)
        leaq    .Lhilos_v0_trampoline_resume(%rip), %rcx  # rcx = trampoline, after its nop
        movq    %rcx, 56(%rax)          # top-24: resume address = trampoline
        movq    $0, 48(%rax)            # top-32: rbp = 0, ABI marker of the deepest frame
        movq    %rdx, 40(%rax)          # top-40: rbx = arg
        movq    %rsi, 32(%rax)          # top-48: r12 = entry
        movq    $0, 24(%rax)            # top-56: r13 = 0
        movq    $0, 16(%rax)            # top-64: r14 = 0
        movq    $0, 8(%rax)             # top-72: r15 = 0
        movl    $0x1F80, (%rax)         # top-80: MXCSR: all exceptions masked, round to nearest
        movl    $0x037F, 4(%rax)        # top-76: x87 CW: masked, 64-bit precision, nearest; +pad
        ret                             # rax = the new stack pointer
        .cfi_endproc
        .size   hilos_v0_init_stack, .-hilos_v0_init_stack

# ---------------------------------------------------------------------------------------------
# hilos_v0_trampoline: first code run on a fresh stack; never called, only switched to.
#
# Stack at entry (reached by the jmp or ret that ends hilos_v0_switch or hilos_v0_switch_ret):
#
#       top-8   0               fake return address
#       top-16  0               padding                  <- rsp, 16-aligned
#   (execution starts after the leading nop, see below)
#   registers: rbx = arg, r12 = entry, rbp = 0, MXCSR/x87 CW = defaults
#
# It calls entry(arg) with rsp 16-aligned before the call, so entry sees rsp % 16 == 8 like any
# function.  The call pushes its return address at top-24, over the spent resume address.
#
# CFI: `.cfi_undefined %rip` says this frame has no return address, which DWARF unwinders (libgcc's
# _Unwind_Backtrace used by Rust's Backtrace and panics, gdb, perf --call-graph=dwarf) take as the
# outermost frame, so a walk up a green stack ends here instead of reading the padding as a return
# address.  rbp = 0 ends frame-pointer walks (perf --call-graph=fp) one frame earlier, at entry.
#
# The leading nop: init_stack stores the address just after it (.Lhilos_v0_trampoline_resume) as
# the resume address.  An unwinder looks up "return address - 1" to find the caller's frame (a
# return address may be the first byte after a call that ends a function).  If a sample or a
# debugger stops in hilos_v0_switch after the stack swap on a fresh stack, the "return address" is
# that resume address, and minus one it must still fall in this FDE and this symbol, so the walk
# names the trampoline and stops there.
# ---------------------------------------------------------------------------------------------
        .p2align 4
        .globl  hilos_v0_trampoline
        .hidden hilos_v0_trampoline
        .type   hilos_v0_trampoline, @function
hilos_v0_trampoline:
        .cfi_startproc
        .cfi_undefined %rip             # no caller: this is the outermost frame
        nop                             # never run: makes "resume address - 1" fall in here
.Lhilos_v0_trampoline_resume:
        movq    %rbx, %rdi              # rdi = arg, first integer argument of entry
        callq   *%r12                   # entry(arg); rsp was 16-aligned before this call
        ud2                             # entry returned although it must not: trap at once
        .cfi_endproc
        .size   hilos_v0_trampoline, .-hilos_v0_trampoline

# No executable stack needed (silences GNU ld's warning in the C harness; LLVM emits it too).
        .pushsection .note.GNU-stack, "", @progbits
        .popsection
