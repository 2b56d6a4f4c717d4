//! The standard streams, read and written so that only the calling green thread waits.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use io_uring::{opcode, types};

use super::op::{self, Interest};

/// A handle to the process's standard input (descriptor 0), from [`stdin`].
///
/// Unlike std's, it has no buffer of its own: wrap it in a `BufReader` to read lines. Do not mix
/// it with `std::io::stdin()`, whose buffer may hold input this handle never sees.
///
/// # Examples
/// ```
/// use std::io::{BufRead, BufReader};
/// use std::os::fd::AsRawFd;
///
/// // Counts the lines of standard input; only the calling green thread waits for them.
/// fn count_lines() -> std::io::Result<usize> {
///     let mut n = 0;
///     for line in BufReader::new(hilos::io::stdin()).lines() {
///         line?;
///         n += 1;
///     }
///     Ok(n)
/// }
/// // Not called here: a test's standard input may be a terminal that never ends.
/// assert_eq!(hilos::io::stdin().as_raw_fd(), 0);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Stdin(());

/// A handle to the process's standard output (descriptor 1), from [`stdout`].
///
/// Unbuffered: each `write` is one system call (or io_uring operation). Output written through
/// std's `println!` goes through std's own buffer and may interleave differently.
///
/// # Examples
/// ```
/// use std::io::Write;
///
/// let h = hilos::spawn(|| {
///     let mut out = hilos::io::stdout();
///     writeln!(out, "hello from a green thread")
/// });
/// h.join().unwrap().unwrap();
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Stdout(());

/// A handle to the process's standard error (descriptor 2), from [`stderr`].
///
/// # Examples
/// ```
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
///
/// let mut err = hilos::io::stderr();
/// assert_eq!(err.as_raw_fd(), 2);
/// err.write_all(b"warning: written straight to descriptor 2\n").unwrap();
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Stderr(());

/// Standard input; reads park only the calling green thread.
///
/// # Examples
/// ```
/// use std::io::Read;
/// use std::os::fd::AsRawFd;
///
/// // Reads all of standard input into a string.
/// fn read_all() -> std::io::Result<String> {
///     let mut s = String::new();
///     hilos::io::stdin().read_to_string(&mut s)?;
///     Ok(s)
/// }
/// // Not called here: a test's standard input may be a terminal that never ends.
/// let stdin = hilos::spawn(hilos::io::stdin).join().unwrap();
/// assert_eq!(stdin.as_raw_fd(), 0);
/// ```
pub fn stdin() -> Stdin {
    Stdin(())
}

/// Standard output; writes park only the calling green thread.
///
/// # Examples
/// ```
/// use std::io::Write;
///
/// let h = hilos::spawn(|| hilos::io::stdout().write_all(b"hello\n"));
/// h.join().unwrap().unwrap();
/// ```
pub fn stdout() -> Stdout {
    Stdout(())
}

/// Standard error; writes park only the calling green thread.
///
/// # Examples
/// ```
/// use std::io::Write;
///
/// let h = hilos::spawn(|| write!(hilos::io::stderr(), "progress: {}%\n", 50));
/// h.join().unwrap().unwrap();
/// ```
pub fn stderr() -> Stderr {
    Stderr(())
}

/// Reads from a standard stream, which may be a terminal, a pipe or a file, and which hilos
/// leaves in whatever mode it was given (so uses the "always ready" path; see `op::file_op`).
fn read_std(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    let (p, len) = (buf.as_mut_ptr(), buf.len().min(i32::MAX as usize));
    // SAFETY: `buf` is borrowed for the whole call, which returns only when the kernel (or the
    // pool thread) is done with it.
    let r = unsafe {
        op::file_op(
            fd,
            Interest::Read,
            || {
                opcode::Read::new(types::Fd(fd), p, len as u32)
                    .offset(u64::MAX)
                    .build()
            },
            || op::cvt(libc::read(fd, p.cast(), len)),
        )
    };
    // A closed standard stream reads as empty, as std's.
    match r {
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => Ok(0),
        r => r,
    }
}

fn write_std(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    let (p, len) = (buf.as_ptr(), buf.len().min(i32::MAX as usize));
    // SAFETY: as in read_std.
    let r = unsafe {
        op::file_op(
            fd,
            Interest::Write,
            || {
                opcode::Write::new(types::Fd(fd), p, len as u32)
                    .offset(u64::MAX)
                    .build()
            },
            || op::cvt(libc::write(fd, p.cast(), len)),
        )
    };
    // A closed standard stream swallows output, as std's.
    match r {
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => Ok(buf.len()),
        r => r,
    }
}

impl Read for Stdin {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_std(0, buf)
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        write_std(1, buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        write_std(2, buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

macro_rules! std_fd {
    ($t:ty, $fd:expr) => {
        impl AsFd for $t {
            fn as_fd(&self) -> BorrowedFd<'_> {
                // SAFETY: the standard descriptors are open for the life of the process (or
                // reading/writing them fails harmlessly).
                unsafe { BorrowedFd::borrow_raw($fd) }
            }
        }
        impl AsRawFd for $t {
            fn as_raw_fd(&self) -> RawFd {
                $fd
            }
        }
    };
}
std_fd!(Stdin, 0);
std_fd!(Stdout, 1);
std_fd!(Stderr, 2);
