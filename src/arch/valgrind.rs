//! Telling Valgrind where green stacks are, so that memcheck follows a context switch.
//!
//! # The problem
//! Valgrind tracks each thread's stack by its stack pointer: when the stack pointer moves by less
//! than `--max-stackframe` (2 MB), it takes the move for a frame pushed or popped and marks the
//! memory between as undefined (pushed) or inaccessible (popped). A switch between a worker's
//! stack and a green stack a few hundred KiB away is such a move, so memcheck reported
//! hundreds of false "invalid read" and "uninitialised value" errors in any hilos program, and
//! the real errors it is run to find drowned in them. With the stacks registered
//! (`VALGRIND_STACK_REGISTER`), a move from one registered stack into another is a switch.
//!
//! # The design
//! Valgrind's client requests: a magic instruction sequence that does nothing on a real CPU (the
//! rotations add up to whole turns, and the last instruction exchanges or ORs a register with
//! itself) and that Valgrind's translator recognises; the request's arguments are in a six-word
//! block whose address is in a fixed register, and the answer comes back in another (the default
//! value passed in stays there when not under Valgrind). Whether the process runs under Valgrind
//! is asked once; a stack registers when it is handed out and deregisters when it is given back,
//! so outside Valgrind a stack pays one load and a branch each way.

use std::sync::atomic::{AtomicU8, Ordering};

/// `VG_USERREQ__RUNNING_ON_VALGRIND`: answers how many Valgrinds deep this runs (0 natively).
const RUNNING_ON_VALGRIND: usize = 0x1001;
/// `VG_USERREQ__STACK_REGISTER(start, end)`: answers the new stack's id.
const STACK_REGISTER: usize = 0x1501;
/// `VG_USERREQ__STACK_DEREGISTER(id)`.
const STACK_DEREGISTER: usize = 0x1502;

/// 0 not asked yet, 1 natively, 2 under Valgrind.
static UNDER: AtomicU8 = AtomicU8::new(0);

/// Sends a client request: `args[0]` the request code, then up to five arguments. Returns
/// Valgrind's answer, or `default` when not running under Valgrind.
#[cfg(target_arch = "x86_64")]
fn request(default: usize, args: &[usize; 6]) -> usize {
    let mut answer = default;
    // SAFETY: on a CPU the sequence changes nothing but rdi (whole turns: 3 + 13 + 61 + 51 = 128
    // bits) and the flags; under Valgrind it reads the six words at `args` and writes rdx only.
    unsafe {
        std::arch::asm!(
            // The preamble Valgrind looks for: four rotations of rdi by 3, 13, 61 and 51 bits.
            "rol rdi, 3",
            "rol rdi, 13",
            "rol rdi, 61",
            "rol rdi, 51",
            // "Client request": rax points at the arguments, rdx carries default and answer.
            "xchg rbx, rbx",
            inout("rdx") answer,
            in("rax") args.as_ptr(),
            inout("rdi") 0usize => _,
            options(nostack),
        );
    }
    answer
}

/// As the x86_64 one, with aarch64's sequence.
#[cfg(target_arch = "aarch64")]
fn request(default: usize, args: &[usize; 6]) -> usize {
    let mut answer = default;
    // SAFETY: on a CPU the sequence changes nothing but x12 (whole turns: 3 + 13 + 51 + 61 = 128
    // bits); under Valgrind it reads the six words at `args` and writes x3 only.
    unsafe {
        std::arch::asm!(
            // The preamble Valgrind looks for: four rotations of x12 by 3, 13, 51 and 61 bits.
            "ror x12, x12, #3",
            "ror x12, x12, #13",
            "ror x12, x12, #51",
            "ror x12, x12, #61",
            // "Client request": x4 points at the arguments, x3 carries default and answer.
            "orr x10, x10, x10",
            inout("x3") answer,
            in("x4") args.as_ptr(),
            inout("x12") 0usize => _,
            options(nostack),
        );
    }
    answer
}

/// No client requests elsewhere: never under Valgrind.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn request(default: usize, _args: &[usize; 6]) -> usize {
    default
}

/// Whether the process runs under Valgrind (asked once).
#[inline]
pub(crate) fn under_valgrind() -> bool {
    match UNDER.load(Ordering::Relaxed) {
        0 => {
            let on = request(0, &[RUNNING_ON_VALGRIND, 0, 0, 0, 0, 0]) != 0;
            UNDER.store(if on { 2 } else { 1 }, Ordering::Relaxed);
            on
        }
        v => v == 2,
    }
}

/// Registers `[lo, hi)` as a stack with Valgrind; returns its id plus one (0: not registered,
/// not under Valgrind).
#[inline]
pub(crate) fn register(lo: usize, hi: usize) -> usize {
    if !under_valgrind() {
        return 0;
    }
    // Valgrind's `end` is the highest byte of the stack, inclusive.
    request(0, &[STACK_REGISTER, lo, hi - 1, 0, 0, 0]) + 1
}

/// Deregisters what [`register`] returned.
#[inline]
pub(crate) fn deregister(id_plus_one: usize) {
    if id_plus_one != 0 {
        request(0, &[STACK_DEREGISTER, id_plus_one - 1, 0, 0, 0, 0]);
    }
}

#[cfg(test)]
mod tests {
    /// Natively the sequence answers the default and registers nothing.
    #[test]
    fn outside_valgrind_requests_answer_their_default() {
        if std::env::var_os("LD_PRELOAD").is_some_and(|p| p.to_string_lossy().contains("vgpreload"))
        {
            return; // run under Valgrind: the answers are real
        }
        assert_eq!(
            super::request(7, &[super::RUNNING_ON_VALGRIND, 0, 0, 0, 0, 0]),
            7
        );
        assert_eq!(super::register(4096, 8192), 0);
        super::deregister(0);
    }
}
