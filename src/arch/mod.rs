//! TEMPORARY stand-in (replaced by the arch branch).
#![allow(dead_code)]
use std::arch::global_asm;
global_asm!(
    ".text",
    ".globl hilos_tmp_switch",
    "hilos_tmp_switch:",
    "push %rbp",
    "push %rbx",
    "push %r12",
    "push %r13",
    "push %r14",
    "push %r15",
    "mov %rsp, (%rdi)",
    "mov %rsi, %rsp",
    "pop %r15",
    "pop %r14",
    "pop %r13",
    "pop %r12",
    "pop %rbx",
    "pop %rbp",
    "ret",
    ".globl hilos_tmp_tramp",
    "hilos_tmp_tramp:",
    "mov %rbx, %rdi",
    "call *%r12",
    "ud2",
    options(att_syntax)
);
unsafe extern "C" {
    fn hilos_tmp_switch(save: *mut *mut u8, to: *mut u8);
    fn hilos_tmp_tramp();
}
/// # Safety
/// temp
#[inline]
pub(crate) unsafe fn switch(save: *mut *mut u8, to: *mut u8) {
    // SAFETY: temp
    unsafe { hilos_tmp_switch(save, to) }
}
/// # Safety
/// temp
pub(crate) unsafe fn init_stack(
    top: *mut u8,
    entry: unsafe extern "C" fn(arg: *mut u8) -> !,
    arg: *mut u8,
) -> *mut u8 {
    // SAFETY: temp
    unsafe {
        let mut sp = top as *mut usize;
        sp = sp.sub(2);
        *sp = 0;
        sp = sp.sub(1);
        *sp = hilos_tmp_tramp as usize;
        sp = sp.sub(6);
        // r15 r14 r13 r12 rbx rbp
        *sp.add(3) = entry as usize;
        *sp.add(4) = arg as usize;
        *sp.add(5) = 0;
        sp as *mut u8
    }
}
pub(crate) fn bare_switch_roundtrips(_iters: u64) -> std::time::Duration {
    std::time::Duration::ZERO
}
