//! TEMPORARY stand-in (replaced by the stack branch).
#![allow(dead_code)]
use std::io;
pub(crate) const DEFAULT_STACK_SIZE: usize = 256 * 1024;
pub(crate) struct Stack {
    base: usize,
    len: usize,
}
// SAFETY: temp
unsafe impl Send for Stack {}
impl Stack {
    pub(crate) fn top(&self) -> *mut u8 {
        (self.base + self.len) as *mut u8
    }
    pub(crate) fn limit(&self) -> *mut u8 {
        (self.base + 4096) as *mut u8
    }
    pub(crate) fn guard(&self) -> std::ops::Range<usize> {
        self.base..self.base + 4096
    }
    pub(crate) fn usable_size(&self) -> usize {
        self.len - 4096
    }
}
pub(crate) fn alloc(size: usize) -> io::Result<Stack> {
    if size > 1 << 30 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "stack size too large",
        ));
    }
    let len = (size.max(16384) + 4095) / 4096 * 4096 + 4096;
    // SAFETY: temp
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: temp
    unsafe { libc::mprotect(p, 4096, libc::PROT_NONE) };
    Ok(Stack {
        base: p as usize,
        len,
    })
}
pub(crate) fn free(stack: Stack) {
    // SAFETY: temp
    unsafe { libc::munmap(stack.base as *mut _, stack.len) };
}
pub(crate) fn guard_mechanism() -> &'static str {
    "mprotect"
}
pub(crate) mod overflow {
    pub(crate) fn install(_lookup: fn(usize, &mut [u8]) -> Option<usize>) {}
    pub(crate) struct AltStack;
    pub(crate) fn ensure_altstack() -> std::io::Result<AltStack> {
        Ok(AltStack)
    }
}
