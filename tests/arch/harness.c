/*
 * C harness for hilos' context switch (src/arch/<arch>.s), built and run by tests/arch/run.sh.
 *
 * It links the very same assembly text the crate assembles with global_asm!, so the aarch64
 * version is checked too, cross-built with aarch64-linux-gnu-gcc and run under qemu-aarch64.
 * Prints one line per check, "ok   <arch>: <what>" or "FAIL <arch>: <what>: <details>", and
 * exits non-zero if any check failed.
 *
 * The register checks go through harness_probe_switch, a small assembly helper below: it loads
 * known values into every callee-saved register and the FP control register(s), calls
 * hilos_v0_switch itself (so no compiled code runs in between), and stores what those registers
 * hold when the switch comes back. Both sides of a switch use it with different values, so each
 * side's registers are clobbered by the other while it is suspended.
 *
 * Every check runs three times, with each switch going through `harness_switch`: once with
 * hilos_v0_switch (resume by jump), once with hilos_v0_switch_ret (resume by return), and once with
 * a switch that alternates between the two, since a context suspended by either entry point may be
 * resumed by the other.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unwind.h>

/* The API under test (src/arch/<arch>.s). */
void hilos_v0_switch(void **save, void *to);
void hilos_v0_switch_ret(void **save, void *to);
void *hilos_v0_init_stack(void *top, void (*entry)(void *), void *arg);
extern const unsigned char hilos_v0_trampoline[];

#if defined(__x86_64__)
#define ARCH "x86_64"
#define NINT 6 /* rbx rbp r12 r13 r14 r15 */
#define NFP 0  /* System V has no callee-saved vector registers */
static const char *const reg_names[] = {"rbx", "rbp", "r12", "r13", "r14", "r15", "mxcsr|fcw"};
/* FP control as one word: MXCSR in bits 0-31, x87 control word in bits 32-47. */
#define FP_DEFAULT ((uint64_t)0x1F80 | (uint64_t)0x037F << 32)
#define FP_MAIN_A ((uint64_t)0x3F80 | (uint64_t)0x0F7F << 32) /* round down / toward zero */
#define FP_CTX_B ((uint64_t)0xDFC0 | (uint64_t)0x0B7F << 32)  /* up + FTZ + DAZ / up */
#define FP_MAIN_C ((uint64_t)0x7F80 | (uint64_t)0x077F << 32) /* toward zero / down */
/* MXCSR bits 0-5 are status flags, caller-saved: compare control bits only. */
#define FP_CONTROL_MASK (~(uint64_t)0x3F)
#elif defined(__aarch64__)
#define ARCH "aarch64"
#define NINT 11 /* x19 .. x29 */
#define NFP 8   /* d8 .. d15 */
static const char *const reg_names[] = {"x19", "x20", "x21", "x22", "x23", "x24", "x25",
                                        "x26", "x27", "x28", "x29", "d8",  "d9",  "d10",
                                        "d11", "d12", "d13", "d14", "d15", "fpcr"};
#define FP_DEFAULT ((uint64_t)0)
#define FP_MAIN_A ((uint64_t)0x00C00000) /* RMode = toward zero */
#define FP_CTX_B ((uint64_t)0x03400000)  /* DN + FZ + RMode = toward +inf */
#define FP_MAIN_C ((uint64_t)0x00800000) /* RMode = toward -inf */
#define FP_CONTROL_MASK (~(uint64_t)0)
#else
#error "tests/arch/harness.c: only x86_64 and aarch64"
#endif

/* Registers in the probe's arrays: integer, then FP, then one FP-control word. */
#define NREGS (NINT + NFP + 1)
#define FPC (NREGS - 1)

/* harness_probe_switch(save, to, in, out): in and out are uint64_t[NREGS]. */
void harness_probe_switch(void **save, void *to, const uint64_t *in, uint64_t *out);
/* uint64_t harness_fp_control(void): the current FP control word, encoded as in the arrays. */
uint64_t harness_fp_control(void);
/* Entry stub: stores sp and the frame pointer as received into arg[0], arg[1], then tail-jumps to
 * aligned_rest(arg) without touching either. */
void harness_aligned_entry(void *arg);

#if defined(__x86_64__)
__asm__(
    "        .text\n"
    "        .globl  harness_probe_switch\n"
    "        .type   harness_probe_switch, @function\n"
    "harness_probe_switch:\n"            /* rdi = save, rsi = to, rdx = in, rcx = out */
    "        pushq   %rbp\n"             /* keep the C caller's callee-saved registers */
    "        pushq   %rbx\n"
    "        pushq   %r12\n"
    "        pushq   %r13\n"
    "        pushq   %r14\n"
    "        pushq   %r15\n"
    "        subq    $24, %rsp\n"        /* [0] caller's MXCSR, [4] its x87 CW, [8] out */
    "        stmxcsr (%rsp)\n"           /* rsp is 16-aligned from here to the call */
    "        fnstcw  4(%rsp)\n"
    "        movq    %rcx, 8(%rsp)\n"    /* out survives the switch on our stack */
    "        ldmxcsr 48(%rdx)\n"         /* in[6] bits 0-31: MXCSR to test */
    "        fldcw   52(%rdx)\n"         /* in[6] bits 32-47: x87 CW to test */
    "        movq    0(%rdx), %rbx\n"
    "        movq    8(%rdx), %rbp\n"
    "        movq    16(%rdx), %r12\n"
    "        movq    24(%rdx), %r13\n"
    "        movq    32(%rdx), %r14\n"
    "        movq    40(%rdx), %r15\n"
    "        call    *harness_switch(%rip)\n" /* rdi, rsi still hold save, to */
    "        movq    8(%rsp), %rax\n"    /* rax = out */
    "        movq    %rbx, 0(%rax)\n"
    "        movq    %rbp, 8(%rax)\n"
    "        movq    %r12, 16(%rax)\n"
    "        movq    %r13, 24(%rax)\n"
    "        movq    %r14, 32(%rax)\n"
    "        movq    %r15, 40(%rax)\n"
    "        movq    $0, 48(%rax)\n"
    "        stmxcsr 48(%rax)\n"
    "        fnstcw  52(%rax)\n"
    "        ldmxcsr (%rsp)\n"           /* give the C caller its FP control back */
    "        fldcw   4(%rsp)\n"
    "        addq    $24, %rsp\n"
    "        popq    %r15\n"
    "        popq    %r14\n"
    "        popq    %r13\n"
    "        popq    %r12\n"
    "        popq    %rbx\n"
    "        popq    %rbp\n"
    "        ret\n"
    "        .size   harness_probe_switch, .-harness_probe_switch\n"
    "\n"
    "        .globl  harness_fp_control\n"
    "        .type   harness_fp_control, @function\n"
    "harness_fp_control:\n"
    "        movq    $0, -8(%rsp)\n"     /* red zone */
    "        stmxcsr -8(%rsp)\n"
    "        fnstcw  -4(%rsp)\n"
    "        movq    -8(%rsp), %rax\n"
    "        ret\n"
    "        .size   harness_fp_control, .-harness_fp_control\n"
    "\n"
    "        .globl  harness_aligned_entry\n"
    "        .type   harness_aligned_entry, @function\n"
    "harness_aligned_entry:\n"           /* rdi = arg */
    "        movq    %rsp, 0(%rdi)\n"    /* rsp exactly as entry receives it */
    "        movq    %rbp, 8(%rdi)\n"    /* rbp as entry receives it */
    "        jmp     aligned_rest\n"
    "        .size   harness_aligned_entry, .-harness_aligned_entry\n");
#elif defined(__aarch64__)
__asm__(
    "        .text\n"
    "        .globl  harness_probe_switch\n"
    "        .type   harness_probe_switch, %function\n"
    "harness_probe_switch:\n"              /* x0 = save, x1 = to, x2 = in, x3 = out */
    "        stp     x29, x30, [sp, #-176]!\n" /* keep the C caller's callee-saved state */
    "        stp     x19, x20, [sp, #16]\n"
    "        stp     x21, x22, [sp, #32]\n"
    "        stp     x23, x24, [sp, #48]\n"
    "        stp     x25, x26, [sp, #64]\n"
    "        stp     x27, x28, [sp, #80]\n"
    "        stp     d8, d9, [sp, #96]\n"
    "        stp     d10, d11, [sp, #112]\n"
    "        stp     d12, d13, [sp, #128]\n"
    "        stp     d14, d15, [sp, #144]\n"
    "        mrs     x9, fpcr\n"
    "        stp     x9, x3, [sp, #160]\n"     /* caller's FPCR, and out across the switch */
    "        ldp     x19, x20, [x2, #0]\n"
    "        ldp     x21, x22, [x2, #16]\n"
    "        ldp     x23, x24, [x2, #32]\n"
    "        ldp     x25, x26, [x2, #48]\n"
    "        ldp     x27, x28, [x2, #64]\n"
    "        ldr     x29, [x2, #80]\n"
    "        ldp     d8, d9, [x2, #88]\n"
    "        ldp     d10, d11, [x2, #104]\n"
    "        ldp     d12, d13, [x2, #120]\n"
    "        ldp     d14, d15, [x2, #136]\n"
    "        ldr     x9, [x2, #152]\n"
    "        msr     fpcr, x9\n"
    "        adrp    x10, harness_switch\n"   /* x10 = &harness_switch (x10: scratch) */
    "        ldr     x10, [x10, :lo12:harness_switch]\n"
    "        blr     x10\n"                   /* x0, x1 still hold save, to */
    "        ldr     x3, [sp, #168]\n"         /* x3 = out */
    "        stp     x19, x20, [x3, #0]\n"
    "        stp     x21, x22, [x3, #16]\n"
    "        stp     x23, x24, [x3, #32]\n"
    "        stp     x25, x26, [x3, #48]\n"
    "        stp     x27, x28, [x3, #64]\n"
    "        str     x29, [x3, #80]\n"
    "        stp     d8, d9, [x3, #88]\n"
    "        stp     d10, d11, [x3, #104]\n"
    "        stp     d12, d13, [x3, #120]\n"
    "        stp     d14, d15, [x3, #136]\n"
    "        mrs     x9, fpcr\n"
    "        str     x9, [x3, #152]\n"
    "        ldr     x9, [sp, #160]\n"         /* give the C caller its FPCR back */
    "        msr     fpcr, x9\n"
    "        ldp     x19, x20, [sp, #16]\n"
    "        ldp     x21, x22, [sp, #32]\n"
    "        ldp     x23, x24, [sp, #48]\n"
    "        ldp     x25, x26, [sp, #64]\n"
    "        ldp     x27, x28, [sp, #80]\n"
    "        ldp     d8, d9, [sp, #96]\n"
    "        ldp     d10, d11, [sp, #112]\n"
    "        ldp     d12, d13, [sp, #128]\n"
    "        ldp     d14, d15, [sp, #144]\n"
    "        ldp     x29, x30, [sp], #176\n"
    "        ret\n"
    "        .size   harness_probe_switch, .-harness_probe_switch\n"
    "\n"
    "        .globl  harness_fp_control\n"
    "        .type   harness_fp_control, %function\n"
    "harness_fp_control:\n"
    "        mrs     x0, fpcr\n"
    "        ret\n"
    "        .size   harness_fp_control, .-harness_fp_control\n"
    "\n"
    "        .globl  harness_aligned_entry\n"
    "        .type   harness_aligned_entry, %function\n"
    "harness_aligned_entry:\n"             /* x0 = arg */
    "        mov     x9, sp\n"
    "        str     x9, [x0]\n"           /* sp exactly as entry receives it */
    "        str     x29, [x0, #8]\n"      /* x29 as entry receives it */
    "        b       aligned_rest\n"
    "        .size   harness_aligned_entry, .-harness_aligned_entry\n");
#endif

/* ---- reporting ----------------------------------------------------------------------------- */

static int failures;
/* Which switch the checks use, and its name in the report (see the header comment). */
void (*harness_switch)(void **save, void *to) = hilos_v0_switch;
static const char *variant = "switch";

static void report(int ok, const char *what, const char *detail)
{
    if (ok) {
        printf("ok   " ARCH " [%s]: %s\n", variant, what);
    } else {
        printf("FAIL " ARCH " [%s]: %s: %s\n", variant, what, detail);
        failures++;
    }
    fflush(stdout);
}

/* ---- stacks -------------------------------------------------------------------------------- */

#define STACK_SIZE (256 * 1024)

/* A fresh stack; returns its top (16-aligned). `extra` shifts the top by multiples of 16 so that
 * checks do not pass by one lucky address. Leaked: contexts are never finished. */
static void *new_stack_top(size_t extra)
{
    size_t size = STACK_SIZE + 16 * extra;
    unsigned char *base = aligned_alloc(64, size);
    if (!base) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    memset(base, 0xCC, size); /* garbage, so nothing passes because memory happened to be 0 */
    return base + size;
}

/* ---- first entry --------------------------------------------------------------------------- */

struct first {
    void *main, *ctx;
    void *arg_seen;
    int runs;
};

static _Noreturn void first_entry(void *arg)
{
    struct first *t = arg;
    for (;;) {
        t->arg_seen = arg;
        t->runs++;
        harness_switch(&t->ctx, t->main);
    }
}

static void check_first_entry(void)
{
    static struct first t;
    memset(&t, 0, sizeof t); /* each pass (see main) starts afresh */
    char detail[160];
    t.ctx = hilos_v0_init_stack(new_stack_top(0), first_entry, &t);
    int before = t.runs;
    harness_switch(&t.main, t.ctx);
    int after_one = t.runs;
    harness_switch(&t.main, t.ctx);
    snprintf(detail, sizeof detail, "runs %d -> %d -> %d (want 0, 1, 2), arg %p (want %p)", before,
             after_one, t.runs, t.arg_seen, (void *)&t);
    report(before == 0 && after_one == 1 && t.runs == 2 && t.arg_seen == &t,
           "first switch calls entry(arg), the next one resumes it", detail);
}

/* ---- alignment and frame chain at entry ---------------------------------------------------- */

struct aligned {
    uintptr_t entry_sp, entry_fp; /* offsets 0 and 8: written by harness_aligned_entry */
    void *main, *ctx;
};

_Noreturn void aligned_rest(void *arg);
_Noreturn void aligned_rest(void *arg)
{
    struct aligned *t = arg;
    for (;;)
        harness_switch(&t->ctx, t->main);
}

static void check_alignment(void)
{
    char detail[200] = "";
    int align_ok = 1, chain_ok = 1;
    for (size_t extra = 0; extra < 4; extra++) {
        static struct aligned t;
        memset(&t, 0, sizeof t);
        uintptr_t top = (uintptr_t)new_stack_top(extra);
        t.ctx = hilos_v0_init_stack((void *)top, harness_aligned_entry, &t);
        harness_switch(&t.main, t.ctx);
#if defined(__x86_64__)
        if (t.entry_sp % 16 != 8 && align_ok) {
            align_ok = 0;
            snprintf(detail, sizeof detail, "rsp at entry %#" PRIxPTR " (top %#" PRIxPTR
                     "): want rsp %% 16 == 8", t.entry_sp, top);
        }
        if (t.entry_fp != 0)
            chain_ok = 0;
#else
        if (t.entry_sp % 16 != 0 && align_ok) {
            align_ok = 0;
            snprintf(detail, sizeof detail, "sp at entry %#" PRIxPTR " (top %#" PRIxPTR
                     "): want sp %% 16 == 0", t.entry_sp, top);
        }
        if (t.entry_fp != top - 16 || ((uint64_t *)t.entry_fp)[0] != 0 ||
            ((uint64_t *)t.entry_fp)[1] != 0)
            chain_ok = 0;
#endif
    }
#if defined(__x86_64__)
    report(align_ok, "entry starts with rsp % 16 == 8 (16-aligned before the call)", detail);
    report(chain_ok, "entry starts with rbp == 0 (outermost frame)", "rbp != 0 at entry");
#else
    report(align_ok, "entry starts with sp % 16 == 0", detail);
    report(chain_ok, "entry starts with x29 -> zeroed frame record at top - 16",
           "x29 does not point at a zeroed record at top - 16");
#endif
}

/* ---- callee-saved registers and FP control ------------------------------------------------ */

struct regs {
    void *main, *ctx;
    uint64_t ctx_fp_at_start;
    uint64_t ctx_in[NREGS], ctx_out[NREGS];
    uint64_t ctx_in2[NREGS];
};

static void fill(uint64_t *regs, uint64_t side, uint64_t fp_control)
{
    for (int i = 0; i < NREGS - 1; i++)
        regs[i] = 0xA5A5000000000000u | side << 40 | (uint64_t)(i + 1) * 0x01010101u;
    regs[FPC] = fp_control;
}

static _Noreturn void regs_entry(void *arg)
{
    struct regs *t = arg;
    t->ctx_fp_at_start = harness_fp_control();
    /* Load pattern 2 (and FPCR/MXCSR B), switch back to main, which loads pattern 3 ... */
    harness_probe_switch(&t->ctx, t->main, t->ctx_in, t->ctx_out);
    /* ... and once more with pattern 4, so main's second round trip is clobbered too. */
    uint64_t scratch[NREGS];
    for (;;)
        harness_probe_switch(&t->ctx, t->main, t->ctx_in2, scratch);
}

/* Compares the registers in `got` against `want` over [from, to); names the mismatches. */
static int compare_regs(const uint64_t *want, const uint64_t *got, int from, int to, char *detail,
                        size_t len)
{
    int ok = 1;
    size_t used = 0;
    detail[0] = 0;
    for (int i = from; i < to; i++) {
        uint64_t mask = i == FPC ? FP_CONTROL_MASK : ~(uint64_t)0;
        if ((want[i] & mask) != (got[i] & mask)) {
            ok = 0;
            if (used < len)
                used += (size_t)snprintf(detail + used, len - used,
                                         "%s %#" PRIx64 " (want %#" PRIx64 ") ", reg_names[i],
                                         got[i], want[i]);
        }
    }
    return ok;
}

static void check_registers(void)
{
    static struct regs t;
    memset(&t, 0, sizeof t); /* each pass (see main) starts afresh */
    uint64_t main_a[NREGS], main_out_a[NREGS], main_c[NREGS], main_out_c[NREGS];
    char detail[1024];
    fill(main_a, 1, FP_MAIN_A);
    fill(t.ctx_in, 2, FP_CTX_B);
    fill(main_c, 3, FP_MAIN_C);
    fill(t.ctx_in2, 4, FP_DEFAULT);
    uint64_t main_fp_before = harness_fp_control();

    t.ctx = hilos_v0_init_stack(new_stack_top(0), regs_entry, &t);
    harness_probe_switch(&t.main, t.ctx, main_a, main_out_a); /* main A -> ctx B -> main */
    harness_probe_switch(&t.main, t.ctx, main_c, main_out_c); /* main C -> ctx (checks B) -> main */

    snprintf(detail, sizeof detail, "fresh context saw %#" PRIx64 ", want %#" PRIx64
             " (its creator had %#" PRIx64 ")", t.ctx_fp_at_start, FP_DEFAULT, FP_MAIN_A);
#if defined(__x86_64__)
    report((t.ctx_fp_at_start & FP_CONTROL_MASK) == FP_DEFAULT,
           "fresh context starts with MXCSR 0x1F80 and x87 CW 0x037F, not its creator's", detail);
#else
    report(t.ctx_fp_at_start == FP_DEFAULT, "fresh context starts with FPCR 0, not its creator's",
           detail);
#endif

    int ok = compare_regs(main_a, main_out_a, 0, NINT, detail, sizeof detail);
    ok &= compare_regs(main_c, main_out_c, 0, NINT, detail + strlen(detail),
                       sizeof detail - strlen(detail));
#if defined(__x86_64__)
    report(ok, "callee-saved rbx rbp r12 r13 r14 r15 survive a context that clobbers them", detail);
#else
    report(ok, "callee-saved x19-x29 survive a context that clobbers them", detail);
#endif
#if NFP > 0
    ok = compare_regs(main_a, main_out_a, NINT, NINT + NFP, detail, sizeof detail);
    ok &= compare_regs(main_c, main_out_c, NINT, NINT + NFP, detail + strlen(detail),
                       sizeof detail - strlen(detail));
    report(ok, "callee-saved d8-d15 survive a context that clobbers them", detail);
#endif
    ok = compare_regs(main_a, main_out_a, FPC, NREGS, detail, sizeof detail);
    ok &= compare_regs(main_c, main_out_c, FPC, NREGS, detail + strlen(detail),
                       sizeof detail - strlen(detail));
#if defined(__x86_64__)
    report(ok, "MXCSR control bits and x87 CW survive a context that changes them", detail);
#else
    report(ok, "FPCR survives a context that changes it", detail);
#endif
    ok = compare_regs(t.ctx_in, t.ctx_out, 0, NREGS, detail, sizeof detail);
    report(ok, "the green context's callee-saved registers and FP control survive too", detail);

    uint64_t main_fp_after = harness_fp_control();
    snprintf(detail, sizeof detail, "%#" PRIx64 " before, %#" PRIx64 " after", main_fp_before,
             main_fp_after);
    report((main_fp_before & FP_CONTROL_MASK) == (main_fp_after & FP_CONTROL_MASK),
           "probe helper leaves the harness's own FP control as it found it", detail);
}

/* ---- many switches: main -> A -> B -> main ------------------------------------------------ */

struct ring {
    void *main, *a, *b;
    uint64_t count_a, count_b;
};

static _Noreturn void ring_a(void *arg)
{
    struct ring *t = arg;
    for (;;) {
        t->count_a++;
        harness_switch(&t->a, t->b); /* green to green */
    }
}

static _Noreturn void ring_b(void *arg)
{
    struct ring *t = arg;
    for (;;) {
        t->count_b++;
        harness_switch(&t->b, t->main);
    }
}

static void check_many_switches(void)
{
    static struct ring t;
    memset(&t, 0, sizeof t); /* each pass (see main) starts afresh */
    enum { ROUNDS = 1000000 };
    char detail[160] = "";
    int ok = 1;
    t.a = hilos_v0_init_stack(new_stack_top(0), ring_a, &t);
    t.b = hilos_v0_init_stack(new_stack_top(1), ring_b, &t);
    for (uint64_t round = 1; round <= ROUNDS; round++) {
        harness_switch(&t.main, t.a);
        /* The compiler must re-read the counters: the switch is an opaque call and `t` escaped. */
        if (t.count_a != round || t.count_b != round) {
            snprintf(detail, sizeof detail, "after round %" PRIu64 ": A counted %" PRIu64
                     ", B counted %" PRIu64, round, t.count_a, t.count_b);
            ok = 0;
            break;
        }
    }
    report(ok, "1000000 rounds main -> A -> B -> main (3,000,000 switches) keep counting", detail);
}

/* ---- unwinding ----------------------------------------------------------------------------- */

struct unwind {
    void *main, *ctx;
    uintptr_t ips[64];
    int n;
    _Unwind_Reason_Code rc;
};

static _Unwind_Reason_Code collect(struct _Unwind_Context *ctx, void *arg)
{
    struct unwind *t = arg;
    if (t->n == 64)
        return _URC_NORMAL_STOP; /* runaway walk: _Unwind_Backtrace returns an error */
    t->ips[t->n++] = (uintptr_t)_Unwind_GetIP(ctx);
    return _URC_NO_REASON;
}

static __attribute__((noinline)) _Noreturn void unwind_entry(void *arg)
{
    struct unwind *t = arg;
    t->rc = _Unwind_Backtrace(collect, t);
    for (;;)
        harness_switch(&t->ctx, t->main);
}

static void check_unwind(void)
{
    static struct unwind t;
    memset(&t, 0, sizeof t); /* each pass (see main) starts afresh */
    char detail[200];
    uintptr_t *top = new_stack_top(0);
    t.ctx = hilos_v0_init_stack(top, unwind_entry, &t);
    /* The 16 bytes above the trampoline's stack pointer are zeroed by init_stack and read by
     * nobody. A zero there would also end a walk that reads it as a return address; a code address
     * does not, so only the trampoline's CFI (return address undefined) can stop the walk. */
    top[-1] = top[-2] = (uintptr_t)unwind_entry + 4;
    harness_switch(&t.main, t.ctx);
    uintptr_t tramp = (uintptr_t)hilos_v0_trampoline, entry = (uintptr_t)unwind_entry;
    /* libgcc hands the callback one last frame with ip 0 once the return address is undefined
     * (it does the same at _start): that is its way of saying "end of stack". */
    int n = t.n;
    if (n > 0 && t.ips[n - 1] == 0)
        n--;
    uintptr_t last = n ? t.ips[n - 1] : 0;
    int saw_entry = 0;
    for (int i = 0; i < n; i++)
        saw_entry |= t.ips[i] > entry && t.ips[i] < entry + 256;
    snprintf(detail, sizeof detail, "rc %d (want %d), %d frames, last ip %#" PRIxPTR
             " (trampoline %#" PRIxPTR "), entry frame %s", (int)t.rc, (int)_URC_END_OF_STACK, t.n,
             last, tramp, saw_entry ? "seen" : "missing");
    report(t.rc == _URC_END_OF_STACK && saw_entry && last > tramp && last < tramp + 32 && t.n < 16,
           "_Unwind_Backtrace on a green stack ends cleanly at the trampoline", detail);
}

/* Alternates between the two entry points on every call. */
static void alternating_switch(void **save, void *to)
{
    static int flip;
    flip ^= 1;
    if (flip)
        hilos_v0_switch_ret(save, to);
    else
        hilos_v0_switch(save, to);
}

int main(void)
{
    static const struct {
        void (*fn)(void **, void *);
        const char *name;
    } variants[] = {
        {hilos_v0_switch, "switch"},
        {hilos_v0_switch_ret, "switch_ret"},
        {alternating_switch, "alternating"},
    };
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        harness_switch = variants[i].fn;
        variant = variants[i].name;
        check_first_entry();
        check_alignment();
        check_registers();
        check_many_switches();
        check_unwind();
    }
    return failures ? 1 : 0;
}
