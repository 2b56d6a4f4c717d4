//! The standard streams, read and written so that only the calling green thread waits.
//!
//! As std's: standard input has one process-wide buffer behind a lock ([`StdinLock`]), so lines
//! read through any handle, on any thread, come out whole and in order; standard output and error
//! are unbuffered (each `write` is one system call or io_uring operation) behind reentrant locks
//! ([`StdoutLock`], [`StderrLock`]) that are per *green* thread (see `stream_lock`).

use std::io::{self, BufRead, Read, Write};
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use io_uring::{opcode, types};

use super::op::{self, Interest};
use super::stream_lock::StreamLock;
use crate::sync::{Mutex, MutexGuard};

/// A handle to the process's standard input (descriptor 0), from [`stdin`].
///
/// As std's, every handle shares one process-wide buffer: lines read through [`Stdin::lines`],
/// [`Stdin::read_line`] or a [`StdinLock`] lose nothing to another handle. Do not mix it with
/// `std::io::stdin()`, whose own buffer may hold input this handle never sees.
///
/// # Examples
/// ```
/// use std::os::fd::AsRawFd;
///
/// // Counts the lines of standard input; only the calling green thread waits for them.
/// fn count_lines() -> std::io::Result<usize> {
///     let mut n = 0;
///     for line in hilos::io::stdin().lines() {
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
/// Unbuffered: each `write` is one system call (or io_uring operation), made under the stream's
/// lock, so one `write` never interleaves with another's; hold [`Stdout::lock`] to keep several
/// writes together. Output written through std's `println!` goes through std's own buffer and may
/// interleave differently.
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
            crate::task::IoOp::Read,
            || {
                opcode::Read::new(types::Fd(fd), p, len as u32)
                    .offset(u64::MAX)
                    .build()
            },
            || op::cvt(crate::real::read(fd, p.cast(), len)),
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
            crate::task::IoOp::Write,
            || {
                opcode::Write::new(types::Fd(fd), p, len as u32)
                    .offset(u64::MAX)
                    .build()
            },
            || op::cvt(crate::real::write(fd, p.cast(), len)),
        )
    };
    // A closed standard stream swallows output, as std's.
    match r {
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => Ok(buf.len()),
        r => r,
    }
}

/// Standard input's buffer: filled from descriptor 0, shared by every [`Stdin`] handle.
struct StdinBuf {
    buf: Vec<u8>,
    pos: usize,
    filled: usize,
}

/// The size of standard input's buffer (allocated on first use), as std's.
const STDIN_BUF: usize = 8 * 1024;

/// Standard input's one buffer, made at first use.
fn stdin_buf() -> &'static Mutex<StdinBuf> {
    static STDIN: std::sync::OnceLock<Mutex<StdinBuf>> = std::sync::OnceLock::new();
    STDIN.get_or_init(|| {
        Mutex::new(StdinBuf {
            buf: Vec::new(),
            pos: 0,
            filled: 0,
        })
    })
}

impl Read for StdinBuf {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        // A read at least as large as the buffer skips it when it is empty, as std's BufReader.
        if self.pos == self.filled && out.len() >= STDIN_BUF {
            return read_std(0, out);
        }
        let n = {
            let avail = self.fill_buf()?;
            let n = avail.len().min(out.len());
            out[..n].copy_from_slice(&avail[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for StdinBuf {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.filled {
            if self.buf.is_empty() {
                self.buf = vec![0; STDIN_BUF];
            }
            self.filled = read_std(0, &mut self.buf)?;
            self.pos = 0;
        }
        Ok(&self.buf[self.pos..self.filled])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.filled);
    }
}

/// Standard input, locked: the buffered reader every [`Stdin`] handle shares, as
/// [`std::io::StdinLock`]. From [`Stdin::lock`]; other threads' reads of standard input wait
/// (only their green thread, on a green thread) until it is dropped.
///
/// # Examples
/// ```
/// use std::io::BufRead;
///
/// // Reads a header block: lines up to the first empty one, with no other thread's read between.
/// fn header() -> std::io::Result<Vec<String>> {
///     let mut lines = Vec::new();
///     for line in hilos::io::stdin().lock().lines() {
///         let line = line?;
///         if line.is_empty() {
///             break;
///         }
///         lines.push(line);
///     }
///     Ok(lines)
/// }
/// // Not called here: a test's standard input may be a terminal that never ends.
/// # let _ = header;
/// ```
pub struct StdinLock<'a> {
    inner: MutexGuard<'a, StdinBuf>,
}

impl Stdin {
    /// Locks standard input for the caller, as [`std::io::Stdin::lock`]: the returned guard
    /// reads through the shared buffer and implements [`BufRead`]. Locking it again on the same
    /// thread while the guard lives deadlocks, as std's.
    pub fn lock(&self) -> StdinLock<'static> {
        StdinLock {
            // A panic while reading leaves the buffer consistent: ignore the poison, as std.
            inner: stdin_buf().lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Reads one line, up to and including its `\n`, and appends it to `buf`, as
    /// [`std::io::Stdin::read_line`]; returns the number of bytes read (0 at the end of input).
    pub fn read_line(&self, buf: &mut String) -> io::Result<usize> {
        self.lock().read_line(buf)
    }

    /// The lines of standard input, without their line ends, as [`std::io::Stdin::lines`]
    /// (holds the lock until dropped).
    pub fn lines(self) -> io::Lines<StdinLock<'static>> {
        self.lock().lines()
    }

    /// Whether standard input is a terminal, as [`std::io::IsTerminal`] (which hilos's types
    /// cannot implement: std seals it).
    pub fn is_terminal(&self) -> bool {
        is_tty(0)
    }
}

impl StdinLock<'_> {
    /// Whether standard input is a terminal, as [`std::io::IsTerminal`] on std's lock.
    pub fn is_terminal(&self) -> bool {
        is_tty(0)
    }
}

fn is_tty(fd: RawFd) -> bool {
    // SAFETY: isatty only reads the descriptor's state; any descriptor number is allowed.
    unsafe { libc::isatty(fd) == 1 }
}

impl Read for StdinLock<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl BufRead for StdinLock<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, n: usize) {
        self.inner.consume(n)
    }
}

impl std::fmt::Debug for StdinLock<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdinLock").finish_non_exhaustive()
    }
}

impl Read for Stdin {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.lock().read(buf)
    }
}

impl Read for &Stdin {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.lock().read(buf)
    }
}

/// The lock of standard output, made at first use.
fn stdout_lock() -> &'static StreamLock {
    static LOCK: std::sync::OnceLock<StreamLock> = std::sync::OnceLock::new();
    LOCK.get_or_init(StreamLock::new)
}

/// The lock of standard error, made at first use.
fn stderr_lock() -> &'static StreamLock {
    static LOCK: std::sync::OnceLock<StreamLock> = std::sync::OnceLock::new();
    LOCK.get_or_init(StreamLock::new)
}

/// `Write` for a standard stream's handle (and a reference to it): each call under the lock.
macro_rules! handle_write {
    ($t:ty) => {
        impl Write for $t {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.lock().write(buf)
            }
            fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
                self.lock().write_all(buf)
            }
            fn write_fmt(&mut self, args: std::fmt::Arguments<'_>) -> io::Result<()> {
                self.lock().write_fmt(args)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
    };
}

macro_rules! locked_stream {
    ($(#[$doc:meta])* $handle:ident, $lock:ident, $fd:expr, $static:ident, $static_std:ident,
     $name:literal) => {
        $(#[$doc])*
        pub struct $lock<'a> {
            /// Not `Send`: the lock is owned by the thread that took it.
            _owner: PhantomData<(&'a (), *const ())>,
        }

        impl $handle {
            #[doc = concat!("Locks standard ", $name, " for the calling thread, as std's: ")]
            /// writes of other threads wait (only their green thread, on a green thread) until
            /// the guard is dropped. Reentrant: the same green thread may lock it again, or write
            /// through another handle, while it holds the guard.
            pub fn lock(&self) -> $lock<'static> {
                $static().lock();
                $lock {
                    _owner: PhantomData,
                }
            }

            #[doc = concat!("Whether standard ", $name, " is a terminal, as ")]
            /// [`std::io::IsTerminal`] (which hilos's types cannot implement: std seals it).
            pub fn is_terminal(&self) -> bool {
                is_tty($fd)
            }
        }

        impl $lock<'_> {
            #[doc = concat!("Whether standard ", $name, " is a terminal, as ")]
            /// [`std::io::IsTerminal`] on std's lock.
            pub fn is_terminal(&self) -> bool {
                is_tty($fd)
            }
        }

        impl From<$handle> for std::process::Stdio {
            #[doc = concat!("A child's stream that writes to this process's standard ", $name, ",")]
            /// as std's `From` (the descriptor is shared, not duplicated).
            fn from(_: $handle) -> std::process::Stdio {
                std::process::Stdio::from(std::io::$static_std())
            }
        }

        impl Drop for $lock<'_> {
            fn drop(&mut self) {
                $static().unlock();
            }
        }

        impl Write for $lock<'_> {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                write_std($fd, buf)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }

        handle_write!($handle);
        handle_write!(&$handle);

        impl std::fmt::Debug for $lock<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($lock)).finish_non_exhaustive()
            }
        }
    };
}

locked_stream!(
    /// Standard output, locked for the thread that holds it, as [`std::io::StdoutLock`]. From
    /// [`Stdout::lock`].
    ///
    /// # Examples
    /// ```
    /// use std::io::Write;
    ///
    /// let h = hilos::spawn(|| -> std::io::Result<()> {
    ///     let mut out = hilos::io::stdout().lock();
    ///     // The three writes come out together, whatever other green threads print.
    ///     write!(out, "a")?;
    ///     write!(out, "b")?;
    ///     writeln!(hilos::io::stdout(), "c") // the same thread: no deadlock
    /// });
    /// h.join().unwrap().unwrap();
    /// ```
    Stdout,
    StdoutLock,
    1,
    stdout_lock,
    stdout,
    "output"
);

locked_stream!(
    /// Standard error, locked for the thread that holds it, as [`std::io::StderrLock`]. From
    /// [`Stderr::lock`].
    ///
    /// # Examples
    /// ```
    /// use std::io::Write;
    ///
    /// let mut err = hilos::io::stderr().lock();
    /// writeln!(err, "warning: one line, not interleaved with other threads' writes").unwrap();
    /// ```
    Stderr,
    StderrLock,
    2,
    stderr_lock,
    stderr,
    "error"
);

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
std_fd!(StdinLock<'_>, 0);
std_fd!(StdoutLock<'_>, 1);
std_fd!(StderrLock<'_>, 2);
