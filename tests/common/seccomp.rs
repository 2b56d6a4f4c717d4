//! Installing a seccomp filter in a test's child process, shared by `tests/io_fallback.rs` and the
//! stack layer's unit tests (which include this file by path).
#![allow(dead_code)]

#[cfg(target_arch = "x86_64")]
pub const AUDIT_ARCH: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
pub const AUDIT_ARCH: u32 = 0xC000_00B7; // AUDIT_ARCH_AARCH64

pub const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
pub const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
pub const JGT_K: u16 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
pub const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
pub const RET_K: u16 = 0x06; // BPF_RET | BPF_K
pub const RET_ALLOW: u32 = 0x7fff_0000; // SECCOMP_RET_ALLOW
/// `SECCOMP_RET_ERRNO`: or the errno in; with 0 the call returns 0 without running.
pub const RET_ERRNO: u32 = 0x0005_0000;

/// One BPF instruction.
pub fn ins(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// Installs `prog` for this thread and the threads it starts from now on (filters are inherited
/// across `clone`), after `PR_SET_NO_NEW_PRIVS`, which an unprivileged filter needs.
pub fn install(prog: &[libc::sock_filter]) {
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: plain prctl calls; `fprog` points at `prog`, alive for the call (the kernel copies
    // the program).
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER as libc::c_ulong,
                &fprog as *const libc::sock_fprog as libc::c_ulong,
                0,
                0,
            ),
            0,
            "seccomp filter: {}",
            std::io::Error::last_os_error()
        );
    }
}
