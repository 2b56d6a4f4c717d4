//! Anonymous pipes whose reads and writes park only the calling green thread.

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use io_uring::{opcode, types};

use super::op::{self, Interest};

/// Creates an anonymous pipe: bytes written to the [`PipeWriter`] can be read from the
/// [`PipeReader`], as [`std::io::pipe`]. Both ends are close-on-exec.
///
/// On a green thread, a read from an empty pipe or a write to a full one parks only that green
/// thread. The descriptors are in non-blocking mode; hilos waits for them. Converting an end into
/// an [`OwnedFd`] for another process or library keeps that mode: clear `O_NONBLOCK` if it needs
/// blocking reads.
///
/// # Examples
/// ```
/// use std::io::{Read, Write};
/// let (mut r, mut w) = hilos::io::pipe().unwrap();
/// let h = hilos::spawn(move || {
///     let mut s = String::new();
///     r.read_to_string(&mut s).unwrap();
///     s
/// });
/// w.write_all(b"hello").unwrap();
/// drop(w);
/// assert_eq!(h.join().unwrap(), "hello");
/// ```
pub fn pipe() -> io::Result<(PipeReader, PipeWriter)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptors that nothing else owns.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((PipeReader(r), PipeWriter(w)))
}

/// The reading end of a [`pipe`].
///
/// # Examples
/// ```
/// use std::io::{Read, Write};
///
/// let (mut r, mut w) = hilos::io::pipe().unwrap();
/// let h = hilos::spawn(move || {
///     w.write_all(b"abc").unwrap();
/// }); // `w` is closed here: the reader sees the end of the stream
/// let mut buf = Vec::new();
/// r.read_to_end(&mut buf).unwrap();
/// assert_eq!(buf, b"abc");
/// h.join().unwrap();
/// ```
pub struct PipeReader(OwnedFd);

/// The writing end of a [`pipe`].
///
/// # Examples
/// ```
/// use std::io::{Read, Write};
///
/// let (r, w) = hilos::io::pipe().unwrap();
/// let w2 = w.try_clone().unwrap(); // two writers, one pipe
/// let h = hilos::spawn(move || (&w2).write_all(b"b").unwrap());
/// h.join().unwrap();
/// (&w).write_all(b"a").unwrap();
/// drop(w); // the last writer: end of the stream
/// let mut s = String::new();
/// (&r).read_to_string(&mut s).unwrap();
/// assert_eq!(s, "ba");
/// ```
pub struct PipeWriter(OwnedFd);

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: plain fcntl calls on a descriptor we own.
    unsafe {
        let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if fl < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Clears `O_NONBLOCK` on `fd`'s open file description (for a pipe end given to a child).
fn set_blocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: plain fcntl calls on a descriptor we own.
    unsafe {
        let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if fl < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl & !libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Reads into `buf` from the non-blocking stream descriptor `fd`, parking only a green caller.
pub(crate) fn read_fd(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    let len = buf.len().min(i32::MAX as usize);
    let p = buf.as_mut_ptr();
    // SAFETY: `buf` is borrowed for the whole call, which returns only after the kernel is done.
    unsafe {
        op::op(
            fd,
            Interest::Read,
            crate::task::IoOp::Read,
            None,
            io::ErrorKind::WouldBlock,
            || opcode::Read::new(types::Fd(fd), p, len as u32).build(),
            || op::cvt(crate::real::read(fd, p.cast(), len)),
        )
    }
}

/// Writes `buf` to the non-blocking stream descriptor `fd`, parking only a green caller.
pub(crate) fn write_fd(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    let len = buf.len().min(i32::MAX as usize);
    let p = buf.as_ptr();
    // SAFETY: `buf` is borrowed for the whole call, which returns only after the kernel is done.
    unsafe {
        op::op(
            fd,
            Interest::Write,
            crate::task::IoOp::Write,
            None,
            io::ErrorKind::WouldBlock,
            || opcode::Write::new(types::Fd(fd), p, len as u32).build(),
            || op::cvt(crate::real::write(fd, p.cast(), len)),
        )
    }
}

/// `readv` on a non-blocking stream descriptor.
pub(crate) fn read_vectored_fd(fd: RawFd, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
    let n = bufs.len().min(1024);
    let p = bufs.as_mut_ptr().cast::<libc::iovec>();
    // SAFETY: IoSliceMut is ABI-compatible with iovec; the slices are borrowed for the call.
    unsafe {
        op::op(
            fd,
            Interest::Read,
            crate::task::IoOp::Read,
            None,
            io::ErrorKind::WouldBlock,
            || opcode::Readv::new(types::Fd(fd), p, n as u32).build(),
            || op::cvt(crate::real::readv(fd, p, n as libc::c_int)),
        )
    }
}

/// `writev` on a non-blocking stream descriptor.
pub(crate) fn write_vectored_fd(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    let n = bufs.len().min(1024);
    let p = bufs.as_ptr().cast::<libc::iovec>();
    // SAFETY: IoSlice is ABI-compatible with iovec; the slices are borrowed for the call.
    unsafe {
        op::op(
            fd,
            Interest::Write,
            crate::task::IoOp::Write,
            None,
            io::ErrorKind::WouldBlock,
            || opcode::Writev::new(types::Fd(fd), p, n as u32).build(),
            || op::cvt(crate::real::writev(fd, p, n as libc::c_int)),
        )
    }
}

macro_rules! pipe_end {
    ($t:ident) => {
        impl AsFd for $t {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.0.as_fd()
            }
        }
        impl AsRawFd for $t {
            fn as_raw_fd(&self) -> RawFd {
                self.0.as_raw_fd()
            }
        }
        impl IntoRawFd for $t {
            fn into_raw_fd(self) -> RawFd {
                self.0.into_raw_fd()
            }
        }
        impl From<$t> for OwnedFd {
            fn from(p: $t) -> OwnedFd {
                p.0
            }
        }
        impl From<$t> for std::process::Stdio {
            /// A child's stream on this pipe end, as std's `From`. The end's open file
            /// description is made blocking again, as a child expects its standard streams (hilos
            /// had made it non-blocking): a handle to it kept through `try_clone` then reads or
            /// writes a blocking description, which parks only the green thread on io_uring but
            /// blocks its worker on the epoll fallback.
            fn from(p: $t) -> std::process::Stdio {
                // F_GETFL/F_SETFL on an open descriptor we own do not fail; if they did, the
                // child would get the non-blocking description and see EAGAIN, not hang.
                let _ = set_blocking(&p.0);
                std::process::Stdio::from(p.0)
            }
        }
        impl FromRawFd for $t {
            /// Takes ownership of `fd` and switches it to non-blocking mode.
            unsafe fn from_raw_fd(fd: RawFd) -> $t {
                // SAFETY: the caller gives us ownership of an open descriptor.
                $t::from(unsafe { OwnedFd::from_raw_fd(fd) })
            }
        }
        impl From<OwnedFd> for $t {
            /// Takes ownership of `fd` and switches it to non-blocking mode.
            fn from(fd: OwnedFd) -> $t {
                let _ = set_nonblocking(&fd);
                $t(fd)
            }
        }
        impl $t {
            /// A new handle to the same pipe end (`dup`).
            pub fn try_clone(&self) -> io::Result<$t> {
                self.0.try_clone().map($t)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($t))
                    .field("fd", &self.0.as_raw_fd())
                    .finish()
            }
        }
    };
}
pipe_end!(PipeReader);
pipe_end!(PipeWriter);

impl Read for &PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_fd(self.0.as_raw_fd(), buf)
    }
    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        read_vectored_fd(self.0.as_raw_fd(), bufs)
    }
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        (&*self).read_vectored(bufs)
    }
}

impl Write for &PipeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        write_fd(self.0.as_raw_fd(), buf)
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        write_vectored_fd(self.0.as_raw_fd(), bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for PipeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
